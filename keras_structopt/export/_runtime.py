"""Running TFLite files: the interpreter (LiteRT's where installed), a runner kept for reuse,
predictions, and what a file holds (its vocabularies, its tensor types).

Compression measures every stage through this module, and users run exported files with it;
it converts nothing.
"""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import Inputs
from keras_structopt.export._signature import _identifier

# The TFLite metadata entry that holds a tabular model's categorical vocabularies.
TABULAR_METADATA = "keras_structopt.tabular"


def _indexed_inputs(features, x):
    """A table's categorical columns replaced by their lookup indices (others as arrays)."""
    from keras_structopt.data._tabular import category_indices

    if not isinstance(x, dict):
        return x
    by_name = {feature["name"]: feature for feature in features}
    result = {}
    for name, values in x.items():
        feature = by_name.get(name)
        if feature is not None and feature["kind"] != "numeric":
            result[name] = category_indices(feature, values)
        else:
            array = values.numpy() if hasattr(values, "numpy") else np.asarray(values)
            result[name] = array.reshape(-1, 1) if array.ndim == 1 else array  # a column: (examples, 1)
    return result


def tflite_vocabularies(data: bytes) -> list[dict] | None:
    """The categorical inputs a TFLite file takes as lookup indices (a tabular model's).

    A model whose inputs go straight into `StringLookup` / `IntegerLookup` layers (the
    tabular family's, or a user's) is converted without those layers: TFLite's
    built-in operators have no string tables. Its file takes each such input as an
    int64 index: 0 for a value outside the vocabulary, `i + 1` for `vocabulary[i]`
    (what the lookup layer computes). The vocabularies
    travel in the file's metadata; `TFLiteRunner` and `tflite_predict` apply them to
    raw values, an app reads them with this function (or any flatbuffer reader).
    Returns a list of `{"name", "input", "kind", "vocabulary"}`, or None for other files.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import tflite_vocabularies, to_tflite_bytes
        >>> schema = kso.data.TabularSchema.from_data({"x": [1.0, 2.0], "city": ["Oslo", "Rome"]})
        >>> model = kso.TabularHyperModel(schema, task="binary", num_layers=1, units=4,
        ...                               connection="plain").build(keras_tuner.HyperParameters())
        >>> [(f["name"], f["vocabulary"]) for f in tflite_vocabularies(to_tflite_bytes(model, "none"))]
        [('city', ['Oslo', 'Rome'])]
    """
    import json

    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == TABULAR_METADATA.encode():
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())["categorical"]
    return None


def tflite_interpreter(data: bytes, *, num_threads: int | None = None, without_default_delegates: bool = True):
    """A TFLite interpreter for `data`: LiteRT's (`ai_edge_litert`, TensorFlow's successor for
    TFLite files) where it is installed, else TensorFlow's own `tf.lite.Interpreter`.

    Returns `(interpreter, runtime)`, `runtime` being `"ai_edge_litert"` or `"tensorflow"`.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> interpreter, runtime = tflite_interpreter(to_tflite_bytes(model, "none"))
        >>> runtime in ("ai_edge_litert", "tensorflow")
        True
    """
    import warnings

    try:
        from ai_edge_litert import interpreter as module

        runtime, resolver = "ai_edge_litert", module.OpResolverType
    except ImportError:  # LiteRT has no wheel for this platform
        import tensorflow as tf

        module, runtime, resolver = tf.lite, "tensorflow", tf.lite.experimental.OpResolverType
    kwargs = {"experimental_op_resolver_type": resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if (
        without_default_delegates
    ) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module.Interpreter(model_content=data, num_threads=num_threads, **kwargs), runtime


class TFLiteRunner:
    """A TFLite interpreter over one file's `serving_default` signature, kept for reuse.

    The interpreter is LiteRT's where `ai_edge_litert` is installed, else TensorFlow's
    (`tflite_interpreter`; `runner.runtime` says which). Inputs are cast to the file's
    input types; a fully int8 file's inputs are quantized and its outputs dequantized
    with the tensors' own scales, so callers always pass and get float values.

    Example:
        >>> import numpy as np, keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import TFLiteRunner, to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> runner = TFLiteRunner(to_tflite_bytes(model, "none"))
        >>> runner(np.random.rand(3, 64).astype("float32")).shape
        (3, 10)
    """

    def __init__(self, data: bytes, *, num_threads: int | None = None):
        self.interpreter, self.runtime = tflite_interpreter(data, num_threads=num_threads)
        if "serving_default" not in self.interpreter.get_signature_list():
            raise _checks.error("Expected a TFLite file with a serving_default signature (as export_tflite writes).")
        self.runner = self.interpreter.get_signature_runner("serving_default")
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()
        # The interpreter lists the inputs in the converted function's argument order.
        position = {detail["index"]: i for i, detail in enumerate(self.interpreter.get_input_details())}
        self.input_order = sorted(self.inputs, key=lambda name: position[self.inputs[name]["index"]])
        self.one_at_a_time = any(detail["shape_signature"][0] == 1 for detail in self.inputs.values())
        self.categorical = tflite_vocabularies(data) or []

    def _arrays(self, x) -> dict:
        if isinstance(x, dict) and self.categorical:  # a table: raw categories -> lookup indices
            x = _indexed_inputs(self.categorical, x)
            x = {_identifier(str(name)): value for name, value in x.items()}
        if isinstance(x, dict):
            return {name: np.asarray(x[name]) for name in self.inputs}
        if isinstance(x, (list, tuple)) and len(self.inputs) > 1:
            return dict(zip(self.input_order, (np.asarray(v) for v in x)))
        return {self.input_order[0]: np.asarray(x)}

    def _encode(self, name, array):
        detail = self.inputs[name]
        scale, zero_point = detail["quantization"]
        if np.issubdtype(detail["dtype"], np.integer) and scale and not np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(detail["dtype"])
            array = np.clip(np.round(array / scale + zero_point), info.min, info.max)
        return array.astype(detail["dtype"])

    def _decode(self, name, array):
        scale, zero_point = self.outputs[name]["quantization"]
        if np.issubdtype(array.dtype, np.integer) and scale:
            return (array.astype("float32") - zero_point) * scale
        return np.array(array)

    def __call__(self, x, *, batch_size: int = 256):
        arrays = self._arrays(x)
        if self.one_at_a_time:
            batch_size = 1  # converted for one example at a time
        total = len(next(iter(arrays.values())))
        outputs: dict[str, list] = {name: [] for name in self.outputs}
        for start in range(0, total, batch_size):
            batch = {name: self._encode(name, array[start : start + batch_size]) for name, array in arrays.items()}
            result = self.runner(**batch)
            for name in self.outputs:
                outputs[name].append(self._decode(name, result[name]))
        if len(outputs) == 1:
            return np.concatenate(next(iter(outputs.values())))
        return {name: np.concatenate(parts) for name, parts in outputs.items()}


def tflite_predict(data: bytes, x: Inputs, *, batch_size: int = 256,
                   num_threads: int | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """Runs a TFLite flatbuffer on `x` with the TFLite interpreter; returns its outputs.

    `x` is an array for a one-input model, or a dict (by signature name) or list (in
    the model's input order) of arrays for several inputs. One output comes back as
    an array, several as a dict by signature name (see `serving_names`). Fully int8
    files take and return float values too (see `TFLiteRunner`).

    Example:
        >>> import numpy as np, keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import tflite_predict, to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> x = np.random.rand(3, 64).astype("float32")
        >>> tflite_predict(to_tflite_bytes(model, "none"), x).shape
        (3, 10)
    """
    return TFLiteRunner(data, num_threads=num_threads)(x, batch_size=batch_size)


def tensor_types(data: bytes) -> dict[str, int]:
    """How many tensors of each type a TFLite file holds (a fully int8 file has no float32).

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.export import to_tflite_bytes
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> sorted(tensor_types(to_tflite_bytes(model, "none")))
        ['float32']
    """
    interpreter, _ = tflite_interpreter(data, without_default_delegates=False)
    counts: dict[str, int] = {}
    for detail in interpreter.get_tensor_details():
        name = np.dtype(detail["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts
