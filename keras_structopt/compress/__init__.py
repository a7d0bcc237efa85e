"""Compression of a search winner with the TF Model Optimization Toolkit."""

from keras_structopt.compress.pipeline import CompressionReport, Stage, compress

__all__ = ["CompressionReport", "Stage", "compress"]
