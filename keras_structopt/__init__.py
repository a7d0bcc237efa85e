"""keras-structopt: search a Keras model's structure with Keras Tuner, then compress
and ship the winner with the TF Model Optimization Toolkit.

Example:
    >>> import keras_structopt as kso
    >>> kso.DenseHyperModel(input_shape=(64,), outputs=10).architecture().family
    'dense'
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names resolved on first use (below), so that `import keras_structopt` is quick
    from keras_structopt import search
    from keras_structopt.bridge import architecture_of, to_tf_keras
    from keras_structopt.compress import CompressionReport, Recipe, Stage, compress
    from keras_structopt.compress.slim import slim
    from keras_structopt.errors import ConfigurationError, SearchFailedError, UnsupportedModelError
    from keras_structopt.export import export_saved_model, export_tflite
    from keras_structopt.hypermodels import (
        ConvHyperModel,
        DenseHyperModel,
        RecurrentHyperModel,
        TransformerHyperModel,
    )
    from keras_structopt.space import Architecture, Block, count
    from keras_structopt.space.render import render

# Public name -> the module that defines it. TensorFlow, Keras and Keras Tuner load when one of
# these is first used, not at `import keras_structopt`: the command sets TensorFlow's logging
# up before that, and `keras-structopt --help` answers at once.
_LAZY = {
    "search": None,
    "ConfigurationError": "keras_structopt.errors",
    "SearchFailedError": "keras_structopt.errors",
    "UnsupportedModelError": "keras_structopt.errors",
    "architecture_of": "keras_structopt.bridge",
    "to_tf_keras": "keras_structopt.bridge",
    "CompressionReport": "keras_structopt.compress",
    "Recipe": "keras_structopt.compress",
    "Stage": "keras_structopt.compress",
    "compress": "keras_structopt.compress",
    "slim": "keras_structopt.compress",
    "export_saved_model": "keras_structopt.export",
    "export_tflite": "keras_structopt.export",
    "ConvHyperModel": "keras_structopt.hypermodels",
    "DenseHyperModel": "keras_structopt.hypermodels",
    "RecurrentHyperModel": "keras_structopt.hypermodels",
    "TransformerHyperModel": "keras_structopt.hypermodels",
    "Architecture": "keras_structopt.space",
    "Block": "keras_structopt.space",
    "count": "keras_structopt.space",
    "render": "keras_structopt.space",
}


class _Package(types.ModuleType):
    """The package module. Importing a subpackage makes Python set it as an attribute of its
    parent; where the package gives that name to a function (`compress`, `slim`, `render`,
    `count`), the function keeps the name, as an eager `from ... import` would have left it."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _LAZY.get(name) is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_structopt' has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(f"keras_structopt.{name}") if module is None else getattr(
        importlib.import_module(module), name
    )
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Block",
    "CompressionReport",
    "ConfigurationError",
    "SearchFailedError",
    "ConvHyperModel",
    "DenseHyperModel",
    "RecurrentHyperModel",
    "Recipe",
    "Stage",
    "TransformerHyperModel",
    "UnsupportedModelError",
    "__version__",
    "architecture_of",
    "compress",
    "count",
    "export_saved_model",
    "export_tflite",
    "render",
    "search",
    "slim",
    "to_tf_keras",
]
