"""Architecture specs, their costs, their families, and rendering with `keras` or `tf_keras`.

Example:
    >>> from keras_structopt.space import Architecture, Block, count
    >>> count(Architecture("dense", (4,), [Block("dense", 8)], outputs=3)).params
    67
"""

import keras as _keras

from keras_structopt.space import _conv, _conv1d, _dense, _recommender, _recurrent, _tabular, _transformer
from keras_structopt.space._architecture import Architecture, Block, count, family_defaults
from keras_structopt.space._counting import Counts
from keras_structopt.space._family import Family, family, family_names, register_family
from keras_structopt.space._keras_builder import position_embedding_class, structured_model_class
from keras_structopt.space._render import render
from keras_structopt.space._rules import Field, receptive_field

# The built-in families, each one module (its rules, its rendering, its slimming map).
register_family(_dense.DENSE)
register_family(_conv.CONV)
register_family(_conv1d.CONV1D)
register_family(_recurrent.RECURRENT)
register_family(_transformer.TRANSFORMER)
register_family(_tabular.TABULAR)
register_family(_recommender.RECOMMENDER)

# Register the Keras 3 classes now, not at first render: a saved winner must load in a
# fresh process that has only imported keras_structopt.
position_embedding_class(_keras)
structured_model_class()

__all__ = [
    "Architecture",
    "Block",
    "Counts",
    "Family",
    "Field",
    "count",
    "family",
    "family_defaults",
    "family_names",
    "receptive_field",
    "register_family",
    "render",
]
