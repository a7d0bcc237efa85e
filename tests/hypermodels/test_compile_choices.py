"""Compile choices the Keras way: optimizer names, objects and choices; losses; metrics as objectives."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import KFold

import keras_structopt as kso


def breast_cancer():
    data = load_breast_cancer()
    x = data.data.astype("float32")
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], data.target[order].astype("float32")
    return (x[:400], y[:400]), (x[400:], y[400:])


def test_a_search_picks_its_winner_by_auc(tmp_path):
    (x, y), validation = breast_cancer()
    hypermodel = kso.DenseHyperModel(
        input_shape=(30,), task="binary", num_layers=(1, 2), units=[4, 16], seed=0,
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    tuner = keras_tuner.RandomSearch(hypermodel, objective=keras_tuner.Objective("val_auc", "max"), max_trials=3,
                                     seed=2, directory=tmp_path, project_name="auc")
    tuner.search(x, y, validation_data=validation, epochs=1, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3 and all(t.status == "COMPLETED" for t in trials)
    aucs = {t.trial_id: t.metrics.get_best_value("val_auc") for t in trials}
    assert all(0.5 < value <= 1.0 for value in aucs.values())
    best = tuner.oracle.get_best_trials(1)[0]
    assert aucs[best.trial_id] == max(aucs.values()) and best.score == max(aucs.values())
    # The winner evaluates its own AUC again: the metric object was copied into each trial, not shared.
    model = tuner.get_best_models(1)[0]
    results = model.evaluate(*validation, verbose=0, return_dict=True)
    assert results["auc"] == pytest.approx(aucs[best.trial_id], abs=1e-3)


def test_an_optimizer_choice_is_a_hyperparameter_and_a_fixed_name_is_not():
    chosen = kso.DenseHyperModel(input_shape=(8,), outputs=3, optimizer=["adam", "sgd"], learning_rate=0.02)
    hp = keras_tuner.HyperParameters()
    chosen.build(hp)
    assert hp.get("optimizer") == "adam"
    hp.values["optimizer"] = "sgd"
    model = chosen.build(hp)
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)

    fixed = kso.DenseHyperModel(input_shape=(8,), outputs=3, optimizer="rmsprop")
    hp = keras_tuner.HyperParameters()
    model = fixed.build(hp)
    assert "optimizer" not in hp.values and type(model.optimizer).__name__ == "RMSprop"


def test_an_optimizer_object_is_copied_for_each_trial_with_the_searched_rate():
    template = keras.optimizers.SGD(learning_rate=0.5, momentum=0.9, nesterov=True)
    searched = kso.DenseHyperModel(input_shape=(8,), outputs=3, optimizer=template, learning_rate=0.03)
    first, second = (searched.build(keras_tuner.HyperParameters()).optimizer for _ in range(2))
    assert first is not template and second is not first
    assert float(first.learning_rate) == pytest.approx(0.03) and first.momentum == 0.9 and first.nesterov
    kept = kso.DenseHyperModel(input_shape=(8,), outputs=3, optimizer=template, learning_rate=None)
    assert float(kept.build(keras_tuner.HyperParameters()).optimizer.learning_rate) == pytest.approx(0.5)


def test_compile_objects_survive_a_json_round_trip_of_the_config():
    hypermodel = kso.DenseHyperModel(
        input_shape=(30,), task="binary", optimizer=keras.optimizers.SGD(momentum=0.8), learning_rate=(0.01, 0.1),
        loss=keras.losses.BinaryFocalCrossentropy(gamma=3.0), metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    again = kso.DenseHyperModel.from_config(json.loads(json.dumps(hypermodel.get_config())))
    assert again.learning_rate == (0.01, 0.1) and again.optimizer.momentum == 0.8
    assert again.loss.gamma == 3.0 and again.metrics[0] == "accuracy" and again.metrics[1].name == "auc"
    assert again.get_config() == hypermodel.get_config()
    model = again.build(keras_tuner.HyperParameters())
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.momentum == 0.8


def test_a_custom_loss_trains(tmp_path):
    (x, y), validation = breast_cancer()
    hypermodel = kso.DenseHyperModel(input_shape=(30,), task="binary", num_layers=1, units=8, seed=0,
                                     loss=keras.losses.BinaryFocalCrossentropy(gamma=2.0))
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert isinstance(model.loss, keras.losses.BinaryFocalCrossentropy)
    history = model.fit(x, y, validation_data=validation, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


class _Recording(kso.DenseHyperModel):
    """Records the keyword arguments each training receives."""

    seen = []

    def fit(self, hp, model, *args, **kwargs):
        type(self).seen.append(dict(kwargs))
        return super().fit(hp, model, *args, **kwargs)


@pytest.mark.parametrize("folds", [None, 2])
def test_class_weights_pass_through_search(tmp_path, folds):
    (x, y), validation = breast_cancer()
    _Recording.seen = []
    hypermodel = _Recording(input_shape=(30,), task="binary", num_layers=1, units=4, seed=0)
    extra = {} if folds is None else {"folds": KFold(folds)}
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=1,
                             directory=tmp_path, project_name="weights", **extra)
    weights = {0: 2.0, 1: 0.5}
    fit_data = {} if folds is not None else {"validation_data": validation}
    tuner.search(x[:120], y[:120], epochs=1, verbose=0, class_weight=weights, **fit_data)
    assert len(_Recording.seen) == (1 if folds is None else 2)
    assert all(kwargs["class_weight"] == weights for kwargs in _Recording.seen)
