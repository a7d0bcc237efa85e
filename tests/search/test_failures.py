"""Failed trials: a diverging trial stops at once with its reason, its region is not proposed
again, and a search without a completed trial is an error (API and CLI)."""

import dataclasses
import json

import keras
import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt._trial_files import read_note, trial_folder
from keras_structopt.search._failures import FAILURE_RADIUS, _embed, diverged_trials


class DivergingSpace(keras_tuner.HyperModel):
    """Two hidden layers of `units`; with `diverge` the inputs are scaled by 1e30 and the loss is NaN."""

    def __init__(self, always: bool = False):
        super().__init__()
        self.always = always

    def build(self, hp):
        diverge = True if self.always else hp.Boolean("diverge")
        units = hp.Int("units", 4, 64)
        inputs = keras.Input((64,))
        h = keras.layers.Rescaling(1e30 if diverge else 1.0)(inputs)
        h = keras.layers.Dense(units, activation="relu")(h)
        outputs = keras.layers.Dense(10, activation="softmax")(h)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def _search(tuner, small_digits):
    (x, y), validation, _ = small_digits
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=64, verbose=0)


def test_a_diverging_trial_fails_at_once_and_a_search_without_completed_trials_raises(tmp_path, small_digits):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, DivergingSpace(always=True), objective="val_accuracy",
                             max_trials=2, seed=3, directory=tmp_path, project_name="nan")
    with pytest.raises(kso.SearchFailedError,
                       match=r"No trial of the search completed: 2 of 2 trials failed\. The first failure, trial 0: "
                             r"The loss became nan at epoch 1, batch \d: the trial diverged"):
        _search(tuner, small_digits)
    trials = tuner.oracle.trials
    assert [t.status for t in trials.values()] == ["FAILED", "FAILED"]
    for trial_id in trials:
        note = read_note(tuner.project_dir, trial_id)
        assert note["non_finite"] is True and "epoch 1, batch" in note["failed"]
        # Stopped at the first batch: no epoch finished, so none was recorded.
        curves = trial_folder(tuner.project_dir, trial_id) / "curves.json"
        assert not curves.exists() or json.loads(curves.read_text()).get("epochs", []) == []


def test_max_consecutive_failed_trials_is_honoured_with_the_first_reason(tmp_path, small_digits):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, DivergingSpace(always=True), objective="val_accuracy",
                             max_trials=6, max_consecutive_failed_trials=2, seed=3, directory=tmp_path,
                             project_name="consecutive")
    with pytest.raises(kso.SearchFailedError,
                       match=r"stopped after 2 consecutive failed trials \(max_consecutive_failed_trials=2; 0 trials "
                             r"completed before\)\. The first failure, trial 0: The loss became nan"):
        _search(tuner, small_digits)
    assert len(tuner.oracle.trials) == 2


def test_bayesian_optimisation_does_not_propose_a_diverged_region_again(tmp_path, small_digits):
    tuner = kso.search.tuner(keras_tuner.BayesianOptimization, DivergingSpace(), objective="val_accuracy",
                             max_trials=6, num_initial_points=3, seed=2, max_consecutive_failed_trials=10,
                             directory=tmp_path, project_name="bayes")
    _search(tuner, small_digits)
    oracle = tuner.oracle
    trials = [oracle.trials[t] for t in sorted(oracle.trials)]
    diverged = diverged_trials(oracle, tuner.project_dir)
    assert diverged, "the seed no longer draws a diverging trial: pick another"
    assert all(t.status == "COMPLETED" for t in trials if not t.hyperparameters.values["diverge"])
    # No trial after a diverged one lies in its region (the same flag, units within the radius).
    for later_index, later in enumerate(trials):
        for earlier in trials[:later_index]:
            if earlier in diverged:
                distance = np.abs(np.subtract(_embed(oracle, later.hyperparameters.values),
                                              _embed(oracle, earlier.hyperparameters.values)))
                assert not np.all(distance <= FAILURE_RADIUS), (earlier.hyperparameters.values,
                                                                later.hyperparameters.values)
    # The Gaussian process sees every diverged trial, below the worst finished one.
    x, y = oracle._vectorize_trials()
    completed = [t for t in trials if t.status == "COMPLETED"]
    assert len(y) == len(completed) + len(diverged)
    finished = -np.array([t.score for t in completed])  # the GP minimises
    assert np.all(y[len(completed):] > finished.max())


def test_the_command_reports_a_search_without_completed_trials(tmp_path, capsys, monkeypatch):
    import keras_structopt.data
    from keras_structopt._cli import main

    original = keras_structopt.data.load_digits_split

    def exploding(*args, **kwargs):  # inputs scaled by 1e30: every trial's loss is NaN within its first epoch
        split = original(*args, **kwargs)
        return dataclasses.replace(split, train=(split.train[0] * np.float32(1e30), split.train[1]))

    monkeypatch.setattr(keras_structopt.data, "load_digits_split", exploding)
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "--trials", "2", "--epochs", "1", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "keras-structopt run: error: No trial of the search completed: 2 of 2 trials failed." in error
    assert "became nan" in error or "became inf" in error
    assert not (out / "report.json").exists() and not (out / "digits").exists()
