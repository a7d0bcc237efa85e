"""The convolutional family: stages of plain, residual, inception or separable blocks, downsampled between."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import head, skippable
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _conv_unit(spec, b, x, filters, kernel_size, name, strides=1):
    """Convolution, batch norm, activation."""
    x = b.conv(x, filters, kernel_size, f"{name}_conv", strides=strides, use_bias=False)
    x = b.batch_norm(x, f"{name}_batch_norm", spec.option("batch_norm_momentum"))
    return b.activation(x, f"{name}_activation", spec.option("activation"))


def _conv_block(spec, b, x, block, prefix):
    kernel_size = spec.option("kernel_size")
    momentum = spec.option("batch_norm_momentum")
    activation = spec.option("activation")
    filters = block.units
    if block.kind == "plain":
        return _conv_unit(spec, b, x, filters, kernel_size, prefix)
    if block.kind == "separable":
        x = b.separable(x, filters, kernel_size, f"{prefix}_separable", use_bias=False)
        x = b.batch_norm(x, f"{prefix}_batch_norm", momentum)
        return b.activation(x, f"{prefix}_activation", activation)
    if block.kind == "residual":
        h = _conv_unit(spec, b, x, filters, kernel_size, f"{prefix}_a")
        h = b.conv(h, filters, kernel_size, f"{prefix}_b_conv", use_bias=False)
        h = b.batch_norm(h, f"{prefix}_b_batch_norm", momentum)
        shortcut = x
        if b.width(x) != filters:
            shortcut = b.conv(x, filters, 1, f"{prefix}_projection_conv", use_bias=False)
            shortcut = b.batch_norm(shortcut, f"{prefix}_projection_batch_norm", momentum)
        h = b.add([h, shortcut], f"{prefix}_add")
        return b.activation(h, f"{prefix}_activation", activation)
    # Inception: 1x1 | 1x1->kxk | 1x1->kxk->kxk | pool->1x1, concatenated to `filters`.
    quarter = filters // 4
    branches = [_conv_unit(spec, b, x, filters - 3 * quarter, 1, f"{prefix}_branch_1x1")]
    h = _conv_unit(spec, b, x, quarter, 1, f"{prefix}_branch_single_reduce")
    branches.append(_conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_single"))
    h = _conv_unit(spec, b, x, quarter, 1, f"{prefix}_branch_double_reduce")
    h = _conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_double_a")
    branches.append(_conv_unit(spec, b, h, quarter, kernel_size, f"{prefix}_branch_double_b"))
    h = b.pool(x, f"{prefix}_branch_pool", "max", pool_size=3, strides=1)
    branches.append(_conv_unit(spec, b, h, quarter, 1, f"{prefix}_branch_pool_projection"))
    return b.concat(branches, f"{prefix}_branch_concat")


def _conv_family(spec: Architecture, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    downsample = spec.option("downsample")
    stage_features = [x]
    previous_stage = spec.blocks[0].stage
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        if block.stage != previous_stage:
            if downsample != "none":
                kind = "max" if downsample == "max_pool" else "avg"
                x = b.pool(x, f"stage_{block.stage}_downsample", kind, pool_size=2, strides=2)
            stage_features = [x]
            previous_stage = block.stage
        h = x
        if spec.connection == "dense" and len(stage_features) > 1:
            h = b.concat(stage_features, f"{prefix}_concat")
        y = _conv_block(spec, b, h, block, prefix)
        x = skippable(b, x, y, prefix) if spec.connection == "plain" and len(stage_features) > 1 else y
        stage_features.append(x)
    if spec.connection == "dense" and len(stage_features) > 2:
        x = b.concat(stage_features, "features_concat")
    x = b.global_pool(x, "pooling", "max" if spec.option("pooling") == "max" else "avg")
    if spec.option("dropout"):
        x = b.dropout(x, "head_dropout", spec.option("dropout"))
    return b.model(inputs, head(spec, b, x), "structopt_conv")


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    if len(shape) != 3:
        raise _checks.error(
            f"Expected input_shape=(height, width, channels) for family='conv'. Received: input_shape={shape}."
        )
    _checks.positive_int("kernel_size", options["kernel_size"])
    for block in blocks:
        if block.kind == "inception" and block.units < 4:
            raise _checks.error(
                f"Expected units >= 4 for an inception block (four branches). Received: units={block.units}."
            )


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    prefix = f"block_{i}"
    return {
        "plain": [f"{prefix}_conv"],
        "separable": [f"{prefix}_separable"],
        "residual": [f"{prefix}_a_conv", f"{prefix}_b_conv"],
    }.get(block.kind, [])  # an inception block's branches have widths of their own


CONV = Family(
    name="conv",
    kinds=("plain", "residual", "inception", "separable"),
    connections=("plain", "dense"),
    options={
        "kernel_size": 3,
        "batch_norm_momentum": 0.9,
        "downsample": "max_pool",
        "pooling": "avg",
        "dropout": 0.0,
        "activation": "relu",
    },
    choices={
        "activation": ("relu", "gelu", "swish", "tanh", "elu"),
        "downsample": ("max_pool", "avg_pool", "none"),
        "pooling": ("avg", "max", "mean"),
    },
    build=_conv_family,
    block_layers=_block_layers,
    check=_check,
)
