"""Structural slimming of a Keras 3 model: whole units and filters removed, for real.

Unstructured pruning leaves every layer as wide as before, so GPUs and TPUs (which
compute dense) gain nothing from it. Slimming removes whole units, filters and
recurrent units, and rebuilds the model narrower:

1. **Channel classes.** The functional graph is walked once. Every layer that makes
   channels (Dense, Conv, SeparableConv, Embedding, LSTM/GRU, ...) gives each output
   channel an id; layers that keep channels (BatchNorm, activations, pooling, dropout,
   depthwise convolutions, ...) pass the ids on; `Add`, `Multiply` and friends tie the
   ids of their inputs position by position (so a residual stream loses a channel in
   every layer that writes to it, or in none); `Concatenate` and `Flatten` lay the ids
   out as the next layer's kernel rows see them. Channels that reach a model input or
   output, a LayerNormalization, an attention layer, a reshape or a nested model are
   pinned: they stay.
   A `MultiHeadAttention` layer called once keeps its input and output channels, but
   its heads are removable: each head is removed whole (its query, key and value
   columns and its rows of the output projection).
2. **Importance.** A channel's cost of removal is measured on data, at every layer that
   consumes it: the standard deviation of the channel there times the norm of the
   kernel rows that read it. Its mean is not lost: it is folded into the consumer's bias
   (or the following BatchNorm's moving mean), so a dead or constant unit is removed
   without changing the outputs at all. A head's importance is the standard deviation,
   on `x`, of what it adds to its layer's output (measured by switching the head off);
   its mean contribution moves into the output projection's bias the same way.
3. **Removal.** In every group of tied channels the least important fraction `ratio` is
   removed (dead channels always), keeping at least `min_units` and a multiple of
   `multiple` (8 suits GPU tensor cores, 128 TPUs); in every attention layer the least
   important fraction `heads` of the heads is removed (`ratio` unless given; at least one
   head stays); the model is rebuilt from its config with the new widths and the
   surviving weights are sliced into it.

Everything happens in Keras 3, without TFMOT: the slimmed model trains further, saves,
serves, or goes on to `compress`'s TFMOT stages.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import Data, Inputs, Model
from keras_structopt.bridge._registry import registration_of
from keras_structopt.compress._stages import DEFAULT_RATIO

# Layers that keep their input's channels, elementwise or per channel.
_KEEP = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
    "Cropping2D", "UpSampling1D", "UpSampling2D", "Identity",
}
# Layers with one weight per channel on the last axis (sliced with their channels).
_PER_CHANNEL = {"BatchNormalization", "PReLU", "PositionEmbedding", "Normalization"}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
_MIXING = ("softmax", "log_softmax")  # activations computed across the channels
_RECURRENT = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}
_PRODUCER_WIDTH = {
    "Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters",
    "SeparableConv1D": "filters", "SeparableConv2D": "filters", "Embedding": "output_dim",
    "LSTM": "units", "GRU": "units", "SimpleRNN": "units",
}


class _Classes:
    """Union-find over channel ids."""

    def __init__(self):
        self.parent: list[int] = []

    def new(self, count: int) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + count))
        return list(range(start, start + count))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


@dataclasses.dataclass
class _Use:
    """A layer reading channels through kernel rows (or per-channel weights)."""

    layer: Any
    tensor: Any  # the Keras 3 tensor it reads
    rows: list[int]  # channel id of each input row (last axis)


@dataclasses.dataclass
class _Made:
    """A layer making channels: the ids of its outputs (per direction for Bidirectional)."""

    layer: Any
    ids: list[int]


@dataclasses.dataclass(frozen=True)
class SlimPlan:
    """What slimming removes: per layer, the kept output channels and kept input rows.

    Attributes:
        widths: `{layer name: (width before, width after)}` for each layer made narrower.
        removed_fraction: Removed channels over removable ones.
        heads: `{attention layer name: (heads before, heads after)}` for each
            `MultiHeadAttention` layer that lost heads.

    Example:
        >>> import keras, numpy as np
        >>> from keras_structopt.compress import slim
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"), keras.layers.Dense(2)])
        >>> _, plan = slim(model, np.random.default_rng(0).normal(size=(16, 4)), ratio=0.5)
        >>> plan.widths
        {'hidden': (8, 4)}
    """

    widths: dict[str, tuple[int, int]]
    removed_fraction: float
    heads: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    kept_heads: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    kept_out: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    kept_in: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    kept_channels: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    channel_counts: dict[str, int] = dataclasses.field(repr=False, default_factory=dict)
    bias_shift: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    moving_mean_shift: dict[str, np.ndarray] = dataclasses.field(repr=False, default_factory=dict)
    gains_bias: set[str] = dataclasses.field(repr=False, default_factory=set)


def _functional(model):
    import keras

    if isinstance(model, keras.Sequential):
        if not model.built:
            raise _checks.error(
                f"Expected a built model (give it a keras.Input). Received: model {model.name!r}, not built."
            )
        return keras.Model(model.inputs, model.outputs, name=model.name)
    return model


def _width(tensor) -> int:
    return int(tensor.shape[-1])


class _Graph:
    """The channel classes of a Keras 3 functional model (see the module's docstring)."""

    def __init__(self, model):
        import keras

        from keras_structopt.bridge._graph import is_graph_model

        self.model = _functional(model)
        if not is_graph_model(self.model) or isinstance(self.model, keras.Sequential):
            raise _checks.error(
                f"Expected a Sequential or functional Keras 3 model. Received: {type(model).__name__}."
            )
        self.classes = _Classes()
        self.pinned: set[int] = set()
        self.channels: dict[int, list[int]] = {}  # id(tensor) -> channel ids of its last axis
        self.uses: list[_Use] = []
        self.made: dict[str, _Made] = {}
        self.per_channel: dict[str, list[int]] = {}  # layer name -> channel ids of its weights
        self.calls: dict[str, int] = {}
        self.attention: dict[str, Any] = {}  # attention layer name -> its node (heads removable)
        for operation in self.model.operations:
            self.calls[operation.name] = sum(
                1 for node in operation._inbound_nodes if self._in_model(node)
            )
        for depth in sorted(self.model._nodes_by_depth, reverse=True):
            for node in self.model._nodes_by_depth[depth]:
                self._visit(node)
        for tensor in self.model.outputs:
            self._pin(self._ids(tensor))

    def _in_model(self, node) -> bool:
        return any(node in nodes for nodes in self.model._nodes_by_depth.values())

    def _ids(self, tensor) -> list[int]:
        return self.channels[id(tensor)]

    def _pin(self, ids) -> None:
        self.pinned.update(ids)

    def _fresh(self, tensor, pinned=False) -> list[int]:
        ids = self.classes.new(_width(tensor))
        if pinned:
            self._pin(ids)
        return ids

    def _visit(self, node) -> None:
        layer = node.operation
        inputs = list(node.input_tensors)
        outputs = list(node.output_tensors)
        name = type(layer).__name__
        if node.is_input:
            for tensor in outputs:
                self.channels[id(tensor)] = self._fresh(tensor, pinned=True)
            return
        ids_in = [self._ids(t) for t in inputs]
        result = self._channels_out(layer, name, inputs, ids_in, outputs)
        if result is None:  # not understood: pin everything it touches
            for ids in ids_in:
                self._pin(ids)
            result = [self._fresh(t, pinned=True) for t in outputs]
        for tensor, ids in zip(outputs, result):
            self.channels[id(tensor)] = ids

    def _channels_out(self, layer, name, inputs, ids_in, outputs):
        config = layer.get_config()
        if self.calls.get(layer.name, 1) != 1 or len(outputs) != 1:
            return None  # shared layers and several outputs stay as they are
        if name == "MultiHeadAttention":
            self.attention[layer.name] = self._node_of(layer)
            return None  # its channels stay; its heads are removable (`_head_importance`)
        registration = registration_of(layer)
        if registration is not None:  # a registered custom layer: as its registration says
            if registration.slim != "channelwise" or len(inputs) != 1 or _width(outputs[0]) != len(ids_in[0]):
                return None
            self.per_channel[layer.name] = ids_in[0]
            return [ids_in[0]]
        last_axis = config.get("axis", -1) in (-1, len(inputs[0].shape) - 1) if inputs else False
        if name in _KEEP:
            if config.get("activation") in _MIXING:
                return None  # a softmax over the channels mixes them
            return [ids_in[0]]
        if name in _PER_CHANNEL:
            axis = config.get("axis", -1)
            axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
            if name == "PReLU" and (config.get("shared_axes") or []) and len(inputs[0].shape) - 1 in [
                a % len(inputs[0].shape) for a in config["shared_axes"]
            ]:
                return None
            if axis not in (-1, len(inputs[0].shape) - 1):
                return None
            self.per_channel[layer.name] = ids_in[0]
            return [ids_in[0]]
        if name in _MERGE:
            if any(len(ids) != len(ids_in[0]) for ids in ids_in):
                return None
            for ids in ids_in[1:]:
                for a, b in zip(ids_in[0], ids):
                    self.classes.union(a, b)
            return [ids_in[0]]
        if name == "Concatenate":
            if not last_axis:
                return None
            return [[i for ids in ids_in for i in ids]]
        if name == "Flatten":
            positions = math.prod(int(d) for d in inputs[0].shape[1:-1]) if len(inputs[0].shape) > 2 else 1
            return [ids_in[0] * positions]  # channels-last order: index = position * C + channel
        if name in ("DepthwiseConv1D", "DepthwiseConv2D"):
            if config.get("depth_multiplier", 1) != 1:
                return None
            self.per_channel[layer.name] = ids_in[0]
            return [ids_in[0]]
        if name in ("Conv1D", "Conv2D", "Conv3D") and config.get("groups", 1) != 1:
            if not config["groups"] == config["filters"] == len(ids_in[0]):
                return None  # groups of several channels each stay as they are
            self.per_channel[layer.name] = ids_in[0]  # one filter per channel: a depthwise convolution
            return [ids_in[0]]
        if name in ("Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D"):
            if config.get("depth_multiplier", 1) != 1:
                return None
            self.uses.append(_Use(layer, inputs[0], ids_in[0]))
            return [self._producer(layer, outputs[0])]
        if name == "Embedding":
            return [self._producer(layer, outputs[0])]
        if name in _RECURRENT and not config.get("return_state") and not config.get("stateful"):
            self.uses.append(_Use(layer, inputs[0], ids_in[0]))
            return [self._producer(layer, outputs[0])]
        if name == "Bidirectional":
            inner = type(layer.forward_layer).__name__
            if inner not in _RECURRENT or config.get("merge_mode") not in ("concat", "sum", "ave", "mul"):
                return None
            if layer.forward_layer.get_config().get("return_state"):
                return None
            self.uses.append(_Use(layer, inputs[0], ids_in[0]))
            units = int(layer.forward_layer.units)
            forward, backward = self.classes.new(units), self.classes.new(units)
            self.made[layer.name] = _Made(layer, forward + backward)
            if config["merge_mode"] == "concat":
                return [forward + backward]
            for a, b in zip(forward, backward):
                self.classes.union(a, b)
            return [forward]
        return None

    def _node_of(self, layer):
        return next(node for node in layer._inbound_nodes if self._in_model(node))

    def _producer(self, layer, tensor) -> list[int]:
        ids = self.classes.new(_width(tensor))
        self.made[layer.name] = _Made(layer, ids)
        if layer.get_config().get("activation") in _MIXING:
            self._pin(ids)  # a softmax over the channels mixes them
        return ids

    # -- classes ---------------------------------------------------------------------

    def removable_groups(self) -> list[list[int]]:
        """Groups of tied producers' channels: each a list of class roots, one per channel."""
        pinned_roots = {self.classes.find(i) for i in self.pinned}
        groups: dict[frozenset, list[int]] = {}
        for made in self.made.values():
            chunks = [made.ids]
            if type(made.layer).__name__ == "Bidirectional":
                half = len(made.ids) // 2
                chunks = [made.ids[:half], made.ids[half:]]
            for chunk in chunks:
                roots = [self.classes.find(i) for i in chunk]
                key = frozenset(roots)
                if key in groups or any(r in pinned_roots for r in roots):
                    continue
                groups[key] = roots
        # Merge groups that share classes (a producer tied to part of another's channels).
        merged: list[set[int]] = []
        for roots in groups.values():
            overlapping = [g for g in merged if g & set(roots)]
            combined = set(roots).union(*overlapping) if overlapping else set(roots)
            merged = [g for g in merged if g not in overlapping] + [combined]
        return [sorted(g) for g in merged]


def _statistics(graph: _Graph, x, batch_size: int = 256):
    """Mean and standard deviation of every consumed tensor's channels, on `x`."""
    import keras

    tensors = []
    seen = set()
    for use in graph.uses:
        if id(use.tensor) not in seen:
            seen.add(id(use.tensor))
            tensors.append(use.tensor)
    if not tensors:
        return {}
    probe = keras.Model(graph.model.inputs, tensors)
    values = probe.predict(x, batch_size=batch_size, verbose=0)
    if len(tensors) == 1:
        values = [values]
    result = {}
    for tensor, value in zip(tensors, values):
        flat = np.asarray(value, dtype="float64").reshape(-1, value.shape[-1])
        result[id(tensor)] = (flat.mean(axis=0), flat.std(axis=0))
    return result


def _head_weights(layer) -> dict[str, Any]:
    """An attention layer's variables by role: query/kernel, ..., attention_output/bias."""
    return {"/".join(v.path.split("/")[-2:]): v for v in layer.weights}


def _head_importance(graph: _Graph, x, batch_size: int = 256) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per attention layer: each head's importance on `x` and its mean contribution to the output.

    A head's contribution is the layer's output minus its output with the head's rows of the
    output projection set to zero (exact: the projection is linear in the heads).
    """
    import keras

    if not graph.attention:
        return {}
    nodes = list(graph.attention.items())
    tensors: list[Any] = []
    for _, node in nodes:
        tensors.extend(t for t in node.arguments.keras_tensors if id(t) not in {id(u) for u in tensors})
    probe = keras.Model(graph.model.inputs, tensors)
    values = probe.predict(x, batch_size=batch_size, verbose=0)
    values = [values] if len(tensors) == 1 else values
    known = {id(t): keras.ops.convert_to_tensor(v) for t, v in zip(tensors, values)}
    result = {}
    for name, node in nodes:
        layer = node.operation
        args, kwargs = node.arguments.fill_in(known)
        kwargs = {**kwargs, "training": False}
        kernel = _head_weights(layer)["attention_output/kernel"]  # (heads, value_dim, ..., out)
        original = np.array(kernel.numpy())
        full = np.asarray(layer(*args, **kwargs), dtype="float64")
        std, mean = [], []
        try:
            for head in range(original.shape[0]):
                ablated = original.copy()
                ablated[head] = 0.0
                kernel.assign(ablated)
                part = full - np.asarray(layer(*args, **kwargs), dtype="float64")
                part = part.reshape(-1, part.shape[-1])
                mean.append(part.mean(axis=0))
                std.append(float(np.sqrt(np.sum(part.var(axis=0)))))
        finally:
            kernel.assign(original)
        result[name] = (np.array(std), np.array(mean))
    return result


def _row_norms(layer) -> np.ndarray:
    """The norm of the kernel rows that read each input channel (last axis of the input)."""
    name = type(layer).__name__
    if name == "Bidirectional":
        return np.sqrt(_row_norms(layer.forward_layer) ** 2 + _row_norms(layer.backward_layer) ** 2)
    if name in _RECURRENT:
        kernel = np.asarray(layer.cell.kernel.numpy())
        return np.linalg.norm(kernel, axis=1)
    if name.startswith("SeparableConv"):
        depthwise = np.asarray(layer.depthwise_kernel.numpy())  # (..., in, mult)
        pointwise = np.asarray(layer.pointwise_kernel.numpy())  # (1.., in*mult, out)
        channels, mult = depthwise.shape[-2], depthwise.shape[-1]
        pointwise = pointwise.reshape(channels, mult, -1)
        depth = np.linalg.norm(depthwise.reshape(-1, channels, mult), axis=0)  # (in, mult)
        return np.sqrt(np.sum((depth[:, :, None] * np.abs(pointwise)) ** 2, axis=(1, 2)))
    kernel = np.asarray(layer.kernel.numpy())
    kernel = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1)  # (in, rest)
    return np.linalg.norm(kernel, axis=1)


def _mean_contribution(layer, removed_rows, means) -> np.ndarray:
    """What the removed input rows add, on average, to each output of `layer` (its bias shift)."""
    name = type(layer).__name__
    if name == "Bidirectional":
        return np.concatenate(
            [_mean_contribution(d, removed_rows, means) for d in (layer.forward_layer, layer.backward_layer)]
        )
    if name in _RECURRENT:
        kernel = np.asarray(layer.cell.kernel.numpy())
        return means[removed_rows] @ kernel[removed_rows]
    if name.startswith("SeparableConv"):
        depthwise = np.asarray(layer.depthwise_kernel.numpy())
        pointwise = np.asarray(layer.pointwise_kernel.numpy())
        channels, mult = depthwise.shape[-2], depthwise.shape[-1]
        depth_sum = depthwise.reshape(-1, channels, mult).sum(axis=0)  # (in, mult)
        pointwise = pointwise.reshape(channels, mult, -1)
        return np.einsum("c,cm,cmo->o", means[removed_rows], depth_sum[removed_rows], pointwise[removed_rows])
    kernel = np.asarray(layer.kernel.numpy())
    kernel = np.moveaxis(kernel, -2, 0)  # (in, ..., out)
    summed = kernel.reshape(kernel.shape[0], -1, kernel.shape[-1]).sum(axis=1)  # spatial taps summed
    return means[removed_rows] @ summed[removed_rows]


def plan_slimming(model, x, *, ratio: float, min_units: int = 1, multiple: int = 1,
                  heads: float | None = None) -> SlimPlan:
    """Decides which channels to remove from a Keras 3 model (see `slim`)."""
    graph = _Graph(model)
    stats = _statistics(graph, x)
    find = graph.classes.find
    importance: dict[int, float] = {}
    for use in graph.uses:
        mean, std = stats[id(use.tensor)]
        norms = _row_norms(use.layer)
        for row, channel in enumerate(use.rows):
            root = find(channel)
            importance[root] = importance.get(root, 0.0) + float(std[row] * norms[row])
    removed: set[int] = set()
    removable = 0
    for roots in graph.removable_groups():
        removable += len(roots)
        scores = np.array([importance.get(r, 0.0) for r in roots])
        scale = float(scores.max()) if len(scores) else 0.0
        dead = {r for r, s in zip(roots, scores) if s <= 1e-7 * max(scale, 1e-12)}
        keep = max(min_units, math.ceil((1.0 - ratio) * len(roots)))
        if multiple > 1:
            keep = math.ceil(keep / multiple) * multiple
        keep = min(keep, len(roots))
        order = [roots[i] for i in np.argsort(-scores, kind="stable")]
        kept = [r for r in order[:keep] if r not in dead] or order[:1]
        removed.update(r for r in roots if r not in set(kept))
    plan = SlimPlan(widths={}, removed_fraction=len(removed) / removable if removable else 0.0)
    for name, (scores, means) in _head_importance(graph, x).items():
        count = len(scores)
        # float32 attention leaves a constant head ~1e-6 of the others' spread, not 0
        silent = scores <= 1e-5 * max(float(scores.max()), 1e-12)
        keep = min(count, max(1, math.ceil((1.0 - (ratio if heads is None else heads)) * count)))
        order = [int(h) for h in np.argsort(-scores, kind="stable")]
        kept = sorted(h for h in order[:keep] if not silent[h]) or order[:1]
        plan.kept_heads[name] = np.array(kept, dtype=int)
        if len(kept) < count:
            plan.heads[name] = (count, len(kept))
            removed_heads = [h for h in range(count) if h not in kept]
            plan.bias_shift[name] = np.sum([means[h] for h in removed_heads], axis=0)
    for name, made in graph.made.items():
        kept_out = np.array([i for i, c in enumerate(made.ids) if find(c) not in removed], dtype=int)
        plan.kept_out[name] = kept_out
        if len(kept_out) < len(made.ids):
            plan.widths[name] = (len(made.ids), len(kept_out))
    for use in graph.uses:
        rows = np.array([find(c) not in removed for c in use.rows])
        plan.kept_in[use.layer.name] = np.flatnonzero(rows)
        if not rows.all():
            mean, _ = stats[id(use.tensor)]
            shift = _mean_contribution(use.layer, np.flatnonzero(~rows), mean)
            _place_shift(graph, use.layer, shift, plan)
    for name, ids in graph.per_channel.items():
        plan.kept_channels[name] = np.array([i for i, c in enumerate(ids) if find(c) not in removed], dtype=int)
        plan.channel_counts[name] = len(ids)
    return plan


def _place_shift(graph, layer, shift, plan: SlimPlan) -> None:
    """Where the mean of removed inputs goes: the layer's bias, else the BatchNorm after it."""
    config = layer.get_config()
    if config.get("use_bias", True):
        plan.bias_shift[layer.name] = shift
        return
    followers = [node.operation for node in layer._outbound_nodes if graph._in_model(node)]
    if len(followers) == 1 and type(followers[0]).__name__ == "BatchNormalization":
        # BN(x - shift) with moving_mean - shift equals BN(x): the mean moves into the statistics.
        plan.moving_mean_shift[followers[0].name] = shift
        return
    plan.bias_shift[layer.name] = shift
    plan.gains_bias.add(layer.name)


def _gate_columns(kept: np.ndarray, units: int, gates: int) -> np.ndarray:
    return np.concatenate([g * units + kept for g in range(gates)])


def _slice_recurrent(old, kept_in, kept_out, shift):
    """A recurrent layer's (kernel, recurrent_kernel, bias), sliced to the kept units."""
    cell = old.cell
    gates = _RECURRENT[type(old).__name__]
    units = int(old.units)
    columns = _gate_columns(kept_out, units, gates)
    kernel = np.asarray(cell.kernel.numpy())
    values = [kernel[kept_in][:, columns], np.asarray(cell.recurrent_kernel.numpy())[kept_out][:, columns]]
    if cell.use_bias:
        bias = np.array(cell.bias.numpy())
        if shift is not None:
            if bias.ndim == 2:
                bias[0] += shift  # GRU(reset_after): the input bias row
            else:
                bias += shift
        values.append(bias[..., columns])
    return values


def _sliced_weights(old, plan: SlimPlan) -> list[np.ndarray]:
    """The new layer's weights: the old ones with removed channels taken out."""
    name = type(old).__name__
    kept_in = plan.kept_in.get(old.name)
    kept_out = plan.kept_out.get(old.name)
    channels = plan.kept_channels.get(old.name)
    shift = plan.bias_shift.get(old.name)
    if name == "Bidirectional":
        kept_out = cast(np.ndarray, kept_out)  # set for every Bidirectional the graph slims (`_Graph._channels_out`)
        units = int(old.forward_layer.units)
        half = None if shift is None else len(shift) // 2
        forward = _slice_recurrent(old.forward_layer, kept_in, kept_out[kept_out < units],
                                   None if shift is None else shift[:half])
        backward = _slice_recurrent(old.backward_layer, kept_in, kept_out[kept_out >= units] - units,
                                    None if shift is None else shift[half:])
        return forward + backward
    if name in _RECURRENT:
        return _slice_recurrent(old, kept_in, kept_out, shift)
    if name == "MultiHeadAttention" and old.name in plan.kept_heads:
        heads = plan.kept_heads[old.name]
        values = []
        for role, variable in _head_weights(old).items():
            value = np.array(variable.numpy())
            if role in ("query/kernel", "key/kernel", "value/kernel"):
                value = value[:, heads]  # (in, heads, dim)
            elif role in ("query/bias", "key/bias", "value/bias", "attention_output/kernel"):
                value = value[heads]  # (heads, dim) and (heads, dim, out)
            elif role == "attention_output/bias" and shift is not None:
                value = value + shift.reshape(value.shape)
            values.append(value)
        return values
    weights = {v.path.split("/")[-1]: np.array(v.numpy()) for v in old.weights}
    if name == "Embedding":
        return [weights["embeddings"][:, kept_out]]
    if name in _PRODUCER_WIDTH and channels is None:  # Dense, convolutions (not one filter per channel)
        if kept_in is None:
            kept_in = np.arange(weights["pointwise_kernel" if name.startswith("Separable") else "kernel"].shape[-2])
        if name.startswith("Separable"):
            values = [weights["depthwise_kernel"][..., kept_in, :],
                      weights["pointwise_kernel"][..., kept_in, :][..., kept_out]]
        else:
            values = [weights["kernel"][..., kept_in, :][..., kept_out]]
        bias = weights.get("bias")
        if old.name in plan.gains_bias:
            assert shift is not None  # `_place_shift` gives a layer a bias only to hold its shift
            bias = np.zeros(len(shift), dtype="float32")
        if bias is not None:
            values.append((bias + (0 if shift is None else shift))[kept_out])
        return values
    if channels is None:
        return [np.array(v.numpy()) for v in old.weights]
    count = plan.channel_counts[old.name]  # per-channel layers: BatchNorm, depthwise, PReLU, ...
    values = []
    for variable in old.weights:
        value = np.array(variable.numpy())
        if variable.path.endswith("moving_mean") and old.name in plan.moving_mean_shift:
            value = value - plan.moving_mean_shift[old.name]
        if name.startswith("DepthwiseConv") and variable.path.endswith("kernel"):
            value = value[..., channels, :]
        elif value.ndim and value.shape[-1] == count:
            value = value[..., channels]
        values.append(value)
    return values


def _new_config(model, plan: SlimPlan) -> dict:
    """The model's config with the narrower widths (and the biases that hold mean shifts)."""
    import copy

    config = copy.deepcopy(model.get_config())
    config.pop("architecture", None)
    _drop_build_configs(config)  # the old input shapes: layers build on their new inputs
    for entry in config["layers"]:
        layer_config = entry["config"]
        name = layer_config.get("name", entry.get("name"))
        if name in plan.gains_bias:
            layer_config["use_bias"] = True
        if name in plan.heads:
            layer_config["num_heads"] = int(plan.heads[name][1])
        if name in plan.kept_channels:  # per-channel layers whose config states their width
            count = int(len(plan.kept_channels[name]))
            if int(layer_config.get("groups", 1) or 1) > 1:  # a convolution of one filter per channel
                layer_config["filters"] = layer_config["groups"] = count
            registration = registration_of(model.get_layer(name))
            if registration is not None and registration.slim_width is not None:
                layer_config[registration.slim_width] = count
        if name not in plan.kept_out or name not in plan.widths:
            continue
        kept = plan.kept_out[name]
        if entry["class_name"] == "Bidirectional":
            units = int(layer_config["layer"]["config"]["units"])
            layer_config["layer"]["config"]["units"] = int(np.sum(kept < units))
            layer_config["backward_layer"]["config"]["units"] = int(np.sum(kept >= units))
        else:
            layer_config[_PRODUCER_WIDTH[entry["class_name"]]] = int(len(kept))
    return config


def _drop_build_configs(value) -> None:
    if isinstance(value, dict):
        value.pop("build_config", None)
        for item in value.values():
            _drop_build_configs(item)
    elif isinstance(value, list):
        for item in value:
            _drop_build_configs(item)


def apply_plan(model, plan: SlimPlan):
    """Rebuilds `model` narrower as `plan` says, with the surviving weights (a new model)."""
    import keras

    source = _functional(model)
    config = _new_config(source, plan)
    target = keras.Model.from_config(config) if not isinstance(source, keras.Sequential) else None
    assert target is not None  # `_functional` turns a Sequential model into a functional one
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(_sliced_weights(source.get_layer(layer.name), plan))
    return target


def _layer_width(model, name: str):
    try:
        layer = model.get_layer(name)
    except ValueError:
        return None
    config = layer.get_config()
    if type(layer).__name__ == "Bidirectional":
        return int(layer.forward_layer.units) if layer.forward_layer.units == layer.backward_layer.units else None
    key = _PRODUCER_WIDTH.get(type(layer).__name__)
    return int(config[key]) if key else None


def respecify(spec, model):
    """The `Architecture` a slimmed model still matches, or None when it no longer has one.

    Slimming keeps a spec only where the narrower network is again one the family
    can describe (each block one width, read through the family's slimming map);
    otherwise the model is a plain functional model, which the bridge and the exports
    carry all the same.

    Raises:
        RuntimeError: if the family's slimming map names a layer its rendering does not
            make (the two parts of the family module disagree).
    """
    import keras

    from keras_structopt.errors import ConfigurationError
    from keras_structopt.space import Block, family, render

    definition = family(spec.family)
    names = {layer.name for layer in model.layers}
    blocks = []
    for i, block in enumerate(spec.blocks):
        layers = definition.block_layers(spec, i, block)
        missing = [name for name in layers if name not in names]
        if missing:
            raise RuntimeError(
                f"The {spec.family!r} family's slimming map names the layers {missing} for block {i}, which its "
                f"rendering does not make; its layers are {sorted(names)}."
            )
        widths = {_layer_width(model, name) for name in layers}
        if len(widths) != 1 or None in widths:
            return None
        blocks.append(Block(block.kind, widths.pop(), block.stage))
    changes: dict = {"blocks": blocks}
    if definition.slimmed_options is not None:
        options = definition.slimmed_options(spec, model)
        if options is None:
            return None
        changes["options"] = options
    try:
        candidate = spec.replace(**changes)
        rendered = render(candidate, keras)
    except (ConfigurationError, ValueError):
        return None
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in rendered.layers}
    if shapes != {layer.name: [tuple(w.shape) for w in layer.weights] for layer in model.layers}:
        return None
    return candidate


def slim(model: Model, x: Inputs, *, ratio: float = DEFAULT_RATIO, min_units: int = 1, multiple: int = 1,
         heads: float | None = None, train_data: Data | None = None, epochs: int = 0, batch_size: int = 32,
         verbose: int = 0) -> tuple[Model, SlimPlan]:
    """Removes whole units and filters from a Keras 3 model; returns `(model, plan)`.

    The least important fraction `ratio` of the channels in every group of tied
    channels is removed (see the module's docstring for what ties channels and how
    importance is measured on `x`); units that are dead or constant on `x` are
    always removed, their contribution folded into the next layer's bias, so
    `ratio=0` removes exactly those and leaves the outputs unchanged. The model is
    rebuilt narrower with the surviving weights; the one you pass is not modified.
    A keras-structopt model keeps an `Architecture` when the narrower network is
    still one its family describes.

    Args:
        model: A Keras 3 Sequential or functional model (a HyperModel's, or a user's).
        x: Inputs to measure the channels on (a few hundred training examples).
        ratio: Fraction of each group's channels to remove, in `[0, 1)`.
        min_units: Fewest channels any group keeps.
        multiple: Round each group's kept channels up to this multiple (8 for GPU
            tensor cores, 128 for TPUs; never above the original width).
        heads: Fraction of each `MultiHeadAttention` layer's heads to remove, in
            `[0, 1)`, least important first (at least one head stays); None: `ratio`.
        train_data: `(x, y)` to fine-tune the slimmed model on, compiled as `model`
            was (optimizer, loss, metrics); needs `epochs`.
        epochs: Fine-tuning epochs (0: none, the model is returned uncompiled).
        batch_size: Fine-tuning batch size.
        verbose: Keras verbosity while fine-tuning.

    Returns:
        `(slimmed, plan)`: a Keras 3 model (compiled as `model` was when fine-tuned)
        and a `SlimPlan` whose `widths` lists every layer made narrower (and `heads`
        every attention layer that lost heads).

    Example:
        >>> import keras, numpy as np
        >>> from keras_structopt.compress import slim
        >>> inputs = keras.Input((16,))
        >>> hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
        >>> x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
        >>> small, plan = slim(model, x, ratio=0.5)
        >>> plan.widths
        {'hidden': (32, 16)}
        >>> small.count_params() < model.count_params()
        True
    """
    import keras

    from keras_structopt.bridge import architecture_of
    from keras_structopt.bridge._spec import rerender

    _checks.fraction("ratio", ratio)
    _checks.positive_int("min_units", min_units)
    _checks.positive_int("multiple", multiple)
    if heads is not None:
        _checks.fraction("heads", heads)
    _checks.non_negative_int("epochs", epochs)
    compile_config = model.get_compile_config() if epochs else None
    if epochs and (train_data is None or not compile_config):
        raise _checks.error(
            "Expected train_data=(x, y) and a compiled model to fine-tune the slimmed model on. Received: "
            f"epochs={epochs}, train_data={'None' if train_data is None else 'given'}, and a model that was "
            f"{'compiled' if compile_config else 'never compiled'}."
        )
    plan = plan_slimming(model, x, ratio=ratio, min_units=min_units, multiple=multiple, heads=heads)
    slimmed = apply_plan(model, plan)
    spec = architecture_of(model)
    if spec is not None:
        new_spec = respecify(spec, slimmed)
        if new_spec is not None:  # a StructuredModel again, which keeps its spec when saved
            slimmed = rerender(slimmed, keras, architecture=new_spec)
    if epochs and train_data is not None:
        slimmed.compile_from_config(compile_config)
        slimmed.fit(train_data[0], train_data[1], epochs=epochs, batch_size=batch_size, verbose=verbose)
    return slimmed, plan
