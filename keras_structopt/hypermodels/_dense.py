"""`DenseHyperModel`: the structure of a multilayer perceptron as a search space."""

from __future__ import annotations

from keras_structopt._types import (
    BoolSpace,
    FloatSpace,
    IntSpace,
    Loss,
    Metrics,
    OptimizerSpace,
    Shape,
    Statistics,
    StrSpace,
    Task,
)
from keras_structopt.hypermodels._base import StructuralHyperModel, fixed_options
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space import Architecture, Block


class DenseHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over multilayer perceptrons: depth, widths, connections.

    Each layer's width is its own hyperparameter (`"block_2/units"`), active only
    when the network is deep enough. Connections may be `"plain"`, `"residual"`
    (a projection shortcut where widths differ) or `"dense"` (each layer sees the
    concatenation of the input and all earlier layers). Inputs of more than one axis
    are flattened. Pass it to any Keras Tuner tuner.

    Every argument but `input_shape`, `outputs`, `task`, `width_multiple`, `seed`,
    `name` and `tunable` may be fixed (a value), a choice (a list) or a range (a
    `(min, max)` tuple); see `keras_structopt.hypermodels.StructuralHyperModel`.

    Args:
        input_shape: Shape of one example, e.g. `(64,)`.
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        num_layers: Number of hidden layers (>= 1).
        units: Width of each hidden layer (>= 1); sampled per layer.
        connection: `"plain"`, `"residual"` and/or `"dense"`.
        activation: Hidden activation(s): `"relu"`, `"gelu"`, `"swish"`, `"tanh"`, `"elu"`.
        dropout: Dropout rate after each hidden layer, in `[0, 1)`.
        batch_norm: Whether a BatchNormalization follows each hidden Dense.
        batch_norm_momentum: Momentum of those BatchNormalizations.
        input_normalization: `None`, or `(mean, variance)` of the training inputs, one
            value per (flattened) input feature: the model then standardises its input
            itself (a `Normalization` layer with these constants), so callers send raw
            values. Use it when the columns are on different scales, e.g.
            `(x.mean(axis=0), x.var(axis=0))`; `kso.suggest` does it for such data.
        head_bias: `None`, or the initial bias of the head's units (a float; for a
            regression, the targets' mean).
        learning_rate: The optimizer's learning rate (`None` keeps an optimizer object's own).
        optimizer, loss, metrics: Compile choices, the Keras way; see `StructuralHyperModel`.
        width_multiple: Round widths up to this multiple (8 for GPUs, 128 for TPUs).
        seed: Seed for each trial's weights and shuffling (0 is honoured).
        name: Name of the HyperModel.
        tunable: Keras Tuner's `tunable` flag.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split(seed=0)
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
        >>> tuner = keras_tuner.RandomSearch(
        ...     hypermodel, objective="val_accuracy", max_trials=1, seed=1,
        ...     directory=getfixture("tmp_path"), project_name="doc")
        >>> tuner.search(*data.train, validation_data=data.validation, epochs=1, verbose=0)
        >>> tuner.oracle.get_best_trials()[0].status
        'COMPLETED'
    """

    family = "dense"

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        num_layers: IntSpace = (1, 3),
        units: IntSpace = (16, 256),
        connection: StrSpace = ("plain", "residual", "dense"),
        activation: StrSpace = "relu",
        dropout: FloatSpace = [0.0, 0.2],
        batch_norm: BoolSpace = False,
        batch_norm_momentum: float = 0.9,
        input_normalization: Statistics | None = None,
        head_bias: float | None = None,
        learning_rate: FloatSpace | None = (1e-3, 1e-2),
        optimizer: OptimizerSpace = "adam",
        loss: Loss = None,
        metrics: Metrics = None,
        width_multiple: int = 1,
        seed: int | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(
            input_shape,
            outputs,
            task=task,
            learning_rate=learning_rate,
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            width_multiple=width_multiple,
            seed=seed,
            name=name,
            tunable=tunable,
        )
        self.num_layers = num_layers
        self.units = units
        self.connection = connection
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self._num_layers = Tunable.parse("num_layers", num_layers, kind=int, low=1)
        self._units = self.width("units", units)
        self._connection = self.option("connection", connection, ("plain", "residual", "dense"))
        self._activation = self.option("activation", activation, ("relu", "gelu", "swish", "tanh", "elu"))
        self._dropout = self.rate("dropout", dropout)
        self._batch_norm = self.option("batch_norm", batch_norm, bool)
        self._momentum = self.rate("batch_norm_momentum", batch_norm_momentum)
        self.input_normalization = input_normalization
        self.head_bias = head_bias
        self._fixed = fixed_options(input_shape=self._shape, input_normalization=input_normalization,
                                    head_bias=head_bias)

    def _declare(self, hp) -> Architecture:
        num_layers = self._num_layers.declare(hp)
        widths = declare_per_block(hp, self._units, self._num_layers, "block_{}/units")
        batch_norm = self._batch_norm.declare(hp)
        return Architecture(
            family="dense",
            input_shape=self._shape,
            blocks=tuple(Block("dense", units) for units in widths[:num_layers]),
            connection=self._connection.declare(hp),
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "activation": self._activation.declare(hp),
                "dropout": self._dropout.declare(hp),
                "batch_norm": batch_norm,
                "batch_norm_momentum": self._momentum.declare(hp),
                **self._fixed,
            }.items()),
        )
