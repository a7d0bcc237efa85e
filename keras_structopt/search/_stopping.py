"""Median stopping: end a trial that is worse, at the same epoch, than the median of earlier trials.

The rule (as in Google Vizier's median stopping): after `grace_epochs` epochs, and once
`min_trials` trials have finished, a trial whose monitored value at epoch `e` is worse than
the median of the finished trials' values at epoch `e` stops. Cross-validated trials are
compared fold by fold (fold `k` against the finished trials' fold `k`).

The comparison reads the finished trials' `curves.json` files (and their `trial.json`
status), so it holds only plain values: Keras Tuner deep-copies callbacks, and a resumed
or distributed search compares against what is on disk. A stopped trial is recorded with
its last values and the metric `stopped_at_epoch`; keras-structopt's tuners rank stopped
trials after every trial that ran to the end, so one is never returned as the best by
accident, and selection, the Pareto front and evolution's parents leave them out.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import keras

from keras_structopt import _checks
from keras_structopt._trial_files import CURVES_FILE, NOTE_FILE, read_json, read_note, write_note

STOPPED_METRIC = "stopped_at_epoch"


@dataclasses.dataclass(frozen=True)
class MedianStopping:
    """When to stop a trial early: pass as `median_stopping=` to `keras_structopt.search.tuner`.

    Args:
        grace_epochs: Epochs every trial runs before it can be stopped (at least 1).
        min_trials: Finished trials needed before any trial is stopped (at least 1).
        metric: The monitored value (default: the tuner's objective).
        direction: `"max"` or `"min"` (default: the objective's).

    Example:
        >>> MedianStopping(grace_epochs=3, min_trials=4)
        MedianStopping(grace_epochs=3, min_trials=4, metric=None, direction=None)
    """

    grace_epochs: int = 3
    min_trials: int = 3
    metric: str | None = None
    direction: str | None = None

    def __post_init__(self):
        _checks.positive_int("grace_epochs", self.grace_epochs)
        _checks.positive_int("min_trials", self.min_trials)
        if self.direction is not None:
            _checks.one_of("direction", self.direction, ("max", "min"))


def should_stop(value: float, earlier: list[float], *, epoch: int, rule: MedianStopping, direction: str) -> bool:
    """The median rule on plain numbers: `value` at 0-based `epoch` against the finished trials' `earlier`.

    Example:
        >>> rule = MedianStopping(grace_epochs=2, min_trials=3)
        >>> should_stop(0.80, [0.85, 0.90, 0.88], epoch=2, rule=rule, direction="max")
        True
        >>> should_stop(0.80, [0.85, 0.90, 0.88], epoch=0, rule=rule, direction="max")  # in the grace period
        False
    """
    if epoch + 1 <= rule.grace_epochs or len(earlier) < rule.min_trials:
        return False
    median = statistics.median(earlier)
    return value < median if direction == "max" else value > median


class MedianStopper(keras.callbacks.Callback):
    """The callback that applies a `MedianStopping` rule inside one trial (or one fold).

    Holds only paths and plain values (Keras Tuner deep-copies callbacks). When it stops
    the trial it writes `median_stopped` (epoch, value, median, fold) into the trial's
    `structopt.json`.
    """

    def __init__(self, project_dir, trial_id: str, rule: MedianStopping, metric: str, direction: str,
                 fold: int | str = "all"):
        super().__init__()
        self.project_dir = str(project_dir)
        self.trial_id = trial_id
        self.rule = rule
        self.metric = metric
        self.direction = direction
        self.fold = fold
        self._finished: dict[str, list[float]] | None = None

    def _finished_curves(self) -> dict[str, list[float]]:
        """Each finished (not stopped) trial's monitored values by epoch, for this fold."""
        if self._finished is None:
            found = {}
            for folder in Path(self.project_dir).glob("trial_*"):
                if folder.name == f"trial_{self.trial_id}":
                    continue
                status = read_json(folder / "trial.json")
                if status.get("status") != "COMPLETED" or stopped_early(read_json(folder / NOTE_FILE)):
                    continue
                for run in read_json(folder / CURVES_FILE).get("runs", []):
                    if run.get("fold", "all") == self.fold:
                        found[folder.name] = [e.get(self.metric) for e in run["epochs"]]
            self._finished = found  # finished trials do not change while this one trains
        return self._finished

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        earlier = [
            values[epoch] for values in self._finished_curves().values()
            if epoch < len(values) and values[epoch] is not None
        ]
        if should_stop(float(value), earlier, epoch=epoch, rule=self.rule, direction=self.direction):
            self.model.stop_training = True
            write_note(self.project_dir, self.trial_id, {"median_stopped": {
                "epoch": int(epoch), "value": float(value), "median": float(statistics.median(earlier)),
                "fold": self.fold,
            }})


def stopped_note(project_dir, trial_id: str) -> dict | None:
    """How a trial was stopped early (`median_stopped`, or `pruned` by an Optuna pruner), or None if it ran to
    the end."""
    note = read_note(project_dir, trial_id)
    return note.get("median_stopped") or note.get("pruned")


def stopped_early(note: dict) -> bool:
    """Whether a trial's `structopt.json` note says it was stopped early (median rule or Optuna pruner).

    Example:
        >>> stopped_early({"pruned": {"epoch": 1, "value": 0.5}}), stopped_early({})
        (True, False)
    """
    return "median_stopped" in note or "pruned" in note
