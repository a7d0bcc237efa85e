"""The table of Keras 3 layers the bridge carries into tf_keras, one entry per layer.

Each entry says how a Keras 3 layer's config becomes a tf_keras layer's: which keys
are renamed, which Keras-3-only keys may be dropped (and only while they hold the
value that means "feature unused"), and, for wrappers, how the wrapped layer is
translated. Weights are copied afterwards, in order, shapes checked (see `graph.py`).

Translation works on configs alone, so the whole graph can be checked before any
tf_keras object is made: every problem is collected and reported at once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

_ANY = object()

# Keras-3-only config keys, and the values with which dropping them changes nothing.
# A dropped key with any other value is a problem the bridge reports.
_DROPPABLE: dict[str, Any] = {
    "seed": _ANY,  # dropout/initialiser seeds: inference is unchanged
    "use_cudnn": _ANY,
    "flash_attention": _ANY,
    "lora_alpha": _ANY,  # meaningless without lora_rank
    "lora_rank": (None,),
    "quantization_config": (None,),
    "rms_scaling": (False,),
    "use_gate": (False,),
    "sliding_window": (None,),
    "optional": (False,),
    "input_axes": _ANY,  # initialiser fan axes: initialisers never run, weights are copied
    "output_axes": _ANY,
}

# Keras 3 operations (not layers) that the graph of a model may hold, with the
# TensorFlow function that computes the same on tf_keras tensors. Embedding(mask_zero=True)
# records its mask as a `not_equal` operation passed to the next layer as `mask=`.
SUPPORTED_OPERATIONS = {
    "NotEqual": "not_equal",
    "Equal": "equal",
    "LogicalAnd": "logical_and",
    "LogicalOr": "logical_or",
    # arithmetic written on symbolic tensors (`x + 3.0`, `a * b`), as MobileNetV3's hard sigmoid
    # and ConvNeXt's residual joins are
    "Add": "add",
    "Subtract": "subtract",
    "Multiply": "multiply",
    "Divide": "truediv",
    "TrueDivide": "truediv",
    "Negative": "negative",
    "Maximum": "maximum",
    "Minimum": "minimum",
}

# Serialised sub-objects whose class must exist in tf_keras for fine-tuning to mean the same.
_OBJECT_MODULES = {
    "regularizer": "regularizers",
    "constraint": "constraints",
    "initializer": "initializers",
}


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How one Keras 3 layer class becomes a tf_keras layer.

    Attributes:
        renames: Keras 3 config key -> tf_keras key.
        wrapped: Config keys holding a serialised inner layer (Bidirectional's `layer`).
        extra_keys: Keys tf_keras takes through `**kwargs` without naming them.
        construct: Build with `cls(**config)` rather than `cls.from_config(config)`
            (tf_keras's `from_config` expects keys only tf_keras writes).
        build: A custom constructor `(tf_keras, config) -> layer`, when the class is
            not simply `tf_keras.layers.<same name>`.
    """

    renames: dict[str, str] = dataclasses.field(default_factory=dict)
    wrapped: tuple[str, ...] = ()
    extra_keys: tuple[str, ...] = ()
    construct: bool = False
    build: Callable[[Any, dict], Any] | None = None


def _input_layer(tf_keras, config):
    if config.get("sparse") or config.get("ragged"):
        raise BridgeProblem("sparse and ragged inputs have no tf_keras serving path here")
    return tf_keras.layers.InputLayer(
        batch_input_shape=tuple(config["batch_shape"]), dtype=config.get("dtype"), name=config["name"]
    )


def _position_embedding(tf_keras, config):
    from keras_structopt.space._keras_builder import position_embedding_class

    return position_embedding_class(tf_keras)(name=config["name"], dtype=config.get("dtype"))


def _lookup_config(tf_keras, class_name: str, config: dict) -> dict:
    """A StringLookup / IntegerLookup config in tf_keras form; raises `BridgeProblem` if it differs."""
    config = dict(config)
    oov_method, salt = config.pop("oov_method", "floormod"), config.pop("salt", None)
    config.pop("vocabulary_size", None)  # derived from the vocabulary
    if int(config.get("num_oov_indices", 1)) > 1 and (oov_method != "floormod" or salt is not None):
        raise BridgeProblem(f"oov_method={oov_method!r} with salt={salt!r} spreads unknown values differently "
                            "in tf_keras; use num_oov_indices=1")
    if config.get("vocabulary") is None or isinstance(config.get("vocabulary"), str):
        raise BridgeProblem("a vocabulary learnt by adapt() or read from a file is not in the config; pass "
                            "vocabulary=[...] to the layer")
    config["dtype"] = _dtype(config.get("dtype"))
    if config.get("output_mode", "int") == "int":
        config["dtype"] = "int64"  # the indices' type (Keras 3 records its float policy, unused here)
    unknown = sorted(set(config) - _accepted_keys(getattr(tf_keras.layers, class_name)) - {"vocabulary_dtype",
                                                                                           "encoding"})
    if unknown:
        raise BridgeProblem(f"options {unknown} have no tf_keras counterpart")
    return config


def _lookup(class_name: str):
    """A builder for StringLookup / IntegerLookup (the config checked by `_lookup_config`)."""

    def build(tf_keras, config):
        return getattr(tf_keras.layers, class_name)(**config)

    return build


_PLAIN = LayerRule()

SUPPORTED_LAYERS: dict[str, LayerRule] = {
    **{
        name: _PLAIN
        for name in (
            # core and convolution
            "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
            "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Embedding",
            # normalisation and regularisation
            "BatchNormalization", "LayerNormalization", "UnitNormalization", "Dropout",
            "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
            "GaussianDropout", "AlphaDropout", "ActivityRegularization",
            # pooling
            "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
            "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
            "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
            # shapes
            "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "ZeroPadding2D",
            "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D",
            # merges
            "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
            # activations
            "Activation", "ReLU", "Softmax", "ELU", "PReLU",
            # preprocessing with weights or constants
            "Rescaling", "Normalization",
        )
    },
    **{name: LayerRule(extra_keys=("zero_output_for_mask",)) for name in ("SimpleRNN", "LSTM", "GRU")},
    "MultiHeadAttention": LayerRule(construct=True),
    "LeakyReLU": LayerRule(renames={"negative_slope": "alpha"}),
    "Bidirectional": LayerRule(wrapped=("layer", "backward_layer")),
    "TimeDistributed": LayerRule(wrapped=("layer",)),
    "InputLayer": LayerRule(build=_input_layer),
    # categorical lookups with their vocabulary in the config (the tabular family's, or a user's)
    "StringLookup": LayerRule(build=_lookup("StringLookup")),
    "IntegerLookup": LayerRule(build=_lookup("IntegerLookup")),
    # keras-structopt's own learned position table (transformer family)
    "PositionEmbedding": LayerRule(build=_position_embedding),
}

_HINTS = {
    "Lambda": (
        "a Lambda layer holds Python code that cannot be carried across; replace it with "
        "standard layers (Activation, Rescaling, Reshape, Add, ...)"
    ),
    "operation": (
        "an operation applied directly to symbolic tensors (x + y, keras.ops.*); use the "
        "matching layer instead (Add, Multiply, Activation, Reshape, ...)"
    ),
    "custom": "a custom layer class the bridge does not know",
    "subclassed_model": (
        "a subclassed model has no graph of layers to translate; rebuild it as a "
        "functional or Sequential model"
    ),
}


class BridgeProblem(Exception):
    """One reason a layer cannot be translated (collected, then reported together)."""


def hint(kind: str) -> str:
    """The advice the bridge's error gives for a kind of unsupported layer.

    Example:
        >>> hint("Lambda").startswith("a Lambda layer")
        True
    """
    return _HINTS[kind]


@functools.cache
def _accepted_keys(cls) -> frozenset[str]:
    """The constructor arguments a tf_keras class accepts (cached per class: reading signatures took
    about a fifth of carrying a 1,000-layer model across)."""
    keys: set[str] = {"name", "dtype", "trainable", "activity_regularizer", "dynamic", "autocast"}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        keys.update(n for n, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
        if klass.__name__ == "Layer":
            break
    keys.discard("self")
    return frozenset(keys)


def _dtype(value):
    if isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name")):
        return value["config"]["name"]
    return value


def _sub_object(tf_keras, key: str, value):
    """A serialised initializer / regularizer / constraint in tf_keras form (or None)."""
    kind = next((k for k in _OBJECT_MODULES if key.endswith(k)), None)
    if kind is None or not isinstance(value, dict):
        return value
    module = getattr(tf_keras, _OBJECT_MODULES[kind])
    cls = getattr(module, str(value.get("class_name")), None)
    if cls is None or not str(value.get("module", "keras")).startswith("keras"):
        if kind == "initializer":
            return None  # initialisers never run: weights are copied
        raise BridgeProblem(f"{key}={value.get('class_name')!r} has no tf_keras counterpart")
    config = dict(value.get("config") or {})
    accepted = _accepted_keys(cls)
    for name in list(config):
        if name not in accepted:
            if name in _DROPPABLE:
                config.pop(name)
            else:
                raise BridgeProblem(f"{key} option {name}={config[name]!r} has no tf_keras counterpart")
    return {"class_name": value["class_name"], "config": config}


def _activation(tf_keras, value):
    if isinstance(value, dict):
        module = str(value.get("module", ""))
        if module.startswith("keras.") and isinstance(value.get("config"), str):
            value = value["config"]
        else:
            raise BridgeProblem(f"activation {value.get('class_name')!r} is a custom function")
    if value is None:
        return None
    if not _same_activation(tf_keras, value):
        return keras3_activation(tf_keras, value)
    return value


_SAME: dict[str, bool] = {}


def _same_activation(tf_keras, name: str) -> bool:
    """Whether tf_keras's activation `name` computes what Keras 3's does (on a grid of values).

    They differ for some names: `hard_sigmoid` is `relu6(x + 3) / 6` in Keras 3 and
    `clip(0.2 x + 0.5, 0, 1)` in tf_keras; `hard_silu` and others exist in Keras 3 only.
    """
    if name not in _SAME:
        import keras
        import tensorflow as tf

        try:
            ours = keras.activations.get(name)
        except (ValueError, TypeError) as error:
            raise BridgeProblem(f"activation {name!r} is not a Keras activation") from error
        grid = tf.constant(np.linspace(-8.0, 8.0, 161, dtype="float32").reshape(7, 23))
        try:
            theirs = tf_keras.activations.get(name)
            same = bool(np.allclose(np.asarray(ours(grid)), np.asarray(theirs(grid)), atol=1e-6, rtol=1e-6))
        except (ValueError, TypeError, AttributeError):
            same = False
        _SAME[name] = same
    return _SAME[name]


_KERAS3_ACTIVATIONS: dict[str, Any] = {}


def keras3_activation(tf_keras, name: str):
    """A tf_keras activation function computing Keras 3's `name` (on TensorFlow tensors, so the
    SavedModel and TFLite files hold the same arithmetic), registered as `keras_structopt>keras3_<name>`.

    Example:
        >>> import tf_keras, numpy as np
        >>> function = keras3_activation(tf_keras, "hard_silu")
        >>> [round(float(v), 4) for v in function(np.array([-4.0, 0.0, 1.0], "float32"))]
        [-0.0, 0.0, 0.6667]
    """
    if name not in _KERAS3_ACTIVATIONS:
        import keras

        own = keras.activations.get(name)

        def function(x):
            return own(x)

        function.__name__ = f"keras3_{name}"
        _KERAS3_ACTIVATIONS[name] = tf_keras.saving.register_keras_serializable(package="keras_structopt")(function)
    return _KERAS3_ACTIVATIONS[name]


def translate_config(
    tf_keras, class_name: str, config: dict, *, for_tflite: bool = False, unroll: bool = False
) -> tuple[Any, dict]:
    """Translates one Keras 3 layer config; returns `(tf_keras class or builder, config)`.

    Raises:
        BridgeProblem: if the layer cannot be carried across exactly.

    Example:
        >>> import tf_keras
        >>> cls, config = translate_config(tf_keras, "LeakyReLU", {"name": "l", "negative_slope": 0.2})
        >>> cls.__name__, config["alpha"]
        ('LeakyReLU', 0.2)
    """
    rule = SUPPORTED_LAYERS.get(class_name)
    if rule is None:
        raise BridgeProblem("not in the bridge's table of layers")
    config = dict(config)
    if rule.build is not None:
        if class_name in ("StringLookup", "IntegerLookup"):
            return rule.build, _lookup_config(tf_keras, class_name, config)
        config["dtype"] = _dtype(config.get("dtype"))
        return rule.build, config
    cls = getattr(tf_keras.layers, class_name)
    accepted = _accepted_keys(cls) | set(rule.extra_keys)
    translated: dict[str, Any] = {}
    for key, value in config.items():
        key = rule.renames.get(key, key)
        if key in rule.wrapped:
            translated[key] = value  # translated by the caller, layer by layer
            continue
        if key not in accepted:
            allowed = _DROPPABLE.get(key)
            if allowed is _ANY or (allowed is not None and value in allowed):
                continue
            raise BridgeProblem(f"option {key}={value!r} has no tf_keras counterpart")
        if key == "dtype":
            value = _dtype(value)
        elif key in ("activation", "recurrent_activation"):
            value = _activation(tf_keras, value)
        else:
            value = _sub_object(tf_keras, key, value)
        translated[key] = value
    if unroll and "unroll" in translated:
        translated["unroll"] = True
    if for_tflite and class_name == "LSTM":
        # A non-zero recurrent dropout (inactive at inference) keeps the LSTM on the
        # generic loop when converted: TFLite's fused kernel drifts from Keras by ~0.09.
        translated["recurrent_dropout"] = max(float(translated.get("recurrent_dropout") or 0.0), 1e-6)
    return cls, translated
