"""Keras Tuner HyperModels whose hyperparameters are a network's structure."""

from keras_structopt.hypermodels._base import StructuralHyperModel
from keras_structopt.hypermodels._conv import ConvHyperModel
from keras_structopt.hypermodels._conv1d import Conv1DHyperModel
from keras_structopt.hypermodels._dense import DenseHyperModel
from keras_structopt.hypermodels._recommender import RecommenderHyperModel
from keras_structopt.hypermodels._recurrent import RecurrentHyperModel
from keras_structopt.hypermodels._tabular import TabularHyperModel
from keras_structopt.hypermodels._transformer import TransformerHyperModel
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block

_BUILT_IN = {cls.__name__: cls for cls in (
    Conv1DHyperModel, ConvHyperModel, DenseHyperModel, RecommenderHyperModel, RecurrentHyperModel, TabularHyperModel,
    TransformerHyperModel,
)}


def hypermodel_class(name: str) -> type[StructuralHyperModel] | None:
    """The keras-structopt HyperModel class called `name`, or None.

    What a project file (or a trial process) names, rebuilt without importing anything
    the name does not say.

    Example:
        >>> hypermodel_class("DenseHyperModel").__name__, hypermodel_class("os")
        ('DenseHyperModel', None)
    """
    return _BUILT_IN.get(name)


__all__ = [
    "Conv1DHyperModel",
    "ConvHyperModel",
    "DenseHyperModel",
    "RecommenderHyperModel",
    "RecurrentHyperModel",
    "StructuralHyperModel",
    "TabularHyperModel",
    "TransformerHyperModel",
    "Tunable",
    "declare_per_block",
    "hypermodel_class",
]
