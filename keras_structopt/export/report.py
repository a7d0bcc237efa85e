"""Job reports: `report.json` (everything measured) and `report.md` (for people)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def stage_table(stages: list[dict[str, Any]], metric: str | None = None) -> list[str]:
    """Markdown rows comparing the compression stages with the baseline.

    `metric` names the column of figures (by default accuracy when measured, else
    the first metric, else the loss).

    Example:
        >>> stage = {"name": "baseline", "quantization": "none", "metrics": {"loss": 0.2, "auc": 0.97},
        ...          "kernel_sparsity": 0.0, "max_unique_kernel_values": 90, "params": 100,
        ...          "tflite_bytes": 900, "tflite_gzip_bytes": 800}
        >>> stage_table([stage])[0].split(" | ")[1]
        'auc'
    """
    baseline = stages[0]["tflite_gzip_bytes"]
    measured = stages[0]["metrics"]
    if metric is None or metric not in measured:
        metric = "accuracy" if "accuracy" in measured else next((k for k in measured if k != "loss"), "loss")
    rows = [
        f"| stage | {metric} | kernel sparsity | max unique / kernel | params | TFLite bytes | gzip bytes | smaller |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in stages:
        rows.append(
            f"| {stage['name']} ({stage['quantization']}) | {stage['metrics'][metric]:.4f} "
            f"| {stage['kernel_sparsity']:.3f} | {stage['max_unique_kernel_values']} "
            f"| {stage['params']:,} | {stage['tflite_bytes']:,} | {stage['tflite_gzip_bytes']:,} "
            f"| {baseline / stage['tflite_gzip_bytes']:.1f}x |"
        )
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown form of a job report.

    Example:
        >>> text = render_markdown({"search": {"tuner": "random", "trials_completed": 1,
        ...     "best_val_accuracy": 0.9, "best_params": 100, "best_macs": 90,
        ...     "seconds": 1.0, "best_architecture": {}}})
        >>> text.splitlines()[0]
        '# keras-structopt report'
    """
    search = report["search"]
    lines = [
        "# keras-structopt report",
        "",
        "## Search",
        "",
        f"- tuner: {search['tuner']}, trials completed: {search['trials_completed']}",
        f"- best validation accuracy: {search['best_val_accuracy']:.4f}",
        f"- winner: {search['best_params']:,} parameters, {search['best_macs']:,} MACs",
        f"- search time: {search['seconds']:.1f} s",
        "",
        "```json",
        json.dumps(search["best_architecture"], indent=2, sort_keys=True),
        "```",
    ]
    if "compression" in report:
        compression = report["compression"]
        lines += ["", "## Compression", ""] + stage_table(compression["stages"], compression.get("metric"))
        for warning in compression.get("warnings", []):
            lines += ["", f"Warning: {warning}"]
    if "export" in report:
        lines += ["", "## Exports", ""]
        lines += [f"- {kind}: `{path}`" for kind, path in sorted(report["export"].items())]
    return "\n".join(lines) + "\n"


def write_report(directory, report: dict[str, Any]) -> tuple[Path, Path]:
    """Writes `report.json` and `report.md` into `directory` (each atomically).

    Example:
        >>> paths = write_report(getfixture("tmp_path"), {"search": {"tuner": "random",
        ...     "trials_completed": 1, "best_val_accuracy": 0.9, "best_params": 1,
        ...     "best_macs": 1, "seconds": 1.0, "best_architecture": {}}})
        >>> [path.name for path in paths]
        ['report.json', 'report.md']
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("report.json", json.dumps(report, indent=2, sort_keys=True) + "\n"),
        ("report.md", render_markdown(report)),
    ):
        path = directory / name
        temporary = directory / f".{name}.tmp-{os.getpid()}"
        temporary.write_text(text)
        os.replace(temporary, path)
        written.append(path)
    return tuple(written)
