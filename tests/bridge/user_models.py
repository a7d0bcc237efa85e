"""Hand-written Keras 3 models, as a user would write them, and digits data shaped for each."""

import keras
import numpy as np

from keras_structopt.data import load_digits_split


def sequential_cnn():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="sequential_cnn",
    )


def residual_cnn(filters=32):
    layers = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="stem_norm")(x)
    x = layers.ReLU()(x)
    h = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name="separable")(x)
    h = layers.BatchNormalization(momentum=0.9, name="separable_norm")(h)
    h = layers.Activation("relu")(h)
    h = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")(h)
    h = layers.BatchNormalization(momentum=0.9, name="conv_norm")(h)
    x = layers.ReLU()(layers.Add(name="residual")([x, h]))
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * filters, 3, padding="same", activation="relu", name="wide")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.1)(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", name="head")(x), name="residual_cnn")


def lstm_text():
    inputs = keras.Input((64,), dtype="int32")
    x = keras.layers.Embedding(17, 8, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(x)
    x = keras.layers.GRU(8)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="lstm_text")


def attention_encoder():
    inputs = keras.Input((8, 8))
    x = keras.layers.Dense(16)(inputs)
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attention]))
    feed_forward = keras.layers.Dense(16)(keras.layers.Dense(32, activation="gelu")(x))
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, feed_forward]))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="attention_encoder")


def two_input():
    """Top and bottom halves of a digit, a shared nested tower, a gated merge."""
    top, bottom = keras.Input((32,), name="top"), keras.Input((32,), name="bottom")
    tower = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16, activation="relu")], name="tower")
    x = keras.layers.Concatenate()([tower(top), tower(bottom)])
    x = keras.layers.Multiply()([x, keras.layers.Dense(32, activation="sigmoid")(x)])
    return keras.Model([top, bottom], keras.layers.Dense(10, activation="softmax")(x), name="two_input")


# name -> (builder, digits view)
MODELS = {
    "sequential_cnn": (sequential_cnn, "image"),
    "residual_cnn": (residual_cnn, "image"),
    "lstm_text": (lstm_text, "tokens"),
    "attention_encoder": (attention_encoder, "rows"),
    "two_input": (two_input, "flat"),
}


def data_for(name, train_size=None, test_size=None):
    """`(train, validation, test)` digits pairs shaped for one of the models."""
    split = load_digits_split(MODELS[name][1], seed=0)
    parts = []
    for (x, y), size in zip((split.train, split.validation, split.test), (train_size, test_size, test_size)):
        x, y = x[:size], y[:size]
        if name == "two_input":
            x = [x[:, :32], x[:, 32:]]
        parts.append((x, y))
    return tuple(parts)


def compiled(name):
    model = MODELS[name][0]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def max_difference(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64"))))
