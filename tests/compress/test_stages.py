"""The stage options: 2:4 and per-layer pruning, per-channel clustering, int8 and QAT, the
slimming stage, the measurements, and the accuracy-guarded search."""

import gzip
from unittest import mock

import keras
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt._keras_tuner import metric_direction
from keras_structopt.compress import Cluster, ConstantSparsity, FineTuning, Prune, Quantize, Slim
from keras_structopt.compress._pipeline import _Job, _Tolerance
from keras_structopt.export import tensor_types, tflite_predict, to_tflite_bytes
from keras_structopt.export._tflite import few_valued
from tests.bridge.user_models import data_for


@pytest.fixture(scope="module")
def mlp(digits):
    keras.utils.set_random_seed(0)  # module fixtures: the same weights whichever test runs first on the worker
    inputs = keras.Input((64,))
    x = keras.layers.Dense(48, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="second")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x), name="mlp")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*digits.train, epochs=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="norm")(x))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x), name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train, _, _ = data_for("residual_cnn")
    model.fit(*train, epochs=6, verbose=0)
    return model


def _weights(model, name):
    return {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in model.get_layer(name).weights}


def m_by_n_holds(kernel, m=2, n=4) -> bool:
    """m zeros in every n consecutive input weights of each output (TFLite's [out, ..., in] layout)."""
    rows = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1, kernel.shape[-2])  # (out, taps, in)
    pad = (-rows.shape[-1]) % n
    rows = np.pad(rows, [(0, 0), (0, 0), (0, pad)], constant_values=0.0).reshape(rows.shape[0], rows.shape[1], -1, n)
    return bool(np.all(np.sum(rows == 0, axis=-1) >= m))


def test_two_four_sparsity_holds_in_every_pruned_kernel(mlp, cnn, digits):
    small, result = kso.compress(mlp, digits.train, test_data=digits.test, recipe=[Prune(0.0, m_by_n=(2, 4))],
                                 max_accuracy_loss=None, fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
    report = result.report
    pruned = [t.layer for t in report.layers if t.pruned]
    assert pruned == ["hidden", "second", "head"]
    for name in pruned:
        assert m_by_n_holds(_weights(small, name)["kernel"]), name
    assert report.final.kernel_sparsity == pytest.approx(0.5, abs=0.02)
    train, _, test = data_for("residual_cnn", train_size=128, test_size=32)
    small, _ = kso.compress(cnn, train, test_data=test, recipe=[Prune(0.0, m_by_n=(2, 4))], max_accuracy_loss=None,
                            fine_tuning=FineTuning(prune_epochs=1), measure_latency=False)
    assert m_by_n_holds(_weights(small, "conv_2")["kernel"])
    assert not m_by_n_holds(_weights(cnn, "conv_2")["kernel"])  # the check can fail


def test_exclusions_and_per_layer_targets(mlp, digits):
    stage = Prune(0.8, exclude=["first"], per_layer={"head": 0.5}, schedule=ConstantSparsity())
    small, result = kso.compress(mlp, digits.train, test_data=digits.test, recipe=[stage], max_accuracy_loss=None,
                                 fine_tuning=FineTuning(prune_epochs=2), measure_latency=False)
    report = result.report
    treatments = {t.layer: t for t in report.layers}
    assert not treatments["hidden"].pruned and "excluded from pruning by the caller" in treatments["hidden"].notes
    assert np.count_nonzero(_weights(small, "hidden")["kernel"] == 0) == 0
    assert treatments["second"].target == 0.8 and treatments["second"].sparsity == pytest.approx(0.8, abs=0.01)
    assert treatments["head"].target == 0.5 and treatments["head"].sparsity == pytest.approx(0.5, abs=0.01)
    assert report.warnings == ()


def test_per_channel_and_per_layer_clusters(cnn):
    train, _, test = data_for("residual_cnn", train_size=256, test_size=64)
    recipe = [Prune(0.5), Cluster(8, per_channel=True, per_layer={"head": 4})]
    small, result = kso.compress(cnn, train, test_data=test, recipe=recipe, max_accuracy_loss=None,
                                 fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1), measure_latency=False)
    report = result.report
    kernel = _weights(small, "conv_2")["kernel"]
    per_channel = [len(np.unique(kernel[..., i])) for i in range(kernel.shape[-1])]
    assert max(per_channel) <= 8 < len(np.unique(kernel))  # eight values per channel, more in all
    assert len(np.unique(_weights(small, "head")["kernel"])) <= 4
    treatments = {t.layer: t for t in report.layers}
    assert treatments["head"].clusters <= 4 and treatments["conv_2"].clusters <= 8
    assert any(n.startswith("clustered per output channel") for n in treatments["conv_2"].notes)
    assert report.final.max_unique_kernel_values <= 8


def test_full_integer_conversions_have_no_float_tensors(mlp, digits):
    data = to_tflite_bytes(mlp, "int8", representative_data=digits.train[0][:200])
    assert "float32" not in tensor_types(data) and tensor_types(data)["int8"] > 0
    accuracy = np.mean(tflite_predict(data, digits.test[0]).argmax(1) == digits.test[1])
    reference = np.mean(mlp.predict(digits.test[0], verbose=0).argmax(1) == digits.test[1])
    assert accuracy >= reference - 0.02
    with pytest.raises(kso.ConfigurationError, match=r"Expected representative_data .* Received: representative_data=None\."):
        to_tflite_bytes(mlp, "int8")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_quantization_aware_training_keeps_pruning_and_clustering(name, mlp, cnn, digits):
    model = {"mlp": mlp, "cnn": cnn}[name]
    data = (digits.train, digits.test) if name == "mlp" else data_for("residual_cnn", test_size=None)[::2]
    (train, test) = data
    small, result = kso.compress(model, train, test_data=test, recipe=[Prune(0.75), Cluster(8), Quantize("qat")],
                                 max_accuracy_loss=None, measure_latency=False,
                                 fine_tuning=FineTuning(prune_epochs=3, cluster_epochs=1, qat_epochs=1))
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "pruned", "clustered", "quantized"]
    final = report.final
    assert final.quantization == "int8" and final.kernel_sparsity >= 0.74 and final.max_unique_kernel_values <= 8
    lite = result.tflite  # the measured file: quantization-aware, fully int8
    assert "float32" not in tensor_types(lite)
    assert "float32" not in tensor_types(to_tflite_bytes(result.tf_keras_model, "int8", representative_data=train[0][:200]))
    from keras_structopt.export._runtime import tflite_interpreter

    interpreter, _ = tflite_interpreter(lite, without_default_delegates=False)
    kernels = [interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details()
               if d["dtype"] == np.int8 and len(d["shape"]) >= 2 and d["shape"][0] == 10]
    head = max(kernels, key=lambda k: k.size)  # the head's int8 kernel: zeros kept, eight values at most
    assert np.mean(head == 0) >= 0.7 and len(np.unique(head)) <= 8
    assert final.metrics["accuracy"] >= report.stages[2].metrics["accuracy"] - 0.03


def test_slimming_stage_and_measurements(mlp, digits, tmp_path):
    small, result = kso.compress(mlp, digits.train, test_data=digits.test, max_accuracy_loss=None,
                                 recipe=[Slim(0.5), Prune(0.8), Cluster(16), Quantize("dynamic")],
                                 fine_tuning=FineTuning(slim_epochs=2, prune_epochs=1, cluster_epochs=1))
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "slimmed", "pruned", "clustered", "quantized"]
    assert report.slimmed_widths == {"hidden": (48, 24), "second": (32, 16)}
    baseline, slimmed = report.stages[:2]
    assert slimmed.params < baseline.params / 2 and slimmed.macs < baseline.macs / 2
    assert baseline.macs == 64 * 48 + 48 * 32 + 32 * 10
    assert set(baseline.latency) == {"tf_1", "tf_256", "tflite_1", "tflite_256"}
    assert all(value > 0 for value in baseline.latency.values())
    assert baseline.entropy_bits_per_weight == pytest.approx(32.0) and baseline.bits_per_weight > 28
    assert report.final.entropy_bits_per_weight < 4 < report.final.bits_per_weight
    ratios = report.to_dict()["stages"][1]["latency_ratio"]
    assert set(ratios) == {"tf_1", "tf_256", "tflite_1", "tflite_256"}
    from keras_structopt.export._report import plot_stages

    assert plot_stages(report.to_dict(), tmp_path / "chart.png").stat().st_size > 5000


def test_tolerance_logic_on_made_up_values():
    accuracy = _Tolerance("accuracy", 0.95, 0.01)
    assert accuracy.within(0.9401) and not accuracy.within(0.9399) and accuracy.loss(0.93) == pytest.approx(0.02)
    error = _Tolerance("mean_absolute_error", 2.0, 0.1)  # lower is better: the tolerance is a rise
    assert error.within(2.1) and not error.within(2.11) and error.loss(1.5) == pytest.approx(-0.5)
    mae = _Tolerance("val_mae", 2.0, 0.1)
    assert mae.within(2.05) and not mae.within(2.2)
    assert metric_direction("auc") == "max" and metric_direction("loss") == "min" and metric_direction("mae") == "min"
    with pytest.raises(kso.ConfigurationError, match=r"Expected a metric whose better direction Keras Tuner knows"):
        _Tolerance("my_score", 2.0, 0.01)


def test_guarded_search_on_a_regression_metric_named_by_its_short_alias():
    # Keras reports metrics=["mae"] as "mae", not "mean_absolute_error": the search and the
    # report must find it under the name the model was compiled with.
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x, y = ((x - x.mean(0)) / x.std(0)).astype("float32"), (y / 100).astype("float32")
    train, validation = (x[:300], y[:300]), (x[300:], y[300:])
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(16, activation="relu")(inputs)))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(*train, epochs=20, verbose=0)
    small, result = kso.compress(model, train, validation_data=validation, max_accuracy_loss=0.05,
                                 fine_tuning=FineTuning(slim_epochs=1, prune_epochs=1, cluster_epochs=1),
                                 measure_latency=False)
    report = result.report
    assert report.metric == "mae"
    reference = report.baseline.metrics["mae"]
    assert report.search and all(t["validation"] is not None for t in report.search)
    assert all(t["kept"] == (t["validation"] <= reference + 0.05 + 1e-6) for t in report.search)
    assert report.final.metrics["mae"] <= reference + 0.05 + 1e-6


@pytest.mark.slow
def test_guarded_search_judges_on_validation_only(mlp, digits):
    seen = []
    original = _Job.score

    def spy(self, model, data, conversion=None):
        seen.append(data is self.validation)
        return original(self, model, data, conversion)

    with mock.patch.object(_Job, "score", spy):
        small, result = kso.compress(
            mlp, digits.train, validation_data=digits.validation, test_data=digits.test, target="cpu",
            max_accuracy_loss=0.02, fine_tuning=FineTuning(slim_epochs=2, prune_epochs=2, cluster_epochs=1),
            measure_latency=False,
        )
    report = result.report
    assert seen and all(seen)  # every decision was made on the validation split
    tries = report.search
    assert [t["stage"] for t in tries][0] == "slim" and {t["stage"] for t in tries} <= {"slim", "prune", "cluster", "quantize"}
    reference = tries[0]["validation"] + tries[0]["loss"]
    for entry in tries:
        if entry["validation"] is not None:
            assert entry["kept"] == (reference - entry["validation"] <= 0.02 + 1e-9)
    kept = {t["stage"]: t["setting"] for t in tries if t["kept"]}
    recipe = report.recipe
    assert recipe.slim.ratio == kept.get("slim") and recipe.cluster.clusters == kept.get("cluster")
    assert report.distilled and report.size_ratio() >= 5  # measured 9.6x: a search that keeps nothing fails
    assert report.stages[0].name == "baseline" and report.final.tflite_gzip_bytes < report.baseline.tflite_gzip_bytes
    # The cpu preset scales a clustered model's int8 kernels per tensor: the file measured is that file.
    assert recipe.quantize.per_channel == "auto" and recipe.quantize.mode == "dynamic"
    data = to_tflite_bytes(small, "dynamic", per_channel="auto")
    assert len(gzip.compress(data, compresslevel=9)) == report.final.tflite_gzip_bytes
    assert len(gzip.compress(result.tflite, compresslevel=9)) == report.final.tflite_gzip_bytes
    if recipe.cluster.clusters is not None:
        assert few_valued(small) and _scale_counts(data) and set(_scale_counts(data)) == {1}


def _scale_counts(data):
    """How many scales each quantized kernel (rank 2) of a TFLite file has."""
    from tensorflow.lite.tools import flatbuffer_utils

    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    return [len(t.quantization.scale) for g in flat.subgraphs for t in g.tensors
            if t.type == 9 and len(t.shape) == 2]  # 9: INT8


def test_slimming_that_removes_nothing_does_not_fine_tune(digits):
    # The tpu preset rounds kept widths up to 128: a 24-wide model (tanh: no dead unit) cannot shrink.
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(24, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*digits.train, epochs=1, verbose=0)
    with mock.patch("tf_keras.Model.fit") as fit:
        small, result = kso.compress(model, digits.train, validation_data=digits.validation, test_data=digits.test,
                                     target="tpu", measure_latency=False)
    report = result.report
    fit.assert_not_called()
    assert [s.name for s in report.stages] == ["baseline", "slimmed"] and report.slimmed_widths == {}
    assert report.final.metrics == report.baseline.metrics and report.final.params == report.baseline.params
    assert any("removed nothing" in w and "multiple of 128" in w for w in report.warnings)
    for mine, theirs in zip(small.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
