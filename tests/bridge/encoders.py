"""Transformer encoders written the way Keras users write them, from `keras.layers`.

* `bert_style`: token and learned position embeddings, post-norm encoder blocks
  (attention, Add, LayerNormalization; a GELU feed-forward network, Add,
  LayerNormalization), mean pooling, a softmax head.
* `vit_style`: patches cut by a strided convolution, learned position embeddings,
  pre-norm blocks (LayerNormalization before attention and before the feed-forward
  network), a final LayerNormalization, mean pooling, a softmax head.

The learned position table is a custom layer, as in most hand-written encoders; one
`kso.bridge.register` call (its decorator form) carries it into tf_keras.
"""

import keras
import tensorflow as tf
import tf_keras
from keras import layers

import keras_structopt as kso


class _PositionTable:
    """What both position tables share: a learned `(length, dim)` table, its config."""

    def __init__(self, length, dim, **kwargs):
        super().__init__(**kwargs)
        self.length, self.dim = int(length), int(dim)

    def build(self, input_shape):
        self.table = self.add_weight(name="table", shape=(self.length, self.dim), initializer="glorot_uniform")

    def get_config(self):
        return {**super().get_config(), "length": self.length, "dim": self.dim}


class LegacyPositionalEmbedding(_PositionTable, tf_keras.layers.Layer):
    """The position table in tf_keras (TFMOT's Keras)."""

    def call(self, x):
        return x + self.table[None, : tf.shape(x)[1]]


@kso.bridge.register(to_tf_keras=LegacyPositionalEmbedding)
class PositionalEmbedding(_PositionTable, layers.Layer):
    """Adds a learned table of `length` positions by `dim` features."""

    def call(self, x):
        return x + self.table[None, : keras.ops.shape(x)[1]]


def _post_norm_block(x, heads, ffn, dropout, i):
    attended = layers.MultiHeadAttention(heads, x.shape[-1] // heads, dropout=dropout, name=f"attention_{i}")(x, x)
    x = layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{i}")(layers.Add()([x, attended]))
    h = layers.Dense(ffn, activation="gelu", name=f"ffn_in_{i}")(x)
    h = layers.Dense(x.shape[-1], name=f"ffn_out_{i}")(layers.Dropout(dropout)(h))
    return layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{i}")(layers.Add()([x, h]))


def _pre_norm_block(x, heads, ffn, dropout, i):
    h = layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{i}")(x)
    h = layers.MultiHeadAttention(heads, x.shape[-1] // heads, dropout=dropout, name=f"attention_{i}")(h, h)
    x = layers.Add()([x, h])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"ffn_norm_{i}")(x)
    h = layers.Dense(ffn, activation="gelu", name=f"ffn_in_{i}")(h)
    h = layers.Dense(x.shape[-1], name=f"ffn_out_{i}")(layers.Dropout(dropout)(h))
    return layers.Add()([x, h])


def bert_style(vocabulary, length, classes, *, dim=32, heads=4, ffn=128, blocks=2, dropout=0.1):
    """A BERT-style classifier of integer token sequences `(n, length)`."""
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = layers.Embedding(vocabulary, dim, name="token_embedding")(tokens)
    x = PositionalEmbedding(length, dim, name="position_embedding")(x)
    for i in range(blocks):
        x = _post_norm_block(x, heads, ffn, dropout, i)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, layers.Dense(classes, activation="softmax", name="head")(x), name="bert_style")


def vit_style(image_shape, classes, *, patch=2, dim=32, heads=4, ffn=128, blocks=2, dropout=0.1):
    """A ViT-style classifier of images `(n, height, width, channels)`."""
    images = keras.Input(image_shape, name="images")
    x = layers.Conv2D(dim, patch, strides=patch, name="patches")(images)
    count = (image_shape[0] // patch) * (image_shape[1] // patch)
    x = layers.Reshape((count, dim))(x)
    x = PositionalEmbedding(count, dim, name="position_embedding")(x)
    for i in range(blocks):
        x = _pre_norm_block(x, heads, ffn, dropout, i)
    x = layers.GlobalAveragePooling1D()(layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x))
    return keras.Model(images, layers.Dense(classes, activation="softmax", name="head")(x), name="vit_style")


def ffn_parameters(model) -> int:
    """Parameters of the feed-forward networks (the `ffn_in_*` and `ffn_out_*` Dense layers)."""
    return sum(layer.count_params() for layer in model.layers if layer.name.startswith(("ffn_in_", "ffn_out_")))
