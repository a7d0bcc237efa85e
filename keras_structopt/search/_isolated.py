"""One subprocess per trial: a long search whose memory stays flat.

TensorFlow 2.21 with Keras 3 keeps about 4-7 MiB per trained model alive in the process
(each model's traced step graphs survive `clear_session()` and garbage collection; see
`bench/memory.py`), so hundreds of trials in one process grow by gigabytes. With
`keras_structopt.search.tuner(..., isolate_trials=True)` each trial builds and trains its
model in a fresh Python process: the search process itself never trains, and its memory
stays where it started. The price is the start of that process (importing TensorFlow:
about five seconds per trial), so it pays for long searches, not for a few quick trials.

What a trial process receives: the HyperModel's class and constructor arguments (written as
Python literals, never pickled), the trial's values, the data (written once per search to
`<project>/isolated/data.npz`, numpy arrays only) and the fit settings. What it leaves in the
trial's folder, as an in-process trial does: the best epoch's weights (the checkpoint Keras
Tuner loads), `curves.json`, and the epoch history that the search process reports to the
oracle. A trial process that dies fails its trial with the process's last error line; a
non-finite loss fails it with the reason.

    python -m keras_structopt.search._isolated SPEC.json   # what the search process runs
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_structopt import _checks

DATA_FILE = "data.npz"
HISTORY_FILE = "isolated_history.json"
SPEC_FILE = "isolated_trial.json"
FIT_SETTINGS = ("epochs", "batch_size", "shuffle", "class_weight", "verbose")
_NON_FINITE_EXIT = 3


def check_supported(tuner) -> None:
    """Raises (before any trial) for what cannot cross into a trial process.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> try:
        ...     kso.search.tuner(keras_tuner.Hyperband, kso.DenseHyperModel(input_shape=(4,), outputs=2),
        ...         objective="val_accuracy", max_epochs=2, isolate_trials=True,
        ...         directory=getfixture("tmp_path"), project_name="h")
        ... except kso.ConfigurationError as error:
        ...     print(str(error).split(".")[0])
        Expected a tuner without Hyperband's continued trials for isolate_trials=True
    """
    import keras_tuner

    from keras_structopt.hypermodels import hypermodel_class

    hypermodel = tuner.hypermodel
    name = type(hypermodel).__name__
    if hypermodel_class(name) is not type(hypermodel) or not hasattr(hypermodel, "get_config"):
        raise _checks.error(
            "Expected a keras-structopt HyperModel (its class and arguments are what a trial process rebuilds) "
            f"for isolate_trials=True. Received: {name}."
        )
    config = hypermodel.get_config()
    try:
        if ast.literal_eval(repr(config)) != config:
            raise ValueError("changed")
    except (ValueError, SyntaxError):
        raise _checks.error(
            "Expected HyperModel arguments that are plain Python literals (numbers, strings, tuples, lists, "
            f"dicts) for isolate_trials=True. Received: {config!r}."
        ) from None
    if isinstance(tuner, keras_tuner.Hyperband):
        raise _checks.error(
            "Expected a tuner without Hyperband's continued trials for isolate_trials=True. Received: "
            f"{type(tuner).__name__}; use RandomSearch, BayesianOptimization, GridSearch or EvolutionarySearch."
        )
    for option, value in (("folds", tuner.folds), ("median_stopping", tuner.median_stopping),
                          ("donors", tuner.donors or None)):
        if value is not None:
            raise _checks.error(
                f"Expected no {option} with isolate_trials=True (not carried into trial processes yet). "
                f"Received: {option}={value!r}."
            )


def save_data(project_dir, fit_args, fit_kwargs) -> dict:
    """Writes the search's numpy data for the trial processes; returns the fit settings they use."""
    x = fit_kwargs.get("x", fit_args[0] if fit_args else None)
    y = fit_kwargs.get("y", fit_args[1] if len(fit_args) > 1 else None)
    validation = fit_kwargs.get("validation_data")
    arrays = {"x": x, "y": y}
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise _checks.error(
                "Expected validation_data as an (x, y) pair of arrays for isolate_trials=True. Received: "
                f"{type(validation).__name__}."
            )
        arrays.update(validation_x=validation[0], validation_y=validation[1])
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise _checks.error(
                f"Expected numpy arrays for isolate_trials=True (written once for the trial processes). Received: "
                f"{name} of type {type(value).__name__}."
            )
    unknown = sorted(k for k in fit_kwargs if k not in ("x", "y", "validation_data", *FIT_SETTINGS)
                     and not (k == "callbacks" and not fit_kwargs[k]))
    if unknown or len(fit_args) > 2:
        raise _checks.error(
            f"Expected only x, y, validation_data and {list(FIT_SETTINGS)} for isolate_trials=True (callbacks "
            f"cannot cross into a trial process). Received: {unknown or 'more positional arguments'}."
        )
    directory = Path(project_dir) / "isolated"
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{DATA_FILE}.tmp-{os.getpid()}.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, directory / DATA_FILE)
    return {k: fit_kwargs[k] for k in FIT_SETTINGS if k in fit_kwargs and k != "verbose"}


def run_isolated(tuner, trial, fit_settings: dict, objective):
    """Runs one trial in a fresh process and returns its `History` (for the oracle)."""
    import keras
    import keras_tuner

    from keras_structopt._trial_files import read_note
    from keras_structopt.search._curves import trial_directory

    directory = trial_directory(tuner, trial.trial_id)
    directory.mkdir(parents=True, exist_ok=True)
    hypermodel = tuner.hypermodel
    spec = {
        "module": "keras_structopt",
        "class": type(hypermodel).__name__,
        "config": repr(hypermodel.get_config()),
        "values": {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")},
        "data": str(Path(tuner.project_dir) / "isolated" / DATA_FILE),
        "fit": fit_settings,
        "objective": [objective.name, objective.direction],
        "checkpoint": tuner.checkpoint_path(trial.trial_id),
        "build_config": tuner.build_config_path(trial.trial_id),
        "project_dir": str(tuner.project_dir),
        "trial_id": trial.trial_id,
        "trial_directory": str(directory),
    }
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=1))
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    result = subprocess.run([sys.executable, "-m", "keras_structopt.search._isolated", str(directory / SPEC_FILE)],
                            capture_output=True, text=True, env=environment, preexec_fn=_die_with_parent)
    if result.returncode != 0:
        note = read_note(tuner.project_dir, trial.trial_id)
        if result.returncode == _NON_FINITE_EXIT and note.get("failed"):
            raise keras_tuner.errors.FailedTrialError(note["failed"])
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("W0", "I0"))]
        raise keras_tuner.errors.FailedTrialError(
            f"The trial's process ended with exit status {result.returncode}: "
            f"{lines[-1] if lines else 'no message'}"
        )
    history = keras.callbacks.History()
    history.history = json.loads((directory / HISTORY_FILE).read_text())
    history.epoch = list(range(len(next(iter(history.history.values()), []))))
    return history


def _die_with_parent():  # pragma: no cover - runs in the child before exec
    """A trial process ends when the search process is killed (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _main(spec_path: str) -> int:  # pragma: no cover - runs in the trial process (tested through the tuner)
    import keras_tuner

    from keras_structopt import _keras_tuner
    from keras_structopt._trial_files import CurveRecorder
    from keras_structopt.hypermodels import hypermodel_class
    from keras_structopt.search._failures import NonFiniteStopper

    spec = json.loads(Path(spec_path).read_text())
    cls = hypermodel_class(spec["class"])
    if cls is None:  # check_supported let only keras-structopt HyperModels through
        raise SystemExit(f"unknown HyperModel class {spec['class']!r}")
    hypermodel = cls.from_config(ast.literal_eval(spec["config"]))
    hp = keras_tuner.HyperParameters()
    hp.values.update(spec["values"])
    data = np.load(spec["data"])
    validation = (data["validation_x"], data["validation_y"]) if "validation_x" in data.files else None
    objective = keras_tuner.Objective(*spec["objective"])
    callbacks = [
        CurveRecorder(spec["trial_directory"], validation_size=None if validation is None else len(validation[0])),
        NonFiniteStopper(spec["project_dir"], spec["trial_id"]),
        _keras_tuner.save_best_epoch(objective, spec["checkpoint"]),
    ]
    model = hypermodel.build(hp)
    try:
        history = hypermodel.fit(hp, model, data["x"], data["y"], validation_data=validation, callbacks=callbacks,
                                 verbose=0, **spec["fit"])
    except keras_tuner.errors.FailedTrialError as error:
        print(str(error), file=sys.stderr)
        return _NON_FINITE_EXIT
    with open(spec["build_config"], "w") as file:
        json.dump(model.get_build_config(), file)
    record = {name: [float(v) for v in values] for name, values in history.history.items()}
    target = Path(spec["trial_directory"]) / HISTORY_FILE
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, target)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1]))
