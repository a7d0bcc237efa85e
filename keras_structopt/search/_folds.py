"""Cross-validated trials: each trial trains once per fold, and the oracle sees the folds' mean.

Finished folds are kept on disk (`folds/fold_<k>.json` and their weights), so a killed and
resumed search retrains none of them; Hyperband's continued trials start each fold from
that fold's own parent weights.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from keras_structopt import _checks, _keras_tuner
from keras_structopt._trial_files import CurveRecorder, write_json, write_note
from keras_structopt.data._datasets import length
from keras_structopt.search._curves import trial_directory
from keras_structopt.search._failures import NonFiniteStopper
from keras_structopt.search._stopping import stopped_note


def take(x, index):
    if isinstance(x, dict):
        return {k: np.asarray(v)[index] for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        return [np.asarray(v)[index] for v in x]
    return np.asarray(x)[index]


def labels(y):
    """Labels a stratified splitter can read (None for several outputs)."""
    return None if isinstance(y, (dict, list)) else np.asarray(y)


def check_folds(folds, fit_args, fit_kwargs) -> None:
    """Raises before any trial unless the data can be split into `folds` of at least a batch each."""
    x = fit_kwargs.get("x", fit_args[0] if fit_args else None)
    y = fit_kwargs.get("y", fit_args[1] if len(fit_args) > 1 else None)
    for name in ("validation_data", "validation_split"):
        if fit_kwargs.get(name) is not None:
            raise _checks.error(
                f"Expected no {name} with folds= (each fold's held-out part validates). Received: {name}."
            )
    count = length(x)
    if count is None or y is None:
        raise _checks.error(
            "Expected x and y as arrays (or lists/dicts of arrays) that can be split into folds. Received: "
            f"x of type {type(x).__name__}{' and no y' if y is None else ''}; a tf.data.Dataset has no "
            "known length to split: pass arrays."
        )
    groups = fit_kwargs.get("groups")
    try:
        splits = list(folds.split(np.zeros(count), labels(y), groups))
    except (ValueError, TypeError) as error:
        raise _checks.error(
            f"Expected data that {type(folds).__name__} can split. Received: {error}"
        ) from None
    batch_size = int(fit_kwargs.get("batch_size") or 32)
    smallest = min(min(len(a), len(b)) for a, b in splits)
    if smallest < batch_size:
        raise _checks.error(
            f"Expected every fold's parts to hold at least batch_size={batch_size} examples. Received: "
            f"a part of {smallest} examples from {type(folds).__name__} on {count} examples; use "
            "fewer folds or a smaller batch_size."
        )


def run_folds(tuner, trial, directory, fit_args, fit_kwargs) -> dict:
    """Trains `trial` once per fold (finished ones read back); returns the folds' mean metrics and each fold's."""
    x = fit_kwargs.pop("x", fit_args[0] if fit_args else None)
    y = fit_kwargs.pop("y", fit_args[1] if len(fit_args) > 1 else None)
    groups = fit_kwargs.pop("groups", None)
    tuner.fold_data = (x, y, {k: v for k, v in fit_kwargs.items() if k != "callbacks"})
    original_callbacks = fit_kwargs.pop("callbacks", [])
    objective = tuner.oracle.objective
    checkpoint = _keras_tuner.save_best_epoch(objective, tuner.checkpoint_path(trial.trial_id))
    splits = list(tuner.folds.split(np.zeros(length(x) or 0), labels(y), groups))
    folds_dir = directory / "folds"
    folds_dir.mkdir(parents=True, exist_ok=True)
    histories, values = [], []
    for k, (train_index, validation_index) in enumerate(splits):
        saved = folds_dir / f"fold_{k}.json"
        if saved.exists():  # finished before a restart: not trained again
            history = keras.callbacks.History()
            history.history = json.loads(saved.read_text())["history"]
            history.epoch = list(range(len(next(iter(history.history.values()), []))))
        else:
            # No per-epoch reports to the oracle: it gets the mean of the folds' best values only.
            callbacks = tuner.copy_callbacks(original_callbacks)
            callbacks.append(checkpoint)
            callbacks.append(CurveRecorder(directory, fold=k, validation_size=len(validation_index)))
            callbacks.append(NonFiniteStopper(tuner.project_dir, trial.trial_id))
            callbacks.extend(tuner.stoppers(trial, k))
            kwargs = dict(fit_kwargs, callbacks=callbacks,
                          validation_data=(take(x, validation_index), take(y, validation_index)))
            model = tuner.build_model(trial.hyperparameters)
            parent = trial.hyperparameters.values.get("tuner/trial_id")
            parent_weights = trial_directory(tuner, parent) / "folds" / f"fold_{k}.weights.h5" if parent else None
            if parent_weights is not None and parent_weights.exists():
                model.load_weights(parent_weights)  # Hyperband: this fold's own parent weights
            history = tuner.hypermodel.fit(trial.hyperparameters, model, take(x, train_index),
                                           take(y, train_index), **kwargs)
            model.save_weights(folds_dir / f"fold_{k}.weights.h5")
            if k == 0:  # what Keras Tuner's own loading (Hyperband's parents, load_model) reads
                write_json(tuner.build_config_path(trial.trial_id), model.get_build_config())
            record = {name: [float(v) for v in values] for name, values in history.history.items()}
            write_json(saved, {"history": record})
        histories.append(history)
        values.append(_best(history.history, objective))
        if stopped_note(tuner.project_dir, trial.trial_id) is not None:
            break  # below the median in this fold: the other folds are not trained
    metrics = _keras_tuner.metrics_dict(histories, objective)  # the folds' mean
    metrics.update({f"{objective.name}_fold_{k}": v for k, v in enumerate(values)})
    metrics[f"{objective.name}_fold_std"] = float(np.std(values))
    epochs = [_best_epoch(history.history, objective) for history in histories]
    write_note(tuner.project_dir, trial.trial_id, {"refit_epochs": int(round(float(np.mean(epochs)))) + 1})
    return metrics


def _best(history: dict, objective) -> float:
    values = history.get(objective.name, [])
    if not values:
        return float("nan")
    return float(max(values) if objective.direction == "max" else min(values))


def _best_epoch(history: dict, objective) -> int:
    values = history.get(objective.name, [])
    if not values:
        return 0
    return int(np.argmax(values) if objective.direction == "max" else np.argmin(values))
