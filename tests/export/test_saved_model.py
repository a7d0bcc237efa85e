import os
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_structopt as kso
from tests.conftest import max_abs_difference


@pytest.fixture(scope="module")
def model():
    return kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=16, seed=0).build(
        keras_tuner.HyperParameters()
    )


def test_tf_serving_layout_and_versions(model, tmp_path):
    first = kso.export_saved_model(model, tmp_path, "digits")
    assert first == tmp_path / "digits" / "1"
    assert (first / "saved_model.pb").is_file() and (first / "variables").is_dir()
    assert kso.export_saved_model(model, tmp_path, "digits").name == "2"
    assert kso.export_saved_model(model, tmp_path, "digits", version=7).name == "7"
    assert kso.export_saved_model(model, tmp_path, "digits").name == "8"
    assert sorted(os.listdir(tmp_path / "digits")) == ["1", "2", "7", "8"]  # no temporary left


def test_existing_version_is_never_overwritten(model, tmp_path):
    path = kso.export_saved_model(model, tmp_path, "digits", version=3)
    stamp = (path / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=r"Received: version=3, but .* exists; existing versions: \[3\]"):
        kso.export_saved_model(model, tmp_path, "digits", version=3)
    assert (path / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sorted(os.listdir(tmp_path / "digits")) == ["3"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "../escape"}, r"Expected name to be a model name .* Received: name='\.\./escape'\."),
        ({"name": ""}, r"Received: name=''\."),
        ({"version": 0}, r"Expected version to be an int >= 1\. Received: version=0\."),
    ],
)
def test_bad_arguments(model, tmp_path, kwargs, message):
    arguments = {"name": "digits"}
    arguments.update(kwargs)
    with pytest.raises(kso.ConfigurationError, match=message):
        kso.export_saved_model(model, tmp_path, **arguments)


def test_serving_signature_matches_the_model(model, tmp_path, digits):
    path = kso.export_saved_model(model, tmp_path, "digits")
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["inputs"]
    x = digits.test[0][:32]
    outputs = serve(inputs=tf.constant(x))["outputs"].numpy()
    assert max_abs_difference(outputs, model.predict(x, verbose=0)) <= 1e-5


def test_saved_model_cli_agrees_with_the_model(model, tmp_path, digits):
    path = kso.export_saved_model(model, tmp_path, "digits")
    x = digits.test[0][:16]
    np.save(tmp_path / "x.npy", x)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run(
        [cli, "run", "--dir", str(path), "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"inputs={tmp_path / 'x.npy'}", "--outdir", str(tmp_path / "cli_out")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = np.load(tmp_path / "cli_out" / "outputs.npy")
    assert max_abs_difference(outputs, model.predict(x, verbose=0)) <= 1e-5


def test_tf_keras_models_export_too(model, tmp_path, digits):
    legacy = kso.to_tf_keras(model)
    path = kso.export_saved_model(legacy, tmp_path, "legacy")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = digits.test[0][:8]
    assert max_abs_difference(serve(inputs=tf.constant(x))["outputs"], model.predict(x, verbose=0)) <= 1e-5
