"""Knowledge transfer between searches: warm start from an earlier project, and weight inheritance.

* `warm_start(tuner, from_directory, top_k=...)` reads an earlier Keras Tuner project
  directory (read only: nothing is written there), ranks its finished trials, adapts the
  best `top_k` structures to the new tuner's space and queues them: the new search tries
  them first, whatever its oracle, then goes on as it would have.
* Weight inheritance (`donors=` of `keras_structopt.search.tuner`): each candidate starts
  from a donor model's weights where its layers match the donor's by name — the same
  shape is copied, a narrower layer takes the donor's first units (slicing every axis, so
  consecutive layers stay consistent), a wider or an extra layer keeps its fresh
  initialisation. With several donors, each candidate takes the one it can inherit the
  most weights from. The output layer (the head) starts fresh unless `inherit_head=True`:
  a donor's head answers the donor's task, and on a new task it is worse than a fresh one
  (`python bench/search.py --parts inherit --seeds 10 --epochs 3`: ten structures trained
  on digits 0-4, then 3 epochs on 5-9: validation accuracy 0.870 with the donor's head,
  0.915 with a fresh head, 0.941 from scratch). Inherit it when the donor was trained on
  the same task (a re-search on new data, say).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_structopt import _checks
from keras_structopt._trial_files import read_json, read_note
from keras_structopt._types import Model, PathLike
from keras_structopt.search._stopping import stopped_early

# -- warm start -------------------------------------------------------------------------


def adapt(space, values: dict) -> tuple[dict, list[str]]:
    """`values` of another search made valid in `space`, with a note for every change.

    Numbers outside a range are clipped to it, a choice the space does not offer takes the
    space's default, a hyperparameter the earlier search did not have takes its default,
    and one the space does not have is dropped. Only active values are returned.

    Example:
        >>> import keras_tuner
        >>> space = keras_tuner.HyperParameters()
        >>> _ = space.Int("units", 8, 64)
        >>> _ = space.Choice("activation", ["relu", "gelu"])
        >>> values, notes = adapt(space, {"units": 128, "activation": "tanh", "dropout": 0.1})
        >>> values
        {'units': 64, 'activation': 'relu'}
        >>> for note in notes:
        ...     print(note)
        units: 128 clipped to 64
        activation: 'tanh' not offered, default 'relu'
        dropout: not in this space, dropped
    """
    hps = space.copy()
    hps.values = {}
    notes = []
    for hp in hps.space:  # declaration order: a condition's parent is set before its children
        if not hps.is_active(hp):
            continue
        kind = type(hp).__name__
        if hp.name not in values:
            value = hp.value if kind == "Fixed" else hp.default
            notes.append(f"{hp.name}: not in the earlier search, default {value!r}")
        else:
            value = values[hp.name]
            if kind == "Fixed":
                if value != hp.value:
                    notes.append(f"{hp.name}: {value!r} is fixed here to {hp.value!r}")
                value = hp.value
            elif kind == "Choice":
                if value not in hp.values:
                    notes.append(f"{hp.name}: {value!r} not offered, default {hp.default!r}")
                    value = hp.default
            elif kind == "Boolean":
                value = bool(value)
            elif kind in ("Int", "Float"):
                clipped = min(max(value, hp.min_value), hp.max_value)
                if kind == "Int" and hp.step and hp.step > 1:
                    clipped = hp.min_value + int(round((clipped - hp.min_value) / hp.step)) * hp.step
                    clipped = min(clipped, hp.max_value)
                clipped = int(clipped) if kind == "Int" else float(clipped)
                if clipped != value:
                    notes.append(f"{hp.name}: {value!r} clipped to {clipped!r}")
                value = clipped
        hps.values[hp.name] = value
    names = {hp.name for hp in hps.space}
    notes += [f"{name}: not in this space, dropped" for name in values
              if name not in names and not name.startswith("tuner/")]
    return {hp.name: hps.values[hp.name] for hp in hps.space if hps.is_active(hp)}, notes


def _best_value(trial_json: dict, metric: str) -> tuple[float | None, str | None]:
    """A metric's best value in a saved trial, and its direction."""
    record = trial_json.get("metrics", {}).get("metrics", {}).get(metric)
    if not record:
        return None, None
    means = [float(np.mean(o["value"])) for o in record.get("observations", []) if o.get("value")]
    if not means:
        return None, None
    direction = record.get("direction", "max")
    return (max(means) if direction == "max" else min(means)), direction


def earlier_trials(from_directory, metric: str, direction: str) -> list[dict]:
    """The finished trials of a project directory, best first, read without writing anything.

    Trials are ranked by `metric` where they recorded it (the direction they recorded),
    otherwise by their score in `direction`. Rejected and median-stopped trials are left out.
    """
    project = Path(from_directory)
    if not (project / "oracle.json").exists():
        raise _checks.error(
            "Expected from_directory to be a Keras Tuner project directory (holding oracle.json). "
            f"Received: from_directory={str(from_directory)!r}."
        )
    found = []
    for path in sorted(project.glob("trial_*/trial.json")):
        trial = read_json(path)
        if trial.get("status") != "COMPLETED":
            continue
        trial_id = trial.get("trial_id") or path.parent.name[len("trial_"):]
        note = read_note(project, trial_id)
        if "rejected" in note or stopped_early(note):
            continue
        value, recorded = _best_value(trial, metric)
        if value is None:
            value, recorded = trial.get("score"), direction
        if value is None or not math.isfinite(value):
            continue
        found.append({"trial": trial_id, "value": float(value), "direction": recorded,
                      "values": trial.get("hyperparameters", {}).get("values", {})})
    return sorted(found, key=lambda t: -t["value"] if t["direction"] == "max" else t["value"])


def warm_start(tuner: keras_tuner.Tuner, from_directory: PathLike, *, top_k: int = 3) -> list[dict]:
    """Makes `tuner` try the best `top_k` structures of an earlier search first.

    The earlier project directory is only read. Each structure is adapted to the new
    space (`adapt`: clipped, defaulted or dropped values, each with a note); the queued
    values are handed out before the tuner's own oracle is asked, so it works with every
    oracle (Bayesian optimisation and evolution then learn from them; a grid starts its
    walk after them). A queued structure that the new search already tried, or that a
    budget refuses, is skipped. After a restart call `warm_start` again with the same
    arguments: what was tried already is skipped.

    Args:
        tuner: A tuner made by `keras_structopt.search.tuner`.
        from_directory: The earlier search's project directory (`directory/project_name`).
        top_k: How many of its best trials to queue.

    Returns:
        The queued entries: `trial` (its id in the earlier search), `value`, `values` (as
        adapted) and `notes`. Each warm-started trial's `structopt.json` records its origin.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> earlier = getfixture("finished_search")
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(8, 24))
        >>> search = kso.search.tuner(keras_tuner.BayesianOptimization, hypermodel, objective="val_accuracy",
        ...     max_trials=5, directory=getfixture("tmp_path"), project_name="warm")
        >>> queued = warm_start(search, earlier.project_dir, top_k=2)
        >>> len(queued), all(8 <= q["values"]["block_0/units"] <= 24 for q in queued)
        (2, True)
    """
    from keras_structopt.search._oracle import StructuralOracle

    if not isinstance(tuner.oracle, StructuralOracle):
        raise _checks.error(
            "Expected a tuner made by keras_structopt.search.tuner(...): its oracle hands the earlier search's "
            f"structures out first. Received: a {type(tuner).__name__} whose oracle is a "
            f"{type(tuner.oracle).__name__}; make it with kso.search.tuner(keras_tuner.{type(tuner).__name__}, ...)."
        )
    top_k = _checks.positive_int("top_k", top_k)
    if Path(from_directory).resolve() == Path(tuner.project_dir).resolve():
        raise _checks.error(
            "Expected from_directory to be another search's project directory. Received: this tuner's own, "
            f"from_directory={str(from_directory)!r}."
        )
    objective = tuner.oracle.objective
    queued = []
    for trial in earlier_trials(from_directory, objective.name, objective.direction)[:top_k]:
        values, notes = adapt(tuner.oracle.hyperparameters, trial["values"])
        queued.append({"trial": trial["trial"], "value": trial["value"], "values": values, "notes": notes,
                       "from": str(from_directory)})
    tuner.oracle.queue[:] = queued
    return queued


# -- weight inheritance --------------------------------------------------------------------------


def _inheritable(candidate_shape, donor_shape) -> bool:
    return len(candidate_shape) == len(donor_shape) and all(c <= d for c, d in zip(candidate_shape, donor_shape))


def _pairs(model, donor, skip=frozenset()):
    """(candidate layer, donor layer) for every candidate layer with weights and a donor namesake."""
    names = {layer.name: layer for layer in donor.layers}
    return [(layer, names[layer.name]) for layer in model.layers
            if layer.weights and layer.name in names and layer.name not in skip]


def inheritable_count(model, donor, skip=frozenset()) -> int:
    """How many of `model`'s weights (scalars) `donor` could give it (layers named in `skip` excepted)."""
    total = 0
    for layer, source in _pairs(model, donor, skip):
        if len(layer.weights) != len(source.weights):
            continue
        for mine, theirs in zip(layer.weights, source.weights):
            if _inheritable(tuple(mine.shape), tuple(theirs.shape)):
                total += int(np.prod(mine.shape))
    return total


def head_layers(model) -> set[str]:
    """Names of the layers that compute `model`'s outputs: for each output, the last layer with weights.

    Weightless layers after it (an activation, a float32 cast under mixed precision) are
    looked through.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=8).build(
        ...     keras_tuner.HyperParameters())
        >>> head_layers(model)
        {'head'}
    """
    names = set()
    for output in model.outputs:
        operation, node_index = output._keras_history[0], output._keras_history[1]
        while not operation.weights:
            inputs = operation._inbound_nodes[node_index].input_tensors
            if not inputs:
                break
            operation, node_index = inputs[0]._keras_history[0], inputs[0]._keras_history[1]
        if operation.weights:
            names.add(operation.name)
    return names


def inherit_weights(model: Model, donors: Sequence[Model | PathLike], *, head: bool = False) -> dict:
    """Copies weights from the best-matching donor into `model` (in place); returns what it did.

    Args:
        model: The candidate (a built Keras 3 model).
        donors: Keras 3 models to inherit from.
        head: Also inherit the output layer (see the module docstring: only for a donor
            trained on the same task).

    Returns a dict: `donor` (its index in `donors`, or None if none matches), `copied`
    and `sliced` (scalars taken, at the same shape or from a wider donor layer), `fresh`
    (scalars left as initialised), and `layers` (name → "copied", "sliced" or "fresh").

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> donor = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=32).build(
        ...     keras_tuner.HyperParameters())
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=16).build(
        ...     keras_tuner.HyperParameters())
        >>> report = inherit_weights(model, [donor])
        >>> report["layers"]["block_0_dense"], report["layers"]["head"], report["fresh"]
        ('sliced', 'fresh', 170)
    """
    donors = list(donors)
    if not donors:
        return {"donor": None, "copied": 0, "sliced": 0, "fresh": model.count_params(), "layers": {}}
    skip = set() if head else head_layers(model)
    counts = [inheritable_count(model, donor, skip) for donor in donors]
    best = int(np.argmax(counts))
    donor = donors[best]
    report: dict[str, Any] = {
        "donor": best if counts[best] else None, "copied": 0, "sliced": 0, "fresh": 0, "layers": {}
    }
    inherited = set()
    for layer, source in _pairs(model, donor, skip):
        if len(layer.weights) != len(source.weights):
            continue
        new, kinds = [], set()
        for mine, theirs in zip(layer.get_weights(), source.get_weights()):
            if mine.shape == theirs.shape:
                new.append(theirs)
                kinds.add("copied")
                report["copied"] += mine.size
            elif _inheritable(mine.shape, theirs.shape):
                new.append(theirs[tuple(slice(0, n) for n in mine.shape)])
                kinds.add("sliced")
                report["sliced"] += mine.size
            else:
                new.append(mine)
                kinds.add("fresh")
                report["fresh"] += mine.size
        layer.set_weights(new)
        inherited.add(layer.name)
        report["layers"][layer.name] = "sliced" if "sliced" in kinds else ("fresh" if kinds == {"fresh"} else
                                                                          "copied" if kinds == {"copied"} else "partly")
    for layer in model.layers:
        if layer.weights and layer.name not in inherited:
            report["layers"][layer.name] = "fresh"
            report["fresh"] += int(sum(np.prod(w.shape) for w in layer.weights))
    return report


def load_donors(donors) -> list:
    """Donor models from Keras 3 models or paths of saved `.keras` files (checked before any training)."""
    if donors is None:
        return []
    if isinstance(donors, (keras.Model, str, Path)):
        donors = [donors]
    loaded = []
    for index, donor in enumerate(donors):
        if isinstance(donor, keras.Model):
            loaded.append(donor)
        elif isinstance(donor, (str, Path)) and Path(donor).is_file():
            loaded.append(keras.models.load_model(donor, compile=False))
        else:
            raise _checks.error(
                "Expected donors to be Keras 3 models or paths of saved .keras files. Received: "
                f"donors[{index}]={donor!r}."
            )
    return loaded
