"""The benchmark figures: Matplotlib plots drawn from `bench/results/*.json` (see `_base.figure`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._base import figure, load

STAGES = ("baseline", "pruned", "clustered", "quantized")


@figure("search_cost")
def search_cost(results: Path) -> Any:
    """Test accuracy against the search's cost in trainings of its model, per data set and arm."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = load(results, "search_cost_one_shot.json")["rows"]
    data_sets = list(dict.fromkeys(row["data"] for row in rows))
    drawn, axes = plt.subplots(1, len(data_sets), figsize=(5 * len(data_sets), 3.6), squeeze=False)
    for axis, data in zip(axes[0], data_sets):
        for row in (r for r in rows if r["data"] == data):
            once = row["trials"] == 1 and row["trainings"] == 1.0
            axis.scatter(row["trainings"], row["test_accuracy"], marker="o" if once else "s",
                         color="0.55" if once else "C0", zorder=3)
            axis.annotate(row["arm"], (row["trainings"], row["test_accuracy"]), textcoords="offset points",
                          xytext=(5, 3), fontsize=8)
        axis.set_xscale("log")
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100) if t <= 1.5 * max(r["trainings"] for r in rows)]
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.margins(x=0.25, y=0.12)
        axis.set_title(data)
        axis.set_xlabel("wall time, in trainings of the model found (log)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    drawn.suptitle("What a search costs (grey: hand-written, trained once)", fontsize=10)
    return drawn


@figure("families_stages")
def families_stages(results: Path) -> Any:
    """The gzip'd TFLite file of every family's searched winner after each stage of `compress`."""
    import matplotlib.pyplot as plt

    drawn, axis = plt.subplots(figsize=(7, 3.8))
    for row in load(results, "families.json")["results"]:
        stages = {stage["name"]: stage for stage in row["stages"]}
        names = [name for name in STAGES if name in stages]
        sizes = [stages[name]["tflite_gzip_bytes"] / 1024 for name in names]
        axis.plot(names, sizes, marker="o", label=f"{row['case']} ({row['size_ratio']:.1f}x smaller, "
                                                  f"{row['accuracy_loss_points']:+.2f} pts lost)")
    axis.set_yscale("log")
    axis.set_ylabel("gzip'd TFLite file (KiB, log)")
    axis.set_xlabel("after the stage")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="searched winner, compressed",
                title_fontsize=7)
    return drawn
