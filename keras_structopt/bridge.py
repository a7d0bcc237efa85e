"""The bridge: a Keras 3 model made from an `Architecture` -> the same model in `tf_keras`.

TFMOT accepts only `tf_keras` (Keras 2) models. The bridge renders the winner's spec
with `tf_keras` through the same code path that built the Keras 3 model, then copies
the weights layer by layer, by name, checking every shape. Keras 3 and tf_keras keep
the same weight order for every layer the spec uses, so outputs agree to float
rounding.
"""

from __future__ import annotations

from keras_structopt.errors import UnsupportedModelError
from keras_structopt.hypermodels.base import ARCHITECTURE_ATTRIBUTE
from keras_structopt.space import Architecture, render


def architecture_of(model) -> Architecture | None:
    """Returns the `Architecture` a keras-structopt model was rendered from, or None.

    Example:
        >>> import keras, keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=8)
        >>> import keras_tuner
        >>> model = hypermodel.build(keras_tuner.HyperParameters())
        >>> kso.architecture_of(model).widths
        (8,)
    """
    return getattr(model, ARCHITECTURE_ATTRIBUTE, None)


def attach_architecture(model, spec: Architecture):
    """Records `spec` on `model` so that the bridge, compression and export can read it."""
    setattr(model, ARCHITECTURE_ATTRIBUTE, spec)
    return model


def copy_weights(source, target) -> None:
    """Copies weights from `source` to `target` layer by layer, matched by name.

    Raises:
        UnsupportedModelError: if a layer with weights is missing from `source` or
            its weight shapes differ.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in source_layers:
            raise UnsupportedModelError(
                f"Cannot copy weights: layer {layer.name!r} of the target has no "
                f"counterpart in the source model. Source layers: {sorted(source_layers)}."
            )
        source_layer = source_layers[layer.name]
        values = source_layer.get_weights()
        shapes = [w.shape for w in values]
        if shapes != [w.shape for w in weights]:
            # Some layers (MultiHeadAttention after a TFMOT strip) list the same
            # variables in another order: match them by their names instead.
            values = _reorder_by_name(source_layer, layer)
            if values is None:
                raise UnsupportedModelError(
                    f"Cannot copy weights of layer {layer.name!r}: shapes {shapes} in the "
                    f"source, {[w.shape for w in weights]} in the target."
                )
        layer.set_weights(values)


def _weight_key(layer, variable) -> str:
    """A variable's name within its layer: `query/kernel` for `attn/query/kernel:0`."""
    name = (getattr(variable, "path", None) or variable.name).split(":")[0]
    parts = name.split("/")
    return "/".join(parts[parts.index(layer.name) + 1 :] if layer.name in parts else parts[1:])


def _reorder_by_name(source_layer, target_layer):
    """The source layer's values in the target layer's order, or None if they differ."""
    source = {_weight_key(source_layer, v): v.numpy() for v in source_layer.weights}
    keys = [_weight_key(target_layer, v) for v in target_layer.weights]
    if len(source) != len(keys) or set(source) != set(keys):
        return None
    values = [source[key] for key in keys]
    if [v.shape for v in values] != [tuple(v.shape) for v in target_layer.weights]:
        return None
    return values


def rerender(model, K, *, unroll: bool = False, for_tflite: bool = False, architecture: Architecture | None = None):
    """Renders `model`'s architecture with the Keras module `K` and copies its weights."""
    spec = architecture or architecture_of(model)
    if spec is None:
        raise UnsupportedModelError(
            "Expected a model built by a keras-structopt HyperModel (or "
            "keras_structopt.render) or an explicit architecture=. Received: model "
            f"{getattr(model, 'name', model)!r} of type {type(model).__name__} with no "
            "recorded Architecture. Build the network from an Architecture with "
            "keras_structopt.render(spec, keras) to make it bridgeable."
        )
    target = render(spec, K, unroll=unroll, for_tflite=for_tflite)
    copy_weights(model, target)
    return attach_architecture(target, spec)


def to_tf_keras(model, *, architecture: Architecture | None = None, unroll: bool = False):
    """Returns a `tf_keras` copy of a keras-structopt Keras 3 model, weights exact.

    Args:
        model: A Keras 3 model built by a keras-structopt HyperModel (for example a
            tuner's `get_best_models()[0]`) or by `keras_structopt.render`, or a
            tf_keras model from an earlier bridge.
        architecture: The `Architecture` of `model`, when the model does not carry it
            (a model rebuilt by the user from a spec, say).
        unroll: Unroll recurrent layers (same weights and outputs).

    Returns:
        An uncompiled `tf_keras.Model` with the same layer names and weights.

    Raises:
        UnsupportedModelError: if the model carries no architecture and none is
            given, or its layers do not match the architecture.

    Example:
        >>> import keras_tuner, numpy as np, keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=16)
        >>> model = hypermodel.build(keras_tuner.HyperParameters())
        >>> legacy = kso.to_tf_keras(model)
        >>> x = np.random.rand(4, 64).astype("float32")
        >>> float(np.abs(legacy(x).numpy() - np.asarray(model(x))).max()) < 1e-5
        True
    """
    import tf_keras

    return rerender(model, tf_keras, unroll=unroll, architecture=architecture)
