"""The transformer family: encoder blocks (attention and a feed-forward network), residual or dense."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import check_sequence_input, head, sequence_input
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _transformer_family(spec: Architecture, b):
    units = spec.option("model_units")
    dropout = spec.option("dropout")
    pre_norm = spec.option("normalization") == "pre"
    residual = spec.connection == "residual"
    activation = spec.option("activation")
    if spec.option("vocabulary_size"):
        inputs, x = sequence_input(spec, b, "model_units")
    else:
        inputs, x = sequence_input(spec, b, "model_units")
        x = b.dense(x, units, "input_projection")
    if spec.option("position_embedding"):
        x = b.position_embedding(x, "position_embedding")
    if dropout:
        x = b.dropout(x, "embedding_dropout", dropout)
    features = [x]

    def sublayer(x, name, function):
        h = b.layer_norm(x, f"{name}_norm") if pre_norm else x
        h = function(h)
        if dropout:
            h = b.dropout(h, f"{name}_dropout", dropout)
        if residual:
            h = b.add([x, h], f"{name}_add")
        return h if pre_norm else b.layer_norm(h, f"{name}_norm")

    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        if not residual and i:
            x = b.dense(b.concat(features, f"{prefix}_concat"), units, f"{prefix}_merge")
        x = sublayer(
            x,
            f"{prefix}_attention",
            lambda h, p=prefix: b.attention(
                h, f"{p}_attention", spec.option("num_heads"), spec.option("key_units"), dropout
            ),
        )
        x = sublayer(
            x,
            f"{prefix}_ffn",
            lambda h, p=prefix, ffn=block.units: b.dense(
                b.dense(h, ffn, f"{p}_ffn_1", activation=activation), units, f"{p}_ffn_2"
            ),
        )
        features.append(x)
    if not residual:
        x = b.dense(b.concat(features, "features_concat"), units, "features_merge")
    if pre_norm:
        x = b.layer_norm(x, "final_norm")
    x = b.global_pool(x, "pooling", "max" if spec.option("pooling") == "max" else "avg")
    if dropout:
        x = b.dropout(x, "head_dropout", dropout)
    return b.model(inputs, head(spec, b, x), "structopt_transformer")


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    check_sequence_input("transformer", shape, options)
    for name in ("model_units", "num_heads", "key_units"):
        _checks.positive_int(name, options[name])


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    return [f"block_{i}_ffn_1"]


def _slimmed_heads(spec: Architecture, model) -> dict | None:
    """`num_heads` of a slimmed model: one count in every block (else no spec describes it)."""
    counts = {int(model.get_layer(f"block_{i}_attention").num_heads) for i in range(len(spec.blocks))}
    return {"num_heads": counts.pop()} if len(counts) == 1 else None


TRANSFORMER = Family(
    name="transformer",
    kinds=("encoder",),
    connections=("residual", "dense"),
    options={
        "model_units": 64,
        "num_heads": 4,
        "key_units": 16,
        "dropout": 0.0,
        "normalization": "pre",
        "position_embedding": True,
        "pooling": "mean",
        "activation": "gelu",
        "vocabulary_size": None,
    },
    choices={
        "activation": ("relu", "gelu", "swish", "tanh", "elu"),
        "pooling": ("avg", "max", "mean"),
        "normalization": ("pre", "post"),
    },
    build=_transformer_family,
    block_layers=_block_layers,
    check=_check,
    slimmed_options=_slimmed_heads,
)
