import subprocess
import sys
import textwrap

import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso


@pytest.fixture(scope="module")
def trained(digits):
    hm = kso.DenseHyperModel(
        input_shape=(64,), outputs=10, num_layers=2, units=64, connection="residual", seed=0,
        learning_rate=3e-3,
    )
    model = hm.build(keras_tuner.HyperParameters())
    model.fit(*digits.train, epochs=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def compressed(trained, digits):
    before = [w.copy() for w in trained.get_weights()]
    result = kso.compress(
        trained, digits.train, validation_data=digits.validation, test_data=digits.test,
        sparsity=0.8, clusters=16, prune_epochs=4, cluster_epochs=2, measure_latency=False,
    )
    return result, before


def test_stages_are_measured(compressed):
    (_, report), _ = compressed
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


def test_compressed_model_is_tf_keras_with_the_spec(compressed, trained):
    (model, _), _ = compressed
    import tf_keras

    assert isinstance(model, tf_keras.Model)
    assert kso.architecture_of(model) == kso.architecture_of(trained)


def test_the_users_model_is_not_modified(compressed, trained):
    _, before = compressed
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights()))


def test_skip_clustering_and_quantization(trained, digits):
    _, report = kso.compress(
        trained, digits.train, test_data=digits.test, sparsity=0.5, clusters=None,
        quantization="none", prune_epochs=1, measure_latency=False,
    )
    assert [s.name for s in report.stages] == ["baseline", "pruned"]
    assert report.final.kernel_sparsity == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sparsity": 1.0}, r"Expected sparsity to be a float with 0 <= sparsity < 1\. Received: sparsity=1\.0\."),
        ({"clusters": 1}, r"Expected clusters to be an int in \[2, 256\] or None\. Received: clusters=1\."),
        ({"quantization": "int4"}, r"Expected quantization to be one of \['none', 'dynamic', 'float16', 'int8', 'qat'\]\. Received: quantization='int4'\."),
        ({"max_accuracy_loss": -0.01}, r"Expected max_accuracy_loss to be a number >= 0 or None\. Received: max_accuracy_loss=-0\.01\."),
        ({"target": "watch"}, r"Expected target to be one of \['mobile', 'cpu', 'gpu', 'tpu'\]\. Received: target='watch'\."),
        ({"sparsity_m_by_n": (4, 4)}, r"Expected sparsity_m_by_n to be a pair \(m, n\) of ints with 1 <= m < n, such as \(2, 4\)\. Received: sparsity_m_by_n=\(4, 4\)\."),
        ({"slim": 1.0}, r"Expected slim to be a float with 0 <= slim < 1\. Received: slim=1\.0\."),
        ({"schedule": "cosine"}, r"Expected schedule to be one of \['polynomial', 'constant'\]\. Received: schedule='cosine'\."),
        ({"multiple": 0}, r"Expected multiple to be an int >= 1\. Received: multiple=0\."),
        ({"layer_clusters": {"head": 1}}, r"Expected layer_clusters\['head'\] to be an int in \[2, 256\] or None\. Received: layer_clusters\['head'\]=1\."),
        ({"layer_sparsity": {"head": 1.5}}, r"Expected layer_sparsity\['head'\] to be a float with 0 <= layer_sparsity\['head'\] < 1\."),
        ({"exclude": ["no_such_layer"]}, r"Expected layer names of the model in exclude / layer_sparsity\. Received: \['no_such_layer'\]"),
        ({"target": "gpu", "clusters": 8}, r"Expected either target= or the stage settings it chooses, not both\. Received: target='gpu' and clusters=8"),
        ({"max_accuracy_loss": 0.01}, r"Expected validation_data to judge the search for the smallest model on"),
        ({"max_metric_increase": 0.1, "validation_data": "v"}, r"Expected validation_data to be an \(x, y\) pair"),
        ({"prune_epochs": 0}, r"Expected prune_epochs to be an int >= 1"),
        ({"per_tensor_scales": "yes"}, r"Expected per_tensor_scales to be True or False\. Received: per_tensor_scales='yes'\."),
        ({"train_data": "digits"}, r"Expected train_data to be an \(x, y\) pair of arrays or a tf\.data\.Dataset of \(x, y\) pairs\. Received: train_data of type str\."),
    ],
)
def test_bad_arguments_fail_before_training(trained, digits, kwargs, message):
    from unittest import mock

    import tf_keras

    arguments = {"train_data": digits.train}
    arguments.update(kwargs)
    train = arguments.pop("train_data")
    with mock.patch.object(tf_keras.Model, "fit") as fit, pytest.raises(kso.ConfigurationError, match=message):
        kso.compress(trained, train, **arguments)
    fit.assert_not_called()


@pytest.mark.parametrize("kwargs, chose", [({"target": "mobile"}, "target='mobile', which converts"),
                                            ({"quantization": "qat"}, "quantization='qat'")])
def test_full_integer_settings_for_a_recurrent_model_fail_before_training(kwargs, chose):
    from unittest import mock

    import keras
    import tf_keras

    model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(4), keras.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((32, 8, 8)).astype("float32"), np.arange(32) % 3
    with mock.patch.object(tf_keras.Model, "fit") as fit, pytest.raises(
            kso.ConfigurationError, match=rf"Expected a model without recurrent layers for a full-integer TFLite file\. "
            rf"Received: {chose} to int8, and a model with LSTM\. Use quantization=\"dynamic\""):
        kso.compress(model, (x, y), **kwargs)
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
        kso.compress(model, (data.train[0][:64], data.train[1][:64]), prune_epochs=1,
                     cluster_epochs=0, quantization="none", measure_latency=False)
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
    from keras_structopt.compress.fine_tune import FineTuning

    settings = FineTuning("Adam", {"learning_rate": 1e-3}, {"digit": "sparse_categorical_crossentropy", "bright": "mse"},
                          {"digit": ["accuracy"], "bright": ["mae"]}, "arguments")
    labels = np.array([0, 1, 2, 1])
    probabilities = np.eye(3, dtype="float32")[labels]
    brightness = np.array([[0.1], [0.4], [0.2], [0.3]], dtype="float32")
    y = {"digit": labels, "bright": brightness}
    # A TFLite file's outputs by signature name, in the model's order (not the losses')
    scores = settings.score({"bright": brightness + 0.5, "digit": probabilities}, y)
    assert scores["digit_accuracy"] == pytest.approx(1.0) and scores["bright_mae"] == pytest.approx(0.5)
    assert settings.metric_key(scores) == "digit_accuracy"
