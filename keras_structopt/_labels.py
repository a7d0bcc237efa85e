"""Labels checked for the task before any training, in a search and in `compress`.

Classification takes integer class ids in range (floats that are whole numbers are ids too),
or, with a categorical (not sparse) loss, one-hot or probability rows; binary takes 0 and 1;
regression takes finite numbers shaped as the model's outputs. A label that fits none of these
is refused with what was found: "float labels with fractional values for a 10-class model",
"one-hot rows", "string labels", "NaN labels", "a target of shape (n, 3) for 1 output".
"""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks

TASKS = ("multiclass", "binary", "regression")


def task_of_loss(loss) -> tuple[str, bool] | None:
    """The task a loss trains (and whether it takes one-hot rows), or None when it is not known.

    Example:
        >>> task_of_loss("sparse_categorical_crossentropy"), task_of_loss("categorical_crossentropy")
        (('multiclass', False), ('multiclass', True))
        >>> task_of_loss("mse"), task_of_loss("my_loss")
        (('regression', False), None)
    """
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", None)
    if isinstance(loss, dict):  # a serialised Keras loss
        name = loss.get("config", {}).get("name") or loss.get("class_name")
    if not isinstance(name, str):
        return None
    name = "".join(c for c in name.lower() if c.isalnum())
    if name == "sparsecategoricalcrossentropy":
        return "multiclass", False
    if name in ("categoricalcrossentropy", "categoricalfocalcrossentropy", "kldivergence", "kld"):
        return "multiclass", True
    if name in ("binarycrossentropy", "binaryfocalcrossentropy", "hinge", "squaredhinge"):
        return "binary", False
    if name in ("mse", "meansquarederror", "mae", "meanabsoluteerror", "huber", "logcosh", "msle",
                "meansquaredlogarithmicerror", "meanabsolutepercentageerror", "mape"):
        return "regression", False
    return None


def check_labels(y, *, task: str, outputs: int, name: str = "y", one_hot: bool = False) -> None:
    """Raises a `ConfigurationError` when labels `y` do not fit a `task` model with `outputs` outputs.

    Args:
        y: The labels (an array or a list).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        outputs: The model's outputs (classes, 1 for binary, targets).
        name: How the message names `y`.
        one_hot: Whether the loss takes one-hot (or probability) rows instead of class ids.

    Example:
        >>> check_labels([0, 2, 1], task="multiclass", outputs=3)
        >>> try:
        ...     check_labels(np.array([0.5, 9.5]), task="multiclass", outputs=10)
        ... except Exception as error:
        ...     print(str(error).split(". Received")[0])
        Expected y to hold integer class ids in [0, 9] for a 10-class model
    """
    if y is None or hasattr(y, "element_spec") or isinstance(y, dict):  # none, a dataset, several outputs
        return
    labels = np.asarray(y)
    if labels.dtype.kind in "OUSV":
        first = labels.reshape(-1)[0] if labels.size else None
        first = first.item() if isinstance(first, np.generic) else first
        kind = "string" if labels.dtype.kind in "US" or isinstance(first, (str, bytes)) else "object"
        raise _checks.error(
            f"Expected {name} to hold numeric labels for task={task!r}. Received: {kind} "
            f"labels (for example {first!r}); encode them as numbers first (class ids: "
            "sklearn.preprocessing.LabelEncoder)."
        )
    if labels.dtype.kind == "b":
        labels = labels.astype("int64")
    if labels.dtype.kind not in "iuf" or labels.size == 0:
        return
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels)
        if bad.any():
            raise _checks.error(
                f"Expected {name} to hold finite labels. Received: {int(bad.sum())} NaN or inf labels of "
                f"{labels.size}, the first at index {tuple(int(i) for i in np.argwhere(bad)[0])}."
            )
    rows = len(labels)
    if task == "regression":
        wanted = [(rows,), (rows, 1)] if outputs == 1 else [(rows, outputs)]
        if labels.shape not in wanted:
            shapes = " or ".join(str(s).replace(str(rows), "n", 1) for s in wanted)
            raise _checks.error(
                f"Expected {name} of shape {shapes} for a regression model with {outputs} output"
                f"{'s' if outputs != 1 else ''}. Received: {name}.shape={labels.shape}."
            )
        return
    if task == "multiclass" and one_hot:
        if labels.shape != (rows, outputs):
            raise _checks.error(
                f"Expected {name} of shape (n, {outputs}): one-hot rows for the categorical loss of a {outputs}-class "
                f"model. Received: {name}.shape={labels.shape}; pass keras.utils.to_categorical({name}, {outputs}), or "
                "compile with loss='sparse_categorical_crossentropy' for class ids."
            )
        sums = labels.sum(axis=1)
        if (labels < 0).any() or not np.allclose(sums, 1.0, atol=1e-3):
            raise _checks.error(
                f"Expected {name}'s rows to be one-hot (or probabilities summing to 1) for the categorical loss. "
                f"Received: rows summing to {float(sums.min()):g}..{float(sums.max()):g}."
            )
        return
    classes = outputs if task == "multiclass" else 2
    what = f"a {outputs}-class model" if task == "multiclass" else "a binary model"
    if labels.ndim == 2 and labels.shape[1] == classes > 1 and labels.shape[1] != 1:
        found = "one-hot rows" if set(np.unique(labels).tolist()) <= {0, 1} and (labels.sum(axis=1) == 1).all() \
            else "rows of scores"
        raise _checks.error(
            f"Expected {name} to hold class ids (one per example) for {what}. Received: {found} of shape "
            f"{labels.shape}; pass {name}.argmax(axis=1), or compile with loss='categorical_crossentropy' for rows."
        )
    if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        raise _checks.error(
            f"Expected {name} of shape (n,) or (n, 1): one class id per example for {what}. Received: "
            f"{name}.shape={labels.shape}."
        )
    if labels.dtype.kind == "f" and (labels != np.round(labels)).any():
        example = labels.reshape(-1)[np.argmax(labels.reshape(-1) != np.round(labels.reshape(-1)))]
        raise _checks.error(
            f"Expected {name} to hold integer class ids in [0, {classes - 1}] for {what}. Received: float labels "
            f"with fractional values (for example {float(example):g})."
        )
    if labels.min() < 0 or labels.max() >= classes:
        raise _checks.error(
            f"Expected {name} to hold class ids in [0, {classes - 1}] for task={task!r} with outputs={outputs}. "
            f"Received: labels from {labels.min():g} to {labels.max():g}."
        )
