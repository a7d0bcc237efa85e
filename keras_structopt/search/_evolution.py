"""Regularized (aging) evolution over a HyperModel's space, as a Keras Tuner oracle and tuner.

The first `population_size` trials are random. After that each trial is a child: a
tournament of `sample_size` trials drawn from the `population_size` most recently finished
ones picks the best as parent, and the child changes exactly one of the parent's active
hyperparameters. Old trials leave the population by age, not by score ("regularized
evolution"), so a lucky early score cannot dominate the search.

A mutation respects the space's conditions: only active hyperparameters mutate, and when a
change activates others (a larger depth activates the new layers' widths) they are drawn
from the space; values that become inactive are dropped. Numbers move locally, in the
space's own sampling (log or linear): a step of about a sixth of the range, never the
same value; a choice or a boolean takes another value.

Everything the oracle decides derives from its seed and the number of trials so far, so a
resumed search draws what an uninterrupted one would; `seed=0` is honoured (Keras Tuner
replaces a falsy seed with a random one).
"""

from __future__ import annotations

import keras_tuner
import numpy as np

from keras_structopt import _checks, _keras_tuner
from keras_structopt._types import ObjectiveArg

_STEP = 1.0 / 6.0  # a mutation's typical move, as a fraction of a number's range
_TRIES = 50  # mutations tried before a duplicate-free child is given up for a random draw


def mutate(space: keras_tuner.HyperParameters, values: dict, rng: np.random.Generator) -> dict | None:
    """Returns `values` with exactly one active hyperparameter changed (None if none can change).

    Hyperparameters the change activates are drawn from `space`; ones it deactivates are
    dropped. `space` is not modified.

    Example:
        >>> import keras_tuner, numpy as np
        >>> space = keras_tuner.HyperParameters()
        >>> depth = space.Int("depth", 1, 2)
        >>> with space.conditional_scope("depth", [2]):
        ...     _ = space.Int("units_2", 8, 64)
        >>> child = mutate(space, {"depth": 1}, np.random.default_rng(0))
        >>> child["depth"], 8 <= child["units_2"] <= 64
        (2, True)
    """
    hps = space.copy()
    hps.values = dict(values)
    hps.ensure_active_values()
    candidates = [hp for hp in hps.space if hps.is_active(hp) and _can_change(hp)]
    if not candidates:
        return None
    hp = candidates[int(rng.integers(len(candidates)))]
    hps.values[hp.name] = _neighbour(hp, hps.values[hp.name], rng)
    child = {}
    for other in hps.space:  # declaration order: a condition's parent comes before its children
        if not hps.is_active(other):
            hps.values.pop(other.name, None)
            continue
        if other.name not in values or other.name not in hps.values:
            hps.values[other.name] = _draw(other, rng)
        child[other.name] = hps.values[other.name]
    return child


def _can_change(hp) -> bool:
    kind = type(hp).__name__
    if kind == "Fixed":
        return False
    if kind == "Choice":
        return len(hp.values) > 1
    if kind in ("Int", "Float"):
        return hp.max_value > hp.min_value
    return kind == "Boolean"


def _draw(hp, rng) -> object:
    return _clip(hp, hp.prob_to_value(float(rng.uniform())))


def _clip(hp, value):
    if type(hp).__name__ in ("Int", "Float"):
        return type(value)(min(max(value, hp.min_value), hp.max_value))
    return value


def _neighbour(hp, value, rng) -> object:
    kind = type(hp).__name__
    if kind == "Boolean":
        return not value
    if kind == "Choice":
        others = [v for v in hp.values if v != value]
        return others[int(rng.integers(len(others)))]
    position = hp.value_to_prob(value)
    for _ in range(_TRIES):
        # Keras Tuner maps a probability of exactly 1 past the top of a log-sampled range.
        moved = _clip(hp, hp.prob_to_value(float(np.clip(position + rng.normal(0.0, _STEP), 0.0, 1.0 - 1e-9))))
        if moved != value:
            return moved
    # A number with few values (a small Int range): take any other one.
    for _ in range(_TRIES):
        drawn = _draw(hp, rng)
        if drawn != value:
            return drawn
    return value


class EvolutionOracle(keras_tuner.Oracle):
    """Regularized evolution: random first, then tournaments among the newest trials and one mutation.

    Args:
        objective: As for any Keras Tuner oracle (a cost-aware tuner passes its combined score).
        max_trials: The number of trials.
        population_size: How many of the most recently finished trials form the population
            (and how many random trials start the search). At least 2.
        sample_size: How many population members each tournament draws (1 to
            `population_size`); larger means greedier.
        seed: The random seed (0 is honoured).
        **kwargs: `hyperparameters`, `tune_new_entries`, `allow_new_entries`,
            `max_retries_per_trial`, `max_consecutive_failed_trials`, as for every oracle.

    Example:
        >>> oracle = EvolutionOracle(objective="val_accuracy", max_trials=20, population_size=8, sample_size=3, seed=0)
        >>> oracle.seed, oracle.population_size
        (0, 8)
    """

    def __init__(self, objective: ObjectiveArg = None, max_trials: int = 10, population_size: int = 10,
                 sample_size: int = 3, seed: int | None = None, **kwargs):
        population_size = _checks.positive_int("population_size", population_size)
        if population_size < 2:
            raise _checks.error(f"Expected population_size >= 2. Received: population_size={population_size}.")
        sample_size = _checks.positive_int("sample_size", sample_size)
        if sample_size > population_size:
            raise _checks.error(
                f"Expected 1 <= sample_size <= population_size={population_size}. Received: sample_size={sample_size}."
            )
        if seed is not None:
            _checks.non_negative_int("seed", seed)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        _keras_tuner.honour_seed(self, seed)
        self.population_size = population_size
        self.sample_size = sample_size

    def populate_space(self, trial_id):
        finished = [
            self.trials[i] for i in self.end_order
            if self.trials[i].status == "COMPLETED" and self.trials[i].score is not None
            and not self.trials[i].metrics.exists("stopped_at_epoch")
        ]
        if len(finished) >= self.population_size:
            # The draws depend only on the seed and how far the search is: a resume repeats them.
            rng = np.random.default_rng([self.seed, len(self.trials)])
            population = finished[-self.population_size:]
            higher = self.objective.direction == "max"
            for _ in range(_TRIES):
                members = rng.choice(len(population), size=self.sample_size, replace=False)
                parent = max((population[i] for i in members), key=lambda t: t.score if higher else -t.score)
                child = mutate(self.hyperparameters, parent.hyperparameters.values, rng)
                if child is not None and not _keras_tuner.tried(self, child):
                    return {"status": "RUNNING", "values": child}
        values = _keras_tuner.random_values(self)
        if values is None:
            return {"status": "STOPPED", "values": None}
        return {"status": "RUNNING", "values": values}

    def end_trial(self, trial):
        super().end_trial(trial)
        # Keras Tuner saves before the trial leaves `ongoing_trials`; saving again means a
        # resumed search does not run the finished trial a second time.
        self.save()

    def get_state(self):
        state = super().get_state()
        state.update({"population_size": self.population_size, "sample_size": self.sample_size})
        return state

    def set_state(self, state):
        super().set_state(state)
        self.population_size = state["population_size"]
        self.sample_size = state["sample_size"]


class EvolutionarySearch(keras_tuner.Tuner):
    """A Keras Tuner tuner driven by `EvolutionOracle`; use it like `keras_tuner.RandomSearch`.

    Args:
        hypermodel: The HyperModel.
        objective, max_trials, population_size, sample_size, seed: As for `EvolutionOracle`.
        hyperparameters, tune_new_entries, allow_new_entries, max_retries_per_trial,
            max_consecutive_failed_trials: As for every Keras Tuner tuner.
        **kwargs: The `Tuner` arguments (`directory`, `project_name`, `overwrite`, ...).

    Example:
        >>> import keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10)
        >>> search = kso.search.tuner(kso.search.EvolutionarySearch, hypermodel, objective="val_accuracy",
        ...     max_trials=30, population_size=10, sample_size=3, seed=0, max_params=5000,
        ...     directory=getfixture("tmp_path"), project_name="evolution")
        >>> search.oracle.population_size
        10
    """

    oracle_class = EvolutionOracle  # what keras_structopt.search.tuner builds (with its features) for it

    def __init__(self, hypermodel: keras_tuner.HyperModel | None = None, objective: ObjectiveArg = None,
                 max_trials: int = 10, population_size: int = 10, sample_size: int = 3, seed: int | None = None,
                 hyperparameters: keras_tuner.HyperParameters | None = None, tune_new_entries: bool = True,
                 allow_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3, **kwargs):
        oracle = EvolutionOracle(
            objective=objective, max_trials=max_trials, population_size=population_size, sample_size=sample_size,
            seed=seed, hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, **kwargs)
