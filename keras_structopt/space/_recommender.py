"""The recommender family: user and item features, an interaction (dot, MLP or cross), a score."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import INPUT_DTYPES, cross_and_deep, dense_trunk, encode_features, head
from keras_structopt.space._family import Family
from keras_structopt.space._tabular import TABULAR_OPTIONS, canonical_features, embedding_widths

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _tower(spec: Architecture, b, x, side: str):
    """One side's dense blocks and its projection to `tower_units` (the retrieval vector)."""
    for i, block in enumerate(spec.blocks):
        x = b.dense(x, block.units, f"{side}_block_{i}_dense", activation=spec.option("activation"))
        if spec.option("dropout"):
            x = b.dropout(x, f"{side}_block_{i}_dropout", spec.option("dropout"))
    return b.dense(x, spec.option("tower_units"), f"{side}_projection")


def _recommender_family(spec: Architecture, b):
    """User features and item features -> an interaction -> a score.

    `"dot"`: two towers (the blocks, then a projection to `tower_units`) whose dot product is
    the score (the logit for `"binary"`, the prediction for `"regression"`): the towers can
    serve retrieval on their own. `"mlp"` (NCF-style): both sides concatenated into the dense
    blocks and a head. `"cross"`: cross layers beside the blocks, then a head.
    """
    features = spec.option("features")
    by_name = {f["name"]: f for f in features}
    inputs = {f["name"]: b.input((1,), INPUT_DTYPES[f["kind"]], f["name"]) for f in features}
    user = encode_features(spec, b, inputs, [by_name[n] for n in spec.option("user_features")], "user_")
    item = encode_features(spec, b, inputs, [by_name[n] for n in spec.option("item_features")], "item_")
    if spec.connection == "dot":
        score = b.dot([_tower(spec, b, user, "user"), _tower(spec, b, item, "item")], "score")
        if spec.task == "binary":
            score = b.activation(score, "head", "sigmoid")
        return b.model(inputs, score, "structopt_recommender")
    x0 = b.concat([user, item], "pair_concat")
    x = dense_trunk(spec, b, x0, "plain") if spec.connection == "mlp" else cross_and_deep(spec, b, x0)
    return b.model(inputs, head(spec, b, x), "structopt_recommender")


def _canonical_sides(options: dict) -> None:
    """Checks that every feature is on the user side or the item side, once."""
    names = [feature["name"] for feature in options["features"]]
    sides = {}
    for side in ("user_features", "item_features"):
        value = options[side]
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(name, str) for name in value):
            raise _checks.error(f"Expected {side} to be a non-empty list of feature names. Received: {side}={value!r}.")
        sides[side] = tuple(value)
    unknown = sorted(set(sides["user_features"] + sides["item_features"]) - set(names))
    both = sorted(set(sides["user_features"]) & set(sides["item_features"]))
    missing = [name for name in names if name not in sides["user_features"] + sides["item_features"]]
    if unknown or both or missing:
        raise _checks.error(
            f"Expected user_features and item_features to split the features {names} between them. Received: "
            + "; ".join(part for part in (f"unknown {unknown}" if unknown else "", f"on both sides {both}" if both
                                          else "", f"on neither side {missing}" if missing else "") if part) + "."
        )
    options.update(sides)
    _checks.positive_int("tower_units", options["tower_units"])
    options["tower_units"] = int(options["tower_units"])


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    canonical_features(shape, options)
    _canonical_sides(options)


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    if spec.connection == "dot":  # two towers: one width for both sides' block
        return [f"user_block_{i}_dense", f"item_block_{i}_dense"]
    return [f"block_{i}_dense"]


RECOMMENDER = Family(
    name="recommender",
    kinds=("dense",),
    connections=("dot", "mlp", "cross"),
    options={**TABULAR_OPTIONS, "user_features": (), "item_features": (), "tower_units": 32},
    choices={"activation": ("relu", "gelu", "swish", "tanh", "elu")},
    build=_recommender_family,
    block_layers=_block_layers,
    check=_check,
    slimmed_options=embedding_widths,
)
