from unittest import mock

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt.export import tflite_predict
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

    from keras_structopt.export import TFLiteRunner, to_tflite_bytes

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


def _clustered_copy(model, values=6):
    """A copy of `model` whose kernels each hold `values` shared values (what clustering leaves)."""
    import keras
    import numpy as np

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        if getattr(layer, "kernel", None) is not None:
            kernel = np.asarray(layer.kernel)
            centroids = np.quantile(kernel, np.linspace(0.05, 0.95, values))
            layer.kernel.assign(centroids[np.abs(kernel[..., None] - centroids).argmin(-1)].astype("float32"))
    return copy


def _int8_kernels(data):
    """(scale count, distinct values) of every int8 tensor of rank 2 in a TFLite file."""
    import numpy as np
    from tensorflow.lite.tools import flatbuffer_utils

    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    found = []
    for subgraph in flat.subgraphs:
        for tensor in subgraph.tensors:
            buffer = flat.buffers[tensor.buffer].data
            if tensor.type == 9 and len(tensor.shape) == 2 and buffer is not None:  # 9: INT8
                found.append((len(tensor.quantization.scale), len(np.unique(np.asarray(buffer)))))
    return found


def test_clustered_kernels_get_per_tensor_scales_and_a_smaller_file(model, digits):
    import gzip

    import keras
    import numpy as np

    from keras_structopt.export import to_tflite_bytes
    from keras_structopt.export._tflite import few_valued

    clustered = _clustered_copy(model)
    assert not few_valued(kso.to_tf_keras(model)) and few_valued(kso.to_tf_keras(clustered))
    x = digits.train[0][:256]
    chosen = to_tflite_bytes(clustered, "int8", representative_data=x, per_channel="auto")
    channel = to_tflite_bytes(clustered, "int8", representative_data=x, per_channel=True)
    assert to_tflite_bytes(model, "int8", representative_data=x, per_channel="auto") == to_tflite_bytes(
        model, "int8", representative_data=x)  # unclustered: TFLite's per-channel default
    # One scale per kernel, and each kernel keeps its 6 shared values as 6 int8 values.
    assert _int8_kernels(chosen) == [(1, 6)] * 3
    assert all(scales > 1 for scales, _ in _int8_kernels(channel))
    assert len(gzip.compress(chosen, 9)) < len(gzip.compress(channel, 9))
    test = digits.test[0]
    reference = clustered.predict(test, verbose=0).argmax(-1)
    for data in (chosen, channel):
        assert np.mean(tflite_predict(data, test).argmax(-1) == reference) >= 0.97
    # A batch normalization is folded into the kernel before quantizing: per-channel scales stay.
    normed = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32), keras.layers.BatchNormalization(),
                               keras.layers.Dense(10)])
    normed.layers[0].kernel.assign(np.resize(np.float32([0.5, -0.5, 0.0, 0.25]), (64, 32)))
    normed.layers[2].kernel.assign(np.resize(np.float32([0.5, -0.5, 0.0, 0.25]), (32, 10)))
    assert not few_valued(kso.to_tf_keras(normed))


def test_bad_per_channel(model):
    from keras_structopt.export import to_tflite_bytes

    with pytest.raises(kso.ConfigurationError, match=r"Expected per_channel to be one of \[True, False, 'auto'\]\. Received: per_channel='yes'"):
        to_tflite_bytes(model, "dynamic", per_channel="yes")
    with pytest.raises(kso.ConfigurationError, match=r"Received: per_channel=1\."):  # 1 is not True
        to_tflite_bytes(model, "dynamic", per_channel=1)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_full_integer_conversion_of_recurrent_layers_is_refused_before_the_calibrator_crashes(cell, digits):
    # TensorFlow Lite's calibrator kills the process (segmentation fault) on a recurrent layer's
    # loop: the conversion must raise a clear error instead, and dynamic range still works.
    import keras
    import numpy as np

    from keras_structopt.export import to_tflite_bytes

    model = keras.Sequential([keras.Input((8, 8)), getattr(keras.layers, cell)(4), keras.layers.Dense(10)])
    x = np.random.default_rng(0).random((16, 8, 8)).astype("float32")
    with pytest.raises(kso.ConfigurationError, match=rf'Expected a model without recurrent layers for quantization="int8".*'
                       rf"Received: a model with {cell}\. Use quantization=\"dynamic\""):
        to_tflite_bytes(model, "int8", representative_data=x)
    assert to_tflite_bytes(model, "dynamic")[4:8] == b"TFL3"


def test_the_converter_prints_nothing_and_the_users_output_is_kept(model, tmp_path, digits, capfd, caplog):
    import logging

    print("before")
    kso.export_tflite(model, tmp_path / "m.tflite", quantization="int8", representative_data=digits.train[0][:64])
    logging.getLogger("tensorflow").warning("Gradients do not exist for variables, said by the user")
    print("after")
    out, err = capfd.readouterr()
    assert "before" in out and "after" in out
    assert "inference_type" not in out + err  # TFLite's C++ prints, silenced
    assert "said by the user" in caplog.text  # outside the library's calls, the user's logging is untouched


def test_an_isolated_conversion_gives_the_same_file_and_a_crash_is_an_error_not_the_end(model, digits, tmp_path):
    """`isolated_conversion()`: the conversion runs in a child process. A Keras 3 model converts to the same
    graph and weights as in this process; a tf_keras model converts to int8 with its calibration inputs carried over; and
    a converter that really crashes (TFLite's calibrator on an inf, the checks bypassed) is raised here as
    a ConfigurationError naming the signal, with this process alive."""
    import numpy as np

    from keras_structopt.export import isolated_conversion, to_tflite_bytes
    from keras_structopt.export._signature import write_saved_model
    from keras_structopt.export._tflite import _convert_in_child

    x = digits.test[0]
    with isolated_conversion():
        isolated = to_tflite_bytes(model, "dynamic")
        integer = to_tflite_bytes(kso.to_tf_keras(model), "int8", representative_data=digits.train[0])
    # The same file, byte for byte (every conversion records one source in the converter's metadata).
    assert isolated == to_tflite_bytes(model, "dynamic")
    # A large model converts in a child process of its own: the same file again.
    with mock.patch("keras_structopt.export._tflite.LARGE_MODEL_PARAMS", 1000), \
            mock.patch("keras_structopt.export._tflite._convert_in_child", wraps=_convert_in_child) as child:
        large = to_tflite_bytes(model, "dynamic")
    assert child.call_count == 1 and large == isolated
    from keras_structopt.export import tensor_types

    assert "float32" not in tensor_types(integer)  # fully integer, inputs and outputs included
    agreement = (tflite_predict(integer, x).argmax(1) == model.predict(x, verbose=0).argmax(1)).mean()
    assert agreement >= 0.95

    folder = tmp_path / "convert"
    folder.mkdir()
    write_saved_model(model, str(folder / "saved_model"))
    poisoned = np.array(x[:8], dtype="float32")
    poisoned[3, 5] = np.inf

    def examples():
        for row in poisoned:
            yield [row[None]]

    options = {"quantization": "int8", "per_channel": True, "integer_io": True}
    with pytest.raises(kso.ConfigurationError, match=r"run in a child process, was killed by SIG[A-Z]+ "
                                                     r".*this process and its files are untouched"):
        _convert_in_child(str(folder), options, examples)
