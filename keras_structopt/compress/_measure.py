"""What a compression stage costs: multiply-accumulates, latency, and the entropy of its weights."""

from __future__ import annotations

import math
import time

import numpy as np


def _shape(value) -> tuple:
    value = value[0] if isinstance(value, list) and value and isinstance(value[0], (tuple, list)) else value
    return tuple(value)


def _spatial(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:-1])) if len(shape) > 2 else 1


def layer_macs(layer) -> int:
    """Multiply-accumulates of one example through a built tf_keras layer (products only).

    Counted as `Architecture.count_macs` counts them: dense, convolution, recurrent and
    attention products; normalisation, activations and additions are free.
    """
    name = type(layer).__name__
    try:
        input_shape, output_shape = _shape(layer.input_shape), _shape(layer.output_shape)
    except (AttributeError, RuntimeError):
        return 0
    if name == "Dense":
        return _spatial(output_shape) * int(input_shape[-1]) * int(output_shape[-1])
    if name in ("Conv1D", "Conv2D", "Conv3D"):
        taps = int(math.prod(layer.kernel_size))
        return _spatial(output_shape) * taps * int(input_shape[-1]) * int(output_shape[-1]) // layer.groups
    if name in ("SeparableConv1D", "SeparableConv2D"):
        taps = int(math.prod(layer.kernel_size))
        channels = int(input_shape[-1]) * layer.depth_multiplier
        return _spatial(output_shape) * (taps * channels + channels * int(output_shape[-1]))
    if name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return _spatial(output_shape) * int(math.prod(layer.kernel_size)) * int(output_shape[-1])
    if name in ("LSTM", "GRU", "SimpleRNN"):
        gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[name]
        steps = int(input_shape[1]) if input_shape[1] is not None else 1
        return steps * gates * layer.units * (int(input_shape[-1]) + layer.units)
    if name == "Bidirectional":
        inner = layer.forward_layer
        gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}.get(type(inner).__name__, 0)
        steps = int(input_shape[1]) if input_shape[1] is not None else 1
        return 2 * steps * gates * inner.units * (int(input_shape[-1]) + inner.units)
    if name == "MultiHeadAttention":
        steps, width = int(input_shape[1]), int(input_shape[-1])
        heads, key, value = layer._num_heads, layer._key_dim, layer._value_dim or layer._key_dim
        out = int(output_shape[-1])
        projections = steps * width * heads * (2 * key + value) + steps * heads * value * out
        return projections + steps * steps * heads * (key + value)
    return 0


def count_model_macs(model) -> int:
    """Multiply-accumulates of one example through a tf_keras model (nested models opened).

    Example:
        >>> import tf_keras
        >>> model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(8)])
        >>> count_model_macs(model)
        32
    """
    from keras_structopt.bridge._graph import iter_layers

    return sum(layer_macs(layer) for _, layer in iter_layers(model))


def entropy_bits(model) -> float:
    """The entropy bound of a model's weights, in bits.

    Each weight tensor is coded at the empirical entropy of its values, plus a
    codebook of its distinct values at 32 bits each, or stored raw at 32 bits per
    weight when that is cheaper: `min(32 n, n H + 32 u)` for `n` weights, entropy
    `H` and `u` distinct values. Random float weights cost 32 bits each; pruned and
    clustered ones a few.

    Example:
        >>> import numpy as np, tf_keras
        >>> model = tf_keras.Sequential([tf_keras.Input((16,)), tf_keras.layers.Dense(4, use_bias=False)])
        >>> model.set_weights([np.repeat([[0.0], [1.0]], 32).reshape(16, 4).astype("float32")])
        >>> entropy_bits(model)  # 64 weights at 1 bit, and two 32-bit values
        128.0
    """
    total = 0.0
    for weights in model.get_weights():
        values = np.asarray(weights).ravel()
        if not values.size:
            continue
        _, counts = np.unique(values, return_counts=True)
        probabilities = counts / values.size
        coded = float(-(probabilities * np.log2(probabilities)).sum() * values.size) + 32.0 * len(counts)
        total += min(32.0 * values.size, coded)
    return total


def _median_seconds(function, repeats: int, budget: float = 0.25) -> float:
    """The median time of `function`, over at least `repeats` calls and `budget` seconds."""
    function()  # warm up
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start_all < budget and len(times) < 50 * repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _batch(x, size: int):
    """`size` examples from `x` (cycled when `x` is shorter)."""
    def take(array):
        array = np.asarray(array)
        reps = -(-size // len(array))
        return np.concatenate([array] * reps)[:size]

    if isinstance(x, dict):
        return {k: take(v) for k, v in x.items()}
    if isinstance(x, list):
        return [take(v) for v in x]
    return take(x)


def keras_latency(model, x, batch_size: int, repeats: int = 20) -> float:
    """Median seconds of one forward pass of a tf_keras model on a batch (traced once)."""
    import tensorflow as tf

    batch = _batch(x, batch_size)
    forward = tf.function(lambda inputs: model(inputs, training=False))
    tensors = tf.nest.map_structure(tf.constant, batch)
    return _median_seconds(lambda: forward(tensors), repeats)


def tflite_latency(data: bytes, x, batch_size: int, repeats: int = 20) -> float:
    """Median seconds of one TFLite invocation on a batch, on one thread.

    Files converted for one example per call (recurrent models) run the batch one
    example at a time, as they would be served.
    """
    from keras_structopt.export._runtime import TFLiteRunner

    batch = _batch(x, batch_size)
    runner = TFLiteRunner(data, num_threads=1)
    return _median_seconds(lambda: runner(batch, batch_size=batch_size), repeats)
