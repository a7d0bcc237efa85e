"""Learning curves of every trial, kept in the project directory, and the tables built on them.

Keras Tuner keeps only each trial's best epoch. A `CurveRecorder` callback, added to every
trial by the keras-structopt tuners, writes the per-epoch training and validation metrics
to `curves.json` in the trial's folder (fold by fold when cross-validated), so a finished or
reloaded search can be read back: `learning_curves` returns them as a tidy table,
`plot_learning_curves` draws them grouped by depth (or any hyperparameter).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras

CURVES_FILE = "curves.json"


NOTE_FILE = "structopt.json"  # what keras-structopt notes about a trial (rejected, stopped, refit epochs)


def trial_directory(tuner, trial_id: str) -> Path:
    """The folder Keras Tuner keeps a trial's files in."""
    return trial_folder(tuner.project_dir, trial_id)


def trial_folder(project_dir, trial_id: str) -> Path:
    """The folder of trial `trial_id` in a project directory."""
    return Path(project_dir) / f"trial_{trial_id}"


def read_note(project_dir, trial_id: str) -> dict:
    """What keras-structopt noted about a trial ({} if nothing)."""
    return read_json(trial_folder(project_dir, trial_id) / NOTE_FILE)


def write_note(project_dir, trial_id: str, update: dict) -> None:
    """Adds `update` to a trial's note (written atomically)."""
    path = trial_folder(project_dir, trial_id) / NOTE_FILE
    note = read_json(path)
    note.update(update)
    _write(path, note)


class CurveRecorder(keras.callbacks.Callback):
    """Appends each epoch's logs to `curves.json` in a trial's folder.

    The file is rewritten atomically after every epoch, so a killed search keeps the
    epochs it finished. Keras Tuner deep-copies the callbacks it is given; this one
    holds only a path and plain values, so its copies write the same file.

    Example:
        >>> import json
        >>> recorder = CurveRecorder(getfixture("tmp_path"), fold=None, validation_size=359)
        >>> recorder.on_epoch_end(0, {"loss": 0.5, "val_accuracy": 0.9})
        >>> json.loads((getfixture("tmp_path") / "curves.json").read_text())["runs"][0]["epochs"]
        [{'epoch': 0, 'loss': 0.5, 'val_accuracy': 0.9}]
    """

    def __init__(self, directory, *, fold: int | None = None, validation_size: int | None = None):
        super().__init__()
        self.path = Path(directory) / CURVES_FILE
        self.fold = fold
        self.validation_size = validation_size

    def on_train_begin(self, logs=None):
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        data["runs"] = [r for r in data.get("runs", []) if r.get("fold", "all") != key]
        data["runs"].append({"fold": key, "validation_size": self.validation_size, "epochs": []})
        _write(self.path, data)

    def on_epoch_end(self, epoch, logs=None):
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        runs = [r for r in data.get("runs", []) if r.get("fold", "all") == key]
        if not runs:
            runs = [{"fold": key, "validation_size": self.validation_size, "epochs": []}]
            data.setdefault("runs", []).append(runs[0])
        entry = {"epoch": int(epoch)}
        entry.update({name: float(value) for name, value in (logs or {}).items() if _is_number(value)})
        runs[0]["epochs"].append(entry)
        _write(self.path, data)


    def truncate(self, epochs: int) -> None:
        """Keeps the first `epochs` epochs of this run (a trial resumed from a checkpoint of that epoch).

        Example:
            >>> recorder = CurveRecorder(getfixture("tmp_path"))
            >>> for epoch in range(3):
            ...     recorder.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
            >>> recorder.truncate(1)
            >>> [e["epoch"] for e in read_curves_file(getfixture("tmp_path"))[0]["epochs"]]
            [0]
        """
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        for run in data.get("runs", []):
            if run.get("fold", "all") == key:
                run["epochs"] = [e for e in run["epochs"] if e["epoch"] < epochs]
        _write(self.path, data)


def read_curves_file(directory) -> list[dict]:
    """The runs recorded in `directory/curves.json` ([] if none)."""
    return read_json(Path(directory) / CURVES_FILE).get("runs", [])


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def read_json(path: Path) -> dict:
    """A JSON file's object, or {} if it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


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


def learning_curves(tuner, *, status: str | None = "COMPLETED") -> list[dict[str, Any]]:
    """Every recorded epoch of every trial, as a tidy table (one row per metric value).

    Each row: `trial`, `status`, `hyperparameters` (a dict), `params`, `macs` and
    `depth` (from the HyperModel's `Architecture`, when it has one), `fold` (`"all"`
    without cross-validation), `epoch`, `metric`, `value`. Pass the rows to
    `pandas.DataFrame` for a data frame.

    Args:
        tuner: A tuner made by `keras_structopt.search.tuner` (its trials record curves).
        status: Only trials with this status (`None`: every trial).

    Example:
        >>> rows = learning_curves(getfixture("finished_search"))
        >>> sorted(rows[0])
        ['depth', 'epoch', 'fold', 'hyperparameters', 'macs', 'metric', 'params', 'status', 'trial', 'value']
    """
    rows = []
    for trial in tuner.oracle.trials.values():
        if status is not None and trial.status != status:
            continue
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
    return rows


def plot_learning_curves(tuner, path, *, metric: str = "val_accuracy", group_by: str = "depth"):
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
