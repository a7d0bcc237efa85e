"""The compression stages as values: `Slim`, `Prune`, `Cluster`, `Quantize`, and a `Recipe` of them.

Each stage is a small frozen object that checks its own settings once, when it is made,
and holds its own defaults. A `Recipe` is a list of stages in the order they run (slim ->
prune -> cluster -> quantize), at most one of each kind. The deployment presets are
Recipes (`PRESETS`); the guarded search climbs each stage's ladder of stronger settings
for the target (`ladder`).

How long each stage fine-tunes is not part of the stage: it is a `FineTuning` setting,
so that a stage says what is done to the network and nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from keras_structopt import _checks

QuantizationMode = Literal["none", "dynamic", "float16", "int8", "qat"]
QUANTIZATION_MODES = ("none", "dynamic", "float16", "int8", "qat")
TARGETS = ("mobile", "cpu", "gpu", "tpu")
DEFAULT_TARGET = "cpu"
DEFAULT_RATIO = 0.5  # slimming removes half of each group's channels


def _layer_values(name: str, value, check) -> tuple[tuple[str, Any], ...]:
    """`{layer name: value}` (or pairs) as sorted pairs, each value checked."""
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(str(key), item) for key, item in items]
    except (TypeError, ValueError):
        raise _checks.error(
            f"Expected {name} to be a dict of layer name -> value. Received: {name}={value!r}."
        ) from None
    return tuple(sorted((key, check(f"{name}[{key!r}]", item)) for key, item in pairs))


def _cluster_count(name: str, value) -> int:
    name = _checks.shown(name)
    if not _checks.is_int(value) or not 2 <= value <= 256:
        raise _checks.error(f"Expected {name} to be an int in [2, 256]. Received: {name}={value!r}.")
    return int(value)


def _flag(name: str, value) -> bool:
    name = _checks.shown(name)
    if not isinstance(value, bool):
        raise _checks.error(f"Expected {name} to be True or False. Received: {name}={value!r}.")
    return value


# -- pruning schedules ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PolynomialDecay:
    """A pruning schedule whose sparsity rises from `initial_sparsity` to the target along a power curve.

    The steps it spans are counted from the real fine-tuning (every epoch of the
    pruning stage), so the target is reached however short the training is.

    Args:
        initial_sparsity: The sparsity at the first step, in `[0, 1)`.
        power: The curve's exponent (3: fast at first, slow at the end).

    Example:
        >>> PolynomialDecay(power=2).describe()
        'polynomial'
    """

    initial_sparsity: float = 0.0
    power: int = 3
    kind: ClassVar[str] = "polynomial"

    def __post_init__(self):
        _checks.fraction("initial_sparsity", self.initial_sparsity)
        _checks.positive_int("power", self.power)

    def describe(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "initial_sparsity": self.initial_sparsity, "power": self.power}


@dataclasses.dataclass(frozen=True)
class ConstantSparsity:
    """A pruning schedule that holds the target sparsity from the first step.

    Example:
        >>> ConstantSparsity().describe()
        'constant'
    """

    kind: ClassVar[str] = "constant"

    def describe(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


Schedule = PolynomialDecay | ConstantSparsity
_SCHEDULES = {"polynomial": PolynomialDecay, "constant": ConstantSparsity}


def _schedule(value) -> Schedule:
    if isinstance(value, (PolynomialDecay, ConstantSparsity)):
        return value
    if isinstance(value, str) and value in _SCHEDULES:
        return _SCHEDULES[value]()
    raise _checks.error(
        "Expected schedule to be keras_structopt.compress.PolynomialDecay(...), ConstantSparsity() or one of "
        f"{sorted(_SCHEDULES)}. Received: schedule={value!r}."
    )


# -- the stages -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slim:
    """Structural slimming: whole units, filters and recurrent units removed, the network rebuilt narrower.

    The least important fraction `ratio` of every group of tied channels goes (see
    `keras_structopt.compress.slim`). Fewer parameters and fewer MACs: faster on any
    hardware. Needs a Keras 3 model.

    Args:
        ratio: Fraction of each group's channels to remove, in `[0, 1)`; None: no
            slimming (in a guarded search, slimming is then left out, not searched).
        multiple: Keep every slimmed width a multiple of this (8 suits GPU tensor
            cores, 128 TPUs).
        heads: Fraction of each `MultiHeadAttention` layer's heads to remove, in
            `[0, 1)` (at least one head stays); None: `ratio`. A head is a coarse unit:
            in a small transformer `heads=ratio / 2` often keeps accuracy better.

    Example:
        >>> Slim(0.5).describe(), Slim(0.5, multiple=8).describe(), Slim(0.5, heads=0.25).describe()
        ('slim 0.5', 'slim 0.5 (x8)', 'slim 0.5 (heads 0.25)')
    """

    ratio: float | None = DEFAULT_RATIO
    multiple: int = 1
    heads: float | None = None
    kind: ClassVar[str] = "slim"

    def __post_init__(self):
        if self.ratio is not None:
            object.__setattr__(self, "ratio", _checks.fraction("ratio", self.ratio))
        object.__setattr__(self, "multiple", _checks.positive_int("multiple", self.multiple))
        if self.heads is not None:
            object.__setattr__(self, "heads", _checks.fraction("heads", self.heads))

    @property
    def applies(self) -> bool:
        """Whether the stage changes the model."""
        return self.ratio is not None

    def replace(self, **changes: Any) -> Slim:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        if not self.applies:
            return "no slimming"
        return (f"slim {self.ratio:g}" + (f" (x{self.multiple})" if self.multiple > 1 else "")
                + (f" (heads {self.heads:g})" if self.heads is not None else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ratio": self.ratio, "multiple": self.multiple, "heads": self.heads}


@dataclasses.dataclass(frozen=True)
class Prune:
    """TFMOT magnitude pruning towards a sparsity, fine-tuned, then stripped.

    Args:
        sparsity: Target fraction of zeros in the prunable weights, in `[0, 1)`; 0:
            no pruning.
        schedule: How the sparsity rises during fine-tuning: `PolynomialDecay()`
            (default) or `ConstantSparsity()` (or their names).
        m_by_n: `(m, n)`: m zeros in every n consecutive input weights (structured
            sparsity; `(2, 4)` for sparse tensor cores) instead of `sparsity`.
        exclude: Layer names kept dense; `"first"` and `"last"` name the first and
            last layers with weights.
        per_layer: `{layer name: sparsity}` overriding `sparsity` for those layers.

    Example:
        >>> Prune(0.8).describe(), Prune(m_by_n=(2, 4)).describe()
        ('sparsity 0.8 (polynomial)', '2:4 sparsity')
    """

    sparsity: float = 0.8
    schedule: Schedule = PolynomialDecay()
    m_by_n: tuple[int, int] | None = None
    exclude: tuple[str, ...] = ()
    per_layer: tuple[tuple[str, float], ...] = ()
    kind: ClassVar[str] = "prune"

    def __post_init__(self):
        object.__setattr__(self, "sparsity", _checks.fraction("sparsity", self.sparsity))
        object.__setattr__(self, "schedule", _schedule(self.schedule))
        if self.m_by_n is not None:
            pair = self.m_by_n
            ok = (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_checks.is_int(v) for v in pair)
                  and 1 <= pair[0] < pair[1])
            if not ok:
                raise _checks.error(
                    "Expected m_by_n to be a pair (m, n) of ints with 1 <= m < n, such as (2, 4). "
                    f"Received: m_by_n={pair!r}."
                )
            object.__setattr__(self, "m_by_n", (int(pair[0]), int(pair[1])))
        if isinstance(self.exclude, str) or not all(isinstance(name, str) for name in self.exclude):
            raise _checks.error(
                "Expected exclude to be a list of layer names (or 'first' / 'last'). "
                f"Received: exclude={self.exclude!r}."
            )
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "per_layer", _layer_values("per_layer", self.per_layer, _checks.fraction))

    @property
    def applies(self) -> bool:
        """Whether any weight is pruned."""
        return self.sparsity > 0 or self.m_by_n is not None or any(v > 0 for _, v in self.per_layer)

    def replace(self, **changes: Any) -> Prune:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        if self.m_by_n is not None:
            return f"{self.m_by_n[0]}:{self.m_by_n[1]} sparsity"
        if not self.applies:
            return "no pruning"
        return f"sparsity {self.sparsity:g} ({self.schedule.describe()})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sparsity": self.sparsity, "schedule": self.schedule.to_dict(),
                "m_by_n": list(self.m_by_n) if self.m_by_n else None, "exclude": list(self.exclude),
                "per_layer": dict(self.per_layer)}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """TFMOT sparsity-preserving weight clustering: each kernel keeps at most `clusters` distinct values.

    Zeros left by pruning stay zeros and count as one of the values.

    Args:
        clusters: Most distinct values per kernel, 2..256; None: no clustering (in a
            guarded search, clustering is then left out, not searched).
        per_channel: Cluster each output channel of a Conv2D kernel on its own.
        per_layer: `{layer name: clusters}` overriding `clusters` for those layers.

    Example:
        >>> Cluster(16).describe(), Cluster(8, per_channel=True).describe()
        ('16 clusters', '8 clusters per channel')
    """

    clusters: int | None = 16
    per_channel: bool = False
    per_layer: tuple[tuple[str, int], ...] = ()
    kind: ClassVar[str] = "cluster"

    def __post_init__(self):
        if self.clusters is not None:
            object.__setattr__(self, "clusters", _cluster_count("clusters", self.clusters))
        _flag("per_channel", self.per_channel)
        object.__setattr__(self, "per_layer", _layer_values("per_layer", self.per_layer, _cluster_count))

    @property
    def applies(self) -> bool:
        return self.clusters is not None

    def replace(self, **changes: Any) -> Cluster:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        if not self.applies:
            return "no clustering"
        return f"{self.clusters} clusters" + (" per channel" if self.per_channel else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "clusters": self.clusters, "per_channel": self.per_channel,
                "per_layer": dict(self.per_layer)}


@dataclasses.dataclass(frozen=True)
class Quantize:
    """Quantization: the TFLite conversion, or quantization-aware fine-tuning and then a full-int8 one.

    Args:
        mode: `"dynamic"` (int8 weights, float activations), `"float16"`, `"int8"`
            (full integer, calibrated on training inputs), `"qat"` (TFMOT
            quantization-aware fine-tuning that keeps zeros and shared values, then
            full int8), or `"none"` (float32).
        per_channel: How int8 weights are scaled: one scale per output channel
            (True, TFLite's default), one per tensor (False), or `"auto"`: per tensor
            where every kernel holds few shared values (a clustered model), per
            channel otherwise. A kernel clustered to k values keeps exactly k int8
            values with one scale, and its gzip'd file is smaller.
        strip: Drop tensor names and converter metadata from the file (it runs and
            serves the same; a few hundred bytes).

    Example:
        >>> Quantize("int8", strip=True).describe()
        'int8, stripped'
    """

    mode: QuantizationMode = "dynamic"
    per_channel: bool | Literal["auto"] = True
    strip: bool = False
    kind: ClassVar[str] = "quantize"

    def __post_init__(self):
        _checks.one_of("mode", self.mode, QUANTIZATION_MODES)
        _checks.one_of("per_channel", self.per_channel, (True, False, "auto"))
        _flag("strip", self.strip)

    @property
    def applies(self) -> bool:
        return self.mode != "none"

    @property
    def conversion(self) -> str:
        """The TFLite conversion of the file (`"int8"` after quantization-aware training)."""
        return "int8" if self.mode == "qat" else self.mode

    def replace(self, **changes: Any) -> Quantize:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        auto = self.per_channel == "auto" and self.mode in ("dynamic", "int8", "qat")
        scales = " (per-tensor scales)" if auto else ""
        return self.mode + scales + (", stripped" if self.strip else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "per_channel": self.per_channel, "strip": self.strip}


StageSetting = Slim | Prune | Cluster | Quantize
STAGE_CLASSES: tuple[type[Slim], type[Prune], type[Cluster], type[Quantize]] = (Slim, Prune, Cluster, Quantize)
KINDS: tuple[str, ...] = tuple(cls.kind for cls in STAGE_CLASSES)  # the order stages run in


def _stage_from_dict(config: Mapping) -> StageSetting:
    config = dict(config)
    kind = config.pop("kind", None)
    classes = {cls.kind: cls for cls in STAGE_CLASSES}
    if kind not in classes:
        raise _checks.error(f"Expected a stage dict whose kind is one of {list(classes)}. Received: kind={kind!r}.")
    if kind == "prune":
        schedule = dict(config.get("schedule") or {"kind": "polynomial"})
        schedule_kind = schedule.pop("kind", None)
        if schedule_kind not in _SCHEDULES:
            raise _checks.error(
                f"Expected a schedule dict whose kind is one of {sorted(_SCHEDULES)}. Received: kind={schedule_kind!r}."
            )
        config["schedule"] = _SCHEDULES[schedule_kind](**schedule)
        if config.get("m_by_n") is not None:
            config["m_by_n"] = tuple(config["m_by_n"])
        config["exclude"] = tuple(config.get("exclude") or ())
    try:
        return classes[kind](**config)
    except TypeError as error:
        raise _checks.error(f"Expected the settings of a {kind} stage. Received: {error}.") from None


class Recipe:
    """The stages of one compression, in the order they run: slim -> prune -> cluster -> quantize.

    At most one stage of each kind. Applied as it is (`compress(..., max_accuracy_loss=None)`),
    each stage runs with its settings and kinds it does not hold do not run. In a guarded
    search the stages it holds are fixed, honoured as given, and the target's ladders are
    climbed for the kinds it leaves out; a stage in its "off" form (`Slim(None)`,
    `Prune(0)`, `Cluster(None)`, `Quantize("none")`) keeps that kind out of the search.

    `CompressionReport.recipe` lists all four kinds (off forms where a stage did not run),
    so passing it back reproduces the settings on another model. The stages' defaults,
    `Recipe([Prune(), Cluster(), Quantize()])`, are TFMOT's published recipe (prune to 0.8,
    16 clusters, dynamic-range int8).

    Args:
        stages: `Slim`, `Prune`, `Cluster` and `Quantize` objects, in any order.

    Example:
        >>> recipe = Recipe([Quantize("dynamic"), Prune(0.8), Cluster(16)])
        >>> recipe.describe()
        'sparsity 0.8 (polynomial), 16 clusters, dynamic'
        >>> Recipe.from_dict(recipe.to_dict()) == recipe
        True
    """

    def __init__(self, stages: Iterable[StageSetting] = ()):
        if isinstance(stages, Recipe):
            stages = stages.stages
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Iterable):
            raise _checks.error(
                "Expected recipe to be a list of stages (Slim, Prune, Cluster, Quantize) or a Recipe. "
                f"Received: {stages!r}."
            )
        found: dict[str, StageSetting] = {}
        for stage in stages:
            if not isinstance(stage, STAGE_CLASSES):
                raise _checks.error(
                    "Expected recipe to hold keras_structopt.compress stages (Slim, Prune, Cluster, Quantize). "
                    f"Received: {stage!r}."
                )
            if stage.kind in found:
                raise _checks.error(
                    f"Expected at most one {type(stage).__name__} stage in a recipe. Received: {found[stage.kind]!r} "
                    f"and {stage!r}."
                )
            found[stage.kind] = stage
        self.stages: tuple[StageSetting, ...] = tuple(found[kind] for kind in KINDS if kind in found)

    def get(self, kind: str) -> StageSetting | None:
        """The stage of `kind` (`"slim"`, `"prune"`, `"cluster"` or `"quantize"`), or None."""
        return next((stage for stage in self.stages if stage.kind == kind), None)

    @property
    def slim(self) -> Slim | None:
        return self.get("slim")  # type: ignore[return-value]

    @property
    def prune(self) -> Prune | None:
        return self.get("prune")  # type: ignore[return-value]

    @property
    def cluster(self) -> Cluster | None:
        return self.get("cluster")  # type: ignore[return-value]

    @property
    def quantize(self) -> Quantize | None:
        return self.get("quantize")  # type: ignore[return-value]

    def with_stage(self, stage: StageSetting) -> Recipe:
        """A copy holding `stage` in place of the stage of its kind.

        Example:
            >>> Recipe([Prune(0.8)]).with_stage(Prune(0.9)).describe()
            'sparsity 0.9 (polynomial)'
        """
        return Recipe([s for s in self.stages if s.kind != stage.kind] + [stage])

    def complete(self) -> Recipe:
        """The recipe with every kind present: the off form of each kind it leaves out.

        Example:
            >>> Recipe([Prune(0.5)]).complete().describe()
            'sparsity 0.5 (polynomial), none'
            >>> len(Recipe([Prune(0.5)]).complete())
            4
        """
        off: dict[str, StageSetting] = {"slim": Slim(None), "prune": Prune(0.0), "cluster": Cluster(None),
                                        "quantize": Quantize("none")}
        return Recipe([self.get(kind) or off[kind] for kind in KINDS])

    def describe(self) -> str:
        """A short description for tables: the stages that change the model, and the conversion."""
        parts = [stage.describe() for stage in self.stages if stage.applies or stage.kind == "quantize"]
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (`from_dict` reads it back).

        Example:
            >>> Recipe([Cluster(8)]).to_dict()
            {'stages': [{'kind': 'cluster', 'clusters': 8, 'per_channel': False, 'per_layer': {}}]}
        """
        return {"stages": [stage.to_dict() for stage in self.stages]}

    @classmethod
    def from_dict(cls, config: Mapping) -> Recipe:
        """The Recipe of a `to_dict()` form."""
        if not isinstance(config, Mapping) or not isinstance(config.get("stages"), list):
            raise _checks.error(f"Expected a recipe dict with a list of stages. Received: {config!r}.")
        return cls([_stage_from_dict(stage) for stage in config["stages"]])

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def __eq__(self, other) -> bool:
        return isinstance(other, Recipe) and self.stages == other.stages

    def __hash__(self) -> int:
        return hash(self.stages)

    def __repr__(self) -> str:
        return f"Recipe({list(self.stages)!r})"


def as_recipe(value) -> Recipe | None:
    """`recipe=` as compress takes it: None, a Recipe, or a list of stages."""
    if value is None or isinstance(value, Recipe):
        return value
    return Recipe(value)


# -- the deployment presets and their ladders -------------------------------------------------

PRESETS: dict[str, Recipe] = {
    "mobile": Recipe([Slim(0.5), Prune(0.8, exclude=("last",)), Cluster(16),
                      Quantize("int8", per_channel="auto", strip=True)]),
    "cpu": Recipe([Slim(0.5), Prune(0.8, exclude=("last",)), Cluster(16), Quantize("dynamic", per_channel="auto")]),
    "gpu": Recipe([Slim(0.5, multiple=8), Prune(0.0, m_by_n=(2, 4)), Quantize("float16")]),
    "tpu": Recipe([Slim(0.5, multiple=128), Quantize("none")]),
}

# What each target's guarded search tries, weak to strong, for each stage it searches.
LADDERS: dict[str, dict[str, tuple]] = {
    "mobile": {"slim": (0.25, 0.5, 0.75, 0.875), "prune": (0.5, 0.75, 0.85, 0.9), "cluster": (32, 16, 8, 4),
               "quantize": ("qat", "int8", "dynamic")},
    "cpu": {"slim": (0.25, 0.5, 0.75, 0.875), "prune": (0.5, 0.75, 0.85, 0.9), "cluster": (32, 16, 8, 4),
            "quantize": ("dynamic",)},
    "gpu": {"slim": (0.25, 0.5, 0.75), "prune": ((2, 4),), "quantize": ("float16",)},
    "tpu": {"slim": (0.25, 0.5, 0.75), "quantize": ("none",)},
}

SUMMARIES = {
    "mobile": "smallest file for phones and microcontrollers: slim, prune, cluster, full int8 (quantization-aware "
              "where the layers allow, else post-training), names and metadata stripped",
    "cpu": "servers and laptops: slim (fewer MACs), prune and cluster (smaller file), int8 weights with float "
           "activations",
    "gpu": "GPUs: slim with widths a multiple of 8 (tensor cores; the speed: 2-4.4x at large batches on an H200), "
           "2:4 structured sparsity (a smaller file; faster only in a runtime with fast 2:4 kernels: PyTorch's "
           "were slower than dense ones on 1024-wide layers), float16",
    "tpu": "TPUs: slim with widths a multiple of 128 (the matrix unit), dense float weights (TPUs compute dense, "
           "in bfloat16 under XLA)",
}


def ladder(target: str, kind: str) -> list[StageSetting]:
    """The settings a guarded search tries for one stage of a target, weak to strong.

    Each is the target preset's stage with its main setting changed (`ratio`,
    `sparsity` or `m_by_n`, `clusters`, `mode`).

    Example:
        >>> [stage.describe() for stage in ladder("cpu", "cluster")]
        ['32 clusters', '16 clusters', '8 clusters', '4 clusters']
    """
    _checks.one_of("target", target, TARGETS)
    template = PRESETS[target].get(kind)
    steps = LADDERS[target].get(kind, ())
    if template is None or not steps:
        return []
    field = {"slim": "ratio", "prune": "sparsity", "cluster": "clusters", "quantize": "mode"}[kind]
    if isinstance(template, Prune) and isinstance(steps[0], tuple):
        return [Prune(0.0, m_by_n=step, exclude=template.exclude) for step in steps]
    return [dataclasses.replace(template, **{field: step}) for step in steps]
