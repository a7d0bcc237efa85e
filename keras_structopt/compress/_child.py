"""A fine-tuned compression stage in a child process (`FineTuning(isolated=...)`).

TensorFlow keeps memory after every training (docs/design.md, "Memory": about four times
a model's float32 weights per fit, given back by nothing but the process's end). A stage
run here leaves none of it behind: the parent writes its tf_keras model (JSON and weights),
the data and the stage into a temporary folder, a fresh Python process wraps, fine-tunes
and strips the model as the stage would in-process, and the parent reads the stripped
weights back into a copy of its own model. It costs a TensorFlow import and the model
written twice, seconds against the minutes a large model's stage takes.

    python -m keras_structopt.compress._child FOLDER

Example:
    >>> import keras_tuner, keras_structopt as kso
    >>> from keras_structopt.bridge._bridge import tf_keras_copy
    >>> model = kso.DenseHyperModel(input_shape=(8,), outputs=2, num_layers=1,
    ...                             units=4).build(keras_tuner.HyperParameters())
    >>> isolation_refused(tf_keras_copy(model), {}) is None
    True
"""

from __future__ import annotations

import pickle
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from keras_structopt._env import child_environment
from keras_structopt.bridge._graph import iter_layers

KINDS = ("fit", "prune", "cluster")
_ACTIVATION = re.compile(r'"keras_structopt>keras3_(\w+)"')


def _portable(cls) -> bool:
    """Whether a fresh process rebuilds layers of `cls` from their config: tf_keras's own, or one
    of keras-structopt's registered tf_keras layers (not a class made at run time)."""
    import tf_keras

    module = cls.__module__ or ""
    if module.startswith("tf_keras."):
        return True
    if not module.startswith("keras_structopt."):
        return False
    return tf_keras.saving.get_registered_object(tf_keras.saving.get_registered_name(cls)) is cls


def isolation_refused(model, kwargs: dict) -> str | None:
    """Why the stage of `model` (a tf_keras model) with `kwargs` cannot run in a child process, or None.

    A child rebuilds the model from its JSON, so every layer must be tf_keras's or
    keras-structopt's own (a user's registered layer lives in the user's process only),
    and the stage's settings must pickle."""
    foreign = sorted({type(layer).__name__ for _, layer in iter_layers(model) if not _portable(type(layer))})
    if foreign:
        return f"its layers {', '.join(foreign)} are not tf_keras's or keras-structopt's own"
    try:
        pickle.dumps(kwargs)
    except Exception as error:  # noqa: BLE001 - any reason a setting does not pickle
        return f"its fine-tuning settings do not pickle ({type(error).__name__}: {error})"
    return None


class StageOutOfMemory(RuntimeError):
    """A stage's child process was killed by SIGKILL: most likely the kernel's out-of-memory
    killer, the stage needing more memory than the machine had left. `compress` skips such a
    stage (the report says why) rather than fail."""


def _weights_by_path(model) -> dict[str, list]:
    return {path: layer.get_weights() for path, layer in iter_layers(model)}


def run_in_child(kind: str, model, train, stage: Any = None, **kwargs):
    """Runs a stage (`"fit"`, `"prune"` or `"cluster"`) of `model` in a fresh Python process.

    Returns a copy of `model` with the weights the child's stripped model ended with; the
    `treatments` in `kwargs` are updated in place (sparsity reached, clustering notes), as
    the in-process stage updates them. Raises `RuntimeError` naming the child's error, or
    the signal that ended it (the kernel's out-of-memory killer sends SIGKILL).
    """
    from keras_structopt.bridge._bridge import tf_keras_copy
    from keras_structopt.bridge._spec import architecture_of

    payload = {"kind": kind, "json": model.to_json(), "weights": _weights_by_path(model),
               "spec": architecture_of(model), "train": train, "stage": stage, "kwargs": kwargs}
    with tempfile.TemporaryDirectory(prefix="structopt-stage-") as directory:
        folder = Path(directory)
        with open(folder / "stage.pkl", "wb") as file:
            pickle.dump(payload, file, protocol=5)
        del payload
        child = subprocess.run([sys.executable, "-m", "keras_structopt.compress._child", str(folder)],
                               stdout=None if kwargs.get("verbose") else subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=child_environment())
        if child.returncode != 0 or not (folder / "result.pkl").is_file():
            if (folder / "error.txt").is_file():
                reason = (folder / "error.txt").read_text()
            elif child.returncode < 0:
                reason = f"killed by {signal.Signals(-child.returncode).name}" + (
                    " (most likely the kernel's out-of-memory killer)" if child.returncode == -signal.SIGKILL else "")
            else:
                last = [line for line in child.stderr.splitlines() if line.strip()][-3:]
                reason = f"exit status {child.returncode} ({' | '.join(last)[-500:] or 'no output'})"
            message = f"The {kind} stage, run in a child process (FineTuning(isolated=...)), failed: {reason}"
            if child.returncode == -signal.SIGKILL and not (folder / "error.txt").is_file():
                raise StageOutOfMemory(message)
            raise RuntimeError(message)
        with open(folder / "result.pkl", "rb") as file:
            result = pickle.load(file)
    copy = tf_keras_copy(model, for_tflite=True)  # as every stage's model is
    for path, layer in iter_layers(copy):
        layer.set_weights(result["weights"][path])
    treatments: dict = kwargs.get("treatments") or {}
    for key, treatment in (result["treatments"] or {}).items():
        treatments[key].__dict__.update(treatment.__dict__)
    return copy


def _rebuild(payload):
    import tf_keras

    from keras_structopt.bridge._layers import keras3_activation
    from keras_structopt.bridge._registry import _legacy_classes
    from keras_structopt.bridge._spec import attach_architecture

    _legacy_classes()  # keras-structopt's registered tf_keras layers, by the names the JSON uses
    for name in set(_ACTIVATION.findall(payload["json"])):
        keras3_activation(tf_keras, name)
    model = tf_keras.models.model_from_json(payload["json"])
    for path, layer in iter_layers(model):
        layer.set_weights(payload["weights"][path])
    if payload["spec"] is not None:
        attach_architecture(model, payload["spec"])
    return model


def main(folder: str) -> int:
    folder_path = Path(folder)
    try:
        with open(folder_path / "stage.pkl", "rb") as file:
            payload = pickle.load(file)
        from keras_structopt._quiet import library_noise

        model = _rebuild(payload)
        kind, train, stage, kwargs = payload["kind"], payload["train"], payload["stage"], payload["kwargs"]
        del payload
        with library_noise():
            if kind == "fit":
                kwargs["fine_tuning"].compile(model, run_eagerly=kwargs["run_eagerly"])
                model.fit(train[0], train[1], batch_size=kwargs["batch_size"], epochs=kwargs["epochs"],
                          validation_data=kwargs.get("validation"), verbose=kwargs.get("verbose", 0))
                result = model
            elif kind == "prune":
                from keras_structopt.compress._prune import prune

                result = prune(model, train, stage, **kwargs)
            else:
                from keras_structopt.compress._cluster import cluster

                result = cluster(model, train, stage, **kwargs)
        with open(folder_path / "result.pkl", "wb") as file:
            pickle.dump({"weights": _weights_by_path(result), "treatments": kwargs.get("treatments")}, file,
                        protocol=5)
    except Exception as error:  # noqa: BLE001 - its message goes back to the parent
        (folder_path / "error.txt").write_text(f"{type(error).__name__}: {error}")
        return 3
    return 0


if __name__ == "__main__":
    from keras_structopt._env import offer_to_out_of_memory_killer

    offer_to_out_of_memory_killer()  # if memory runs out, this child goes, not its parent
    sys.exit(main(sys.argv[1]))
