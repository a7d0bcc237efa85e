"""`Architecture`: the frozen, JSON-safe description of one candidate network.

Search, compression, reports and exports all talk about networks through this one
type. It holds no Keras objects; it can count its own parameters and
multiply-accumulates (MACs) without building anything. What each family accepts (its
block kinds, connections and options) comes from the family's module (`Family`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

from keras_structopt import _checks
from keras_structopt.errors import ConfigurationError
from keras_structopt.space._counting import Counts, _CountingBuilder
from keras_structopt.space._family import family

FORMAT_VERSION = 1

TASKS = ("multiclass", "binary", "regression")


def family_defaults(name: str) -> dict[str, Any]:
    """Returns the default options of an architecture family.

    Example:
        >>> family_defaults("dense")["batch_norm"]
        False
    """
    return dict(family(name).options)


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of an `Architecture`: its kind, its width and its stage.

    Args:
        kind: What the block is; each family accepts its own kinds (`"dense"`;
            `"plain"`, `"residual"`, `"inception"`, `"separable"`; `"lstm"`,
            `"gru"`; `"encoder"`).
        units: The block's width: units, filters, recurrent units or, for an
            encoder, feed-forward units.
        stage: The stage the block belongs to (convolutional networks downsample
            between stages); 0 for the other families.

    Example:
        >>> Block("dense", 64)
        Block(kind='dense', units=64, stage=0)
    """

    kind: str
    units: int
    stage: int = 0

    def __post_init__(self):
        _checks.positive_int("units", self.units)
        _checks.non_negative_int("stage", self.stage)
        object.__setattr__(self, "units", int(self.units))
        object.__setattr__(self, "stage", int(self.stage))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A frozen description of one network: family, input, blocks, connections, head.

    It is what Keras Tuner's hyperparameters become in a keras-structopt HyperModel,
    and what the bridge, compression and reports read. It round-trips through JSON
    (`to_dict` / `from_dict`, with a format version) and counts its parameters and
    multiply-accumulates exactly as the rendered Keras model has them.

    Args:
        family: `"dense"`, `"conv"`, `"recurrent"`, `"transformer"`, `"tabular"` or
            `"recommender"` (or a family registered with `register_family`).
        input_shape: The shape of one example, without the batch axis. Token-id
            inputs (recurrent and transformer families with a `vocabulary_size`
            option) have shape `(timesteps,)`; a tabular network's is
            `(number of features,)` (each feature is its own named input, see the
            `features` option and `keras_structopt.data.TabularSchema`).
        blocks: The ordered `Block`s (or dicts with their fields).
        connection: How blocks connect; each family accepts its own patterns:
            dense `"plain"`/`"residual"`/`"dense"`, conv `"plain"`/`"dense"`,
            recurrent `"plain"`/`"residual"`, transformer `"residual"`/`"dense"`,
            tabular `"plain"`/`"residual"`/`"dense"`/`"cross"` (cross layers,
            DCN-style, beside a plain trunk).
            A recurrent `"residual"` where no layer's output is as wide as its
            input (so no add can apply) is stored as `"plain"`: one network, one spec.
        task: `"multiclass"` (softmax), `"binary"` (one sigmoid unit) or
            `"regression"` (linear outputs).
        outputs: Number of classes or regression targets (1 for `"binary"`).
        options: Family-wide settings (activation, dropout, batch-norm momentum,
            ...); missing ones take the family defaults, see `family_defaults`.
            Dense networks may standardise their (flattened) input inside the model:
            `input_normalization=(mean, variance)`, one value per input feature (a
            variance of 0, a constant column, is stored as 1: the column is only
            centred). Dense, tabular and recommender networks take `head_bias`, the
            initial bias of the head's units (a float; for a regression, the targets'
            mean starts the search at the right level); a recommender's `"dot"` score
            has no head and ignores it.

    Example:
        >>> spec = Architecture(
        ...     family="dense", input_shape=(64,),
        ...     blocks=[Block("dense", 32), Block("dense", 16)],
        ...     connection="residual", task="multiclass", outputs=10)
        >>> spec.count_params()
        5338
        >>> Architecture.from_dict(spec.to_dict()) == spec
        True
    """

    family: str
    input_shape: tuple[int, ...]
    blocks: tuple[Block, ...]
    connection: str = "plain"
    task: str = "multiclass"
    outputs: int = 10
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        rules = family(self.family)
        shape = _checks.shape("input_shape", self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        blocks = tuple(
            block if isinstance(block, Block) else Block(**dict(block))
            for block in self.blocks
        )
        if not blocks:
            raise _checks.error(
                f"Expected at least one block. Received: blocks={list(self.blocks)}."
            )
        for block in blocks:
            _checks.one_of("block kind", block.kind, rules.kinds)
        if any(b.stage < a.stage for a, b in zip(blocks, blocks[1:])):
            raise _checks.error(
                "Expected block stages in non-decreasing order. "
                f"Received: stages={[block.stage for block in blocks]}."
            )
        object.__setattr__(self, "blocks", blocks)
        _checks.one_of("connection", self.connection, rules.connections)
        _checks.one_of("task", self.task, TASKS)
        _checks.positive_int("outputs", self.outputs)
        object.__setattr__(self, "outputs", int(self.outputs))
        if self.task == "binary" and self.outputs != 1:
            raise _checks.error(
                'Expected outputs=1 for task="binary" (one sigmoid unit). '
                f"Received: outputs={self.outputs}."
            )
        options = dict(rules.options)
        given = dict(self.options)
        unknown = sorted(set(given) - set(options))
        if unknown:
            raise _checks.error(
                f"Expected options of family={self.family!r} among {sorted(options)}. "
                f"Received: unknown options {unknown}."
            )
        options.update(given)
        for name, accepted in rules.choices.items():
            _checks.one_of(name, options[name], accepted)
        for name in ("dropout", "batch_norm_momentum"):
            if name in options:
                _checks.fraction(name, options[name])
        if rules.check is not None:
            rules.check(shape, blocks, options)
        canonical_input_and_head(shape, options)
        object.__setattr__(self, "options", tuple(sorted(options.items())))
        if rules.connection is not None:
            object.__setattr__(self, "connection", rules.connection(shape, blocks, options, self.connection))

    # -- access ------------------------------------------------------------------

    def option(self, name: str) -> Any:
        """Returns one family option.

        Example:
            >>> Architecture("dense", (4,), [Block("dense", 8)]).option("dropout")
            0.0
        """
        return dict(self.options)[name]

    @property
    def num_blocks(self) -> int:
        """Number of blocks."""
        return len(self.blocks)

    @property
    def widths(self) -> tuple[int, ...]:
        """The blocks' widths, in order."""
        return tuple(block.units for block in self.blocks)

    def replace(self, **changes: Any) -> Architecture:
        """Returns a copy with some fields changed (options are merged).

        Example:
            >>> spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
            >>> spec.replace(options={"dropout": 0.2}).option("dropout")
            0.2
        """
        if "options" in changes:
            merged = dict(self.options)
            merged.update(dict(changes["options"]))
            changes["options"] = merged
        return dataclasses.replace(self, **changes)

    # -- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-safe dict with a `"version"` key.

        Example:
            >>> Architecture("dense", (4,), [Block("dense", 8)], outputs=3).to_dict()["version"]
            1
        """
        return {
            "version": FORMAT_VERSION,
            "family": self.family,
            "input_shape": list(self.input_shape),
            "blocks": [dataclasses.asdict(block) for block in self.blocks],
            "connection": self.connection,
            "task": self.task,
            "outputs": self.outputs,
            "options": {name: _json_option(value) for name, value in self.options},
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Architecture:
        """Builds an `Architecture` from `to_dict()` output.

        Example:
            >>> spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
            >>> Architecture.from_dict(spec.to_dict()) == spec
            True
        """
        if not isinstance(config, Mapping):
            raise _checks.error(f"Expected an architecture dict. Received: a {type(config).__name__}.")
        config = dict(config)
        version = config.pop("version", None)
        if version != FORMAT_VERSION:
            raise _checks.error(
                f"Expected an architecture dict with version={FORMAT_VERSION}. "
                f"Received: version={version!r}."
            )
        _check_keys("architecture", config, cls)
        blocks = config["blocks"]
        if not isinstance(blocks, (list, tuple)):
            raise _checks.error(f"Expected blocks to be a list of block dicts. Received: a {type(blocks).__name__}.")
        for block in blocks:
            if not isinstance(block, (Mapping, Block)):
                raise _checks.error(f"Expected each block to be a dict. Received: {block!r}.")
            if isinstance(block, Mapping):
                _check_keys("block", block, Block)
        if not isinstance(config.get("options", {}), Mapping):
            raise _checks.error(f"Expected options to be a dict. Received: options={config['options']!r}.")
        try:
            return cls(**config)
        except ConfigurationError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as error:
            raise _checks.error(
                f"Expected an architecture dict whose fields have the documented types. Received: "
                f"{type(error).__name__}: {error}."
            ) from None

    def to_json(self) -> str:
        """Returns `to_dict()` as canonical JSON (sorted keys), usable as a key.

        Example:
            >>> Architecture("dense", (4,), [Block("dense", 8)], outputs=3).to_json()[:11]
            '{"blocks": '
        """
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        """Inverse of `to_json`.

        Example:
            >>> spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
            >>> Architecture.from_json(spec.to_json()) == spec
            True
        """
        try:
            config = json.loads(text)
        except (TypeError, ValueError) as error:
            raise _checks.error(
                f"Expected architecture JSON (from to_json). Received: text that is not JSON ({error})."
            ) from None
        return cls.from_dict(config)

    # -- costs --------------------------------------------------------------------

    def count_params(self) -> int:
        """Returns the parameter count, equal to Keras's `count_params()` of the render.

        Example:
            >>> Architecture("dense", (4,), [Block("dense", 8)], outputs=3).count_params()
            67
        """
        return count(self).params

    def count_macs(self) -> int:
        """Returns the multiply-accumulates of one example's forward pass.

        Dense, convolution, recurrent and attention products are counted; additions,
        normalisation and activations are not.

        Example:
            >>> Architecture("dense", (4,), [Block("dense", 8)], outputs=3).count_macs()
            56
        """
        return count(self).macs


def canonical_input_and_head(shape: tuple[int, ...], options: dict) -> None:
    """Checks `input_normalization` and `head_bias` where a family has them; stores tuples and floats."""
    if options.get("head_bias") is not None:
        bias = options["head_bias"]
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise _checks.error(f"Expected head_bias to be a finite float or None. Received: head_bias={bias!r}.")
        options["head_bias"] = float(bias)
    statistics = options.get("input_normalization")
    if statistics is None:
        return
    size = math.prod(shape)
    try:
        mean, variance = (tuple(float(v) for v in part) for part in statistics)
    except (TypeError, ValueError):
        mean, variance = (), ()
    if (len(mean), len(variance)) != (size, size) or not all(math.isfinite(v) for v in mean + variance) or min(
            variance) < 0:
        raise _checks.error(
            f"Expected input_normalization=(mean, variance): {size} finite values each (one per input feature), "
            f"variances >= 0. Received: input_normalization of type {type(statistics).__name__}"
            + (f" with lengths {len(mean)} and {len(variance)}." if mean else ".")
            + " Pass the training inputs' statistics, (x.mean(axis=0), x.var(axis=0)) for a flat x, "
            "or let kso.suggest(x, y) compute them."
        )
    options["input_normalization"] = (mean, tuple(v if v > 0 else 1.0 for v in variance))


def _json_option(value):
    """An option value as JSON has it (tuples become lists, also inside feature dicts)."""
    if isinstance(value, (list, tuple)):
        return [_json_option(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_option(item) for key, item in value.items()}
    return value


def _check_keys(what: str, config: Mapping, cls) -> None:
    """Raises unless `config` holds every required field of the dataclass `cls` and no other key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in config if k not in fields)
    required = sorted(name for name, f in fields.items()
                      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    missing = [name for name in required if name not in config]
    if unknown or missing:
        raise _checks.error(
            f"Expected a {what} dict with the keys {required} (and optionally "
            f"{sorted(set(fields) - set(required))}). Received: "
            + "; ".join(part for part in (f"unknown keys {unknown}" if unknown else "",
                                          f"missing keys {missing}" if missing else "") if part)
            + "."
        )


def count(spec: Architecture) -> Counts:
    """Counts the parameters and MACs of `spec` without building anything.

    Example:
        >>> count(Architecture("dense", (4,), [Block("dense", 8)], outputs=3))
        Counts(params=67, macs=56)
    """
    return family(spec.family).build(spec, _CountingBuilder())
