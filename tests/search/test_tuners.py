"""The structural tuners on real data (digits, breast cancer), on tiny budgets."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

import keras_structopt as kso
from keras_structopt.errors import ConfigurationError
from keras_structopt.search import learning_curves, pareto_front, rejected_candidates, select_simplest
from keras_structopt.search._curves import read_curves
from tests.conftest import REPOSITORY, assert_all_completed


def _dense(**kwargs):
    options = dict(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16, 32], connection="plain",
                   dropout=0.0, learning_rate=1e-2, seed=0)
    options.update(kwargs)
    return kso.DenseHyperModel(**options)


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory, digits):
    (x, y), test = digits.train, digits.test
    search = kso.search.tuner(
        keras_tuner.RandomSearch, _dense(), objective="val_accuracy", max_trials=2, seed=3,
        folds=StratifiedKFold(3, shuffle=True, random_state=0),
        directory=tmp_path_factory.mktemp("cv"), project_name="digits",
    )
    search.search(x, y, epochs=3, batch_size=32, verbose=0)
    return search, test


def test_cross_validated_trials_keep_each_fold_and_report_their_mean(cross_validated, capsys):
    search, _ = cross_validated
    assert_all_completed(search, expected=2)
    for trial in search.oracle.trials.values():
        folds = [trial.metrics.get_best_value(f"val_accuracy_fold_{k}") for k in range(3)]
        # The oracle's objective is the mean of the folds' best values, and nothing else.
        assert trial.metrics.get_best_value("val_accuracy") == pytest.approx(np.mean(folds), abs=1e-6)
        assert trial.metrics.get_best_value("val_accuracy_fold_std") == pytest.approx(np.std(folds), abs=1e-6)
        assert all(0.0 < f <= 1.0 for f in folds)
        curves = read_curves(search, trial.trial_id)
        assert sorted(run["fold"] for run in curves) == [0, 1, 2]
        assert all(len(run["epochs"]) == 3 for run in curves)
    search.results_summary(1)
    out = capsys.readouterr().out
    assert "val_accuracy_fold_std:" in out and "val_accuracy_fold_2:" in out


def test_refit_on_all_data_or_best_fold(cross_validated):
    search, (x_test, y_test) = cross_validated
    best = search.oracle.get_best_trials(1)[0]
    model = search.get_best_models(1)[0]
    refit = os.path.join(search.project_dir, f"trial_{best.trial_id}", "refit.weights.h5")
    assert os.path.exists(refit)
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    assert accuracy > 0.8  # three epochs on 1,078 images
    # A second call reads the refit weights instead of training again.
    again = search.get_best_models(1)[0]
    np.testing.assert_array_equal(again.predict(x_test[:5], verbose=0), model.predict(x_test[:5], verbose=0))
    search.refit = "best_fold"
    try:
        fold_model = search.get_best_models(1)[0]
    finally:
        search.refit = "all"
    fold_accuracy = float(np.mean(np.argmax(fold_model.predict(x_test, verbose=0), -1) == y_test))
    assert fold_accuracy > 0.7


@pytest.mark.parametrize("splitter", ["group", "time"])
def test_group_and_time_series_splitters(tmp_path, small_digits, splitter):
    (x, y), _, _ = small_digits
    groups = np.arange(len(x)) % 4
    folds = GroupKFold(2) if splitter == "group" else TimeSeriesSplit(2)
    search = kso.search.tuner(keras_tuner.RandomSearch, _dense(), objective="val_accuracy", max_trials=1,
                              folds=folds, directory=tmp_path, project_name=splitter)
    extra = {"groups": groups} if splitter == "group" else {}
    search.search(x, y, epochs=1, batch_size=32, verbose=0, **extra)
    trial = next(iter(search.oracle.trials.values()))
    assert trial.metrics.exists("val_accuracy_fold_1") and not trial.metrics.exists("val_accuracy_fold_2")


def test_data_that_cannot_be_split_is_refused_before_training(tmp_path, small_digits):
    (x, y), validation, _ = small_digits

    def make(**kwargs):
        return kso.search.tuner(keras_tuner.RandomSearch, _dense(), objective="val_accuracy", max_trials=1,
                                directory=tmp_path, project_name="refused", overwrite=True, **kwargs)

    search = make(folds=KFold(3))
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(32)
    with pytest.raises(ConfigurationError, match="tf.data.Dataset has no known length"):
        search.search(dataset, epochs=1)
    with pytest.raises(ConfigurationError, match=r"batch_size=64.*part of 30 examples"):
        make(folds=KFold(10)).search(x, y, epochs=1, batch_size=64)
    with pytest.raises(ConfigurationError, match="validation_data"):
        search.search(x, y, validation_data=validation, epochs=1)
    with pytest.raises(ConfigurationError, match="GroupKFold can split"):
        make(folds=GroupKFold(2)).search(x, y, epochs=1)
    with pytest.raises(ConfigurationError, match="scikit-learn splitter.*folds=3"):
        make(folds=3)
    with pytest.raises(ConfigurationError, match="refit"):
        make(folds=KFold(2), refit="last")
    with pytest.raises(ConfigurationError, match="cost"):
        make(cost="latency")
    with pytest.raises(ConfigurationError, match="max_params"):
        make(max_params=0)
    assert not any(os.scandir(os.path.join(tmp_path, "refused"))) if os.path.exists(
        os.path.join(tmp_path, "refused")) else True
    assert not list(tmp_path.rglob("trial_*"))  # no trial was started


def test_params_budget_with_bayesian_optimization_on_breast_cancer(tmp_path):
    data = load_breast_cancer()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype("float32")
    y = data.target.astype("float32")
    hypermodel = kso.DenseHyperModel(input_shape=(30,), task="binary", num_layers=(1, 3), units=(4, 64),
                                      connection=("plain", "residual"), dropout=0.0, learning_rate=1e-2, seed=0)
    search = kso.search.tuner(keras_tuner.BayesianOptimization, hypermodel, objective="val_accuracy",
                              max_trials=5, num_initial_points=2, seed=2, max_params=600,
                              directory=tmp_path, project_name="cancer")
    search.search(x[:400], y[:400], validation_data=(x[400:], y[400:]), epochs=2, verbose=0)
    assert_all_completed(search, expected=5)
    for trial in search.oracle.trials.values():
        assert hypermodel.architecture(trial.hyperparameters.copy()).count_params() <= 600
    refused = rejected_candidates(search)
    assert refused and all("over max_params=600" in r["reason"] for r in refused)
    assert search.oracle.get_best_trials(1)[0].score > 0.85


def test_macs_budget_with_a_conv_space_and_an_impossible_budget(tmp_path, digits):
    x, y = kso.data.load_digits_split("image", seed=0).train
    hypermodel = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, num_stages=(1, 2), blocks_per_stage=1,
                                    filters=[4, 8, 16], block_type="plain", dropout=0.0, learning_rate=1e-2,
                                    seed=0, design_rules=False)
    # Of the space's 12 networks, 6 need at most 10,000 MACs: the search trains exactly those.
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=8,
                              seed=1, max_macs=10_000, directory=tmp_path, project_name="conv")
    search.search(x[:300], y[:300], validation_split=0.25, epochs=1, verbose=0)
    assert_all_completed(search, expected=6)
    specs = [hypermodel.architecture(t.hyperparameters.copy()) for t in search.oracle.trials.values()]
    assert all(spec.count_macs() <= 10_000 for spec in specs)
    assert sorted(spec.widths for spec in specs) == [(4,), (4, 4), (4, 8), (8,), (8, 4), (16,)]
    assert any("over max_macs=10,000" in r["reason"] for r in rejected_candidates(search))
    impossible = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=3,
                                  max_params=10, directory=tmp_path, project_name="impossible")
    with pytest.raises(ConfigurationError, match=r"max_params=10.*over max_params=10"):
        impossible.search(x[:300], y[:300], validation_split=0.25, epochs=1, verbose=0)


def _sequences(n=96):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6, 3)).astype("float32")
    y = (x[:, :, 0].mean(1) > 0).astype("int32")
    return x, y


@pytest.mark.parametrize("base", [keras_tuner.GridSearch, keras_tuner.RandomSearch])
def test_equal_networks_are_one_trial(tmp_path, base):
    # Four value sets, two networks: a residual add never applies to a single recurrent
    # layer that returns only its last state, so "residual" is the plain network.
    hypermodel = kso.RecurrentHyperModel(input_shape=(6, 3), outputs=2, cell="gru", num_layers=1, units=[4, 8],
                                         bidirectional=False, connection=("plain", "residual"), reduce="last",
                                         dropout=0.0, learning_rate=1e-2, seed=0)
    x, y = _sequences()
    search = kso.search.tuner(base, hypermodel, objective="val_accuracy", max_trials=4, seed=1,
                              directory=tmp_path, project_name="dedupe")
    search.search(x, y, validation_split=0.25, epochs=1, verbose=0)
    trials = list(search.oracle.trials.values())
    widths = sorted(hypermodel.architecture(t.hyperparameters.copy()).widths for t in trials)
    assert widths == [(4,), (8,)]
    assert {hypermodel.architecture(t.hyperparameters.copy()).connection for t in trials} == {"plain"}
    assert any("same network" in r["reason"] for r in rejected_candidates(search))
    if base is keras_tuner.GridSearch:  # one width: two value sets, one network, trained twice without it
        one_width = kso.RecurrentHyperModel.from_config({**hypermodel.get_config(), "units": 4})
        plain = kso.search.tuner(base, one_width, objective="val_accuracy", max_trials=4, deduplicate=False,
                                 directory=tmp_path, project_name="no-dedupe")
        plain.search(x, y, validation_split=0.25, epochs=1, verbose=0)
        assert len(plain.oracle.trials) == 2  # what Keras Tuner alone does


def test_hyperband_cross_validated_with_learning_curves(tmp_path, small_digits):
    (x, y), _, _ = small_digits
    search = kso.search.tuner(keras_tuner.Hyperband, _dense(), objective="val_accuracy", max_epochs=2, factor=2,
                              hyperband_iterations=1, seed=4, folds=KFold(2, shuffle=True, random_state=0),
                              max_params=1500, directory=tmp_path, project_name="hyperband")
    search.search(x, y, batch_size=32, verbose=0)
    assert_all_completed(search)
    trials = list(search.oracle.trials.values())
    continued = [t for t in trials if "tuner/trial_id" in t.hyperparameters.values]
    assert continued, "Hyperband continued no trial"
    for trial in continued:
        epochs = trial.hyperparameters.values["tuner/epochs"] - trial.hyperparameters.values["tuner/initial_epoch"]
        runs = read_curves(search, trial.trial_id)
        assert sorted(r["fold"] for r in runs) == [0, 1]
        assert all(len(r["epochs"]) == epochs for r in runs)
    for trial in trials:
        assert _dense().architecture(trial.hyperparameters.copy()).count_params() <= 1500
    rows = learning_curves(search)
    assert {r["fold"] for r in rows} == {0, 1}


def test_cost_aware_objective_combines_metric_and_parameters(tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    search = kso.search.tuner(keras_tuner.RandomSearch, _dense(), objective="val_accuracy", max_trials=3, seed=5,
                              cost="params", cost_weight=0.02, directory=tmp_path, project_name="cost")
    search.search(x, y, validation_data=validation, epochs=2, verbose=0)
    assert_all_completed(search, expected=3)
    assert search.oracle.objective.name == "val_accuracy"  # the objective stays the metric; the score trades it
    trials = sorted(search.oracle.trials.values(), key=lambda t: t.trial_id)
    reference = trials[0].metrics.get_best_value("params")
    for trial in trials:
        params = _dense().architecture(trial.hyperparameters.copy()).count_params()
        assert trial.metrics.get_best_value("params") == params
        expected = trial.metrics.get_best_value("val_accuracy") - 0.02 * math.log2(params / reference)
        assert trial.score == pytest.approx(expected, abs=1e-6)
        assert trial.metrics.get_best_value("cost_aware_score") == pytest.approx(expected, abs=1e-6)
    # Selection and the front read the metric itself, not the combined score.
    front = pareto_front(search)
    values = [t.metrics.get_best_value("val_accuracy") for t in front]
    assert values == sorted(values)  # cheapest first, each better than the cheaper ones


def test_latency_budget_rejects_before_training(tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    search = kso.search.tuner(keras_tuner.RandomSearch, _dense(), objective="val_accuracy", max_trials=1,
                              max_latency_ms=1e-6, directory=tmp_path, project_name="latency")
    search.search(x, y, validation_data=validation, epochs=1, verbose=0)
    trial = next(iter(search.oracle.trials.values()))
    note = json.loads((tmp_path / "latency" / f"trial_{trial.trial_id}" / "structopt.json").read_text())
    assert "over max_latency_ms" in note["rejected"] and note["latency_ms"] > 0
    assert trial.score == -1e9
    assert not (tmp_path / "latency" / f"trial_{trial.trial_id}" / "curves.json").exists()  # never trained
    with pytest.raises(ConfigurationError, match="at least one completed trial"):
        select_simplest(search)


def test_selection_on_a_finished_search(finished_search, tmp_path):
    rows = learning_curves(finished_search)
    trials = [t for t in finished_search.oracle.trials.values() if t.status == "COMPLETED"]
    metrics = {r["metric"] for r in rows}
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= metrics
    assert len(rows) == len(trials) * 2 * len(metrics)  # every trial, both epochs, every metric
    choice = select_simplest(finished_search)
    best = finished_search.oracle.get_best_trials(1)[0]
    assert choice.best_value == pytest.approx(best.score)
    assert choice.architecture.count_params() <= _dense(num_layers=(1, 3)).architecture(
        best.hyperparameters.copy()).count_params()
    assert choice.value >= choice.threshold - 1e-12
    assert choice.standard_error == pytest.approx(math.sqrt(best.score * (1 - best.score) / 359), rel=1e-6)
    assert "binomial" in choice.estimate
    assert select_simplest(finished_search, rule="best").trial.trial_id in {
        t.trial_id for t in trials if t.score == best.score}
    png = kso.search.plot_learning_curves(finished_search, tmp_path / "curves.png", group_by="depth")
    assert png.stat().st_size > 5000
    pareto = kso.search.plot_pareto(finished_search, tmp_path / "pareto.png")
    assert pareto.stat().st_size > 5000


KILLED_SEARCH = textwrap.dedent("""
    import os, signal, sys
    import keras, keras_tuner
    from sklearn.model_selection import KFold
    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    directory, log, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Log(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            with open(log, "a") as f:
                f.write("start\\n")
            if sum(1 for _ in open(log)) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    x, y = load_digits_split("flat", seed=0).train
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16],
                                      connection="plain", dropout=0.0, learning_rate=[1e-2, 1e-5], seed=0)
    if sys.argv[4] == "cv":
        search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=2,
                                  seed=3, folds=KFold(3, shuffle=True, random_state=0), directory=directory,
                                  project_name="cv", overwrite=False)
        search.search(x[:240], y[:240], epochs=1, batch_size=32, verbose=0, callbacks=[Log()])
    elif sys.argv[4] in ("grid", "plain-grid"):
        make = keras_tuner.GridSearch if sys.argv[4] == "plain-grid" else (
            lambda *a, **k: kso.search.tuner(keras_tuner.GridSearch, *a, **k))
        search = make(hypermodel, objective="val_accuracy", max_trials=5, directory=directory, project_name="grid",
                      overwrite=False)
        search.search(x[:240], y[:240], validation_data=(x[240:400], y[240:400]), epochs=1, batch_size=32,
                      verbose=0, callbacks=[Log()])
    elif sys.argv[4] == "optuna":
        search = kso.search.tuner(kso.search.OptunaSearch, hypermodel, objective="val_accuracy", max_trials=5,
                                  seed=0, pruner="median", directory=directory, project_name="optuna",
                                  overwrite=False)
        search.search(x[:240], y[:240], validation_data=(x[240:400], y[240:400]), epochs=2, batch_size=32,
                      verbose=0, callbacks=[Log()])
    else:
        search = kso.search.tuner(kso.search.EvolutionarySearch, hypermodel, objective="val_accuracy",
                                  max_trials=5, population_size=2, sample_size=2, seed=0, directory=directory,
                                  project_name="evolution", median_stopping=kso.search.MedianStopping(1, 2))
        search.search(x[:240], y[:240], validation_data=(x[240:400], y[240:400]), epochs=2, batch_size=32,
                      verbose=0, callbacks=[Log()])
    print("trials", sorted(search.oracle.trials), [t.status for t in search.oracle.trials.values()])
""")


def _run_killable(tmp_path, kill_at, kind):
    script = tmp_path / "search.py"
    script.write_text(KILLED_SEARCH)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPOSITORY)
    return subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path / "trainings.log"),
                           str(kill_at), kind], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_cross_validated_search_loses_no_trial_and_no_fold(tmp_path):
    # Killed when the fifth fold training starts: trial 1 (three folds) and trial 2's first
    # fold are finished.
    first = _run_killable(tmp_path, 5, "cv")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    project = tmp_path / "cv"
    finished = {p: p.stat().st_mtime_ns for p in project.rglob("fold_*.json")}
    assert len(finished) == 4
    (tmp_path / "trainings.log").write_text("")
    second = _run_killable(tmp_path, 0, "cv")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "trainings.log").read_text().count("start") == 2  # only trial 2's last two folds
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime  # finished folds untouched
    assert "trials ['0', '1'] ['COMPLETED', 'COMPLETED']" in second.stdout, second.stdout
    for trial in json.loads((project / "oracle.json").read_text())["end_order"]:
        metrics = json.loads((project / f"trial_{trial}" / "trial.json").read_text())["metrics"]["metrics"]
        assert all(f"val_accuracy_fold_{k}" in metrics for k in range(3))


def kill_at_third_trial_and_resume(tmp_path, kind):
    """Killed when the third of five trials starts training, then resumed: the project directory.

    Asserts that the two finished trials are kept untouched, and that the resumed run trains
    trials 3-5 only and completes all five."""
    first = _run_killable(tmp_path, 3, kind)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    project = tmp_path / kind
    finished = {p: p.read_text() for p in project.glob("trial_*/trial.json") if '"COMPLETED"' in p.read_text()}
    assert len(finished) == 2
    (tmp_path / "trainings.log").write_text("")
    second = _run_killable(tmp_path, 0, kind)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "trainings.log").read_text().count("start") == 3  # trials 3-5; none trained twice
    for path, text in finished.items():
        assert path.read_text() == text  # finished trials untouched
    assert "trials ['0', '1', '2', '3', '4'] ['COMPLETED'" in second.stdout, second.stdout
    return project


@pytest.mark.slow
def test_killed_evolution_with_median_stopping_loses_no_trial(tmp_path):
    kill_at_third_trial_and_resume(tmp_path, "evolution")


@pytest.mark.slow
def test_killed_grid_search_resumes_where_keras_tuner_raises_key_error(tmp_path):
    # Keras Tuner saves no grid walk: a resumed GridSearch raises KeyError. Killed when the third
    # trial starts; resumed, it trains that trial and the rest, and visits what an uninterrupted run does.
    first = _run_killable(tmp_path, 3, "grid")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    (tmp_path / "trainings.log").write_text("")
    second = _run_killable(tmp_path, 0, "grid")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "trainings.log").read_text().count("start") == 3  # trial 3 again, then 4 and 5
    whole = tmp_path / "whole"
    whole.mkdir()
    assert _run_killable(whole, 0, "grid").returncode == 0

    def visited(directory):
        return sorted(json.dumps(json.loads(p.read_text())["hyperparameters"]["values"], sort_keys=True)
                      for p in (directory / "grid").glob("trial_*/trial.json"))

    assert len(visited(tmp_path)) == 5 and visited(tmp_path) == visited(whole)
