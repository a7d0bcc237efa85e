"""The dense family: a multilayer perceptron, its blocks joined plain, residual or dense."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt.space._common import dense_trunk, head
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _dense_family(spec: Architecture, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    if len(spec.input_shape) > 1:
        x = b.flatten(x, "flatten")
    if spec.option("input_normalization") is not None:
        mean, variance = spec.option("input_normalization")
        x = b.normalization(x, "input_normalization", mean, variance)
    x = dense_trunk(spec, b, x, spec.connection)
    return b.model(inputs, head(spec, b, x), "structopt_dense")


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    return [f"block_{i}_dense"]


DENSE = Family(
    name="dense",
    kinds=("dense",),
    connections=("plain", "residual", "dense"),
    options={
        "activation": "relu",
        "dropout": 0.0,
        "batch_norm": False,
        "batch_norm_momentum": 0.9,
        "input_normalization": None,
        "head_bias": None,
    },
    choices={"activation": ("relu", "gelu", "swish", "tanh", "elu")},
    build=_dense_family,
    block_layers=_block_layers,
)
