"""The data `compress` fine-tunes, judges and measures on: read into arrays once, checked against the model."""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks
from keras_structopt._labels import check_labels, task_of_loss
from keras_structopt.bridge import architecture_of
from keras_structopt.data._datasets import dataset_arrays, is_batched, is_dataset, length, model_input_rank
from keras_structopt.data._tabular import TabularSchema, is_table


def _input(item):
    """One input as an array; strings as a TensorFlow string tensor (what Keras 3 takes)."""
    if getattr(getattr(item, "dtype", None), "name", None) == "string":  # a tf string tensor already
        return item
    array = np.asarray(item)
    if array.dtype.kind in "OUS":
        import tensorflow as tf

        flat = [value.decode() if isinstance(value, bytes) else str(value) for value in array.reshape(-1).tolist()]
        return tf.constant(np.asarray(flat, dtype=str).reshape(array.shape))
    return array


def _inputs(value, argument: str):
    """One model input as an array, several as a list or dict of arrays (strings as tensors)."""
    if isinstance(value, dict):
        return {key: _input(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and value and all(hasattr(item, "shape") for item in value):
        return [_input(item) for item in value]
    if hasattr(value, "shape") or isinstance(value, (list, tuple)):
        return np.asarray(value)
    raise _checks.error(
        f"Expected {argument} to hold arrays (one per input). Received: {argument} of type {type(value).__name__}."
    )


def as_arrays(data, argument: str, model=None):
    if data is None:
        return None
    if is_dataset(data):  # read once into memory: every stage slices, calibrates and measures it again
        batched = model is not None and is_batched(data, model_input_rank(model))
        return dataset_arrays(data, argument, batched=batched)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = data[0]
        spec = architecture_of(model) if model is not None else None
        raw_columns = is_table(x) or (isinstance(x, np.ndarray) and x.ndim == 2)
        if spec is not None and spec.family in ("tabular", "recommender") and raw_columns:
            x = TabularSchema(spec.option("features")).inputs(x, f"{argument}[0]")
        return _inputs(x, f"{argument}[0]"), _inputs(data[1], f"{argument}[1]")
    raise _checks.error(
        f"Expected {argument} to be an (x, y) pair of arrays or a tf.data.Dataset of (x, y) pairs. Received: "
        f"{argument} of type "
        f"{type(data).__name__}."
    )




def check_against_model(model, data, argument: str) -> None:
    """Raises before any training if `(x, y)` cannot feed `model`: input shapes, lengths, empty or
    non-finite inputs, class ids beyond the output's width."""
    x, y = data
    named = dict(x) if isinstance(x, dict) else None
    arrays = list(named.values()) if named is not None else list(x) if isinstance(x, (list, tuple)) else [x]
    inputs = list(model.inputs)
    names = list(named) if named is not None else [f"{argument}[0]" + (f"[{i}]" if len(arrays) > 1 else "")
                                                  for i in range(len(arrays))]
    if len(arrays) != len(inputs):
        raise _checks.error(
            f"Expected {argument}[0] to hold {len(inputs)} input array(s), one per model input. Received: "
            f"{len(arrays)}."
        )
    if named is not None:  # match by input name where the names agree
        by_name = {t.name.split(":")[0]: t for t in inputs}
        inputs = [by_name.get(key, tensor) for key, tensor in zip(named, inputs)]
    for name, array, tensor in zip(names, arrays, inputs):
        array = np.asarray(array)
        if len(array) == 0:
            raise _checks.error(f"Expected {name} to hold at least one example. Received: shape {array.shape}.")
        expected = tuple(tensor.shape[1:])
        if len(array.shape[1:]) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, array.shape[1:])):
            raise _checks.error(
                f"Expected {name} of shape (batch, {', '.join(str(d) for d in expected)}) to match the model's "
                f"input. Received: {name}.shape={array.shape}."
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise _checks.error(f"Expected {name} to hold finite numbers. Received: NaN or inf values.")
    y_values = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (list, tuple)) else [y]
    for labels in y_values:
        labels = np.asarray(labels)
        if len(labels) != len(np.asarray(arrays[0])):
            raise _checks.error(
                f"Expected as many labels as examples. Received: {argument} with {len(np.asarray(arrays[0]))} "
                f"examples and {len(labels)} labels."
            )
    outputs = list(model.outputs)
    if len(outputs) == 1 and len(y_values) == 1:
        labels, width = np.asarray(y_values[0]), outputs[0].shape[-1]
        sparse = np.issubdtype(labels.dtype, np.integer) and (labels.ndim == 1 or labels.shape[-1] == 1)
        if sparse and width is not None and width > 1 and labels.size and (labels.min() < 0 or labels.max() >= width):
            raise _checks.error(
                f"Expected {argument}[1] to hold class ids in [0, {width - 1}] for the model's {width} outputs. "
                f"Received: labels from {labels.min()} to {labels.max()}."
            )


def check_labels_for_loss(model, loss, data) -> None:
    """Raises before any training if a one-output model's labels do not fit the loss it fine-tunes with
    (class ids, one-hot rows, 0/1, or targets shaped as the output: see `keras_structopt._labels`)."""
    known = task_of_loss(loss)
    if known is None or len(model.outputs) != 1:
        return
    task, one_hot = known
    width = model.outputs[0].shape[-1] or 1
    for argument, pair in data:
        if pair is not None:
            check_labels(pair[1], task=task, outputs=int(width), name=f"{argument}[1]", one_hot=one_hot)


def count_examples(x) -> int:
    """How many examples an input of `as_arrays` holds (an array, or a list or dict of arrays)."""
    count = length(x)
    assert count is not None, type(x)  # as_arrays made arrays of it
    return count


def head(x, count: int):
    """The first `count` examples of one input array, or of each in a list or dict of them."""
    if isinstance(x, dict):
        return {k: v[:count] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:count] for v in x]
    return x[:count]
