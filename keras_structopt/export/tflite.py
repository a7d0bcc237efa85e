"""TFLite conversion and inference for Keras 3 and tf_keras models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from keras_structopt import _checks

QUANTIZATIONS = ("none", "dynamic", "float16")


def _input_signature(model, batch_size=None):
    import tensorflow as tf

    spec = model.inputs[0]
    return tf.TensorSpec(
        shape=(batch_size,) + tuple(spec.shape[1:]), dtype=tf.as_dtype(spec.dtype), name="inputs"
    )


def _is_keras3(model) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _serving_module(model, signature):
    """A `tf.Module` holding `model`'s variables and a `serve` function over it.

    Only the variables are tracked: tracking the tf_keras model itself would make
    TensorFlow trace and save every layer's call function (slow, and unused by TF
    Serving and the TFLite converter, which need the signature alone).
    """
    import tensorflow as tf

    @tf.function(input_signature=[signature])
    def serve(inputs):
        return {"outputs": model(inputs, training=False)}

    module = tf.Module()
    module.model_variables = list(model.variables)
    module.serve = serve
    return module


def write_saved_model(model, path) -> None:
    """Writes `model` as a SavedModel with a `serving_default` signature `inputs -> outputs`.

    Keras 3 models go through `keras.export.ExportArchive` (which tracks their
    variables); tf_keras models through `tf.saved_model.save` on a `tf.Module`.
    """
    import tensorflow as tf

    signature = _input_signature(model)
    if _is_keras3(model):
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            name="serving_default",
            fn=lambda inputs: {"outputs": model(inputs, training=False)},
            input_signature=[signature],
        )
        archive.write_out(str(path), verbose=False)
        return
    module = _serving_module(model, signature)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _convertible(model):
    """The model to convert: a tf_keras rendering of its spec when it has one."""
    from keras_structopt.bridge import architecture_of, rerender

    if architecture_of(model) is None:
        return model
    import tf_keras

    return rerender(model, tf_keras, for_tflite=True)


def to_tflite_bytes(model, quantization: str = "dynamic") -> bytes:
    """Converts a Keras 3 or tf_keras model to a TFLite flatbuffer.

    Recurrent models are converted with a batch of one example, which lets the
    converter use TFLite's fused sequence kernels (LSTM) or a `WHILE` loop (GRU)
    instead of an unrolled graph many times larger; `tflite_predict` feeds them one
    example at a time.

    Args:
        model: The model (one input).
        quantization: `"none"` (float32), `"dynamic"` (int8 weights, dynamic-range)
            or `"float16"` (float16 weights).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export.tflite import to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> to_tflite_bytes(model, "none")[4:8]
        b'TFL3'
    """
    import tensorflow as tf

    from keras_structopt.bridge import architecture_of

    _checks.one_of("quantization", quantization, QUANTIZATIONS)
    model = _convertible(model)
    with tempfile.TemporaryDirectory(prefix="structopt-tflite-") as directory:
        if _is_keras3(model):
            write_saved_model(model, directory)
            converter = tf.lite.TFLiteConverter.from_saved_model(
                directory, signature_keys=["serving_default"]
            )
        else:
            spec = architecture_of(model)
            batch_size = 1 if spec is not None and spec.family == "recurrent" else None
            module = _serving_module(model, _input_signature(model, batch_size))
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [module.serve.get_concrete_function()], module
            )
        if quantization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def export_tflite(model, path, *, quantization: str = "dynamic", overwrite: bool = False) -> Path:
    """Writes `model` as a TFLite file.

    Args:
        model: A Keras 3 or tf_keras model (a `compress` result, a tuner's best model).
        path: The `.tflite` file to write.
        quantization: `"none"`, `"dynamic"` (default) or `"float16"`.
        overwrite: Replace an existing file; by default an existing file is an error.

    Returns:
        The path written.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> path = kso.export_tflite(model, getfixture("tmp_path") / "digits.tflite")
        >>> path.stat().st_size > 0
        True
    """
    _checks.one_of("quantization", quantization, QUANTIZATIONS)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Expected path to be a new file. Received: path={str(path)!r}, which exists; "
            "pass overwrite=True to replace it."
        )
    data = to_tflite_bytes(model, quantization)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    return path


def tflite_predict(data: bytes, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Runs a TFLite flatbuffer on `x` with the TFLite interpreter; returns its outputs.

    Example:
        >>> import numpy as np, keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export.tflite import to_tflite_bytes, tflite_predict
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> x = np.random.rand(3, 64).astype("float32")
        >>> tflite_predict(to_tflite_bytes(model, "none"), x).shape
        (3, 10)
    """
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(
            model_content=data,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    input_detail = interpreter.get_input_details()[0]
    if input_detail["shape_signature"][0] == 1:  # converted for one example at a time
        batch_size = 1
    outputs = []
    current = None
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start : start + batch_size]).astype(input_detail["dtype"])
        if current != len(batch):
            interpreter.resize_tensor_input(input_detail["index"], batch.shape)
            interpreter.allocate_tensors()
            current = len(batch)
        interpreter.set_tensor(input_detail["index"], batch)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return np.concatenate(outputs)
