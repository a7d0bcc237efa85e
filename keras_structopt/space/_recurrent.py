"""The recurrent family: LSTM or GRU layers, plain or residual, over a sequence or token ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keras_structopt import _checks
from keras_structopt.space._common import check_sequence_input, head, sequence_input
from keras_structopt.space._family import Family

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


def _recurrent_family(spec: Architecture, b):
    inputs, x = sequence_input(spec, b, "embedding_units")
    reduce = spec.option("reduce")
    dropout = spec.option("dropout")
    for i, block in enumerate(spec.blocks):
        prefix = f"block_{i}"
        return_sequences = not (i == len(spec.blocks) - 1 and reduce == "last")
        h = b.rnn(
            x,
            f"{prefix}_{block.kind}",
            block.kind,
            block.units,
            return_sequences=return_sequences,
            bidirectional=spec.option("bidirectional"),
        )
        if spec.connection == "residual" and return_sequences and b.width(h) == b.width(x):
            h = b.add([x, h], f"{prefix}_add")
        if dropout:
            h = b.dropout(h, f"{prefix}_dropout", dropout)
        x = h
    if reduce != "last":
        x = b.global_pool(x, "reduce", reduce)
    return b.model(inputs, head(spec, b, x), "structopt_recurrent")


def _recurrent_residual_applies(shape, blocks, options) -> bool:
    """Whether any recurrent block's output has its input's width (what a residual add needs)."""
    width = options["embedding_units"] if options.get("vocabulary_size") else shape[-1]
    directions = 2 if options["bidirectional"] else 1
    for i, block in enumerate(blocks):
        returns_sequences = not (i == len(blocks) - 1 and options["reduce"] == "last")
        out = directions * block.units
        if returns_sequences and out == width:
            return True
        width = out
    return False


def _check(shape: tuple[int, ...], blocks, options: dict) -> None:
    check_sequence_input("recurrent", shape, options)
    _checks.positive_int("embedding_units", options["embedding_units"])


def _connection(shape, blocks, options, connection: str) -> str:
    # A residual connection joins only equal widths; where none can, the network is the
    # plain one, and the spec says so (two descriptions of one network are one spec).
    if connection == "residual" and not _recurrent_residual_applies(shape, blocks, options):
        return "plain"
    return connection


def _block_layers(spec: Architecture, i: int, block: Block) -> list[str]:
    return [f"block_{i}_{block.kind}"]


RECURRENT = Family(
    name="recurrent",
    kinds=("lstm", "gru"),
    connections=("plain", "residual"),
    options={
        "bidirectional": False,
        "reduce": "last",
        "dropout": 0.0,
        "vocabulary_size": None,
        "embedding_units": 32,
    },
    choices={"reduce": ("last", "mean", "max")},
    build=_recurrent_family,
    block_layers=_block_layers,
    check=_check,
    connection=_connection,
)
