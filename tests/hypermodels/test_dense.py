import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.hypermodels._base import trial_seed
from tests.conftest import assert_all_completed

TUNERS = {
    "random": lambda hm, **kw: keras_tuner.RandomSearch(hm, max_trials=3, **kw),
    "grid": lambda hm, **kw: keras_tuner.GridSearch(hm, max_trials=3, **kw),
    "bayesian": lambda hm, **kw: keras_tuner.BayesianOptimization(hm, max_trials=3, num_initial_points=2, **kw),
    "hyperband": lambda hm, **kw: keras_tuner.Hyperband(hm, max_epochs=3, factor=3, hyperband_iterations=1, **kw),
}


def small_space(**overrides):
    kwargs = dict(
        input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16],
        connection=["plain", "residual", "dense"], dropout=0.0, learning_rate=[3e-3], seed=0,
    )
    kwargs.update(overrides)
    return kso.DenseHyperModel(**kwargs)


@pytest.mark.parametrize("kind", sorted(TUNERS))
def test_every_keras_tuner_runs_the_space(kind, tmp_path, digits, capsys):
    train, validation, test = digits.train, digits.validation, digits.test
    tuner = TUNERS[kind](
        small_space(), objective="val_accuracy", seed=7, directory=tmp_path, project_name=kind
    )
    tuner.search(*train, validation_data=validation, epochs=3, verbose=0)
    assert_all_completed(tuner)
    best_model = tuner.get_best_models(1)[0]
    best_hp = tuner.get_best_hyperparameters(1)[0]
    spec = kso.architecture_of(best_model)
    assert spec == small_space().architecture(best_hp)
    assert best_model.count_params() == spec.count_params()
    accuracy = best_model.evaluate(*test, verbose=0)[1]
    # The trained winner, not a fresh build (0.1): 3 epochs on 1,078 digits train even the smallest
    # network of the space (8 units) past 0.8, and the test agrees with the trial's validation score.
    best_validation = tuner.oracle.get_best_trials(1)[0].metrics.get_best_value("val_accuracy")
    assert accuracy >= 0.8 and abs(accuracy - best_validation) <= 0.08, (accuracy, best_validation)
    tuner.results_summary(1)
    assert "Results summary" in capsys.readouterr().out


def test_each_layer_width_is_its_own_conditional_hyperparameter():
    hp = keras_tuner.HyperParameters()
    hm = small_space(num_layers=(1, 3), units=(8, 64))
    spec = hm.architecture(hp)
    names = {p.name for p in hp.space}
    assert {"num_layers", "block_0/units", "block_1/units", "block_2/units", "connection"} <= names
    assert spec.num_blocks == hp.get("num_layers") == 1
    # Deeper blocks are conditional on num_layers.
    conditions = {p.name: p.conditions for p in hp.space}
    assert conditions["block_0/units"] == []
    assert [c.values for c in conditions["block_2/units"]] == [[3]]


def test_grid_search_visits_each_architecture_once(tmp_path, small_digits):
    train, validation, _ = small_digits
    hm = small_space(num_layers=(1, 2), units=[8, 16], connection="plain")
    tuner = keras_tuner.GridSearch(hm, objective="val_accuracy", max_trials=50, directory=tmp_path, project_name="g")
    tuner.search(*train, validation_data=validation, epochs=1, verbose=0)
    assert_all_completed(tuner)
    specs = {hm.architecture(t.hyperparameters).to_json() for t in tuner.oracle.trials.values()}
    # depth 1: 2 widths; depth 2: 2 x 2 widths.
    assert len(specs) == len(tuner.oracle.trials) == 6


def test_resume_with_overwrite_false_keeps_finished_trials(tmp_path, small_digits):
    train, validation, _ = small_digits
    make = lambda trials: keras_tuner.RandomSearch(  # noqa: E731
        small_space(), objective="val_accuracy", max_trials=trials, seed=3,
        directory=tmp_path, project_name="resume", overwrite=False,
    )
    first = make(2)
    first.search(*train, validation_data=validation, epochs=1, verbose=0)
    finished = {t.trial_id: t.hyperparameters.values for t in first.oracle.trials.values()}
    second = make(3)
    second.search(*train, validation_data=validation, epochs=1, verbose=0)
    assert_all_completed(second, expected=3)
    for trial_id, values in finished.items():
        assert second.oracle.trials[trial_id].hyperparameters.values == values


def test_seed_zero_is_honoured_for_weights(small_digits):
    hm = small_space(seed=0)
    hp = keras_tuner.HyperParameters()
    a = hm.build(hp).get_weights()
    b = hm.build(hp).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = small_space(seed=1).build(hp).get_weights()
    assert not all(np.array_equal(x, y) for x, y in zip(a, other))
    assert trial_seed(0, {"a": 1}) != trial_seed(1, {"a": 1})


def test_tasks_compile_matching_heads(small_digits):
    hp = keras_tuner.HyperParameters()
    binary = kso.DenseHyperModel(input_shape=(64,), task="binary", num_layers=1, units=8).build(hp)
    assert binary.output_shape == (None, 1) and binary.loss == "binary_crossentropy"
    regression = kso.DenseHyperModel(input_shape=(64,), outputs=2, task="regression", num_layers=1, units=8).build(hp)
    assert regression.output_shape == (None, 2) and regression.loss == "mean_squared_error"


def test_width_multiple_rounds_every_width():
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=[10, 30], width_multiple=8)
    assert hm._units.values == [16, 32]
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=(10, 70), width_multiple=8)
    assert hm._units.values == list(range(16, 73, 8))
    assert all(w % 8 == 0 for w in hm.architecture().widths)


def test_config_round_trips():
    hm = small_space(units=(8, 32), batch_norm=[False, True])
    again = kso.DenseHyperModel.from_config(hm.get_config())
    assert again.get_config() == hm.get_config()
    hp = keras_tuner.HyperParameters()
    assert again.architecture(hp) == hm.architecture(keras_tuner.HyperParameters())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_layers": 0}, r"Expected num_layers to be an int >= 1, a list of them, or a \(min, max\) range\. Received: num_layers=0\."),
        ({"num_layers": (3, 1)}, r"Received: num_layers=\(3, 1\)\."),
        ({"units": (8, 16, 32)}, r"Use a list for a choice among values\."),
        ({"units": [8, "wide"]}, r"Expected units to be an int >= 1"),
        ({"connection": "skip"}, r"Expected connection to be a string among \['plain', 'residual', 'dense'\], a list of them\. Received: connection='skip'\."),
        ({"dropout": 1.0}, r"Expected dropout to be a float >= 0\.0 and < 1\.0"),
        ({"learning_rate": -1.0}, r"Expected learning_rate to be a float >= 1e-07"),
        ({"task": "ranking"}, r"Expected task to be one of \['multiclass', 'binary', 'regression'\]"),
        ({"outputs": None}, r"Expected outputs \(number of classes or targets\)"),
        ({"input_shape": (-1,)}, r"Expected input_shape to be a non-empty tuple"),
        ({"width_multiple": 0}, r"Expected width_multiple to be an int >= 1\. Received: width_multiple=0\."),
        ({"seed": -5}, r"Expected seed to be an int >= 0\. Received: seed=-5\."),
    ],
)
def test_bad_arguments_fail_in_the_constructor(kwargs, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        small_space(**kwargs)


def test_configuration_errors_are_fatal_for_keras_tuner():
    assert issubclass(kso.ConfigurationError, keras_tuner.errors.FatalValueError)


def test_mismatched_data_stops_the_search_before_training(tmp_path, small_digits):
    train, validation, _ = small_digits
    tuner = keras_tuner.RandomSearch(
        small_space(input_shape=(32,)), objective="val_accuracy", max_trials=2,
        directory=tmp_path, project_name="bad",
    )
    with pytest.raises(kso.ConfigurationError, match=r"Expected x of shape \(batch, 32\) to match input_shape=\(32,\)\. Received: x\.shape=\(300, 64\)\."):
        tuner.search(*train, validation_data=validation, epochs=1, verbose=0)
    labels = (train[0], train[1] + 5)
    tuner = keras_tuner.RandomSearch(
        small_space(), objective="val_accuracy", max_trials=2, directory=tmp_path, project_name="bad_labels"
    )
    with pytest.raises(kso.ConfigurationError, match=r"class ids in \[0, 9\]"):
        tuner.search(*labels, validation_data=validation, epochs=1, verbose=0)
