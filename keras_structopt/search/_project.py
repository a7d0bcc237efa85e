"""A finished search read back from its project directory, read-only: tables, plots, HParams.

Tuners made with `kso.search.tuner` write `structopt-search.json` into their project when a
search starts: the HyperModel (class and JSON config) and the objective. With it, a project
directory alone is enough to redraw what the search found -- every trial's structure, its
learning curves, the Pareto front, TensorBoard HParams -- in another process, without the
data and without opening a tuner (which would write into the project). A plain Keras Tuner
project works too, without the structure columns.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from keras_structopt import _checks
from keras_structopt._trial_files import CURVES_FILE, read_json, read_note, trial_folder, write_atomically
from keras_structopt._types import PathLike
from keras_structopt.search._budget import CUT_NOTE, read_budget

SEARCH_FILE = "structopt-search.json"


def check_same_search(project: Path, hypermodel) -> None:
    """Raises a `ConfigurationError` before a tuner resumes `project` with another HyperModel (another
    family, another space) than the one its search was started with, listing the differences; or when
    the project's search record cannot be read.

    Example:
        >>> import keras_structopt as kso
        >>> project = getfixture("tmp_path")
        >>> _ = (project / SEARCH_FILE).write_text('{"hypermodel": {"class": "ConvHyperModel", "config": {}}}')
        >>> try:
        ...     check_same_search(project, kso.DenseHyperModel(input_shape=(4,), outputs=2))
        ... except kso.ConfigurationError as error:
        ...     print(str(error).split(" Received")[0])
        Expected the search's own settings to resume it.
    """
    from keras_structopt.hypermodels import hypermodel_class

    path = Path(project) / SEARCH_FILE
    if hypermodel is None or not path.exists():
        return
    try:
        recorded = json.loads(path.read_text())
        recorded_class, recorded_config = recorded["hypermodel"]["class"], recorded["hypermodel"]["config"]
        if not isinstance(recorded_config, dict):
            raise TypeError("its config is not an object")
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise _checks.error(
            f"Expected {str(path)!r} to hold the search's settings as keras-structopt wrote them. Received: a file "
            f"that cannot be read ({type(error).__name__}: {error}); move the project away (or pass overwrite=True "
            "to delete it) to start a new search."
        ) from None
    name = type(hypermodel).__name__
    if hypermodel_class(name) is not type(hypermodel):
        return
    try:
        config = json.loads(json.dumps(hypermodel.get_config()))
    except (TypeError, ValueError):
        return
    if recorded_class != name:
        differences = [f"HyperModel {recorded_class} (now {name})"]
    else:
        differences = [f"{key}={recorded_config.get(key)!r} (now {config.get(key)!r})"
                       for key in sorted(set(recorded_config) | set(config))
                       if recorded_config.get(key) != config.get(key)]
    if differences:
        raise _checks.error(
            f"Expected the search's own settings to resume it. Received: a search in {str(project)!r} started with "
            f"{'; '.join(differences)}. Resume with its settings, or start a new search in another directory (or "
            "with overwrite=True)."
        )


def write_search_file(tuner) -> Path | None:
    """Records the tuner's HyperModel and objective in its project (once; never rewritten).

    Returns the file, or None when the HyperModel is not a keras-structopt one or its
    configuration does not go to JSON (a custom loss function, for example).
    """
    from keras_structopt.hypermodels import hypermodel_class

    path = Path(tuner.project_dir) / SEARCH_FILE
    if path.exists():
        return path
    hypermodel = tuner.hypermodel
    name = type(hypermodel).__name__
    if hypermodel_class(name) is not type(hypermodel):
        return None
    objective = tuner.oracle.objective
    try:
        text = json.dumps({
            "hypermodel": {"class": name, "config": hypermodel.get_config()},
            "objective": [objective.name, objective.direction],
            "cost": getattr(tuner, "cost", None),
        }, indent=1)
    except (TypeError, ValueError):
        return None
    write_atomically(path, (text + "\n").encode())
    return path


class _Oracle:
    """The parts of a Keras Tuner oracle that the reading functions use."""

    def __init__(self, trials: dict, objective):
        self.trials = trials
        self.objective = objective

    def get_trial(self, trial_id):
        return self.trials[trial_id]

    def get_best_trials(self, num_trials: int = 1):
        sign = 1 if self.objective.direction == "max" else -1
        done = [t for t in self.trials.values() if t.status == "COMPLETED" and t.score is not None]
        return sorted(done, key=lambda t: -sign * t.score)[:num_trials]


class Project:
    """A read-only view of a search's project directory, usable where a tuner is read.

    `learning_curves`, `plot_learning_curves`, `pareto_front`, `plot_pareto`,
    `select_simplest` and `write_hparams` accept it in place of a tuner.

    Attributes:
        project_dir: The directory.
        hypermodel: The keras-structopt HyperModel rebuilt from `structopt-search.json`, or
            None for a plain Keras Tuner project.
        oracle: The trials (`oracle.trials`) and the objective (`oracle.objective`).

    Example:
        >>> project = Project(getfixture("finished_search").project_dir)
        >>> sorted(project.oracle.trials) == sorted(getfixture("finished_search").oracle.trials)
        True
    """

    def __init__(self, directory: PathLike):
        import keras_tuner
        from keras_tuner.engine import trial as trial_module

        directory = Path(os.fspath(directory))
        if not (directory / "oracle.json").is_file():
            raise _checks.error(
                "Expected a Keras Tuner project directory (holding oracle.json). "
                f"Received: {str(directory)!r}."
            )
        self.project_dir = str(directory)
        trials = {}
        for path in sorted(directory.glob("trial_*/trial.json")):
            try:
                trial = trial_module.Trial.from_state(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as error:
                raise _checks.error(
                    f"Expected readable trial files in {str(directory)!r}. Received: {str(path)!r} ({error})."
                ) from None
            trials[trial.trial_id] = trial
        search = read_json(directory / SEARCH_FILE)
        self.hypermodel = None
        objective = None
        if search:
            from keras_structopt.hypermodels import hypermodel_class

            spec = search["hypermodel"]
            cls = hypermodel_class(spec["class"]) if isinstance(spec, dict) else None
            if cls is None:
                raise _checks.error(
                    f"Expected {SEARCH_FILE} to name a keras-structopt HyperModel. Received: {spec!r} in "
                    f"{str(directory)!r}; move the file away to read the project as a plain Keras Tuner one."
                )
            self.hypermodel = cls.from_config(spec["config"])
            objective = keras_tuner.Objective(*search["objective"])
            self.cost = search.get("cost")
        else:
            self.cost = None
            state = read_json(directory / "oracle.json")
            objective = _objective_from_state(state.get("objective")) or keras_tuner.Objective("val_loss", "min")
        self.oracle = _Oracle(trials, objective)


def _objective_from_state(state) -> Any:
    import keras_tuner

    if isinstance(state, dict) and "name" in state:
        return keras_tuner.Objective(state["name"], state.get("direction", "max"))
    if isinstance(state, list) and state and isinstance(state[0], dict):
        return _objective_from_state(state[0])
    return None


def trial_rows(project: Project) -> list[dict[str, Any]]:
    """One row per trial: its id, status, objective value, epochs, structure and notes.

    Example:
        >>> rows = trial_rows(Project(getfixture("finished_search").project_dir))
        >>> list(rows[0])[:9]
        ['trial', 'status', 'val_accuracy', 'epochs', 'family', 'depth', 'widths', 'connection', 'params']
    """
    from keras_structopt.search._hparams import structure_columns

    metric = project.oracle.objective.name
    rows = []
    for trial_id, trial in sorted(project.oracle.trials.items()):
        row: dict[str, Any] = {"trial": trial_id, "status": trial.status}
        value = trial.metrics.get_best_value(metric) if trial.metrics.exists(metric) else None
        row[metric] = None if value is None or not math.isfinite(value) else float(value)
        runs = read_json(trial_folder(project.project_dir, trial_id) / CURVES_FILE).get("runs", [])
        row["epochs"] = max((len(run.get("epochs", [])) for run in runs), default=None)
        if project.hypermodel is not None:
            row.update(structure_columns(project.hypermodel, trial.hyperparameters.values))
        values = trial.hyperparameters.values
        row.update({k: v for k, v in values.items() if not k.startswith("tuner/") and k not in row})
        note = read_note(project.project_dir, trial_id)
        stopped = "median stopped" if "median_stopped" in note else "pruned" if "pruned" in note else None
        if CUT_NOTE in note:
            stopped = f"cut by max_time after epoch {note[CUT_NOTE]}"
        reason = note.get("failed") or note.get("rejected") or stopped
        if reason is None and trial.message:
            reason = str(trial.message).strip().splitlines()[-1]
        row["note"] = reason
        rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No trials.\n"
    columns = list(rows[0])
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]

    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "/")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_search_report(directory: PathLike, out: PathLike) -> list[Path]:
    """Writes the tables and plots of a finished search to `out` (a new directory); returns the files.

    `trials.json` and `trials.md` (every trial, its structure and notes), and when the
    HyperModel is known: `learning_curves.png` (by depth), `pareto.png` (objective
    against parameters), and TensorBoard HParams under `out/tensorboard`. The project is
    only read.

    Example:
        >>> files = write_search_report(getfixture("finished_search").project_dir, getfixture("tmp_path") / "r")
        >>> sorted(p.name for p in files)
        ['learning_curves.png', 'pareto.png', 'tensorboard', 'trials.json', 'trials.md']
    """
    from keras_structopt.search._curves import plot_learning_curves
    from keras_structopt.search._hparams import write_hparams
    from keras_structopt.search._select import plot_pareto, records

    project = Project(directory)
    out = Path(os.fspath(out))
    if out.exists() and any(out.iterdir()):
        raise _checks.error(
            f"Expected a new or empty directory for the report. Received: {str(out)!r}, which holds files; "
            "choose another."
        )
    _checks.writable_directory("out", out)
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(project)
    written = [out / "trials.json", out / "trials.md"]
    written[0].write_text(json.dumps(rows, indent=1, default=str) + "\n")
    budget = read_budget(project.project_dir)
    budget_line = "" if budget is None else (
        f"Time budget: max_time={budget['max_time']:g} s, {budget['elapsed']:.0f} s used, "
        f"{len(budget['cut'])} trial(s) cut at an epoch's end"
        + (f"; {budget['stopped']}" if budget.get("stopped") else "") + ".\n\n")
    written[1].write_text(f"# Trials of {project.project_dir}\n\n" + budget_line + _markdown(rows))
    if project.hypermodel is not None:
        metric = project.oracle.objective.name
        if any(row.get("epochs") for row in rows):
            with contextlib.suppress(ValueError):  # no curve of the objective's metric (a training metric's)
                written.append(plot_learning_curves(project, out / "learning_curves.png", metric=metric))
        if records(project)[0]:
            written.append(plot_pareto(project, out / "pareto.png"))
        write_hparams(project, out / "tensorboard")
        written.append(out / "tensorboard")
    return written
