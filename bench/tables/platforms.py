"""Benchmark tables: platforms (see bench/tables/_base.py).

Tables, recommenders and designed spaces (`applications.py`), the accelerator check (`gpu_check.py`,
`gpu_backends.py`) and scaling out (`scale.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from ._base import load, markdown, table

Row = dict[str, Any]


def _matching(rows: Iterable[Row], **fields: Any) -> list[Row]:
    """The rows whose `fields` have the given values."""
    return [row for row in rows if all(row.get(key) == value for key, value in fields.items())]


def _one(rows: Iterable[Row], **fields: Any) -> Row:
    """The single row whose `fields` have the given values."""
    found = _matching(rows, **fields)
    if len(found) != 1:
        raise LookupError(f"{len(found)} rows have {fields}")
    return found[0]


def _distinct(rows: Iterable[Row], key: str) -> list[Any]:
    """The values of `key` in `rows`, each once, in their first order."""
    return list(dict.fromkeys(row[key] for row in rows))


def _times(ratio: float) -> str:
    """A speed ratio, as `1.21x`."""
    return f"{ratio:.2f}x"


def _compact(count: int) -> str:
    """A parameter count in short: `9.8k`, `106k`, `2.18M`."""
    if count >= 1_000_000:
        return f"{count / 1e6:.2f}M"
    return f"{count / 1e3:.1f}k" if count < 10_000 else f"{count / 1e3:.0f}k"


# -- tables, recommenders and designed spaces ------------------------------------------------------


@table("applications")
def applications(results: Path) -> str:
    """keras-structopt's tabular and recommender searches against hand-written Keras models."""
    rows = [[r["data"], r["arm"], f"{r['metric']} {r['test']:.4f}", f"{r['params']:,}", f"{r['macs']:,}",
             f"{r['seconds']:.0f}"] for r in _matching(load(results, "applications.json")["rows"], part="families")]
    return markdown(["data", "arm", "test", "parameters", "MACs", "search seconds"], rows, "llrrrr")


@table("suggest")
def suggest(results: Path) -> str:
    """`kso.suggest`'s space against the family's default space (mean ± population std over the seeds)."""
    rows = _matching(load(results, "applications_suggest.json")["rows"], part="suggest")
    body = []
    for data in _distinct(rows, "data"):
        arms = [_matching(rows, data=data, arm=arm) for arm in ("suggested", "default")]
        tests = [f"{fmean(r['test'] for r in arm):.4f} ± {pstdev(r['test'] for r in arm):.4f}" for arm in arms]
        validations = [f"{fmean(r['best_validation'] for r in arm):.4f}" for arm in arms]
        params = " / ".join(f"{fmean(r['params'] for r in arm):,.0f}" for arm in arms)
        body.append([data, arms[0][0]["family"], arms[0][0]["metric"], *tests, *validations, params])
    header = ["data", "family", "metric", "suggested: test (mean ± std)", "default: test (mean ± std)",
              "suggested: val", "default: val", "parameters (suggested / default)"]
    return markdown(header, body, "lllrrrrr")


# -- accelerator check ---------------------------------------------------------------------------------


@table("accelerator-search")
def accelerator_search(results: Path) -> str:
    """Search throughput in float32 and under each mixed-precision policy measured (`gpu_check.py`)."""
    rows = _matching(load(results, "gpu_check_cpu.json")["rows"], part="search")
    policies = _distinct(rows, "policy")
    body = []
    for index, family in enumerate(_distinct(rows, "family")):
        first = _one(rows, family=family, policy=policies[0])
        shape = f" ({first['trials']} trials x {first['epochs']} epochs)" if index == 0 else ""
        cells = [f"{first['trials_per_minute']:.1f}"]
        for policy in policies[1:]:
            speed = _one(rows, family=family, policy=policy)["trials_per_minute"]
            cells.append(f"{speed:.1f} ({_times(speed / first['trials_per_minute'])})")
        body.append([f"{family} search, trials / min{shape}", *cells])
    return markdown(["measured", *policies], body, "l" + "r" * len(policies))


@table("accelerator-inference")
def accelerator_inference(results: Path) -> str:
    """Inference throughput of the slimmed and 2:4-sparse dense winner, as ratios to the winner's."""
    rows = _matching(load(results, "gpu_check_cpu.json")["rows"], part="inference")
    batches = _distinct(rows, "batch")
    winner = _one(rows, model="winner", batch=batches[0])["params"]
    labels = {"slimmed 0.5": "slimmed 0.5 ({params:,} parameters) vs winner ({winner:,})",
              "2:4 sparse": "2:4 sparse ({params:,}, half the weights zero) vs winner"}
    body = []
    for model, label in labels.items():
        params = _one(rows, model=model, batch=batches[0])["params"]
        ratios = [_one(rows, model="winner", batch=b)["seconds"] / _one(rows, model=model, batch=b)["seconds"]
                  for b in batches]
        body.append([label.format(params=params, winner=winner), *map(_times, ratios)])
    return markdown(["inference (TensorFlow, tf_keras)", *(f"batch {b}" for b in batches)], body,
                    "l" + "r" * len(batches))


@table("gpu-backends")
def gpu_backends(results: Path) -> str:
    """Forward-pass speed-up of the slimmed models over the unslimmed ones on an H200, JAX and PyTorch."""
    rows = _matching(load(results, "gpu_backends_h200.json")["rows"], part="inference")
    columns = [("jax", "float32", 4096), ("jax", "float32", 65536), ("jax", "bfloat16", 65536),
               ("torch", "float32", 65536)]
    names = {"jax": "JAX", "torch": "PyTorch", "float32": "f32", "bfloat16": "bf16"}
    slims = sorted({r["slim"] for r in rows} - {0.0})
    body = []
    for case in _distinct(rows, "case"):
        params = [_compact(_matching(rows, case=case, slim=slim)[0]["params"]) for slim in (0.0, *slims)]
        label = f"{case} winner" if case in ("dense", "conv") else case
        cells = []
        for backend, precision, batch in columns:
            same = _matching(rows, backend=backend, case=case, precision=precision, batch=batch)
            base = _one(same, slim=0.0)["seconds"]
            cells.append(" / ".join(_times(base / _one(same, slim=slim)["seconds"]) for slim in slims))
        body.append([f"{label} ({params[0]} -> {' / '.join(params[1:])})", *cells])
    header = [f"model (params -> slimmed {' / '.join(f'{s:g}' for s in slims)})",
              *(f"{names[backend]} {names[precision]} b={batch}" for backend, precision, batch in columns)]
    return markdown(header, body, "l" + "r" * len(columns))


# -- scaling out -------------------------------------------------------------------------------------


SETUPS = {  # `scale.py`'s setup names, as the documentation words them
    "KT chief + 2 workers": "KT chief + 2 workers (`launch`)",
    "KT chief + 2 workers, a worker SIGKILLed, resumed": "the same, a worker SIGKILLed at its third trial, resumed",
    "KT chief + 2 workers, the chief SIGKILLed, resumed": "the same, the chief SIGKILLed, resumed",
}


@table("scale")
def scale(results: Path) -> str:
    """One search in one process, as a Keras Tuner chief and workers (killed and resumed) and under Ray Tune."""
    rows = load(results, "scale.json")["rows"]
    base = _one(rows, setup="1 process")["seconds"]
    body = [[SETUPS.get(r["setup"], r["setup"]), f"{r['seconds']:.0f} s", f"{r['trials_per_minute']:.1f}",
             _times(base / r["seconds"]), r["completed"], f"{r['lost']} / {r['rerun']}" if "lost" in r else "-",
             "-" if r.get("ended_after_failure_s") is None else f"{r['ended_after_failure_s']:.1f} s"]
            for r in rows]
    header = ["setup", "wall time", "trials / min", "vs 1 process", "completed", "finished trials lost / re-run",
              "run ended after the kill"]
    return markdown(header, body, "lrrrrrr")
