"""The exact path for keras-structopt's own models: render the spec again, copy by name.

A model built from an `Architecture` (by a HyperModel or `render`) is carried into
`tf_keras` by rendering the same spec with tf_keras through the same code path, then
copying the weights layer by layer, matched by name, shapes checked. Keras 3 and
tf_keras keep the same weight order for every layer a spec uses, so outputs agree to
float rounding.
"""

from __future__ import annotations

from typing import Any

from keras_structopt.bridge._graph import copy_layer_weights, input_like, iter_layers
from keras_structopt.errors import UnsupportedModelError
from keras_structopt.space import Architecture, render
from keras_structopt.space._keras_builder import ARCHITECTURE_ATTRIBUTE


def architecture_of(model: Any) -> Architecture | None:
    """Returns the `Architecture` a keras-structopt model was rendered from, or None.

    It answers for models built by a HyperModel or by `render` (Keras 3 or tf_keras),
    for the results of `to_tf_keras` and `compress` on them, and for a Keras 3 winner
    saved with `model.save(...)` and loaded again with `keras.models.load_model`.

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
    """Copies weights from `source` to `target` layer by layer, matched by name (by path in nested models).

    Raises:
        UnsupportedModelError: if a layer with weights is missing from `source` or
            its weight shapes differ.
    """
    source_layers = dict(iter_layers(source))
    for path, layer in iter_layers(target):
        if not layer.weights:
            continue
        if path not in source_layers:
            raise UnsupportedModelError(
                f"Cannot copy weights: layer {path!r} of the target has no "
                f"counterpart in the source model. Source layers: {sorted(source_layers)}."
            )
        # Some layers (MultiHeadAttention after a TFMOT strip) list the same variables
        # in another order: they are then matched by their names.
        copy_layer_weights(source_layers[path], layer, path)


def rerender(model, K, *, unroll: bool = False, for_tflite: bool = False, architecture: Architecture | None = None):
    """Renders `model`'s architecture with the Keras module `K` and copies its weights."""
    spec = architecture or architecture_of(model)
    if spec is None:
        raise UnsupportedModelError(
            f"Expected a model that carries an Architecture. Received: model {getattr(model, 'name', model)!r} "
            f"of type {type(model).__name__} without one."
        )
    target = render(spec, K, unroll=unroll, for_tflite=for_tflite)
    copy_weights(model, target)
    return target


def carry_back(source: Any, structure: Any) -> Any:
    """A new Keras 3 model shaped like `structure`, holding `source`'s weights.

    `source` is a tf_keras model the bridge made from `structure` (the same layers and
    names), after TFMOT's stages changed its weights and were stripped: compression
    hands the user a Keras 3 model again this way. A keras-structopt model is rendered
    from its `Architecture` (and keeps it); any other is cloned from its config, its
    layers, operations and inputs keeping their names (so it crosses the bridge again as it did).

    Example:
        >>> import keras, numpy as np, keras_structopt as kso
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
        >>> legacy = kso.to_tf_keras(model)
        >>> _ = legacy.layers[0].kernel.assign(np.ones((4, 3)))
        >>> back = kso.bridge.carry_back(legacy, model)
        >>> isinstance(back, keras.Model), float(np.asarray(back.layers[0].kernel).sum())
        (True, 12.0)
    """
    import keras

    spec = architecture_of(structure)
    if spec is not None:
        target = render(spec, keras)
    elif isinstance(structure, keras.Sequential):
        target = keras.models.clone_model(structure)  # keeps its input's name
    else:
        # clone_model names a functional model's inputs after their tensors (`keras_tensor`): they keep
        # their layers' names, so that the model crosses the bridge again as it did the first time.
        inputs = keras.tree.map_structure(lambda tensor: input_like(keras, tensor), structure.input)
        target = keras.models.clone_model(structure, input_tensors=inputs)
    copy_weights(source, target)
    return target
