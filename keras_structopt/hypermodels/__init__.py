"""Keras Tuner HyperModels whose hyperparameters are a network's structure."""

from keras_structopt.hypermodels.base import StructuralHyperModel, Tunable
from keras_structopt.hypermodels.dense import DenseHyperModel

__all__ = ["DenseHyperModel", "StructuralHyperModel", "Tunable"]
