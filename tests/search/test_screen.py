"""Zero-cost pre-screening: several untrained candidates scored by NASWOT, only the best trained."""

import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt._trial_files import read_note
from keras_structopt.search._screen import SCREEN_NOTE, naswot_score


@pytest.fixture(scope="module")
def flat():
    return kso.data.load_digits_split("flat", seed=0)


def test_naswot_scores_more_distinct_activation_patterns_higher(flat):
    x = flat.train[0][:64]
    scores = []
    for units in (2, 8, 64):
        model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=units, seed=0).build(
            keras_tuner.HyperParameters())
        scores.append(naswot_score(model, x))
    assert scores[0] < scores[1] < scores[2]
    assert np.all(np.isfinite(scores))  # even 2 units (4 patterns for 64 examples) score finitely


def test_a_screened_search_trains_the_best_scored_of_its_draws(tmp_path, flat):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(4, 64), seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=3,
                              prescreen=4, max_params=3000, seed=0, directory=tmp_path, project_name="screen")
    search.search(*flat.train, validation_data=flat.validation, epochs=1, verbose=0)
    trials = list(search.oracle.trials.values())
    assert len(trials) == 3
    for trial in trials:
        note = read_note(search.project_dir, trial.trial_id)[SCREEN_NOTE]
        assert len(note["scores"]) == 4  # four admissible draws, one trained
        assert note["trained"] == int(np.argmax(note["scores"]))
        assert hypermodel.architecture(trial.hyperparameters).count_params() <= 3000
    assert search.oracle.screen is None  # only for the search's length


@pytest.mark.parametrize(
    "base, prescreen, message",
    [
        (keras_tuner.RandomSearch, 1, r"Expected prescreen to be None or an int >= 2.*Received: prescreen=1\."),
        (keras_tuner.RandomSearch, "4", r"Received: prescreen='4'\."),
        (keras_tuner.BayesianOptimization, 4,
         r"Expected a random search or Hyperband for prescreen=.*Received: StructuralBayesianOptimizationOracle\."),
    ],
)
def test_bad_prescreen_is_refused_before_training(tmp_path, base, prescreen, message):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10)
    with pytest.raises(kso.ConfigurationError, match=message):
        kso.search.tuner(base, hypermodel, objective="val_accuracy", max_trials=2, prescreen=prescreen,
                         directory=tmp_path, project_name="bad")
