"""The structural oracle: a Keras Tuner oracle that knows what its candidates are.

`StructuralOracle` is mixed in front of any Keras Tuner oracle class (random search,
grid, Bayesian optimisation, Hyperband, evolution, Optuna) through the documented hooks:

* `populate_space`: a candidate over a parameter or MAC budget, the same network as an
  earlier trial, or one in the region of a trial that diverged is refused before
  anything is built (it is no trial, costs no training, and is recorded in `rejected`);
  warm-start candidates (`queue`) are handed out first; with a zero-cost screen
  (`prescreen=`), a new network is the best-scoring of several admissible draws.
* `score_trial`: with a cost, the score is the metric traded against the network's cost,
  `metric -/+ cost_weight * log2(cost / reference)`, in the objective's own direction
  (Keras Tuner's: a lower error is better), so every strategy, Hyperband's brackets and
  Bayesian optimisation's Gaussian process rank by it.
* `get_best_trials`: trials a median rule stopped rank after those that ran to the end.
* `end_trial`: saves the oracle once more after the trial leaves the running ones, so a
  resumed search does not run a finished trial again.

`structural_oracle(base)` makes the class for a Keras Tuner oracle class; users with an
oracle of their own write `class MyOracle(StructuralOracle, keras_tuner.Oracle)`.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import keras_tuner

from keras_structopt import _checks, _keras_tuner
from keras_structopt._trial_files import read_note, write_note
from keras_structopt._types import Cost
from keras_structopt.search._failures import diverged_trials, near_failure, trial_vector
from keras_structopt.search._stopping import STOPPED_METRIC

COSTS = ("params", "macs")
SCORE = "cost_aware_score"
DEFAULT_COST_WEIGHT = 0.01  # halving the cost is worth one point of accuracy
ATTEMPTS = 200  # replacement draws before a budget or duplicate check gives up
WARM_NOTE = "warm_start"  # a trial's note: where its structure came from
SCREEN_NOTE = "prescreen"  # a trial's note: the zero-cost scores of the candidates drawn with it


def values_with(hypermodel, values: dict) -> keras_tuner.HyperParameters:
    """HyperParameters holding `values` (without Keras Tuner's own `tuner/` entries)."""
    hp = keras_tuner.HyperParameters()
    hp.values.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    return hp


def structure_key(hypermodel, values: dict) -> str:
    """What makes two trials the same: the network they describe and the other (training) values.

    Values the architecture reads but that change nothing (a width of a block the depth
    leaves out, a residual connection that cannot apply) vanish in the `Architecture`.
    """
    hp = values_with(hypermodel, values)
    spec = hypermodel.architecture(hp)
    structural = {p.name for p in hp.space}
    rest = {k: v for k, v in values.items() if k not in structural and not k.startswith("tuner/")}
    return json.dumps({"architecture": spec.to_dict(), "other": rest}, sort_keys=True, default=str)


def costs(hypermodel, values: dict) -> dict[str, int]:
    """Parameters and MACs of the network the values describe, without building it."""
    spec = hypermodel.architecture(values_with(hypermodel, values))
    return {"params": spec.count_params(), "macs": spec.count_macs()}


class StructuralOracle(_keras_tuner.AtomicOracleFiles, keras_tuner.Oracle):
    """The keras-structopt features of an oracle, mixed in front of a Keras Tuner oracle class.

    Made by `keras_structopt.search.tuner` (or `structural_oracle`); `configure` gives it
    the HyperModel and the features. Attributes it keeps: `rejected` (the candidates
    refused in this process, with the reason) and `queue` (warm-start candidates handed
    out before any other; see `keras_structopt.search.warm_start`).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.search import structural_oracle
        >>> oracle = structural_oracle(keras_tuner.oracles.RandomSearchOracle)(objective="val_mae", max_trials=3)
        >>> oracle.configure(kso.DenseHyperModel(input_shape=(4,), outputs=1, task="regression"), cost="params")
        >>> type(oracle).__name__, oracle.objective.direction
        ('StructuralRandomSearchOracle', 'min')
    """

    hypermodel: Any = None
    time_budget: Any = None  # a search's TimeBudget (max_time), set for the length of one search() call
    screen: Any = None  # a search's Screen (prescreen=), set for the length of one search() call
    start_order: list[str]
    max_params: int | None = None
    max_macs: int | None = None
    deduplicate: bool = True
    cost: Cost | None = None
    cost_weight: float = DEFAULT_COST_WEIGHT

    def configure(self, hypermodel, *, max_params: int | None = None, max_macs: int | None = None,
                  deduplicate: bool = True, cost: Cost | None = None, cost_weight: float = DEFAULT_COST_WEIGHT) -> None:
        """Sets the HyperModel and the features (checked here, before any trial)."""
        for name, value in (("max_params", max_params), ("max_macs", max_macs)):
            if value is not None:
                _checks.positive_int(name, value)
        if cost is not None:
            _checks.one_of("cost", cost, COSTS)
        if not _checks.is_number(cost_weight) or cost_weight < 0:
            raise _checks.error(f"Expected cost_weight to be a number >= 0. Received: cost_weight={cost_weight!r}.")
        if not isinstance(deduplicate, bool):
            raise _checks.error(f"Expected deduplicate to be True or False. Received: deduplicate={deduplicate!r}.")
        describes = callable(getattr(hypermodel, "architecture", None))
        needs = [name for name, value in (("max_params", max_params), ("max_macs", max_macs), ("cost", cost))
                 if value is not None]
        if needs and not describes:
            raise _checks.error(
                f"Expected a HyperModel that describes its networks (a keras-structopt HyperModel) for "
                f"{', '.join(needs)}. Received: {type(hypermodel).__name__}."
            )
        self.hypermodel, self.describes = hypermodel, describes
        self.max_params, self.max_macs, self.deduplicate = max_params, max_macs, deduplicate
        self.cost, self.cost_weight = cost, float(cost_weight)
        self.rejected: list[dict] = []
        self.queue: list[dict] = []
        _keras_tuner.allow_collisions(self, ATTEMPTS)  # refusals are redrawn, not the search's end

    # -- what a candidate is ---------------------------------------------------------------------

    @property
    def project_dir(self) -> str:
        return _keras_tuner.project_dir(self)

    @property
    def grid(self) -> bool:
        return isinstance(self, keras_tuner.oracles.GridSearchOracle)

    def warm(self, trial_id: str) -> bool:
        """Whether a trial's structure came from an earlier search (`warm_start`)."""
        return WARM_NOTE in read_note(self.project_dir, trial_id)

    def refusal(self, values: dict, seen: set[str]) -> str | None:
        """Why a candidate is refused before it is built, or None."""
        if "tuner/trial_id" in values:  # Hyperband continuing a trial: not a new network
            return None
        failed = near_failure(self, values, diverged_trials(self, self.project_dir))
        if failed is not None:
            return f"in the region of trial {failed}, which diverged (a non-finite loss)"
        if not getattr(self, "describes", False):
            return None
        rules = getattr(self.hypermodel, "rule_violation", None)
        violation = rules(self.hypermodel.architecture(values_with(self.hypermodel, values))) if rules else None
        if violation is not None:
            return f"breaks the design rules: {violation}"
        counted = costs(self.hypermodel, values) if (self.max_params or self.max_macs) else {}
        for name, limit in (("params", self.max_params), ("macs", self.max_macs)):
            if limit is not None and counted[name] > limit:
                return f"{counted[name]:,} {name} over max_{name}={limit:,}"
        if self.deduplicate and structure_key(self.hypermodel, values) in seen:
            return "the same network and settings as an earlier trial"
        return None

    def _refused(self, values: dict, seen: set[str]) -> bool:
        reason = self.refusal(values, seen)
        if reason is not None:
            self.rejected.append({"values": dict(values), "reason": reason})
        return reason is not None

    def _seen(self, excluding: str) -> set[str]:
        """The structures of the trials there are (after a resume too), when duplicates are refused."""
        if not (getattr(self, "describes", False) and self.deduplicate):
            return set()
        return {structure_key(self.hypermodel, t.hyperparameters.values) for t in self.trials.values()
                if t.trial_id != excluding and t.hyperparameters.values}

    # -- Keras Tuner's hooks ---------------------------------------------------------------------

    def populate_space(self, trial_id):
        if not hasattr(self, "rejected"):  # not configured (a plain oracle of this class): Keras Tuner's own
            return super().populate_space(trial_id)
        if self.time_budget is not None and not self.time_budget.admits_another():  # max_time: it would not finish
            return {"status": "STOPPED", "values": None}
        response = self._populate(trial_id)
        if self.time_budget is not None and response.get("status") == "RUNNING":
            self.time_budget.trial_started(trial_id)
        return response

    def _populate(self, trial_id):
        seen = self._seen(trial_id)
        if self.grid:
            _keras_tuner.restore_grid_walk(self, [t for t in self.start_order if not self.warm(t)
                                                  and self.trials[t].hyperparameters.values])
        while self.queue:
            entry = self.queue.pop(0)
            if _keras_tuner.tried(self, entry["values"]) or self._refused(entry["values"], seen):
                entry["notes"].append("skipped: tried already, or refused")
                continue
            write_note(self.project_dir, trial_id, {WARM_NOTE: {k: entry[k] for k in ("from", "trial", "value",
                                                                                      "notes")}})
            return {"status": "RUNNING", "values": dict(entry["values"])}
        if self.grid and self.start_order and all(self.warm(t) for t in self.start_order):
            # The grid has not started: it must see no trials to begin at its first point.
            started, self.start_order = self.start_order, []
            try:
                response = super().populate_space(trial_id)
            finally:
                self.start_order = started
        else:
            response = super().populate_space(trial_id)
        values = response.get("values")
        if response.get("status") != "RUNNING" or values is None:
            return response
        attempts = 0
        while self._refused(values, seen):
            attempts += 1
            following = _keras_tuner.next_grid_point if self.grid else None  # a grid walks on; others redraw
            replacement = following(self, values) if following else _keras_tuner.random_values(self)
            if replacement is None or attempts > ATTEMPTS:
                return {"status": "STOPPED", "values": None}
            # Keep the tuner's own bookkeeping (Hyperband's epochs and bracket) with the new values.
            replacement.update({k: v for k, v in values.items() if k.startswith("tuner/") and k not in replacement})
            values = replacement
        if self.screen is not None and "tuner/trial_id" not in values:  # a new network: screen it among others
            values = self._screened(trial_id, values, seen)
        return {"status": "RUNNING", "values": values}

    def _screened(self, trial_id, first: dict, seen: set[str]) -> dict:
        """The best of `screen.draws` admissible candidates (`first` and random others) by the screen's score."""
        candidates, attempts = [first], 0
        distinct = self.deduplicate and getattr(self, "describes", False)
        while len(candidates) < self.screen.draws and attempts < ATTEMPTS:
            attempts += 1
            values = _keras_tuner.random_values(self)
            if values is None:
                break
            values.update({k: v for k, v in first.items() if k.startswith("tuner/")})
            drawn = {structure_key(self.hypermodel, c) for c in candidates} if distinct else set()
            if not self._refused(values, seen | drawn):
                candidates.append(values)
        scores = self.screen.scores(candidates)
        best = max(range(len(candidates)), key=lambda i: scores[i])
        write_note(self.project_dir, trial_id, {SCREEN_NOTE: {"scores": scores, "trained": best}})
        return candidates[best]

    def score_trial(self, trial):
        super().score_trial(trial)
        if self.cost is None or trial.score is None or not math.isfinite(trial.score):
            return
        cost = costs(self.hypermodel, trial.hyperparameters.values)[self.cost]
        reference = self.reference_cost()
        penalty = self.cost_weight * math.log2(max(cost, 1) / max(reference, 1))
        trial.score = float(trial.score - penalty if self.objective.direction == "max" else trial.score + penalty)
        if not trial.metrics.exists(SCORE):
            trial.metrics.register(SCORE, direction=self.objective.direction)
        trial.metrics.update(SCORE, trial.score, step=trial.best_step or 0)

    def reference_cost(self) -> int:
        """The cost the score compares with: the first trial's (only differences of log-cost matter)."""
        for trial_id in self.start_order:
            values = self.trials[trial_id].hyperparameters.values
            if values:
                return costs(self.hypermodel, values)[self.cost or "params"]
        return 1

    def get_best_trials(self, num_trials=1):
        # Median-stopped trials rank after every trial that ran to the end.
        ranked = super().get_best_trials(len(self.trials))
        ranked.sort(key=lambda trial: trial.metrics.exists(STOPPED_METRIC))
        return ranked[:num_trials]

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        if self.time_budget is not None:
            self.time_budget.trial_ended(trial.trial_id)
        if self.grid and self.warm(trial.trial_id):
            _keras_tuner.leave_grid_walk(self, trial.trial_id)  # not a grid point: the walk goes on from its own
        # Keras Tuner saves before the trial leaves `ongoing_trials`; saving again means a
        # resumed search does not run the finished trial a second time.
        self.save()

    def extra_observations(self, y) -> tuple[list, list]:
        """Bayesian optimisation: a diverged trial counts as the worst score (one spread below the worst finished)."""
        rows = [trial_vector(self, trial) for trial in diverged_trials(self, self.project_dir)]
        if not rows or len(y) == 0:
            return [], []
        worst = float(max(y)) + max(float(max(y) - min(y)), 1e-3)
        return rows, [worst] * len(rows)


@functools.cache
def structural_oracle(base: type) -> type:
    """The structural oracle class for a Keras Tuner oracle class (made once per class).

    Example:
        >>> import keras_tuner
        >>> structural_oracle(keras_tuner.oracles.HyperbandOracle).__name__
        'StructuralHyperbandOracle'
    """
    if not (isinstance(base, type) and issubclass(base, keras_tuner.Oracle)):
        raise _checks.error(f"Expected a Keras Tuner oracle class. Received: {base!r}.")
    if issubclass(base, StructuralOracle):
        return base
    bases: tuple[type, ...] = (StructuralOracle,)
    if issubclass(base, keras_tuner.oracles.BayesianOptimizationOracle):
        bases += (_keras_tuner.BayesianObservations,)
    return type(f"Structural{base.__name__}", (*bases, base), {"__module__": __name__})
