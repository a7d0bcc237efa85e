"""Keras Tuner HyperModels whose hyperparameters are a network's structure."""

from keras_structopt.hypermodels.base import StructuralHyperModel, Tunable
from keras_structopt.hypermodels.conv import ConvHyperModel
from keras_structopt.hypermodels.dense import DenseHyperModel
from keras_structopt.hypermodels.recommender import RecommenderHyperModel
from keras_structopt.hypermodels.recurrent import RecurrentHyperModel
from keras_structopt.hypermodels.tabular import TabularHyperModel
from keras_structopt.hypermodels.transformer import TransformerHyperModel

__all__ = [
    "ConvHyperModel",
    "DenseHyperModel",
    "RecommenderHyperModel",
    "RecurrentHyperModel",
    "StructuralHyperModel",
    "TabularHyperModel",
    "TransformerHyperModel",
    "Tunable",
]
