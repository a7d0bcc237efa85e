"""Bundled, offline datasets and input adapters: digits, tables, tensorflow-datasets, tf.data."""

from keras_structopt.data._datasets import dataset_arrays, is_dataset, load_tfds
from keras_structopt.data._digits import DIGITS_VIEWS, Split, load_digits_split
from keras_structopt.data._movielens import load_movielens
from keras_structopt.data._tabular import TabularSchema, is_table

__all__ = [
    "DIGITS_VIEWS",
    "Split",
    "TabularSchema",
    "dataset_arrays",
    "is_dataset",
    "is_table",
    "load_digits_split",
    "load_movielens",
    "load_tfds",
]
