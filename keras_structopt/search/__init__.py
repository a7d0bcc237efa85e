"""Choosing depth and width with evidence, and searching for it cheaply.

`tuner(base, hypermodel, ...)` makes any Keras Tuner tuner structural: learning curves,
cross-validated trials, budgets, cost-aware scores, no duplicate networks, median
stopping, weight inheritance, diverged trials failed at once and their region avoided.
`OneShotSearch` trains one weight-sharing supernet and reads every trial off it.
Around them: the simplest model within noise and the Pareto front (on any Keras Tuner
project), regularized evolution, Optuna's samplers and pruners, Ray Tune, Keras Tuner's
distributed mode under a launcher, warm start, and a finished search read back from its
directory. No TFMOT and no tf_keras: this package works on Keras Tuner and Keras 3 only.

Example:
    >>> import keras_tuner, keras_structopt as kso
    >>> search = kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(input_shape=(64,), outputs=10),
    ...     objective="val_accuracy", max_trials=2, max_params=5000,
    ...     directory=getfixture("tmp_path"), project_name="doc")
    >>> type(search).__name__
    'StructuralRandomSearch'
"""

from keras_structopt.search._curves import learning_curves, plot_learning_curves
from keras_structopt.search._distributed import LaunchResult, launch
from keras_structopt.search._evolution import EvolutionarySearch, EvolutionOracle
from keras_structopt.search._hparams import write_hparams
from keras_structopt.search._one_shot import OneShotSearch
from keras_structopt.search._optuna import OptunaOracle, OptunaSearch
from keras_structopt.search._oracle import StructuralOracle, structural_oracle
from keras_structopt.search._project import Project, write_search_report
from keras_structopt.search._ranking import RankingMetrics
from keras_structopt.search._ray import RaySearch, ray_search
from keras_structopt.search._select import Selection, pareto_front, plot_pareto, select_simplest
from keras_structopt.search._stopping import MedianStopping
from keras_structopt.search._transfer import inherit_weights, warm_start
from keras_structopt.search._tuner import StructuralTuner, rejected_candidates, tuner

__all__ = [
    "EvolutionOracle",
    "EvolutionarySearch",
    "LaunchResult",
    "MedianStopping",
    "OneShotSearch",
    "OptunaOracle",
    "OptunaSearch",
    "Project",
    "RankingMetrics",
    "RaySearch",
    "Selection",
    "StructuralOracle",
    "StructuralTuner",
    "inherit_weights",
    "launch",
    "learning_curves",
    "pareto_front",
    "plot_learning_curves",
    "plot_pareto",
    "ray_search",
    "rejected_candidates",
    "select_simplest",
    "structural_oracle",
    "tuner",
    "warm_start",
    "write_hparams",
    "write_search_report",
]
