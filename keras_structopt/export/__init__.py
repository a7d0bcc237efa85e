"""Deployment: TF Serving SavedModels and TFLite files, and running those files.

Example:
    >>> import keras_structopt as kso
    >>> sorted(kso.export.__all__)[:3]
    ['TFLiteRunner', 'export_saved_model', 'export_tflite']
"""

from keras_structopt.export._runtime import TFLiteRunner, tensor_types, tflite_predict, tflite_vocabularies
from keras_structopt.export._saved_model import export_saved_model
from keras_structopt.export._tflite import export_tflite, isolated_conversion, to_tflite_bytes
from keras_structopt.export._towers import towers

__all__ = [
    "TFLiteRunner",
    "export_saved_model",
    "export_tflite",
    "isolated_conversion",
    "tensor_types",
    "tflite_predict",
    "tflite_vocabularies",
    "to_tflite_bytes",
    "towers",
]
