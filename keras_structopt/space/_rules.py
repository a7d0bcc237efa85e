"""Design rules for convolutional networks: the receptive field covers the input, the last map is small.

A convolutional network whose last convolution sees only part of the input, or whose
last feature map is still large when it is pooled away, rarely learns what a well-made
one does: on 28x28 digits, one-stage networks at full resolution ended with a validation
loss 8-16x the best trial's. These rules follow the family's own rendering through a
builder that tracks, for each tensor, how far its receptive field reaches and how far
apart neighbouring positions are in the input (the "jump"), building nothing.

Receptive field arithmetic: a convolution of kernel `k`, dilation `d` adds
`(k - 1) * d * jump`; a pooling of size `p` and stride `s` adds `(p - 1) * jump` and
multiplies the jump by `s`; merges take the widest of their inputs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture

# The largest last feature map (per side, or steps for a signal) the rules allow.
LAST_MAP = 8


class _Field:
    """A shape-only tensor stand-in with its receptive field and jump (in input positions)."""

    __slots__ = ("shape", "field", "jump")

    def __init__(self, shape, field=1, jump=1):
        self.shape = tuple(int(d) for d in shape)
        self.field = field
        self.jump = jump


def _widest(xs) -> tuple[int, int]:
    return max(x.field for x in xs), max(x.jump for x in xs)


class _FieldBuilder:
    """Follows a family's rendering and records the receptive field where the spatial axes end."""

    def __init__(self):
        self.convolutions = 0
        self.spatial: list[tuple[tuple[int, ...], int]] = []  # (last map, field) where space was pooled away

    def width(self, x):
        return x.shape[-1]

    def input(self, shape, dtype, name):
        return _Field(shape)

    def _same(self, x, shape=None):
        return _Field(x.shape if shape is None else shape, x.field, x.jump)

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True, dilation=1):
        self.convolutions += 1
        spatial = tuple(math.ceil(d / strides) for d in x.shape[:-1])
        return _Field(spatial + (filters,), x.field + (kernel_size - 1) * dilation * x.jump, x.jump * strides)

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True, dilation=1):
        return self.conv(x, filters, kernel_size, name, dilation=dilation)

    def pool(self, x, name, kind, pool_size, strides):
        spatial = tuple(math.ceil(d / strides) for d in x.shape[:-1])
        return _Field(spatial + x.shape[-1:], x.field + (pool_size - 1) * x.jump, x.jump * strides)

    def _collapse(self, x, shape):
        if len(x.shape) >= 2:
            self.spatial.append((x.shape[:-1], x.field))
        return _Field(shape, x.field, x.jump)

    def global_pool(self, x, name, kind):
        return self._collapse(x, x.shape[-1:])

    def flatten(self, x, name):
        return self._collapse(x, (math.prod(x.shape),))

    def reshape(self, x, shape, name):
        return _Field(shape, x.field, x.jump)

    def add(self, xs, name):
        return _Field(xs[0].shape, *_widest(xs))

    multiply = add

    def concat(self, xs, name):
        return _Field(xs[0].shape[:-1] + (sum(x.shape[-1] for x in xs),), *_widest(xs))

    def dense(self, x, units, name, activation=None, use_bias=True, bias=None):
        return self._same(x, x.shape[:-1] + (units,))

    def batch_norm(self, x, name, momentum):
        return x

    def layer_norm(self, x, name):
        return x

    def dropout(self, x, name, rate):
        return x

    def activation(self, x, name, function):
        return x

    def model(self, inputs, outputs, name):
        return self


@dataclasses.dataclass(frozen=True)
class Field:
    """How far a convolutional network's last feature map sees, and how large it is.

    Attributes:
        extent: The input's longest spatial side (steps of a signal, pixels of an image).
        field: The receptive field of the last feature map, in input positions.
        last_map: The last feature map's spatial shape, where it is pooled or flattened away.

    Example:
        >>> from keras_structopt.space import Architecture, Block, receptive_field
        >>> spec = Architecture("conv", (28, 28, 1), [Block("plain", 16, 0), Block("plain", 32, 1)])
        >>> receptive_field(spec)
        Field(extent=28, field=8, last_map=(14, 14))
    """

    extent: int
    field: int
    last_map: tuple[int, ...]

    def violation(self, last_map: int = LAST_MAP) -> str | None:
        """Why the network breaks the design rules, or None when it keeps them.

        Example:
            >>> Field(extent=28, field=8, last_map=(14, 14)).violation()
            'its receptive field (8) does not cover the input (28), and its last feature map (14x14) is larger than 8'
        """
        reasons = []
        if self.field < self.extent:
            reasons.append(f"its receptive field ({self.field}) does not cover the input ({self.extent})")
        if max(self.last_map, default=0) > last_map:
            side = "x".join(str(d) for d in self.last_map)
            reasons.append(f"its last feature map ({side}) is larger than {last_map}")
        return ", and ".join(reasons) or None


def receptive_field(spec: Architecture) -> Field | None:
    """The receptive field and last feature map of a convolutional `spec`; None for a network without
    convolutions over space or time (dense, recurrent, transformer, tables).

    Example:
        >>> from keras_structopt.space import Architecture, Block, receptive_field
        >>> spec = Architecture("conv1d", (40,), [Block("plain", 16, s) for s in range(4)])
        >>> receptive_field(spec).violation() is None
        True
    """
    from keras_structopt.space._family import family

    builder = _FieldBuilder()
    try:
        family(spec.family).build(spec, builder)
    except AttributeError:  # an operation the rules do not follow (recurrent, attention, tables)
        return None
    if not builder.convolutions or not builder.spatial:
        return None
    last_map, field = builder.spatial[-1]
    spatial = [d for d in spec.input_shape[:-1]] if len(spec.input_shape) >= 2 else list(spec.input_shape)
    return Field(extent=max(spatial), field=field, last_map=tuple(last_map))


def stage_field(extent: int, stages: int, kernel_size: int, factor: int) -> int:
    """The receptive field of the smallest network of `stages` stages: one convolution of
    `kernel_size` per stage, pooled by `factor` between stages.

    Example:
        >>> stage_field(28, 4, 3, 2)
        38
    """
    field, jump = 1, 1
    for stage in range(stages):
        if stage:
            field += (factor - 1) * jump
            jump *= factor
        field += (kernel_size - 1) * jump
    return field


def stage_range(extent: int, kernel_size: int, factor: int = 2, last_map: int = LAST_MAP,
                extra: int = 1) -> tuple[int, int]:
    """The numbers of stages a convolutional space holds for an input `extent` positions long.

    The fewest stages are the fewest with which even the smallest network (one convolution
    of the smallest kernel per stage) covers the input and ends on a map of at most
    `last_map`; the most are `extra` more, as long as the last map stays at least 2.

    Example:
        >>> [stage_range(extent, 3) for extent in (8, 28, 32, 224)]
        [(2, 3), (4, 5), (4, 5), (7, 8)]
        >>> stage_range(40, 5), stage_range(16_000, 5, factor=4)
        ((4, 5), (7, 7))
    """
    fewest = 1
    while (stage_field(extent, fewest, kernel_size, factor) < extent
           or math.ceil(extent / factor ** (fewest - 1)) > last_map):
        fewest += 1
    most = fewest
    while most < fewest + extra and math.ceil(extent / factor**most) >= 2:
        most += 1
    return fewest, most


def pool_factor(extent: int, kernel_size: int, most_stages: int = 6) -> int:
    """The downsampling between stages: 2, or 4 where halving would need more than `most_stages` stages.

    Example:
        >>> pool_factor(40, 5), pool_factor(16_000, 5)
        (2, 4)
    """
    return 2 if stage_range(extent, kernel_size, 2, extra=0)[0] <= most_stages else 4
