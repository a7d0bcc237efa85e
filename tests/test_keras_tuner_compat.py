"""The one module that touches Keras Tuner's internals, and the rest of the package that does not.

Each function of `keras_structopt._keras_tuner` is exercised on the installed Keras Tuner, so a
Keras Tuner release that changes one of them fails here, by name; a member that is gone is
reported with the member and the supported version. The rest of the package is read as text:
no `keras_tuner.src` import, no private Keras Tuner member, no method assigned onto an oracle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt import _keras_tuner as compat
from keras_structopt.search import structural_oracle

PACKAGE = Path(__file__).resolve().parents[1] / "keras_structopt"
COMPAT = PACKAGE / "_keras_tuner.py"


def _tuner(tmp_path, base=keras_tuner.RandomSearch, **kwargs):
    hypermodel = kso.DenseHyperModel(input_shape=(4,), outputs=2, num_layers=(1, 2), units=[4, 8])
    kwargs.setdefault("max_trials", 4)
    return kso.search.tuner(base, hypermodel, objective="val_accuracy", seed=1, directory=tmp_path,
                            project_name="compat", **kwargs)


def test_oracle_functions_on_the_installed_keras_tuner(tmp_path):
    search = _tuner(tmp_path)
    oracle = search.oracle
    assert compat.project_dir(oracle) == search.project_dir
    values = compat.random_values(oracle)
    assert values and set(values) >= {"num_layers", "block_0/units"}
    assert not compat.tried(oracle, values)
    compat.allow_collisions(oracle, 500)
    compat.honour_seed(oracle, 0)
    assert oracle.seed == 0


def test_grid_functions_on_the_installed_keras_tuner(tmp_path):
    search = _tuner(tmp_path, keras_tuner.GridSearch)
    oracle = search.oracle
    first = search.oracle.populate_space("0")["values"]
    following = compat.next_grid_point(oracle, first)
    assert following is not None and following != first
    compat.restore_grid_walk(oracle, [])  # nothing to restore: a no-op
    compat.leave_grid_walk(oracle, "no such trial")


def test_bayesian_observations_extend_the_gaussian_process_data(tmp_path):
    search = _tuner(tmp_path, keras_tuner.BayesianOptimization)
    assert isinstance(search.oracle, compat.BayesianObservations)
    assert compat.nonfixed_space(search.oracle)


def test_tuner_hooks_on_the_installed_keras_tuner(tmp_path):
    search = _tuner(tmp_path)
    assert search.checkpoint_path("00").endswith("checkpoint.weights.h5")
    assert search.build_config_path("00").endswith("build_config.json")
    model = search.build_model(search.oracle.get_space())
    assert model.count_params() > 0
    assert search.copy_callbacks([]) == []


def test_metric_helpers(tmp_path):
    objective = keras_tuner.Objective("val_loss", "min")
    assert compat.metrics_dict({"val_loss": 0.5}, objective) == {"val_loss": 0.5}
    callback = compat.save_best_epoch(objective, str(tmp_path / "trial_0" / "checkpoint.weights.h5"))
    assert compat.checkpoint_directory([object(), callback]) == str(tmp_path / "trial_0")
    assert compat.checkpoint_directory(None) is None
    assert type(compat.metrics_tracker()).__name__ == "MetricsTracker"
    compat.quiet_condition_protos()


def test_a_finished_trial_is_scored_again_with_new_metrics(tmp_path):
    search = _tuner(tmp_path)
    oracle = search.oracle
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
    oracle.end_trial(trial)
    compat.replace_metric(trial, "val_accuracy", 0.75)
    oracle.score_trial(trial)
    compat.save_trial(oracle, trial)
    assert trial.metrics.get_history("val_accuracy")[-1].value == [0.75] and trial.score == 0.75
    saved = json.loads((tmp_path / "compat" / f"trial_{trial.trial_id}" / "trial.json").read_text())
    assert saved["score"] == 0.75


def test_a_missing_member_is_named_with_the_supported_version():
    class Changed:
        pass

    with pytest.raises(RuntimeError, match=r"keras-structopt needs Keras Tuner's Changed\._random_values.*supports "
                                           r"Keras Tuner 1\.4\.x"):
        compat.random_values(Changed())


def _private_members() -> set[str]:
    """The private attribute names of Keras Tuner's oracles, tuners, trials and their instances."""
    oracle = keras_tuner.oracles.BayesianOptimizationOracle(objective="val_loss", max_trials=1)
    grid = keras_tuner.oracles.GridSearchOracle(objective="val_loss", max_trials=1)
    classes = [keras_tuner.Oracle, keras_tuner.Tuner, keras_tuner.engine.trial.Trial, keras_tuner.HyperParameters,
               keras_tuner.HyperModel, keras_tuner.oracles.HyperbandOracle, type(oracle), type(grid)]
    names = {n for cls in classes for n in vars(cls) if n.startswith("_") and not n.startswith("__")}
    for cls in classes:
        for base in cls.__mro__:
            if base.__module__.startswith("keras_tuner"):
                names |= {n for n in vars(base) if n.startswith("_") and not n.startswith("__")}
    names |= {n for obj in (oracle, grid) for n in vars(obj) if n.startswith("_") and not n.startswith("__")}
    return names


def test_no_module_but_the_compatibility_module_reaches_into_keras_tuner():
    private = _private_members()
    assert {"_random_values", "_duplicate", "_project_dir", "_try_build", "_populate_next"} <= private
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == COMPAT:
            continue
        text = path.read_text()
        if "keras_tuner.src" in text:
            found.append(f"{path.name}: imports keras_tuner.src")
        for name in sorted(private):
            if re.search(rf"\.{re.escape(name)}\b", text) or re.search(rf"def {re.escape(name)}\(self", text):
                found.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert found == []


def test_no_method_is_assigned_onto_an_oracle():
    methods = {n for n in dir(keras_tuner.Oracle) if callable(getattr(keras_tuner.Oracle, n))}
    pattern = re.compile(r"\boracle\.(\w+)\s*=[^=]")
    found = [f"{path.name}: {m.group(0)}" for path in sorted(PACKAGE.rglob("*.py"))
             for m in pattern.finditer(path.read_text()) if m.group(1) in methods]
    assert found == []


def test_structural_oracles_are_subclasses_of_keras_tuners_own():
    for base in (keras_tuner.oracles.RandomSearchOracle, keras_tuner.oracles.GridSearchOracle,
                 keras_tuner.oracles.BayesianOptimizationOracle, keras_tuner.oracles.HyperbandOracle,
                 kso.search.EvolutionOracle):
        made = structural_oracle(base)
        assert issubclass(made, base) and issubclass(made, kso.search.StructuralOracle)
        assert structural_oracle(base) is made  # made once
    with pytest.raises(kso.ConfigurationError, match=r"Expected a Keras Tuner oracle class\. Received: <class 'int'>"):
        structural_oracle(int)
