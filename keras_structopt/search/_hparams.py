"""Each trial's structure in TensorBoard's HParams dashboard.

Keras Tuner logs the hyperparameter values of a trial when a `keras.callbacks.TensorBoard`
is among the search's callbacks; what they mean as a network -- the family, the depth,
the widths, the connection pattern, the parameters and multiply-accumulates -- is what
this module adds. `write_hparams` writes one HParams session per finished trial under
`LOG_DIR/structure/TRIAL_ID`: the structure columns, the trial's own hyperparameter values
and its final metrics (the best value of each). Tuners made with `kso.search.tuner` call it
after every trial when the search has a TensorBoard callback, so the table fills as the
search runs; it can also be called on a finished project (`keras-structopt report` does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras_tuner

from keras_structopt._types import PathLike, Searched

STRUCTURE_RUN = "structure"
_COLUMNS = ("family", "depth", "widths", "connection", "params", "macs")


def structure_columns(hypermodel, values: dict) -> dict:
    """The structure of the network `values` describe, as HParams columns.

    Example:
        >>> import keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=32)
        >>> structure_columns(hypermodel, {})
        {'family': 'dense', 'depth': 2, 'widths': '32,32', 'connection': 'plain', 'params': 3466, 'macs': 3392}
    """
    hp = keras_tuner.HyperParameters()
    hp.values.update({k: v for k, v in values.items() if not k.startswith("tuner/")})
    spec = hypermodel.architecture(hp)
    return {
        "family": spec.family,
        "depth": int(spec.num_blocks),
        "widths": ",".join(str(w) for w in spec.widths),
        "connection": spec.connection,
        "params": int(spec.count_params()),
        "macs": int(spec.count_macs()),
    }


def _scalar(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def write_hparams(tuner: Searched, log_dir: PathLike, trials: Sequence[Any] | None = None) -> list[Path]:
    """Writes an HParams session for each finished trial of `tuner` under `log_dir/structure`.

    Args:
        tuner: A Keras Tuner tuner whose HyperModel is a keras-structopt one (its oracle's
            trials are read; nothing is trained).
        log_dir: The TensorBoard log directory (Keras Tuner's own logs go beside it).
        trials: The trials to write (default: every COMPLETED one). A trial written before
            is written again only if asked for here.

    Returns:
        The run directories written.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split(seed=0)
        >>> tuner = keras_tuner.RandomSearch(
        ...     kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=[8, 16], seed=0),
        ...     objective="val_accuracy", max_trials=1, seed=0,
        ...     directory=getfixture("tmp_path"), project_name="hp")
        >>> tuner.search(*data.train, validation_data=data.validation, epochs=1, verbose=0)
        >>> runs = write_hparams(tuner, getfixture("tmp_path") / "logs")
        >>> [run.parent.name for run in runs]
        ['structure']
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    if trials is None:
        trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    root = Path(os.fspath(log_dir)) / STRUCTURE_RUN
    written = []
    for trial in trials:
        columns = structure_columns(tuner.hypermodel, trial.hyperparameters.values)
        values = {k: _scalar(v) for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}
        columns.update({k: v for k, v in values.items() if k not in _COLUMNS})
        run = root / str(trial.trial_id)
        writer = tf.summary.create_file_writer(str(run))
        with writer.as_default():
            hparams_api.hparams(columns, trial_id=str(trial.trial_id))
            for name in sorted(trial.metrics.metrics):
                best = trial.metrics.get_best_value(name)
                if best is not None:
                    tf.summary.scalar(name, float(best), step=0)
        writer.close()
        written.append(run)
    return written


def tensorboard_log_dir(callbacks) -> str | None:
    """The log directory of the first `keras.callbacks.TensorBoard` among `callbacks`, if any.

    Example:
        >>> import keras
        >>> tensorboard_log_dir([keras.callbacks.TensorBoard("logs")])
        'logs'
    """
    import keras

    for callback in callbacks or ():
        if isinstance(callback, keras.callbacks.TensorBoard):
            return str(callback.log_dir)
    return None
