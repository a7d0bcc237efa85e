"""`ConvHyperModel`: the structure of a convolutional network as a search space."""

from __future__ import annotations

from keras_structopt import _checks
from keras_structopt._types import FloatSpace, IntSpace, Loss, Metrics, OptimizerSpace, Shape, StrSpace, Task
from keras_structopt.hypermodels._base import StructuralHyperModel
from keras_structopt.hypermodels._rules import check_space_keeps_rules, derived_stages, stage_filters
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space import Architecture, Block

BLOCK_TYPES = ("plain", "residual", "inception", "separable")


class ConvHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over convolutional networks for `(H, W, C)` images.

    The network is a sequence of stages; the feature map is downsampled between
    stages. Each stage's number of blocks and filters are their own hyperparameters
    (`"stage_1/blocks"`, `"stage_1/filters"`), or the filters follow a growth rule
    (`filter_growth=2.0`: each stage doubles the first stage's filters). Blocks are
    `"plain"` (conv-BN-activation), `"residual"` (two convolutions with a projection
    shortcut where the width changes), `"inception"` (parallel 1x1 / kxk /
    double-kxk / pooling branches, concatenated) or `"separable"` (depthwise-separable
    convolution). `connection="dense"` feeds each block the concatenation of its
    stage's input and all earlier blocks. A global pooling head follows.

    **Design rules.** Left unset, the number of stages follows from the image's size:
    the fewest with which even the smallest network's receptive field covers the image
    and its last feature map is at most 8x8, and one more (8x8: 2-3 stages, 28x28 and
    32x32: 4-5, 224x224: 7-8). A network that still breaks the rules (a space set by
    hand) is not built (`rule_violation`); a space none of whose networks keeps them is
    refused. `design_rules=False` searches any space as given.

    Every argument but `input_shape`, `outputs`, `task`, `filter_growth`,
    `width_multiple`, `seed`, `name` and `tunable` may be fixed (a value), a choice (a
    list) or a range (a `(min, max)` tuple).

    Args:
        input_shape: `(height, width, channels)`.
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        num_stages: Number of stages (>= 1); None derives them from `input_shape`.
        blocks_per_stage: Blocks in each stage (>= 1), sampled per stage.
        filters: Filters of each stage (>= 4 when inception blocks are possible).
        filter_growth: None (filters tuned per stage) or a factor: stage `s` gets
            `round(filters * filter_growth ** s)`.
        kernel_size: Kernel size of the convolutions.
        block_type: `"plain"`, `"residual"`, `"inception"` and/or `"separable"`.
        connection: `"plain"` and/or `"dense"`.
        downsample: `"max_pool"`, `"avg_pool"` or `"none"` between stages.
        pooling: Global pooling of the head, `"avg"` or `"max"`.
        batch_norm_momentum: BatchNormalization momentum (0.9 suits short training;
            0.99 can wreck test accuracy after few epochs).
        dropout: Dropout before the head.
        activation: Activation after each convolution.
        learning_rate: The optimizer's learning rate (`None` keeps an optimizer object's own).
        optimizer, loss, metrics: Compile choices, the Keras way; see `StructuralHyperModel`.
        width_multiple: Round filters up to this multiple (8 for GPUs, 128 for TPUs).
        seed: Seed for each trial's weights and shuffling (0 is honoured).
        name: Name of the HyperModel.
        tunable: Keras Tuner's `tunable` flag.
        design_rules: Build only networks whose receptive field covers the input and
            whose last feature map is at most 8x8.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> kso.ConvHyperModel(input_shape=(28, 28, 1), outputs=10).num_stages  # derived from 28x28
        (4, 5)
        >>> hypermodel = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10,
        ...     num_stages=2, filters=16, filter_growth=2.0, block_type="residual")
        >>> spec = hypermodel.architecture(keras_tuner.HyperParameters())
        >>> [(block.kind, block.units, block.stage) for block in spec.blocks]
        [('residual', 16, 0), ('residual', 32, 1)]
    """

    family = "conv"

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        num_stages: IntSpace | None = None,
        blocks_per_stage: IntSpace = (1, 2),
        filters: IntSpace = (16, 96),
        filter_growth: float | None = None,
        kernel_size: IntSpace = 3,
        block_type: StrSpace = ("plain", "residual", "inception", "separable"),
        connection: StrSpace = "plain",
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
        super().__init__(
            input_shape, outputs, task=task, learning_rate=learning_rate,
            optimizer=optimizer, loss=loss, metrics=metrics,
            width_multiple=width_multiple, seed=seed, name=name, tunable=tunable,
        )
        self.design_rules = design_rules
        self.blocks_per_stage = blocks_per_stage
        self.filters = filters
        self.filter_growth = filter_growth
        self.kernel_size = kernel_size
        self.block_type = block_type
        self.connection = connection
        self.downsample = downsample
        self.pooling = pooling
        self.batch_norm_momentum = batch_norm_momentum
        self.dropout = dropout
        self.activation = activation
        if len(self._shape) != 3:
            raise _checks.error(
                "Expected input_shape=(height, width, channels) for ConvHyperModel. "
                f"Received: input_shape={input_shape!r}."
            )
        self._kernel_size = Tunable.parse("kernel_size", kernel_size, kind=int, low=1)
        self.num_stages = derived_stages(num_stages, max(self._shape[:2]), self._kernel_size, 2)
        self._num_stages = Tunable.parse("num_stages", self.num_stages, kind=int, low=1)
        self._blocks = Tunable.parse("blocks_per_stage", blocks_per_stage, kind=int, low=1)
        self._filters = self.width("filters", filters)
        if filter_growth is not None:
            _checks.positive_number("filter_growth", filter_growth)
        self._block_type = self.option("block_type", block_type, BLOCK_TYPES)
        if "inception" in self._block_type.values and self._filters.minimum < 4:
            raise _checks.error(
                "Expected filters >= 4 when block_type allows 'inception' (four branches). "
                f"Received: filters={filters!r}."
            )
        self._connection = self.option("connection", connection, ("plain", "dense"))
        self._downsample = self.option("downsample", downsample, ("max_pool", "avg_pool", "none"))
        self._pooling = self.option("pooling", pooling, ("avg", "max"))
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
        })

    def _declare(self, hp) -> Architecture:
        num_stages = self._num_stages.declare(hp)
        blocks = declare_per_block(hp, self._blocks, self._num_stages, "stage_{}/blocks")[:num_stages]
        filters = stage_filters(self, hp, num_stages)
        block_type = self._block_type.declare(hp)
        return Architecture(
            family="conv",
            input_shape=self._shape,
            blocks=tuple(
                Block(block_type, max(units, 4) if block_type == "inception" else units, stage)
                for stage, (count, units) in enumerate(zip(blocks, filters))
                for _ in range(count)
            ),
            connection=self._connection.declare(hp),
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "kernel_size": self._kernel_size.declare(hp),
                "downsample": self._downsample.declare(hp),
                "pooling": self._pooling.declare(hp),
                "batch_norm_momentum": self._momentum.declare(hp),
                "dropout": self._dropout.declare(hp),
                "activation": self._activation.declare(hp),
            }.items()),
        )
