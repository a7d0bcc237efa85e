"""Keras Tuner tuners that know structure: learning curves, cross-validated trials, budgets,
cost-aware objectives and no duplicate architectures.

`tuner(base, hypermodel, ...)` makes a tuner of any Keras Tuner class (`RandomSearch`,
`GridSearch`, `BayesianOptimization`, `Hyperband`, `keras_structopt.search.EvolutionarySearch`,
or a subclass) with the features asked for; users keep calling `tuner.search(...)`,
`results_summary()` and `get_best_models()`.

* **Learning curves**: every trial's per-epoch metrics go to `curves.json` in its folder.
* **Cross-validation** (`folds=` any scikit-learn splitter): each trial trains once per
  fold on the data given to `search` (no `validation_data`); the oracle sees the mean of the
  folds' best-epoch objectives; each fold's value and their standard deviation are trial
  metrics (`<objective>_fold_<k>`, `<objective>_fold_std`), shown by `results_summary`.
  Finished folds are kept on disk: a killed and resumed search retrains none of them. The
  best model is refit on all the data (`refit="all"`) or is the best fold's (`"best_fold"`).
* **Budgets** (`max_params`, `max_macs`): a candidate over budget is replaced before it is
  built, from the `Architecture` the HyperModel describes; it never counts as a trial and
  the search goes on. `max_latency_ms` is measured on the built model before training; a
  candidate over it is recorded as rejected (with the worst score, so the oracle learns).
* **No duplicates** (`deduplicate=True`): hyperparameter values that describe a network
  (and training settings) already tried are replaced by new ones before anything is built.
* **Median stopping** (`median_stopping=MedianStopping(...)`): see `search.stopping`.
* **Failures**: a NaN or inf loss fails the trial at once with its reason; Bayesian
  optimisation counts it as the worst score and no oracle proposes its region again; a
  search that completes no trial raises `SearchFailedError`: see `search.failures`.
* **One process per trial** (`isolate_trials=True`): see `search.isolated`.
* **Weight inheritance** (`donors=[...]`) and warm start (`warm_start(tuner, ...)`): see
  `search.transfer`.
* **Precision, XLA and devices**: `dtype_policy="mixed_float16"` or `"mixed_bfloat16"`
  builds every trial's model under that policy (set around each build, because Keras
  Tuner clears the session, and with it a policy set before `search()`), with a float32
  output; the policy in force before the search is left as it was. `jit_compile=True` or
  `False` overrides Keras's `"auto"` (XLA only on an accelerator, never under a
  distribution strategy); `True` with a `distribution_strategy` is refused. Keras
  Tuner's `distribution_strategy` builds and trains each trial under the strategy.
* **Cost-aware objective** (`cost="params" | "macs"`, `cost_weight=w`, default 0.01): the
  oracle maximises `metric - w * log2(cost / reference)` (a minimised metric is negated
  first), recorded as the metric `cost_aware_score`; the reference is the cost of the first
  trial, so only differences matter: each halving of the cost is worth `w` of the metric.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from typing import TYPE_CHECKING, cast

import keras
import keras_tuner
import numpy as np

from keras_structopt import _checks
from keras_structopt._env import is_worker
from keras_structopt._types import Cost, Refit
from keras_structopt.search.curves import CurveRecorder, read_note, trial_directory, write_note
from keras_structopt.search.distributed import quiet_condition_protos
from keras_structopt.search.failures import (
    NonFiniteStopper,
    check_completed,
    diverged_trials,
    from_consecutive_failures,
    near_failure,
    worst_scores,
)
from keras_structopt.search.hparams import tensorboard_log_dir, write_hparams
from keras_structopt.search.isolated import check_supported, run_isolated, save_data
from keras_structopt.search.project import write_search_file
from keras_structopt.search.stopping import STOPPED_METRIC, MedianStopper, MedianStopping, stopped_note
from keras_structopt.search.transfer import WARM_NOTE, inherit_weights, load_donors

REFITS = ("all", "best_fold")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
COSTS = ("params", "macs")
SCORE = "cost_aware_score"
DEFAULT_COST_WEIGHT = 0.01  # halving the cost is worth one point of accuracy
_ATTEMPTS = 200  # replacement draws before a budget or duplicate check gives up


def _length(x) -> int | None:
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    try:
        return len(x)
    except TypeError:
        return None


def _take(x, index):
    if isinstance(x, dict):
        return {k: np.asarray(v)[index] for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        return [np.asarray(v)[index] for v in x]
    return np.asarray(x)[index]


def _labels(y):
    """Labels a stratified splitter can read (None for several outputs)."""
    return None if isinstance(y, (dict, list)) else np.asarray(y)


class StructuralMixin:
    """The keras-structopt features, mixed in front of a Keras Tuner tuner class.

    Use `keras_structopt.search.tuner(...)` to make one; the constructor takes the base
    tuner's arguments and the features' (see the module's docstring).
    """

    if TYPE_CHECKING:  # set by the Keras Tuner tuner class this is mixed in front of
        oracle: keras_tuner.Oracle
        project_dir: str

    def __init__(self, hypermodel=None, *, folds=None, refit: Refit = "all", cost: Cost | None = None,
                 cost_weight: float = DEFAULT_COST_WEIGHT, max_params: int | None = None,
                 max_macs: int | None = None, max_latency_ms: float | None = None, deduplicate: bool = True,
                 median_stopping: MedianStopping | bool | None = None, donors=None, inherit_head: bool = False,
                 isolate_trials: bool = False, dtype_policy: str | None = None, jit_compile: bool | str = "auto",
                 **kwargs):
        if folds is not None and not (hasattr(folds, "split") and hasattr(folds, "get_n_splits")):
            raise _checks.error(
                "Expected folds to be a scikit-learn splitter (KFold, StratifiedKFold, GroupKFold, "
                f"TimeSeriesSplit, ...). Received: folds={folds!r}."
            )
        _checks.one_of("refit", refit, REFITS)
        if cost is not None:
            _checks.one_of("cost", cost, COSTS)
        if not _checks.is_number(cost_weight) or cost_weight < 0:
            raise _checks.error(f"Expected cost_weight to be a number >= 0. Received: cost_weight={cost_weight!r}.")
        for name, value in (("max_params", max_params), ("max_macs", max_macs)):
            if value is not None:
                _checks.positive_int(name, value)
        if max_latency_ms is not None:
            _checks.positive_number("max_latency_ms", max_latency_ms)
        self.folds, self.refit, self.cost, self.cost_weight = folds, refit, cost, float(cost_weight)
        self.max_params, self.max_macs, self.max_latency_ms = max_params, max_macs, max_latency_ms
        self.deduplicate = deduplicate
        if median_stopping is True:
            median_stopping = MedianStopping()
        if median_stopping not in (None, False) and not isinstance(median_stopping, MedianStopping):
            raise _checks.error(
                "Expected median_stopping to be a keras_structopt.search.MedianStopping, True or None. "
                f"Received: median_stopping={median_stopping!r}."
            )
        self.median_stopping = median_stopping or None
        if dtype_policy is not None:
            _checks.one_of("dtype_policy", dtype_policy, POLICIES)
        if jit_compile not in (True, False, "auto"):
            raise _checks.error(
                f'Expected jit_compile to be True, False or "auto". Received: jit_compile={jit_compile!r}.'
            )
        if jit_compile is True and kwargs.get("distribution_strategy") is not None:
            raise _checks.error(
                "Expected jit_compile=False or \"auto\" with a distribution_strategy (Keras does not compile a "
                "distributed step with XLA). Received: jit_compile=True and distribution_strategy="
                f"{type(kwargs['distribution_strategy']).__name__}."
            )
        self.dtype_policy, self.jit_compile = dtype_policy, jit_compile
        self._worker = is_worker()
        if "KERASTUNER_ORACLE_IP" in os.environ:  # distributed: conditions travel over gRPC
            quiet_condition_protos()
        if self._worker:  # a distributed worker: the chief owns the project (and its resume)
            kwargs["overwrite"] = False
        else:
            _check_project(kwargs)
        self.donors = load_donors(donors)
        if not isinstance(inherit_head, bool):
            raise _checks.error(f"Expected inherit_head to be True or False. Received: inherit_head={inherit_head!r}.")
        self.inherit_head = inherit_head
        self._inheritance = None
        self._base_objective = None
        if cost is not None:  # the oracle maximises the combined score; `objective` is its metric
            self._base_objective = _objective_from(kwargs.get("objective") or "val_accuracy")
            kwargs["objective"] = keras_tuner.Objective(SCORE, "max")
        # The next class in the MRO is a Keras Tuner tuner, which mypy cannot see from the mixin.
        super().__init__(hypermodel, **kwargs)  # type: ignore[call-arg]
        self._data = None
        if not self._worker:  # a worker's oracle is the chief's, over gRPC: the chief guards it
            _guard_oracle(self)
        self.isolate_trials, self._isolated_fit = bool(isolate_trials), None
        if self.isolate_trials:
            check_supported(self)

    # -- search -------------------------------------------------------------------------

    def search(self, *fit_args, **fit_kwargs):
        """Checks the data (for cross-validation: that it can be split) before any training.

        Raises a `ConfigurationError` after the search if the budgets refused every
        candidate drawn, so no trial ran: the budget is below the space's networks; and a
        `SearchFailedError` (with the first failure's reason) if trials ran but none
        completed, or `max_consecutive_failed_trials` failed in a row.
        """
        check = getattr(self.hypermodel, "check_fit_data", None)
        if check is not None:  # before any trial: no trial folder for data that cannot fit
            check(*fit_args, **fit_kwargs)
        if self.folds is not None:
            self._check_folds(fit_args, fit_kwargs)
        if self.isolate_trials:
            self._isolated_fit = save_data(self.project_dir, fit_args, fit_kwargs)
        self._hparams_dir = tensorboard_log_dir(fit_kwargs.get("callbacks"))
        if self._worker:  # trains the chief's trials; the chief checks and reports the search
            return super().search(*fit_args, **fit_kwargs)
        write_search_file(self)  # what `Project` (and `keras-structopt report`) reads back
        try:
            result = super().search(*fit_args, **fit_kwargs)
        except RuntimeError as error:  # Keras Tuner's max_consecutive_failed_trials
            failed = from_consecutive_failures(error, self.oracle, self.project_dir)
            if failed is None:
                raise
            raise failed from None
        check_completed(self.oracle, self.project_dir)
        rejected = rejected_candidates(self)
        if not self.oracle.trials and rejected:
            reasons = sorted({r["reason"] for r in rejected})
            raise _checks.error(
                f"Expected budgets that admit some network of the space. Received: max_params={self.max_params}, "
                f"max_macs={self.max_macs}; all {len(rejected)} candidates drawn were refused, for example: "
                f"{reasons[0]}."
            )
        return result

    def _check_folds(self, fit_args, fit_kwargs):
        x = fit_kwargs.get("x", fit_args[0] if fit_args else None)
        y = fit_kwargs.get("y", fit_args[1] if len(fit_args) > 1 else None)
        for name in ("validation_data", "validation_split"):
            if fit_kwargs.get(name) is not None:
                raise _checks.error(
                    f"Expected no {name} with folds= (each fold's held-out part validates). Received: {name}."
                )
        length = _length(x)
        if length is None or y is None:
            raise _checks.error(
                "Expected x and y as arrays (or lists/dicts of arrays) that can be split into folds. Received: "
                f"x of type {type(x).__name__}{' and no y' if y is None else ''}; a tf.data.Dataset has no "
                "known length to split: pass arrays."
            )
        groups = fit_kwargs.get("groups")
        try:
            splits = list(self.folds.split(np.zeros(length), _labels(y), groups))
        except (ValueError, TypeError) as error:
            raise _checks.error(
                f"Expected data that {type(self.folds).__name__} can split. Received: {error}"
            ) from None
        batch_size = int(fit_kwargs.get("batch_size") or 32)
        smallest = min(min(len(a), len(b)) for a, b in splits)
        if smallest < batch_size:
            raise _checks.error(
                f"Expected every fold's parts to hold at least batch_size={batch_size} examples. Received: "
                f"a part of {smallest} examples from {type(self.folds).__name__} on {length} examples; use "
                "fewer folds or a smaller batch_size."
            )

    # -- trials -------------------------------------------------------------------------

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        directory = trial_directory(self, trial.trial_id)
        hp = trial.hyperparameters
        if "tuner/epochs" in hp.values:  # Hyperband's bracket epochs
            fit_kwargs["epochs"] = hp.values["tuner/epochs"]
            fit_kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
        if self.max_latency_ms is not None:
            rejected = self._latency_rejection(trial)
            if rejected is not None:
                return rejected
        if self.isolate_trials:
            objective = self.oracle.objective if self.cost is None else self._base_objective
            results = run_isolated(self, trial, dict(self._isolated_fit, epochs=fit_kwargs.get("epochs", 1)),
                                   objective)
        elif self.folds is None:
            callbacks = list(fit_kwargs.pop("callbacks", []))
            validation = fit_kwargs.get("validation_data")
            size = _length(validation[0]) if isinstance(validation, (tuple, list)) and validation else None
            callbacks.append(CurveRecorder(directory, validation_size=size))
            callbacks.append(NonFiniteStopper(self.project_dir, trial.trial_id))
            callbacks.extend(self._stoppers(trial, "all"))
            results = super().run_trial(trial, *fit_args, callbacks=callbacks, **fit_kwargs)
        else:
            results = self._run_folds(trial, directory, fit_args, fit_kwargs)
        if self._inheritance is not None:
            write_note(self.project_dir, trial.trial_id, {"inherited": self._inheritance})
            self._inheritance = None
        return self._with_stop(trial, self._with_cost(trial, results))

    def on_trial_end(self, trial):
        """Ends the trial as Keras Tuner does, then frees what it left (its model and graphs).

        Keras Tuner clears the Keras session before the next build; collecting garbage here
        as well keeps a long search's memory flat (`bench/memory.py` measures it). With a
        `keras.callbacks.TensorBoard` among the search's callbacks, the trial's structure and
        final metrics go to its log directory as an HParams session (`write_hparams`).
        """
        super().on_trial_end(trial)
        finished = trial if self._worker else self.oracle.trials.get(trial.trial_id, trial)
        if getattr(self, "_hparams_dir", None) and finished.status == "COMPLETED":
            write_hparams(self, self._hparams_dir, [finished])  # the structure, in TensorBoard's HParams
        gc.collect()

    def _build_hypermodel(self, hp):
        if self.dtype_policy is None:
            model = super()._build_hypermodel(hp)
        else:  # around the build: Keras Tuner's clear_session() drops a policy set before search()
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(self.dtype_policy)
            try:
                model = super()._build_hypermodel(hp)
            finally:
                keras.config.set_dtype_policy(previous)
        if self.jit_compile != "auto":
            model.jit_compile = self.jit_compile
        if self.donors and "tuner/trial_id" not in hp.values:  # Hyperband's continuations have their parent's
            self._inheritance = inherit_weights(model, self.donors, head=self.inherit_head)
        return model

    def _stoppers(self, trial, fold) -> list:
        pruning = getattr(self, "pruning_callbacks", None)  # OptunaSearch: its pruner's callback
        extra = pruning(trial.trial_id, fold) if pruning is not None else []
        if self.median_stopping is None:
            return extra
        objective = self._base_objective or self.oracle.objective
        rule = self.median_stopping
        return [MedianStopper(self.project_dir, trial.trial_id, rule, rule.metric or objective.name,
                              rule.direction or objective.direction, fold=fold), *extra]

    def _with_stop(self, trial, results):
        """Marks a median-stopped trial with the metric `stopped_at_epoch` (and keeps its last values)."""
        note = stopped_note(self.project_dir, trial.trial_id)
        if note is None:
            return results
        from keras_tuner.src.engine import tuner_utils

        metrics = dict(tuner_utils.convert_to_metrics_dict(results, self.oracle.objective))
        metrics[STOPPED_METRIC] = float(note["epoch"])
        return metrics

    def _run_folds(self, trial, directory, fit_args, fit_kwargs):
        from keras_tuner.src.engine import tuner_utils

        x = fit_kwargs.pop("x", fit_args[0] if fit_args else None)
        y = fit_kwargs.pop("y", fit_args[1] if len(fit_args) > 1 else None)
        groups = fit_kwargs.pop("groups", None)
        self._data = (x, y, {k: v for k, v in fit_kwargs.items() if k != "callbacks"})
        original_callbacks = fit_kwargs.pop("callbacks", [])
        objective = self.oracle.objective if self.cost is None else self._base_objective
        checkpoint = tuner_utils.SaveBestEpoch(objective=objective, filepath=self._get_checkpoint_fname(trial.trial_id))
        splits = list(self.folds.split(np.zeros(_length(x)), _labels(y), groups))
        folds_dir = directory / "folds"
        folds_dir.mkdir(parents=True, exist_ok=True)
        histories, values = [], []
        for k, (train_index, validation_index) in enumerate(splits):
            saved = folds_dir / f"fold_{k}.json"
            if saved.exists():  # finished before a restart: not trained again
                history = keras.callbacks.History()
                history.history = json.loads(saved.read_text())["history"]
                history.epoch = list(range(len(next(iter(history.history.values()), []))))
            else:
                # No per-epoch reports to the oracle: it gets the mean of the folds' best values only.
                callbacks = self._deepcopy_callbacks(original_callbacks)
                callbacks.append(checkpoint)
                callbacks.append(CurveRecorder(directory, fold=k, validation_size=len(validation_index)))
                callbacks.append(NonFiniteStopper(self.project_dir, trial.trial_id))
                callbacks.extend(self._stoppers(trial, k))
                kwargs = dict(fit_kwargs, callbacks=callbacks,
                              validation_data=(_take(x, validation_index), _take(y, validation_index)))
                model = self._try_build(trial.hyperparameters)
                parent = trial.hyperparameters.values.get("tuner/trial_id")
                parent_weights = trial_directory(self, parent) / "folds" / f"fold_{k}.weights.h5" if parent else None
                if parent_weights is not None and parent_weights.exists():
                    model.load_weights(parent_weights)  # Hyperband: this fold's own parent weights
                history = self.hypermodel.fit(trial.hyperparameters, model, _take(x, train_index),
                                              _take(y, train_index), **kwargs)
                model.save_weights(folds_dir / f"fold_{k}.weights.h5")
                if k == 0:  # what Keras Tuner's own loading (Hyperband's parents, load_model) reads
                    with open(self._get_build_config_fname(trial.trial_id), "w") as file:
                        json.dump(model.get_build_config(), file)
                record = {name: [float(v) for v in values] for name, values in history.history.items()}
                saved.write_text(json.dumps({"history": record}))
            histories.append(history)
            values.append(_best(history.history, objective))
            if stopped_note(self.project_dir, trial.trial_id) is not None:
                break  # below the median in this fold: the other folds are not trained
        metrics = dict(tuner_utils.convert_to_metrics_dict(histories, objective))  # the folds' mean
        metrics.update({f"{objective.name}_fold_{k}": v for k, v in enumerate(values)})
        metrics[f"{objective.name}_fold_std"] = float(np.std(values))
        epochs = [_best_epoch(history.history, objective) for history in histories]
        write_note(self.project_dir, trial.trial_id, {"refit_epochs": int(round(float(np.mean(epochs)))) + 1})
        return metrics

    def _with_cost(self, trial, results):
        if self.cost is None:
            return results
        from keras_tuner.src.engine import tuner_utils

        metrics = tuner_utils.convert_to_metrics_dict(results, self._base_objective)
        value = metrics[self._base_objective.name]
        if self._base_objective.direction == "min":
            value = -value
        cost = _costs(self.hypermodel, trial.hyperparameters).get(self.cost)
        reference = getattr(self, "_cost_reference", None)
        if reference is None:
            reference = self._cost_reference = cost
        score = value - self.cost_weight * math.log2(max(cost, 1) / max(reference, 1))
        metrics = dict(metrics)
        metrics[SCORE] = float(score)
        metrics[self.cost] = float(cost)
        return metrics

    def _latency_rejection(self, trial):
        model = self._try_build(trial.hyperparameters)
        shape = (1,) + tuple(int(d) for d in model.inputs[0].shape[1:])
        dtype = str(model.inputs[0].dtype)
        x = np.zeros(shape, dtype="int32" if "int" in dtype else "float32")
        model(x, training=False)  # warm up
        times = []
        for _ in range(20):
            start = time.perf_counter()
            model(x, training=False)
            times.append(time.perf_counter() - start)
        latency = 1000 * float(np.median(times))
        metadata = {"latency_ms": latency}
        if latency <= self.max_latency_ms:
            return None
        worst = {self.oracle.objective.name: -1e9 if self.oracle.objective.direction == "max" else 1e9}
        metadata["rejected"] = f"latency {latency:.2f} ms over max_latency_ms={self.max_latency_ms}"
        write_note(self.project_dir, trial.trial_id, metadata)
        return worst

    def results_summary(self, num_trials: int = 10):
        """Prints the best trials as Keras Tuner does, with each fold's value, their spread and the cost."""
        print("Results summary")
        print(f"Results in {self.project_dir}")
        print(f"Showing {num_trials} best trials")
        print(f"{self.oracle.objective}")
        for trial in self.oracle.get_best_trials(num_trials):
            print()
            trial.summary()
            extra = sorted(
                name for name in trial.metrics.metrics
                if "_fold_" in name or name in COSTS
                or (self.cost is not None and name == cast(keras_tuner.Objective, self._base_objective).name)
            )
            for name in extra:
                print(f"{name}: {trial.metrics.get_best_value(name):.6g}")

    # -- best models ------------------------------------------------------------------------

    def load_model(self, trial):
        if self.folds is None or self.refit == "best_fold":
            return super().load_model(trial)
        refit = trial_directory(self, trial.trial_id) / "refit.weights.h5"
        model = self._try_build(trial.hyperparameters)
        if refit.exists():
            model.load_weights(refit)
            return model
        if self._data is None:
            raise _checks.error(
                "Expected the data of this search to refit the best model on it (refit='all'). Received: a "
                "tuner that has not searched in this process; call tuner.search(...) (it resumes), or make "
                "the tuner with refit='best_fold'."
            )
        x, y, fit_kwargs = self._data
        # As many epochs as the folds needed to reach their best (on average).
        epochs = read_note(self.project_dir, trial.trial_id).get("refit_epochs")
        epochs = epochs or fit_kwargs.get("epochs", 1)
        kwargs = {k: v for k, v in fit_kwargs.items() if k not in ("validation_data", "epochs", "initial_epoch")}
        self.hypermodel.fit(trial.hyperparameters, model, x, y, epochs=epochs, **kwargs)
        model.save_weights(refit)
        return model


def _check_project(kwargs) -> None:
    """Raises before Keras Tuner reads a project directory it cannot resume (a kill while a file
    was written by Keras Tuner, a file edited by hand): the message names the file."""
    from pathlib import Path

    directory = kwargs.get("directory") or "."
    _checks.writable_directory("directory", directory)
    project = Path(os.fspath(directory)) / (kwargs.get("project_name") or "untitled_project")
    if kwargs.get("overwrite") or not project.is_dir():
        return
    for path in [project / "oracle.json", *sorted(project.glob("trial_*/trial.json"))]:
        if not path.exists():
            continue
        try:
            state = json.loads(path.read_text())
            if not isinstance(state, dict):
                raise ValueError(f"a JSON {type(state).__name__}, not an object")
        except (ValueError, UnicodeDecodeError) as error:
            raise _checks.error(
                f"Expected a project directory Keras Tuner can resume. Received: {str(path)!r}, which cannot be read "
                f"({error}); move the project away (or pass overwrite=True to delete it) to start a new search."
            ) from None


def _objective_from(value):
    if isinstance(value, keras_tuner.Objective):
        return value
    direction = "min" if "loss" in str(value) or "error" in str(value) else "max"
    return keras_tuner.Objective(str(value), direction)


def _best(history: dict, objective) -> float:
    values = history.get(objective.name, [])
    if not values:
        return float("nan")
    return float(max(values) if objective.direction == "max" else min(values))


def _best_epoch(history: dict, objective) -> int:
    values = history.get(objective.name, [])
    if not values:
        return 0
    return int(np.argmax(values) if objective.direction == "max" else np.argmin(values))


def _costs(hypermodel, hyperparameters) -> dict[str, int]:
    """Parameters and MACs of the network the values describe, without building it."""
    spec = hypermodel.architecture(hyperparameters.copy())
    return {"params": spec.count_params(), "macs": spec.count_macs()}


def _hp_with(hypermodel, values: dict):
    """HyperParameters holding `values`, as the HyperModel's space declares them."""
    hp = keras_tuner.HyperParameters()
    hp.values.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    return hp


def _structure_key(hypermodel, values: dict) -> str:
    """What makes two trials the same: the network they describe and the other (training) values.

    Values the architecture reads but that change nothing (a width of a block the depth
    leaves out, a residual connection that cannot apply) vanish in the `Architecture`.
    """
    hp = _hp_with(hypermodel, values)
    spec = hypermodel.architecture(hp)
    structural = {p.name for p in hp.space}
    rest = {k: v for k, v in values.items() if k not in structural and not k.startswith("tuner/")}
    return json.dumps({"architecture": spec.to_dict(), "other": rest}, sort_keys=True, default=str)


def _guard_oracle(tuner) -> None:
    """Makes the oracle skip over-budget and duplicate candidates before anything is built.

    Two hooks, both on the oracle the tuner already has: its `_duplicate` check (which every
    random draw passes through: `RandomSearch`, new Hyperband brackets, Bayesian
    optimisation's first points) also refuses such values, so the draw is repeated; and
    its `populate_space`, for values that do not come from a random draw (a grid point, a
    Gaussian-process proposal), which are replaced by the next grid point or by a random
    draw. A refused candidate is not a trial: it costs no training and no `max_trials`.
    """
    oracle = tuner.oracle
    if getattr(oracle, "_structopt_guarded", False):
        return
    hypermodel = tuner.hypermodel
    describes = getattr(hypermodel, "architecture", None) is not None
    budgets = {"params": tuner.max_params, "macs": tuner.max_macs}
    if not describes and (tuner.max_params or tuner.max_macs):
        raise _checks.error(
            "Expected a HyperModel that describes its networks (a keras-structopt HyperModel) for max_params / "
            f"max_macs. Received: {type(hypermodel).__name__}."
        )
    seen: set[str] = set()
    rejected: list[dict] = []
    queue: list[dict] = []  # warm-start structures, handed out first (see transfer.warm_start)
    oracle._structopt_guarded = True
    oracle._structopt_rejected = rejected
    oracle._structopt_queue = queue
    grid = hasattr(oracle, "_populate_next")  # GridSearch walks from its own earlier trials

    def warm(trial_id) -> bool:
        return WARM_NOTE in read_note(tuner.project_dir, trial_id)
    oracle._max_collisions = max(oracle._max_collisions, _ATTEMPTS)  # refusals (budgets, duplicates, diverged
    # regions) are redrawn, not counted as the search's end

    def refusal(values) -> str | None:
        if "tuner/trial_id" in values:  # Hyperband continuing a trial: not a new network
            return None
        failed = near_failure(oracle, values, diverged_trials(oracle, tuner.project_dir))
        if failed is not None:
            return f"in the region of trial {failed}, which diverged (a non-finite loss)"
        if not describes:
            return None
        spec = hypermodel.architecture(_hp_with(hypermodel, values))
        for name, limit in budgets.items():
            if limit is not None:
                value = spec.count_params() if name == "params" else spec.count_macs()
                if value > limit:
                    return f"{value:,} {name} over max_{name}={limit:,}"
        if tuner.deduplicate and _structure_key(hypermodel, values) in seen:
            return "the same network and settings as an earlier trial"
        return None

    def refused(values) -> bool:
        reason = refusal(values)
        if reason is not None:
            rejected.append({"values": dict(values), "reason": reason})
        return reason is not None

    def remember(values) -> None:
        if describes and tuner.deduplicate:
            seen.add(_structure_key(hypermodel, values))

    original_duplicate = oracle._duplicate

    def duplicate(values):
        return original_duplicate(values) or refused(values)

    original_populate = oracle.populate_space

    def populate_space(trial_id):
        for trial in oracle.trials.values():  # after a resume: what is already there counts
            if trial.trial_id != trial_id and trial.hyperparameters.values:
                remember(trial.hyperparameters.values)
        if grid:
            _restore_grid(oracle, warm)
        while queue:
            entry = queue.pop(0)
            if oracle._duplicate(entry["values"]):
                entry["notes"].append("skipped: tried already, or refused")
                continue
            origin = {k: entry[k] for k in ("from", "trial", "value", "notes")}
            write_note(tuner.project_dir, trial_id, {WARM_NOTE: origin})
            remember(entry["values"])
            return {"status": "RUNNING", "values": dict(entry["values"])}
        if grid and oracle.start_order and all(warm(t) for t in oracle.start_order):
            # The grid has not started: it must see no trials to begin at its first point.
            started, oracle.start_order = oracle.start_order, []
            try:
                response = original_populate(trial_id)
            finally:
                oracle.start_order = started
        else:
            response = original_populate(trial_id)
        values = response.get("values")
        if response.get("status") != "RUNNING" or values is None:
            return response
        attempts = 0
        while refused(values):
            attempts += 1
            following = getattr(oracle, "_get_next_combination", None)  # GridSearch: the next point
            replacement = following(values) if following is not None else oracle._random_values()
            if replacement is None or attempts > _ATTEMPTS:
                return {"status": "STOPPED", "values": None}
            # Keep the tuner's own bookkeeping (Hyperband's epochs and bracket) with the new values.
            replacement.update({k: v for k, v in values.items() if k.startswith("tuner/") and k not in replacement})
            values = replacement
        remember(values)
        return {"status": "RUNNING", "values": values}

    original_best = oracle.get_best_trials

    def get_best_trials(num_trials=1):
        # Median-stopped trials rank after every trial that ran to the end.
        ranked = original_best(len(oracle.trials))
        ranked.sort(key=lambda trial: trial.metrics.exists(STOPPED_METRIC))
        return ranked[:num_trials]

    original_end = oracle.end_trial

    def end_trial(trial):
        original_end(trial)
        if grid and warm(trial.trial_id) and trial.trial_id in oracle._populate_next:
            oracle._populate_next.remove(trial.trial_id)  # not a grid point: the walk goes on from its own
        # Keras Tuner saves before the trial leaves `ongoing_trials`; saving again means a
        # resumed search does not run the finished trial a second time.
        oracle.save()

    if hasattr(oracle, "_vectorize_trials"):  # Bayesian optimisation: diverged trials are the worst score
        worst_scores(oracle, tuner.project_dir)
    oracle._duplicate = duplicate
    oracle.populate_space = populate_space
    oracle.get_best_trials = get_best_trials
    oracle.end_trial = end_trial


def _restore_grid(oracle, warm) -> None:
    """Rebuilds GridSearch's walk after a resume (Keras Tuner saves neither its ordered list of
    trials nor its queue, and a resumed grid raises `KeyError`): the grid's own trials in grid
    order, each queued to propose its next combination, which the walk skips where tried."""
    import functools

    from keras_tuner.src.tuners.gridsearch import LinkedList

    ids = [t for t in oracle.start_order if not warm(t) and oracle.trials[t].hyperparameters.values]
    if not ids or all(t in oracle._ordered_ids._data_to_index for t in ids):
        return
    ordered = sorted(ids, key=functools.cmp_to_key(
        lambda a, b: oracle._compare(oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values)))
    oracle._ordered_ids = LinkedList()
    for trial_id in ordered:
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next = list(ordered)


_CLASSES: dict[type, type] = {}


def tuner(base, hypermodel, **kwargs):
    """Makes a Keras Tuner tuner of class `base` with keras-structopt's features.

    Args:
        base: A Keras Tuner tuner class (`keras_tuner.RandomSearch`, `GridSearch`,
            `BayesianOptimization`, `Hyperband`, or a subclass of them).
        hypermodel: The HyperModel (a keras-structopt one, for budgets, cost and
            duplicates).
        folds: A scikit-learn splitter for cross-validated trials (None: hold-out).
        refit: `"all"` (the best model retrained on all the data) or `"best_fold"`.
        cost: `"params"` or `"macs"` for a cost-aware objective (None: the metric alone).
        cost_weight: How many units of the metric one halving of the cost is worth
            (default 0.01: one point of accuracy); the base tuner's `objective` is the
            metric it combines.
        max_params, max_macs: Budgets checked before building (None: no budget).
        max_latency_ms: A budget on one example's latency, measured before training.
        deduplicate: Replace candidates that describe a network already tried.
        median_stopping: A `MedianStopping` rule (or True for its defaults): a trial
            below the median of the finished trials at the same epoch stops.
        donors: Keras 3 models (or `.keras` paths) each candidate inherits weights from
            (see `keras_structopt.search.transfer`).
        inherit_head: Also inherit the donor's output layer (default False: a fresh head,
            right for a related task; True for a donor trained on the same task).
        isolate_trials: Train each trial in its own Python process, so the search's memory
            stays flat over hundreds of trials (see `keras_structopt.search.isolated`).
        **kwargs: The base tuner's arguments (`objective`, `max_trials`, `directory`, ...).

    Returns:
        The tuner; call `search`, `results_summary`, `get_best_models` as usual.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from sklearn.model_selection import StratifiedKFold
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16])
        >>> search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
        ...     max_trials=2, folds=StratifiedKFold(3, shuffle=True, random_state=0), max_params=2000,
        ...     directory=getfixture("tmp_path"), project_name="cv")
        >>> type(search).__name__
        'StructuralRandomSearch'
    """
    if not (isinstance(base, type) and issubclass(base, keras_tuner.Tuner)):
        raise _checks.error(f"Expected base to be a Keras Tuner tuner class. Received: base={base!r}.")
    cls = _CLASSES.get(base)
    if cls is None:
        cls = _CLASSES[base] = type(f"Structural{base.__name__}", (StructuralMixin, base), {})
    return cls(hypermodel, **kwargs)


def rejected_candidates(tuner) -> list[dict]:
    """The candidates the budgets and the duplicate check replaced (in this process), with the reason."""
    return list(getattr(tuner.oracle, "_structopt_rejected", []))
