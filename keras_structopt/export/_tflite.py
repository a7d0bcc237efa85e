"""TFLite conversion of Keras 3 and tf_keras models, and the files it writes."""

from __future__ import annotations

import contextlib
import contextvars
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from keras_structopt import _checks
from keras_structopt._env import LARGE_MODEL_PARAMS, child_environment
from keras_structopt._quiet import library_noise
from keras_structopt._types import Inputs, Model, PathLike, TFLiteQuantization
from keras_structopt.bridge._graph import iter_layers
from keras_structopt.export._runtime import TABULAR_METADATA, _indexed_inputs
from keras_structopt.export._signature import (
    _input_specs,
    _is_keras3,
    _serving_module,
    serving_names,
    write_saved_model,
)

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")

# The TFLite metadata entry that holds a tabular model's categorical vocabularies.


def _convertible(model):
    """The model to convert: a tf_keras copy (LSTMs made exact), or the Keras 3 model
    itself when the bridge cannot carry it."""
    from keras_structopt.bridge import unsupported_layers
    from keras_structopt.bridge._bridge import is_tf_keras, tf_keras_copy

    if _is_keras3(model) and unsupported_layers(model):
        return model
    if is_tf_keras(model) and not _fused_lstms(model):
        return model  # nothing to change for the converter: no copy needed
    return tf_keras_copy(model, for_tflite=True)


def _fused_lstms(model) -> bool:
    """Whether any LSTM would take TFLite's fused kernel (see `bridge.tf_keras_copy`)."""
    import tf_keras

    for _, layer in _layers(model):
        bidirectional = isinstance(layer, tf_keras.layers.Bidirectional)
        for lstm in (layer.forward_layer, layer.backward_layer) if bidirectional else (layer,):
            if isinstance(lstm, tf_keras.layers.LSTM) and not lstm.recurrent_dropout:
                return True
    return False


def _is_rnn(layer) -> bool:
    import keras
    import tf_keras

    return isinstance(layer, (tf_keras.layers.RNN, tf_keras.layers.Bidirectional, keras.layers.RNN,
                              keras.layers.Bidirectional))


def _layers(model):
    return iter_layers(model)


def recurrent_layers(model) -> list[str]:
    """The class names of `model`'s recurrent layers (LSTM, GRU, Bidirectional, ...), sorted.

    Example:
        >>> import keras
        >>> recurrent_layers(keras.Sequential([keras.Input((8, 8)), keras.layers.GRU(4), keras.layers.Dense(2)]))
        ['GRU']
    """
    return sorted({type(layer).__name__ for _, layer in _layers(model) if _is_rnn(layer)})


def _representative(model, data, count: int = 128):
    """A TFLite representative dataset: up to `count` single examples of `data`, in input order."""
    import tensorflow as tf

    from keras_structopt.data._datasets import dataset_arrays, is_batched, is_dataset, model_input_rank

    if is_dataset(data):  # inputs (x) of a dataset of (x, y) pairs, batched or not
        batched = is_batched(data, model_input_rank(model))
        data, _ = dataset_arrays(data.take(count), "representative_data", batched=batched)  # >= count examples
    if isinstance(data, dict):
        names, _ = serving_names(model)
        arrays = [np.asarray(data[name]) for name in names]
    elif isinstance(data, (list, tuple)):
        arrays = [np.asarray(v) for v in data]
    else:
        arrays = [np.asarray(data)]
    dtypes = [tf.as_dtype(t.dtype).as_numpy_dtype for t in model.inputs]
    names, _ = serving_names(model)
    if not arrays or any(len(a) == 0 for a in arrays):
        raise _checks.error(
            'Expected representative_data to hold training inputs (a few hundred) for quantization="int8". '
            f"Received: {min((len(a) for a in arrays), default=0)} examples."
        )
    for array in arrays:  # TFLite's calibrator crashes the process on a non-finite value
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array[:count]).all():
            bad = int((~np.isfinite(array[:count])).sum())
            raise _checks.error(
                'Expected representative_data to hold finite numbers for quantization="int8". Received: '
                f"{bad} NaN or inf values among the first {min(count, len(array))} examples."
            )

    def examples():
        for i in range(min(count, len(arrays[0]))):
            example = [a[i : i + 1].astype(dtype) for a, dtype in zip(arrays, dtypes)]
            # By signature name where there are several inputs: the converted function's
            # argument order need not be the model's input order.
            yield dict(zip(names, example)) if len(example) > 1 else example

    return examples


# A kernel with at most this many distinct values is "few-valued" (clustering keeps 2-64).
FEW_VALUES = 64


def few_valued(model) -> bool:
    """Whether every kernel of `model` (weights of rank >= 2) holds at most 64 distinct values.

    True for a clustered model, the case where `to_tflite_bytes` scales int8 weights per
    tensor, so the file keeps the shared values. False when the model has a
    `BatchNormalization` layer (the converter folds it into the kernel before
    quantizing: the shared values are scaled per channel there) or a quantization-aware
    layer (its own fake-quant ranges decide), or no kernel at all.

    Example:
        >>> import numpy as np, tf_keras
        >>> model = tf_keras.Sequential([tf_keras.Input((16,)), tf_keras.layers.Dense(32)])
        >>> few_valued(model)
        False
        >>> _ = model.layers[0].kernel.assign(np.resize([0.5, -0.5, 0.0, 0.25], (16, 32)))
        >>> few_valued(model)
        True
    """
    kernels = 0
    for _, layer in _layers(model):
        kind = type(layer).__name__
        if "BatchNormalization" in kind or "Quantize" in kind:
            return False
        for weight in layer.weights:
            if "moving_mean" in weight.name:  # a batch normalization inside a nested layer
                return False
            if len(weight.shape) >= 2:
                kernels += 1
                if len(np.unique(np.asarray(weight.numpy()))) > FEW_VALUES:
                    return False
    return kernels > 0


def strip_tflite(data: bytes) -> bytes:
    """A TFLite file without the strings and metadata inference does not need.

    Tensor names, the subgraph name, the description and the converter's metadata
    (`min_runtime_version`, `CONVERSION_METADATA`) go; the operators, weights and the
    `serving_default` signature (inputs and outputs by name) stay, so the file runs
    and serves exactly as before. A few hundred bytes: most of a tiny model's file.

    Example:
        >>> import keras_tuner, numpy as np, keras_structopt as kso
        >>> from keras_structopt.export import tflite_predict, to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> data = to_tflite_bytes(model, "none")
        >>> x = np.random.rand(2, 64).astype("float32")
        >>> small = strip_tflite(data)
        >>> len(small) < len(data), bool(np.array_equal(tflite_predict(small, x), tflite_predict(data, x)))
        (True, True)
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    model.description = None
    for subgraph in model.subgraphs:
        subgraph.name = None
        for tensor in subgraph.tensors:
            tensor.name = None
    kept = []
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == TABULAR_METADATA:
            kept.append(entry)  # a tabular file's vocabularies: its categorical inputs need them
        else:
            model.buffers[entry.buffer].data = None
    model.metadata = kept or None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


_LOOKUPS = {"StringLookup": "string", "IntegerLookup": "integer"}


def _input_lookups(model) -> dict[str, dict]:
    """`{input layer name: lookup layer config}` for each lookup that reads a model input directly
    (and is that input's only reader), in a tf_keras functional model."""
    import tf_keras

    if not isinstance(model, tf_keras.Model) or isinstance(model, tf_keras.Sequential):
        return {}
    if not any(type(layer).__name__ in _LOOKUPS for _, layer in _layers(model)):
        return {}
    try:
        config = model.get_config()
    except NotImplementedError:  # a subclassed model
        return {}
    if not isinstance(config, dict) or "layers" not in config:
        return {}
    inputs = {layer["name"] for layer in config["layers"] if layer["class_name"] == "InputLayer"}
    readers: dict[str, list[str]] = {}
    for layer in config["layers"]:
        for source in _sources(layer.get("inbound_nodes")):
            readers.setdefault(source, []).append(layer["name"])
    found = {}
    for layer in config["layers"]:
        sources = list(_sources(layer.get("inbound_nodes")))
        if (layer["class_name"] in _LOOKUPS and len(sources) == 1 and sources[0] in inputs
                and readers.get(sources[0]) == [layer["name"]]):
            found[sources[0]] = layer
    return found


def _sources(nodes):
    """The names of the layers a tf_keras config's `inbound_nodes` read, however nested."""
    if isinstance(nodes, (list, tuple)):
        if len(nodes) >= 3 and isinstance(nodes[0], str) and isinstance(nodes[1], int):
            yield nodes[0]
            for value in nodes[3:]:  # keyword arguments may hold more tensors
                yield from _sources(list(value.values()) if isinstance(value, dict) else value)
            return
        for node in nodes:
            yield from _sources(node)
    elif isinstance(nodes, dict):
        for value in nodes.values():
            yield from _sources(value)


def _lookup_features(model, lookups) -> list[dict]:
    """The categorical inputs behind `lookups`: name, serving name, kind and vocabulary."""
    names = dict(zip([t._keras_history[0].name for t in model.inputs], serving_names(model)[0]))
    features = []
    for input_name, layer in lookups.items():
        settings = layer["config"]
        if int(settings.get("num_oov_indices", 1)) != 1 or settings.get("mask_token") is not None or (
                settings.get("output_mode", "int") != "int" or settings.get("invert")):
            raise _checks.error(
                f"Expected lookup layer {layer['name']!r} to have num_oov_indices=1, no mask_token and "
                "output_mode='int' for a TFLite file (which takes its indices). Received: num_oov_indices="
                f"{settings.get('num_oov_indices')}, mask_token={settings.get('mask_token')!r}, output_mode="
                f"{settings.get('output_mode')!r}."
            )
        vocabulary = model.get_layer(layer["name"]).get_vocabulary(include_special_tokens=False)
        kind = _LOOKUPS[layer["class_name"]]
        vocabulary = [int(v) for v in vocabulary] if kind == "integer" else [
            v.decode() if isinstance(v, bytes) else str(v) for v in vocabulary]
        features.append({"name": input_name, "input": names[input_name], "kind": kind, "vocabulary": vocabulary})
    return features


def _indexed_model(model, lookups):
    """A copy of `model` without the lookups on its inputs: those inputs are the indices (int64)."""
    import copy

    import tf_keras

    config = copy.deepcopy(model.get_config())
    dropped = {layer["name"]: source for source, layer in lookups.items()}
    layers = []
    for layer in config["layers"]:
        if layer["name"] in dropped:
            continue
        if layer["class_name"] == "InputLayer" and layer["name"] in lookups:
            layer["config"]["dtype"] = "int64"
        for node in layer.get("inbound_nodes") or []:
            for source in node:
                if isinstance(source, list) and source and source[0] in dropped:
                    source[0], source[1], source[2] = dropped[source[0]], 0, 0
        layers.append(layer)
    config["layers"] = layers
    indexed = tf_keras.Model.from_config(config)
    for layer in indexed.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return indexed


def _with_vocabularies(data: bytes, features: list[dict]) -> bytes:
    """`data` with a metadata entry listing the categorical inputs and their vocabularies."""
    import json

    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps({"version": 1, "categorical": features}).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = TABULAR_METADATA
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_tflite_bytes(
    model: Model, quantization: TFLiteQuantization = "dynamic", *, representative_data: Inputs | None = None,
    strip: bool = False, per_channel: bool | Literal["auto"] = True,
) -> bytes:
    """Converts a Keras 3 or tf_keras model to a TFLite flatbuffer.

    Recurrent models are converted with a batch of one example, which lets the
    converter use a `WHILE` loop instead of an unrolled graph many times larger
    (and a dynamic batch does not convert); `tflite_predict` feeds them one example
    at a time. The file's `serving_default` signature has the SavedModel's names.
    A model of 20 M parameters or more (`LARGE_MODEL_PARAMS`) is converted in a child
    process, as inside `isolated_conversion()`: the converter needs tens of times the
    weights while it runs, and only a process's end gives that memory back. The file
    is the same byte for byte.

    Args:
        model: The model (one input or several).
        quantization: `"none"` (float32), `"dynamic"` (int8 weights, dynamic-range),
            `"float16"` (float16 weights) or `"int8"` (full integer: int8 weights and
            activations, int8 inputs and outputs where the inputs are float; the
            activation ranges come from `representative_data`; a quantization-aware
            model keeps the ranges its fake-quant nodes learned, but TFLite's converter
            asks for `representative_data` all the same).
        representative_data: Inputs to calibrate `"int8"` with (a few hundred
            training examples: an array, or a list/dict of arrays).
        strip: Drop tensor names and converter metadata (`strip_tflite`).
        per_channel: How `"dynamic"` and `"int8"` scale the int8 weights: one scale per
            output channel (True, TFLite's default), one per tensor (False), or `"auto"`:
            one per tensor when the model's weights are already shared values (at most 64
            per kernel, no BatchNormalization: a clustered model), one per channel otherwise.
            A kernel clustered to k values keeps exactly k int8 values with one scale;
            per-channel scales would turn
            them into up to k per channel, which costs bytes in a gzip'd file and
            gains no accuracy (the shared values are what the model computes with).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> to_tflite_bytes(model, "none")[4:8]
        b'TFL3'
    """
    import tensorflow as tf

    _checks.one_of("quantization", quantization, QUANTIZATIONS)
    _checks.one_of("per_channel", per_channel, (True, False, "auto"))
    if quantization == "int8" and representative_data is None:
        raise _checks.error(
            'Expected representative_data (a few hundred training inputs) for quantization="int8". '
            "Received: representative_data=None."
        )
    model = _convertible(model)
    recurrent = recurrent_layers(model)
    if quantization == "int8" and recurrent:
        # TensorFlow Lite's calibrator runs the recurrent layers' loops and kills the process
        # (a segmentation fault, TensorFlow 2.21, LSTM and GRU alike): refuse it here.
        raise _checks.error(
            'Expected a model without recurrent layers for quantization="int8": TensorFlow Lite\'s calibrator '
            f"crashes the process on their loops. Received: a model with {', '.join(recurrent)}. "
            'Use quantization="dynamic" (int8 weights, float activations) for it.'
        )
    lookups = _input_lookups(model)
    categorical: list[dict] = []
    if lookups:  # TFLite's built-in operators have no string tables: the file takes the indices
        categorical = _lookup_features(model, lookups)
        model = _indexed_model(model, lookups)
        if representative_data is not None:
            representative_data = _indexed_inputs(categorical, representative_data)
    if quantization in ("dynamic", "int8") and per_channel == "auto":
        per_channel = not few_valued(model)
    options = {
        "quantization": quantization,
        "per_channel": bool(per_channel),
        "integer_io": quantization == "int8" and all(tf.as_dtype(t.dtype).is_floating for t in model.inputs),
    }
    examples = _representative(model, representative_data) if quantization == "int8" else None
    with tempfile.TemporaryDirectory(prefix="structopt-tflite-") as directory:
        saved = os.path.join(directory, "saved_model")
        module = None
        if _is_keras3(model):
            write_saved_model(model, saved)
        else:
            module = _serving_module(model, _input_specs(model, 1 if recurrent else None))
        # Untrusted input (a converter crash must not end this process), or a large model (the converter's
        # memory goes back with the child's end).
        if quantization in _ISOLATED.get() or int(model.count_params()) >= LARGE_MODEL_PARAMS:
            if module is not None:
                tf.saved_model.save(module, saved, signatures={"serving_default": module.serve.get_concrete_function()})
            data = _convert_in_child(directory, options, examples)
        else:
            if module is None:
                converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serving_default"])
            else:
                converter = tf.lite.TFLiteConverter.from_concrete_functions(
                    [module.serve.get_concrete_function()], module
                )
            configure_converter(converter, options, examples)
            try:
                with library_noise(stdout=True):  # the converter's C++ prints, not the user's output
                    data = converter.convert()
            except Exception as error:  # the converter raises many types; name the cause
                if quantization != "int8":
                    raise
                raise _not_integer(str(error)) from error
    if categorical:
        data = _with_vocabularies(data, categorical)
    return strip_tflite(data) if strip else data


_SAVED_MODEL_TYPE = 1  # TFLite's ConversionMetadata ModelType.TF_SAVED_MODEL


def configure_converter(converter, options: dict, examples) -> None:
    """Sets a `tf.lite.TFLiteConverter` up for `options` (quantization, per-channel scales, int8
    inputs and outputs) and the representative `examples` (a generator function) for int8."""
    import tensorflow as tf

    quantization = options["quantization"]
    metadata = getattr(converter, "_metadata", None)
    if metadata is not None and getattr(metadata, "environment", None) is not None:
        # The file records where the converter started from: concrete functions (a tf_keras model, here)
        # or a SavedModel (a Keras 3 model, or any model converted in a child process). One value for all,
        # so that a file is byte for byte the same however it was converted (`compress` measures a
        # large model's files in a child, `export_tflite` converts the model it returned here).
        metadata.environment.modelType = _SAVED_MODEL_TYPE
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization in ("dynamic", "int8") and not options["per_channel"]:
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = examples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if options["integer_io"]:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8


def _not_integer(reason: str):
    first = reason.splitlines()[0][:300] if reason else "?"
    return _checks.error(
        'Expected a model whose every operation has a full-integer TFLite kernel for quantization="int8". '
        f"Received: a model the converter could not make fully int8 ({first}). "
        'Use quantization="dynamic" for it.'
    )


# The quantizations whose conversions run in a child process (`isolated_conversion`); () outside it.
_ISOLATED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("structopt_isolated_conversion",
                                                                             default=())


@contextlib.contextmanager
def isolated_conversion(quantizations: Sequence[str] | str = QUANTIZATIONS) -> Iterator[None]:
    """TFLite conversions inside run in a child process: for a model or data you do not trust.

    TensorFlow Lite's converter and its int8 calibrator are C++; on some inputs they end the
    process with a segmentation fault rather than raise. Inside this context
    `to_tflite_bytes`, `export_tflite` and `compress` write the model as a SavedModel
    (and int8's calibration examples as `.npz`) into a temporary directory and convert it
    in a fresh Python process; a crash there is raised here as a `ConfigurationError` that
    names the signal, and this process goes on. It costs one process start (a TensorFlow
    import, seconds) per conversion. A model of 20 M parameters or more is converted
    this way in any case (`LARGE_MODEL_PARAMS`: for the converter's memory).

    Args:
        quantizations: The conversions to isolate, by quantization (default: all four);
            `"int8"` alone isolates only the calibrated ones, where TensorFlow Lite's
            crashes have been seen (the calibrator runs the model on the data in C++).

    The `keras-structopt export` command converts the model file it is given this way;
    `keras-structopt compress` isolates its int8 calibrations (a guarded compression
    converts every stage it measures: isolating them all would cost seconds each).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import isolated_conversion, to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> with isolated_conversion():
        ...     data = to_tflite_bytes(model, "dynamic")
        >>> data[4:8]
        b'TFL3'
    """
    chosen = (quantizations,) if isinstance(quantizations, str) else tuple(quantizations)
    for quantization in chosen:
        _checks.one_of("quantizations", quantization, QUANTIZATIONS)
    token = _ISOLATED.set(chosen)
    try:
        yield
    finally:
        _ISOLATED.reset(token)


def _convert_in_child(directory: str, options: dict, examples) -> bytes:
    """Converts `directory`/saved_model in a fresh Python process (`_convert_child`); its bytes."""
    import json
    import signal
    import subprocess
    import sys

    folder = Path(directory)
    if examples is not None:  # the calibration inputs, materialised once: the child reads them back
        rows = list(examples())
        named = isinstance(rows[0], dict)
        keys = list(rows[0]) if named else list(range(len(rows[0])))
        arrays = {f"input_{i}": np.concatenate([row[k] for row in rows]) for i, k in enumerate(keys)}
        np.savez(str(folder / "examples.npz"), **arrays)  # type: ignore[arg-type]
        options = dict(options, example_names=[str(k) for k in keys] if named else None)
    (folder / "options.json").write_text(json.dumps(options))
    child = subprocess.run([sys.executable, "-m", "keras_structopt.export._convert_child", str(folder)],
                           capture_output=True, text=True, env=child_environment())
    if child.returncode == 0 and (folder / "model.tflite").is_file():
        return (folder / "model.tflite").read_bytes()
    reason = (folder / "error.txt").read_text() if (folder / "error.txt").is_file() else ""
    if reason and options["quantization"] == "int8":
        raise _not_integer(reason)
    if reason:
        raise _checks.error(f"Expected a model TFLite's converter can convert. Received: {reason[:500]}")
    if child.returncode >= 0:  # it failed without a word of its own: what it printed last
        last = [line for line in child.stderr.splitlines() if line.strip()][-3:]
        raise _checks.error(
            "Expected a model and representative_data that TFLite's converter converts. Received: its conversion, "
            f"run in a child process, exited with status {child.returncode} "
            f"({' | '.join(last)[-500:] or 'no output'}); this process and its files are untouched."
        )
    name = signal.Signals(-child.returncode).name
    if name == "SIGKILL":
        raise _checks.error(
            "Expected a model TFLite's converter can convert in this machine's memory. Received: its conversion, "
            "run in a child process, was killed by SIGKILL (most likely the kernel's out-of-memory killer: the "
            "converter needs tens of times the model's weights; this process and its files are untouched)."
        )
    raise _checks.error(
        "Expected a model and representative_data that TFLite's converter converts. Received: its conversion, run "
        f"in a child process, was killed by {name} (a crash in TensorFlow Lite's C++ code; this process and its "
        "files are untouched). Try another quantization (\"dynamic\" calibrates nothing)."
    )


# The attribute on a model `compress` returns: the conversion its final stage was measured with.
MEASURED_CONVERSION = "_structopt_conversion"
_DEFAULTS = {"quantization": "dynamic", "strip": False, "per_channel": True, "representative_data": None}


def measured_conversion(model) -> dict:
    """The conversion `export_tflite` uses for `model` by default: the one `compress` measured it with
    (its quantization, strip, per-channel scales and calibration inputs), else TFLite's dynamic range."""
    return dict(getattr(model, MEASURED_CONVERSION, None) or _DEFAULTS)


def _check_destination(path, overwrite: bool) -> Path:
    """Raises (before any conversion) unless `path` can take a new .tflite file."""
    path = Path(path)
    _checks.writable_directory("path's folder", path.parent)
    if path.is_dir():
        raise _checks.error(f"Expected path to be a .tflite file. Received: path={str(path)!r}, a directory.")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Expected path to be a new file. Received: path={str(path)!r}, which exists; "
            "pass overwrite=True to replace it."
        )
    return path


def write_tflite(data: bytes, path: PathLike, *, overwrite: bool = False) -> Path:
    """Writes TFLite bytes to `path` atomically (a temporary file, flushed to disk, then a rename);
    never replaces a file unless `overwrite`."""
    path = _check_destination(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return path


def export_tflite(
    model: Model, path: PathLike, *, quantization: TFLiteQuantization | None = None,
    representative_data: Inputs | None = None, strip: bool | None = None,
    per_channel: bool | Literal["auto"] | None = None, overwrite: bool = False,
) -> Path:
    """Writes `model` as a TFLite file.

    With no options, a model that `compress` returned is converted as its final stage
    was measured (its quantization, stripping, weight scales and calibration inputs),
    so the file is the measured one (`CompressionResult.save_tflite` writes those very
    bytes); any other model gets TFLite's dynamic-range conversion.

    Args:
        model: A Keras 3 or tf_keras model (a `compress` result, a tuner's best model).
        path: The `.tflite` file to write.
        quantization: `"none"`, `"dynamic"`, `"float16"` or `"int8"` (full integer;
            see `to_tflite_bytes`); None: the measured one, else `"dynamic"`.
        representative_data: Training inputs to calibrate `"int8"` with (arrays, or a
            `tf.data.Dataset` of `(x, y)` pairs: its first examples' `x`).
        strip: Drop tensor names and converter metadata: a smaller file that runs and
            serves the same. None: as measured, else False.
        per_channel: int8 weight scales per output channel (True), per tensor (False),
            or `"auto"` (see `to_tflite_bytes`). None: as measured, else True.
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
    measured = measured_conversion(model)
    quantization = measured["quantization"] if quantization is None else quantization
    _checks.one_of("quantization", quantization, QUANTIZATIONS)
    strip = measured["strip"] if strip is None else strip
    per_channel = measured["per_channel"] if per_channel is None else per_channel
    if representative_data is None:
        representative_data = measured["representative_data"]
    if quantization == "int8" and representative_data is None:
        raise _checks.error(
            'Expected representative_data (a few hundred training inputs) for quantization="int8". '
            "Received: representative_data=None."
        )
    _check_destination(path, overwrite)
    data = to_tflite_bytes(model, quantization, representative_data=representative_data, strip=strip,
                           per_channel=per_channel)
    return write_tflite(data, path, overwrite=overwrite)
