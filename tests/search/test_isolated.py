"""One process per trial: the search process never trains, the results are Keras Tuner's as usual."""

import keras
import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt._trial_files import read_note
from keras_structopt.search._curves import read_curves
from tests.conftest import assert_all_completed


def _hypermodel():
    return kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16], connection="plain",
                               dropout=0.0, learning_rate=1e-2, seed=0)


@pytest.mark.slow
def test_isolated_trials_train_in_their_own_processes(tmp_path, small_digits, monkeypatch):
    (x, y), validation, _ = small_digits

    def no_training_here(*args, **kwargs):
        raise AssertionError("the search process trained a model")

    monkeypatch.setattr(keras.Model, "fit", no_training_here)
    search = kso.search.tuner(keras_tuner.RandomSearch, _hypermodel(), objective="val_accuracy", max_trials=2,
                              seed=1, isolate_trials=True, directory=tmp_path, project_name="isolated")
    search.search(x, y, validation_data=validation, epochs=2, batch_size=64)
    monkeypatch.undo()
    assert_all_completed(search, 2)
    best = search.oracle.get_best_trials(1)[0]
    assert [len(run["epochs"]) for run in read_curves(search, best.trial_id)] == [2]
    model = search.get_best_models(1)[0]  # the trial process's best-epoch checkpoint
    assert model.evaluate(*validation, verbose=0)[1] == pytest.approx(best.score, abs=1e-6)


@pytest.mark.slow
def test_a_diverging_isolated_trial_fails_with_its_reason(tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    search = kso.search.tuner(keras_tuner.RandomSearch, _hypermodel(), objective="val_accuracy", max_trials=1,
                              seed=1, isolate_trials=True, directory=tmp_path, project_name="nan")
    with pytest.raises(kso.SearchFailedError, match=r"The first failure, trial 0: The loss became nan at epoch 1"):
        search.search(x * np.float32(1e30), y, validation_data=validation, epochs=2, batch_size=64)
    assert read_note(search.project_dir, "0")["non_finite"] is True
