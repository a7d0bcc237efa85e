"""Custom layers the bridge carries: `register(...)`, and the registrations keras.applications needs.

The bridge translates standard Keras layers through its table (`_layers.py`). A layer class
of the user's own (or one of `keras.applications`' private helpers, LayerScale and
CustomScaleLayer) is carried across once it is registered: the registration says how the
layer is made again in tf_keras, how slimming treats its channels, and which of its weights
TFMOT may prune or cluster. Weights are copied in order, shapes checked, as for any layer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_structopt import _checks

SLIM_CHOICES = ("pin", "channelwise")


@dataclasses.dataclass(frozen=True)
class Registration:
    """How the bridge, slimming and TFMOT treat one custom Keras 3 layer class.

    Attributes:
        layer_class: The Keras 3 layer class.
        to_tf_keras: A tf_keras layer class (made with `from_config` from the Keras 3 layer's
            config) or a function `config -> tf_keras layer`.
        slim: `"pin"` (slimming keeps the channels it reads and writes) or `"channelwise"`
            (output channel i is computed from input channel i alone, and every weight's last
            axis is the channel axis: slimming cuts the weights with the channels).
        slim_width: The config key holding the channel count (updated when slimmed), if any.
        prune: Names of the tf_keras layer's weight attributes TFMOT may prune.
        cluster: Names of the tf_keras layer's weight attributes TFMOT may cluster.

    Example (keras.applications' ConvNeXt LayerScale, registered by the package):
        >>> import keras
        >>> from keras.src.applications.convnext import LayerScale
        >>> registration = registration_of(LayerScale(1e-6, 8))
        >>> registration.slim, registration.slim_width
        ('channelwise', 'projection_dim')
    """

    layer_class: type
    to_tf_keras: Any
    slim: str = "pin"
    slim_width: str | None = None
    prune: tuple[str, ...] = ()
    cluster: tuple[str, ...] = ()

    def make(self, tf_keras, config: dict):
        """The tf_keras counterpart of a layer with this Keras 3 `config`."""
        config = _tf_keras_config(config)
        if isinstance(self.to_tf_keras, type):
            cls = _with_tfmot_interfaces(self.to_tf_keras, self.prune, self.cluster)
            return cls.from_config(config)
        made = self.to_tf_keras(config)
        if not isinstance(made, tf_keras.layers.Layer):
            raise _checks.error(
                f"Expected to_tf_keras of {self.layer_class.__name__} to return a tf_keras layer. Received: "
                f"{type(made).__name__}."
            )
        if self.prune or self.cluster:
            made.__class__ = _with_tfmot_interfaces(type(made), self.prune, self.cluster)
        return made


_REGISTERED: dict[Any, Registration] = {}


def _key(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _tf_keras_config(config: dict) -> dict:
    """A Keras 3 layer config as tf_keras takes it: the dtype policy as its name."""
    from keras_structopt.bridge._layers import _dtype

    return {**config, "dtype": _dtype(config.get("dtype"))} if "dtype" in config else dict(config)


def register(layer_class: type | None = None, *, to_tf_keras: Any, slim: str = "pin",
             slim_width: str | None = None, prune: tuple[str, ...] | list[str] = (),
             cluster: tuple[str, ...] | list[str] = ()) -> Any:
    """Tells the bridge how to carry a custom Keras 3 layer class into tf_keras (and back).

    Call it once, before bridging, slimming or compressing a model that holds the layer; or
    use it as a class decorator. The class is also made Keras-serializable (under its
    module's name, unless it already is), so a model saved to `.keras` loads with it and
    bridges again.

    Args:
        layer_class: The Keras 3 layer class (omitted in the decorator form).
        to_tf_keras: A tf_keras layer class taking the same config (its `from_config` is
            called with the Keras 3 layer's `get_config()`), or a function
            `config -> tf_keras layer`. Its weights must be created in the Keras 3 layer's
            order and shapes: they are copied in order, and the copy is checked on a probe batch.
        slim: `"pin"` (the default: slimming keeps every channel the layer reads and writes)
            or `"channelwise"` (output channel i depends on input channel i only, and each
            weight's last axis is that channel: a per-channel scale, a per-channel bias).
        slim_width: For `"channelwise"`, the config key that holds the channel count, updated
            when slimming removes channels (None: the layer sizes itself from its input).
        prune: Weight attribute names of the tf_keras layer that TFMOT may prune (none by default).
        cluster: Weight attribute names of the tf_keras layer that TFMOT may cluster.

    Returns:
        The class (so that it serves as a decorator).

    Example:
        >>> import keras, tf_keras, numpy as np, keras_structopt as kso
        >>> class Scale(keras.layers.Layer):
        ...     def build(self, shape):
        ...         self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")
        ...     def call(self, x):
        ...         return x * self.gamma
        >>> class LegacyScale(tf_keras.layers.Layer):
        ...     def build(self, shape):
        ...         self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer="ones")
        ...     def call(self, x):
        ...         return x * self.gamma
        >>> _ = kso.bridge.register(Scale, to_tf_keras=LegacyScale, slim="channelwise")
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), Scale()])
        >>> legacy = kso.to_tf_keras(model)
        >>> type(legacy.layers[-1]).__name__
        'LegacyScale'
    """
    if layer_class is None:
        def decorate(cls: type) -> type:
            return register(cls, to_tf_keras=to_tf_keras, slim=slim, slim_width=slim_width, prune=prune,
                            cluster=cluster)

        return decorate
    import keras

    if not (isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)):
        raise _checks.error(f"Expected layer_class to be a keras.layers.Layer subclass. Received: {layer_class!r}.")
    if not (isinstance(to_tf_keras, type) or callable(to_tf_keras)):
        raise _checks.error(
            f"Expected to_tf_keras to be a tf_keras layer class or a function config -> tf_keras layer. "
            f"Received: {to_tf_keras!r}."
        )
    if isinstance(to_tf_keras, type):
        import tf_keras

        if not issubclass(to_tf_keras, tf_keras.layers.Layer):
            raise _checks.error(
                f"Expected to_tf_keras to be a tf_keras layer class. Received: {to_tf_keras.__module__}."
                f"{to_tf_keras.__qualname__} (a Keras 3 class? TFMOT takes tf_keras layers only)."
            )
    _checks.one_of("slim", slim, SLIM_CHOICES)
    if slim_width is not None and (slim != "channelwise" or not isinstance(slim_width, str)):
        raise _checks.error(
            f"Expected slim_width to be a config key (a str) of a channelwise layer. Received: "
            f"slim_width={slim_width!r} with slim={slim!r}."
        )
    names = {}
    for argument, value in (("prune", prune), ("cluster", cluster)):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise _checks.error(f"Expected {argument} to be a list of weight attribute names. Received: {value!r}.")
        names[argument] = tuple(value)
    if keras.saving.get_registered_object(keras.saving.get_registered_name(layer_class)) is not layer_class:
        keras.saving.register_keras_serializable(package=layer_class.__module__.split(".")[0] or "custom")(
            layer_class)
    _REGISTERED[_key(layer_class)] = Registration(layer_class, to_tf_keras, slim, slim_width, names["prune"],
                                                  names["cluster"])
    return layer_class


def registration_of(layer) -> Registration | None:
    """The registration of a layer's class (its own, or one `keras.applications` needs), or None."""
    _builtin()
    return _REGISTERED.get(_key(type(layer)))


def unregister(layer_class: type) -> None:
    """Forgets a registration (tests use it to show the refusal without one)."""
    _REGISTERED.pop(_key(layer_class), None)


def suggestion(layer) -> str:
    """The call that would carry an unregistered custom layer across."""
    cls = type(layer)
    return (f"register it: kso.bridge.register({cls.__name__}, to_tf_keras=<a tf_keras layer class taking "
            f"{cls.__name__}'s config>, slim='pin'), or decorate class {cls.__name__} with "
            f"@kso.bridge.register(to_tf_keras=...)")


# -- what keras.applications needs -------------------------------------------------------------

_BUILTIN_DONE = False
_TFMOT_CLASSES: dict[tuple, type] = {}


def _with_tfmot_interfaces(cls: type, prune: tuple[str, ...], cluster: tuple[str, ...]) -> Any:
    """`cls`, or a subclass telling TFMOT which weights it may prune and cluster."""
    if not prune and not cluster:
        return cls
    key = (cls, prune, cluster)
    if key not in _TFMOT_CLASSES:
        from keras_structopt.bridge._tfmot import tfmot

        toolkit = tfmot()
        bases: list[type] = [cls]
        original_build = cls.build  # type: ignore[attr-defined]

        def build(self, input_shape):
            original_build(self, input_shape)
            self.built = True  # TFMOT's strip calls build() directly; a build() without super().build() left
            # the layer unbuilt, and its first call built it again with fresh weights

        body: dict[str, Any] = {"build": build}
        if prune:
            bases.append(toolkit.sparsity.keras.PrunableLayer)
            body["get_prunable_weights"] = lambda self: [getattr(self, name) for name in prune]
        if cluster:
            bases.append(toolkit.clustering.keras.ClusterableLayer)
            body["get_clusterable_weights"] = lambda self: [(name, getattr(self, name)) for name in cluster]
        _TFMOT_CLASSES[key] = type(cls.__name__, tuple(bases), body)
    return _TFMOT_CLASSES[key]


def _builtin() -> None:
    """Registers keras.applications' two custom layers (ConvNeXt's LayerScale, Inception-ResNet's
    CustomScaleLayer), with tf_keras counterparts of the same arithmetic."""
    global _BUILTIN_DONE
    if _BUILTIN_DONE:
        return
    _BUILTIN_DONE = True
    try:
        from keras.src.applications.convnext import LayerScale
        from keras.src.applications.inception_resnet_v2 import CustomScaleLayer
    except ImportError:  # pragma: no cover - another Keras layout
        return
    legacy_scale, legacy_custom = _legacy_classes()
    _REGISTERED[_key(LayerScale)] = Registration(LayerScale, legacy_scale, "channelwise", "projection_dim",
                                                 (), ())
    _REGISTERED[_key(CustomScaleLayer)] = Registration(CustomScaleLayer, legacy_custom, "pin", None, (), ())


_LEGACY: tuple[type, type] | None = None


def _legacy_classes() -> tuple[type, type]:
    global _LEGACY
    if _LEGACY is None:
        import tf_keras

        @tf_keras.saving.register_keras_serializable(package="keras_structopt")
        class LayerScale(tf_keras.layers.Layer):
            """ConvNeXt's per-channel scale, `x * gamma`, in tf_keras."""

            def __init__(self, init_values: float, projection_dim: int, **kwargs):
                super().__init__(**kwargs)
                self.init_values, self.projection_dim = init_values, int(projection_dim)

            def build(self, input_shape):
                self.gamma = self.add_weight(name="gamma", shape=(self.projection_dim,),
                                             initializer=tf_keras.initializers.Constant(self.init_values))
                super().build(input_shape)

            def call(self, x):
                return x * self.gamma

            def get_config(self):
                return {**super().get_config(), "init_values": self.init_values,
                        "projection_dim": self.projection_dim}

        @tf_keras.saving.register_keras_serializable(package="keras_structopt")
        class CustomScaleLayer(tf_keras.layers.Layer):
            """Inception-ResNet's residual join, `inputs[0] + inputs[1] * scale`, in tf_keras."""

            def __init__(self, scale: float, **kwargs):
                super().__init__(**kwargs)
                self.scale = float(scale)

            def call(self, inputs):
                return inputs[0] + inputs[1] * self.scale

            def get_config(self):
                return {**super().get_config(), "scale": self.scale}

        _LEGACY = (LayerScale, CustomScaleLayer)
    return _LEGACY
