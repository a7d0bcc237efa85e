"""Benchmark tables: searching (see bench/tables/_base.py).

`bench/search.py` and `bench/search_cost.py` write the JSON read here; every mean and standard
deviation is taken over the seeds' rows as those scripts take it (the population std, numpy's default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from statistics import fmean, median, pstdev
from typing import Any

from ._base import load, markdown, table

MINUS = "\u2212"
TRANSFER_ARMS = {"cold": "cold", "warm": "warm start", "warm + inherit": "warm start + inheritance"}
STRATEGIES = ("random", "bayesian", "evolution")


def _by_arm(rows: Iterable[dict[str, Any]], key: str = "arm") -> dict[str, list[dict[str, Any]]]:
    """The rows grouped by their `key` (the arm), in the order the arms first appear."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def _values(rows: list[dict[str, Any]], field: str) -> list[float]:
    """The `field` of every row (one per seed)."""
    return [row[field] for row in rows]


def _mean_std(rows: list[dict[str, Any]], field: str, digits: int, std_digits: int | None = None) -> str:
    """'mean ± std' of `field` over the rows."""
    values = _values(rows, field)
    return f"{fmean(values):.{digits}f} ± {pstdev(values):.{digits if std_digits is None else std_digits}f}"


def _signed(value: float, digits: int) -> str:
    """`value` with its sign, a minus written as U+2212."""
    return f"{value:+.{digits}f}".replace("-", MINUS)


def _short(value: float) -> str:
    """`value` to one decimal, without a trailing '.0'."""
    return f"{round(value, 1):g}"


@table("search_evidence")
def search_evidence(results: Path) -> str:
    """Each arm of the depth-and-width search: test accuracy and parameters against accuracy only."""
    labels = {"accuracy only": "accuracy only (hold-out)", "one-SE rule": "one-SE rule on that search",
              "cost-aware": 'cost-aware (`cost="params"`)', "max_params=5000": "`max_params=5000`",
              "cross-validated": "cross-validated (3 folds, refit)"}
    arms = _by_arm(load(results, "search.json")["evidence"]["rows"])
    base = arms["accuracy only"]
    base_accuracy, base_params = fmean(_values(base, "test_accuracy")), fmean(_values(base, "params"))
    rows = []
    for arm, label in labels.items():
        found = arms[arm]
        accuracy, params = fmean(_values(found, "test_accuracy")), fmean(_values(found, "params"))
        points = "—" if found is base else f"{_signed(100 * (accuracy - base_accuracy), 2)} pts"
        rows.append([label, _mean_std(found, "test_accuracy", 4), points, f"{params:,.0f}",
                     f"{100 * params / base_params:.0f} %", f"{max(_values(found, 'largest_trained_params')):,}"])
    header = ["arm", f"test accuracy (mean ± std over {len(base)} seeds)", "vs accuracy only", "parameters (mean)",
              "vs accuracy only", "largest trained"]
    return markdown(header, rows, "lrrrrr")


def _transfer(results: Path, file: str, with_median: bool) -> str:
    """Trials (and epochs) each transfer arm of `file` needs to reach the cold search's best."""
    arms = _by_arm(load(results, file)["transfer"]["rows"])
    rows = []
    for arm, label in TRANSFER_ARMS.items():
        found = arms[arm]
        middle = [f"{median(_values(found, 'trials_to_cold_best')):g}"] if with_median else []
        rows.append([label, _mean_std(found, "trials_to_cold_best", 1), *middle,
                     f"{fmean(_values(found, 'epochs_to_cold_best')):.1f}",
                     f"{fmean(_values(found, 'best_val_accuracy')):.4f}"])
    header = ["arm", "trials to the cold best (mean ± std)", *(["median"] if with_median else []), "epochs to it",
              "best val accuracy"]
    return markdown(header, rows, "l" + "r" * (len(header) - 1))


@table("search_transfer")
def search_transfer(results: Path) -> str:
    """Transfer from digits 0-4 to 5-9, 10 epochs per trial: trials to the cold search's best."""
    return _transfer(results, "search.json", with_median=True)


@table("search_transfer_curve")
def search_transfer_curve(results: Path) -> str:
    """Transfer, 10 epochs per trial: the best validation accuracy after the first k trials."""
    trials = (1, 2, 3, 4, 5, 10)
    arms = _by_arm(load(results, "search.json")["transfer"]["rows"])
    rows = [[label, *(f"{fmean(_values(arms[arm], f'best_after_{k}')):.4f}" for k in trials)]
            for arm, label in TRANSFER_ARMS.items()]
    return markdown(["arm", *map(str, trials)], rows, "l" + "r" * len(trials))


@table("search_transfer_3_epochs")
def search_transfer_3_epochs(results: Path) -> str:
    """Transfer with 3 epochs per trial: trials to the cold search's best."""
    return _transfer(results, "search_transfer_3_epochs.json", with_median=False)


@table("search_inherit")
def search_inherit(results: Path) -> str:
    """Validation accuracy after each epoch on digits 5-9, from scratch or inheriting a 0-4 donor's weights."""
    labels = {"cold": "from scratch", "inherit with head": "inherited, the donor's head too",
              "inherit, fresh head": "inherited, a fresh head (the default)"}
    arms = _by_arm(load(results, "search_transfer_3_epochs.json")["inherit"]["rows"])
    rows = [[label, *(_mean_std(arms[arm], f"val_accuracy_epoch_{epoch}", 3, 2) for epoch in (1, 2, 3))]
            for arm, label in labels.items()]
    return markdown(["start", "after 1 epoch", "after 2", "after 3"], rows, "lrrr")


@table("search_median_stopping")
def search_median_stopping(results: Path) -> str:
    """A random search without and with median stopping: best accuracy, epochs, trials stopped, seconds."""
    labels = {"off": "off", "median": "median stopping"}
    arms = _by_arm(load(results, "search.json")["stopping"]["rows"], key="stopping")
    full = fmean(_values(arms["off"], "epochs_trained"))
    rows = []
    for arm, label in labels.items():
        epochs = fmean(_values(arms[arm], "epochs_trained"))
        share = "" if arm == "off" else f" ({100 * epochs / full:.0f} %)"
        rows.append([label, _mean_std(arms[arm], "best_val_accuracy", 4), f"{epochs:.0f}{share}",
                     _short(fmean(_values(arms[arm], "trials_stopped"))),
                     f"{fmean(_values(arms[arm], 'seconds')):.0f}"])
    header = ["arm", "best val accuracy (mean ± std)", "epochs trained (mean)", "trials stopped", "seconds"]
    return markdown(header, rows, "lrrrr")


def _strategies(results: Path, part: str) -> str:
    """Best validation accuracy of each strategy after 10, 20 and 30 trials, and its minutes per search."""
    arms = _by_arm(load(results, "search.json")[part]["rows"], key="strategy")
    rows = [[arm, *(_mean_std(arms[arm], f"best_at_{n}", 4) for n in (10, 20, 30)),
             f"{fmean(_values(arms[arm], 'seconds')) / 60:.1f}"] for arm in STRATEGIES]
    header = ["strategy", *(f"best after {n} trials" for n in (10, 20, 30)), "minutes per search"]
    return markdown(header, rows, "lrrrr")


@table("search_strategies")
def search_strategies(results: Path) -> str:
    """Random search, Bayesian optimisation and evolution on the dense default space."""
    return _strategies(results, "strategies")


@table("search_strategies_conv")
def search_strategies_conv(results: Path) -> str:
    """Random search, Bayesian optimisation and evolution on the convolutional default space."""
    return _strategies(results, "strategies_conv")


@table("search_cost")
def search_cost(results: Path) -> str:
    """What a search costs: hand-written models, one-shot and Keras Tuner searches, in trainings."""
    labels = {("mnist1d", "paper_mlp"): "the paper's MLP, once", ("mnist1d", "paper_cnn"): "the paper's CNN, once",
              ("mnist1d", "plain_conv1d"): "a plain 4-layer BatchNorm Conv1D, once",
              ("mnist1d", "one-shot"): "one-shot (`Conv1DHyperModel`, `max_params=10_000`)",
              ("mnist1d", "random"): "random search, the one-shot's wall time",
              ("mnist1d", "hyperband"): "Hyperband, the one-shot's wall time",
              ("digits", "digits_convnet"): "a two-stage BatchNorm convnet, once",
              ("digits", "random 20"): "random search, 20 trials (`ConvHyperModel`)",
              ("digits", "one-shot"): "one-shot (`ConvHyperModel`)"}
    rows = [[row["data"], labels[row["data"], row["arm"]], f"{row['params']:,}", f"{row['test_accuracy']:.3f}",
             f"{row['seconds']:.0f}", f"{row['trainings']:.1f}", row["trials"]]
            for row in load(results, "search_cost_one_shot.json")["rows"]]
    return markdown(["data", "arm", "params", "test accuracy", "seconds", "trainings", "trials"], rows, "llrrrrr")


@table("search_prescreen")
def search_prescreen(results: Path) -> str:
    """A 12-trial random search on MNIST-1D with and without the zero-cost screen, per seed."""
    rows = []
    for row in load(results, "search_cost.json")["rows"]:
        if match := re.fullmatch(r"(random(?: \+ screen)?) s(\d+)", row["arm"]):
            rows.append([match[1], match[2], f"{row['best_validation']:.3f}", f"{row['mean_validation']:.3f}",
                         f"{row['test_accuracy']:.3f}", f"{row['params']:,}", f"{row['seconds']:.0f}"])
    header = ["arm", "seed", "best validation", "mean validation", "test accuracy of the best", "params", "seconds"]
    return markdown(header, rows, "lrrrrrr")
