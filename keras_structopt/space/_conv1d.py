"""The 1-D convolutional family: stages of Conv1D blocks over a signal, downsampled between stages.

Input: a signal `(steps, channels)`, or an ordered vector `(d,)` (its values in an order
where neighbours belong together: a spectrum, a time series, MNIST-1D), which the model
reshapes to `(d, 1)`. Blocks are `"plain"` (conv, batch norm, activation), `"residual"`
(two convolutions and a shortcut, projected where the width changes), `"separable"`
(depthwise-separable convolution) or `"dilated"` (a residual block whose convolutions
dilate by 2, 4, 8, ... along the stage, TCN-style: the receptive field doubles per block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import head, skippable
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _unit(spec, b, x, filters, name, dilation=1, activate=True):
    x = b.conv(x, filters, spec.option("kernel_size"), f"{name}_conv", use_bias=False, dilation=dilation)
    x = b.batch_norm(x, f"{name}_batch_norm", spec.option("batch_norm_momentum"))
    return b.activation(x, f"{name}_activation", spec.option("activation")) if activate else x


def _block(spec, b, x, block, prefix, position):
    filters = block.units
    if block.kind == "plain":
        return _unit(spec, b, x, filters, prefix)
    if block.kind == "separable":
        x = b.separable(x, filters, spec.option("kernel_size"), f"{prefix}_separable", use_bias=False)
        x = b.batch_norm(x, f"{prefix}_batch_norm", spec.option("batch_norm_momentum"))
        return b.activation(x, f"{prefix}_activation", spec.option("activation"))
    # residual, or dilated: the same block with convolutions dilated 2**position within the stage
    dilation = 2**position if block.kind == "dilated" else 1
    h = _unit(spec, b, x, filters, f"{prefix}_a", dilation)
    h = _unit(spec, b, h, filters, f"{prefix}_b", dilation, activate=False)
    shortcut = x
    if b.width(x) != filters:
        shortcut = b.conv(x, filters, 1, f"{prefix}_projection_conv", use_bias=False)
        shortcut = b.batch_norm(shortcut, f"{prefix}_projection_batch_norm", spec.option("batch_norm_momentum"))
    return b.activation(b.add([h, shortcut], f"{prefix}_add"), f"{prefix}_activation", spec.option("activation"))


def _build(spec: Architecture, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    if len(spec.input_shape) == 1:  # an ordered vector: one channel
        x = b.reshape(x, (spec.input_shape[0], 1), "signal")
    downsample = spec.option("downsample")
    factor = spec.option("pool_size")
    previous, position = spec.blocks[0].stage, 0
    for i, block in enumerate(spec.blocks):
        if block.stage != previous:
            if downsample != "none":
                kind = "max" if downsample == "max_pool" else "avg"
                x = b.pool(x, f"stage_{block.stage}_downsample", kind, pool_size=factor, strides=factor)
            previous, position = block.stage, 0
        y = _block(spec, b, x, block, f"block_{i}", position)
        x = skippable(b, x, y, f"block_{i}") if position else y
        position += 1
    if spec.option("pooling") == "flatten":
        x = b.flatten(x, "flatten")
    else:
        x = b.global_pool(x, "pooling", spec.option("pooling"))
    if spec.option("dropout"):
        x = b.dropout(x, "head_dropout", spec.option("dropout"))
    return b.model(inputs, head(spec, b, x), "structopt_conv1d")


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    if len(shape) not in (1, 2):
        raise _checks.error(
            "Expected input_shape=(steps, channels) or an ordered vector (d,) for family='conv1d'. "
            f"Received: input_shape={shape}."
        )
    _checks.positive_int("kernel_size", options["kernel_size"])
    _checks.positive_int("pool_size", options["pool_size"])
    stages = [block.stage for block in blocks]
    if stages != sorted(stages):
        raise _checks.error(f"Expected the blocks' stages in order for family='conv1d'. Received: stages={stages}.")


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    prefix = f"block_{i}"
    if block.kind in ("residual", "dilated"):
        return [f"{prefix}_a_conv", f"{prefix}_b_conv"]
    return [f"{prefix}_conv" if block.kind == "plain" else f"{prefix}_separable"]


CONV1D = Family(
    name="conv1d",
    kinds=("plain", "residual", "separable", "dilated"),
    connections=("plain",),
    options={
        "kernel_size": 5,
        "pool_size": 2,
        "batch_norm_momentum": 0.9,
        "downsample": "max_pool",
        "pooling": "avg",
        "dropout": 0.0,
        "activation": "relu",
    },
    choices={
        "activation": ("relu", "gelu", "swish", "tanh", "elu"),
        "downsample": ("max_pool", "avg_pool", "none"),
        "pooling": ("avg", "max", "flatten"),
    },
    build=_build,
    block_layers=_block_layers,
    check=_check,
)
