"""keras-structopt: search a Keras model's structure with Keras Tuner, then compress
and ship the winner with the TF Model Optimization Toolkit.

Example:
    >>> import keras_structopt as kso
    >>> kso.DenseHyperModel(input_shape=(64,), outputs=10).architecture().family
    'dense'
"""

import os as _os
import sys as _sys


def _invoked_as_command() -> bool:
    """Whether this process is the `keras-structopt` command (or `python -m keras_structopt`)."""
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    original = list(getattr(_sys, "orig_argv", []))
    return script == "keras-structopt" or original[1:3] == ["-m", "keras_structopt"]


if _invoked_as_command() and "--verbose" not in _sys.argv[1:]:
    # Before TensorFlow loads, so that its import-time C++ log lines are dropped too.
    from keras_structopt._quiet import quiet_tensorflow as _quiet_tensorflow

    _quiet_tensorflow()

from keras_structopt import search  # noqa: E402  (a subpackage, after the names it uses)
from keras_structopt._suggest import Suggestion, suggest  # noqa: E402
from keras_structopt.bridge import architecture_of, to_tf_keras  # noqa: E402
from keras_structopt.compress import compress, slim  # noqa: E402
from keras_structopt.errors import ConfigurationError, SearchFailedError, UnsupportedModelError  # noqa: E402
from keras_structopt.export import export_saved_model, export_tflite  # noqa: E402
from keras_structopt.hypermodels import (  # noqa: E402
    Conv1DHyperModel,
    ConvHyperModel,
    DenseHyperModel,
    RecommenderHyperModel,
    RecurrentHyperModel,
    TabularHyperModel,
    TransformerHyperModel,
)
from keras_structopt.space import Architecture, Block, count, render  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Block",
    "ConfigurationError",
    "SearchFailedError",
    "Conv1DHyperModel",
    "ConvHyperModel",
    "DenseHyperModel",
    "RecommenderHyperModel",
    "RecurrentHyperModel",
    "Suggestion",
    "TabularHyperModel",
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
    "suggest",
    "to_tf_keras",
]
