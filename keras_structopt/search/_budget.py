"""A search's time budget: `tuner.search(..., max_time=600)`.

No trial starts that cannot finish in the time left, estimated from the trials so far (the
longest one: trials of one search differ in size, and the budget is a promise); a trial
running when the time is up stops at the end of its epoch and keeps the metrics it has. What
was cut is written to the project (`budget.json`), and the report shows it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras

from keras_structopt import _checks
from keras_structopt._trial_files import read_json, write_json, write_note

BUDGET_FILE = "budget.json"
CUT_NOTE = "cut_by_max_time_after_epoch"


def check_max_time(max_time: Any) -> float | None:
    """`max_time` in seconds, checked: None, or a number > 0."""
    if max_time is None:
        return None
    if not _checks.is_number(max_time) or not math.isfinite(max_time) or max_time <= 0:
        raise _checks.error(f"Expected max_time to be a number of seconds > 0. Received: max_time={max_time!r}.")
    return float(max_time)


class TimeBudget:
    """The wall-clock budget of one `search` call, and what it cut.

    Example:
        >>> budget = TimeBudget(60.0)
        >>> budget.admits_another()  # nothing has run: the first trial starts
        True
        >>> budget.durations.append(50.0); budget.admits_another()  # 60 s left at most, trials take 50
        True
        >>> budget.start -= 20; budget.admits_another()  # 40 s left: a 50 s trial would not finish
        False
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.start = time.monotonic()
        self.durations: list[float] = []
        self.started: dict[str, float] = {}
        self.cut: list[dict] = []
        self.stopped: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def estimate(self) -> float | None:
        """How long the next trial may take: the longest trial so far (None before the first ends)."""
        return max(self.durations) if self.durations else None

    def admits_another(self) -> bool:
        """Whether a new trial can start and finish within the budget."""
        left, estimate = self.remaining(), self.estimate()
        if left <= 0 or (estimate is not None and estimate > left):
            if self.stopped is None:
                self.stopped = (f"{max(left, 0.0):.0f} s of max_time={self.seconds:g} s left, and trials took up to "
                                f"{estimate or 0.0:.0f} s: no trial started after {self.elapsed():.0f} s")
            return False
        return True

    def trial_started(self, trial_id: str) -> None:
        self.started[trial_id] = time.monotonic()

    def trial_ended(self, trial_id: str) -> None:
        began = self.started.pop(trial_id, None)
        if began is not None:
            self.durations.append(time.monotonic() - began)

    def callback(self, project_dir, trial_id: str) -> keras.callbacks.Callback:
        """Stops a trial at the end of the epoch in which the budget runs out (noted in the trial's folder)."""
        return _Deadline(self, project_dir, trial_id)

    def to_dict(self) -> dict:
        return {"max_time": self.seconds, "elapsed": round(self.elapsed(), 3), "trial_seconds":
                [round(d, 3) for d in self.durations], "cut": list(self.cut), "stopped": self.stopped}

    def write(self, project_dir) -> None:
        write_json(Path(project_dir) / BUDGET_FILE, self.to_dict())


class _Deadline(keras.callbacks.Callback):
    def __init__(self, budget: TimeBudget, project_dir, trial_id: str):
        super().__init__()
        self.budget, self.project_dir, self.trial_id = budget, project_dir, trial_id

    def __deepcopy__(self, memo):  # Keras Tuner copies a trial's callbacks: the copy keeps the one budget
        return _Deadline(self.budget, self.project_dir, self.trial_id)

    def on_epoch_end(self, epoch, logs=None):
        if self.budget.remaining() <= 0 and not self.model.stop_training:
            self.model.stop_training = True
            self.budget.cut.append({"trial": self.trial_id, "after_epoch": epoch + 1})
            write_note(self.project_dir, self.trial_id, {CUT_NOTE: epoch + 1})


def read_budget(project_dir) -> dict | None:
    """What the last budgeted search of a project cut (`budget.json`), or None.

    Example:
        >>> read_budget(getfixture("tmp_path")) is None
        True
    """
    return read_json(Path(project_dir) / BUDGET_FILE) or None
