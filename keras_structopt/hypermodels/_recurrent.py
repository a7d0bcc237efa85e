"""`RecurrentHyperModel`: the structure of an LSTM / GRU network as a search space."""

from __future__ import annotations

from keras_structopt import _checks
from keras_structopt._types import BoolSpace, FloatSpace, IntSpace, Loss, Metrics, OptimizerSpace, Shape, StrSpace, Task
from keras_structopt.hypermodels._base import StructuralHyperModel
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space import Architecture, Block


class RecurrentHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over recurrent networks for sequences or token ids.

    Inputs are `(timesteps, features)` sequences, or `(timesteps,)` integer token ids
    when `vocabulary_size` is given (an `Embedding` of tunable width comes first). The
    cell (LSTM or GRU), the depth and each layer's units (`"block_1/units"`) are
    hyperparameters, as are bidirectionality, residual connections (between layers of
    equal width) and how the sequence is reduced: the last state, the mean or the max
    over time. Winners convert to TFLite (one example per call, see `export_tflite`).

    Every argument but `input_shape`, `outputs`, `task`, `vocabulary_size`,
    `width_multiple`, `seed`, `name` and `tunable` may be fixed (a value), a choice (a
    list) or a range (a `(min, max)` tuple).

    Args:
        input_shape: `(timesteps, features)`, or `(timesteps,)` for token ids.
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        vocabulary_size: Number of distinct token ids, for integer inputs.
        embedding_units: Width of the token embedding.
        cell: `"lstm"` and/or `"gru"` (GRU with `reset_after=True`).
        num_layers: Number of recurrent layers (>= 1).
        units: Units of each recurrent layer, sampled per layer.
        bidirectional: Whether each layer reads the sequence both ways.
        connection: `"plain"` and/or `"residual"`.
        reduce: `"last"`, `"mean"` and/or `"max"`.
        dropout: Dropout after each recurrent layer.
        learning_rate: The optimizer's learning rate (`None` keeps an optimizer object's own).
        optimizer, loss, metrics: Compile choices, the Keras way; see `StructuralHyperModel`.
        width_multiple: Round widths up to this multiple (8 for GPUs, 128 for TPUs).
        seed: Seed for each trial's weights and shuffling (0 is honoured).
        name: Name of the HyperModel.
        tunable: Keras Tuner's `tunable` flag.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> hypermodel = kso.RecurrentHyperModel(input_shape=(64,), outputs=10,
        ...     vocabulary_size=17, cell="gru", num_layers=2, units=32, bidirectional=True)
        >>> spec = hypermodel.architecture(keras_tuner.HyperParameters())
        >>> spec.widths, spec.option("bidirectional")
        ((32, 32), True)
    """

    family = "recurrent"

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        vocabulary_size: int | None = None,
        embedding_units: IntSpace = (8, 64),
        cell: StrSpace = ("lstm", "gru"),
        num_layers: IntSpace = (1, 2),
        units: IntSpace = (16, 128),
        bidirectional: BoolSpace = (False, True),
        connection: StrSpace = ("plain", "residual"),
        reduce: StrSpace = ("last", "mean", "max"),
        dropout: FloatSpace = [0.0, 0.2],
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
            input_shape, outputs, task=task, learning_rate=learning_rate,
            optimizer=optimizer, loss=loss, metrics=metrics,
            width_multiple=width_multiple, seed=seed, name=name, tunable=tunable,
        )
        self.vocabulary_size = vocabulary_size
        self.embedding_units = embedding_units
        self.cell = cell
        self.num_layers = num_layers
        self.units = units
        self.bidirectional = bidirectional
        self.connection = connection
        self.reduce = reduce
        self.dropout = dropout
        check_sequence_input(self._shape, vocabulary_size, input_shape)
        self._embedding_units = self.width("embedding_units", embedding_units)
        self._cell = self.option("cell", cell, ("lstm", "gru"))
        self._num_layers = Tunable.parse("num_layers", num_layers, kind=int, low=1)
        self._units = self.width("units", units)
        self._bidirectional = self.option("bidirectional", bidirectional, bool)
        self._connection = self.option("connection", connection, ("plain", "residual"))
        self._reduce = self.option("reduce", reduce, ("last", "mean", "max"))
        self._dropout = self.rate("dropout", dropout)

    def _declare(self, hp) -> Architecture:
        num_layers = self._num_layers.declare(hp)
        widths = declare_per_block(hp, self._units, self._num_layers, "block_{}/units")[:num_layers]
        cell = self._cell.declare(hp)
        options = {
            "bidirectional": self._bidirectional.declare(hp),
            "reduce": self._reduce.declare(hp),
            "dropout": self._dropout.declare(hp),
            "vocabulary_size": self.vocabulary_size,
        }
        if self.vocabulary_size:
            options["embedding_units"] = self._embedding_units.declare(hp)
        return Architecture(
            family="recurrent",
            input_shape=self._shape,
            blocks=tuple(Block(cell, units) for units in widths),
            connection=self._connection.declare(hp),
            task=self.task,
            outputs=self._outputs,
            options=tuple(options.items()),
        )


def check_sequence_input(shape, vocabulary_size, input_shape) -> None:
    """Sequences are `(timesteps, features)`; token ids `(timesteps,)` with a vocabulary."""
    if vocabulary_size is not None:
        _checks.positive_int("vocabulary_size", vocabulary_size)
        if len(shape) != 1:
            raise _checks.error(
                "Expected input_shape=(timesteps,) for token ids (vocabulary_size is set). "
                f"Received: input_shape={input_shape!r}."
            )
    elif len(shape) != 2:
        raise _checks.error(
            "Expected input_shape=(timesteps, features), or (timesteps,) with a "
            f"vocabulary_size for token ids. Received: input_shape={input_shape!r}."
        )
