"""An Optuna-backed Keras Tuner oracle: Optuna's samplers and pruners under `tuner.search`.

`OptunaSearch` is a Keras Tuner tuner whose oracle asks an Optuna study for each trial's
values (ask-and-tell): TPE (the default), NSGA-II, random, or any Optuna sampler object.
keras-structopt HyperModels run under it through the normal `tuner.search`, also through
`keras_structopt.search.tuner(OptunaSearch, ...)` with cross-validation, budgets,
deduplication, warm start and weight inheritance.

How the space is translated: each Keras Tuner hyperparameter becomes one Optuna
parameter of the same name, asked only when it is active (a layer's width only when the
depth reaches it), so conditional spaces stay conditional. `Int` and `Float` ranges keep
their bounds, step and log scale; a Keras Tuner log range with a multiplicative step (32,
64, 128, ...) becomes a choice among its values; `Choice` and `Boolean` become
categorical parameters; `Fixed` values are not asked.

Objectives: the tuner's objective, and with `pareto="params"` or `"macs"` also the
network's cost (minimised): a two-objective study whose Pareto front `pareto_front()`
returns (NSGA-II is the sampler made for it). (`pareto`, not `cost`: through
`keras_structopt.search.tuner`, `cost=` is the single combined objective of a cost-aware
search, which any oracle can optimise.) A candidate the tuner refuses (over a
`max_params` budget, the same network as an earlier trial) is told to the study as
pruned without training, so the sampler learns where not to go.

Pruning: with `pruner="median"`, `"hyperband"`, `"successive_halving"` or an Optuna
pruner object, every epoch's objective value is reported to the study and a trial the
pruner stops ends early; it is recorded like a median-stopped trial (its last values and
`stopped_at_epoch`), never returned as the best by accident, and told to the study as
pruned. Cross-validated trials report their first fold's curve.

Storage: the study lives in an Optuna storage, by default the SQLite file `optuna.db` in
the project directory (study name: the project name), so a killed search resumes from
it with `overwrite=False`: finished trials are neither lost nor re-run, and trials that
were asked but never finished are marked failed in the study; a resumed sampler is seeded
with the seed plus the number of trials already asked (re-seeded as at the start, it would
repeat its first draws). Optuna is an optional
dependency (`pip install "keras-structopt[optuna]"`), imported when a study is first
needed. The sampler's random state is not stored: a resumed search continues the study,
not the exact sequence an uninterrupted one would have drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from keras_structopt import _checks, _keras_tuner
from keras_structopt._trial_files import write_note
from keras_structopt._types import ObjectiveArg

SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("median", "hyperband", "successive_halving")
_STOPPED = "stopped_at_epoch"
_ATTEMPTS = 50  # refused candidates told as pruned before the search gives up


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - the test extras install it
        raise _checks.error(
            "Expected Optuna to be installed for OptunaSearch. Received: no module named 'optuna'; install it with "
            "pip install \"keras-structopt[optuna]\"."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _sampler(sampler, seed):
    optuna = _optuna()
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return sampler


def _pruner(pruner):
    optuna = _optuna()
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return pruner


def suggest_values(space: keras_tuner.HyperParameters, trial) -> dict[str, Any]:
    """Asks an Optuna trial for a value of each active hyperparameter of `space`, in declaration order.

    Example:
        >>> import keras_tuner, optuna
        >>> space = keras_tuner.HyperParameters()
        >>> depth = space.Int("depth", 1, 2)
        >>> with space.conditional_scope("depth", [2]):
        ...     _ = space.Int("units_2", 8, 64, sampling="log")
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> values = suggest_values(space, study.ask())
        >>> ("units_2" in values) == (values["depth"] == 2)
        True
    """
    return assign_active(space, lambda hp: _suggest(trial, hp))


SKIP = object()  # what `value_of` returns to leave a hyperparameter out


def assign_active(space: keras_tuner.HyperParameters, value_of) -> dict[str, Any]:
    """Values for the hyperparameters of `space` that are active, walking it in declaration order.

    A condition's parent is declared before what it conditions, so each hyperparameter's
    activity is decided by the values given so far. `value_of(hp)` gives a value, or `SKIP`.

    Example:
        >>> import keras_tuner
        >>> space = keras_tuner.HyperParameters()
        >>> _ = space.Int("depth", 1, 2)
        >>> with space.conditional_scope("depth", [2]):
        ...     _ = space.Int("units_2", 8, 64)
        >>> assign_active(space, lambda hp: 1 if hp.name == "depth" else 32)
        {'depth': 1}
    """
    hps = space.copy()
    hps.values = {}
    for hp in hps.space:
        if hps.is_active(hp):
            value = value_of(hp)
            if value is not SKIP:
                hps.values[hp.name] = value
    return dict(hps.values)


def _suggest(trial, hp):
    kind = type(hp).__name__
    if kind == "Fixed":
        return hp.value
    if kind == "Boolean":
        return trial.suggest_categorical(hp.name, [False, True])
    if kind == "Choice":
        return trial.suggest_categorical(hp.name, list(hp.values))
    log = hp.sampling == "log"
    step = hp.step
    if log and step not in (None, 1):  # a multiplicative step: the values, in order
        return trial.suggest_categorical(hp.name, log_step_values(hp))
    if kind == "Int":
        return trial.suggest_int(hp.name, hp.min_value, hp.max_value, step=1 if log else (step or 1), log=log)
    return trial.suggest_float(hp.name, hp.min_value, hp.max_value, step=None if log else step, log=log)


def log_step_values(hp) -> list:
    """The values of a Keras Tuner log range with a multiplicative step (32, 64, 128, ...).

    Example:
        >>> import keras_tuner
        >>> space = keras_tuner.HyperParameters()
        >>> _ = space.Int("w", 32, 256, step=2, sampling="log")
        >>> log_step_values(space.space[0])
        [32, 64, 128, 256]
    """
    values, value = [], hp.min_value
    while value <= hp.max_value:
        values.append(value)
        value *= hp.step
    return values


class OptunaOracle(keras_tuner.Oracle):
    """A Keras Tuner oracle that asks an Optuna study for each trial's values (see the module docstring).

    Args:
        objective: As for any Keras Tuner oracle.
        max_trials: The number of trials.
        sampler: `"tpe"` (default), `"nsga2"`, `"random"` or an Optuna sampler object.
        pruner: `None`, `"median"`, `"hyperband"`, `"successive_halving"` or an Optuna
            pruner object.
        pareto: `None`, or `"params"` / `"macs"`: the network's cost as a second
            objective, minimised (the tuner's HyperModel must describe its networks).
        storage: An Optuna storage URL; default `sqlite:///<project dir>/optuna.db`.
        study_name: Default: the project name.
        seed: The sampler's seed (0 is honoured).
        **kwargs: `hyperparameters`, `tune_new_entries`, `allow_new_entries`,
            `max_retries_per_trial`, `max_consecutive_failed_trials`, as for every oracle.

    Example:
        >>> oracle = OptunaOracle(objective="val_accuracy", max_trials=20, sampler="nsga2", pareto="params", seed=0)
        >>> oracle.directions
        ['maximize', 'minimize']
    """

    def __init__(self, objective: ObjectiveArg = None, max_trials: int = 10, sampler: Any = "tpe", pruner: Any = None,
                 pareto: str | None = None,
                 storage: str | None = None, study_name: str | None = None, seed: int | None = None, **kwargs):
        if isinstance(sampler, str) or sampler is None:
            _checks.one_of("sampler", sampler, SAMPLERS)
        elif not hasattr(sampler, "sample_independent"):
            raise _checks.error(f"Expected sampler to be one of {list(SAMPLERS)} or an Optuna sampler. "
                                f"Received: sampler={sampler!r}.")
        if isinstance(pruner, str):
            _checks.one_of("pruner", pruner, PRUNERS)
        elif pruner is not None and not hasattr(pruner, "prune"):
            raise _checks.error(f"Expected pruner to be None, one of {list(PRUNERS)} or an Optuna pruner. "
                                f"Received: pruner={pruner!r}.")
        if pareto is not None:
            _checks.one_of("pareto", pareto, ("params", "macs"))
        if storage is not None and not isinstance(storage, str):
            raise _checks.error(f"Expected storage to be an Optuna storage URL (a str). Received: storage={storage!r}.")
        if seed is not None:
            _checks.non_negative_int("seed", seed)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        _keras_tuner.honour_seed(self, seed)
        self.sampler, self.pruner, self.pareto = sampler, pruner, pareto
        self.storage, self.study_name = storage, study_name
        self.numbers: dict[str, list[int]] = {}  # Keras Tuner trial id -> [Optuna number, Optuna trial id]
        self.hypermodel: Any = None  # set by its tuner: the HyperModel whose networks' cost `pareto` counts
        self._study: Any = None
        self._live: dict[str, Any] = {}

    @property
    def directions(self) -> list[str]:
        """The study's directions: the objective's, then `"minimize"` for the cost."""
        first = "maximize" if self.objective.direction == "max" else "minimize"
        return [first] + (["minimize"] if self.pareto else [])

    def network_cost(self, values: dict) -> int:
        """The parameters or MACs (`pareto`) of the network `values` describe, counted from the spec."""
        hp = self.get_space()
        hp.values.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
        spec = self.hypermodel.architecture(hp)
        return spec.count_params() if self.pareto == "params" else spec.count_macs()

    # -- the study ----------------------------------------------------------------------

    def study(self):
        """The Optuna study (created in, or loaded from, the storage on first use)."""
        if self._study is None:
            optuna = _optuna()
            directory = Path(_keras_tuner.project_dir(self))
            storage = self.storage or f"sqlite:///{directory / 'optuna.db'}"
            name = self.study_name or directory.name
            study = optuna.create_study(storage=storage, study_name=name, sampler=_sampler(self.sampler, self.seed),
                                        pruner=_pruner(self.pruner), directions=self.directions, load_if_exists=True)
            if [d.name.lower() for d in study.directions] != self.directions:
                raise _checks.error(
                    f"Expected the stored study {name!r} to have the directions {self.directions}. Received: a study "
                    f"with {[d.name.lower() for d in study.directions]} in {storage}; use another study_name."
                )
            asked = len(study.trials)
            if asked and isinstance(self.sampler, str) and self.seed is not None:
                # A resumed study: a sampler re-seeded as at the start would repeat its first draws.
                study.sampler = _sampler(self.sampler, self.seed + asked)
            self._study = study
            self._fail_orphans()
        return self._study

    def _fail_orphans(self) -> None:
        """Marks trials asked but never finished (a killed search) as failed, unless a trial still holds them."""
        optuna = _optuna()
        held = {pair[0] for trial_id, pair in self.numbers.items()
                if trial_id in self.trials and self.trials[trial_id].status in ("RUNNING", "IDLE")}
        for frozen in self._study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if frozen.number not in held:
                self._study.tell(frozen.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)

    def _trial(self, trial_id: str):
        """The live Optuna trial of a Keras Tuner trial (rebuilt from the storage after a resume)."""
        if trial_id not in self._live and trial_id in self.numbers:
            self._live[trial_id] = _optuna().trial.Trial(self.study(), self.numbers[trial_id][1])
        return self._live.get(trial_id)

    # -- Keras Tuner's oracle interface ---------------------------------------------------

    def populate_space(self, trial_id):
        optuna = _optuna()
        study = self.study()
        for _ in range(_ATTEMPTS):
            asked = study.ask()
            values = suggest_values(self.hyperparameters, asked)
            if _keras_tuner.tried(self, values):  # tried already
                study.tell(asked, state=optuna.trial.TrialState.PRUNED)
                continue
            self.numbers[trial_id] = [asked.number, asked._trial_id]
            self._live[trial_id] = asked
            return {"status": "RUNNING", "values": values}
        return {"status": "STOPPED", "values": None}

    def report(self, trial_id: str, value: float, step: int) -> bool:
        """Reports one epoch's objective value; returns whether the pruner stops the trial."""
        trial = self._trial(trial_id)
        if trial is None or self.pareto or not math.isfinite(value):  # Optuna prunes single-objective studies
            return False
        trial.report(float(value), int(step))
        return bool(trial.should_prune())

    def end_trial(self, trial):
        super().end_trial(trial)
        self._tell(self.trials.get(trial.trial_id, trial))
        # Keras Tuner saves before the trial leaves `ongoing_trials`; saving again means a
        # resumed search does not run the finished trial a second time.
        self.save()

    def _tell(self, trial) -> None:
        optuna = _optuna()
        states = optuna.trial.TrialState
        values = None
        if trial.status != "COMPLETED" or trial.score is None or not math.isfinite(trial.score):
            state = states.FAIL
        elif trial.metrics.exists(_STOPPED):
            state = states.PRUNED
        else:
            state = states.COMPLETE
            values = [float(trial.score)]
            if self.pareto and self.hypermodel is not None:
                values.append(float(self.network_cost(trial.hyperparameters.values)))
        if trial.trial_id in self.numbers:
            self.study().tell(self.numbers[trial.trial_id][0], values, state=state, skip_if_finished=True)
        elif state == states.COMPLETE:  # not asked (a warm-started structure): added, so the sampler learns it
            self._add(trial, values)
        self._live.pop(trial.trial_id, None)

    def _add(self, trial, values) -> None:
        optuna = _optuna()
        recorder = _Recorder()
        suggest_values(self.hyperparameters, _Replay(trial.hyperparameters.values, recorder))
        try:
            frozen = optuna.trial.create_trial(params=recorder.params, distributions=recorder.distributions,
                                               values=values)
        except ValueError:  # a value outside the space (an adapted warm start): nothing to learn from
            return
        self.study().add_trial(frozen)
        self.numbers[trial.trial_id] = [frozen.number, -1]

    def pareto_front(self) -> list:
        """The finished trials no other beats on the objective and the cost (with `pareto`), cheapest first.

        Without a cost it is the best trial. Trials come from the study, mapped back to
        Keras Tuner's trials.
        """
        by_number = {pair[0]: trial_id for trial_id, pair in self.numbers.items()}
        front = [self.trials[by_number[t.number]] for t in self.study().best_trials if t.number in by_number]
        if self.hypermodel is not None and self.pareto:
            front.sort(key=lambda trial: self.network_cost(trial.hyperparameters.values))
        return front

    def get_state(self):
        state = super().get_state()
        state.update({"optuna_numbers": self.numbers, "optuna_storage": self.storage,
                      "optuna_study_name": self.study_name})
        return state

    def set_state(self, state):
        super().set_state(state)
        self.numbers = {k: list(v) for k, v in state.get("optuna_numbers", {}).items()}
        self.storage = state.get("optuna_storage", self.storage)
        self.study_name = state.get("optuna_study_name", self.study_name)
        self._study, self._live = None, {}


class _Recorder:
    def __init__(self):
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, Any] = {}


class _Replay:
    """Answers `suggest_*` with given values and records each parameter's distribution."""

    def __init__(self, values: dict, recorder: _Recorder):
        self.values, self.recorder = values, recorder

    def _answer(self, name, distribution):
        self.recorder.params[name] = self.values.get(name)
        self.recorder.distributions[name] = distribution
        return self.values.get(name)

    def suggest_categorical(self, name, choices):
        return self._answer(name, _optuna().distributions.CategoricalDistribution(choices))

    def suggest_int(self, name, low, high, step=1, log=False):
        return self._answer(name, _optuna().distributions.IntDistribution(low, high, log=log, step=step))

    def suggest_float(self, name, low, high, step=None, log=False):
        return self._answer(name, _optuna().distributions.FloatDistribution(low, high, log=log, step=step))


class OptunaPruning(keras.callbacks.Callback):
    """Reports each epoch's objective value to the trial's Optuna pruner and stops the trial when told.

    It shares the oracle when Keras Tuner copies callbacks (a copy of the study would not
    see the other trials). A stopped trial is noted in its `structopt.json` (`pruned`:
    epoch and value), which the tuners read like a median stop.
    """

    def __init__(self, oracle: OptunaOracle, project_dir, trial_id: str, metric: str):
        super().__init__()
        self.oracle, self.project_dir, self.trial_id, self.metric = oracle, str(project_dir), trial_id, metric

    def __deepcopy__(self, memo):
        return OptunaPruning(self.oracle, self.project_dir, self.trial_id, self.metric)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        if self.oracle.report(self.trial_id, float(value), epoch):
            self.model.stop_training = True
            write_note(self.project_dir, self.trial_id, {"pruned": {"epoch": int(epoch), "value": float(value)}})


class OptunaSearch(keras_tuner.Tuner):
    """A Keras Tuner tuner driven by `OptunaOracle`; use it like `keras_tuner.RandomSearch`.

    Args:
        hypermodel: The HyperModel.
        objective, max_trials, sampler, pruner, pareto, storage, study_name, seed: As for
            `OptunaOracle`.
        hyperparameters, tune_new_entries, allow_new_entries, max_retries_per_trial,
            max_consecutive_failed_trials: As for every Keras Tuner tuner.
        **kwargs: The `Tuner` arguments (`directory`, `project_name`, `overwrite`, ...).

    Example:
        >>> import keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10)
        >>> search = kso.search.tuner(kso.search.OptunaSearch, hypermodel, objective="val_accuracy",
        ...     max_trials=20, sampler="nsga2", pareto="params", seed=0,
        ...     directory=getfixture("tmp_path"), project_name="optuna")
        >>> search.oracle.study().study_name, len(search.oracle.study().directions)
        ('optuna', 2)
    """

    oracle_class = OptunaOracle  # what keras_structopt.search.tuner builds (with its features) for it

    def __init__(self, hypermodel: keras_tuner.HyperModel | None = None, objective: ObjectiveArg = None,
                 max_trials: int = 10, sampler: Any = "tpe", pruner: Any = None,
                 pareto: str | None = None, storage: str | None = None, study_name: str | None = None,
                 seed: int | None = None, hyperparameters: keras_tuner.HyperParameters | None = None,
                 tune_new_entries: bool = True,
                 allow_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3, **kwargs):
        if pareto is not None and getattr(hypermodel, "architecture", None) is None:
            raise _checks.error(
                "Expected a HyperModel that describes its networks (a keras-structopt HyperModel) for pareto="
                f"{pareto!r}. Received: {type(hypermodel).__name__}."
            )
        oracle = OptunaOracle(
            objective=objective, max_trials=max_trials, sampler=sampler, pruner=pruner, pareto=pareto, storage=storage,
            study_name=study_name, seed=seed, hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, **kwargs)
        if pareto is not None:
            oracle.hypermodel = self.hypermodel

    def pruning_callbacks(self, trial_id: str, fold="all") -> list:
        """The pruning callback of a trial (none without a pruner, or for folds after the first)."""
        if self.oracle.pruner is None or fold not in ("all", 0):
            return []
        return [OptunaPruning(self.oracle, self.project_dir, trial_id, self.oracle.objective.name)]

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        if not hasattr(self, "stoppers"):  # a plain OptunaSearch; keras-structopt's tuners add it themselves
            fit_kwargs["callbacks"] = [*fit_kwargs.get("callbacks", []), *self.pruning_callbacks(trial.trial_id)]
        results = super().run_trial(trial, *fit_args, **fit_kwargs)
        note = _pruned(self.project_dir, trial.trial_id)
        if note is None or hasattr(self, "stoppers"):
            return results
        metrics = _keras_tuner.metrics_dict(results, self.oracle.objective)
        metrics[_STOPPED] = float(note["epoch"])
        return metrics


def _pruned(project_dir, trial_id: str) -> dict | None:
    from keras_structopt._trial_files import read_note

    return read_note(project_dir, trial_id).get("pruned")


__all__ = ["OptunaOracle", "OptunaPruning", "OptunaSearch", "assign_active", "log_step_values", "suggest_values"]
