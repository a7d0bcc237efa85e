"""Choosing among a finished search's trials: the simplest within noise, and the Pareto front.

Both work on the trials' records (objective value, its standard error, parameters, MACs),
so they read a search that is finished, resumed or reloaded from its project directory.
The pure functions underneath (`simplest_within`, `non_dominated`) take plain records.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from keras_structopt import _checks
from keras_structopt._trial_files import read_note
from keras_structopt._types import Cost, PathLike, Searched, SelectionRule
from keras_structopt.search._curves import read_curves, save_figure
from keras_structopt.search._stopping import stopped_early

COSTS = ("params", "macs")
RULES = ("one_se", "best")


@dataclasses.dataclass(frozen=True)
class Record:
    """One finished trial, as selection sees it.

    Attributes:
        trial: The trial id.
        value: Its objective value.
        standard_error: The noise of that value (see `select_simplest`).
        params, macs: The cost of its network, counted from its `Architecture`.
    """

    trial: str
    value: float
    standard_error: float
    params: int
    macs: int

    def cost(self, kind: str) -> int:
        return self.params if kind == "params" else self.macs


def simplest_within(records: list[Record], *, cost: str = "params", higher_is_better: bool = True,
                    rule: str = "one_se") -> tuple[Record, float]:
    """The cheapest record whose value is within one standard error of the best's.

    Returns `(record, threshold)`. With `rule="best"` the best record itself. The best
    record always qualifies, so the choice is never costlier than it.

    Example:
        >>> records = [Record("a", 0.970, 0.005, 9000, 9000), Record("b", 0.967, 0.005, 3000, 3000),
        ...            Record("c", 0.950, 0.005, 1000, 1000)]
        >>> choice, threshold = simplest_within(records)
        >>> choice.trial, round(threshold, 3)
        ('b', 0.965)
    """
    if not records:
        raise _checks.error("Expected at least one completed trial to select from. Received: none.")
    sign = 1.0 if higher_is_better else -1.0
    best = max(records, key=lambda r: (sign * r.value, -r.cost(cost)))
    if rule == "best":
        return best, best.value
    threshold = best.value - sign * best.standard_error
    eligible = [r for r in records if sign * r.value >= sign * threshold - 1e-12]
    return min(eligible, key=lambda r: (r.cost(cost), -sign * r.value)), threshold


def non_dominated(points: list[tuple[Any, float, float]], *, higher_is_better: bool = True) -> list:
    """The keys of the points `(key, value, cost)` no other point beats on both.

    A point is dominated when another is at least as good in value and in cost and
    better in one. Returned in order of cost.

    Example:
        >>> non_dominated([("a", 0.97, 9000), ("b", 0.96, 3000), ("c", 0.95, 5000), ("d", 0.97, 9500)])
        ['b', 'a']
    """
    sign = 1.0 if higher_is_better else -1.0
    front = []
    for key, value, cost in points:
        dominated = any(
            sign * v >= sign * value and c <= cost and (sign * v > sign * value or c < cost)
            for k, v, c in points
            if k != key
        )
        if not dominated:
            front.append((cost, -sign * value, key))
    return [key for _, _, key in sorted(front, key=lambda item: (item[0], item[1], str(item[2])))]


def _metric(tuner):
    """The objective the selection reads: the metric itself for a cost-aware tuner."""
    objective = tuner.oracle.objective
    return objective.name, objective.direction != "min"


def _standard_error(tuner, trial, metric: str, value: float) -> tuple[float, str]:
    """The noise of a trial's value, and how it was estimated."""
    name = f"{metric}_fold_std"
    fold_std = trial.metrics.get_best_value(name) if trial.metrics.exists(name) else None
    if fold_std is not None:
        folds = sum(1 for name in trial.metrics.metrics if name.startswith(f"{metric}_fold_") and name[-1].isdigit())
        return fold_std / math.sqrt(max(folds, 1)), "fold standard deviation / sqrt(folds)"
    runs = read_curves(tuner, trial.trial_id)
    size = next((run.get("validation_size") for run in runs if run.get("validation_size")), None)
    if size and 0.0 <= value <= 1.0 and "accuracy" in metric:
        return math.sqrt(value * (1.0 - value) / size), f"binomial: sqrt(p (1 - p) / {size} validation examples)"
    tail = [e[metric] for run in runs for e in run["epochs"][-3:] if metric in e]
    if len(tail) >= 2:
        mean = sum(tail) / len(tail)
        return math.sqrt(sum((t - mean) ** 2 for t in tail) / (len(tail) - 1)), "spread over the last 3 epochs"
    return 0.0, "no estimate (a single value)"


def records(tuner) -> tuple[list[Record], dict[str, str]]:
    """The completed trials as `Record`s (rejected candidates left out), and how each error was estimated."""
    metric, _ = _metric(tuner)
    found, how = [], {}
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED" or not trial.metrics.exists(metric):
            continue
        note = read_note(tuner.project_dir, trial.trial_id)
        if "rejected" in note or stopped_early(note):  # never trained, or not to the end
            continue
        value = trial.metrics.get_best_value(metric)
        if value is None or not math.isfinite(value):
            continue
        error, how[trial.trial_id] = _standard_error(tuner, trial, metric, value)
        spec = tuner.hypermodel.architecture(trial.hyperparameters.copy())
        found.append(Record(trial.trial_id, float(value), float(error), spec.count_params(), spec.count_macs()))
    return found, how


@dataclasses.dataclass(frozen=True)
class Selection:
    """The trial `select_simplest` chose, and why.

    Attributes:
        trial: The chosen `keras_tuner` trial.
        architecture: Its `Architecture`.
        value: Its objective value; `best_value` the best trial's.
        threshold: The value a trial had to reach (best minus one standard error).
        standard_error: The best trial's standard error; `estimate` says how it was made.

    Example:
        >>> choice = select_simplest(getfixture("finished_search"))
        >>> choice.value >= choice.threshold, choice.architecture.family
        (True, 'dense')
    """

    trial: Any
    architecture: Any
    value: float
    best_value: float
    threshold: float
    standard_error: float
    estimate: str


def select_simplest(tuner: Searched, *, rule: SelectionRule = "one_se", cost: Cost = "params") -> Selection:
    """The smallest architecture whose score is within one standard error of the best trial's.

    The standard error is, for cross-validated trials, the standard deviation of the
    best trial's fold values over the square root of the number of folds; without
    folds, for an accuracy, the binomial error `sqrt(p (1 - p) / n)` of `n` validation
    examples; otherwise the spread of the best trial's last three epochs. With
    `rule="best"` the best trial itself.

    Args:
        tuner: A finished tuner made by `keras_structopt.search.tuner` (it recorded the
            validation size and curves); any Keras Tuner tuner over a keras-structopt
            HyperModel works, with a cruder error estimate.
        rule: `"one_se"` or `"best"`.
        cost: `"params"` or `"macs"`.

    Example:
        >>> choice = select_simplest(getfixture("finished_search"))
        >>> choice.value >= choice.threshold - 1e-12, choice.best_value >= choice.value
        (True, True)
    """
    _checks.one_of("rule", rule, RULES)
    _checks.one_of("cost", cost, COSTS)
    metric, higher = _metric(tuner)
    found, how = records(tuner)
    chosen, threshold = simplest_within(found, cost=cost, higher_is_better=higher, rule=rule)
    best = max(found, key=lambda r: ((1 if higher else -1) * r.value, -r.cost(cost)))
    trial = tuner.oracle.get_trial(chosen.trial)
    return Selection(
        trial=trial,
        architecture=tuner.hypermodel.architecture(trial.hyperparameters.copy()),
        value=chosen.value,
        best_value=best.value,
        threshold=threshold,
        standard_error=best.standard_error,
        estimate=how[best.trial],
    )


def pareto_front(tuner: Searched, *, cost: Cost = "params") -> list:
    """The completed trials no other trial beats on both the metric and the cost, cheapest first.

    Example:
        >>> front = pareto_front(getfixture("finished_search"))
        >>> len(front) >= 1
        True
    """
    _checks.one_of("cost", cost, COSTS)
    _, higher = _metric(tuner)
    found, _ = records(tuner)
    keys = non_dominated([(r.trial, r.value, r.cost(cost)) for r in found], higher_is_better=higher)
    return [tuner.oracle.get_trial(key) for key in keys]


def plot_pareto(tuner: Searched, path: PathLike, *, cost: Cost = "params") -> Path:
    """Draws every completed trial (metric against cost) with the Pareto front; writes a PNG.

    Example:
        >>> plot_pareto(getfixture("finished_search"), getfixture("tmp_path") / "p.png").suffix
        '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, higher = _metric(tuner)
    found, _ = records(tuner)
    front = set(non_dominated([(r.trial, r.value, r.cost(cost)) for r in found], higher_is_better=higher))
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    axis.scatter([r.cost(cost) for r in found], [r.value for r in found], color="lightgray", label="trials")
    on_front = sorted((r for r in found if r.trial in front), key=lambda r: r.cost(cost))
    axis.plot([r.cost(cost) for r in on_front], [r.value for r in on_front], "o-", color="C1", label="Pareto front")
    axis.set_xscale("log")
    axis.set_xlabel(cost)
    axis.set_ylabel(metric)
    axis.set_title("metric against cost")
    axis.legend(fontsize=8)
    return save_figure(figure, path)
