"""Evolution and median stopping: the strategy logic on made-up spaces and curves, then on digits."""

import json
import types

import keras_tuner
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_structopt as kso
from keras_structopt.errors import ConfigurationError
from keras_structopt.search import EvolutionOracle, MedianStopping
from keras_structopt.search._curves import read_curves
from keras_structopt.search._evolution import mutate
from keras_structopt.search._stopping import MedianStopper, should_stop, stopped_note
from tests.conftest import assert_all_completed


def _dense_space():
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 4), units=(8, 256))
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)  # declares the whole space, learning rate included
    return hypermodel, hp


HYPERMODEL, SPACE = _dense_space()


def _in_space(space, values):
    hps = space.copy()
    hps.values = dict(values)
    for hp in hps.space:
        active = hps.is_active(hp)
        assert (hp.name in values) == active, (hp.name, values)
        if not active:
            continue
        value = values[hp.name]
        kind = type(hp).__name__
        if kind in ("Int", "Float"):
            assert hp.min_value <= value <= hp.max_value
        elif kind == "Choice":
            assert value in hp.values


def _is_mutation(parent, child):
    """One chosen value changed; a depth change only adds or drops the widths of the layers it touches."""
    shared = [k for k in child if k in parent]
    changed = {k for k in shared if child[k] != parent[k]}
    if child["num_layers"] != parent["num_layers"]:
        return changed == {"num_layers"}
    return len(changed) == 1 and set(child) == set(parent)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_one_mutation_stays_in_the_space_and_keeps_depth_and_widths_coherent(seed):
    rng = np.random.default_rng(seed)
    parent = {}
    hps = SPACE.copy()
    for hp in hps.space:  # a random parent, drawn as Keras Tuner draws (active values only)
        if hps.is_active(hp):
            hps.values[hp.name] = parent[hp.name] = hp.prob_to_value(float(rng.uniform()))
    child = mutate(SPACE, parent, rng)
    _in_space(SPACE, child)
    assert _is_mutation(parent, child)
    depth = child["num_layers"]
    assert sorted(k for k in child if k.startswith("block_")) == [f"block_{i}/units" for i in range(depth)]
    spec_hp = keras_tuner.HyperParameters()
    spec_hp.values.update(child)
    assert HYPERMODEL.architecture(spec_hp).num_blocks == depth  # a valid network of the family


def _run(oracle, score, n):
    """Drives an oracle as a tuner would, with a made-up score instead of training."""
    for _ in range(n):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        oracle.update_trial(trial.trial_id, {"score": score(trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)


def _oracle(tmp_path, name, seed=0, **kwargs):
    oracle = EvolutionOracle(objective=keras_tuner.Objective("score", "max"), max_trials=kwargs.pop("max_trials", 40),
                             population_size=kwargs.pop("population_size", 8), sample_size=3, seed=seed,
                             hyperparameters=SPACE.copy(), **kwargs)
    oracle._set_project_dir(str(tmp_path), name)
    return oracle


def _made_up_score(values):
    # Best near 3 layers of about 100 units; the learning rate matters a little.
    widths = [values[f"block_{i}/units"] for i in range(values["num_layers"])]
    return -abs(values["num_layers"] - 3) - sum(abs(np.log2(w / 100)) for w in widths) / 4


def test_children_are_one_mutation_of_a_recent_parent_and_seed_zero_is_honoured(tmp_path):
    oracle = _oracle(tmp_path, "a")
    assert oracle.seed == 0
    _run(oracle, _made_up_score, 40)
    trials = [oracle.trials[i] for i in oracle.start_order]
    assert len(trials) == 40
    for index, trial in enumerate(trials[8:], start=8):
        child = trial.hyperparameters.values
        assert any(_is_mutation(t.hyperparameters.values, child) for t in trials[:index])
    again = _oracle(tmp_path, "b")
    _run(again, _made_up_score, 40)
    assert [again.trials[i].hyperparameters.values for i in again.start_order] == [
        t.hyperparameters.values for t in trials]
    # Evolution beats a random search of as many trials on the made-up score, over five seeds (not only
    # its own 8-trial random start: 32 more random draws would often beat that too).
    evolved, drawn = [], []
    for seed in range(5):
        evolution = _oracle(tmp_path, f"e{seed}", seed=seed)
        _run(evolution, _made_up_score, 40)
        evolved.append(max(t.score for t in evolution.trials.values()))
        random = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"),
                                                        max_trials=40, seed=1000 * seed + 1,  # Keras Tuner's
                                                        hyperparameters=SPACE.copy())  # seeds n, n+1 overlap
        random._set_project_dir(str(tmp_path), f"r{seed}")
        _run(random, _made_up_score, 40)
        drawn.append(max(t.score for t in random.trials.values()))
    assert np.mean(evolved) > np.mean(drawn), (evolved, drawn)  # measured: -0.46 against -0.54


def test_a_resumed_evolution_draws_what_an_uninterrupted_one_draws(tmp_path):
    whole = _oracle(tmp_path, "whole", seed=5)
    _run(whole, _made_up_score, 20)
    first = _oracle(tmp_path, "parts", seed=5)
    _run(first, _made_up_score, 12)
    resumed = _oracle(tmp_path, "parts", seed=5)
    resumed.reload()
    _run(resumed, _made_up_score, 8)
    assert [resumed.trials[i].hyperparameters.values for i in resumed.start_order] == [
        whole.trials[i].hyperparameters.values for i in whole.start_order]


def test_evolution_arguments_are_checked():
    with pytest.raises(ConfigurationError, match="population_size >= 2.*population_size=1"):
        EvolutionOracle(objective="val_accuracy", population_size=1)
    with pytest.raises(ConfigurationError, match="sample_size <= population_size=4.*sample_size=5"):
        EvolutionOracle(objective="val_accuracy", population_size=4, sample_size=5)


def test_median_rule_on_made_up_curves():
    rule = MedianStopping(grace_epochs=2, min_trials=3)
    finished = [0.80, 0.90, 0.85]
    assert not should_stop(0.10, finished, epoch=1, rule=rule, direction="max")  # grace: epochs 1 and 2 run
    assert should_stop(0.84, finished, epoch=2, rule=rule, direction="max")
    assert not should_stop(0.85, finished, epoch=2, rule=rule, direction="max")  # the median itself stays
    assert not should_stop(0.10, finished[:2], epoch=5, rule=rule, direction="max")  # too few finished
    assert should_stop(0.5, [0.2, 0.3, 0.4], epoch=3, rule=rule, direction="min")
    with pytest.raises(ConfigurationError, match="grace_epochs"):
        MedianStopping(grace_epochs=0)


def _finished_trial(project, trial_id, curve, status="COMPLETED", fold="all"):
    folder = project / f"trial_{trial_id}"
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({"status": status}))
    epochs = [{"epoch": e, "val_accuracy": v} for e, v in enumerate(curve)]
    (folder / "curves.json").write_text(json.dumps({"runs": [{"fold": fold, "epochs": epochs}]}))


def test_median_stopper_reads_finished_trials_and_never_stops_the_first_ones(tmp_path):
    rule = MedianStopping(grace_epochs=1, min_trials=2)

    def stopper(trial_id, fold="all"):
        callback = MedianStopper(tmp_path, trial_id, rule, "val_accuracy", "max", fold=fold)
        callback.set_model(types.SimpleNamespace(stop_training=False))
        return callback

    first = stopper("00")  # nothing finished yet: never stopped
    for epoch in range(4):
        first.on_epoch_end(epoch, {"val_accuracy": 0.1})
    assert not first.model.stop_training
    _finished_trial(tmp_path, "00", [0.5, 0.7, 0.8])
    _finished_trial(tmp_path, "01", [0.6, 0.8, 0.9])
    _finished_trial(tmp_path, "02", [0.1, 0.1, 0.1], status="RUNNING")  # not finished: ignored
    late = stopper("03")
    late.on_epoch_end(0, {"val_accuracy": 0.2})  # grace epoch
    assert not late.model.stop_training
    late.on_epoch_end(1, {"val_accuracy": 0.76})  # median of 0.7 and 0.8 is 0.75
    assert not late.model.stop_training
    late.on_epoch_end(2, {"val_accuracy": 0.84})  # median 0.85
    assert late.model.stop_training
    note = json.loads((tmp_path / "trial_03" / "structopt.json").read_text())["median_stopped"]
    assert note == {"epoch": 2, "value": 0.84, "median": pytest.approx(0.85), "fold": "all"}
    other_fold = stopper("04", fold=1)  # cross-validated: compared with fold 1 only, and there is none
    other_fold.on_epoch_end(2, {"val_accuracy": 0.0})
    assert not other_fold.model.stop_training


def test_median_stopping_and_evolution_in_a_real_search(tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    # Two learning rates, one far too small: its trials fall below the median and stop.
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[16, 32],
                                      connection="plain", dropout=0.0, learning_rate=[1e-2, 1e-5], seed=0)
    search = kso.search.tuner(kso.search.EvolutionarySearch, hypermodel, objective="val_accuracy", max_trials=8,
                              population_size=3, sample_size=2, seed=0, cost="params", max_params=3000,
                              median_stopping=MedianStopping(grace_epochs=1, min_trials=2),
                              directory=tmp_path, project_name="evolution")
    search.search(x, y, validation_data=validation, epochs=4, batch_size=32, verbose=0)
    assert_all_completed(search)
    trials = list(search.oracle.trials.values())
    stopped = [t for t in trials if t.metrics.exists("stopped_at_epoch")]
    assert stopped, "no trial was stopped"
    for trial in stopped:
        epochs = read_curves(search, trial.trial_id)[0]["epochs"]
        note = stopped_note(search.project_dir, trial.trial_id)
        assert len(epochs) == note["epoch"] + 1 < 4 and note["value"] < note["median"]
        assert trial.metrics.get_last_value("val_accuracy") is not None  # its last value is kept
    # A trial with the hopeless learning rate, started once two trials had finished, is stopped.
    late = [t for t in trials[2:] if t.hyperparameters.values["learning_rate"] == 1e-5]
    assert late and all(t in stopped for t in late)
    best = search.oracle.get_best_trials(1)[0]
    assert not best.metrics.exists("stopped_at_epoch")
    assert all(hypermodel.architecture(t.hyperparameters.copy()).count_params() <= 3000 for t in trials)
    assert kso.search.select_simplest(search).trial.trial_id not in {t.trial_id for t in stopped}
