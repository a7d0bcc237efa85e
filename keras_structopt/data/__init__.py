"""Bundled, offline datasets and the table schema: digits, MovieLens and tensorflow-datasets read offline.

Example:
    >>> from keras_structopt.data import load_digits_split
    >>> load_digits_split("image", seed=0).input_shape
    (8, 8, 1)
"""

from keras_structopt.data._datasets import load_tfds
from keras_structopt.data._digits import DIGITS_VIEWS, Split, load_digits_split
from keras_structopt.data._movielens import load_movielens
from keras_structopt.data._tabular import TabularSchema

__all__ = ["DIGITS_VIEWS", "Split", "TabularSchema", "load_digits_split", "load_movielens", "load_tfds"]
