"""Every use of Keras Tuner beyond its documented API, in one module.

keras-structopt extends Keras Tuner through its documented hooks (`Oracle.populate_space`,
`score_trial`, `end_trial`, `get_best_trials`, `get_state`/`set_state`, `Tuner.run_trial`,
`on_trial_end`). What those hooks do not reach is here, each piece a small function or
mixin with a test (`tests/test_keras_tuner_compat.py`) that fails with a clear message
when Keras Tuner changes it. No other module imports `keras_tuner.src` or reads a
private member of a Keras Tuner object (a test reads the source).

Written against Keras Tuner 1.4.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
from typing import Any

import keras_tuner
import numpy as np

SUPPORTED = "1.4"


def _member(owner: Any, name: str) -> Any:
    """`owner.<name>`, or an error saying which Keras Tuner member keras-structopt needs."""
    try:
        return getattr(owner, name)
    except AttributeError:
        raise RuntimeError(
            f"keras-structopt needs Keras Tuner's {type(owner).__name__}.{name}, which Keras Tuner "
            f"{keras_tuner.__version__} does not have; keras-structopt supports Keras Tuner {SUPPORTED}.x."
        ) from None


# -- metrics -------------------------------------------------------------------------------------


def metric_direction(name: str) -> str | None:
    """`"max"` or `"min"`: whether a larger value of the metric `name` is better, as Keras Tuner infers it.

    Keras Tuner's own inference (the one behind `keras_tuner.Objective("val_auc")`), so
    the search and compression agree with Keras Tuner on every metric. None when it
    cannot tell (a custom metric).

    Example:
        >>> metric_direction("val_mae"), metric_direction("auc"), metric_direction("val_loss")
        ('min', 'max', 'min')
    """
    from keras_tuner.engine.metrics_tracking import infer_metric_direction

    return infer_metric_direction(name)


def metrics_dict(results, objective) -> dict[str, float]:
    """What `run_trial` results (a float, a dict, a History or a list of them) report, as Keras Tuner reads them.

    Example:
        >>> metrics_dict({"val_accuracy": 0.9}, keras_tuner.Objective("val_accuracy", "max"))
        {'val_accuracy': 0.9}
    """
    from keras_tuner.src.engine import tuner_utils

    return dict(_member(tuner_utils, "convert_to_metrics_dict")(results, objective))


def metrics_tracker():
    """An empty Keras Tuner `MetricsTracker` (what `trial.metrics` is), to record a trial's metrics in."""
    from keras_tuner.src.engine.metrics_tracking import MetricsTracker

    return MetricsTracker()


def save_best_epoch(objective, path):
    """Keras Tuner's callback that saves a model's weights at its best epoch for `objective` (atomically)."""
    return _atomic_save_best_epoch_class()(objective=objective, filepath=path)


def checkpoint_directory(callbacks) -> str | None:
    """The trial folder of a `fit` call made by a Keras Tuner tuner: where its best-epoch checkpoint goes.

    A HyperModel's `fit` sees the tuner's callbacks only; this is how it finds the trial's
    folder (None outside a tuner).
    """
    import os

    from keras_tuner.src.engine import tuner_utils

    kind = _member(tuner_utils, "SaveBestEpoch")
    for callback in callbacks or ():
        if isinstance(callback, kind):
            return os.path.dirname(str(callback.filepath))
    return None


# -- oracles -------------------------------------------------------------------------------------


def project_dir(oracle) -> str:
    """The project directory of an oracle (its tuner sets it)."""
    return str(_member(oracle, "_project_dir"))


def random_values(oracle) -> dict | None:
    """One random draw of the oracle's space (None when every draw collides with a trial's values)."""
    return _member(oracle, "_random_values")()


def tried(oracle, values: dict) -> bool:
    """Whether these exact values were tried already (Keras Tuner's own duplicate check)."""
    return bool(_member(oracle, "_duplicate")(values))


def allow_collisions(oracle, count: int) -> None:
    """Lets the oracle's random draws collide up to `count` times before the search stops."""
    _member(oracle, "_max_collisions")
    oracle._max_collisions = max(oracle._max_collisions, count)


def honour_seed(oracle, seed: int | None) -> None:
    """Keras Tuner replaces a seed of 0 with a random one; this puts the user's seed back."""
    if seed == 0:
        _member(oracle, "_seed_state")
        oracle.seed = oracle._seed_state = 0


def nonfixed_space(oracle) -> list:
    """The hyperparameters a Bayesian optimisation oracle embeds (its non-fixed ones), in its order."""
    return list(_member(oracle, "_nonfixed_space")())


class BayesianObservations:
    """A mixin for `BayesianOptimizationOracle`: trials it would leave out can count as observations.

    Keras Tuner leaves failed trials out of the Gaussian process; `extra_observations(y)`
    (override it) sees the scores there are and returns `(vectors, scores)` to add, in the
    oracle's embedding and the process's scale (it minimises).
    """

    def extra_observations(self, y) -> tuple[list, list]:
        return [], []

    def _vectorize_trials(self):
        x, y = super()._vectorize_trials()  # type: ignore[misc]
        rows, scores = self.extra_observations(np.asarray(y, dtype="float64"))
        if not rows:
            return x, y
        x = np.vstack([np.asarray(x, dtype="float64").reshape(len(y), -1), np.asarray(rows, dtype="float64")])
        return x, np.concatenate([np.asarray(y, dtype="float64"), np.asarray(scores, dtype="float64")])


# -- the grid's walk -------------------------------------------------------------------------------


def next_grid_point(oracle, values: dict) -> dict | None:
    """The grid point after `values` (None after the last)."""
    return _member(oracle, "_get_next_combination")(values)


def restore_grid_walk(oracle, own_trials: list[str]) -> None:
    """Rebuilds a GridSearch oracle's walk after a resume.

    Keras Tuner saves neither the grid's ordered list of trials nor its queue, and a resumed
    grid raises `KeyError`. `own_trials` are the grid's own trials (not queued warm-start
    ones): they are put in grid order, each queued to propose its next point, which the walk
    skips where tried.
    """
    from keras_tuner.src.tuners.gridsearch import LinkedList

    ordered_ids = _member(oracle, "_ordered_ids")
    if not own_trials or all(t in ordered_ids._data_to_index for t in own_trials):
        return
    compare = _member(oracle, "_compare")
    ordered = sorted(own_trials, key=functools.cmp_to_key(
        lambda a, b: compare(oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values)))
    oracle._ordered_ids = LinkedList()
    for trial_id in ordered:
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next = list(ordered)


def leave_grid_walk(oracle, trial_id: str) -> None:
    """Takes a trial that is no grid point (a warm-start one) out of the grid's queue."""
    queue = _member(oracle, "_populate_next")
    if trial_id in queue:
        queue.remove(trial_id)


def replace_metric(trial, name: str, value: float) -> None:
    """Sets a trial's metric `name` to the one value `value` (its history replaced), in the direction
    Keras Tuner infers for the name (or the one it was registered with).

    Example:
        >>> import keras_tuner
        >>> trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="0")
        >>> trial.metrics.register("val_loss", direction="min"); _ = trial.metrics.update("val_loss", 0.5)
        >>> replace_metric(trial, "val_loss", 0.25); float(trial.metrics.get_best_value("val_loss"))
        0.25
    """
    tracker = trial.metrics
    direction = tracker.metrics[name].direction if tracker.exists(name) else (metric_direction(name) or "max")
    tracker.metrics.pop(name, None)
    tracker.register(name, direction=direction)
    tracker.update(name, float(value), step=0)


def save_trial(oracle, trial) -> None:
    """Writes a trial's file and the oracle's state after the trial changed (Keras Tuner's own writers)."""
    _member(oracle, "_save_trial")(trial)
    oracle.save()


# -- tuners --------------------------------------------------------------------------------------


class TunerHooks(keras_tuner.Tuner):
    """Public names for the tuner internals keras-structopt's tuners use.

    `build_scope(hp)` wraps every build (a context manager), `after_build(model, hp)` sees
    every built model; `build(hp)` is Keras Tuner's own build (session cleared first).
    """

    def build_scope(self, hp):
        return contextlib.nullcontext()

    def after_build(self, model, hp):
        return model

    def _build_hypermodel(self, hp):
        with self.build_scope(hp):
            model = super()._build_hypermodel(hp)
        return self.after_build(model, hp)

    def build_model(self, hp):
        """The model of `hp`, built as Keras Tuner builds a trial's (the session cleared first)."""
        return _member(self, "_try_build")(hp)

    def checkpoint_path(self, trial_id: str) -> str:
        return _member(self, "_get_checkpoint_fname")(trial_id)

    def build_config_path(self, trial_id: str) -> str:
        return _member(self, "_get_build_config_fname")(trial_id)

    def copy_callbacks(self, callbacks) -> list:
        return list(_member(self, "_deepcopy_callbacks")(callbacks))

    def save(self):
        """Saves the oracle and the tuner's state, each file written atomically (Keras Tuner writes in place)."""
        from keras_structopt._trial_files import write_json

        if not _member(self, "_is_worker")():
            self.oracle.save()
        write_json(_member(self, "_get_tuner_fname")(), self.get_state())

    def _build_and_fit_model(self, trial, *args, **kwargs):
        # Keras Tuner's best-epoch checkpoint writes the weights file in place: made atomic here
        # (the same callback object, so its best value still spans the trial's executions).
        for callback in kwargs.get("callbacks") or ():
            if type(callback) is _save_best_epoch_class():
                callback.__class__ = _atomic_save_best_epoch_class()
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def _run_and_update_trial(self, trial, *args, **kwargs):
        # A full disk inside a trial (a checkpoint, a curve, Keras's own files) is not the trial's failure:
        # Keras Tuner would record it FAILED and a resumed search would never run it again. Made fatal, the
        # search stops with the trial unfinished, and resuming runs it.
        try:
            return super()._run_and_update_trial(trial, *args, **kwargs)
        except OSError as error:
            from keras_structopt._trial_files import no_space
            from keras_structopt.errors import NoSpaceError

            if error.errno != errno.ENOSPC or isinstance(error, NoSpaceError):
                raise
            raise no_space(error.filename or self.project_dir, None) from error


@functools.lru_cache(maxsize=1)
def _save_best_epoch_class() -> type:
    from keras_tuner.src.engine import tuner_utils

    return _member(tuner_utils, "SaveBestEpoch")


@functools.lru_cache(maxsize=1)
def _atomic_save_best_epoch_class() -> type:
    class AtomicSaveBestEpoch(_save_best_epoch_class()):  # type: ignore[misc]
        """Keras Tuner's best-epoch checkpoint, written to a temporary file renamed into place."""

        def _save_model(self):
            directory, name = os.path.split(str(self.filepath))
            temporary = os.path.join(directory, f".tmp-{os.getpid()}-{name}")
            try:
                self.model.save_weights(temporary)
                os.replace(temporary, self.filepath)
            except OSError as error:
                if os.path.exists(temporary):
                    os.remove(temporary)
                if error.errno == errno.ENOSPC:
                    from keras_structopt._trial_files import no_space

                    known = os.path.getsize(self.filepath) if os.path.exists(self.filepath) else None
                    raise no_space(self.filepath, known) from None
                raise

    return AtomicSaveBestEpoch


class AtomicOracleFiles:
    """Writes an oracle's `oracle.json` and each `trial.json` atomically (mixed in front of an oracle)."""

    def save(self):
        from keras_structopt._trial_files import write_json

        write_json(_member(self, "_get_oracle_fname")(), self.get_state())  # type: ignore[attr-defined]

    def _save_trial(self, trial):
        from keras_structopt._trial_files import write_json

        write_json(os.path.join(_member(self, "_get_trial_dir")(trial.trial_id), "trial.json"), trial.get_state())


# -- distributed mode ----------------------------------------------------------------------------


def quiet_condition_protos() -> None:
    """Silences the stray `print` in Keras Tuner's `Parent.to_proto` (conditions sent over gRPC).

    Example:
        >>> quiet_condition_protos()
        >>> from keras_tuner.src.engine import conditions
        >>> getattr(conditions.Parent.to_proto, "_structopt_quiet", False)
        True
    """
    from keras_tuner.src.engine import conditions

    original = _member(conditions.Parent, "to_proto")
    if getattr(original, "_structopt_quiet", False):
        return

    def to_proto(self):
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self)

    to_proto._structopt_quiet = True  # type: ignore[attr-defined]
    conditions.Parent.to_proto = to_proto
