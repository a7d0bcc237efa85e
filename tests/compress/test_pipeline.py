import gzip
import subprocess
import sys
import textwrap
from unittest import mock

import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.compress import PRESETS, Cluster, FineTuning, Prune, Quantize, Recipe, Slim


@pytest.fixture(scope="module")
def trained(digits):
    hm = kso.DenseHyperModel(
        input_shape=(64,), outputs=10, num_layers=2, units=64, connection="residual", seed=0,
        learning_rate=3e-3,
    )
    model = hm.build(keras_tuner.HyperParameters())
    model.fit(*digits.train, epochs=8, verbose=0)
    return model


TFMOT_RECIPE = [Prune(0.8), Cluster(16), Quantize("dynamic")]  # TFMOT's published recipe: the stages' defaults


@pytest.fixture(scope="module")
def compressed(trained, digits):
    before = [w.copy() for w in trained.get_weights()]
    result = kso.compress(
        trained, digits.train, validation_data=digits.validation, test_data=digits.test, recipe=TFMOT_RECIPE,
        max_accuracy_loss=None, fine_tuning=FineTuning(prune_epochs=4, cluster_epochs=2), measure_latency=False,
    )
    return result, before


def test_stages_are_measured(compressed):
    (_, result), _ = compressed
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "pruned", "clustered", "quantized"]
    baseline, pruned, clustered, quantized = report.stages
    assert baseline.kernel_sparsity < 0.01 and baseline.quantization == "none"
    assert pruned.kernel_sparsity == pytest.approx(0.8, abs=0.01)
    assert clustered.kernel_sparsity >= 0.79
    assert clustered.max_unique_kernel_values <= 16 < pruned.max_unique_kernel_values
    assert quantized.quantization == "dynamic" and quantized.tflite_bytes < baseline.tflite_bytes / 2
    assert report.size_ratio() >= 5
    assert all(s.params == baseline.params for s in report.stages)
    assert quantized.metrics["accuracy"] >= baseline.metrics["accuracy"] - 0.03
    assert report.to_dict()["stages"][0]["test_accuracy"] == baseline.metrics["accuracy"]
    assert report.recipe == Recipe(TFMOT_RECIPE).complete() and not report.distilled  # a recipe applied as it is


def test_keras_3_in_keras_3_out_with_the_final_stages_weights(compressed, trained, digits):
    (model, result), _ = compressed
    import keras
    import tf_keras

    assert isinstance(model, keras.Model) and not isinstance(model, tf_keras.Model)
    assert kso.architecture_of(model) == kso.architecture_of(trained)
    assert isinstance(result.tf_keras_model, tf_keras.Model)
    x = digits.test[0][:256]
    expected = result.tf_keras_model.predict(x, verbose=0)
    assert np.max(np.abs(model.predict(x, verbose=0) - expected)) <= 1e-5
    assert model.get_compile_config() == trained.get_compile_config()  # compiled as the user's was


def test_the_measured_file_is_the_saved_file(compressed, tmp_path):
    (model, result), _ = compressed
    path = result.save_tflite(tmp_path / "small.tflite")
    assert path.read_bytes() == result.tflite
    assert len(gzip.compress(result.tflite, compresslevel=9)) == result.report.final.tflite_gzip_bytes
    exported = kso.export_tflite(model, tmp_path / "exported.tflite")  # no options: as measured
    assert exported.read_bytes() == result.tflite  # converted again from the Keras 3 model: the same bytes
    with pytest.raises(FileExistsError, match=r"Expected path to be a new file"):
        result.save_tflite(path)


def test_a_functional_model_with_operations_crosses_again_as_it_did_and_exports_the_measured_file(tmp_path):
    # Operations between layers (`h + inputs`) become tf_keras TFOpLambda layers, which tf_keras names
    # from a session-wide counter: the compressed Keras 3 model crossed again under other names (and a
    # clone renamed its input), so its TFLite file differed from the measured one by those names' bytes.
    import keras

    inputs = keras.Input((8,), name="signal")
    h = keras.layers.Dense(8, name="first")(inputs)
    h = keras.layers.Dense(8, name="second")(h + inputs) * 2.0
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(inputs + h))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, size=64)
    small, result = kso.compress(model, (x, y), recipe=[Quantize()], max_accuracy_loss=None, measure_latency=False)
    first = [layer.name for layer in result.tf_keras_model.layers]
    # The Keras 3 names, whatever Keras's own session-wide counter had reached (add, add_1 in a fresh
    # process; add_18, add_19 where other tests built operations before).
    assert first == [operation.name for operation in model.operations]
    assert [name.split("_")[0] for name in first] == ["signal", "first", "add", "second", "multiply", "add", "head"]
    assert [layer.name for layer in kso.to_tf_keras(small).layers] == first
    assert kso.export_tflite(small, tmp_path / "small.tflite").read_bytes() == result.tflite


# Loads the compressed model from its .keras file in a fresh process and predicts; one JSON line.
_LOAD_AND_PREDICT = """
import json, sys
import keras, numpy as np
import keras_structopt as kso
directory = sys.argv[1]
model = keras.models.load_model(directory + "/small.keras")
x, expected = np.load(directory + "/x.npy"), np.load(directory + "/y.npy")
predicted = np.asarray(model.predict(x, verbose=0))
print(json.dumps({"backend": keras.backend.backend(), "difference": float(np.abs(predicted - expected).max()),
                  "spec": kso.architecture_of(model) is not None}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_compressed_model_round_trips_keras_files_in_a_fresh_process(compressed, digits, tmp_path, backend):
    import json
    import os

    from tests.conftest import REPOSITORY

    (model, _), _ = compressed
    model.save(tmp_path / "small.keras")
    x = digits.test[0][:64]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPOSITORY)
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert outcome["backend"] == backend and outcome["spec"]
    assert outcome["difference"] <= 1e-5


def test_the_users_model_is_not_modified(compressed, trained):
    _, before = compressed
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights()))


def test_only_the_recipes_stages_run(trained, digits):
    _, result = kso.compress(trained, digits.train, test_data=digits.test, recipe=[Prune(0.5)],
                             max_accuracy_loss=None, fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "pruned"]
    assert report.final.kernel_sparsity == pytest.approx(0.5, abs=0.01)


def test_without_validation_data_the_preset_is_applied_and_the_report_says_so(trained, digits):
    with pytest.warns(RuntimeWarning, match="no validation_data"):
        _, result = kso.compress(trained, (digits.train[0][:256], digits.train[1][:256]), target="gpu",
                                 fine_tuning=FineTuning(slim_epochs=1, prune_epochs=1), measure_latency=False)
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "slimmed", "pruned", "quantized"]
    assert report.recipe.prune.m_by_n == (2, 4) and report.recipe.quantize.mode == "float16"
    assert any("no validation_data" in w for w in report.warnings)


def test_quantization_too_lossy_on_the_strongest_state_is_kept_on_a_weaker_one(trained, digits):
    """A greedy search can spend the whole tolerance before quantization (the largest saving
    for the least accuracy, usually): quantization is then tried on the weaker states the
    search reached, strongest first, and kept on the first it fits. Here a converted file
    is scored as hopeless once more than 60 % of its kernels are zeros."""
    from keras_structopt.compress import _pipeline
    from keras_structopt.compress._prune import kernels

    score = _pipeline._Job.score

    def harsh(job, model, data, conversion=None):
        scores = score(job, model, data, conversion)
        values = np.concatenate([kernel.ravel() for _, kernel in kernels(model)])
        sparsity = np.mean(values == 0)
        if conversion not in (None, "none") and sparsity > 0.6:
            scores = {key: (0.0 if key == "accuracy" else value) for key, value in scores.items()}
        return scores

    with mock.patch.object(_pipeline._Job, "score", harsh), pytest.warns(RuntimeWarning, match="after weaker ones"):
        _, result = kso.compress(trained, digits.train, validation_data=digits.validation, test_data=digits.test,
                                 recipe=[Slim(None), Cluster(None)], max_accuracy_loss=0.05,
                                 fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
    report = result.report
    tries = [(entry["stage"], entry["setting"], entry["kept"]) for entry in report.search]
    assert ("prune", 0.5, True) in tries and ("prune", 0.75, True) in tries  # both within 5 points in Keras
    assert ("quantize", "dynamic", False) in tries  # on the strongest sparsity: scored 0
    fallback = [entry for entry in report.search if str(entry["setting"]).startswith("dynamic after")]
    # Tried after every weaker sparsity kept, strongest first, until it fits (after 0.5: 60 % or less zeros).
    kept = sorted(setting for stage, setting, was_kept in tries if stage == "prune" and was_kept)
    assert [entry["setting"] for entry in fallback] == [f"dynamic after sparsity {v:g} (polynomial)"
                                                       for v in reversed(kept[:-1])]
    assert [entry["kept"] for entry in fallback] == [False] * (len(kept) - 2) + [True]
    assert report.recipe.prune.sparsity == 0.5 and report.recipe.quantize.mode == "dynamic"
    assert [s.name for s in report.stages] == ["baseline", "pruned", "quantized"]
    assert report.final.kernel_sparsity == pytest.approx(0.5, abs=0.01)
    assert report.final.tflite_gzip_bytes < report.baseline.tflite_gzip_bytes / 3  # int8 with half the weights zero
    assert any(warning.endswith("after weaker ones whose file is smaller: sparsity 0.5 (polynomial)")
               for warning in report.warnings)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: {"recipe": [Prune(1.0)]}, r"Expected sparsity to be a float with 0 <= sparsity < 1\. Received: sparsity=1\.0\."),
        (lambda: {"recipe": [Cluster(1)]}, r"Expected clusters to be an int in \[2, 256\]\. Received: clusters=1\."),
        (lambda: {"recipe": [Quantize("int4")]}, r"Expected mode to be one of \['none', 'dynamic', 'float16', 'int8', 'qat'\]\. Received: mode='int4'\."),
        (lambda: {"max_accuracy_loss": -0.01}, r"Expected max_accuracy_loss to be a number >= 0 or None\. Received: max_accuracy_loss=-0\.01\."),
        (lambda: {"max_accuracy_loss": "1%", "recipe": [Prune(0.5)]}, r"Expected max_accuracy_loss to be a number >= 0 or None\. Received: max_accuracy_loss='1%'\."),
        (lambda: {"target": "watch"}, r"Expected target to be one of \['mobile', 'cpu', 'gpu', 'tpu'\]\. Received: target='watch'\."),
        (lambda: {"recipe": [Prune(m_by_n=(4, 4))]}, r"Expected m_by_n to be a pair \(m, n\) of ints with 1 <= m < n, such as \(2, 4\)\. Received: m_by_n=\(4, 4\)\."),
        (lambda: {"recipe": [Slim(1.0)]}, r"Expected ratio to be a float with 0 <= ratio < 1\. Received: ratio=1\.0\."),
        (lambda: {"recipe": [Prune(schedule="cosine")]}, r"Expected schedule to be keras_structopt\.compress\.PolynomialDecay\(\.\.\.\), ConstantSparsity\(\) or one of \['constant', 'polynomial'\]\. Received: schedule='cosine'\."),
        (lambda: {"recipe": [Slim(0.5, multiple=0)]}, r"Expected multiple to be an int >= 1\. Received: multiple=0\."),
        (lambda: {"recipe": [Cluster(per_layer={"head": 1})]}, r"Expected per_layer\['head'\] to be an int in \[2, 256\]\. Received: per_layer\['head'\]=1\."),
        (lambda: {"recipe": [Prune(per_layer={"head": 1.5})]}, r"Expected per_layer\['head'\] to be a float with 0 <= per_layer\['head'\] < 1\."),
        (lambda: {"recipe": [Prune(exclude=["no_such_layer"])]}, r"Expected layer names of the model in exclude / per_layer\. Received: \['no_such_layer'\]"),
        (lambda: {"recipe": [Prune(0.8), Prune(0.9)]}, r"Expected at most one Prune stage in a recipe\."),
        (lambda: {"recipe": "mobile"}, r"Expected recipe to be a list of stages \(Slim, Prune, Cluster, Quantize\) or a Recipe\. Received: 'mobile'\."),
        (lambda: {"recipe": [0.8]}, r"Expected recipe to hold keras_structopt\.compress stages \(Slim, Prune, Cluster, Quantize\)\. Received: 0\.8\."),
        (lambda: {"validation_data": "v"}, r"Expected validation_data to be an \(x, y\) pair"),
        (lambda: {"fine_tuning": FineTuning(prune_epochs=0)}, r"Expected prune_epochs to be an int >= 1"),
        (lambda: {"fine_tuning": FineTuning(run_eagerly="yes")}, r"Expected run_eagerly to be True, False or None\. Received: run_eagerly='yes'\."),
        (lambda: {"fine_tuning": {"prune_epochs": 1}}, r"Expected fine_tuning to be a keras_structopt\.compress\.FineTuning\. Received: fine_tuning=\{'prune_epochs': 1\}\."),
        (lambda: {"recipe": [Quantize(per_channel="yes")]}, r"Expected per_channel to be one of \[True, False, 'auto'\]\. Received: per_channel='yes'\."),
        (lambda: {"train_data": "digits"}, r"Expected train_data to be an \(x, y\) pair of arrays or a tf\.data\.Dataset of \(x, y\) pairs\. Received: train_data of type str\."),
    ],
)
def test_bad_arguments_fail_before_training(trained, digits, make, message):
    from unittest import mock

    import keras
    import tf_keras

    with mock.patch.object(tf_keras.Model, "fit") as fit, mock.patch.object(keras.Model, "fit") as keras_fit, \
            pytest.raises(kso.ConfigurationError, match=message):
        arguments = {"train_data": digits.train}
        arguments.update(make())
        train = arguments.pop("train_data")
        kso.compress(trained, train, **arguments)
    fit.assert_not_called()
    keras_fit.assert_not_called()


def test_short_fine_tuning_runs_eagerly_long_fine_tuning_traced_and_both_train_alike(trained, digits):
    """A fit of at most 16 steps runs eagerly (no graph to trace), a longer one traced; the same
    recipe gives the same weights either way."""
    from unittest import mock

    import tf_keras

    compiled = []
    original = tf_keras.Model.compile

    def spy(model, *args, **kwargs):
        wrappers = {type(layer).__name__ for layer in model.layers} & {"PruneLowMagnitude", "ClusterWeights"}
        if wrappers:  # a stage's fine-tuning (scoring compiles an identity model too)
            compiled.append(bool(kwargs.get("run_eagerly")))
        return original(model, *args, **kwargs)

    x, y = digits.train
    recipe = [Prune(0.5), Cluster(16)]
    results = {}
    with mock.patch.object(tf_keras.Model, "compile", spy):
        for examples, run_eagerly in ((64, None), (64, False), (640, None)):
            compiled.clear()
            small, _ = kso.compress(trained, (x[:examples], y[:examples]), recipe=recipe, max_accuracy_loss=None,
                                    fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1, run_eagerly=run_eagerly),
                                    measure_latency=False)
            results[examples, run_eagerly] = small.get_weights()
            assert compiled == [examples == 64 and run_eagerly is None] * 2, (examples, run_eagerly)
    for eager, traced in zip(results[64, None], results[64, False]):
        np.testing.assert_allclose(eager, traced, atol=1e-4)


def test_isolated_stages_fine_tune_in_child_processes_as_they_would_here(digits, tmp_path):
    """FineTuning(isolated=True) runs pruning and clustering, and every TFLite conversion, each in a
    child process (TensorFlow keeps memory after every fit); the weights come back as the same stages
    compute them in this process, and the treatments say what the child reached. (A learning rate
    too small to move the weights: the two processes shuffle the batches differently.)"""
    from unittest import mock

    import keras

    from keras_structopt.compress import _child

    x, y = digits.train
    keras.utils.set_random_seed(0)
    trained = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trained.fit(x, y, epochs=3, verbose=0)
    recipe = [Prune(0.5), Cluster(16)]
    children = []
    original = _child.subprocess.run

    def spy(command, *args, **kwargs):
        children.append(command[2])
        return original(command, *args, **kwargs)

    results = {}
    with mock.patch.object(_child.subprocess, "run", spy):
        for isolated in (True, None):
            children.clear()
            small, result = kso.compress(trained, (x[:64], y[:64]), test_data=digits.test, recipe=recipe,
                                         max_accuracy_loss=None, measure_latency=False,
                                         fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1, learning_rate=1e-8,
                                                                isolated=isolated))
            results[isolated] = small, result.report
            if isolated:  # converted in a child, its file is still the one exported here, byte for byte
                assert kso.export_tflite(small, tmp_path / "small.tflite").read_bytes() == result.tflite
            # A model this small (7 k parameters) fine-tunes here unless asked otherwise.
            assert children.count("keras_structopt.compress._child") == (2 if isolated else 0), isolated
            # The baseline's, the pruned and the clustered model's files.
            assert children.count("keras_structopt.export._convert_child") == (3 if isolated else 0), isolated
    (isolated_model, isolated_report), (here_model, here_report) = results[True], results[None]
    assert [w.shape for w in isolated_model.get_weights()] == [w.shape for w in here_model.get_weights()]
    for there, here in zip(isolated_model.get_weights(), here_model.get_weights()):
        np.testing.assert_allclose(there, here, atol=1e-4)
    assert isolated_report.final.kernel_sparsity == pytest.approx(here_report.final.kernel_sparsity, abs=1e-6)
    assert [t.sparsity for t in isolated_report.layers] == pytest.approx([t.sparsity for t in here_report.layers])
    assert [t.clusters for t in isolated_report.layers] == [t.clusters for t in here_report.layers]
    assert [t.sparsity for t in isolated_report.layers if t.pruned] == pytest.approx([0.5] * 3, abs=0.02)
    assert isolated_report.final.max_unique_kernel_values <= 16


def test_isolated_refuses_a_model_a_child_cannot_rebuild_before_training(digits):
    from unittest import mock

    import keras
    import tf_keras

    from keras_structopt.bridge._registry import unregister

    class Gain(keras.layers.Layer):  # a user's layer: registered in this process only
        def build(self, input_shape):
            self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

        def call(self, x):
            return x * self.gain

    class LegacyGain(tf_keras.layers.Layer):
        def build(self, input_shape):
            self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

        def call(self, x):
            return x * self.gain

    kso.bridge.register(Gain, to_tf_keras=LegacyGain)
    try:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8), Gain(),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        with mock.patch.object(tf_keras.Model, "fit") as fit, pytest.raises(
                kso.ConfigurationError, match=r"Expected a model a child process can rebuild for "
                r"FineTuning\(isolated=True\).*Received: a model for which its layers LegacyGain are not tf_keras's"):
            kso.compress(model, digits.train, recipe=[Prune(0.5)], max_accuracy_loss=None,
                         fine_tuning=FineTuning(isolated=True))
        fit.assert_not_called()
    finally:
        unregister(Gain)
    with pytest.raises(kso.ConfigurationError, match=r"Expected isolated to be True, False or None\. "
                                                     r"Received: isolated='yes'"):
        FineTuning(isolated="yes")


def test_a_fit_in_a_child_trains_the_model_and_a_failed_child_names_its_error(trained, digits):
    """Slimming's fine-tuning (a plain fit) in a child: the weights it trained come back into a
    copy of the model; a child that fails names the stage and its error."""
    from keras_structopt.bridge._bridge import tf_keras_copy
    from keras_structopt.compress._child import run_in_child
    from keras_structopt.compress._fine_tune import CompileSettings

    model = tf_keras_copy(trained)
    settings = CompileSettings.resolve(trained, FineTuning())
    x, y = digits.train
    fitted = run_in_child("fit", model, (x[:256], y[:256]), fine_tuning=settings, batch_size=32, epochs=1,
                          validation=None, verbose=0, run_eagerly=False)
    assert fitted is not model and [layer.name for layer in fitted.layers] == [layer.name for layer in model.layers]
    moved = [float(np.abs(a - b).max()) for a, b in zip(fitted.get_weights(), model.get_weights())]
    assert min(moved) > 1e-6  # every weight trained
    for each in (model, fitted):
        settings.compile(each)
    assert fitted.evaluate(x[:256], y[:256], verbose=0)[0] < model.evaluate(x[:256], y[:256], verbose=0)[0]
    with pytest.raises(RuntimeError, match=r"The prune stage, run in a child process \(FineTuning\(isolated=\.\.\.\)\), "
                                           r"failed: TypeError: prune\(\) missing 3 required keyword-only arguments"):
        run_in_child("prune", model, (x[:4], y[:4]), None, treatments={})


def test_a_child_killed_by_sigkill_is_out_of_memory_and_compress_skips_that_stage(trained, digits, tmp_path):
    """A stage's child killed by SIGKILL (the kernel's out-of-memory killer's signal) raises
    StageOutOfMemory; `compress` then skips that stage, says why, and goes on from the model
    before it: with a fixed recipe, and in the guarded search (the try is recorded, not kept)."""
    from keras_structopt.bridge._bridge import tf_keras_copy
    from keras_structopt.compress import _child, _pipeline

    killer = tmp_path / "python"
    killer.write_text("#!/bin/sh\nkill -9 $$\n")
    killer.chmod(0o755)
    with mock.patch.object(_child.sys, "executable", str(killer)), pytest.raises(
            _child.StageOutOfMemory, match=r"The cluster stage, run in a child process \(FineTuning\(isolated=\.\.\.\)\), "
                                           r"failed: killed by SIGKILL \(most likely the kernel's out-of-memory killer\)"):
        _child.run_in_child("cluster", tf_keras_copy(trained), (digits.train[0][:4], digits.train[1][:4]), Cluster(8))

    def killed(job, current, stage, treatments):
        raise _child.StageOutOfMemory("The cluster stage, run in a child process (FineTuning(isolated=...)), failed: "
                                      "killed by SIGKILL (most likely the kernel's out-of-memory killer)")

    train = (digits.train[0][:512], digits.train[1][:512])
    common = dict(test_data=digits.test, fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
    with mock.patch.object(_pipeline._Job, "clustered", killed), pytest.warns(RuntimeWarning, match="skipped"):
        _, fixed = kso.compress(trained, train, recipe=[Prune(0.5), Cluster(8), Quantize("dynamic")],
                                max_accuracy_loss=None, **common)
        _, searched = kso.compress(trained, train, validation_data=digits.validation, recipe=[Slim(None), Prune(0.5)],
                                   max_accuracy_loss=0.05, **common)
    report = fixed.report
    assert [stage.name for stage in report.stages] == ["baseline", "pruned", "quantized"]
    assert report.recipe.cluster.clusters is None and report.recipe.prune.sparsity == 0.5
    assert report.final.kernel_sparsity == pytest.approx(0.5, abs=0.01) and report.final.quantization == "dynamic"
    assert not any(layer.clustered for layer in report.layers)
    assert any(w.startswith("the cluster stage was skipped: The cluster stage, run in a child process")
               for w in report.warnings)
    report = searched.report
    cluster_tries = [entry for entry in report.search if entry["stage"] == "cluster"]
    assert [entry["setting"] for entry in cluster_tries] == [32] and not cluster_tries[0]["kept"]
    assert "killed by SIGKILL" in cluster_tries[0]["note"]
    assert [stage.name for stage in report.stages] == ["baseline", "pruned", "quantized"]
    assert report.recipe.cluster.clusters is None


def test_compress_takes_at_most_ten_parameters():
    import inspect

    assert len(inspect.signature(kso.compress).parameters) <= 10


@pytest.mark.parametrize("kwargs, mode", [({"target": "mobile", "max_accuracy_loss": None}, "int8"),
                                           ({"recipe": [Quantize("qat")]}, "qat")])
def test_full_integer_settings_for_a_recurrent_model_fail_before_training(kwargs, mode):
    from unittest import mock

    import keras
    import tf_keras

    model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(4), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((32, 8, 8)).astype("float32"), np.arange(32) % 3
    with mock.patch.object(tf_keras.Model, "fit") as fit, pytest.raises(
            kso.ConfigurationError, match=rf"Expected a model without recurrent layers for a full-integer TFLite file\. "
            rf"Received: Quantize\(mode='{mode}'.*\), which converts to int8, and a model with LSTM\. Use "
            r'Quantize\("dynamic"\)'):
        kso.compress(model, (x, y), validation_data=(x, y), **kwargs)
    fit.assert_not_called()


def _tf_keras_after_compress(env_value):
    code = textwrap.dedent(
        """
        import os
        {setup}
        import tensorflow as tf
        before = tf.keras.__name__ if hasattr(tf.keras, "__name__") else None
        import keras_tuner, keras_structopt as kso
        from keras_structopt.data import load_digits_split
        data = load_digits_split(seed=0)
        model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=8).build(
            keras_tuner.HyperParameters())
        from keras_structopt.compress import FineTuning, Prune
        kso.compress(model, (data.train[0][:64], data.train[1][:64]), recipe=[Prune(0.8)], max_accuracy_loss=None,
                     fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
        print(tf.keras.Model.__module__.split(".")[0], os.environ.get("TF_USE_LEGACY_KERAS"))
        """
    ).format(setup="" if env_value is None else f"os.environ['TF_USE_LEGACY_KERAS'] = {env_value!r}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_tf_keras_resolution_is_left_as_the_user_had_it():
    assert _tf_keras_after_compress(None) == "keras None"
    assert _tf_keras_after_compress("1") == "tf_keras 1"


def test_several_outputs_are_scored_by_name_whatever_their_order():
    from keras_structopt.compress._fine_tune import CompileSettings

    settings = CompileSettings("Adam", {"learning_rate": 1e-3}, {"digit": "sparse_categorical_crossentropy", "bright": "mse"},
                          {"digit": ["accuracy"], "bright": ["mae"]}, "arguments")
    labels = np.array([0, 1, 2, 1])
    probabilities = np.eye(3, dtype="float32")[labels]
    brightness = np.array([[0.1], [0.4], [0.2], [0.3]], dtype="float32")
    y = {"digit": labels, "bright": brightness}
    # A TFLite file's outputs by signature name, in the model's order (not the losses')
    scores = settings.score({"bright": brightness + 0.5, "digit": probabilities}, y)
    assert scores["digit_accuracy"] == pytest.approx(1.0) and scores["bright_mae"] == pytest.approx(0.5)
    assert settings.metric_key(scores) == "digit_accuracy"


def _dense_model(digits, units, seed):
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=units, seed=seed)
    model = hm.build(keras_tuner.HyperParameters())
    model.fit(*digits.train, epochs=2, verbose=0)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(PRESETS))
def test_every_preset_round_trips_through_the_reports_recipe(target, digits):
    tuning = FineTuning(slim_epochs=1, prune_epochs=1, cluster_epochs=1, qat_epochs=1)
    _, first = kso.compress(_dense_model(digits, 64, 0), digits.train, test_data=digits.test, target=target,
                            max_accuracy_loss=None, fine_tuning=tuning, measure_latency=False)
    recipe = first.report.recipe
    assert recipe == PRESETS[target].complete()
    # Another model, the same settings: the recipe the report holds is a recipe compress takes.
    _, second = kso.compress(_dense_model(digits, 96, 1), digits.train, test_data=digits.test, recipe=recipe,
                             max_accuracy_loss=None, fine_tuning=tuning, measure_latency=False)
    assert second.report.recipe == recipe
    assert [s.name for s in second.report.stages] == [s.name for s in first.report.stages]
    assert second.report.final.quantization == first.report.final.quantization


def _batch_timings(models, x, rounds=40):
    """Fewest seconds of one batch through each model over the rounds, by `predict_on_batch` and by a
    `tf.function` call. The models take turns in every round, and the fewest seconds is what the model
    costs: other work on a shared machine only adds time (in CI, with the suite's other workers on
    the same two cores, the median of the same structure's `predict_on_batch` once read 1.36x the
    user's; alone it reads 1.05x)."""
    import time

    import tensorflow as tf

    calls = {}
    for name, model in models.items():
        graph = tf.function(lambda batch, model=model: model(batch, training=False))
        calls[name] = {"predict_on_batch": model.predict_on_batch, "tf.function": lambda b, g=graph: g(b).numpy()}
        for call in calls[name].values():
            for _ in range(3):  # warm-up: tracing and the first allocations
                call(x)
    seconds = {(name, way): [] for name in models for way in ("predict_on_batch", "tf.function")}
    for _ in range(rounds):
        for name in models:
            for way, call in calls[name].items():
                start = time.perf_counter()
                call(x)
                seconds[name, way].append(time.perf_counter() - start)
    return {key: float(np.min(values)) for key, values in seconds.items()}


@pytest.mark.slow
def test_the_returned_model_is_as_fast_as_the_users_and_faster_where_slimmed(digits):
    import keras

    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(1024, activation="relu", name="wide")(inputs)
    hidden = keras.layers.Dense(1024, activation="relu", name="wider")(hidden)
    user = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(hidden))
    user.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    user.fit(*digits.train, epochs=1, verbose=0)
    common = dict(test_data=digits.test, max_accuracy_loss=None, measure_latency=False)
    pruned, _ = kso.compress(user, digits.train, recipe=[Prune(0.5)], fine_tuning=FineTuning(prune_epochs=1), **common)
    slimmed, result = kso.compress(user, digits.train, recipe=[Slim(0.75)], fine_tuning=FineTuning(slim_epochs=1),
                                   **common)
    report = result.report
    assert report.baseline.macs >= 4 * report.final.macs  # slimming removed at least 4x the MACs
    x = np.resize(digits.test[0], (256, 64)).astype("float32")
    timings = _batch_timings({"user": user, "pruned": pruned, "slimmed": slimmed}, x)
    for way in ("predict_on_batch", "tf.function"):
        same = timings["pruned", way] / timings["user", way]
        faster = timings["slimmed", way] / timings["user", way]
        print(f"{way}: same structure {same:.2f}x the user's time, slimmed {faster:.2f}x "
              f"({report.baseline.macs / report.final.macs:.1f}x fewer MACs)")
        assert same <= 1.25  # the same Keras 3 layers: equal up to the machine's noise
        assert faster <= 0.5
