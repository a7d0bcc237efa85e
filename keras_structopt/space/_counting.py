"""Counting a network's parameters and multiply-accumulates by following shapes, building nothing.

The families render through a small builder interface; this builder implements it with
shapes only, so a spec's counts and its rendered model cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Counts:
    """Parameters and multiply-accumulates (MACs) of one example's forward pass.

    Example:
        >>> from keras_structopt.space import Architecture, Block, count
        >>> count(Architecture("dense", (4,), [Block("dense", 8)], outputs=3)).macs
        56
    """

    params: int
    macs: int


class _Symbol:
    """A shape-only stand-in for a tensor (batch axis left out)."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(int(d) for d in shape)


def _prod(values) -> int:
    return int(math.prod(values))


class _CountingBuilder:
    """Follows shapes and counts parameters and MACs, building nothing."""

    def __init__(self):
        self.params = 0
        self.macs = 0

    def width(self, x):
        return x.shape[-1]

    def input(self, shape, dtype, name):
        return _Symbol(shape)

    def dense(self, x, units, name, activation=None, use_bias=True, bias=None):
        fan_in = x.shape[-1]
        self.params += fan_in * units + (units if use_bias else 0)
        self.macs += _prod(x.shape[:-1]) * fan_in * units
        return _Symbol(x.shape[:-1] + (units,))

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True, dilation=1):
        # A sequence (length, channels) or an image (height, width, channels): "same" padding.
        spatial, channels = x.shape[:-1], x.shape[-1]
        out = tuple(math.ceil(d / strides) for d in spatial)
        taps = kernel_size ** len(spatial)
        self.params += taps * channels * filters + (filters if use_bias else 0)
        self.macs += _prod(out) * taps * channels * filters
        return _Symbol(out + (filters,))

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True, dilation=1):
        spatial, channels = x.shape[:-1], x.shape[-1]
        taps = kernel_size ** len(spatial)
        self.params += taps * channels + channels * filters
        self.params += filters if use_bias else 0
        self.macs += _prod(spatial) * (taps * channels + channels * filters)
        return _Symbol(spatial + (filters,))

    def batch_norm(self, x, name, momentum):
        self.params += 4 * x.shape[-1]  # gamma, beta, moving mean, moving variance
        return x

    def layer_norm(self, x, name):
        self.params += 2 * x.shape[-1]
        return x

    def dropout(self, x, name, rate):
        return x

    def activation(self, x, name, function):
        return x

    def add(self, xs, name):
        return _Symbol(xs[0].shape)

    def concat(self, xs, name):
        return _Symbol(xs[0].shape[:-1] + (sum(x.shape[-1] for x in xs),))

    def pool(self, x, name, kind, pool_size, strides):
        return _Symbol(tuple(math.ceil(d / strides) for d in x.shape[:-1]) + x.shape[-1:])

    def global_pool(self, x, name, kind):
        return _Symbol(x.shape[-1:])

    def flatten(self, x, name):
        return _Symbol((_prod(x.shape),))

    def reshape(self, x, shape, name):
        return _Symbol(shape)

    def embedding(self, x, name, vocabulary_size, units):
        self.params += vocabulary_size * units
        return _Symbol(x.shape + (units,))

    def lookup(self, x, name, vocabulary, kind):
        return x  # a table, no weights

    def normalization(self, x, name, mean, variance):
        return x  # constants from the schema, no weights

    def multiply(self, xs, name):
        return _Symbol(xs[0].shape)

    def dot(self, xs, name):
        self.macs += xs[0].shape[-1]
        return _Symbol((1,))

    def position_embedding(self, x, name):
        self.params += _prod(x.shape)
        return x

    def rnn(self, x, name, cell, units, return_sequences, bidirectional):
        timesteps, features = x.shape
        gates = 4 if cell == "lstm" else 3
        biases = units if cell == "lstm" else 2 * units  # GRU uses reset_after=True
        directions = 2 if bidirectional else 1
        self.params += directions * gates * (units * (features + units) + biases)
        self.macs += directions * timesteps * gates * units * (features + units)
        width = directions * units
        return _Symbol((timesteps, width) if return_sequences else (width,))

    def attention(self, x, name, num_heads, key_units, dropout):
        timesteps, units = x.shape
        inner = num_heads * key_units
        self.params += 3 * (units * inner + inner) + inner * units + units
        self.macs += 4 * timesteps * units * inner + 2 * timesteps * timesteps * inner
        return x

    def model(self, inputs, outputs, name):
        return Counts(params=self.params, macs=self.macs)
