"""Architecture specs, their costs, and rendering with `keras` or `tf_keras`."""

from keras_structopt.space.architecture import Architecture, Block, family_defaults
from keras_structopt.space.render import Counts, count, render

__all__ = ["Architecture", "Block", "Counts", "count", "family_defaults", "render"]
