"""Keras Tuner tuners that know structure: learning curves, cross-validated trials, budgets,
cost-aware objectives and no duplicate architectures.

`tuner(base, hypermodel, ...)` makes a tuner of any Keras Tuner class (`RandomSearch`,
`GridSearch`, `BayesianOptimization`, `Hyperband`, `keras_structopt.search.EvolutionarySearch`,
`OptunaSearch`, or a subclass) with the features asked for; users keep calling
`tuner.search(...)`, `results_summary()` and `get_best_models()`. It is a subclass: the
base tuner's class with `StructuralTuner` in front, and its oracle the base oracle's class
with `StructuralOracle` in front (`keras_structopt.search._oracle`); nothing is replaced on
an object at run time.

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
  oracle scores each trial `metric - w * log2(cost / reference)` (for a metric where lower
  is better, as Keras Tuner infers it: `metric + w * log2(...)`), recorded as the metric
  `cost_aware_score`; the objective stays the metric. The reference is the cost of the
  first trial, so only differences matter: each halving of the cost is worth `w` of the
  metric.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_structopt import _checks, _keras_tuner
from keras_structopt._env import is_worker
from keras_structopt._lock import ProjectLock, holder
from keras_structopt._trial_files import CurveRecorder, read_note, write_note
from keras_structopt._types import Cost, Model, PathLike, Refit
from keras_structopt.search._budget import TimeBudget, check_max_time
from keras_structopt.search._curves import trial_directory
from keras_structopt.search._failures import NonFiniteStopper, check_completed, from_consecutive_failures
from keras_structopt.search._folds import check_folds, length, run_folds
from keras_structopt.search._hparams import tensorboard_log_dir, write_hparams
from keras_structopt.search._isolated import check_supported, run_isolated, save_data
from keras_structopt.search._oracle import COSTS, DEFAULT_COST_WEIGHT, SCORE, StructuralOracle, costs, structural_oracle
from keras_structopt.search._project import check_same_search, write_search_file
from keras_structopt.search._screen import Screen, check_prescreen, screening_batch
from keras_structopt.search._stopping import STOPPED_METRIC, MedianStopper, MedianStopping, stopped_note
from keras_structopt.search._transfer import inherit_weights, load_donors

REFITS = ("all", "best_fold")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def _policy(name: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# The oracle class of each Keras Tuner tuner; keras-structopt's own tuners name theirs (`oracle_class`).
_ORACLES: dict[type, type] = {
    keras_tuner.RandomSearch: keras_tuner.oracles.RandomSearchOracle,
    keras_tuner.GridSearch: keras_tuner.oracles.GridSearchOracle,
    keras_tuner.BayesianOptimization: keras_tuner.oracles.BayesianOptimizationOracle,
    keras_tuner.Hyperband: keras_tuner.oracles.HyperbandOracle,
}


def oracle_class_of(tuner_class: type) -> type | None:
    """The oracle class a tuner class builds (from its own class or the first known base), or None.

    Example:
        >>> import keras_tuner
        >>> oracle_class_of(keras_tuner.Hyperband).__name__
        'HyperbandOracle'
    """
    for cls in tuner_class.__mro__:
        if cls in _ORACLES:
            return _ORACLES[cls]
        declared = cls.__dict__.get("oracle_class")
        if declared is not None:
            return declared
    return None


@contextlib.contextmanager
def frozen_while_searching():
    """Leaves what is alive when a search starts out of the garbage collections inside it.

    Keras Tuner collects garbage before every build (twice: itself and `clear_session`), and
    each full collection walks every tracked object: with TensorFlow, Keras and the data
    loaded, half a million or more, 0.25-0.5 s a time on 2 cores, three times a trial. The
    objects alive at the search's start (modules, data, the tuner) outlive it, so they are
    frozen (`gc.freeze()`) for its duration and unfrozen after, as they were. The trials'
    own garbage is collected as before, so a long search's memory stays as flat.

    A caller who froze objects already (the `keras-structopt` command does) has chosen to
    manage the collector: the search then adds what is alive at its start to the frozen
    set, as a `gc.freeze()` of the caller's own would, and leaves it frozen. With the
    collector disabled (`gc.disable()`), nothing is done.

    Example:
        >>> import gc
        >>> before = gc.get_freeze_count()
        >>> with frozen_while_searching():
        ...     inside = gc.get_freeze_count()
        >>> inside > 0, gc.get_freeze_count() == 0 if before == 0 else gc.get_freeze_count() >= before
        (True, True)
    """
    if not gc.isenabled():
        yield
        return
    unfreeze = gc.get_freeze_count() == 0
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        if unfreeze:
            gc.unfreeze()


class StructuralTuner(_keras_tuner.TunerHooks):
    """The keras-structopt features of a tuner, mixed in front of a Keras Tuner tuner class.

    Use `keras_structopt.search.tuner(base, hypermodel, ...)` to make one. Its constructor
    takes the base tuner's arguments and the features' (see the module's docstring): the
    oracle arguments build the base tuner's oracle class with `StructuralOracle` in front
    of it (or `oracle=` passes a `StructuralOracle` of your own), the rest go to
    `keras_tuner.Tuner`.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> search = kso.search.tuner(keras_tuner.BayesianOptimization, kso.DenseHyperModel(input_shape=(4,),
        ...     outputs=1, task="regression"), objective="val_mae", max_trials=2, cost="params",
        ...     directory=getfixture("tmp_path"), project_name="doc")
        >>> isinstance(search, kso.search.StructuralTuner), type(search.oracle).__name__
        (True, 'StructuralBayesianOptimizationOracle')
        >>> search.oracle.objective.name, search.oracle.objective.direction  # Keras Tuner's own direction
        ('val_mae', 'min')
    """

    def __init__(self, hypermodel: keras_tuner.HyperModel | None = None, *, folds: Any = None, refit: Refit = "all",
                 cost: Cost | None = None,
                 cost_weight: float = DEFAULT_COST_WEIGHT, max_params: int | None = None,
                 max_macs: int | None = None, max_latency_ms: float | None = None, deduplicate: bool = True,
                 median_stopping: MedianStopping | bool | None = None, prescreen: int | None = None,
                 donors: Sequence[Model | PathLike] | None = None, inherit_head: bool = False,
                 isolate_trials: bool = False, dtype_policy: str | None = None, jit_compile: bool | str = "auto",
                 oracle: StructuralOracle | None = None, **kwargs: Any):
        if folds is not None and not (hasattr(folds, "split") and hasattr(folds, "get_n_splits")):
            raise _checks.error(
                "Expected folds to be a scikit-learn splitter (KFold, StratifiedKFold, GroupKFold, "
                f"TimeSeriesSplit, ...). Received: folds={folds!r}."
            )
        _checks.one_of("refit", refit, REFITS)
        if max_latency_ms is not None:
            _checks.positive_number("max_latency_ms", max_latency_ms)
        self.folds, self.refit, self.max_latency_ms = folds, refit, max_latency_ms
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
            _keras_tuner.quiet_condition_protos()
        if self._worker:  # a distributed worker: the chief owns the project (and its resume)
            kwargs["overwrite"] = False
        else:
            _check_project(kwargs)
            if not kwargs.get("overwrite"):
                check_same_search(Path(os.fspath(kwargs.get("directory") or ".")) /
                                  (kwargs.get("project_name") or "untitled_project"), hypermodel)
        self.donors = load_donors(donors)
        if not isinstance(inherit_head, bool):
            raise _checks.error(f"Expected inherit_head to be True or False. Received: inherit_head={inherit_head!r}.")
        self.inherit_head = inherit_head
        self._inheritance: dict | None = None
        if oracle is None:
            oracle = self._make_oracle(kwargs)
        elif not isinstance(oracle, StructuralOracle):
            raise _checks.error(
                "Expected oracle to be a keras_structopt.search.StructuralOracle (for example "
                f"structural_oracle({type(oracle).__name__}) made with the same arguments). Received: a "
                f"{type(oracle).__name__}."
            )
        oracle.configure(hypermodel, max_params=max_params, max_macs=max_macs, deduplicate=deduplicate, cost=cost,
                         cost_weight=cost_weight)
        # The tuner's own copy of the oracle's features: a distributed worker's oracle is a client of the chief's.
        self.cost, self.cost_weight, self.deduplicate = oracle.cost, oracle.cost_weight, oracle.deduplicate
        self.max_params, self.max_macs = oracle.max_params, oracle.max_macs
        self.prescreen = check_prescreen(prescreen, oracle)
        self.fold_data: tuple | None = None  # (x, y, fit arguments) of a cross-validated search, for the refit
        self.isolate_trials = bool(isolate_trials)
        self._isolated_fit: dict = {}
        # The base tuner's own constructor only builds its oracle (and keeps its seed): the oracle is
        # built above, with the structural features in front of it.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        if self.isolate_trials:
            check_supported(self)

    def _make_oracle(self, kwargs: dict) -> StructuralOracle:
        base = oracle_class_of(type(self))
        if base is None:
            raise _checks.error(
                "Expected a tuner class whose oracle keras-structopt knows (RandomSearch, GridSearch, "
                "BayesianOptimization, Hyperband, EvolutionarySearch, OptunaSearch or a subclass of one), or "
                f"oracle= a StructuralOracle. Received: {type(self).__name__} without an oracle."
            )
        accepted = [name for name, parameter in inspect.signature(base).parameters.items()
                    if parameter.kind is not parameter.VAR_KEYWORD]
        arguments = {name: kwargs.pop(name) for name in accepted if name in kwargs}
        self.seed = arguments.get("seed")  # as Keras Tuner's tuners keep it
        made = structural_oracle(base)(**arguments)
        _keras_tuner.honour_seed(made, arguments.get("seed"))
        return made

    # -- search -------------------------------------------------------------------------

    def search(self, *fit_args, max_time: float | None = None, **fit_kwargs):
        """Checks the data (for cross-validation: that it can be split) before any training.

        `max_time` (seconds) is the search's time budget: no trial starts that cannot finish
        in the time left (estimated by the longest trial so far), and a trial running when
        the time is up stops at the end of its epoch, keeping its metrics. The best model so
        far is the search's result; `budget.json` in the project (and the search report)
        says what was cut.

        Raises a `ConfigurationError` after the search if the budgets refused every
        candidate drawn, so no trial ran: the budget is below the space's networks; and a
        `SearchFailedError` (with the first failure's reason) if trials ran but none
        completed, or `max_consecutive_failed_trials` failed in a row.
        """
        seconds = check_max_time(max_time)
        check = getattr(self.hypermodel, "check_fit_data", None)
        if check is not None:  # before any trial: no trial folder for data that cannot fit
            check(*fit_args, **fit_kwargs)
        if self.folds is not None:
            check_folds(self.folds, fit_args, fit_kwargs)
        if self.isolate_trials:
            self._isolated_fit = save_data(self.project_dir, fit_args, fit_kwargs)
        self._hparams_dir = tensorboard_log_dir(fit_kwargs.get("callbacks"))
        self._time_budget = None if seconds is None else TimeBudget(seconds)
        with frozen_while_searching():
            if self._worker:  # trains the chief's trials; the chief checks and reports the search
                return super().search(*fit_args, **fit_kwargs)
            with ProjectLock(self.project_dir, "search"):  # one writer per project, for the whole search
                return self._search(fit_args, fit_kwargs)

    def _search(self, fit_args, fit_kwargs):
        write_search_file(self)  # what `Project` (and `keras-structopt report`) reads back
        self.oracle.time_budget = self._time_budget
        if self.prescreen is not None:
            self.oracle.screen = Screen(self.prescreen, self.hypermodel, screening_batch(fit_args, fit_kwargs))
        try:
            result = super().search(*fit_args, **fit_kwargs)
        except RuntimeError as error:  # Keras Tuner's max_consecutive_failed_trials
            failed = from_consecutive_failures(error, self.oracle, self.project_dir)
            if failed is None:
                raise
            raise failed from None
        finally:
            self.oracle.time_budget = self.oracle.screen = None
            if self._time_budget is not None:
                self._time_budget.write(self.project_dir)
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

    # -- trials -------------------------------------------------------------------------

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        directory = trial_directory(self, trial.trial_id)
        hp = trial.hyperparameters
        budget = getattr(self, "_time_budget", None)
        if budget is not None:
            fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", []), budget.callback(self.project_dir,
                                                                                           trial.trial_id)]
        if "tuner/epochs" in hp.values:  # Hyperband's bracket epochs
            fit_kwargs["epochs"] = hp.values["tuner/epochs"]
            fit_kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
        if self.max_latency_ms is not None:
            rejected = self._latency_rejection(trial)
            if rejected is not None:
                return rejected
        if self.isolate_trials:
            results = run_isolated(self, trial, dict(self._isolated_fit, epochs=fit_kwargs.get("epochs", 1)),
                                   self.oracle.objective)
        elif self.folds is None:
            callbacks = list(fit_kwargs.pop("callbacks", []))
            validation = fit_kwargs.get("validation_data")
            size = length(validation[0]) if isinstance(validation, (tuple, list)) and validation else None
            callbacks.append(CurveRecorder(directory, validation_size=size))
            callbacks.append(NonFiniteStopper(self.project_dir, trial.trial_id))
            callbacks.extend(self.stoppers(trial, "all"))
            results = super().run_trial(trial, *fit_args, callbacks=callbacks, **fit_kwargs)
        else:
            results = run_folds(self, trial, directory, fit_args, fit_kwargs)
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
        log_dir = getattr(self, "_hparams_dir", None)
        if log_dir and finished.status == "COMPLETED":
            write_hparams(self, log_dir, [finished])  # the structure, in TensorBoard's HParams
        gc.collect()

    def build_scope(self, hp):
        """Around every build: the dtype policy (set here because Keras Tuner's clear_session() drops a
        policy set before search())."""
        if self.dtype_policy is None:
            return contextlib.nullcontext()
        return _policy(self.dtype_policy)

    def after_build(self, model, hp):
        if self.jit_compile != "auto":
            model.jit_compile = self.jit_compile
        if self.donors and "tuner/trial_id" not in hp.values:  # Hyperband's continuations have their parent's
            self._inheritance = inherit_weights(model, self.donors, head=self.inherit_head)
        return model

    def stoppers(self, trial, fold) -> list:
        """The callbacks that may stop a trial early: median stopping, an Optuna pruner."""
        pruning = getattr(self, "pruning_callbacks", None)  # OptunaSearch: its pruner's callback
        extra = pruning(trial.trial_id, fold) if pruning is not None else []
        if self.median_stopping is None:
            return extra
        objective = self.oracle.objective
        rule = self.median_stopping
        return [MedianStopper(self.project_dir, trial.trial_id, rule, rule.metric or objective.name,
                              rule.direction or objective.direction, fold=fold), *extra]

    def _with_stop(self, trial, results):
        """Marks a median-stopped trial with the metric `stopped_at_epoch` (and keeps its last values)."""
        note = stopped_note(self.project_dir, trial.trial_id)
        if note is None:
            return results
        metrics = _keras_tuner.metrics_dict(results, self.oracle.objective)
        metrics[STOPPED_METRIC] = float(note["epoch"])
        return metrics

    def _with_cost(self, trial, results):
        """The network's cost as a metric of the trial (the oracle trades the objective against it)."""
        if self.cost is None:
            return results
        metrics = _keras_tuner.metrics_dict(results, self.oracle.objective)
        metrics[self.cost] = float(costs(self.hypermodel, trial.hyperparameters.values)[self.cost])
        return metrics

    def _latency_rejection(self, trial):
        model = self.build_model(trial.hyperparameters)
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
        metadata: dict[str, float | str] = {"latency_ms": latency}
        if latency <= float(self.max_latency_ms or 0.0):
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
            extra = sorted(name for name in trial.metrics.metrics if "_fold_" in name or name in (*COSTS, SCORE))
            for name in extra:
                print(f"{name}: {trial.metrics.get_best_value(name):.6g}")

    # -- best models ------------------------------------------------------------------------

    def load_model(self, trial):
        with warnings.catch_warnings():
            # A trial's checkpoint holds its optimizer's state too, and a model built to read it has none
            # yet: Keras warns that it skips those variables. The weights are all read.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer", category=UserWarning)
            return self._load_model(trial)

    def _load_model(self, trial):
        if self.folds is None or self.refit == "best_fold":
            return super().load_model(trial)
        refit = trial_directory(self, trial.trial_id) / "refit.weights.h5"
        model = self.build_model(trial.hyperparameters)
        if refit.exists():
            model.load_weights(refit)
            return model
        if self.fold_data is None:
            raise _checks.error(
                "Expected the data of this search to refit the best model on it (refit='all'). Received: a "
                "tuner that has not searched in this process; call tuner.search(...) (it resumes), or make "
                "the tuner with refit='best_fold'."
            )
        x, y, fit_kwargs = self.fold_data
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
    owner = holder(project) if project.is_dir() else None
    if owner is not None and owner.get("pid") != os.getpid():
        raise _checks.error(
            f"Expected one writer at a time in {str(project)!r}. Received: a tuner on it while another process "
            f"searches it (PID {owner.get('pid', '?')} on {owner.get('host', '?')}); wait for it to finish, or use "
            "another project_name."
        )
    if kwargs.get("overwrite") or not project.is_dir():
        return
    for path in [project / "oracle.json", *sorted(project.glob("trial_*/trial.json"))]:
        if path.exists():
            _checks.json_object(path, "a project directory Keras Tuner can resume",
                                "move the project away (or pass overwrite=True to delete it) to start a new search")


_CLASSES: dict[type, type] = {}  # one structural class per base class


def tuner(base: type[keras_tuner.Tuner], hypermodel: keras_tuner.HyperModel | None, **kwargs: Any) -> StructuralTuner:
    """Makes a Keras Tuner tuner of class `base` with keras-structopt's features.

    Args:
        base: A Keras Tuner tuner class (`keras_tuner.RandomSearch`, `GridSearch`,
            `BayesianOptimization`, `Hyperband`, `keras_structopt.search.EvolutionarySearch`,
            `OptunaSearch`, or a subclass of them; `keras_tuner.Tuner` with `oracle=` a
            `StructuralOracle`).
        hypermodel: The HyperModel (a keras-structopt one, for budgets, cost and
            duplicates).
        folds: A scikit-learn splitter for cross-validated trials (None: hold-out).
        refit: `"all"` (the best model retrained on all the data) or `"best_fold"`.
        cost: `"params"` or `"macs"` for a cost-aware objective (None: the metric alone).
        cost_weight: How many units of the metric one halving of the cost is worth
            (default 0.01: one point of accuracy); the base tuner's `objective` is the
            metric it combines, in the direction Keras Tuner infers for it.
        max_params, max_macs: Budgets checked before building (None: no budget).
        max_latency_ms: A budget on one example's latency, measured before training.
        deduplicate: Replace candidates that describe a network already tried.
        median_stopping: A `MedianStopping` rule (or True for its defaults): a trial
            below the median of the finished trials at the same epoch stops.
        prescreen: None, or how many admissible candidates a random search (or Hyperband)
            draws for each new trial: their untrained networks are scored by NASWOT's
            zero-cost proxy on the first 64 training examples and only the best is trained
            (see `keras_structopt.search._screen`; whether it helps is measured in docs/benchmarks.md).
        donors: Keras 3 models (or `.keras` paths) each candidate inherits weights from
            (see `keras_structopt.search.inherit_weights`).
        inherit_head: Also inherit the donor's output layer (default False: a fresh head,
            right for a related task; True for a donor trained on the same task).
        isolate_trials: Train each trial in its own Python process, so the search's memory
            stays flat over hundreds of trials (one process per trial).
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
        cls = _CLASSES[base] = type(f"Structural{base.__name__}", (StructuralTuner, base), {"__module__": __name__})
    return cls(hypermodel, **kwargs)


def rejected_candidates(tuner: keras_tuner.Tuner) -> list[dict]:
    """The candidates the budgets and the duplicate check replaced (in this process), with the reason.

    Empty for a tuner without keras-structopt's oracle (it refuses nothing).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> search = kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(input_shape=(64,), outputs=10),
        ...     objective="val_accuracy", max_trials=1, max_params=5000, directory=getfixture("tmp_path"),
        ...     project_name="doc")
        >>> rejected_candidates(search)  # nothing drawn yet
        []
    """
    return list(getattr(tuner.oracle, "rejected", []))
