"""Bundled, offline datasets and input adapters: digits, tensorflow-datasets, tf.data."""

from keras_structopt.data.datasets import dataset_arrays, is_dataset, load_tfds
from keras_structopt.data.digits import DIGITS_VIEWS, Split, load_digits_split

__all__ = ["DIGITS_VIEWS", "Split", "dataset_arrays", "is_dataset", "load_digits_split", "load_tfds"]
