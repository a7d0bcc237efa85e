"""Any Keras 3 Sequential or functional model -> the same model in tf_keras.

The whole graph is checked first, configs only (`problems`), so an unsupported model
is refused with every offending layer named, before anything is built or trained.
Then each layer is made again with tf_keras from its translated config (`layers.py`),
the graph is replayed on tf_keras tensors in the order Keras 3 runs it, nested models
become nested tf_keras models, shared layers stay shared, and the weights are copied
layer by layer with their shapes checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_structopt.bridge._layers import SUPPORTED_LAYERS, SUPPORTED_OPERATIONS, BridgeProblem, hint, translate_config
from keras_structopt.bridge._registry import registration_of, suggestion
from keras_structopt.errors import UnsupportedModelError

if TYPE_CHECKING:
    import keras


def _functional_class():
    from keras.src.models.functional import Functional

    return Functional


def is_graph_model(model) -> bool:
    """Whether `model` is a Keras 3 Sequential or functional model (a graph of layers)."""
    import keras

    return isinstance(model, (keras.Sequential, _functional_class()))


def _kind(layer) -> str | None:
    """None for a supported standard layer; otherwise a key of the bridge's hints."""
    import keras

    from keras_structopt.space._keras_builder import position_embedding_class

    cls = type(layer)
    if registration_of(layer) is not None:
        return None
    if isinstance(layer, keras.Model):
        return None if is_graph_model(layer) else "subclassed_model"
    if not isinstance(layer, keras.layers.Layer):
        return None if cls.__name__ in SUPPORTED_OPERATIONS else "operation"
    if cls.__name__ == "Lambda":
        return "Lambda"
    if cls is position_embedding_class(keras):
        return None
    if getattr(keras.layers, cls.__name__, None) is cls:
        return None if cls.__name__ in SUPPORTED_LAYERS else "table"
    return "custom"


def _is_operation(layer) -> bool:
    """A Keras 3 operation on symbolic tensors (`x + 3.0`), not a layer (`keras.layers.Add`)."""
    import keras

    return not isinstance(layer, keras.layers.Layer) and type(layer).__name__ in SUPPORTED_OPERATIONS


def _operations(model) -> list:
    """The layers and operations of a graph model, inputs included, in graph order."""
    import keras

    if isinstance(model, keras.Sequential):
        return list(model.layers)
    return list(model.operations)


def _wrapped_layers(layer) -> list:
    """The layers a wrapper holds: Bidirectional's two directions, TimeDistributed's layer."""
    name = type(layer).__name__
    if name == "Bidirectional":
        return [layer.forward_layer, layer.backward_layer]
    if name == "TimeDistributed":
        return [layer.layer]
    return []


def problems(model, *, prefix: str = "") -> list[str]:
    """Every reason `model` cannot be bridged, one line per layer (empty: it can).

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: 2 * x)])
        >>> problems(model)[0].split(":")[0]
        "layer 'lambda' (Lambda)"
    """
    import keras
    import tf_keras

    found: list[str] = []
    if isinstance(model, keras.Sequential) and not model.built:
        return [f"model {prefix + model.name!r} (Sequential): it is not built; give it a keras.Input first"]
    for layer in _operations(model):
        where = f"layer {prefix + layer.name!r} ({type(layer).__name__})"
        kind = _kind(layer)
        if kind == "table":
            found.append(f"{where}: keras.layers.{type(layer).__name__} is not in the bridge's table of layers")
            continue
        if kind == "custom":
            found.append(f"{where}: {hint(kind)}; {suggestion(layer)}")
            continue
        if kind is not None:
            found.append(f"{where}: {hint(kind)}")
            continue
        if registration_of(layer) is not None:
            continue  # made by its registration
        if is_graph_model(layer):
            found += problems(layer, prefix=f"{prefix}{layer.name}/")
            continue
        if not isinstance(layer, keras.layers.Layer):
            continue  # a supported operation
        for inner in [layer] + _wrapped_layers(layer):
            inner_kind = _kind(inner)
            if inner_kind is not None:
                found.append(f"{where}: it wraps {type(inner).__name__}, {hint(inner_kind)}")
                continue
            try:
                translate_config(tf_keras, type(inner).__name__, _config(inner))
            except BridgeProblem as problem:
                found.append(f"{where}: {problem}")
    return list(dict.fromkeys(found))


def _config(layer) -> dict:
    if type(layer).__name__ == "InputLayer":
        config = layer.get_config()
        config["batch_shape"] = tuple(layer.batch_shape)
        return config
    return layer.get_config()


def check(model) -> None:
    """Raises `UnsupportedModelError` naming every layer `model` cannot carry across."""
    found = problems(model)
    if found:
        lines = "\n".join(f"  - {line}" for line in found)
        raise UnsupportedModelError(
            f"Expected a Keras 3 Sequential or functional model of standard layers. Received: "
            f"model {model.name!r} with {len(found)} layer(s) the bridge cannot carry into tf_keras:\n{lines}"
        )


class _Translation:
    """Makes tf_keras counterparts of Keras 3 layers and remembers the pairs."""

    def __init__(self, for_tflite: bool, unroll: bool):
        import tf_keras

        self.tf_keras = tf_keras
        self.for_tflite = for_tflite
        self.unroll = unroll
        self.made: dict[int, Any] = {}
        self.pairs: list[tuple[keras.Layer, object]] = []  # (Keras 3 layer, its tf_keras counterpart)
        self.operation_calls: dict[str, int] = {}  # how often each Keras 3 operation was replayed

    def __call__(self, layer):
        key = id(layer)
        if key not in self.made:
            if is_graph_model(layer):
                self.made[key] = self.model(layer)
            elif _is_operation(layer):
                self.made[key] = self.operation(layer)
            else:
                self.made[key] = self.layer(layer)
        made = self.made[key]

        def call(*args, **kwargs):
            # Keras 3 records `training=False` on some calls while it builds a graph;
            # tf_keras must decide the training flag itself when the model runs.
            kwargs.pop("training", None)
            return made(*args, **kwargs)

        return call

    def operation(self, operation):
        import tensorflow as tf

        function = getattr(tf.math, SUPPORTED_OPERATIONS[type(operation).__name__])

        def call(*args, **kwargs):
            # tf_keras names the TFOpLambda layer from a session-wide counter (`tf.math.add_7`), so the
            # same model crossing twice got other names, and its TFLite file other bytes. It takes the
            # Keras 3 operation's name, unique in its model (Keras 3 checks), suffixed if called again.
            output = function(*args, **kwargs)
            history = getattr(output, "_keras_history", None)
            if history is not None:
                calls = self.operation_calls.get(operation.name, 0)
                self.operation_calls[operation.name] = calls + 1
                history.layer._name = operation.name if calls == 0 else f"{operation.name}_{calls}"
            return output

        return call

    def layer(self, layer):
        made = self._make(layer)
        self.pairs.append((layer, made))
        return made

    def _make(self, layer):
        registration = registration_of(layer)
        if registration is not None:
            return registration.make(self.tf_keras, _config(layer))
        cls, config = translate_config(
            self.tf_keras, type(layer).__name__, _config(layer), for_tflite=self.for_tflite, unroll=self.unroll
        )
        wrapped = SUPPORTED_LAYERS[type(layer).__name__].wrapped
        if "layer" in wrapped:
            inner = _wrapped_layers(layer)
            config["layer"] = self._make(inner[0])
            if "backward_layer" in wrapped:
                config["backward_layer"] = self._make(inner[1])
        if isinstance(cls, type):
            if wrapped or SUPPORTED_LAYERS[type(layer).__name__].construct:
                return cls(**config)
            return cls.from_config(config)  # type: ignore[attr-defined]
        return cls(self.tf_keras, config)

    def model(self, model):
        import keras

        K = self.tf_keras
        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                self(layer)
            layers = [self.made[id(layer)] for layer in model.layers]
            return K.Sequential([input_like(K, model.inputs[0]), *layers], name=model.name)
        inputs = keras.tree.map_structure(lambda tensor: input_like(K, tensor), model.input)
        outputs = model._run_through_graph(inputs, operation_fn=self)  # replays Keras 3's own order
        return K.Model(inputs=inputs, outputs=outputs, name=model.name)


def input_like(K, tensor):
    """A new input of Keras module `K` shaped, typed and named as a Keras 3 model's input `tensor` (named
    after its input layer, not the tensor: Keras names those `keras_tensor`)."""
    return K.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=tensor._keras_history[0].name)


def iter_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`(path, layer)` for every layer of a Keras 3 or tf_keras model, nested models opened.

    A layer inside a nested model is named by its path, `outer/inner`.

    Example:
        >>> import keras
        >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="tower")
        >>> outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(1, name="head")])
        >>> [path for path, _ in iter_layers(outer)]
        ['tower/dense', 'head']
    """
    import sys

    import keras

    tf_keras = sys.modules.get("tf_keras")
    models = (keras.Model,) if tf_keras is None else (keras.Model, tf_keras.Model)
    for layer in model.layers:
        if isinstance(layer, models):
            yield from iter_layers(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", layer


def weight_key(layer, variable) -> str:
    """A variable's name within its layer: `query/kernel` for `attn/query/kernel:0`."""
    name = (getattr(variable, "path", None) or variable.name).split(":")[0]
    parts = name.split("/")
    # Variables made outside the layer's name scope (TFMOT's strip) have no prefix.
    return "/".join(parts[parts.index(layer.name) + 1 :] if layer.name in parts else parts)


def reorder_by_name(source_layer, target_layer):
    """The source layer's values in the target layer's order, or None if they differ."""
    source = {weight_key(source_layer, v): np.asarray(v.numpy()) for v in source_layer.weights}
    keys = [weight_key(target_layer, v) for v in target_layer.weights]
    if len(source) != len(keys) or set(source) != set(keys):
        return None
    values = [source[key] for key in keys]
    if [v.shape for v in values] != [tuple(v.shape) for v in target_layer.weights]:
        return None
    return values


def copy_layer_weights(source, target, where: str) -> None:
    """Copies one layer's weights in order, shapes checked (by variable name if reordered)."""
    values = source.get_weights()
    expected = [tuple(w.shape) for w in target.weights]
    if [tuple(v.shape) for v in values] != expected:
        values = reorder_by_name(source, target)
        if values is None:
            raise UnsupportedModelError(
                f"Cannot copy weights of layer {where!r}: shapes {[v.shape for v in source.get_weights()]} "
                f"in the source, {expected} in the target."
            )
    target.set_weights(values)


def translate(model, *, for_tflite: bool = False, unroll: bool = False):
    """Returns the tf_keras counterpart of a Keras 3 graph model, weights copied.

    Call `check(model)` first to refuse unsupported models with a full list.
    """
    translation = _Translation(for_tflite, unroll)
    translation(model)
    target = translation.made[id(model)]
    for source, made in translation.pairs:
        copy_layer_weights(source, made, source.name)
    return target
