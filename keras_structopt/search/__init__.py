"""Choosing depth and width with evidence, and searching for it cheaply.

Tuners with learning curves, cross-validated trials, budgets, cost-aware objectives and no
duplicates; the simplest model within noise; the Pareto front; regularized evolution;
median stopping; Optuna's samplers and pruners as an oracle; Ray Tune; Keras Tuner's
distributed mode under a launcher; diverging trials failed at once and their region
avoided; warm start from an earlier search and weight inheritance from donors; each
trial's structure in TensorBoard's HParams dashboard. No
TFMOT, no tf_keras: this package works on Keras Tuner and Keras 3 only."""

from keras_structopt.search.curves import CurveRecorder, learning_curves, plot_learning_curves
from keras_structopt.search.distributed import LaunchResult, is_worker, launch
from keras_structopt.search.evolution import EvolutionarySearch, EvolutionOracle, mutate
from keras_structopt.search.failures import NonFiniteStopper
from keras_structopt.search.hparams import structure_columns, write_hparams
from keras_structopt.search.optuna_search import OptunaOracle, OptunaPruning, OptunaSearch, suggest_values
from keras_structopt.search.project import Project, trial_rows, write_search_report
from keras_structopt.search.ranking import RankingMetrics
from keras_structopt.search.ray_tune import RaySearch, ray_search
from keras_structopt.search.select import (
    Record,
    Selection,
    non_dominated,
    pareto_front,
    plot_pareto,
    select_simplest,
    simplest_within,
)
from keras_structopt.search.stopping import MedianStopper, MedianStopping, should_stop
from keras_structopt.search.transfer import adapt, inherit_weights, warm_start
from keras_structopt.search.tuners import StructuralMixin, rejected_candidates, tuner

__all__ = [
    "CurveRecorder",
    "EvolutionOracle",
    "EvolutionarySearch",
    "LaunchResult",
    "MedianStopper",
    "MedianStopping",
    "NonFiniteStopper",
    "OptunaOracle",
    "OptunaPruning",
    "OptunaSearch",
    "Project",
    "RankingMetrics",
    "RaySearch",
    "Record",
    "Selection",
    "StructuralMixin",
    "adapt",
    "inherit_weights",
    "is_worker",
    "launch",
    "learning_curves",
    "mutate",
    "non_dominated",
    "pareto_front",
    "plot_learning_curves",
    "plot_pareto",
    "ray_search",
    "rejected_candidates",
    "select_simplest",
    "should_stop",
    "simplest_within",
    "structure_columns",
    "suggest_values",
    "trial_rows",
    "tuner",
    "warm_start",
    "write_hparams",
    "write_search_report",
]
