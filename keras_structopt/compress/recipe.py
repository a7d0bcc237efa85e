"""Compression settings, their checks, and the deployment presets.

A `Recipe` is one list of stages with their settings: slim -> prune -> cluster ->
quantize. `compress` runs one recipe, or, given a tolerance, searches the preset's
ladders of stronger and stronger settings for the smallest model within it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keras_structopt import _checks

QUANTIZATIONS = ("none", "dynamic", "float16", "int8", "qat")
SCHEDULES = ("polynomial", "constant")
TARGETS = ("mobile", "cpu", "gpu", "tpu")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The settings of one compression run (see `compress` for each field's meaning).

    Example:
        >>> Recipe(slim=0.5, sparsity=0.8, clusters=16).describe()
        'slim 0.5, sparsity 0.8 (polynomial), 16 clusters, dynamic'
    """

    slim: float | None = None
    multiple: int = 1
    sparsity: float = 0.8
    schedule: str = "polynomial"
    sparsity_m_by_n: tuple[int, int] | None = None
    exclude: tuple[str, ...] = ()
    layer_sparsity: tuple[tuple[str, float], ...] = ()
    clusters: int | None = 16
    per_channel: bool = False
    layer_clusters: tuple[tuple[str, int], ...] = ()
    quantization: str = "dynamic"
    strip: bool = False
    per_tensor_scales: bool = False
    slim_epochs: int = 3
    prune_epochs: int = 10
    cluster_epochs: int = 3
    qat_epochs: int = 2

    def __post_init__(self):
        if self.slim is not None:
            _checks.fraction("slim", self.slim)
        _checks.positive_int("multiple", self.multiple)
        _checks.fraction("sparsity", self.sparsity)
        _checks.one_of("schedule", self.schedule, SCHEDULES)
        if self.sparsity_m_by_n is not None:
            pair = self.sparsity_m_by_n
            ok = (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(_checks.is_int(v) for v in pair)
                  and 1 <= pair[0] < pair[1])
            if not ok:
                raise _checks.error(
                    "Expected sparsity_m_by_n to be a pair (m, n) of ints with 1 <= m < n, such as (2, 4). "
                    f"Received: sparsity_m_by_n={pair!r}."
                )
            object.__setattr__(self, "sparsity_m_by_n", (int(pair[0]), int(pair[1])))
        if isinstance(self.exclude, str) or not all(isinstance(name, str) for name in self.exclude):
            raise _checks.error(
                "Expected exclude to be a list of layer names (or 'first' / 'last'). "
                f"Received: exclude={self.exclude!r}."
            )
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "layer_sparsity", _pairs("layer_sparsity", self.layer_sparsity, _sparsity_value))
        if self.clusters is not None:
            _cluster_count("clusters", self.clusters)
        object.__setattr__(self, "layer_clusters", _pairs("layer_clusters", self.layer_clusters, _cluster_count))
        _checks.one_of("quantization", self.quantization, QUANTIZATIONS)
        for flag in ("per_channel", "strip", "per_tensor_scales"):
            if not isinstance(getattr(self, flag), bool):
                raise _checks.error(f"Expected {flag} to be True or False. Received: {flag}={getattr(self, flag)!r}.")
        _checks.non_negative_int("slim_epochs", self.slim_epochs)
        _checks.positive_int("prune_epochs", self.prune_epochs)
        _checks.non_negative_int("cluster_epochs", self.cluster_epochs)
        _checks.positive_int("qat_epochs", self.qat_epochs)

    @property
    def prunes(self) -> bool:
        return self.sparsity > 0 or self.sparsity_m_by_n is not None or any(v > 0 for _, v in self.layer_sparsity)

    @property
    def tflite_per_channel(self) -> bool | None:
        """`to_tflite_bytes(per_channel=)` for this recipe: None (per tensor where clustered) or True."""
        return None if self.per_tensor_scales else True

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A short human description, for tables."""
        parts = []
        if self.slim:
            parts.append(f"slim {self.slim:g}" + (f" (x{self.multiple})" if self.multiple > 1 else ""))
        if self.sparsity_m_by_n:
            parts.append(f"{self.sparsity_m_by_n[0]}:{self.sparsity_m_by_n[1]} sparsity")
        elif self.prunes:
            parts.append(f"sparsity {self.sparsity:g} ({self.schedule})")
        if self.clusters:
            parts.append(f"{self.clusters} clusters" + (" per channel" if self.per_channel else ""))
        scales = self.per_tensor_scales and self.clusters and self.quantization in ("dynamic", "int8")
        parts.append(self.quantization + (" (per-tensor scales)" if scales else "")
                     + (", stripped" if self.strip else ""))
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        result["exclude"] = list(self.exclude)
        result["layer_sparsity"] = dict(self.layer_sparsity)
        result["layer_clusters"] = dict(self.layer_clusters)
        result["sparsity_m_by_n"] = list(self.sparsity_m_by_n) if self.sparsity_m_by_n else None
        return result


def _sparsity_value(name: str, value) -> float:
    return _checks.fraction(name, value)


def _cluster_count(name: str, value) -> int:
    if not _checks.is_int(value) or not 2 <= value <= 256:
        raise _checks.error(f"Expected {name} to be an int in [2, 256] or None. Received: {name}={value!r}.")
    return int(value)


def _pairs(name: str, value, check) -> tuple:
    if value is None:
        return ()
    items = value.items() if isinstance(value, dict) else value
    try:
        pairs = [(str(key), item) for key, item in items]
    except (TypeError, ValueError):
        raise _checks.error(
            f"Expected {name} to be a dict of layer name -> value. Received: {name}={value!r}."
        ) from None
    return tuple(sorted((key, check(f"{name}[{key!r}]", item)) for key, item in pairs))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A deployment target: its fixed recipe, and the ladders the guarded search climbs.

    Each ladder lists settings from weak to strong; the search keeps the strongest
    setting of each stage whose result stays within the tolerance, trying once the
    midpoint between the last setting kept and the first that failed.
    """

    name: str
    recipe: Recipe
    slim_ladder: tuple[float, ...]
    sparsity_ladder: tuple[float, ...]
    cluster_ladder: tuple[int, ...]
    quantization_ladder: tuple[str, ...]  # strongest first: the first that stays within tolerance wins
    summary: str


PRESETS = {
    "mobile": Preset(
        "mobile",
        Recipe(slim=0.5, sparsity=0.8, exclude=("last",), clusters=16, quantization="int8", strip=True,
               per_tensor_scales=True),
        slim_ladder=(0.25, 0.5, 0.75, 0.875),
        sparsity_ladder=(0.5, 0.75, 0.85, 0.9),
        cluster_ladder=(32, 16, 8, 4),
        quantization_ladder=("qat", "int8", "dynamic"),
        summary="smallest file for phones and microcontrollers: slim, prune, cluster, full int8 "
        "(quantization-aware where the layers allow, else post-training), names and metadata stripped",
    ),
    "cpu": Preset(
        "cpu",
        Recipe(slim=0.5, sparsity=0.8, exclude=("last",), clusters=16, quantization="dynamic",
               per_tensor_scales=True),
        slim_ladder=(0.25, 0.5, 0.75, 0.875),
        sparsity_ladder=(0.5, 0.75, 0.85, 0.9),
        cluster_ladder=(32, 16, 8, 4),
        quantization_ladder=("dynamic",),
        summary="servers and laptops: slim (fewer MACs), prune and cluster (smaller file), int8 weights "
        "with float activations",
    ),
    "gpu": Preset(
        "gpu",
        Recipe(slim=0.5, multiple=8, sparsity=0.0, sparsity_m_by_n=(2, 4), clusters=None, quantization="float16"),
        slim_ladder=(0.25, 0.5, 0.75),
        sparsity_ladder=(),
        cluster_ladder=(),
        quantization_ladder=("float16",),
        summary="GPUs: slim with widths a multiple of 8 (tensor cores; the speed: 2-4.4x at large batches "
        "on an H200), 2:4 structured sparsity (a smaller file; faster only in a runtime with fast 2:4 "
        "kernels: PyTorch's were slower than dense ones on 1024-wide layers), float16",
    ),
    "tpu": Preset(
        "tpu",
        Recipe(slim=0.5, multiple=128, sparsity=0.0, clusters=None, quantization="none"),
        slim_ladder=(0.25, 0.5, 0.75),
        sparsity_ladder=(),
        cluster_ladder=(),
        quantization_ladder=("none",),
        summary="TPUs: slim with widths a multiple of 128 (the matrix unit), dense float weights (TPUs "
        "compute dense, in bfloat16 under XLA)",
    ),
}
