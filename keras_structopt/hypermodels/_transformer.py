"""`TransformerHyperModel`: the structure of a transformer encoder as a search space."""

from __future__ import annotations

from keras_structopt._types import BoolSpace, FloatSpace, IntSpace, Loss, Metrics, OptimizerSpace, Shape, StrSpace, Task
from keras_structopt.hypermodels._base import StructuralHyperModel
from keras_structopt.hypermodels._recurrent import check_sequence_input
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space import Architecture, Block


class TransformerHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over transformer encoders for sequences or token ids.

    Inputs are `(timesteps, features)` sequences (projected to the model width) or
    `(timesteps,)` token ids (embedded) when `vocabulary_size` is given, plus learned
    position embeddings. Hyperparameters: the model width, the number of encoder
    blocks, attention heads and key width, each block's feed-forward width
    (`"block_1/ffn_units"`), dropout, pre- or post-normalisation, the connection
    pattern (`"residual"` around attention and feed-forward, or `"dense"`: each block
    reads a projection of the concatenated outputs of all earlier blocks) and the
    pooling over time.

    Every argument but `input_shape`, `outputs`, `task`, `vocabulary_size`,
    `width_multiple`, `seed`, `name` and `tunable` may be fixed (a value), a choice (a
    list) or a range (a `(min, max)` tuple).

    Args:
        input_shape: `(timesteps, features)`, or `(timesteps,)` for token ids.
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        vocabulary_size: Number of distinct token ids, for integer inputs.
        model_units: Width of the residual stream.
        num_blocks: Number of encoder blocks (>= 1).
        num_heads: Attention heads.
        key_units: Width of each head's queries and keys.
        ffn_units: Feed-forward width of each block, sampled per block.
        dropout: Dropout rate (attention, sublayers, embeddings, head).
        normalization: `"pre"` and/or `"post"`.
        connection: `"residual"` and/or `"dense"`.
        position_embedding: Whether learned position embeddings are added.
        pooling: `"mean"` and/or `"max"` over time.
        activation: Feed-forward activation.
        learning_rate: The optimizer's learning rate (`None` keeps an optimizer object's own).
        optimizer, loss, metrics: Compile choices, the Keras way; see `StructuralHyperModel`.
        width_multiple: Round widths up to this multiple (8 for GPUs, 128 for TPUs).
        seed: Seed for each trial's weights and shuffling (0 is honoured).
        name: Name of the HyperModel.
        tunable: Keras Tuner's `tunable` flag.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> hypermodel = kso.TransformerHyperModel(input_shape=(8, 8), outputs=10,
        ...     model_units=32, num_blocks=2, num_heads=2, key_units=16, ffn_units=64)
        >>> spec = hypermodel.architecture(keras_tuner.HyperParameters())
        >>> spec.widths, spec.option("model_units")
        ((64, 64), 32)
    """

    family = "transformer"

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        vocabulary_size: int | None = None,
        model_units: IntSpace = [32, 64],
        num_blocks: IntSpace = (1, 3),
        num_heads: IntSpace = [2, 4],
        key_units: IntSpace = [8, 16],
        ffn_units: IntSpace = (32, 256),
        dropout: FloatSpace = [0.0, 0.1],
        normalization: StrSpace = ("pre", "post"),
        connection: StrSpace = ("residual", "dense"),
        position_embedding: BoolSpace = True,
        pooling: StrSpace = ("mean", "max"),
        activation: StrSpace = "gelu",
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
        self.model_units = model_units
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.key_units = key_units
        self.ffn_units = ffn_units
        self.dropout = dropout
        self.normalization = normalization
        self.connection = connection
        self.position_embedding = position_embedding
        self.pooling = pooling
        self.activation = activation
        check_sequence_input(self._shape, vocabulary_size, input_shape)
        self._model_units = self.width("model_units", model_units)
        self._num_blocks = Tunable.parse("num_blocks", num_blocks, kind=int, low=1)
        self._num_heads = Tunable.parse("num_heads", num_heads, kind=int, low=1)
        self._key_units = self.width("key_units", key_units)
        self._ffn_units = self.width("ffn_units", ffn_units)
        self._dropout = self.rate("dropout", dropout)
        self._normalization = self.option("normalization", normalization, ("pre", "post"))
        self._connection = self.option("connection", connection, ("residual", "dense"))
        self._position_embedding = self.option("position_embedding", position_embedding, bool)
        self._pooling = self.option("pooling", pooling, ("mean", "max"))
        self._activation = self.option("activation", activation, ("relu", "gelu", "swish", "tanh", "elu"))

    def _declare(self, hp) -> Architecture:
        num_blocks = self._num_blocks.declare(hp)
        widths = declare_per_block(hp, self._ffn_units, self._num_blocks, "block_{}/ffn_units")[:num_blocks]
        return Architecture(
            family="transformer",
            input_shape=self._shape,
            blocks=tuple(Block("encoder", units) for units in widths),
            connection=self._connection.declare(hp),
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "model_units": self._model_units.declare(hp),
                "num_heads": self._num_heads.declare(hp),
                "key_units": self._key_units.declare(hp),
                "dropout": self._dropout.declare(hp),
                "normalization": self._normalization.declare(hp),
                "position_embedding": self._position_embedding.declare(hp),
                "pooling": self._pooling.declare(hp),
                "activation": self._activation.declare(hp),
                "vocabulary_size": self.vocabulary_size,
            }.items()),
        )
