"""Making a Keras model smaller and faster: structural slimming in Keras 3, then TFMOT pruning,
clustering and quantization, each stage an object, each measured.

Example:
    >>> from keras_structopt.compress import PRESETS
    >>> PRESETS["cpu"].describe()
    'slim 0.5, sparsity 0.8 (polynomial), 16 clusters, dynamic (per-tensor scales)'
"""

from keras_structopt.compress._fine_tune import FineTuning
from keras_structopt.compress._pipeline import compress
from keras_structopt.compress._report import CompressionReport, CompressionResult, StageReport
from keras_structopt.compress._slim import SlimPlan, slim
from keras_structopt.compress._stages import (
    PRESETS,
    Cluster,
    ConstantSparsity,
    PolynomialDecay,
    Prune,
    Quantize,
    Recipe,
    Slim,
)
from keras_structopt.compress._treatment import LayerTreatment

__all__ = [
    "PRESETS",
    "Cluster",
    "CompressionReport",
    "CompressionResult",
    "ConstantSparsity",
    "FineTuning",
    "LayerTreatment",
    "PolynomialDecay",
    "Prune",
    "Quantize",
    "Recipe",
    "Slim",
    "SlimPlan",
    "StageReport",
    "compress",
    "slim",
]
