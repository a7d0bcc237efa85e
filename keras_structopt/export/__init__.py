"""Deployment: TF Serving SavedModels, TFLite files and reports."""

from keras_structopt.export.saved_model import export_saved_model
from keras_structopt.export.tflite import export_tflite
from keras_structopt.export.towers import towers

__all__ = ["export_saved_model", "export_tflite", "towers"]
