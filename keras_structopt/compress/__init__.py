"""Making a Keras model smaller and faster: structural slimming in Keras 3, then TFMOT
pruning, clustering and quantization, each stage measured."""

from keras_structopt.compress.pipeline import CompressionReport, Stage, compress
from keras_structopt.compress.recipe import PRESETS, Preset, Recipe
from keras_structopt.compress.slim import SlimPlan, slim

__all__ = ["PRESETS", "CompressionReport", "Preset", "Recipe", "SlimPlan", "Stage", "compress", "slim"]
