"""The builder that makes real layers of `keras` or `tf_keras`, and the Keras 3 classes it registers.

`render(spec, K)` runs a family's code with this builder: the two Keras renderings have the
same layer names in the same order, so weights copy between them by name.
"""

from __future__ import annotations

from typing import Any

# The attribute that carries a model's `Architecture` (see `architecture_of`).
ARCHITECTURE_ATTRIBUTE = "_structopt_architecture"


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

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True, dilation=1):
        layer = self.layers.Conv1D if len(x.shape) == 3 else self.layers.Conv2D  # a sequence, or an image
        return layer(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            dilation_rate=dilation,
            activation=activation,
            use_bias=use_bias,
            name=name,
        )(x)

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True, dilation=1):
        layer = self.layers.SeparableConv1D if len(x.shape) == 3 else self.layers.SeparableConv2D
        return layer(
            filters,
            kernel_size,
            padding="same",
            dilation_rate=dilation,
            activation=activation,
            use_bias=use_bias,
            name=name,
        )(x)

    def reshape(self, x, shape, name):
        return self.layers.Reshape(tuple(shape), name=name)(x)

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
        if len(x.shape) == 3:
            layer = self.layers.MaxPooling1D if kind == "max" else self.layers.AveragePooling1D
        else:
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
        >>> from keras_structopt.space import Architecture, Block, render
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
                    from keras_structopt.space._architecture import Architecture

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

        class PositionEmbedding(K.layers.Layer):  # type: ignore[name-defined]
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
