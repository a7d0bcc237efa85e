"""Render an `Architecture` with `keras` or `tf_keras`, or count its costs.

Each family is written once, against a small builder interface. `render` runs it with
a builder that makes real layers of the Keras module it is given; `count` runs the
same code with a builder that only follows shapes and adds up parameters and
multiply-accumulates. So the spec's counts and the rendered model cannot drift apart,
and the two Keras renderings have the same layer names, in the same order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from keras_structopt.space.architecture import Architecture

# The attribute that carries a model's `Architecture` (see `architecture_of`).
ARCHITECTURE_ATTRIBUTE = "_structopt_architecture"

# --------------------------------------------------------------------------------------
# Builders


@dataclasses.dataclass(frozen=True)
class Counts:
    """Parameters and multiply-accumulates (MACs) of one example's forward pass."""

    params: int
    macs: int


class _Symbol:
    """A shape-only stand-in for a tensor (batch axis left out)."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)


def _prod(values) -> int:
    return int(math.prod(values))


class _CountingBuilder:
    """Follows shapes and counts parameters and MACs, building nothing."""

    def __init__(self):
        self.params = 0
        self.macs = 0

    def width(self, x):
        return x.shape[-1]

    def input(self, shape, dtype, name):
        return _Symbol(shape)

    def dense(self, x, units, name, activation=None, use_bias=True, bias=None):
        fan_in = x.shape[-1]
        self.params += fan_in * units + (units if use_bias else 0)
        self.macs += _prod(x.shape[:-1]) * fan_in * units
        return _Symbol(x.shape[:-1] + (units,))

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True):
        height, width, channels = x.shape
        out_h, out_w = math.ceil(height / strides), math.ceil(width / strides)
        self.params += kernel_size * kernel_size * channels * filters + (filters if use_bias else 0)
        self.macs += out_h * out_w * kernel_size * kernel_size * channels * filters
        return _Symbol((out_h, out_w, filters))

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True):
        height, width, channels = x.shape
        self.params += kernel_size * kernel_size * channels + channels * filters
        self.params += filters if use_bias else 0
        self.macs += height * width * (kernel_size * kernel_size * channels + channels * filters)
        return _Symbol((height, width, filters))

    def batch_norm(self, x, name, momentum):
        self.params += 4 * x.shape[-1]  # gamma, beta, moving mean, moving variance
        return x

    def layer_norm(self, x, name):
        self.params += 2 * x.shape[-1]
        return x

    def dropout(self, x, name, rate):
        return x

    def activation(self, x, name, function):
        return x

    def add(self, xs, name):
        return _Symbol(xs[0].shape)

    def concat(self, xs, name):
        return _Symbol(xs[0].shape[:-1] + (sum(x.shape[-1] for x in xs),))

    def pool(self, x, name, kind, pool_size, strides):
        height, width, channels = x.shape
        return _Symbol((math.ceil(height / strides), math.ceil(width / strides), channels))

    def global_pool(self, x, name, kind):
        return _Symbol(x.shape[-1:])

    def flatten(self, x, name):
        return _Symbol((_prod(x.shape),))

    def embedding(self, x, name, vocabulary_size, units):
        self.params += vocabulary_size * units
        return _Symbol(x.shape + (units,))

    def lookup(self, x, name, vocabulary, kind):
        return x  # a table, no weights

    def normalization(self, x, name, mean, variance):
        return x  # constants from the schema, no weights

    def multiply(self, xs, name):
        return _Symbol(xs[0].shape)

    def dot(self, xs, name):
        self.macs += xs[0].shape[-1]
        return _Symbol((1,))

    def position_embedding(self, x, name):
        self.params += _prod(x.shape)
        return x

    def rnn(self, x, name, cell, units, return_sequences, bidirectional):
        timesteps, features = x.shape
        gates = 4 if cell == "lstm" else 3
        biases = units if cell == "lstm" else 2 * units  # GRU uses reset_after=True
        directions = 2 if bidirectional else 1
        self.params += directions * gates * (units * (features + units) + biases)
        self.macs += directions * timesteps * gates * units * (features + units)
        width = directions * units
        return _Symbol((timesteps, width) if return_sequences else (width,))

    def attention(self, x, name, num_heads, key_units, dropout):
        timesteps, units = x.shape
        inner = num_heads * key_units
        self.params += 3 * (units * inner + inner) + inner * units + units
        self.macs += 4 * timesteps * units * inner + 2 * timesteps * timesteps * inner
        return x

    def model(self, inputs, outputs, name):
        return Counts(params=self.params, macs=self.macs)


class _KerasBuilder:
    """Makes real layers of the Keras module `K` (`keras` or `tf_keras`)."""

    def __init__(self, K, spec, unroll=False, for_tflite=False):
        self.K = K
        self.spec = spec
        self.layers = K.layers
        self.unroll = unroll
        self.for_tflite = for_tflite

    def width(self, x):
        return int(x.shape[-1])

    def input(self, shape, dtype, name):
        return self.K.Input(shape=tuple(shape), dtype=dtype, name=name)

    def dense(self, x, units, name, activation=None, use_bias=True, bias=None):
        initial = "zeros" if bias is None else self.K.initializers.Constant(bias)
        return self.layers.Dense(units, activation=activation, use_bias=use_bias, bias_initializer=initial,
                                 name=name)(x)

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True):
        return self.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            activation=activation,
            use_bias=use_bias,
            name=name,
        )(x)

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True):
        return self.layers.SeparableConv2D(
            filters,
            kernel_size,
            padding="same",
            activation=activation,
            use_bias=use_bias,
            name=name,
        )(x)

    def batch_norm(self, x, name, momentum):
        return self.layers.BatchNormalization(momentum=momentum, name=name)(x)

    def layer_norm(self, x, name):
        return self.layers.LayerNormalization(epsilon=1e-6, name=name)(x)

    def dropout(self, x, name, rate):
        return self.layers.Dropout(rate, name=name)(x)

    def activation(self, x, name, function):
        return self.layers.Activation(function, name=name)(x)

    def add(self, xs, name):
        return self.layers.Add(name=name)(xs)

    def concat(self, xs, name):
        return self.layers.Concatenate(name=name)(xs)

    def pool(self, x, name, kind, pool_size, strides):
        layer = self.layers.MaxPooling2D if kind == "max" else self.layers.AveragePooling2D
        return layer(pool_size=pool_size, strides=strides, padding="same", name=name)(x)

    def global_pool(self, x, name, kind):
        if len(x.shape) == 4:
            layer = self.layers.GlobalMaxPooling2D if kind == "max" else self.layers.GlobalAveragePooling2D
        else:
            layer = self.layers.GlobalMaxPooling1D if kind == "max" else self.layers.GlobalAveragePooling1D
        return layer(name=name)(x)

    def flatten(self, x, name):
        return self.layers.Flatten(name=name)(x)

    def embedding(self, x, name, vocabulary_size, units):
        return self.layers.Embedding(vocabulary_size, units, name=name)(x)

    def lookup(self, x, name, vocabulary, kind):
        layer = self.layers.StringLookup if kind == "string" else self.layers.IntegerLookup
        return layer(vocabulary=list(vocabulary), num_oov_indices=1, name=name)(x)

    def normalization(self, x, name, mean, variance):
        return self.layers.Normalization(axis=-1, mean=list(mean), variance=list(variance), name=name)(x)

    def multiply(self, xs, name):
        return self.layers.Multiply(name=name)(xs)

    def dot(self, xs, name):
        return self.layers.Dot(axes=1, name=name)(xs)

    def position_embedding(self, x, name):
        return position_embedding_class(self.K)(name=name)(x)

    def rnn(self, x, name, cell, units, return_sequences, bidirectional):
        kwargs = {"return_sequences": return_sequences, "unroll": self.unroll}
        if cell == "gru":
            kwargs["reset_after"] = True
            layer = self.layers.GRU(units, name=name if not bidirectional else f"{name}_cell", **kwargs)
        else:
            if self.for_tflite:
                # A non-zero recurrent dropout (inactive at inference) keeps the LSTM on
                # the generic loop: TFLite's fused LSTM kernel drifts from Keras's
                # outputs by up to ~0.09, the loop matches them to ~1e-6.
                kwargs["recurrent_dropout"] = 1e-6
            layer = self.layers.LSTM(units, name=name if not bidirectional else f"{name}_cell", **kwargs)
        if bidirectional:
            layer = self.layers.Bidirectional(layer, name=name)
        return layer(x)

    def attention(self, x, name, num_heads, key_units, dropout):
        layer = self.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=key_units, dropout=dropout, name=name
        )
        return layer(x, x)

    def model(self, inputs, outputs, name):
        if _is_keras3(self.K):
            if self.K.config.dtype_policy().compute_dtype != "float32":  # mixed precision: a float32 output
                outputs = self.layers.Activation("linear", dtype="float32", name="float32_output")(outputs)
            return structured_model_class()(inputs=inputs, outputs=outputs, name=name, architecture=self.spec)
        model = self.K.Model(inputs=inputs, outputs=outputs, name=name)
        setattr(model, ARCHITECTURE_ATTRIBUTE, self.spec)
        return model


def _is_keras3(K) -> bool:
    return K.__name__ == "keras"


def _register(K, cls):
    saving = getattr(K, "saving", None)
    register = getattr(saving, "register_keras_serializable", None) or K.utils.register_keras_serializable
    return register(package="keras_structopt")(cls)


_STRUCTURED_MODEL = None


def structured_model_class():
    """The Keras 3 functional model class that `render(spec, keras)` returns.

    It is an ordinary functional `keras.Model` that also stores its `Architecture`
    in its config, so the spec survives `model.save("m.keras")` and
    `keras.models.load_model(...)` (in a process that imported keras_structopt, which
    registers the class). Cloning through `keras.models.clone_model` drops the spec.

    Example:
        >>> import keras
        >>> from keras_structopt.space.architecture import Architecture, Block
        >>> spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
        >>> model = render(spec, keras)
        >>> type(model).__name__, model.get_config()["architecture"]["blocks"]
        ('StructuredModel', [{'kind': 'dense', 'units': 8, 'stage': 0}])
    """
    global _STRUCTURED_MODEL
    if _STRUCTURED_MODEL is None:
        import keras

        class StructuredModel(keras.Model):
            """A functional Keras 3 model built from an `Architecture`, which it keeps."""

            # The positional arguments must stay those of a functional model, so that
            # Keras serialises and revives it as one; the spec is keyword-only.
            def __init__(self, inputs, outputs, name=None, *, architecture=None, **kwargs):
                super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
                if isinstance(architecture, dict):
                    architecture = Architecture.from_dict(architecture)
                setattr(self, ARCHITECTURE_ATTRIBUTE, architecture)

            def get_config(self):
                config = super().get_config()
                spec = getattr(self, ARCHITECTURE_ATTRIBUTE, None)
                if spec is not None:
                    config["architecture"] = spec.to_dict()
                return config

        _STRUCTURED_MODEL = _register(keras, StructuredModel)
    return _STRUCTURED_MODEL


_POSITION_EMBEDDING_CLASSES: dict[str, Any] = {}


def position_embedding_class(K):
    """Returns the learned position-embedding layer class for the Keras module `K`.

    The layer adds a trainable `(timesteps, units)` table to its input. The same
    class body serves `keras` and `tf_keras`, registered with each under the package
    `keras_structopt`.

    Example:
        >>> import keras
        >>> layer = position_embedding_class(keras)(name="positions")
        >>> tuple(layer(keras.ops.zeros((2, 5, 3))).shape)
        (2, 5, 3)
    """
    key = K.__name__
    if key not in _POSITION_EMBEDDING_CLASSES:

        class PositionEmbedding(K.layers.Layer):
            """Adds a learned embedding of each position to a `(batch, time, units)` input."""

            def build(self, input_shape):
                self.embeddings = self.add_weight(
                    name="embeddings",
                    shape=(int(input_shape[-2]), int(input_shape[-1])),
                    initializer=K.initializers.RandomNormal(stddev=0.02),
                    trainable=True,
                )
                self.built = True

            def call(self, inputs):
                return inputs + self.embeddings

            def compute_output_shape(self, input_shape):
                return input_shape

        _POSITION_EMBEDDING_CLASSES[key] = _register(K, PositionEmbedding)
    return _POSITION_EMBEDDING_CLASSES[key]


# --------------------------------------------------------------------------------------
# Families


def _head(spec: Architecture, b, x):
    activation = {"multiclass": "softmax", "binary": "sigmoid", "regression": None}[spec.task]
    bias = dict(spec.options).get("head_bias")
    return b.dense(x, spec.outputs, "head", activation=activation, bias=bias)


def _dense_family(spec: Architecture, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    if len(spec.input_shape) > 1:
        x = b.flatten(x, "flatten")
    if spec.option("input_normalization") is not None:
        mean, variance = spec.option("input_normalization")
        x = b.normalization(x, "input_normalization", mean, variance)
    x = _dense_trunk(spec, b, x, spec.connection)
    return b.model(inputs, _head(spec, b, x), "structopt_dense")


def _dense_trunk(spec: Architecture, b, x, connection: str):
    """The dense blocks of `spec` on `x`, joined `"plain"`, `"residual"` or `"dense"`."""
    batch_norm = spec.option("batch_norm")
    dropout = spec.option("dropout")
    features = [x]
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        h = b.concat(features, f"{prefix}_concat") if connection == "dense" and i else x
        h = b.dense(h, block.units, f"{prefix}_dense", use_bias=not batch_norm)
        if batch_norm:
            h = b.batch_norm(h, f"{prefix}_batch_norm", spec.option("batch_norm_momentum"))
        h = b.activation(h, f"{prefix}_activation", spec.option("activation"))
        if connection == "residual":
            shortcut = x
            if b.width(x) != block.units:
                shortcut = b.dense(x, block.units, f"{prefix}_projection", use_bias=False)
            h = b.add([h, shortcut], f"{prefix}_add")
        if dropout:
            h = b.dropout(h, f"{prefix}_dropout", dropout)
        features.append(h)
        x = h
    if connection == "dense":
        x = b.concat(features, "features_concat")
    return x


_INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string"}


def _encode_features(spec: Architecture, b, inputs, features, prefix: str):
    """Normalised numbers and embedded categories of `features`, concatenated (one tensor)."""
    widths = dict(zip([f["name"] for f in spec.option("features") if f["kind"] != "numeric"],
                      spec.option("embedding_units")))
    parts = []
    numeric = [f for f in features if f["kind"] == "numeric"]
    if numeric:
        x = inputs[numeric[0]["name"]] if len(numeric) == 1 else b.concat(
            [inputs[f["name"]] for f in numeric], f"{prefix}numeric_concat")
        parts.append(b.normalization(x, f"{prefix}numeric_normalization", [f["mean"] for f in numeric],
                                     [f["variance"] for f in numeric]))
    for feature in (f for f in features if f["kind"] != "numeric"):
        name = feature["name"]
        index = b.lookup(inputs[name], f"{name}_lookup", feature["vocabulary"], feature["kind"])
        embedded = b.embedding(index, f"{name}_embedding", len(feature["vocabulary"]) + 1, widths[name])
        parts.append(b.flatten(embedded, f"{name}_flatten"))
    return parts[0] if len(parts) == 1 else b.concat(parts, f"{prefix}inputs_concat")


def _cross_and_deep(spec: Architecture, b, x0, prefix: str = ""):
    """`cross_layers` cross layers (DCN: `x_{l+1} = x_0 * (W x_l + b) + x_l`) beside a plain trunk."""
    crossed = x0
    for i in range(spec.option("cross_layers")):
        h = b.dense(crossed, b.width(x0), f"{prefix}cross_{i}_dense")
        h = b.multiply([x0, h], f"{prefix}cross_{i}_multiply")
        crossed = b.add([h, crossed], f"{prefix}cross_{i}_add")
    return b.concat([crossed, _dense_trunk(spec, b, x0, "plain")], f"{prefix}cross_deep_concat")


def _tabular_family(spec: Architecture, b):
    """Named inputs -> normalised numbers and embedded categories -> a dense trunk -> head.

    `"cross"` puts cross layers (DCN-style) beside a plain trunk on the same features and
    concatenates both before the head.
    """
    features = spec.option("features")
    inputs = {f["name"]: b.input((1,), _INPUT_DTYPES[f["kind"]], f["name"]) for f in features}
    x0 = _encode_features(spec, b, inputs, features, "")
    x = _dense_trunk(spec, b, x0, spec.connection) if spec.connection != "cross" else _cross_and_deep(spec, b, x0)
    return b.model(inputs, _head(spec, b, x), "structopt_tabular")


def _tower(spec: Architecture, b, x, side: str):
    """One side's dense blocks and its projection to `tower_units` (the retrieval vector)."""
    for i, block in enumerate(spec.blocks):
        x = b.dense(x, block.units, f"{side}_block_{i}_dense", activation=spec.option("activation"))
        if spec.option("dropout"):
            x = b.dropout(x, f"{side}_block_{i}_dropout", spec.option("dropout"))
    return b.dense(x, spec.option("tower_units"), f"{side}_projection")


def _recommender_family(spec: Architecture, b):
    """User features and item features -> an interaction -> a score.

    `"dot"`: two towers (the blocks, then a projection to `tower_units`) whose dot product is
    the score (the logit for `"binary"`, the prediction for `"regression"`): the towers can
    serve retrieval on their own. `"mlp"` (NCF-style): both sides concatenated into the dense
    blocks and a head. `"cross"`: cross layers beside the blocks, then a head.
    """
    features = spec.option("features")
    by_name = {f["name"]: f for f in features}
    inputs = {f["name"]: b.input((1,), _INPUT_DTYPES[f["kind"]], f["name"]) for f in features}
    user = _encode_features(spec, b, inputs, [by_name[n] for n in spec.option("user_features")], "user_")
    item = _encode_features(spec, b, inputs, [by_name[n] for n in spec.option("item_features")], "item_")
    if spec.connection == "dot":
        score = b.dot([_tower(spec, b, user, "user"), _tower(spec, b, item, "item")], "score")
        if spec.task == "binary":
            score = b.activation(score, "head", "sigmoid")
        return b.model(inputs, score, "structopt_recommender")
    x0 = b.concat([user, item], "pair_concat")
    x = _dense_trunk(spec, b, x0, "plain") if spec.connection == "mlp" else _cross_and_deep(spec, b, x0)
    return b.model(inputs, _head(spec, b, x), "structopt_recommender")

def _conv_unit(spec, b, x, filters, kernel_size, name, strides=1):
    """Convolution, batch norm, activation."""
    x = b.conv(x, filters, kernel_size, f"{name}_conv", strides=strides, use_bias=False)
    x = b.batch_norm(x, f"{name}_batch_norm", spec.option("batch_norm_momentum"))
    return b.activation(x, f"{name}_activation", spec.option("activation"))


def _conv_block(spec, b, x, block, prefix):
    kernel_size = spec.option("kernel_size")
    momentum = spec.option("batch_norm_momentum")
    activation = spec.option("activation")
    filters = block.units
    if block.kind == "plain":
        return _conv_unit(spec, b, x, filters, kernel_size, prefix)
    if block.kind == "separable":
        x = b.separable(x, filters, kernel_size, f"{prefix}_separable", use_bias=False)
        x = b.batch_norm(x, f"{prefix}_batch_norm", momentum)
        return b.activation(x, f"{prefix}_activation", activation)
    if block.kind == "residual":
        h = _conv_unit(spec, b, x, filters, kernel_size, f"{prefix}_a")
        h = b.conv(h, filters, kernel_size, f"{prefix}_b_conv", use_bias=False)
        h = b.batch_norm(h, f"{prefix}_b_batch_norm", momentum)
        shortcut = x
        if b.width(x) != filters:
            shortcut = b.conv(x, filters, 1, f"{prefix}_projection_conv", use_bias=False)
            shortcut = b.batch_norm(shortcut, f"{prefix}_projection_batch_norm", momentum)
        h = b.add([h, shortcut], f"{prefix}_add")
        return b.activation(h, f"{prefix}_activation", activation)
    # Inception: 1x1 | 1x1->kxk | 1x1->kxk->kxk | pool->1x1, concatenated to `filters`.
    quarter = filters // 4
    branches = [_conv_unit(spec, b, x, filters - 3 * quarter, 1, f"{prefix}_branch_1x1")]
    h = _conv_unit(spec, b, x, quarter, 1, f"{prefix}_branch_single_reduce")
    branches.append(_conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_single"))
    h = _conv_unit(spec, b, x, quarter, 1, f"{prefix}_branch_double_reduce")
    h = _conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_double_a")
    branches.append(_conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_double_b"))
    h = b.pool(x, f"{prefix}_branch_pool", "max", pool_size=3, strides=1)
    branches.append(_conv_unit(spec, b, h, quarter, 1, f"{prefix}_branch_pool_projection"))
    return b.concat(branches, f"{prefix}_branch_concat")


def _conv_family(spec: Architecture, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    downsample = spec.option("downsample")
    stage_features = [x]
    previous_stage = spec.blocks[0].stage
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        if block.stage != previous_stage:
            if downsample != "none":
                kind = "max" if downsample == "max_pool" else "avg"
                x = b.pool(x, f"stage_{block.stage}_downsample", kind, pool_size=2, strides=2)
            stage_features = [x]
            previous_stage = block.stage
        h = x
        if spec.connection == "dense" and len(stage_features) > 1:
            h = b.concat(stage_features, f"{prefix}_concat")
        x = _conv_block(spec, b, h, block, prefix)
        stage_features.append(x)
    if spec.connection == "dense" and len(stage_features) > 2:
        x = b.concat(stage_features, "features_concat")
    x = b.global_pool(x, "pooling", "max" if spec.option("pooling") == "max" else "avg")
    if spec.option("dropout"):
        x = b.dropout(x, "head_dropout", spec.option("dropout"))
    return b.model(inputs, _head(spec, b, x), "structopt_conv")


def _sequence_input(spec: Architecture, b, units_option: str):
    vocabulary = spec.option("vocabulary_size")
    inputs = b.input(spec.input_shape, "int32" if vocabulary else "float32", "inputs")
    if vocabulary:
        return inputs, b.embedding(inputs, "embedding", vocabulary, spec.option(units_option))
    return inputs, inputs


def _recurrent_family(spec: Architecture, b):
    inputs, x = _sequence_input(spec, b, "embedding_units")
    reduce = spec.option("reduce")
    dropout = spec.option("dropout")
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        return_sequences = not (i == len(spec.blocks) - 1 and reduce == "last")
        h = b.rnn(
            x,
            f"{prefix}_{block.kind}",
            block.kind,
            block.units,
            return_sequences=return_sequences,
            bidirectional=spec.option("bidirectional"),
        )
        if spec.connection == "residual" and return_sequences and b.width(h) == b.width(x):
            h = b.add([x, h], f"{prefix}_add")
        if dropout:
            h = b.dropout(h, f"{prefix}_dropout", dropout)
        x = h
    if reduce != "last":
        x = b.global_pool(x, "reduce", reduce)
    return b.model(inputs, _head(spec, b, x), "structopt_recurrent")


def _transformer_family(spec: Architecture, b):
    units = spec.option("model_units")
    dropout = spec.option("dropout")
    pre_norm = spec.option("normalization") == "pre"
    residual = spec.connection == "residual"
    activation = spec.option("activation")
    if spec.option("vocabulary_size"):
        inputs, x = _sequence_input(spec, b, "model_units")
    else:
        inputs, x = _sequence_input(spec, b, "model_units")
        x = b.dense(x, units, "input_projection")
    if spec.option("position_embedding"):
        x = b.position_embedding(x, "position_embedding")
    if dropout:
        x = b.dropout(x, "embedding_dropout", dropout)
    features = [x]

    def sublayer(x, name, function):
        h = b.layer_norm(x, f"{name}_norm") if pre_norm else x
        h = function(h)
        if dropout:
            h = b.dropout(h, f"{name}_dropout", dropout)
        if residual:
            h = b.add([x, h], f"{name}_add")
        return h if pre_norm else b.layer_norm(h, f"{name}_norm")

    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        if not residual and i:
            x = b.dense(b.concat(features, f"{prefix}_concat"), units, f"{prefix}_merge")
        x = sublayer(
            x,
            f"{prefix}_attention",
            lambda h, p=prefix: b.attention(
                h, f"{p}_attention", spec.option("num_heads"), spec.option("key_units"), dropout
            ),
        )
        x = sublayer(
            x,
            f"{prefix}_ffn",
            lambda h, p=prefix, ffn=block.units: b.dense(
                b.dense(h, ffn, f"{p}_ffn_1", activation=activation), units, f"{p}_ffn_2"
            ),
        )
        features.append(x)
    if not residual:
        x = b.dense(b.concat(features, "features_concat"), units, "features_merge")
    if pre_norm:
        x = b.layer_norm(x, "final_norm")
    x = b.global_pool(x, "pooling", "max" if spec.option("pooling") == "max" else "avg")
    if dropout:
        x = b.dropout(x, "head_dropout", dropout)
    return b.model(inputs, _head(spec, b, x), "structopt_transformer")


_FAMILY_BUILDERS = {
    "dense": _dense_family,
    "conv": _conv_family,
    "recurrent": _recurrent_family,
    "transformer": _transformer_family,
    "tabular": _tabular_family,
    "recommender": _recommender_family,
}


def render(spec: Architecture, K, *, unroll: bool = False, for_tflite: bool = False):
    """Builds the functional model described by `spec` with the Keras module `K`.

    Args:
        spec: The `Architecture` to build.
        K: The Keras module, `keras` (Keras 3) or `tf_keras` (Keras 2).
        unroll: Unroll recurrent layers; the weights are the same either way.
        for_tflite: Render for TFLite conversion (LSTMs that convert exactly);
            the weights and inference outputs are the same.

    Returns:
        An uncompiled `K.Model` whose layer names come from the spec, carrying the
        spec (`architecture_of(model) == spec`). With Keras 3 it is a
        `StructuredModel`, which keeps the spec through `model.save` and
        `keras.models.load_model`.

    Example:
        >>> import keras
        >>> from keras_structopt.space.architecture import Architecture, Block
        >>> spec = Architecture("dense", (64,), [Block("dense", 32)], outputs=10)
        >>> model = render(spec, keras)
        >>> model.count_params() == spec.count_params()
        True
    """
    if not isinstance(spec, Architecture):
        raise TypeError(f"Expected spec to be an Architecture. Received: spec={spec!r}.")
    return _FAMILY_BUILDERS[spec.family](spec, _KerasBuilder(K, spec, unroll=unroll, for_tflite=for_tflite))


def count(spec: Architecture) -> Counts:
    """Counts the parameters and MACs of `spec` without building anything.

    Example:
        >>> from keras_structopt.space.architecture import Architecture, Block
        >>> count(Architecture("dense", (4,), [Block("dense", 8)], outputs=3))
        Counts(params=67, macs=56)
    """
    return _FAMILY_BUILDERS[spec.family](spec, _CountingBuilder())
