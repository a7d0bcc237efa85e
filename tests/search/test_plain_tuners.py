"""The helpers read any Keras Tuner tuner's project; the cost-aware score follows Keras Tuner's direction."""

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt.search import learning_curves, pareto_front, select_simplest, warm_start
from tests.conftest import assert_all_completed


def _hypermodel(**kwargs):
    return kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16, 32],
                               connection="plain", dropout=0.0, learning_rate=1e-2, seed=0, **kwargs)


@pytest.fixture(scope="module")
def plain_search(tmp_path_factory, digits):
    """A plain `keras_tuner.RandomSearch` over a keras-structopt HyperModel: 3 trials x 2 epochs."""
    (x, y), validation = digits.train, digits.validation
    search = keras_tuner.RandomSearch(_hypermodel(), objective="val_accuracy", max_trials=3, seed=2,
                                      directory=tmp_path_factory.mktemp("plain"), project_name="digits")
    search.search(x[:500], y[:500], validation_data=validation, epochs=2, batch_size=64, verbose=0)
    assert_all_completed(search, expected=3)
    return search


def test_learning_curves_of_a_plain_keras_tuner_search(plain_search):
    rows = learning_curves(plain_search)
    metrics = {r["metric"] for r in rows}
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= metrics
    assert len(rows) == 3 * 2 * len(metrics)  # one row per trial, epoch and metric
    for trial in plain_search.oracle.trials.values():
        spec = plain_search.hypermodel.architecture(trial.hyperparameters.copy())
        assert {r["params"] for r in rows if r["trial"] == trial.trial_id} == {spec.count_params()}
        best = max(r["value"] for r in rows if r["trial"] == trial.trial_id and r["metric"] == "val_accuracy")
        assert best == pytest.approx(trial.score)


def test_selection_and_the_front_of_a_plain_keras_tuner_search(plain_search, tmp_path):
    front = pareto_front(plain_search)
    assert front and [t.trial_id for t in front] == sorted(
        (t.trial_id for t in front),
        key=lambda i: plain_search.hypermodel.architecture(plain_search.oracle.trials[i].hyperparameters.copy())
        .count_params())
    choice = select_simplest(plain_search)
    assert choice.trial.trial_id in plain_search.oracle.trials and choice.value >= choice.threshold - 1e-12
    files = kso.search.write_search_report(plain_search.project_dir, tmp_path / "report")
    assert {p.name for p in files} >= {"trials.json", "trials.md"}


def test_warm_start_needs_keras_structopts_oracle(plain_search, finished_search):
    with pytest.raises(kso.ConfigurationError, match=r"Expected a tuner made by keras_structopt\.search\.tuner\(\.\.\.\)"
                                                     r".*Received: a RandomSearch whose oracle is a RandomSearchOracle"):
        warm_start(plain_search, finished_search.project_dir)


def test_a_search_without_curves_is_an_error_not_an_empty_table(tmp_path, digits):
    def build(hp):  # a plain Keras model: Keras Tuner keeps only each trial's best epoch
        return _hypermodel().build(hp)

    (x, y), validation = digits.train, digits.validation
    search = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=1, seed=1, directory=tmp_path,
                                      project_name="bare")
    search.search(x[:200], y[:200], validation_data=validation, epochs=1, verbose=0)
    with pytest.raises(kso.ConfigurationError, match=r"Expected trials that recorded their learning curves\. "
                                                     r"Received: 1 trials without curves\.json"):
        learning_curves(search)
    with pytest.raises(kso.ConfigurationError, match=r"Received: 1 trials, none FAILED"):
        learning_curves(search, status="FAILED")


def _finish(oracle, metrics: dict):
    """A trial created, reported and ended through the oracle's own interface (no training)."""
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, metrics)
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    return oracle.trials[trial.trial_id]


def test_the_cost_aware_score_of_an_error_prefers_the_lower_error(tmp_path):
    hypermodel = kso.DenseHyperModel(input_shape=(8,), outputs=1, task="regression", num_layers=1, units=[8, 64],
                                     connection="plain", dropout=0.0, learning_rate=1e-3)  # the grid: two widths
    search = kso.search.tuner(keras_tuner.GridSearch, hypermodel, objective="val_mae", max_trials=2, cost="params",
                              cost_weight=0.01, directory=tmp_path, project_name="mae")
    oracle = search.oracle
    assert oracle.objective.name == "val_mae" and oracle.objective.direction == "min"  # Keras Tuner's inference
    first = _finish(oracle, {"val_mae": 0.50})
    second = _finish(oracle, {"val_mae": 0.30})
    params = [hypermodel.architecture(t.hyperparameters.copy()).count_params() for t in (first, second)]
    assert params[0] != params[1]
    import math

    for trial, value, count in zip((first, second), (0.50, 0.30), params):
        assert trial.score == pytest.approx(value + 0.01 * math.log2(count / params[0]))  # an error: lower is better
        assert trial.metrics.get_best_value("cost_aware_score") == pytest.approx(trial.score)
    assert oracle.get_best_trials(1)[0].trial_id == second.trial_id  # the lower error wins: 0.3 + a small penalty
