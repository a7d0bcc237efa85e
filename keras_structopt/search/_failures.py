"""Failed trials that say why, count as the worst score, and a search that never fails silently.

Keras Tuner records an exception inside a trial as a failed trial and goes on; a search
whose every trial failed returns as if it had worked, and Bayesian optimisation leaves
failed trials out of its Gaussian process, so it keeps proposing the region that diverged.
The tuners of `keras_structopt.search.tuner(...)` change three things:

* **Non-finite loss stops the trial at once**: `NonFiniteStopper` checks the loss after
  every batch (and the validation loss after every epoch); the first NaN or inf fails the
  trial with the reason (epoch, batch, value), written to the trial's note as
  `{"failed": reason, "non_finite": true}`.
* **A diverged trial is the worst score**: Bayesian optimisation's Gaussian process sees
  each such trial at a score below the worst finished trial, so it learns to stay away
  from the region instead of proposing it again (`StructuralOracle.extra_observations`).
* **Its region is not proposed again**: every oracle (random draws, grid points, Gaussian-
  process proposals, evolution's children) refuses a candidate whose values lie within
  `FAILURE_RADIUS` of a diverged trial's in Keras Tuner's [0, 1] embedding of each
  hyperparameter (the same categorical values, every numeric value within that fraction
  of its range), before anything is built (`near_failure`).
* **Zero completed trials is an error**: `SearchFailedError` names how many trials failed
  and the first failure's message, after the search (or when Keras Tuner's
  `max_consecutive_failed_trials` stops it).
"""

from __future__ import annotations

import math

import keras
import keras_tuner
import numpy as np

from keras_structopt._keras_tuner import nonfixed_space
from keras_structopt._trial_files import read_note, write_note
from keras_structopt.errors import SearchFailedError

NON_FINITE = "non_finite"
FAILURE_RADIUS = 0.1  # a diverged trial's region: within this fraction of every hyperparameter's range


class NonFiniteStopper(keras.callbacks.Callback):
    """Fails the running trial the moment its loss is NaN or infinite.

    It raises Keras Tuner's `FailedTrialError` (the trial is recorded FAILED, not
    retried) after writing the reason into the trial's note.

    Example:
        >>> import numpy as np, keras
        >>> stopper = NonFiniteStopper(getfixture("tmp_path"), "00")
        >>> stopper.on_train_batch_end(0, {"loss": 0.5})  # finite: nothing happens
        >>> try:
        ...     stopper.on_train_batch_end(3, {"loss": float("nan")})
        ... except Exception as error:
        ...     print(str(error).split(":")[0])
        The loss became nan at epoch 1, batch 4
    """

    def __init__(self, project_dir, trial_id: str):
        super().__init__()
        self.project_dir, self.trial_id = str(project_dir), trial_id
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"), "loss", f"epoch {self.epoch + 1}, batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name in ("loss", "val_loss"):
            self._check(logs.get(name), name, f"the end of epoch {epoch + 1}")

    def _check(self, value, name, where):
        if value is None:
            return
        value = float(np.asarray(value))
        if math.isfinite(value):
            return
        reason = (f"The {name} became {value} at {where}: the trial diverged (a non-finite loss; a smaller "
                  "learning rate or normalised inputs usually help)")
        write_note(self.project_dir, self.trial_id, {"failed": reason, NON_FINITE: True})
        raise keras_tuner.errors.FailedTrialError(reason)


def failure_reason(trial) -> str:
    """The one-line reason a failed trial gives: its exception's last line, without the traceback.

    Example:
        >>> import keras_tuner
        >>> trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="0",
        ...     status="FAILED")
        >>> trial.message = "Traceback (most recent call last):\\n  ...\\nValueError: bad shape\\n"
        >>> failure_reason(trial)
        'ValueError: bad shape'
    """
    message = (getattr(trial, "message", None) or "").strip()
    if not message:
        return f"trial {trial.trial_id} failed without a message"
    lines = [line for line in message.splitlines() if line.strip()]
    return lines[-1].strip()


def check_completed(oracle, project_dir) -> None:
    """Raises `SearchFailedError` if the oracle holds trials but none COMPLETED.

    Example:
        >>> import keras_tuner
        >>> oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
        >>> check_completed(oracle, getfixture("tmp_path"))  # no trial at all: nothing to report
    """
    trials = list(oracle.trials.values())
    if not trials or any(t.status == "COMPLETED" for t in trials):
        return
    failed = [t for t in trials if t.status in ("FAILED", "INVALID")]
    if not failed:
        return
    first = min(failed, key=lambda t: t.trial_id)
    raise SearchFailedError(_message(len(failed), len(trials), first, project_dir))


def from_consecutive_failures(error: RuntimeError, oracle, project_dir) -> SearchFailedError | None:
    """Keras Tuner's "consecutive failures" `RuntimeError` as a `SearchFailedError` (else None)."""
    if "consecutive failures" not in str(error):
        return None
    failed = sorted((t for t in oracle.trials.values() if t.status == "FAILED"), key=lambda t: t.trial_id)
    if not failed:
        return None
    completed = sum(t.status == "COMPLETED" for t in oracle.trials.values())
    return SearchFailedError(
        f"The search stopped after {oracle.max_consecutive_failed_trials} consecutive failed trials "
        f"(max_consecutive_failed_trials={oracle.max_consecutive_failed_trials}; {completed} trials completed "
        f"before). The first failure, trial {failed[0].trial_id}: {_reason(failed[0], project_dir)}. "
        f"The trials are in {project_dir}."
    )


def _reason(trial, project_dir) -> str:
    note = read_note(project_dir, trial.trial_id)
    return note.get("failed") or failure_reason(trial)


def _message(failed: int, total: int, first, project_dir) -> str:
    return (f"No trial of the search completed: {failed} of {total} trials failed. The first failure, trial "
            f"{first.trial_id}: {_reason(first, project_dir)}. The trials are in {project_dir}.")


def diverged_trials(oracle, project_dir) -> list:
    """The oracle's trials that failed on a non-finite loss."""
    return [t for t in oracle.trials.values()
            if t.status == "FAILED" and read_note(project_dir, t.trial_id).get(NON_FINITE)]


def near_failure(oracle, values: dict, diverged, radius: float = FAILURE_RADIUS):
    """The id of the diverged trial whose region holds `values`, or None.

    Example:
        >>> import keras_tuner
        >>> oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
        >>> _ = oracle.hyperparameters.Int("units", 0, 100)
        >>> failed = keras_tuner.engine.trial.Trial(oracle.hyperparameters.copy(), trial_id="3")
        >>> failed.hyperparameters.values["units"] = 90
        >>> near_failure(oracle, {"units": 95}, [failed]), near_failure(oracle, {"units": 50}, [failed])
        ('3', None)
    """
    if not diverged:
        return None
    candidate = np.asarray(_embed(oracle, values))
    for trial in diverged:
        if np.all(np.abs(candidate - np.asarray(_embed(oracle, trial.hyperparameters.values))) <= radius):
            return trial.trial_id
    return None


def _embed(oracle, values: dict) -> list[float]:
    """Values in Keras Tuner's [0, 1] embedding of each non-fixed hyperparameter (defaults where absent)."""
    vector = []
    for hp in oracle.hyperparameters.space:
        if isinstance(hp, keras_tuner.engine.hyperparameters.Fixed):
            continue
        value = values.get(hp.name, hp.default)
        try:
            vector.append(float(hp.value_to_prob(value)))
        except (TypeError, ValueError):  # a value outside the declared space: it cannot be near
            vector.append(float("inf"))
    return vector


def trial_vector(oracle, trial) -> list[float]:
    """The trial's values in a Bayesian oracle's [0, 1] embedding (as Keras Tuner's own vectors are built)."""
    values = trial.hyperparameters
    vector = []
    for hp in nonfixed_space(oracle):
        active = values.is_active(hp) and hp.name in values.values
        value = values.values[hp.name] if active else hp.default
        vector.append(hp.value_to_prob(value))
    return vector
