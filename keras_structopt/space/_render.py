"""Render an `Architecture` with `keras` or `tf_keras`.

Each family is written once, against a small builder interface (its module's `build`).
`render` runs it with a builder that makes real layers of the Keras module it is given;
`count` runs the same code with a builder that only follows shapes. So the spec's counts
and the rendered model cannot drift apart, and the two Keras renderings have the same
layer names, in the same order.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from keras_structopt.space._architecture import Architecture
from keras_structopt.space._family import family
from keras_structopt.space._keras_builder import _KerasBuilder


def render(spec: Architecture, K: ModuleType, *, unroll: bool = False, for_tflite: bool = False) -> Any:
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
        >>> from keras_structopt.space import Architecture, Block
        >>> spec = Architecture("dense", (64,), [Block("dense", 32)], outputs=10)
        >>> model = render(spec, keras)
        >>> model.count_params() == spec.count_params()
        True
    """
    if not isinstance(spec, Architecture):
        raise TypeError(f"Expected spec to be an Architecture. Received: spec={spec!r}.")
    return family(spec.family).build(spec, _KerasBuilder(K, spec, unroll=unroll, for_tflite=for_tflite))
