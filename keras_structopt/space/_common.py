"""Rendering pieces several families share: the head, a dense trunk, encoded table features, inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture


def skippable(b, before, after, name: str):
    """Block `name`'s output `after`, which a builder training elastic depth may replace with the block's
    input `before` (the block skipped: an identity, as input and output have one width and resolution).

    A family calls it for the blocks after the first of a stage whose widths are the stage's;
    rendering and counting builders have no `gate` and take `after` as it is.
    """
    gate = getattr(b, "gate", None)
    return after if gate is None else gate(before, after, name)


def head(spec: Architecture, b, x):
    activation = {"multiclass": "softmax", "binary": "sigmoid", "regression": None}[spec.task]
    bias = dict(spec.options).get("head_bias")
    return b.dense(x, spec.outputs, "head", activation=activation, bias=bias)


def dense_trunk(spec: Architecture, b, x, connection: str):
    """The dense blocks of `spec` on `x`, joined `"plain"`, `"residual"` or `"dense"`."""
    batch_norm = spec.option("batch_norm")
    dropout = spec.option("dropout")
    features = [x]
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        h = b.concat(features, f"{prefix}_concat") if connection == "dense" and i else x
        h = b.dense(h, block.units, f"{prefix}_dense", use_bias=not batch_norm)
        if batch_norm:
            h = b.batch_norm(h, f"{prefix}_batch_norm", spec.option("batch_norm_momentum"))
        h = b.activation(h, f"{prefix}_activation", spec.option("activation"))
        if connection == "residual":
            shortcut = x
            if b.width(x) != block.units:
                shortcut = b.dense(x, block.units, f"{prefix}_projection", use_bias=False)
            h = b.add([h, shortcut], f"{prefix}_add")
        if dropout:
            h = b.dropout(h, f"{prefix}_dropout", dropout)
        features.append(h)
        x = h
    if connection == "dense":
        x = b.concat(features, "features_concat")
    return x


INPUT_DTYPES = {"numeric": "float32", "integer": "int64", "string": "string"}


def encode_features(spec: Architecture, b, inputs, features, prefix: str):
    """Normalised numbers and embedded categories of `features`, concatenated (one tensor)."""
    widths = dict(zip([f["name"] for f in spec.option("features") if f["kind"] != "numeric"],
                      spec.option("embedding_units")))
    parts = []
    numeric = [f for f in features if f["kind"] == "numeric"]
    if numeric:
        x = inputs[numeric[0]["name"]] if len(numeric) == 1 else b.concat(
            [inputs[f["name"]] for f in numeric], f"{prefix}numeric_concat")
        parts.append(b.normalization(x, f"{prefix}numeric_normalization", [f["mean"] for f in numeric],
                                     [f["variance"] for f in numeric]))
    for feature in (f for f in features if f["kind"] != "numeric"):
        name = feature["name"]
        index = b.lookup(inputs[name], f"{name}_lookup", feature["vocabulary"], feature["kind"])
        embedded = b.embedding(index, f"{name}_embedding", len(feature["vocabulary"]) + 1, widths[name])
        parts.append(b.flatten(embedded, f"{name}_flatten"))
    return parts[0] if len(parts) == 1 else b.concat(parts, f"{prefix}inputs_concat")


def cross_and_deep(spec: Architecture, b, x0, prefix: str = ""):
    """`cross_layers` cross layers (DCN: `x_{l+1} = x_0 * (W x_l + b) + x_l`) beside a plain trunk."""
    crossed = x0
    for i in range(spec.option("cross_layers")):
        h = b.dense(crossed, b.width(x0), f"{prefix}cross_{i}_dense")
        h = b.multiply([x0, h], f"{prefix}cross_{i}_multiply")
        crossed = b.add([h, crossed], f"{prefix}cross_{i}_add")
    return b.concat([crossed, dense_trunk(spec, b, x0, "plain")], f"{prefix}cross_deep_concat")


def sequence_input(spec: Architecture, b, units_option: str):
    vocabulary = spec.option("vocabulary_size")
    inputs = b.input(spec.input_shape, "int32" if vocabulary else "float32", "inputs")
    if vocabulary:
        return inputs, b.embedding(inputs, "embedding", vocabulary, spec.option(units_option))
    return inputs, inputs


def check_sequence_input(family: str, shape: tuple[int, ...], options: dict) -> None:
    """Token ids `(timesteps,)` with a `vocabulary_size`, else `(timesteps, features)`."""
    vocabulary = options.get("vocabulary_size")
    if vocabulary is None and len(shape) != 2:
        raise _checks.error(
            f"Expected input_shape=(timesteps, features) for family={family!r} without a vocabulary_size. "
            f"Received: input_shape={shape}."
        )
    if vocabulary is not None:
        _checks.positive_int("vocabulary_size", vocabulary)
        if len(shape) != 1:
            raise _checks.error(
                "Expected input_shape=(timesteps,) for token ids (a vocabulary_size is set). "
                f"Received: input_shape={shape}."
            )
