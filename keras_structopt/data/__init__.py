"""Bundled, offline datasets and input adapters."""

from keras_structopt.data.digits import DIGITS_VIEWS, Split, load_digits_split

__all__ = ["DIGITS_VIEWS", "Split", "load_digits_split"]
