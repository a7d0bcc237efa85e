"""Warm start from an earlier search, and weight inheritance from donor models."""

import json

import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.errors import ConfigurationError
from keras_structopt.search import inherit_weights, warm_start
from keras_structopt.search._transfer import adapt, head_layers
from tests.conftest import assert_all_completed


def _snapshot(directory):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.rglob("*")) if p.is_file()}


def test_adapt_respects_conditions_of_the_new_space():
    space = keras_tuner.HyperParameters()
    space.Int("num_layers", 1, 2)
    space.Int("block_0/units", 8, 32)
    with space.conditional_scope("num_layers", [2]):
        space.Int("block_1/units", 8, 32)
    values, notes = adapt(space, {"num_layers": 3, "block_0/units": 64, "block_1/units": 16, "block_2/units": 9})
    assert values == {"num_layers": 2, "block_0/units": 32, "block_1/units": 16}
    assert notes == ["num_layers: 3 clipped to 2", "block_0/units: 64 clipped to 32",
                     "block_2/units: not in this space, dropped"]
    shallow, _ = adapt(space, {"num_layers": 1, "block_0/units": 16, "block_1/units": 16})
    assert shallow == {"num_layers": 1, "block_0/units": 16}  # the inactive width is not carried


def test_warm_start_tries_the_old_best_first_and_never_writes_there(finished_search, tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    old = finished_search.project_dir
    from pathlib import Path

    before = _snapshot(Path(old))
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 24),
                                      connection="plain", dropout=0.0, learning_rate=1e-2, seed=0)
    search = kso.search.tuner(keras_tuner.BayesianOptimization, hypermodel, objective="val_accuracy", max_trials=3,
                              num_initial_points=1, seed=1, directory=tmp_path, project_name="warm")
    queued = warm_start(search, old, top_k=2)
    ranked = sorted((t for t in finished_search.oracle.trials.values() if t.status == "COMPLETED"),
                    key=lambda t: -t.score)
    assert [q["trial"] for q in queued] == [t.trial_id for t in ranked[:2]]
    assert [q["value"] for q in queued] == pytest.approx([t.score for t in ranked[:2]])
    search.search(x, y, validation_data=validation, epochs=1, verbose=0)
    assert_all_completed(search, expected=3)
    trials = [search.oracle.trials[i] for i in search.oracle.start_order]
    distinct = [q for i, q in enumerate(queued) if q["values"] not in [p["values"] for p in queued[:i]]]
    for trial, entry in zip(trials, distinct):
        assert trial.hyperparameters.values == entry["values"]
        note = json.loads((tmp_path / "warm" / f"trial_{trial.trial_id}" / "structopt.json").read_text())
        assert note["warm_start"]["trial"] == entry["trial"]
    for entry in queued:  # adapted into the new space, with a note for each change
        assert 8 <= entry["values"]["block_0/units"] <= 24
        if any(old_t.hyperparameters.values.get("block_0/units", 0) > 24 for old_t in ranked
               if old_t.trial_id == entry["trial"]):
            assert any("clipped to 24" in n for n in entry["notes"])
    assert _snapshot(Path(old)) == before  # the earlier project is untouched
    with pytest.raises(ConfigurationError, match="project directory"):
        warm_start(search, tmp_path, top_k=1)
    with pytest.raises(ConfigurationError, match="this tuner's own"):
        warm_start(search, search.project_dir)


def test_warm_start_before_a_grid_which_then_walks_the_rest(finished_search, tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=[8, 16, 32],
                                      connection="plain", dropout=0.0, learning_rate=1e-2, seed=0)
    search = kso.search.tuner(keras_tuner.GridSearch, hypermodel, objective="val_accuracy",
                              directory=tmp_path, project_name="grid")
    queued = warm_start(search, finished_search.project_dir, top_k=2)
    search.search(x, y, validation_data=validation, epochs=1, verbose=0)
    trials = [search.oracle.trials[i] for i in search.oracle.start_order]
    units = [t.hyperparameters.values["block_0/units"] for t in trials]
    assert units[0] == queued[0]["values"]["block_0/units"]
    assert sorted(units) == [8, 16, 32]  # every grid point once, the warm ones not repeated


def _dense_model(num_layers, units, seed=0):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=num_layers, units=units, seed=seed)
    return hypermodel.build(keras_tuner.HyperParameters())


def test_inherited_weights_equal_the_donors_where_shapes_match():
    donor = _dense_model(2, 32, seed=1)
    same = _dense_model(2, 32, seed=2)
    report = inherit_weights(same, [donor], head=True)
    assert report["fresh"] == 0 and report["sliced"] == 0 and report["copied"] == same.count_params()
    for a, b in zip(same.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(a, b)
    deeper_narrower = _dense_model(3, 16, seed=3)
    fresh_kernel = deeper_narrower.get_layer("block_2_dense").get_weights()[0].copy()
    report = inherit_weights(deeper_narrower, [donor], head=True)
    kernel = deeper_narrower.get_layer("block_1_dense").get_weights()[0]
    np.testing.assert_array_equal(kernel, donor.get_layer("block_1_dense").get_weights()[0][:16, :16])
    np.testing.assert_array_equal(deeper_narrower.get_layer("block_2_dense").get_weights()[0], fresh_kernel)
    assert report["layers"]["block_1_dense"] == "sliced" and report["layers"]["block_2_dense"] == "fresh"
    head = deeper_narrower.get_layer("head").get_weights()
    np.testing.assert_array_equal(head[0], donor.get_layer("head").get_weights()[0][:16])
    np.testing.assert_array_equal(head[1], donor.get_layer("head").get_weights()[1])


def test_the_head_starts_fresh_unless_asked_for():
    donor = _dense_model(2, 32, seed=1)
    candidate = _dense_model(2, 32, seed=2)
    fresh_head = [w.copy() for w in candidate.get_layer("head").get_weights()]
    report = inherit_weights(candidate, [donor])
    assert report["layers"]["head"] == "fresh" and report["fresh"] == 32 * 10 + 10
    assert report["copied"] == candidate.count_params() - (32 * 10 + 10)
    for mine, before in zip(candidate.get_layer("head").get_weights(), fresh_head):
        np.testing.assert_array_equal(mine, before)
    np.testing.assert_array_equal(candidate.get_layer("block_1_dense").get_weights()[0],
                                  donor.get_layer("block_1_dense").get_weights()[0])
    # under mixed precision a float32 cast follows the head: it is looked through
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _dense_model(1, 8)
    finally:
        keras.config.set_dtype_policy(previous)
    assert head_layers(mixed) == {"head"}
    with pytest.raises(ConfigurationError, match=r"inherit_head=1"):
        kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(input_shape=(64,), outputs=10),
                         objective="val_accuracy", donors=[donor], inherit_head=1, directory="unused",
                         project_name="bad")


def test_the_donor_that_gives_most_is_chosen_and_conv_kernels_slice():
    small, wide = _dense_model(1, 8, seed=1), _dense_model(2, 64, seed=1)
    report = inherit_weights(_dense_model(2, 32), [small, wide])
    assert report["donor"] == 1
    conv = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, num_stages=1, blocks_per_stage=1, filters=16,
                              block_type="plain", dropout=0.0, design_rules=False)
    donor = conv.build(keras_tuner.HyperParameters())
    narrow = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, num_stages=1, blocks_per_stage=1, filters=8,
                                block_type="plain", dropout=0.0, design_rules=False).build(keras_tuner.HyperParameters())
    inherit_weights(narrow, [donor], head=True)
    for layer in narrow.layers:
        for mine, theirs in zip(layer.get_weights(), donor.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs[tuple(slice(0, n) for n in mine.shape)])


def test_a_search_with_a_donor_records_what_each_trial_inherited(tmp_path, small_digits):
    (x, y), validation, _ = small_digits
    donor = _dense_model(2, 32, seed=1)
    donor.fit(x, y, epochs=2, verbose=0)
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[16, 32],
                                      connection="plain", dropout=0.0, learning_rate=1e-2, seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=2, seed=1,
                              donors=[donor], directory=tmp_path, project_name="donor")
    search.search(x, y, validation_data=validation, epochs=1, verbose=0)
    for trial in search.oracle.trials.values():
        note = json.loads((tmp_path / "donor" / f"trial_{trial.trial_id}" / "structopt.json").read_text())
        assert note["inherited"]["donor"] == 0 and note["inherited"]["copied"] + note["inherited"]["sliced"] > 0
    with pytest.raises(ConfigurationError, match=r"donors\[0\]='missing.keras'"):
        kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", donors=["missing.keras"],
                         directory=tmp_path, project_name="bad")
