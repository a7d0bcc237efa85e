"""`Conv1DHyperModel`: the structure of a 1-D convolutional network over signals as a search space."""

from __future__ import annotations

from keras_structopt._types import FloatSpace, IntSpace, Loss, Metrics, OptimizerSpace, Shape, StrSpace, Task
from keras_structopt.hypermodels._base import StructuralHyperModel
from keras_structopt.hypermodels._rules import check_space_keeps_rules, derived_stages, stage_filters
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space import Architecture, Block
from keras_structopt.space._rules import pool_factor

BLOCK_TYPES = ("plain", "residual", "separable", "dilated")


class Conv1DHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over 1-D convolutional networks for signals and ordered vectors.

    The input is a signal `(steps, channels)` (audio, sensor series, a sequence of
    feature vectors) or an ordered vector `(d,)` whose neighbouring values belong
    together (a spectrum, MNIST-1D); the model reshapes a vector to `(d, 1)`. The
    network is a sequence of stages of Conv1D blocks, pooled between stages by a
    factor of 2 (4 for signals so long that halving would take more than 6 stages).
    Each stage's number of blocks and filters are their own hyperparameters
    (`"stage_1/blocks"`, `"stage_1/filters"`), or the filters follow `filter_growth`.
    Blocks are `"plain"` (conv, batch norm, activation), `"residual"` (two
    convolutions and a shortcut, projected where the width changes), `"separable"`
    (depthwise-separable) or `"dilated"` (a residual block dilated 1, 2, 4, ... along
    its stage, as in a temporal convolutional network). The head pools globally
    (`"avg"`, `"max"`) or flattens the last map (`"flatten"`).

    **Design rules**, as for `ConvHyperModel`: left unset, the number of stages follows
    from the signal's length (40 steps: 4-5 stages; 16,000 steps: 7, pooled by 4), so
    every network's receptive field covers the signal and its last map is at most 8
    steps; a network that breaks the rules is not built. `design_rules=False` searches
    any space as given.

    Every argument but `input_shape`, `outputs`, `task`, `filter_growth`,
    `width_multiple`, `seed`, `name`, `tunable` and `design_rules` may be fixed (a
    value), a choice (a list) or a range (a `(min, max)` tuple).

    Args:
        input_shape: `(steps, channels)`, or `(d,)` for an ordered vector.
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        num_stages: Number of stages (>= 1); None derives them from the length.
        blocks_per_stage: Blocks in each stage (>= 1), sampled per stage.
        filters: Filters of each stage.
        filter_growth: None (filters tuned per stage) or a factor: stage `s` gets
            `round(filters * filter_growth ** s)`.
        kernel_size: Kernel size of the convolutions.
        block_type: `"plain"`, `"residual"`, `"separable"` and/or `"dilated"`.
        downsample: `"max_pool"`, `"avg_pool"` or `"none"` between stages.
        pooling: The head's reduction: `"avg"`, `"max"` or `"flatten"`.
        batch_norm_momentum: BatchNormalization momentum.
        dropout: Dropout before the head.
        activation: Activation after each convolution.
        learning_rate: The optimizer's learning rate (`None` keeps an optimizer object's own).
        optimizer, loss, metrics: Compile choices, the Keras way; see `StructuralHyperModel`.
        width_multiple: Round filters up to this multiple (8 for GPUs, 128 for TPUs).
        seed: Seed for each trial's weights and shuffling (0 is honoured).
        name: Name of the HyperModel.
        tunable: Keras Tuner's `tunable` flag.
        design_rules: Build only networks whose receptive field covers the signal and
            whose last feature map is at most 8 steps.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> hypermodel = kso.Conv1DHyperModel(input_shape=(40,), outputs=10, filters=24,
        ...                                   blocks_per_stage=1, block_type="plain")
        >>> hypermodel.num_stages  # derived from 40 steps: the last map is 5 or 3 steps
        (4, 5)
        >>> spec = hypermodel.architecture(keras_tuner.HyperParameters())
        >>> [(block.kind, block.units, block.stage) for block in spec.blocks]
        [('plain', 24, 0), ('plain', 24, 1), ('plain', 24, 2), ('plain', 24, 3)]
        >>> spec.count_params()
        9394
    """

    family = "conv1d"

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        num_stages: IntSpace | None = None,
        blocks_per_stage: IntSpace = (1, 2),
        filters: IntSpace = (16, 64),
        filter_growth: float | None = None,
        kernel_size: IntSpace = 5,
        block_type: StrSpace = ("plain", "residual", "separable", "dilated"),
        downsample: StrSpace = "max_pool",
        pooling: StrSpace = "avg",
        batch_norm_momentum: FloatSpace = 0.9,
        dropout: FloatSpace = [0.0, 0.25],
        activation: StrSpace = "relu",
        learning_rate: FloatSpace | None = (1e-3, 1e-2),
        optimizer: OptimizerSpace = "adam",
        loss: Loss = None,
        metrics: Metrics = None,
        width_multiple: int = 1,
        seed: int | None = None,
        name: str | None = None,
        tunable: bool = True,
        design_rules: bool = True,
    ):
        from keras_structopt import _checks

        super().__init__(
            input_shape, outputs, task=task, learning_rate=learning_rate,
            optimizer=optimizer, loss=loss, metrics=metrics,
            width_multiple=width_multiple, seed=seed, name=name, tunable=tunable,
        )
        if len(self._shape) not in (1, 2):
            raise _checks.error(
                "Expected input_shape=(steps, channels) or an ordered vector (d,) for Conv1DHyperModel. "
                f"Received: input_shape={input_shape!r}."
            )
        self.design_rules = design_rules
        self.blocks_per_stage = blocks_per_stage
        self.filters = filters
        self.filter_growth = filter_growth
        self.kernel_size = kernel_size
        self.block_type = block_type
        self.downsample = downsample
        self.pooling = pooling
        self.batch_norm_momentum = batch_norm_momentum
        self.dropout = dropout
        self.activation = activation
        steps = int(self._shape[0])
        self._kernel_size = Tunable.parse("kernel_size", kernel_size, kind=int, low=1)
        self._pool_size = pool_factor(steps, self._kernel_size.minimum)
        self.num_stages = derived_stages(num_stages, steps, self._kernel_size, self._pool_size)
        self._num_stages = Tunable.parse("num_stages", self.num_stages, kind=int, low=1)
        self._blocks = Tunable.parse("blocks_per_stage", blocks_per_stage, kind=int, low=1)
        self._filters = self.width("filters", filters)
        if filter_growth is not None:
            _checks.positive_number("filter_growth", filter_growth)
        self._block_type = self.option("block_type", block_type, BLOCK_TYPES)
        self._downsample = self.option("downsample", downsample, ("max_pool", "avg_pool", "none"))
        self._pooling = self.option("pooling", pooling, ("avg", "max", "flatten"))
        self._momentum = self.rate("batch_norm_momentum", batch_norm_momentum)
        self._dropout = self.rate("dropout", dropout)
        self._activation = self.option("activation", activation, ("relu", "gelu", "swish", "tanh", "elu"))
        deepest = self._num_stages.maximum
        check_space_keeps_rules(self, {
            "num_stages": [deepest],
            **{f"stage_{s}/blocks": [self._blocks.maximum] for s in range(deepest)},
            "kernel_size": [self._kernel_size.maximum],
            "block_type": self._block_type.values,
            "downsample": self._downsample.values,
            "pooling": self._pooling.values,
        })

    def _declare(self, hp) -> Architecture:
        num_stages = self._num_stages.declare(hp)
        blocks = declare_per_block(hp, self._blocks, self._num_stages, "stage_{}/blocks")[:num_stages]
        filters = stage_filters(self, hp, num_stages)
        block_type = self._block_type.declare(hp)
        return Architecture(
            family="conv1d",
            input_shape=self._shape,
            blocks=tuple(
                Block(block_type, units, stage)
                for stage, (count, units) in enumerate(zip(blocks, filters))
                for _ in range(count)
            ),
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "kernel_size": self._kernel_size.declare(hp),
                "pool_size": self._pool_size,
                "downsample": self._downsample.declare(hp),
                "pooling": self._pooling.declare(hp),
                "batch_norm_momentum": self._momentum.declare(hp),
                "dropout": self._dropout.declare(hp),
                "activation": self._activation.declare(hp),
            }.items()),
        )
