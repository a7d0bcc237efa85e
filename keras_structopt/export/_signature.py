"""The `serving_default` signature every export shares: its names, its function, the SavedModel.

One input is called `inputs` and one output `outputs`; several take the names of the
model's input and output layers (or the keys of a dict of them). The SavedModel, the TFLite
file and compression's measurements all go through the same signature.
"""

from __future__ import annotations

import re

from keras_structopt import _checks
from keras_structopt.bridge._graph import iter_layers


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "input"


def _structure(model):
    """The model's input and output structures (lists or dicts of symbolic tensors)."""
    if _is_keras3(model):
        import keras

        if isinstance(model, keras.Sequential):
            return list(model.inputs), list(model.outputs)
    return model.input, model.output


def _names(structure, tensors, single: str) -> list[str]:
    """Signature names: `single` for one tensor; dict keys, else layer names, for several."""
    if len(tensors) == 1:
        return [single]
    if isinstance(structure, dict):
        names = [_identifier(str(key)) for key in sorted(structure)]
    else:
        names = [_identifier(t._keras_history[0].name) for t in tensors]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _checks.error(
            f"Expected distinct names for the model's {'inputs' if single == 'inputs' else 'outputs'} "
            f"(they name the serving signature's tensors). Received: {names}; rename the layers {duplicates}."
        )
    return names


def serving_names(model) -> tuple[list[str], list[str]]:
    """The `serving_default` signature's input and output names for `model`.

    One input is `inputs` and one output `outputs`; several take the names of the
    model's input/output layers (or the keys of a dict of inputs/outputs).

    Example:
        >>> import keras
        >>> a, b = keras.Input((3,), name="user"), keras.Input((4,), name="item")
        >>> model = keras.Model([a, b], keras.layers.Dense(1, name="score")(
        ...     keras.layers.Concatenate()([a, b])))
        >>> serving_names(model)
        (['user', 'item'], ['outputs'])
    """
    inputs, outputs = _structure(model)
    import keras

    flat_in = keras.tree.flatten(inputs) if _is_keras3(model) else list(model.inputs)
    flat_out = keras.tree.flatten(outputs) if _is_keras3(model) else list(model.outputs)
    return _names(inputs, flat_in, "inputs"), _names(outputs, flat_out, "outputs")


def _input_specs(model, batch_size=None):
    import tensorflow as tf

    names, _ = serving_names(model)
    return [
        tf.TensorSpec(shape=(batch_size,) + tuple(t.shape[1:]), dtype=tf.as_dtype(t.dtype), name=name)
        for name, t in zip(names, model.inputs)
    ]


def _serve_function(model):
    """`f(*flat_inputs) -> {output name: tensor}` calling `model` in its own input structure."""
    import tensorflow as tf

    inputs, _ = _structure(model)
    _, output_names = serving_names(model)
    several = len(model.inputs) > 1

    def serve(*flat):
        if isinstance(inputs, dict):  # by name, one input as several (a tower of one feature is a dict too)
            arguments = tf.nest.pack_sequence_as(inputs, list(flat))
        elif several:
            arguments = list(flat)
        else:
            arguments = flat[0]
        outputs = tf.nest.flatten(model(arguments, training=False))
        return dict(zip(output_names, outputs))

    return serve


def _is_keras3(model) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _serving_module(model, specs):
    """A `tf.Module` holding `model`'s variables and a `serve` function over it.

    Only the variables are tracked: tracking the tf_keras model itself would make
    TensorFlow trace and save every layer's call function (slow, and unused by TF
    Serving and the TFLite converter, which need the signature alone).
    """
    import keras
    import tensorflow as tf

    module = tf.Module()
    # A Keras 3 variable wraps a tf.Variable (`.value`): the SavedModel must hold that one, or the graph
    # reads an uninitialised variable (TFLite: "READ_VARIABLE failed").
    module.model_variables = [v.value if isinstance(v, keras.Variable) else v for v in model.variables]
    # Lookup layers' tables are resources, not variables: tracked so the signature can use them.
    module.lookup_tables = [layer.lookup_table for _, layer in iter_layers(model)
                            if getattr(layer, "lookup_table", None) is not None]
    module.serve = tf.function(_serve_function(model), input_signature=specs)
    return module


def write_saved_model(model, path) -> None:
    """Writes `model` as a SavedModel with a `serving_default` signature.

    One input is called `inputs` and one output `outputs`; several inputs or
    outputs are each a named tensor of the signature (see `serving_names`).
    Keras 3 and tf_keras models alike go through `tf.saved_model.save` on a `tf.Module`
    that holds their variables (and lookup tables) and the traced signature: for Keras 3
    models this is a third faster than `keras.export.ExportArchive` (18 s against 29.5 s for
    EfficientNetB7 at 32x32, the same outputs), which tracks the whole model.
    """
    import tensorflow as tf

    specs = _input_specs(model)
    module = _serving_module(model, specs)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
