"""The tabular family: named numeric and categorical columns, encoded, then a dense trunk (or cross layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import INPUT_DTYPES, cross_and_deep, dense_trunk, encode_features, head
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _tabular_family(spec: Architecture, b):
    """Named inputs -> normalised numbers and embedded categories -> a dense trunk -> head.

    `"cross"` puts cross layers (DCN-style) beside a plain trunk on the same features and
    concatenates both before the head.
    """
    features = spec.option("features")
    inputs = {f["name"]: b.input((1,), INPUT_DTYPES[f["kind"]], f["name"]) for f in features}
    x0 = encode_features(spec, b, inputs, features, "")
    x = dense_trunk(spec, b, x0, spec.connection) if spec.connection != "cross" else cross_and_deep(spec, b, x0)
    return b.model(inputs, head(spec, b, x), "structopt_tabular")


def canonical_features(shape: tuple[int, ...], options: dict) -> None:
    """Checks a tabular spec's features and embedding widths; stores them as tuples."""
    from keras_structopt.data._tabular import TabularSchema  # data imports nothing from space

    raw = options["features"]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise _checks.error(
            "Expected the option features (a list of feature dicts, see TabularSchema) for a tabular or "
            f"recommender network. Received: features={raw!r}."
        )
    features = TabularSchema(tuple(raw)).features
    if shape != (len(features),):
        raise _checks.error(
            f"Expected input_shape=({len(features)},) (the number of features) for a tabular or recommender "
            f"network. Received: input_shape={shape}."
        )
    categorical = [feature["name"] for feature in features if feature["kind"] != "numeric"]
    units = options["embedding_units"]
    if not isinstance(units, (list, tuple)) or len(units) != len(categorical):
        raise _checks.error(
            f"Expected embedding_units to list one width per categorical feature {categorical}. "
            f"Received: embedding_units={units!r}."
        )
    options["features"] = features
    options["embedding_units"] = tuple(_checks.positive_int("embedding_units", u) for u in units)
    _checks.positive_int("cross_layers", options["cross_layers"])
    options["cross_layers"] = int(options["cross_layers"])


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    canonical_features(shape, options)


def block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    return [f"block_{i}_dense"]


def embedding_widths(spec: Architecture, model) -> dict | None:
    """Slimming narrows the categorical features' embeddings too: their widths in `model`."""
    widths = []
    for name in [f["name"] for f in spec.option("features") if f["kind"] != "numeric"]:
        try:
            widths.append(int(model.get_layer(f"{name}_embedding").output_dim))
        except ValueError:
            return None
    return {"embedding_units": tuple(widths)}


TABULAR_OPTIONS = {
    "features": (),
    "embedding_units": (),
    "cross_layers": 2,
    "activation": "relu",
    "dropout": 0.0,
    "batch_norm": False,
    "batch_norm_momentum": 0.9,
    "head_bias": None,
}

TABULAR = Family(
    name="tabular",
    kinds=("dense",),
    connections=("plain", "residual", "dense", "cross"),
    options=TABULAR_OPTIONS,
    choices={"activation": ("relu", "gelu", "swish", "tanh", "elu")},
    build=_tabular_family,
    block_layers=block_layers,
    check=_check,
    slimmed_options=embedding_widths,
)
