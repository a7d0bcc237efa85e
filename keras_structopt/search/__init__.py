"""Choosing depth and width with evidence: tuners with learning curves, cross-validated trials,
budgets, cost-aware objectives and no duplicates; the simplest model within noise; the
Pareto front. No TFMOT, no tf_keras: this package works on Keras Tuner and Keras 3 only."""

from keras_structopt.search.curves import CurveRecorder, learning_curves, plot_learning_curves
from keras_structopt.search.select import (
    Record,
    Selection,
    non_dominated,
    pareto_front,
    plot_pareto,
    select_simplest,
    simplest_within,
)
from keras_structopt.search.tuners import StructuralMixin, rejected_candidates, tuner

__all__ = [
    "CurveRecorder",
    "Record",
    "Selection",
    "StructuralMixin",
    "learning_curves",
    "non_dominated",
    "pareto_front",
    "plot_learning_curves",
    "plot_pareto",
    "rejected_candidates",
    "select_simplest",
    "simplest_within",
    "tuner",
]
