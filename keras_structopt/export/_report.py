"""Job reports: `report.json` (everything measured) and `report.md` (for people)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def stage_table(stages: list[dict[str, Any]], metric: str | None = None) -> list[str]:
    """Markdown rows comparing the compression stages with the baseline.

    `metric` names the column of figures (by default accuracy when measured, else
    the first metric, else the loss). Latencies are fractions of the baseline's,
    measured in the same run (batch 1 and 256; tf_keras and TFLite).

    Example:
        >>> stage = {"name": "baseline", "quantization": "none", "metrics": {"loss": 0.2, "auc": 0.97},
        ...          "kernel_sparsity": 0.0, "max_unique_kernel_values": 90, "params": 100,
        ...          "tflite_bytes": 900, "tflite_gzip_bytes": 800}
        >>> stage_table([stage])[0].split(" | ")[1]
        'auc'
    """
    baseline = stages[0]
    measured = baseline["metrics"]
    if metric is None or metric not in measured:
        metric = "accuracy" if "accuracy" in measured else next((k for k in measured if k != "loss"), "loss")
    rows = [
        f"| stage | {metric} | params | MACs | kernel sparsity | max unique / kernel | TFLite bytes | gzip bytes "
        "| smaller | bits / weight (entropy) | latency TF b1 / b256 | latency TFLite b1 / b256 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in stages:
        rows.append(
            f"| {stage['name']} ({stage['quantization']}) | {stage['metrics'][metric]:.4f} "
            f"| {stage['params']:,} | {stage.get('macs', 0):,} | {stage['kernel_sparsity']:.3f} "
            f"| {stage['max_unique_kernel_values']} | {stage['tflite_bytes']:,} | {stage['tflite_gzip_bytes']:,} "
            f"| {baseline['tflite_gzip_bytes'] / stage['tflite_gzip_bytes']:.1f}x "
            f"| {stage.get('bits_per_weight', 0):.2f} ({stage.get('entropy_bits_per_weight', 0):.2f}) "
            f"| {_ratios(stage, baseline, 'tf')} | {_ratios(stage, baseline, 'tflite')} |"
        )
    return rows


def _ratios(stage, baseline, kind: str) -> str:
    latency, reference = stage.get("latency") or {}, baseline.get("latency") or {}
    parts = []
    for batch in (1, 256):
        key = f"{kind}_{batch}"
        parts.append(f"{latency[key] / reference[key]:.2f}x" if latency.get(key) and reference.get(key) else "-")
    return " / ".join(parts)


def search_table(tries: list[dict[str, Any]], metric: str) -> list[str]:
    """Markdown rows of what the accuracy-guarded search tried, in order.

    Example:
        >>> search_table([{"stage": "slim", "setting": 0.5, "validation": 0.97, "loss": 0.004,
        ...                "params": 900, "kept": True}], "accuracy")[2]
        '| slim | 0.5 | 0.9700 | 0.0040 | 900 | yes |'
    """
    rows = [f"| stage | setting | validation {metric} | loss vs. uncompressed | params | kept |",
            "|---|---|---:|---:|---:|---|"]
    for entry in tries:
        value = "-" if entry.get("validation") is None else f"{entry['validation']:.4f}"
        loss = "-" if entry.get("loss") is None else f"{entry['loss']:.4f}"
        params = "-" if entry.get("params") is None else f"{entry['params']:,}"
        kept = "yes" if entry["kept"] else ("no: " + entry["note"] if entry.get("note") else "no")
        rows.append(f"| {entry['stage']} | {entry['setting']} | {value} | {loss} | {params} | {kept} |")
    return rows


def plot_stages(compression: dict[str, Any], path) -> Path:
    """Draws the stages as one PNG: accuracy against gzip'd size, and latency ratios.

    Example:
        >>> stage = {"name": "baseline", "quantization": "none", "metrics": {"accuracy": 0.97},
        ...          "tflite_gzip_bytes": 800, "latency": {"tf_256": 1.0, "tflite_256": 2.0}}
        >>> plot_stages({"stages": [stage], "metric": "accuracy"}, getfixture("tmp_path") / "s.png").suffix
        '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = compression["stages"]
    metric = compression.get("metric") or "accuracy"
    if metric not in stages[0]["metrics"]:
        metric = next(iter(stages[0]["metrics"]))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [s["tflite_gzip_bytes"] for s in stages]
    values = [s["metrics"][metric] for s in stages]
    left.plot(sizes, values, "o-")
    for stage, x, y in zip(stages, sizes, values):
        left.annotate(stage["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("gzip'd TFLite bytes")
    left.set_ylabel(f"test {metric}")
    left.set_title("size and accuracy per stage")
    baseline = stages[0].get("latency") or {}
    keys = [k for k in ("tf_1", "tf_256", "tflite_1", "tflite_256") if baseline.get(k)]
    width = 0.8 / max(1, len(keys))
    for i, key in enumerate(keys):
        ratios = [(s.get("latency") or {}).get(key, 0) / baseline[key] for s in stages]
        right.bar([j + i * width for j in range(len(stages))], ratios, width, label=key.replace("_", " batch "))
    right.axhline(1.0, color="grey", linewidth=0.8)
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(stages))], [s["name"] for s in stages], fontsize=8)
    right.set_ylabel("latency / uncompressed")
    right.set_title("latency (same run)")
    if keys:
        right.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _best_line(search: dict[str, Any]) -> str:
    """The search's best value: its validation accuracy, or the value of its objective."""
    if search.get("best_val_accuracy") is not None:
        return f"- best validation accuracy: {search['best_val_accuracy']:.4f}"
    return f"- best {search.get('objective', 'objective')}: {search.get('best_value', float('nan')):.4g}"


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown form of a job report.

    Example:
        >>> text = render_markdown({"search": {"tuner": "random", "trials_completed": 1,
        ...     "best_val_accuracy": 0.9, "best_params": 100, "best_macs": 90,
        ...     "seconds": 1.0, "best_architecture": {}}})
        >>> text.splitlines()[0]
        '# keras-structopt report'
    """
    lines = ["# keras-structopt report"]
    if "model" in report:  # `keras-structopt compress MODEL`: no search
        lines += ["", f"Model: `{report['model']}`"]
    if "search" in report:
        search = report["search"]
        lines += [
            "",
            "## Search",
            "",
            f"- tuner: {search['tuner']}, trials completed: {search['trials_completed']}",
            _best_line(search),
            f"- winner: {search['best_params']:,} parameters, {search['best_macs']:,} MACs",
            f"- search time: {search['seconds']:.1f} s",
            "",
            "```json",
            json.dumps(search["best_architecture"], indent=2, sort_keys=True),
            "```",
        ]
    if "compression" in report:
        compression = report["compression"]
        metric = compression.get("metric")
        lines += ["", "## Compression", ""] + stage_table(compression["stages"], metric)
        if compression.get("recipe"):
            lines += ["", f"Settings: `{json.dumps(compression['recipe'], sort_keys=True)}`"]
        if compression.get("search"):
            lines += ["", "### Accuracy-guarded search (validation split)", ""]
            lines += search_table(compression["search"], metric or "accuracy")
        if compression.get("chart"):
            lines += ["", f"![stages]({compression['chart']})"]
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
