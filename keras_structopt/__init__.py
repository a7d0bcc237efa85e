"""keras-structopt: search a Keras model's structure with Keras Tuner, then compress
and ship the winner with the TF Model Optimization Toolkit.

Example:
    >>> import keras_structopt as kso
    >>> kso.DenseHyperModel(input_shape=(64,), outputs=10).architecture().family
    'dense'
"""

from keras_structopt import search  # noqa: E402  (a subpackage, after the names it uses)
from keras_structopt.bridge import architecture_of, to_tf_keras
from keras_structopt.compress import CompressionReport, Recipe, Stage, compress, slim
from keras_structopt.errors import ConfigurationError, SearchFailedError, UnsupportedModelError
from keras_structopt.export import export_saved_model, export_tflite
from keras_structopt.hypermodels import (
    ConvHyperModel,
    DenseHyperModel,
    RecurrentHyperModel,
    TransformerHyperModel,
)
from keras_structopt.space import Architecture, Block, count, render

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
