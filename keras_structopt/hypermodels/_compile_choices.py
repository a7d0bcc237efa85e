"""The compile choices of a HyperModel: optimizer, loss and metrics, checked before any trial.

Objects are never shared between trials: an optimizer holds the variables of the model it
trained and a metric its running totals, so each `build` compiles with fresh copies.
"""

from __future__ import annotations

import keras

from keras_structopt import _checks
from keras_structopt.hypermodels._tunable import Tunable, as_choice

_OPTIMIZER_NAMES = (
    "adam", "adamw", "adamax", "adagrad", "adadelta", "adafactor", "ftrl", "lamb", "lion", "nadam", "rmsprop",
    "sgd",
)


def optimizer_tunable(optimizer):
    """The optimizer argument: `None` for an object (no choice), else a `Tunable` over names.

    Example:
        >>> optimizer_tunable(["adam", "sgd"]).values
        ['adam', 'sgd']
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return None
    names = as_choice(optimizer)
    items = names if isinstance(names, list) else [names]
    if not items or not all(isinstance(item, str) and item.lower() in _OPTIMIZER_NAMES for item in items):
        raise _checks.error(
            f"Expected optimizer to be a Keras optimizer name among {list(_OPTIMIZER_NAMES)}, a list of them (a "
            f"choice), or a keras.optimizers.Optimizer object. Received: optimizer={optimizer!r}."
        )
    return Tunable.parse("optimizer", [item.lower() for item in items], kind=str, accepted=_OPTIMIZER_NAMES)


def make_optimizer(optimizer, learning_rate):
    """A new optimizer for one trial: `optimizer` is a name or an object to copy.

    Example:
        >>> type(make_optimizer("sgd", 0.01)).__name__
        'SGD'
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        if learning_rate is not None:
            config["learning_rate"] = learning_rate
        return type(optimizer).from_config(config)
    config = {} if learning_rate is None else {"learning_rate": learning_rate}
    return keras.optimizers.get({"class_name": optimizer, "config": config})


def check_loss(loss) -> None:
    """Raises a `ConfigurationError` unless `loss` is None, a Keras loss name, a loss or a callable."""
    if loss is None or callable(loss):
        return
    if isinstance(loss, str):
        try:
            keras.losses.get(loss)
            return
        except (ValueError, TypeError):
            pass
    raise _checks.error(
        "Expected loss to be None (the task's loss), a Keras loss name such as 'sparse_categorical_crossentropy', "
        f"a keras.losses.Loss object or a function (y_true, y_pred). Received: loss={loss!r}."
    )


def check_metrics(metrics) -> None:
    """Raises a `ConfigurationError` unless `metrics` is None or a list of names, metrics or callables."""
    if metrics is None:
        return
    bad = None
    if not isinstance(metrics, (list, tuple)) or not metrics:
        bad = metrics
    else:
        for metric in metrics:
            if isinstance(metric, str):
                if metric in ("accuracy", "acc", "crossentropy", "ce"):
                    continue
                try:
                    keras.metrics.get(metric)
                    continue
                except (ValueError, TypeError):
                    bad = metric
                    break
            elif not callable(metric):
                bad = metric
                break
    if bad is not None:
        raise _checks.error(
            "Expected metrics to be None (the task's) or a non-empty list of Keras metric names "
            f"(such as 'accuracy', 'auc'), keras.metrics.Metric objects or functions. Received: {bad!r} in "
            f"metrics={metrics!r}."
        )


def copy_metrics(metrics) -> list:
    """Fresh metric objects for one trial (names and functions as they are).

    Example:
        >>> first = keras.metrics.AUC(name="auc")
        >>> [copy] = copy_metrics([first])
        >>> copy is not first and copy.name == "auc"
        True
    """
    return [type(m).from_config(m.get_config()) if isinstance(m, keras.metrics.Metric) else m for m in metrics]
