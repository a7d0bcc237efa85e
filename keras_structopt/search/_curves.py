"""Learning curves of every trial, kept in the project directory, and the tables built on them.

Keras Tuner keeps only each trial's best epoch. A `CurveRecorder` callback, added to every
trial by the keras-structopt tuners, writes the per-epoch training and validation metrics
to `curves.json` in the trial's folder (fold by fold when cross-validated), so a finished or
reloaded search can be read back: `learning_curves` returns them as a tidy table,
`plot_learning_curves` draws them grouped by depth (or any hyperparameter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_structopt import _checks
from keras_structopt._trial_files import CURVES_FILE, read_curves_file, trial_folder
from keras_structopt._types import PathLike, Searched


def trial_directory(tuner, trial_id: str) -> Path:
    """The folder Keras Tuner keeps a trial's files in."""
    return trial_folder(tuner.project_dir, trial_id)


def read_curves(tuner, trial_id: str) -> list[dict]:
    """The recorded runs of one trial (one per fold when cross-validated)."""
    return read_curves_file(trial_directory(tuner, trial_id))


def _architecture_costs(tuner, hyperparameters) -> dict[str, Any]:
    architecture = getattr(tuner.hypermodel, "architecture", None)
    if architecture is None:
        return {}
    try:
        spec = architecture(hyperparameters.copy())
    except Exception:  # a hypermodel that cannot describe these values
        return {}
    return {"params": spec.count_params(), "macs": spec.count_macs(), "depth": spec.num_blocks}


def learning_curves(tuner: Searched, *, status: str | None = "COMPLETED") -> list[dict[str, Any]]:
    """Every recorded epoch of every trial, as a tidy table (one row per metric value).

    Each row: `trial`, `status`, `hyperparameters` (a dict), `params`, `macs` and
    `depth` (from the HyperModel's `Architecture`, when it has one), `fold` (`"all"`
    without cross-validation), `epoch`, `metric`, `value`. Pass the rows to
    `pandas.DataFrame` for a data frame.

    Args:
        tuner: A tuner (any Keras Tuner tuner over a keras-structopt HyperModel, or any
            tuner made by `keras_structopt.search.tuner`: their trials record their curves),
            or a `Project` read from a project directory.
        status: Only trials with this status (`None`: every trial).

    Raises:
        ConfigurationError: when no trial has that status, or none recorded its curves
            (Keras Tuner keeps only each trial's best epoch): never an empty table in silence.

    Example:
        >>> rows = learning_curves(getfixture("finished_search"))
        >>> sorted(rows[0])
        ['depth', 'epoch', 'fold', 'hyperparameters', 'macs', 'metric', 'params', 'status', 'trial', 'value']
    """
    rows = []
    trials = [t for t in tuner.oracle.trials.values() if status is None or t.status == status]
    if not trials:
        raise _checks.error(
            f"Expected a search with trials{'' if status is None else f' of status {status!r}'} to read learning "
            f"curves from. Received: {len(tuner.oracle.trials)} trials, none{'' if status is None else ' ' + status}."
        )
    for trial in trials:
        costs = _architecture_costs(tuner, trial.hyperparameters)
        for run in read_curves(tuner, trial.trial_id):
            for entry in run["epochs"]:
                for metric, value in entry.items():
                    if metric == "epoch":
                        continue
                    rows.append({
                        "trial": trial.trial_id,
                        "status": trial.status,
                        "hyperparameters": dict(trial.hyperparameters.values),
                        "params": costs.get("params"),
                        "macs": costs.get("macs"),
                        "depth": costs.get("depth"),
                        "fold": run.get("fold", "all"),
                        "epoch": entry["epoch"],
                        "metric": metric,
                        "value": value,
                    })
    if not rows:
        raise _checks.error(
            f"Expected trials that recorded their learning curves. Received: {len(trials)} trials without "
            f"{CURVES_FILE} in {getattr(tuner, 'project_dir', 'the project')}: Keras Tuner keeps only each trial's "
            "best epoch; keras-structopt's HyperModels (in any tuner) and kso.search.tuner's tuners record every epoch."
        )
    return rows


def plot_learning_curves(tuner: Searched, path: PathLike, *, metric: str = "val_accuracy",
                         group_by: str = "depth") -> Path:
    """Draws every trial's `metric` by epoch, one colour per value of `group_by`; writes a PNG.

    `group_by` is `"depth"` (the number of blocks), `"params"`, or any hyperparameter
    name. Cross-validated trials are drawn as the mean over folds.

    Example:
        >>> path = plot_learning_curves(getfixture("finished_search"), getfixture("tmp_path") / "c.png")
        >>> path.stat().st_size > 1000
        True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in learning_curves(tuner) if r["metric"] == metric]
    if not rows:
        raise ValueError(f"Expected recorded values of metric {metric!r}. Received: none in this search.")
    curves: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        group = row[group_by] if group_by in ("depth", "params", "macs") else row["hyperparameters"].get(group_by)
        curves.setdefault((group, row["trial"]), {}).setdefault(row["epoch"], []).append(row["value"])
    groups = sorted({g for g, _ in curves}, key=lambda g: (g is None, g))
    colours = plt.get_cmap("viridis")
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for (group, _), by_epoch in sorted(curves.items(), key=lambda item: str(item[0])):
        epochs = sorted(by_epoch)
        values = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
        colour = colours(groups.index(group) / max(1, len(groups) - 1))
        axis.plot([e + 1 for e in epochs], values, color=colour, alpha=0.8, linewidth=1.2)
    for group in groups:
        axis.plot([], [], color=colours(groups.index(group) / max(1, len(groups) - 1)), label=f"{group_by} {group}")
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.set_title(f"learning curves by {group_by}")
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def save_figure(figure, path) -> Path:
    """Writes a matplotlib figure as a PNG (folders made as needed), closes it, returns the path."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
