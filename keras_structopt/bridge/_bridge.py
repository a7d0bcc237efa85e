"""The bridge's entry points: a Keras 3 model -> the same model in `tf_keras`, weights exact.

TFMOT accepts only `tf_keras` (Keras 2) models; Keras Tuner under Keras 3 only
Keras 3 models. Two paths carry a model across:

* **keras-structopt's own models** (built by a HyperModel or by `render`, also after
  `model.save` / `keras.models.load_model`) carry their `Architecture`: the spec is
  rendered again with tf_keras and the weights copied by layer name (`spec.py`).
* **Any other Keras 3 Sequential or functional model** made of standard layers is
  translated layer by layer through a table (`layers.py`, `graph.py`); the whole
  graph is checked first and every unsupported layer is named in one error.

A tf_keras model is accepted as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_structopt.bridge._graph import check, copy_layer_weights, is_graph_model, problems, translate
from keras_structopt.bridge._spec import architecture_of, rerender
from keras_structopt.errors import UnsupportedModelError
from keras_structopt.space import Architecture


def is_tf_keras(model) -> bool:
    """Whether `model` is a tf_keras (Keras 2) model."""
    import sys

    tf_keras = sys.modules.get("tf_keras")
    return tf_keras is not None and isinstance(model, tf_keras.Model)


def unsupported_layers(model: Any) -> list[str]:
    """Lists every layer of a Keras 3 model the bridge cannot carry (empty: it can).

    Models that carry an `Architecture` and tf_keras models always can.

    Example:
        >>> import keras, keras_structopt as kso
        >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
        ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
        >>> kso.bridge.unsupported_layers(model)
        []
    """
    import keras

    if architecture_of(model) is not None or is_tf_keras(model):
        return []
    if not isinstance(model, keras.Model):
        return [f"object of type {type(model).__name__}: not a Keras model"]
    if not is_graph_model(model):
        return [
            f"model {model.name!r} ({type(model).__name__}): a subclassed model has no graph of layers "
            "to translate; rebuild it as a functional or Sequential model"
        ]
    return problems(model)


def check_bridgeable(model) -> None:
    """Raises `UnsupportedModelError` naming every layer of `model` the bridge cannot carry."""
    import keras

    if architecture_of(model) is not None or is_tf_keras(model):
        return
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            "Expected a Keras 3 model (Sequential or functional) or a tf_keras model. "
            f"Received: an object of type {type(model).__name__}."
        )
    found = unsupported_layers(model)
    if found and not is_graph_model(model):
        raise UnsupportedModelError(f"Expected a Sequential or functional Keras 3 model. Received: {found[0]}.")
    check(model)


def to_tf_keras(model: Any, *, architecture: Architecture | None = None, unroll: bool = False) -> Any:
    """Returns a `tf_keras` copy of a Keras 3 model, weights exact.

    Supported: models built by a keras-structopt HyperModel or `render` (through their
    `Architecture`, also after saving and loading), and any Keras 3 `Sequential` or
    functional model made of the standard layers in `kso.bridge.SUPPORTED_LAYERS`
    (Dense, Conv1D/2D/3D, DepthwiseConv2D, SeparableConv2D, BatchNormalization,
    LayerNormalization, Dropout, pooling, Flatten, Reshape, Add, Concatenate,
    Multiply, activations, Embedding, LSTM, GRU, Bidirectional, MultiHeadAttention,
    nested Sequential/functional models, ...), several inputs and outputs included.
    The translated model's outputs are checked against the original's on a probe
    batch. The model you pass is never modified; a tf_keras model is returned as is.

    Args:
        model: A Keras 3 model (or a tf_keras model).
        architecture: The `Architecture` of `model`, when a model rendered from a
            spec has lost it (a model rebuilt by hand, say).
        unroll: Unroll recurrent layers (same weights and outputs).

    Returns:
        An uncompiled `tf_keras.Model` with the same layer names and weights.

    Raises:
        UnsupportedModelError: if the model holds layers the bridge cannot carry (a
            `Lambda`, a subclassed layer or model, an operation on symbolic tensors);
            all of them are named in one message, before anything is built.

    Example:
        >>> import keras, numpy as np, keras_structopt as kso
        >>> inputs = keras.Input((8, 8, 1))
        >>> x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        >>> x = keras.layers.Add()([x, keras.layers.Conv2D(4, 1)(inputs)])
        >>> outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
        >>> model = keras.Model(inputs, outputs)
        >>> legacy = kso.to_tf_keras(model)
        >>> x = np.random.rand(4, 8, 8, 1).astype("float32")
        >>> float(np.abs(legacy(x).numpy() - np.asarray(model(x))).max()) < 1e-5
        True
    """
    import tf_keras

    spec = architecture or architecture_of(model)
    if spec is not None:
        return rerender(model, tf_keras, unroll=unroll, architecture=spec)
    if is_tf_keras(model):
        return model
    check_bridgeable(model)
    target = translate(model, unroll=unroll)
    verify(model, target)
    return target


def tf_keras_copy(model, *, for_tflite: bool = False):
    """A fresh, disposable tf_keras copy of any model the bridge accepts.

    TFMOT's wrappers mutate the layers they wrap, so compression only ever wraps
    layers of a copy like this one. `for_tflite` makes LSTMs convert exactly.
    """
    import tf_keras

    spec = architecture_of(model)
    if spec is not None:
        return rerender(model, tf_keras, for_tflite=for_tflite)
    if not is_tf_keras(model):
        check_bridgeable(model)
        return translate(model, for_tflite=for_tflite)

    def clone(layer):
        config = layer.get_config()
        if for_tflite:
            _exact_lstm_config(type(layer).__name__, config)
        # Compression's helper subclasses (a prunable Bidirectional) become plain layers again.
        return getattr(type(layer), "plain_class", type(layer)).from_config(config)

    copy = tf_keras.models.clone_model(model, clone_function=clone)
    _copy_nested_weights(model, copy)
    return copy


def _copy_nested_weights(source, target) -> None:
    """Copies weights between two tf_keras models of the same layers, layer by layer.

    Per layer rather than `set_weights` on the whole model: a layer stripped by
    TFMOT may list its variables in another order than a fresh one (matched by name).
    """
    import tf_keras

    for source_layer, target_layer in zip(source.layers, target.layers):
        if isinstance(source_layer, tf_keras.Model):
            _copy_nested_weights(source_layer, target_layer)
        elif source_layer.weights:
            copy_layer_weights(source_layer, target_layer, source_layer.name)


def _exact_lstm_config(class_name: str, config: dict) -> None:
    """Keeps an LSTM off TFLite's fused kernel (see `layers.translate_config`)."""
    if class_name == "LSTM":
        config["recurrent_dropout"] = max(float(config.get("recurrent_dropout") or 0.0), 1e-6)
    for key in ("layer", "backward_layer"):
        inner = config.get(key)
        if isinstance(inner, dict) and "config" in inner:
            _exact_lstm_config(inner.get("class_name", ""), inner["config"])


def probe_inputs(model, batch_size: int = 2, seed: int = 0):
    """A small batch of inputs for `model`, in the structure its call expects."""
    import keras

    rng = np.random.default_rng(seed)

    def make(tensor):
        shape = (batch_size,) + tuple(3 if d is None else int(d) for d in tuple(tensor.shape)[1:])
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        if dtype == "string":  # category names for lookup layers (a few, some outside any vocabulary)
            import tensorflow as tf

            names = np.array([f"probe-{v}" for v in rng.integers(0, 3, size=int(np.prod(shape)))])
            return tf.constant(names.reshape(shape))
        if "int" in dtype:
            return rng.integers(0, 2, size=shape).astype(dtype)
        return rng.normal(size=shape).astype(dtype)

    if is_tf_keras(model) or isinstance(model, keras.Sequential):
        batch = [make(t) for t in model.inputs] if len(model.inputs) > 1 else make(model.inputs[0])
    else:
        batch = keras.tree.map_structure(make, model.input)
    if any(hasattr(item, "numpy") for item in keras.tree.flatten(batch)):  # Keras 3 takes no mix of both
        import tensorflow as tf

        batch = keras.tree.map_structure(tf.constant, batch)
    return batch


def verify(source, target, *, tolerance: float = 1e-4) -> float:
    """Checks that `target` computes what `source` does on a probe batch.

    Returns the largest absolute difference; raises `UnsupportedModelError` above
    `tolerance` (relative to the outputs' scale).
    """
    import keras

    inputs = probe_inputs(source)
    expected = [np.asarray(v, dtype="float64") for v in keras.tree.flatten(source(inputs, training=False))]
    import tensorflow as tf

    received = [np.asarray(v, dtype="float64") for v in tf.nest.flatten(target(inputs, training=False))]
    if len(expected) != len(received) or any(a.shape != b.shape for a, b in zip(expected, received)):
        raise UnsupportedModelError(
            f"The tf_keras translation of model {source.name!r} returns outputs of shapes "
            f"{[b.shape for b in received]}, the model {[a.shape for a in expected]}."
        )
    difference = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(expected, received))
    scale = max(1.0, max(float(np.max(np.abs(a), initial=0.0)) for a in expected))
    if difference > tolerance * scale:
        own = _sensitivity(source, inputs, expected)
        if own >= 0.1 * difference:
            raise UnsupportedModelError(
                f"The tf_keras translation of model {source.name!r} differs from it by {difference:.3g} on a "
                f"probe batch (tolerance {tolerance * scale:.3g}), but the model's own outputs move by {own:.3g} "
                "when its inputs change by one part in 10^6: its float32 outputs are rounding noise (random "
                "weights, or batch normalisation statistics never calibrated?), so no translation can be "
                "checked. Train the model first, or build it in float64."
            )
        raise UnsupportedModelError(
            f"The tf_keras translation of model {source.name!r} differs from it by {difference:.3g} "
            f"on a probe batch (tolerance {tolerance * scale:.3g}); please report this model."
        )
    return difference


def _sensitivity(model, inputs, expected) -> float:
    """How far `model`'s outputs move when its float inputs change by one part in 10^6."""
    import keras

    def nudge(value):
        array = np.asarray(value)
        return (array * (1 + 1e-6)).astype(array.dtype) if array.dtype.kind == "f" else value

    moved = [np.asarray(v, dtype="float64")
             for v in keras.tree.flatten(model(keras.tree.map_structure(nudge, inputs), training=False))]
    return max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(expected, moved))
