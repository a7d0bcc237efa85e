"""A weight-sharing supernet over a HyperModel's space: trained once, every sub-network read off it.

The supernet is not a separate model written per family. It runs the family's own rendering
(the `build` function of its module) with a builder whose layers take their weights from one
shared store, sliced to the sub-network's widths. So every sub-network is exactly the network
the family renders for its `Architecture`, with the same layer names, and its weights copy
into that rendering without translation.

Sharing. A weight belongs to a layer *position*, not to a layer name: block `i` of a spec is
stage `s`, position `p` in its stage, of kind `k`, so it shares with the block at the same
`(s, p, k)` of every other sub-network (depth is elastic by dropping the last blocks of a
stage; in training, a stage shallower than the space's deepest runs through the deepest's
traced graph, its missing blocks passing their input on). A layer's output channels are its
first `units` channels of the shared kernel (elastic width); a kernel wider than asked is
cropped around its centre (elastic kernel size). A layer reads its input per *segment*: the
channels a concatenation brings in from different layers have kernel rows of their own, kept
per (layer, source), so dense connections and inception branches share exactly. Weights grow
when a sub-network asks for more than any before it; the new part starts as a fresh
initialisation.

Training uses the sandwich rule (Yu et al., "BigNAS", 2020): the largest, the smallest and
random sub-networks of one kind each step (the kind drawn as often as the space holds it),
their gradients summed into one update. In-place distillation
(the others learning from the largest's predictions, not the labels) is an option,
`distill=True`: measured on MNIST-1D (a 1-D conv space under a 10k-parameter budget, 30
epochs), sub-networks outside the trained shapes read 0.10-0.47 validation accuracy with it
and 0.46-0.64 without, so it is off by default. Batch normalisation uses the batch's statistics
while training; a sub-network read off the supernet has its statistics recalibrated on a few
training batches (Cai et al., "Once-for-All", 2020).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_structopt._quiet import SUPERNET_NOISE, library_noise

_BLOCK = re.compile(r"^block_(\d+)_(.*)$")
EPSILON = 1e-3  # BatchNormalization's epsilon, as Keras has it
# Options a traced training step does not bake in. The dropout rate is an input of the step (rate 0
# passes its input on exactly), so networks that differ only in it share one graph; a traced graph
# renders its dropout layers at this stand-in rate's place. Batch normalisation trains on the
# batch's statistics, so its momentum never enters a step.
_ELASTIC_OPTIONS = {"dropout": 0.5, "batch_norm_momentum": 0.99}
# Activations that map zero to zero (a masked tensor's zeroed channels stay zero through them).
_ZERO_AT_ZERO = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "hard_swish",
                           "hard_silu", "mish", "tanh", "softsign", "linear"})


def _glorot(shape, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype("float32")


def _variable_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", key)


class SharedWeights:
    """The supernet's variables, one per key, grown to the largest shape a sub-network asked for."""

    def __init__(self, seed: int = 0, width: int = 1, taps: int = 1):
        self.variables: dict[str, Any] = {}
        self.rng = np.random.default_rng(seed)
        # Variables are made this wide and this many taps at least (the space's widest layer and
        # largest kernel), so that they rarely grow: a grown variable is a new one, and every traced
        # step that held the old one is traced again.
        self.width, self.taps = int(width), int(taps)
        self.version = 0  # bumped whenever a variable is grown (replaced)

    def get(self, key: str, shape: tuple[int, ...], initial: Callable[[tuple[int, ...]], np.ndarray],
            centered: int = 0):
        """The variable `key`, at least `shape`; its first `centered` axes (a kernel's taps) grow on both sides."""
        import tensorflow as tf

        variable = self.variables.get(key)
        if variable is not None and all(s <= v for s, v in zip(shape, variable.shape)):
            return variable
        grown = tuple(shape) if variable is None else tuple(max(s, int(v)) for s, v in zip(shape, variable.shape))
        value = initial(grown)
        if variable is not None:
            old = [int(d) for d in variable.shape]
            place = tuple(slice((g - o) // 2 if axis < centered else 0, ((g - o) // 2 if axis < centered else 0) + o)
                          for axis, (g, o) in enumerate(zip(grown, old)))
            value[place] = variable.numpy()
        self.variables[key] = tf.Variable(value, name=_variable_name(key), trainable=True)
        if variable is not None:
            self.version += 1
        return self.variables[key]

    def state(self) -> dict[str, np.ndarray]:
        return {key: variable.numpy() for key, variable in self.variables.items()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        import tensorflow as tf

        self.variables = {key: tf.Variable(value, name=_variable_name(key)) for key, value in state.items()}
        self.version += 1


class _T:
    """A tensor, its channel segments (`(source key, width)` of each part a concatenation joined), the
    mask of its active channels (masked training: None when all are), its width in the network, and
    each segment's live width (sliced training: a scalar tensor where the traced graph's network
    chooses it, else the segment's width)."""

    __slots__ = ("value", "segments", "mask", "real", "live")

    def __init__(self, value, segments, mask=None, real=None, live=None):
        self.value = value
        self.segments = tuple(segments)
        self.mask = mask
        self.real = sum(w for _, w in self.segments) if real is None else int(real)
        self.live = tuple(w for _, w in self.segments) if live is None else tuple(live)

    def like(self, value) -> _T:
        """`value` with this tensor's channels (an operation that keeps them: normalising, pooling)."""
        return _T(value, self.segments, self.mask, self.real, self.live)

    @property
    def shape(self):
        return tuple(self.value.shape)

    def parts(self):
        import tensorflow as tf

        if len(self.segments) == 1:
            return [self.value]
        if all(_static(w) for w in self.live):
            return tf.split(self.value, list(self.live), axis=-1)
        return tf.split(self.value, tf.stack([tf.cast(w, tf.int32) for w in self.live]), axis=-1,
                        num=len(self.live))

    def full_mask(self):
        import tensorflow as tf

        return tf.ones((sum(w for _, w in self.segments),)) if self.mask is None else self.mask


def _convolve(x, kernel, rank: int, strides: int, dilation: int, taps: int):
    """A 'same'-padded convolution. Dilated, it is written as the space-to-batch convolution that
    `tf.nn.convolution` makes of it, given the kernel's `taps`: its own dilated path reads the
    kernel's shape when traced, which a dynamic step's kernel slices do not have (and a dilated
    `conv2d` has no gradient on CPU)."""
    import tensorflow as tf

    if dilation == 1:
        return tf.nn.convolution(x, kernel, strides=strides, padding="SAME")
    if strides != 1:  # as tf.nn.convolution refuses them (the space-to-batch form would drop the strides)
        raise ValueError(f"strides > 1 with dilation > 1 are not supported: strides={strides}, dilation={dilation}")
    return tf.nn.with_space_to_batch(
        x, dilation_rate=[dilation] * rank, padding="SAME", filter_shape=[taps] * rank,
        op=lambda inputs, num_spatial_dims, padding: tf.nn.convolution(inputs, kernel, padding=padding))


def _fused_batch_norm(x, gamma, beta):
    """Batch normalisation of `x` by its batch's statistics (training), as one fused operation: its
    gradient is one operation too, where the written-out form's broadcasts cost a reduction each."""
    import tensorflow as tf

    shape = tf.shape(x)
    image = x if len(x.shape) == 4 else tf.reshape(x, tf.stack([shape[0], 1, -1, shape[-1]]))
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(image, gamma, beta, epsilon=EPSILON, is_training=True)
    return y if len(x.shape) == 4 else tf.reshape(y, shape)


def set_layer_weights(model, weights: dict[str, list]) -> None:
    """Sets each layer of `model` named in `weights` (`{layer name: [arrays]}`, Keras's order) to them.

    Example:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")])
        >>> set_layer_weights(model, {"out": [np.ones((2, 1)), np.zeros(1)]})
        >>> model.get_layer("out").get_weights()[0].ravel().tolist()
        [1.0, 1.0]
    """
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])


def _joined(pieces: list, axis: int):
    """Kernel pieces (one per input segment) joined along the input-channel axis: one piece as it is."""
    import tensorflow as tf

    return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=axis)


def _static(width) -> bool:
    """Whether a width is a number (not a tensor a traced graph reads when it runs)."""
    return isinstance(width, (int, np.integer))


def _total(widths):
    """The sum of widths, each an int or a scalar tensor (an int where all are)."""
    import tensorflow as tf

    if all(_static(w) for w in widths):
        return sum(widths)
    return tf.add_n([tf.cast(w, tf.int32) for w in widths]) if len(widths) > 1 else tf.cast(widths[0], tf.int32)


class SharedBuilder:
    """Renders one sub-network of a family with weights from `SharedWeights`.

    `mode` is `"train"` (batch statistics, dropout), `"calibrate"` (batch statistics,
    accumulated in `statistics`) or `"infer"` (the statistics given). With `record`,
    `weights` maps each Keras layer name to its weights, in Keras's order, sliced.

    Sliced (the default): each layer computes with its weights cut to the sub-network's widths.
    Masked (`masks`, training only): each block layer computes at the widest its shape's
    networks give it (`caps[name]`) and zeroes the channels past its width (`masks[name]`, a
    scalar tensor): the outputs are the sliced network's, padded with zeros, and every
    sub-network of one shape (the same layers, any widths up to the caps) runs through one
    traced graph. With `dynamic` (the families without recurrent layers), the same graph
    slices each layer's weights to the width `masks[name]` holds when it runs: its channel
    counts are known only then, and a narrow network costs its own arithmetic, not its
    shape's widest.
    """

    def __init__(self, shared: SharedWeights, spec, inputs, mode: str = "train",
                 statistics: dict | None = None, record: bool = False, masks: dict | None = None,
                 caps: dict | None = None, rate=None, dynamic: bool = False):
        self.shared, self.spec, self.inputs, self.mode = shared, spec, inputs, mode
        self.dynamic = bool(dynamic) and masks is not None
        self.rate = rate  # a traced step's dropout rate (a tensor), in place of the rendering's
        self.caps = caps or {}
        self.statistics = {} if statistics is None else statistics
        self.record = record
        self.masks = masks
        self.used: set[str] = set()
        self.weights: dict[str, list[np.ndarray]] = {}
        self.positions = {i: f"s{block.stage}.p{self._stage_position(spec, i)}.{block.kind}"
                          for i, block in enumerate(spec.blocks)}
        # The last block of each stage: what follows the stage reads its output as the stage's end,
        # whichever block that is (depth is elastic: the next stage and the head are shared by all depths).
        self.stage_ends = {self.positions[i]: f"s{block.stage}.end.{block.kind}"
                           for i, block in enumerate(spec.blocks)
                           if i == len(spec.blocks) - 1 or spec.blocks[i + 1].stage != block.stage}

    @staticmethod
    def _stage_position(spec, i: int) -> int:
        stage = spec.blocks[i].stage
        return sum(1 for block in spec.blocks[:i] if block.stage == stage)

    def _get(self, key: str, shape, initial, centered: int = 0, exact: tuple[int, ...] = ()):
        """A shared variable at least `shape`: its first `centered` axes (taps) raised to the store's
        taps, the others to its width, but for the `exact` axes (an input's channels, a depthwise 1)."""
        wide = tuple(d if axis in exact else max(d, self.shared.taps if axis < centered else self.shared.width)
                     for axis, d in enumerate(shape))
        self.used.add(key)
        return self.shared.get(key, wide, initial, centered)

    def source(self, source: str, name: str) -> str:
        """How layer `name` names an input segment made by layer key `source`: by position inside a
        block and between blocks of a stage; as the stage's end when it leaves the stage's last block."""
        block, _, rest = source.partition("/")
        end = self.stage_ends.get(block)
        if end is None or self.key(name).startswith(block + "/"):
            return source
        return f"{end}/{rest}"

    def key(self, name: str) -> str:
        match = _BLOCK.match(name)
        if match is None:
            return name
        return f"{self.positions[int(match.group(1))]}/{match.group(2)}"

    def _keep(self, name: str, weights: list) -> None:
        if self.record:
            self.weights[name] = [np.asarray(w.numpy() if hasattr(w, "numpy") else w) for w in weights]

    def _computed(self, name: str, width: int) -> int:
        """The width a layer computes at: its own, or, masked, the widest its shape's networks give it."""
        if self.masks is None or name not in self.masks:
            return width
        return max(width, self.caps.get(name, self.shared.width))

    def _live(self, name: str, computed: int):
        """The width a layer's weights are sliced to: where the graph is dynamic, its network's (a scalar
        tensor, known when the graph runs); else the width it computes at."""
        if self.dynamic and name in self.masks:  # type: ignore[operator]
            return self.masks[name]  # type: ignore[index]
        return computed

    def _mask(self, name: str, y):
        """`y` with the channels past the layer's width zeroed (masked training), and the mask."""
        import tensorflow as tf

        if self.masks is None or name not in self.masks or self.dynamic:
            return y, None
        mask = tf.cast(tf.range(int(y.shape[-1])) < self.masks[name], y.dtype)
        return y * mask, mask

    # -- the builder interface -------------------------------------------------------------

    def width(self, x):
        return x.real

    def input(self, shape, dtype, name):
        import tensorflow as tf

        value = tf.convert_to_tensor(self.inputs, dtype=tf.float32)
        return _T(value, [("input", int(value.shape[-1]) if len(shape) else 1)])

    def _kernel_pieces(self, name, key, x, out, rank: int, kernel_size: int, live):
        """A kernel piece per input segment, `(k,) * rank + (width, live)` (each segment's live width),
        cropped about its centre to `kernel_size`."""
        pieces = []
        fan_in, fan_out = x.real * kernel_size**rank, out * kernel_size**rank
        for (source, width), rows in zip(x.segments, x.live):
            full = self._get(f"{key}|{self.source(source, name)}", (kernel_size,) * rank + (width, out),
                             lambda shape: _glorot(shape, fan_in, fan_out, self.shared.rng), centered=rank,
                             exact=(rank,) if source == "input" else ())
            start = (int(full.shape[0]) - kernel_size) // 2
            window = (slice(start, start + kernel_size),) * rank
            pieces.append(full[window + (slice(0, rows), slice(0, live))])
        return pieces

    def _bias(self, key, out, initial=0.0, live=None):
        full = self._get(f"{key}|bias", (out,), lambda shape: np.full(shape, initial, "float32"))
        return full[:out if live is None else live]

    def _finish(self, name, key, y, weights, use_bias, out, width, activation, bias_initial=0.0, live=None):
        import keras

        if use_bias:
            b = self._bias(key, out, bias_initial, live)
            y = y + b
            weights.append(b)
        self._keep(name, weights)
        y, mask = self._mask(name, y)
        if activation is not None:
            y = keras.activations.get(activation)(y)
        return _T(y, [(key, out)], mask, width, None if live is None else [live])

    def dense(self, x, units, name, activation=None, use_bias=True, bias=None):
        import tensorflow as tf

        key, out = self.key(name), self._computed(name, units)
        live = self._live(name, out)
        kernel = _joined(self._kernel_pieces(name, key, x, out, 0, 1, live), axis=0)
        y = tf.matmul(x.value, kernel)  # one product with the segments' pieces joined (one op, not one each)
        return self._finish(name, key, y, [kernel], use_bias, out, units, activation,
                            0.0 if bias is None else float(bias), live)

    def conv(self, x, filters, kernel_size, name, strides=1, activation=None, use_bias=True, dilation=1):
        key, rank, out = self.key(name), len(x.shape) - 2, self._computed(name, filters)
        live = self._live(name, out)
        kernel = _joined(self._kernel_pieces(name, key, x, out, rank, kernel_size, live), axis=-2)
        y = _convolve(x.value, kernel, rank, strides, dilation, kernel_size)
        return self._finish(name, key, y, [kernel], use_bias, out, filters, activation, live=live)

    def separable(self, x, filters, kernel_size, name, activation=None, use_bias=True, dilation=1):
        import tensorflow as tf

        key, rank, out = self.key(name), len(x.shape) - 2, self._computed(name, filters)
        live = self._live(name, out)
        depthwise, pointwise = [], []
        for (source, width), rows in zip(x.segments, x.live):
            label = self.source(source, name)
            full = self._get(f"{key}|depthwise|{label}", (kernel_size,) * rank + (width, 1),
                             lambda shape: _glorot(shape, kernel_size**rank, kernel_size**rank, self.shared.rng),
                             centered=rank, exact=(rank, rank + 1) if source == "input" else (rank + 1,))
            start = (int(full.shape[0]) - kernel_size) // 2
            window = (slice(start, start + kernel_size),) * rank
            d = full[window + (slice(0, rows), slice(0, 1))]
            p_full = self._get(f"{key}|pointwise|{label}", (1,) * rank + (width, out),
                               lambda shape: _glorot(shape, x.real, filters, self.shared.rng),
                               exact=tuple(range(rank + (source == "input"))))
            depthwise.append(d)
            pointwise.append(p_full[(slice(0, 1),) * rank + (slice(0, rows), slice(0, live))])
        # One depthwise and one pointwise convolution, the segments' pieces joined by input channel.
        d, p = _joined(depthwise, axis=-2), _joined(pointwise, axis=-2)
        value = x.value if rank == 2 else x.value[:, None]  # a sequence runs as an image one row high
        h = tf.nn.depthwise_conv2d(value, d if rank == 2 else d[None], strides=[1, 1, 1, 1], padding="SAME",
                                   dilations=[dilation, dilation] if rank == 2 else [1, dilation])
        y = tf.nn.convolution(h if rank == 2 else h[:, 0], p, padding="SAME")
        weights = [d, p]
        return self._finish(name, key, y, weights, use_bias, out, filters, activation, live=live)

    def embedding(self, x, name, vocabulary_size, units):
        import tensorflow as tf

        key = self.key(name)
        table = self._get(f"{key}|table", (int(vocabulary_size), int(units)),
                          lambda shape: np.asarray(self.shared.rng.uniform(-0.05, 0.05, size=shape), "float32"),
                          exact=(0,))[:, :units]
        self._keep(name, [table])
        return _T(tf.gather(table, tf.cast(x.value, tf.int32)), [(key, int(units))])

    def _gated(self, key, name, x, units, gates: int, recurrent_bias: bool):
        """A recurrent cell's weights at `units`, in Keras's layout: the kernel (one piece per input
        segment, stacked), the recurrent kernel and the bias, each gate-major (`gates` blocks of `units`)."""
        import tensorflow as tf

        rng = self.shared.rng

        def orthogonal(shape):  # each gate's recurrent block orthogonal, as Keras initialises it
            blocks = [np.linalg.qr(rng.normal(size=(shape[0], shape[0])))[0][:, :shape[2]] for _ in range(shape[1])]
            return np.stack(blocks, axis=1).astype("float32")

        pieces = []
        for source, width in x.segments:
            full = self._get(f"{key}|kernel|{self.source(source, name)}", (width, gates, units),
                             lambda shape: _glorot(shape, x.real, gates * units, rng),
                             exact=(0, 1) if source == "input" else (1,))
            pieces.append(tf.reshape(full[:width, :, :units], (width, gates * units)))
        kernel = tf.concat(pieces, axis=0)
        recurrent = tf.reshape(self._get(f"{key}|recurrent", (units, gates, units), orthogonal,
                                         exact=(1,))[:units, :, :units], (units, gates * units))

        def bias_initial(shape):
            value = np.zeros(shape, "float32")
            if gates == 4:  # an LSTM's forget gate starts open (Keras's unit_forget_bias)
                value[1] = 1.0
            return value

        if recurrent_bias:  # a GRU (reset_after): an input bias and a recurrent bias
            bias = tf.reshape(self._get(f"{key}|bias", (2, gates, units), lambda shape: np.zeros(shape, "float32"),
                                        exact=(0, 1))[:, :, :units], (2, gates * units))
        else:
            bias = tf.reshape(self._get(f"{key}|bias", (gates, units), bias_initial, exact=(0,))[:, :units],
                              (gates * units,))
        return kernel, recurrent, bias

    @staticmethod
    def _run_cell(cell: str, inputs, kernel, recurrent, bias, units: int, mask, return_sequences: bool):
        """Runs an LSTM or GRU (Keras's equations, sigmoid gates, GRU with reset_after) over `inputs`
        (batch, steps, features); channels past `mask` are held at zero, so a cell computed wider
        than its network's width gives that network's outputs, padded with zeros."""
        import tensorflow as tf

        batch = tf.shape(inputs)[0]
        projected = tf.einsum("btf,fg->btg", inputs, kernel) + (bias if cell == "lstm" else bias[0])
        keep = 1.0 if mask is None else mask
        zeros = tf.zeros((batch, units), inputs.dtype)

        if cell == "lstm":
            def step(state, z):
                h, c = state
                z = z + tf.matmul(h, recurrent)
                i, f, g, o = tf.split(z, 4, axis=-1)
                c = (tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)) * keep
                return tf.sigmoid(o) * tf.tanh(c) * keep, c

            hs, _ = tf.scan(step, tf.transpose(projected, (1, 0, 2)), initializer=(zeros, zeros))
        else:
            def step(h, z):
                inner = tf.matmul(h, recurrent) + bias[1]
                x_z, x_r, x_h = tf.split(z, 3, axis=-1)
                r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
                gate = tf.sigmoid(x_z + r_z)
                candidate = tf.tanh(x_h + tf.sigmoid(x_r + r_r) * r_h)
                return (gate * h + (1 - gate) * candidate) * keep

            hs = tf.scan(step, tf.transpose(projected, (1, 0, 2)), initializer=zeros)
        return tf.transpose(hs, (1, 0, 2)) if return_sequences else hs[-1]

    def rnn(self, x, name, cell, units, return_sequences, bidirectional):
        import tensorflow as tf

        key, out = self.key(name), self._computed(name, units)
        mask = None
        if self.masks is not None and name in self.masks:
            mask = tf.cast(tf.range(out) < self.masks[name], x.value.dtype)
        gates, outputs, weights, segments = (4 if cell == "lstm" else 3), [], [], []
        for direction in ("forward", "backward") if bidirectional else ("forward",):
            kernel, recurrent, bias = self._gated(f"{key}|{direction}", name, x, out, gates, cell == "gru")
            inputs = x.value if direction == "forward" else tf.reverse(x.value, axis=[1])
            y = self._run_cell(cell, inputs, kernel, recurrent, bias, out, mask, return_sequences)
            if direction == "backward" and return_sequences:
                y = tf.reverse(y, axis=[1])  # aligned with the forward outputs, as Keras's Bidirectional does
            outputs.append(y)
            weights += [kernel, recurrent, bias]
            segments.append((f"{key}|{direction}", out))
        self._keep(name, weights)
        joined = None if mask is None else tf.concat([mask] * len(outputs), 0)
        return _T(outputs[0] if len(outputs) == 1 else tf.concat(outputs, -1), segments, joined,
                  units * len(outputs))

    def batch_norm(self, x, name, momentum):
        import tensorflow as tf

        key = self.key(name)
        gammas, betas = [], []
        for (source, width), rows in zip(x.segments, x.live):
            exact = (0,) if source == "input" else ()
            label = self.source(source, name)
            gammas.append(self._get(f"{key}|gamma|{label}", (width,), lambda s: np.ones(s, "float32"),
                                    exact=exact)[:rows])
            betas.append(self._get(f"{key}|beta|{label}", (width,), lambda s: np.zeros(s, "float32"),
                                   exact=exact)[:rows])
        if self.mode == "train":  # one fused normalisation of all the segments (each channel's own statistics)
            y = _fused_batch_norm(x.value, _joined(gammas, 0), _joined(betas, 0))
            return x.like(y if x.mask is None else y * x.mask)  # a zeroed channel normalises to its beta
        outputs, means, variances = [], [], []
        axes = list(range(len(x.shape) - 1))
        for part, (source, _), gamma, beta in zip(x.parts(), x.segments, gammas, betas):
            stat = f"{name}|{source}"
            if self.mode == "infer":
                mean, variance = self.statistics[stat]
            else:
                mean, variance = tf.nn.moments(part, axes=axes)
                if self.mode == "calibrate":
                    count, total, squares = self.statistics.get(stat, (0, 0.0, 0.0))
                    n = int(np.prod(part.shape[:-1]))
                    self.statistics[stat] = (count + n, total + mean.numpy() * n,
                                             squares + (variance.numpy() + mean.numpy() ** 2) * n)
            outputs.append((part - mean) * tf.math.rsqrt(variance + EPSILON) * gamma + beta)
            means.append(mean)
            variances.append(variance)
        if self.record:
            self._keep(name, [tf.concat(gammas, 0), tf.concat(betas, 0), tf.concat(means, 0),
                              tf.concat(variances, 0)])
        y = outputs[0] if len(outputs) == 1 else tf.concat(outputs, -1)
        if x.mask is not None:  # a zeroed channel normalises to its beta: zero it again
            y = y * x.mask
        return x.like(y)

    def activation(self, x, name, function):
        import keras

        y = keras.activations.get(function)(x.value)
        # A masked tensor's channels past its mask are zero: an activation that keeps zero at zero keeps
        # them so (and the parameters' gradients are the same), the others are masked again.
        again = x.mask is not None and not (function is None or function in _ZERO_AT_ZERO)
        return x.like(y * x.mask if again else y)

    def dropout(self, x, name, rate):
        import tensorflow as tf

        if self.mode != "train":
            return x
        if self.rate is not None:  # a traced step's rate (0: its input passes on exactly)
            rate = self.rate
        elif not rate:
            return x
        return x.like(tf.nn.dropout(x.value, rate=rate))

    @staticmethod
    def _joined_mask(xs):
        import tensorflow as tf

        if all(x.mask is None for x in xs):
            return None
        mask = xs[0].full_mask()
        for x in xs[1:]:
            mask = tf.maximum(mask, x.full_mask())
        return mask

    def gate(self, before, after, name):
        """Elastic depth in masked training: block `name`'s output, or its input where the sub-network
        has no such block (`masks[name]` is 0, the stage shallower than the traced graph's)."""
        import tensorflow as tf

        if self.masks is None or name not in self.masks:
            return after
        if before.shape != after.shape:
            raise ValueError(f"block {name!r} cannot be skipped: its input {before.shape} and output "
                             f"{after.shape} differ")
        return after.like(tf.where(self.masks[name] > 0, after.value, before.value))

    def _merged(self, xs, name) -> list:
        """The segments of an elementwise merge: one, named after it; or, where its inputs are joined
        parts (a bidirectional layer's two directions), one per part, so that a network computed wider
        than its widths (masked) reads each part's channels with the rows its sliced network does."""
        key = self.key(name)
        layouts = [[w for _, w in x.segments] for x in xs]
        parts = max(layouts, key=len)  # an input of one part meets a bidirectional output as its two halves
        if len(parts) > 1 and all(layout == parts or layout == [sum(parts)] for layout in layouts):
            return [(f"{key}#{j}", w) for j, w in enumerate(parts)]
        return [(key, sum(layouts[0]))]

    @staticmethod
    def _padded(xs) -> list:
        """Masked training: tensors of one width in the network, some computed wider (their channels
        past the width zero), padded to the widest (a residual add of a block's input, which is not
        masked, to its output, which is)."""
        import tensorflow as tf

        wide = max(xs, key=lambda x: int(x.value.shape[-1]))
        layout = [w for _, w in wide.segments]  # the widest's parts (a bidirectional layer's two)
        padded = []
        for x in xs:
            if int(x.value.shape[-1]) == sum(layout):
                padded.append(x)
                continue
            rank = len(x.shape)
            if len(layout) == 1:  # one part: padded at its end, its mask with it
                extra = layout[0] - int(x.value.shape[-1])
                padded.append(_T(tf.pad(x.value, [[0, 0]] * (rank - 1) + [[0, extra]]),
                                 [(x.segments[0][0], layout[0])] if len(x.segments) == 1 else x.segments[:-1] + (
                                     (x.segments[-1][0], x.segments[-1][1] + extra),),
                                 tf.concat([x.full_mask(), tf.zeros((extra,))], 0), x.real))
                continue
            # As many equal parts as the widest has (an unmasked input meeting a bidirectional layer's
            # output), each padded to its part: channel j of part k meets channel j of the widest's part k,
            # as in the sliced network.
            if x.mask is not None or len(set(layout)) > 1 or x.real % len(layout):
                raise ValueError(f"cannot merge widths {[int(t.value.shape[-1]) for t in xs]} in masked training")
            parts = tf.split(x.value, len(layout), axis=-1)
            values = [tf.pad(part, [[0, 0]] * (rank - 1) + [[0, w - int(part.shape[-1])]])
                      for part, w in zip(parts, layout)]
            masks = [tf.concat([tf.ones((int(part.shape[-1]),)), tf.zeros((w - int(part.shape[-1]),))], 0)
                     for part, w in zip(parts, layout)]
            segments = [(f"{x.segments[0][0]}#{k}" if len(layout) > 1 else x.segments[0][0], w)
                        for k, w in enumerate(layout)]
            padded.append(_T(tf.concat(values, -1), segments, tf.concat(masks, 0), x.real))
        return padded

    def _merge(self, xs, name, value):
        """An elementwise merge's output. Masked, its inputs are padded to one width first (`_padded`);
        dynamic, they have one width when the graph runs (the family merges only such), and the
        merge takes the live width of an input whose width the graph chooses."""
        if not self.dynamic:
            return _T(value, self._merged(xs, name), self._joined_mask(xs), xs[0].real)
        chosen = next((x for x in xs if not all(_static(w) for w in x.live)), xs[0])
        width = max(sum(w for _, w in x.segments) for x in xs)
        return _T(value, [(self.key(name), width)], None, xs[0].real, [_total(chosen.live)])

    def add(self, xs, name):
        import tensorflow as tf

        xs = xs if self.dynamic else self._padded(xs)
        return self._merge(xs, name, tf.add_n([x.value for x in xs]))

    def multiply(self, xs, name):
        xs = xs if self.dynamic else self._padded(xs)
        value = xs[0].value
        for x in xs[1:]:
            value = value * x.value
        return self._merge(xs, name, value)

    def concat(self, xs, name):
        import tensorflow as tf

        mask = None if all(x.mask is None for x in xs) else tf.concat([x.full_mask() for x in xs], 0)
        return _T(tf.concat([x.value for x in xs], axis=-1), [s for x in xs for s in x.segments], mask,
                  sum(x.real for x in xs), [w for x in xs for w in x.live])

    def pool(self, x, name, kind, pool_size, strides):
        import tensorflow as tf

        pool = tf.nn.max_pool if kind == "max" else tf.nn.avg_pool
        return x.like(pool(x.value, ksize=pool_size, strides=strides, padding="SAME"))

    def global_pool(self, x, name, kind):
        import tensorflow as tf

        reduce = tf.reduce_max if kind == "max" else tf.reduce_mean
        return x.like(reduce(x.value, axis=list(range(1, len(x.shape) - 1))))

    def flatten(self, x, name):
        import tensorflow as tf

        positions = int(np.prod(x.shape[1:-1])) if len(x.shape) > 2 else 1
        segments = [(f"{source}@{p}", width) for p in range(positions) for source, width in x.segments]
        mask = None if x.mask is None else tf.tile(x.mask, [positions])
        return _T(tf.reshape(x.value, [-1, positions * _total(x.live)]), segments, mask, positions * x.real,
                  [w for _ in range(positions) for w in x.live])

    def reshape(self, x, shape, name):
        import tensorflow as tf

        return _T(tf.reshape(x.value, (-1, *shape)), [(self.key(name), int(shape[-1]))])

    def normalization(self, x, name, mean, variance):
        import tensorflow as tf

        mean = tf.constant(np.asarray(mean, "float32"))
        variance = tf.constant(np.asarray(variance, "float32"))
        return x.like((x.value - mean) / tf.maximum(tf.sqrt(variance), 1e-7))

    def model(self, inputs, outputs, name):
        return outputs.value


class _Recorder:
    """Follows a family's rendering by shapes (the counting builder) and notes its calls: the layers a
    network has, in order, and each width-bearing block layer's width."""

    _WIDTHS = {"dense": "units", "conv": "filters", "separable": "filters", "rnn": "units"}

    def __init__(self):
        from keras_structopt.space._counting import _CountingBuilder

        self.inner = _CountingBuilder()
        self.calls: list[tuple[str, str]] = []
        self.widths: dict[str, int] = {}

    def __getattr__(self, method):
        import inspect

        target = getattr(self.inner, method)

        def call(*args, **kwargs):
            arguments = inspect.signature(target).bind(*args, **kwargs).arguments
            name = arguments.get("name")
            if name is not None:
                self.calls.append((method, name))
                if method in self._WIDTHS and _BLOCK.match(name):
                    self.widths[name] = int(arguments[self._WIDTHS[method]])
            return target(*args, **kwargs)

        return call


def shape_of(spec) -> tuple[str, dict[str, int]]:
    """A network's shape (what makes its traced graph: its layers, block kinds and options, not its
    widths) as a key, and its block layers' widths.

    Example:
        >>> from keras_structopt.space import Architecture, Block
        >>> a, widths = shape_of(Architecture("dense", (4,), [Block("dense", 8), Block("dense", 6)]))
        >>> b, _ = shape_of(Architecture("dense", (4,), [Block("dense", 16), Block("dense", 3)]))
        >>> a == b, widths
        (True, {'block_0_dense': 8, 'block_1_dense': 6})
    """
    from keras_structopt.space import family

    recorder = _Recorder()
    family(spec.family).build(spec, recorder)
    key = json.dumps([spec.family, list(spec.input_shape), spec.connection, spec.task, spec.outputs,
                      [[block.kind, block.stage] for block in spec.blocks], sorted(map(list, spec.options)),
                      recorder.calls], default=str)
    return key, recorder.widths


def _normalised(spec) -> bool:
    """Whether every block of `spec` has a batch normalisation."""
    from keras_structopt.space import family

    recorder = _Recorder()
    family(spec.family).build(spec, recorder)
    normalised = {int(m.group(1)) for method, name in recorder.calls if method == "batch_norm"
                  for m in [_BLOCK.match(name)] if m}
    return normalised == set(range(len(spec.blocks)))


def _kind_of(spec) -> tuple:
    """A network's kind: its connection and block kinds (networks of different kinds share no block weights)."""
    return spec.connection, tuple(sorted({block.kind for block in spec.blocks}))


def supports(spec) -> str | None:
    """Why a spec's family cannot be rendered by the supernet, or None when it can."""
    from keras_structopt.space import family

    probe = _ShapeProbe()
    try:
        family(spec.family).build(spec, probe)
    except AttributeError as error:
        return f"its family uses an operation the supernet does not share ({error})"
    return None


class _ShapeProbe:
    """Follows a family's rendering without computing, to see which operations it needs."""

    _FOLLOWED = ("width", "input", "dense", "conv", "separable", "batch_norm", "activation", "dropout", "add",
                 "multiply", "concat", "pool", "global_pool", "flatten", "reshape", "normalization", "model",
                 "rnn", "embedding")

    def __init__(self):
        self.gated: set[str] = set()
        self.called: set[str] = set()

    def __getattr__(self, name):
        if name not in self._FOLLOWED:
            raise AttributeError(name)
        self.called.add(name)
        return lambda *args, **kwargs: 0 if name == "width" else None

    def gate(self, before, after, name):
        self.gated.add(name)
        return after


def extreme_values(hypermodel, which: str, rng: random.Random) -> dict:
    """Hyperparameter values of the structure's largest (`"max"`) or smallest (`"min"`) network.

    Numbers take their end of the range; choices of words (block kinds, activations) are
    drawn at random, so each kind's largest network is trained in turn.
    """
    import keras_tuner

    values: dict = {}
    for _ in range(3):  # conditional hyperparameters appear as their parents take values
        hp = keras_tuner.HyperParameters()
        hp.values.update(values)
        hypermodel.architecture(hp)
        for parameter in hp.space:
            if parameter.name in values:
                continue
            values[parameter.name] = _end(parameter, which, rng)
    return values


def _end(parameter, which: str, rng: random.Random):
    from keras_tuner.engine import hyperparameters as hps

    if isinstance(parameter, (hps.Int, hps.Float)):
        return parameter.max_value if which == "max" else parameter.min_value
    if isinstance(parameter, hps.Choice):
        choices = list(parameter.values)
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            return max(choices) if which == "max" else min(choices)
        return rng.choice(choices)
    if isinstance(parameter, hps.Boolean):
        return rng.random() < 0.5
    if isinstance(parameter, hps.Fixed):
        return parameter.value
    return parameter.default


def random_values(hypermodel, rng: random.Random) -> dict:
    """Random hyperparameter values over the structure (conditions respected)."""
    import keras_tuner

    values: dict = {}
    for _ in range(3):
        hp = keras_tuner.HyperParameters()
        hp.values.update(values)
        hypermodel.architecture(hp)
        for parameter in hp.space:
            if parameter.name not in values:
                values[parameter.name] = parameter.random_sample(rng.randint(0, 2**31 - 1))
    return values


def spec_of(hypermodel, values: dict):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return hypermodel.architecture(hp)


class _Adam:
    """Adam over the supernet's variables, in the traced steps: one pair of moments per variable, and
    each sub-network's step updates only the variables it uses."""

    def __init__(self, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        import tensorflow as tf

        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.moments: dict[str, tuple[Any, Any]] = {}
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    def slots(self, key: str, variable):
        import tensorflow as tf

        moments = self.moments.get(key)
        if moments is None or tuple(moments[0].shape) != tuple(variable.shape):
            moments = (tf.Variable(tf.zeros_like(variable), trainable=False),
                       tf.Variable(tf.zeros_like(variable), trainable=False))
            self.moments[key] = moments
        return moments

    def update(self, variables, slots, gradients, learning_rate) -> None:
        """The update ops (inside a traced step): the step's summed gradients, one Adam step.

        Each variable takes one fused kernel (`ResourceApplyAdam`: the same arithmetic as Keras's
        Adam, with epsilon outside the square root) rather than a dozen small ops: on the digits' conv
        space (288 shared variables) the update fell from 39 ms to 14 ms a step.
        """
        import tensorflow as tf

        step = tf.cast(self.iterations.assign_add(1), tf.float32)
        beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
        epsilon = tf.constant(self.epsilon, tf.float32)
        beta_1_power, beta_2_power = beta_1**step, beta_2**step
        for variable, (m, v), gradient in zip(variables, slots, gradients):
            tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power,
                                         beta2_power=beta_2_power, lr=learning_rate, beta1=beta_1, beta2=beta_2,
                                         epsilon=epsilon, grad=gradient)

    def state(self) -> dict[str, np.ndarray]:
        state = {"iterations": np.asarray(int(self.iterations.numpy()))}
        for key, (m, v) in self.moments.items():
            state[f"m|{key}"], state[f"v|{key}"] = m.numpy(), v.numpy()
        return state

    def load(self, state: dict[str, np.ndarray]) -> None:
        import tensorflow as tf

        self.iterations.assign(int(state["iterations"]))
        self.moments = {key[2:]: (tf.Variable(state[key], trainable=False),
                                  tf.Variable(state["v|" + key[2:]], trainable=False))
                        for key in state if key.startswith("m|")}


@contextlib.contextmanager
def _without_graph_rewrites():
    """TensorFlow's graph optimizer (Grappler) off while the supernet's steps are first run, on again
    after, as it was.

    Grappler rewrites each traced function when it first runs. The supernet's steps are many
    large graphs run a few hundred times each: on the digits' conv space, its first epoch (11
    steps traced and first run) took 38.6-39.9 s without the rewrites and 47.5-50.0 s with them,
    and epochs 3-5 took 4.1 s on average without and 4.0 s with them (two runs each, the same
    machine and hour): about 9 s saved and 3 s lost over 30 epochs. The option is
    read when a function is first run, so the Keras models trained after (fine-tuning) are
    optimised as usual.
    """
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": bool(before.get("disable_meta_optimizer", False))})


def _losses(task: str):
    """The task's loss on the labels, and the distillation loss on a teacher's outputs."""
    import keras
    import tensorflow as tf

    if task == "multiclass":
        return (lambda y, p: tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, p)),
                lambda t, p: tf.reduce_mean(keras.losses.categorical_crossentropy(t, p)))
    if task == "binary":
        return (lambda y, p: tf.reduce_mean(keras.losses.binary_crossentropy(tf.reshape(tf.cast(y, p.dtype),
                                                                                          tf.shape(p)), p)),
                lambda t, p: tf.reduce_mean(keras.losses.binary_crossentropy(t, p)))
    return (lambda y, p: tf.reduce_mean(tf.square(tf.reshape(tf.cast(y, p.dtype), tf.shape(p)) - p)),
            lambda t, p: tf.reduce_mean(tf.square(t - p)))


class Supernet:
    """A HyperModel's space as one weight-sharing network: trained once, every sub-network read off it.

    Each training step runs the sandwich rule: the largest network (the block kinds and other
    word-valued choices drawn at random), the smallest and `random_subnets` others learn from
    the labels (with `distill`, all but the largest learn from its predictions). The random ones come from a pool of
    `pool` sub-networks drawn once, so that each sub-network's step is traced into a graph once and
    then runs at graph speed; the sub-networks the search scores are any of the space, sharing the
    pool's weights by position and width.

    Example:
        >>> import numpy as np, keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(8,), outputs=3, num_layers=(1, 2), units=[4, 8], seed=0)
        >>> x, y = np.random.default_rng(0).normal(size=(64, 8)).astype("float32"), np.arange(64) % 3
        >>> supernet = Supernet(hypermodel, seed=0, pool=2)
        >>> history = supernet.train(x, y, epochs=1, batch_size=32)
        >>> len(history), supernet.epochs_done
        (1, 1)
    """

    def __init__(self, hypermodel, *, seed: int = 0, learning_rate: float | None = None, random_subnets: int = 2,
                 pool: int = 12, distill: bool = False, admit: Callable[[Any], bool] | None = None):
        self.hypermodel = hypermodel
        self.seed = int(seed)
        self.random_subnets = int(random_subnets)
        self.distill = bool(distill)
        self.admit = admit
        self.loss, self.distill_loss = _losses(hypermodel.task)
        self.optimizer = _Adam()
        self.epochs_done = 0
        self.history: list[dict] = []
        self._steps: dict = {}
        self._shapes: dict = {}
        self._caps: dict[str, dict[str, int]] = {}
        self._dynamic: dict[str, bool] = {}
        self._sums: dict = {}
        self._apply: Callable | None = None
        self.variants: dict[str, list] = {}
        rng = random.Random(seed)
        samples = self._sample(40 * max(int(pool), 4), rng)
        self._depths: dict[int, int] = {}  # each stage's most blocks: the depth each traced graph renders
        for spec in samples:
            for block in spec.blocks:
                depth = sum(1 for other in spec.blocks if other.stage == block.stage)
                self._depths[block.stage] = max(self._depths.get(block.stage, 0), depth)
        self.pool = self._choose_shapes(samples, int(pool))
        largest = spec_of(hypermodel, extreme_values(hypermodel, "max", rng))
        smallest = spec_of(hypermodel, extreme_values(hypermodel, "min", rng))
        # Every network trained keeps the design rules and the search's budgets (max_params,
        # max_macs): the supernet trains what the search may pick. Where the space's largest or
        # smallest network breaks them, one of the three largest or smallest drawn stands in (on
        # MNIST-1D under max_params=10k, a teacher 15x over the budget left the budgeted
        # sub-networks at 0.10-0.47 validation accuracy; the largest within it, at 0.29-0.96).
        self.teacher_drawn = self._admissible(largest) is None
        self.smallest_drawn = self._admissible(smallest) is None
        # Drawn ends are kept per kind of network (its connection and block kinds, which share no
        # weights): each step trains one kind's largest, smallest and random networks, the kind drawn
        # as often as the search's own draws hold it (under a 10k-parameter budget on MNIST-1D, 65 of
        # 66 admissible networks are separable). One global largest and smallest would be one kind
        # only, and the random networks of a step another: each kind's weights would learn from
        # networks of other sizes than its own.
        by_size = sorted(samples, key=lambda spec: spec.count_params())
        groups: dict[tuple, list] = {}
        for spec in by_size:
            groups.setdefault(_kind_of(spec), []).append(spec)
        self.kinds = sorted(groups)
        self.kind_weights = [len(groups[kind]) for kind in self.kinds]  # as often as the search draws them
        self.tops = {kind: specs[-3:] for kind, specs in groups.items()}
        self.bottoms = {kind: specs[:3] for kind, specs in groups.items()}
        self.pool_of = {kind: [key for key in self.pool if _kind_of(self.variants[key][0]) == kind]
                        for kind in self.kinds}
        trained = [largest, *by_size] + [v for k in self.pool for v in self.variants[k]]
        taps = max((v for spec in trained for k, v in spec.options if k == "kernel_size" and isinstance(v, int)),
                   default=1)
        self.shared = SharedWeights(seed, width=max(block.units for spec in trained for block in spec.blocks),
                                    taps=taps)
        # None: large steps where every block normalises (its output does not depend on its weights'
        # scale), small ones otherwise (see OneShotSearch's supernet_learning_rate for what was measured).
        self.learning_rate = float(learning_rate) if learning_rate is not None else (
            0.03 if _normalised(by_size[-1]) else 3e-3)
        self._version = self.shared.version

    def _admissible(self, spec):
        """`spec` if the space's design rules and the search's budgets let it be built, else None."""
        rules = getattr(self.hypermodel, "rule_violation", None)
        if rules is not None and rules(spec) is not None:
            return None
        if self.admit is not None and not self.admit(spec):
            return None
        return spec

    def _sample(self, count: int, rng: random.Random) -> list:
        drawn: dict[str, Any] = {}
        for _ in range(count):
            spec = self._admissible(spec_of(self.hypermodel, random_values(self.hypermodel, rng)))
            if spec is not None:
                drawn.setdefault(spec.to_json(), spec)
        if not drawn:
            raise ValueError("no sub-network of the space keeps its design rules and the search's budgets")
        return list(drawn.values())

    def _choose_shapes(self, samples: list, size: int) -> list[str]:
        """`size` network shapes among the samples, each with the samples of that shape.

        Shapes (which layers, which kinds) are chosen as many different skeletons (depth per stage,
        block kinds) as there are first, the commonest first; every sub-network of a chosen shape,
        whatever its widths, trains through that shape's one traced graph.
        """
        buckets: dict[str, list] = {}
        for spec in samples:
            buckets.setdefault(self._shape(spec)[0], []).append(spec)
        ordered = sorted(buckets, key=lambda k: -len(buckets[k]))
        chosen: list[str] = []
        skeletons: set = set()
        for key in ordered:  # one of each skeleton first, then the most common shapes
            first = self._shape(buckets[key][0])[3]
            skeleton = (first.connection, tuple((block.stage, block.kind) for block in first.blocks))
            if skeleton not in skeletons and len(chosen) < size:
                skeletons.add(skeleton)
                chosen.append(key)
        chosen += [key for key in ordered if key not in chosen][:size - len(chosen)]
        self.variants = {key: buckets[key] for key in chosen}
        for key in chosen:  # each shape computes at its variants' widest, layer by layer
            for spec in buckets[key]:
                self._cover(key, spec)
        return chosen

    def _cover(self, key: str, spec) -> bool:
        """Widens shape `key`'s computed widths to cover `spec`'s; True if they grew."""
        _, names, widths, _, _ = self._shape(spec)
        caps = self._caps.setdefault(key, {})
        grew = False
        for name, width in zip(names, widths.numpy().tolist()):
            if _BLOCK.match(name) and width > caps.get(name, 0):  # a layer's width, not a block's gate
                caps[name] = int(width)
                grew = True
        return grew

    def _shape(self, spec) -> tuple[str, list[str], Any, Any, Any]:
        """The spec's shape key, its traced graph's masked layers' and gated blocks' names, their widths
        and gates (1: the block is the spec's own, 0: skipped), the spec the graph renders and the spec's
        dropout rate (an input of the graph; cached by spec).

        Depth is elastic inside one graph: where the family lets a block be skipped (it calls
        `gate`), the graph renders every stage as deep as the space's deepest, the spec's last
        block of the stage repeated, and the blocks past the spec's own pass their input on. So
        one graph per skeleton (stages, block kinds and options) trains every depth of it. The
        options a step does not bake in (`_ELASTIC_OPTIONS`: the dropout rate, an input of the
        step, and batch normalisation's momentum, unused in training) do not split the graphs: on
        the digits' conv space, 15 graphs became 11.
        """
        import tensorflow as tf

        text = spec.to_json()
        known = self._shapes.get(text)
        if known is None:
            deep, gates = self._deep(spec)
            key, widths = shape_of(deep)
            names = sorted(widths) + sorted(gates)
            values = {**widths, **gates}
            rate = tf.constant(float(dict(spec.options).get("dropout") or 0.0), tf.float32)
            known = self._shapes[text] = (key, names, tf.constant([values[n] for n in names], tf.int32), deep,
                                          rate)
        return known

    def _deep(self, spec) -> tuple[Any, dict[str, int]]:
        """`spec` with each stage padded to the space's deepest, and the gate of each skippable block."""
        import dataclasses

        from keras_structopt.space import family

        groups: dict[int, list] = {}
        for block in spec.blocks:
            groups.setdefault(block.stage, []).append(block)
        blocks: list = []
        own: dict[str, int] = {}
        for stage, group in groups.items():
            for position in range(max(len(group), self._depths.get(stage, 0))):
                own[f"block_{len(blocks)}"] = int(position < len(group))
                blocks.append(group[min(position, len(group) - 1)])
        options = dict(spec.options)
        elastic = {name: value for name, value in _ELASTIC_OPTIONS.items() if name in options}
        if any(options[name] != value for name, value in elastic.items()):
            spec = dataclasses.replace(spec, options=tuple(sorted({**options, **elastic}.items())))
        deep = dataclasses.replace(spec, blocks=tuple(blocks)) if len(blocks) > len(spec.blocks) else spec
        probe = _ShapeProbe()
        family(deep.family).build(deep, probe)
        if any(not value and name not in probe.gated for name, value in own.items()):
            return spec, {}  # a padded block the family cannot skip: this spec's depth is its own graph
        return deep, {name: value for name, value in own.items() if name in probe.gated}

    # -- sub-networks ---------------------------------------------------------------------------

    def forward(self, spec, x, mode: str = "train", statistics: dict | None = None, record: bool = False,
                masks: dict | None = None, caps: dict | None = None, rate=None, dynamic: bool | None = None):
        """`spec`'s outputs on `x` (and the builder that rendered it). With `masks`, the graph of
        `spec`'s shape runs the network the masks describe: dynamic (None: where `spec` has no
        recurrent layer), each layer sliced to its width as the graph runs; else masked."""
        from keras_structopt.space import family

        if dynamic is None:
            dynamic = masks is not None and self._slices(spec)
        builder = SharedBuilder(self.shared, spec, x, mode, statistics, record, masks, caps, rate, dynamic)
        return family(spec.family).build(spec, builder), builder

    def _slices(self, spec) -> bool:
        """Whether a traced graph of `spec`'s shape slices its layers as it runs (no recurrent layer: a
        recurrent cell's gates are laid out by its width, so it computes masked)."""
        from keras_structopt.space import family

        text = spec.to_json()
        known = self._dynamic.get(text)
        if known is None:
            probe = _ShapeProbe()
            family(spec.family).build(spec, probe)
            known = self._dynamic[text] = "rnn" not in probe.called
        return known

    def sandwich(self, rng: random.Random) -> list:
        """The step's sub-networks, of one kind drawn as often as the space holds it: its largest (the
        teacher), its smallest, and random ones of the pool's shapes of that kind."""
        kind = rng.choices(self.kinds, weights=self.kind_weights)[0]
        specs = [rng.choice(self.tops[kind]) if self.teacher_drawn else
                 spec_of(self.hypermodel, extreme_values(self.hypermodel, "max", rng)),
                 rng.choice(self.bottoms[kind]) if self.smallest_drawn else
                 spec_of(self.hypermodel, extreme_values(self.hypermodel, "min", rng))]
        shapes = self.pool_of[kind] if self.teacher_drawn and self.pool_of[kind] else self.pool
        if shapes:
            specs += [rng.choice(self.variants[rng.choice(shapes)]) for _ in range(self.random_subnets)]
        return specs

    def _step(self, spec, distill: bool, probe):
        """The traced training step of one network shape and loss (any widths: masked)."""
        import tensorflow as tf

        if self.shared.version != self._version:  # a variable grew: the traced steps hold the old one
            self._forget_traces()
        shape, names, widths, deep, rate = self._shape(spec)
        if self._cover(shape, spec):  # wider than this shape's graph computes: trace it again
            self._steps.pop((shape, True), None)
            self._steps.pop((shape, False), None)
        known = self._steps.get((shape, distill))
        if known is not None:
            return known, widths, rate
        caps = dict(self._caps[shape])
        masks = {name: widths[i] for i, name in enumerate(names)}
        _, builder = self.forward(deep, probe, masks=masks, caps=caps, rate=rate)  # makes (or grows) its variables
        if self.shared.version != self._version:
            self._forget_traces()
        keys = sorted(builder.used)
        variables = [self.shared.variables[k] for k in keys]
        sums = [self._sum(k) for k in keys]
        loss_function = self.distill_loss if distill else self.loss

        @tf.function(autograph=False, reduce_retracing=True)
        def step(x, target, vector, dropout):
            with tf.GradientTape() as tape:
                outputs, _ = self.forward(deep, x, masks={name: vector[i] for i, name in enumerate(names)},
                                          caps=caps, rate=dropout)
                loss = loss_function(target, outputs)
            for total, gradient in zip(sums, tape.gradient(loss, variables)):
                if gradient is not None:
                    total.assign_add(tf.convert_to_tensor(gradient))
            return loss, outputs

        self._steps[(shape, distill)] = step
        return step, widths, rate

    def _forget_traces(self) -> None:
        self._steps.clear()
        self._apply = None
        self._version = self.shared.version

    def _sum(self, key: str):
        """The variable that sums a step's gradients of `key` over its sub-networks."""
        import tensorflow as tf

        variable = self.shared.variables[key]
        total = self._sums.get(key)
        if total is None or tuple(total.shape) != tuple(variable.shape):
            total = self._sums[key] = tf.Variable(tf.zeros_like(variable), trainable=False)
            self._apply = None
        return total

    def _apply_sums(self, learning_rate) -> None:
        """One Adam step with the summed gradients of the step's sub-networks (BigNAS's sandwich), traced
        once per set of variables."""
        import tensorflow as tf

        if self._apply is None:
            keys = sorted(self._sums)
            variables = [self.shared.variables[k] for k in keys]
            sums = [self._sums[k] for k in keys]
            slots = [self.optimizer.slots(k, v) for k, v in zip(keys, variables)]

            @tf.function(autograph=False)
            def apply(rate):
                self.optimizer.update(variables, slots, [tf.convert_to_tensor(t) for t in sums], rate)
                for total in sums:
                    total.assign(tf.zeros_like(total))

            self._apply = apply
        self._apply(learning_rate)

    def train_step(self, x, y, rng: random.Random, learning_rate: float) -> float:
        """One sandwich step on a batch; returns the largest network's loss."""
        import tensorflow as tf

        x = tf.constant(x)
        y = tf.constant(y)
        teacher, first = None, 0.0
        for i, spec in enumerate(self.sandwich(rng)):
            distill = teacher is not None and self.distill
            step, widths, rate = self._step(spec, distill, x[:2])
            loss, outputs = step(x, teacher if distill else y, widths, rate)
            if i == 0:
                teacher, first = tf.stop_gradient(outputs), float(loss)
        self._apply_sums(tf.constant(learning_rate, tf.float32))
        return first

    def train(self, x, y, *, epochs: int, batch_size: int = 64,
              on_epoch_end: Callable[[Supernet], None] | None = None) -> list[dict]:
        """Trains until `epochs` epochs are done (a resumed supernet goes on from `epochs_done`), the
        learning rate decaying along a cosine over all of them. The last incomplete batch is dropped."""
        x, y = np.asarray(x, dtype="float32"), np.asarray(y)
        batch_size = max(1, min(batch_size, len(x)))
        steps_per_epoch = max(1, len(x) // batch_size)
        total = max(1, epochs * steps_per_epoch)
        with library_noise(messages=SUPERNET_NOISE), _without_graph_rewrites():
            # (a step traced per shape is the design, not a mistake)
            self._train_epochs(x, y, epochs, batch_size, steps_per_epoch, total, on_epoch_end)
        return self.history

    def _train_epochs(self, x, y, epochs, batch_size, steps_per_epoch, total, on_epoch_end) -> None:
        import time

        while self.epochs_done < epochs:
            epoch = self.epochs_done
            rng = random.Random(self.seed * 100_003 + epoch)
            order = np.random.default_rng(self.seed * 100_003 + epoch).permutation(len(x))
            started, losses = time.perf_counter(), []
            for step in range(steps_per_epoch):
                index = order[step * batch_size:(step + 1) * batch_size]
                done = epoch * steps_per_epoch + step
                rate = self.learning_rate * 0.5 * (1 + math.cos(math.pi * done / total))
                losses.append(self.train_step(x[index], y[index], rng, rate))
            self.epochs_done += 1
            self.history.append({"epoch": self.epochs_done, "largest_loss": float(np.mean(losses)),
                                 "seconds": time.perf_counter() - started})
            if on_epoch_end is not None:
                on_epoch_end(self)

    # -- reading a sub-network off -------------------------------------------------------------------

    def calibrate(self, spec, x, batch_size: int = 64, batches: int = 8) -> dict:
        """Batch normalisation statistics of `spec` over a few batches of `x`."""
        sums: dict = {}
        for start in range(0, min(len(x), batch_size * batches), batch_size):
            self.forward(spec, np.asarray(x[start:start + batch_size], "float32"), "calibrate", sums)
        statistics = {}
        for key, (count, total, squares) in sums.items():
            mean = total / count
            statistics[key] = (mean.astype("float32"), np.maximum(squares / count - mean**2, 0).astype("float32"))
        return statistics

    def weights_of(self, spec, calibration_x, batch_size: int = 64, batches: int = 8) -> dict[str, list]:
        """Each Keras layer's weights for `spec`, sliced off the supernet, its statistics recalibrated."""
        return self.read_off(spec, calibration_x, calibration_x[:2], batch_size, batches)[0]

    def read_off(self, spec, calibration_x, x, batch_size: int = 64, batches: int = 8,
                 chunk: int = 2048) -> tuple[dict[str, list], np.ndarray]:
        """`spec`'s Keras layers' weights, sliced off the supernet with their statistics recalibrated, and
        its outputs on `x` with them (in chunks of `chunk` examples), no Keras model built."""
        statistics = self.calibrate(spec, calibration_x, batch_size, batches)
        weights: dict[str, list] | None = None
        outputs = []
        for start in range(0, max(len(x), 1), chunk):
            value, builder = self.forward(spec, np.asarray(x[start:start + chunk], "float32"), "infer", statistics,
                                          record=weights is None)
            weights = builder.weights if weights is None else weights
            outputs.append(np.asarray(value))
        return weights or {}, np.concatenate(outputs)

    def load_into(self, model, spec, calibration_x, batch_size: int = 64, batches: int = 8) -> None:
        """Sets a rendered model's weights (the family's ordinary Keras model of `spec`) from the supernet."""
        set_layer_weights(model, self.weights_of(spec, calibration_x, batch_size, batches))

    # -- checkpoints ------------------------------------------------------------------------------

    def save(self, path) -> None:
        """Writes the supernet's state (weights, optimizer, epochs done) atomically to `path` (.npz)."""
        import json
        from pathlib import Path

        path = Path(path)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        arrays = {f"w|{k}": v for k, v in self.shared.state().items()}
        arrays.update({f"o|{k}": v for k, v in self.optimizer.state().items()})
        arrays["meta"] = np.asarray(json.dumps({"epochs_done": self.epochs_done, "history": self.history}))
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    def restore(self, path) -> None:
        import json

        with np.load(path, allow_pickle=False) as data:
            self.shared.load({k[2:]: data[k] for k in data.files if k.startswith("w|")})
            self.optimizer.load({k[2:]: data[k] for k in data.files if k.startswith("o|")})
            meta = json.loads(str(data["meta"]))
        self.epochs_done, self.history = int(meta["epochs_done"]), list(meta["history"])
