import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt.export.tflite import tflite_predict
from tests.conftest import max_abs_difference


@pytest.fixture(scope="module")
def model(digits):
    model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=32, seed=0).build(
        keras_tuner.HyperParameters()
    )
    model.fit(*digits.train, epochs=2, verbose=0)
    return model


def test_float_tflite_agrees_with_keras(model, tmp_path, digits):
    path = kso.export_tflite(model, tmp_path / "model.tflite", quantization="none")
    x = digits.test[0]
    assert max_abs_difference(tflite_predict(path.read_bytes(), x), model.predict(x, verbose=0)) <= 1e-5


@pytest.mark.parametrize("quantization", ["dynamic", "float16"])
def test_quantized_tflite_is_smaller_and_close(model, tmp_path, digits, quantization):
    float_size = kso.export_tflite(model, tmp_path / "f.tflite", quantization="none").stat().st_size
    path = kso.export_tflite(model, tmp_path / f"{quantization}.tflite", quantization=quantization)
    assert path.stat().st_size < float_size * (0.7 if quantization == "float16" else 0.5)
    x, y = digits.test
    predictions = tflite_predict(path.read_bytes(), x)
    assert max_abs_difference(predictions, model.predict(x, verbose=0)) < 0.05


def test_existing_file_is_not_overwritten(model, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match=r"Expected path to be a new file\. .* pass overwrite=True"):
        kso.export_tflite(model, path)
    assert path.read_bytes() == b"keep me"
    kso.export_tflite(model, path, overwrite=True)
    assert path.read_bytes()[4:8] == b"TFL3"


def test_bad_quantization(model, tmp_path):
    with pytest.raises(kso.ConfigurationError, match=r"Expected quantization to be one of \['none', 'dynamic', 'float16', 'int8'\]\. Received: quantization='int3'\."):
        kso.export_tflite(model, tmp_path / "m.tflite", quantization="int3")


@pytest.mark.parametrize("quantization", ["none", "dynamic"])
def test_litert_runs_the_files_and_tensorflow_is_the_fallback(model, digits, monkeypatch, quantization):
    import builtins

    import numpy as np

    from keras_structopt.export.tflite import TFLiteRunner, to_tflite_bytes

    data, x = to_tflite_bytes(model, quantization), digits.test[0][:64]
    litert = TFLiteRunner(data)
    assert litert.runtime == "ai_edge_litert"  # installed with the package on this platform
    real_import = builtins.__import__

    def without_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("no LiteRT wheel here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_litert)
    fallback = TFLiteRunner(data)
    assert fallback.runtime == "tensorflow"
    np.testing.assert_allclose(litert(x), fallback(x), atol=1e-5)
    assert np.mean(litert(x).argmax(1) == model.predict(x, verbose=0).argmax(1)) >= 0.95
