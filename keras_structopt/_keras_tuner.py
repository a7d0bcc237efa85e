"""Every use of Keras Tuner beyond its documented API, in one module.

keras-structopt extends Keras Tuner through its documented hooks (`Oracle.populate_space`,
`score_trial`, `end_trial`, `get_best_trials`, `Tuner.run_trial`, `on_epoch_end`, ...).
The few things those hooks do not reach are here, each a small function with a test
(`tests/test_keras_tuner_compat.py`) that fails with a clear message when Keras Tuner
changes them. No other module imports `keras_tuner.src` or reads a private member of a
Keras Tuner object.
"""

from __future__ import annotations


def metric_direction(name: str) -> str | None:
    """`"max"` or `"min"`: whether a larger value of the metric `name` is better, as Keras Tuner infers it.

    Keras Tuner's own inference (the one behind `keras_tuner.Objective("val_auc")`), so
    the search and compression agree with Keras Tuner on every metric. None when it
    cannot tell (a custom metric).

    Example:
        >>> metric_direction("val_mae"), metric_direction("auc"), metric_direction("val_loss")
        ('min', 'max', 'min')
    """
    from keras_tuner.engine.metrics_tracking import infer_metric_direction

    return infer_metric_direction(name)

