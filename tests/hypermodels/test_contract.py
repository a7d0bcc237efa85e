"""One contract, every family: the checks each HyperModel must pass."""

import json
import random

import keras_tuner
import numpy as np
import pytest
import tf_keras

import keras_structopt as kso
from keras_structopt.data import load_digits_split
from keras_structopt.space import render
from tests.conftest import assert_all_completed, max_abs_difference

# family case -> (HyperModel class, digits view, a small space)
CASES = {
    "dense": (kso.DenseHyperModel, "flat", dict(num_layers=(1, 2), units=[8, 16])),
    "conv": (
        kso.ConvHyperModel,
        "image",
        dict(num_stages=2, blocks_per_stage=(1, 2), filters=[8, 12], connection=["plain", "dense"]),
    ),
    "conv1d": (kso.Conv1DHyperModel, "rows", dict(blocks_per_stage=(1, 2), filters=[8, 12], pooling=["avg", "flatten"])),
    "recurrent_rows": (kso.RecurrentHyperModel, "rows", dict(num_layers=(1, 2), units=[8, 12], embedding_units=4)),
    "recurrent_tokens": (
        kso.RecurrentHyperModel,
        "tokens",
        dict(num_layers=(1, 2), units=[8], embedding_units=[4, 8], vocabulary_size=17),
    ),
    "transformer_rows": (
        kso.TransformerHyperModel,
        "rows",
        dict(model_units=[8, 16], num_blocks=(1, 2), num_heads=[1, 2], key_units=[4, 8], ffn_units=[8, 16]),
    ),
    "transformer_tokens": (
        kso.TransformerHyperModel,
        "tokens",
        dict(model_units=8, num_blocks=(1, 2), num_heads=2, key_units=4, ffn_units=[8, 16], vocabulary_size=17),
    ),
}


def hypermodel(case, **overrides):
    cls, view, space = CASES[case]
    data = load_digits_split(view, seed=0)
    kwargs = dict(input_shape=data.input_shape, outputs=10, seed=0, learning_rate=3e-3, **space)
    kwargs.update(overrides)
    return cls(**kwargs)


def data_for(case, size=200):
    data = load_digits_split(CASES[case][1], seed=0)
    x, y = data.train
    return (x[:size], y[:size]), (data.validation[0][:100], data.validation[1][:100]), data.test


def random_hyperparameters(hm, seed):
    """Random values over the HyperModel's whole space, conditions respected."""
    hp = keras_tuner.HyperParameters()
    hm.build(hp)
    rng = random.Random(seed)
    for parameter in hp.space:
        if hp.is_active(parameter):
            hp.values[parameter.name] = parameter.random_sample(rng.randint(0, 10**6))
    return hp


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_build_matches_the_spec(case):
    cls, view, space = CASES[case]
    data = load_digits_split(view, seed=0)
    extra = {"vocabulary_size": 17} if view == "tokens" else {}
    hm = cls(input_shape=data.input_shape, outputs=10, **extra)  # the default space
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    spec = hm.architecture(hp)
    assert model.count_params() == spec.count_params()
    assert model.output_shape == (None, 10)
    assert kso.architecture_of(model) == spec


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_structures_count_name_and_round_trip(case):
    hm = hypermodel(case)
    again = type(hm).from_config(json.loads(json.dumps(hm.get_config())))  # ranges stay ranges through JSON
    seen = set()
    for seed in range(5):
        hp = random_hyperparameters(hm, seed)
        spec = hm.architecture(hp)
        seen.add(spec.to_json())
        model = hm.build(hp)
        assert model.count_params() == spec.count_params()
        names = [layer.name for layer in model.layers]
        assert names == [layer.name for layer in hm.build(hp).layers]  # stable
        assert names == [layer.name for layer in render(spec, tf_keras).layers]
        assert again.architecture(hp) == spec
        assert kso.Architecture.from_json(spec.to_json()) == spec
    assert len(seen) >= 2  # the space really varies the structure


@pytest.mark.parametrize("case", sorted(CASES))
def test_bridge_is_exact_after_training(case):
    train, validation, test = data_for(case)
    hm = hypermodel(case)
    hp = random_hyperparameters(hm, 3)
    model = hm.build(hp)
    model.fit(*train, epochs=1, verbose=0)
    legacy = kso.to_tf_keras(model)
    x = test[0][:100]
    assert max_abs_difference(legacy.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_binary_and_regression_heads(case, task):
    train, _, _ = data_for(case, size=64)
    outputs = 1 if task == "binary" else 2
    hm = hypermodel(case, task=task, outputs=outputs)
    model = hm.build(keras_tuner.HyperParameters())
    y = (train[1] % 2) if task == "binary" else np.stack([train[1], -train[1]], axis=1).astype("float32")
    history = model.fit(train[0], y, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.output_shape == (None, outputs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_width_multiple_aligns_every_width(case):
    hm = hypermodel(case, width_multiple=8)
    for seed in range(3):
        spec = hm.architecture(random_hyperparameters(hm, seed))
        widths = list(spec.widths)
        for option in ("model_units", "key_units", "embedding_units"):
            if option in dict(spec.options) and spec.option(option) is not None:
                widths.append(spec.option(option))
        assert all(width % 8 == 0 for width in widths), spec


# Every family other than dense (tests/hypermodels/test_dense.py runs it under all four) runs under
# two of Keras Tuner's four tuners, and every tuner runs two or three of them (a rotation, not the
# full cross product: what a tuner does to a hypermodel — draw values,
# walk a grid, vectorise for a Gaussian process, reload a checkpoint to train it further — is
# the same code for every family, and each pairing costs a real search).
TUNER_ROTATION = {
    "conv": ("bayesian", "hyperband"),
    "conv1d": ("random", "grid"),
    "recurrent_rows": ("grid", "hyperband"),
    "recurrent_tokens": ("random", "bayesian"),
    "transformer_rows": ("random", "hyperband"),
    "transformer_tokens": ("grid", "bayesian"),
}


def make_keras_tuner(name, hm, directory):
    common = dict(objective="val_accuracy", directory=directory, project_name=name)
    if name == "random":
        return keras_tuner.RandomSearch(hm, max_trials=2, seed=1, **common)
    if name == "grid":
        return keras_tuner.GridSearch(hm, max_trials=2, **common)
    if name == "bayesian":
        return keras_tuner.BayesianOptimization(hm, max_trials=2, num_initial_points=1, seed=1, **common)
    return keras_tuner.Hyperband(hm, max_epochs=2, factor=2, hyperband_iterations=1, seed=1, **common)


def test_the_tuner_rotation_covers_every_tuner_and_family():
    assert set(TUNER_ROTATION) == set(CASES) - {"dense"}
    counts = {}
    for names in TUNER_ROTATION.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    assert counts == {"random": 3, "grid": 3, "bayesian": 3, "hyperband": 3}


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, tuner_name", [(case, name) for case in sorted(TUNER_ROTATION) for name in TUNER_ROTATION[case]]
)
def test_keras_tuners_run_every_family(case, tuner_name, tmp_path):
    train, validation, _ = data_for(case, size=150)
    tuner = make_keras_tuner(tuner_name, hypermodel(case), tmp_path)
    tuner.search(*train, validation_data=validation, epochs=1, verbose=0)
    assert_all_completed(tuner)
    best = tuner.get_best_models(1)[0]
    assert best.count_params() == kso.architecture_of(best).count_params()


# Run in a fresh process: it loads a saved winner and checks its spec and its predictions;
# with "compress", it also compresses and exports it. One JSON line of measurements.
_LOADED_WINNER = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.getcwd())
import keras, numpy as np, tensorflow as tf
import keras_structopt as kso
from keras_structopt.export import tflite_predict, to_tflite_bytes
from tests.hypermodels.test_contract import data_for

directory, case, mode = sys.argv[1:4]
model = keras.models.load_model(os.path.join(directory, case + ".keras"))
saved = open(os.path.join(directory, case + ".json")).read()
train, validation, test = data_for(case, size=300)
x = test[0][:32]
outcome = {
    "spec_kept": kso.architecture_of(model) is not None and kso.architecture_of(model).to_json() == saved,
    "loaded_difference": float(np.abs(model.predict(x, verbose=0) - np.load(os.path.join(directory, case + ".npy"))).max()),
}
if mode == "compress":
    from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize
    small, result = kso.compress(
        model, train, validation_data=validation, test_data=(test[0][:120], test[1][:120]),
        recipe=[Prune(0.5), Cluster(8), Quantize("dynamic")], max_accuracy_loss=None,
        fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1), measure_latency=False,
    )
    report = result.report
    expected = small.predict(x, verbose=0)
    path = kso.export_saved_model(small, directory, case)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](inputs=tf.constant(x))["outputs"]
    lite = kso.export_tflite(small, os.path.join(directory, case + ".tflite"))
    outcome.update({
        "compressed_spec_kept": kso.architecture_of(small) is not None and kso.architecture_of(small).to_json() == saved,
        "stages": [s.name for s in report.stages],
        "pruned_sparsity": report.stages[1].kernel_sparsity,
        "max_unique": report.final.max_unique_kernel_values,
        "smaller": report.final.tflite_gzip_bytes < report.baseline.tflite_gzip_bytes,
        "float_tflite_difference": float(np.abs(tflite_predict(to_tflite_bytes(small, "none"), x) - expected).max()),
        "served_difference": float(np.abs(served.numpy() - expected).max()),
        "tflite_agreement": float(np.mean(tflite_predict(lite.read_bytes(), x).argmax(1) == expected.argmax(1))),
    })
print(json.dumps(outcome), flush=True)
"""

# One case of each family is compressed and exported here (the 1-D convolutions too); the others are only loaded: conv
# images run end to end in `tests/test_cli.py::test_other_families_run_end_to_end`, recurrent
# layers over token ids (Embedding + LSTM) in `tests/compress/test_any_model.py` (lstm_text), and
# a transformer's rows and tokens differ only in the input layers.
COMPRESSED_AFTER_LOADING = ("conv1d", "dense", "recurrent_rows", "transformer_tokens")


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_winners_load_compress_and_export_in_a_new_process(tmp_path, case):
    """A search winner of every family, saved to .keras, loaded in a new process: it keeps its
    Architecture and its predictions; it compresses and exports (the families that the CLI's
    end-to-end tests do not compress). One case per test, so test workers share them."""
    import json
    import os
    import subprocess
    import sys

    train, validation, test = data_for(case, size=300)
    tuner = keras_tuner.RandomSearch(
        hypermodel(case), objective="val_accuracy", max_trials=1, seed=3, directory=tmp_path / "searches",
        project_name=case,
    )
    tuner.search(*train, validation_data=validation, epochs=2, verbose=0)
    assert_all_completed(tuner, expected=1)
    winner = tuner.get_best_models(1)[0]
    winner.save(tmp_path / f"{case}.keras")
    (tmp_path / f"{case}.json").write_text(kso.architecture_of(winner).to_json())
    np.save(tmp_path / f"{case}.npy", winner.predict(test[0][:32], verbose=0))
    mode = "compress" if case in COMPRESSED_AFTER_LOADING else "load"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, "-c", _LOADED_WINNER, str(tmp_path), case, mode],
        capture_output=True, text=True, timeout=1500, cwd=root,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, result.stdout[-2000:]
    outcome = json.loads(lines[0])
    assert outcome["spec_kept"] and outcome["loaded_difference"] <= 1e-6, outcome
    if mode == "load":
        return
    assert outcome["compressed_spec_kept"], outcome
    assert outcome["stages"] == ["baseline", "pruned", "clustered", "quantized"], outcome
    assert outcome["pruned_sparsity"] >= 0.45 and outcome["max_unique"] <= 8, outcome
    assert outcome["smaller"], outcome
    assert outcome["float_tflite_difference"] <= 1e-4 and outcome["served_difference"] <= 1e-5, outcome
    assert outcome["tflite_agreement"] >= 0.9, outcome
