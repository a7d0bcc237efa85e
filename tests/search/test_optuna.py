"""OptunaSearch: Optuna's samplers and pruners as a Keras Tuner oracle, with a study that survives a kill."""

import json
import math

import keras_tuner
import optuna
import pytest

import keras_structopt as kso
from keras_structopt.data import TabularSchema, load_movielens
from keras_structopt.search import OptunaSearch
from keras_structopt.search._optuna import suggest_values
from tests.conftest import assert_all_completed
from tests.hypermodels import test_contract
from tests.hypermodels.test_tabular import cancer_frame


def _space():
    space = keras_tuner.HyperParameters()
    depth = space.Int("depth", 1, 3)
    for i in range(2, 4):
        with space.conditional_scope("depth", list(range(i, 4))):
            space.Int(f"units_{i}", 8, 256, sampling="log")
    space.Int("filters", 16, 64, step=16)
    space.Int("widths", 32, 256, step=2, sampling="log")  # Keras Tuner's multiplicative step: 32, 64, 128, 256
    space.Float("rate", 1e-4, 1e-1, sampling="log")
    space.Float("dropout", 0.0, 0.5, step=0.1)
    space.Choice("connection", ["plain", "residual"])
    space.Boolean("batch_norm")
    space.Fixed("activation", "relu")
    return space, depth


def test_the_space_translates_with_its_conditions_bounds_and_steps():
    space, _ = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"depth": set(), "widths": set()}
    for _ in range(60):
        values = suggest_values(space, study.ask())
        hps = space.copy()
        hps.values = dict(values)
        # exactly the active hyperparameters, each inside its range
        assert set(values) == {hp.name for hp in space.space if hps.is_active(hp)}
        assert all(f"units_{i}" in values for i in range(2, values["depth"] + 1))
        assert all(8 <= values[f"units_{i}"] <= 256 for i in range(2, values["depth"] + 1))
        assert values["filters"] in (16, 32, 48, 64) and values["widths"] in (32, 64, 128, 256)
        assert 1e-4 <= values["rate"] <= 1e-1 and values["connection"] in ("plain", "residual")
        assert math.isclose(values["dropout"] * 10, round(values["dropout"] * 10), abs_tol=1e-9)
        assert values["activation"] == "relu" and isinstance(values["batch_norm"], bool)
        seen["depth"].add(values["depth"])
        seen["widths"].add(values["widths"])
    assert seen == {"depth": {1, 2, 3}, "widths": {32, 64, 128, 256}}
    rate = study.trials[0].distributions["rate"]
    assert rate.log and (rate.low, rate.high) == (1e-4, 1e-1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampler": "cmaes"}, r"Expected sampler to be one of \['tpe', 'nsga2', 'random'\]\. Received: sampler='cmaes'"),
        ({"pruner": "patient"}, r"Expected pruner to be one of \['median', 'hyperband', 'successive_halving'\]"),
        ({"pruner": 3}, r"Expected pruner to be None, one of .* or an Optuna pruner\. Received: pruner=3\."),
        ({"pareto": "latency"}, r"Expected pareto to be one of \['params', 'macs'\]\. Received: pareto='latency'"),
        ({"storage": 5}, r"Expected storage to be an Optuna storage URL \(a str\)\. Received: storage=5\."),
        ({"seed": -1}, r"Expected seed to be an int >= 0"),
    ],
)
def test_bad_arguments_are_explained_before_any_trial(tmp_path, kwargs, message):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10)
    with pytest.raises(kso.ConfigurationError, match=message):
        OptunaSearch(hypermodel, objective="val_accuracy", directory=tmp_path, project_name="bad", **kwargs)


def _family_case(case, stored_movielens):
    """A tiny HyperModel and data of each family: the contract's digits views, a table, ratings."""
    if case == "tabular":
        frame, y = cancer_frame()
        hm = kso.TabularHyperModel(TabularSchema.from_data(frame), task="binary", num_layers=(1, 2), units=[8, 16],
                                   seed=0)
        return hm, (frame[:200], y[:200]), (frame[200:300], y[200:300]), "val_accuracy"
    if case == "recommender":
        columns, stars = load_movielens(data_dir=stored_movielens)
        take = lambda rows: ({k: v[rows] for k, v in columns.items()}, stars[rows])  # noqa: E731
        train, validation = take(slice(0, 400)), take(slice(400, 600))
        user = [name for name in train[0] if name.startswith("user") or name.startswith("bucketized_user")]
        hm = kso.RecommenderHyperModel(TabularSchema.from_data(train[0]), user, ["movie_id"], units=[8, 16],
                                       tower_units=[4, 8], seed=0)
        return hm, train, validation, "val_loss"
    train, validation, _ = test_contract.data_for(case, size=120)
    return test_contract.hypermodel(case), train, validation, "val_accuracy"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(test_contract.CASES) + ["tabular", "recommender"])
def test_tpe_runs_every_family(case, tmp_path, stored_movielens):
    hm, train, validation, objective = _family_case(case, stored_movielens)
    # One trial per family, two for dense: the second is TPE's proposal from the first one's result.
    trials = 2 if case == "dense" else 1
    tpe = optuna.samplers.TPESampler(n_startup_trials=trials - 1, seed=0)
    search = kso.search.tuner(OptunaSearch, hm, objective=objective, max_trials=trials, sampler=tpe,
                              directory=tmp_path, project_name=case)
    search.search(*train, validation_data=validation, epochs=1, batch_size=64, verbose=0)
    assert_all_completed(search, expected=trials)
    study = search.oracle.study()
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == trials and set(states) <= {"COMPLETE", "PRUNED"}  # pruned: refused repeats
    for trial in search.oracle.trials.values():
        frozen = study.trials[search.oracle.numbers[trial.trial_id][0]]
        assert frozen.value == pytest.approx(trial.score)  # the study saw what Keras Tuner scored
        asked = {k: v for k, v in trial.hyperparameters.values.items() if k in frozen.params}
        assert asked == frozen.params
    best = search.get_best_models(1)[0]
    assert best.count_params() == kso.architecture_of(best).count_params()


@pytest.fixture(scope="module")
def nsga_search(tmp_path_factory):
    data = kso.data.load_digits_split("flat", seed=0)
    (x, y), validation = data.train, data.validation
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=(4, 64), connection="plain",
                             dropout=0.0, learning_rate=1e-2, seed=0)
    directory = tmp_path_factory.mktemp("nsga")
    search = kso.search.tuner(OptunaSearch, hm, objective="val_accuracy", max_trials=8, sampler="nsga2",
                              pareto="params", seed=0, directory=directory, project_name="pareto")
    search.search(x[:500], y[:500], validation_data=(validation[0][:200], validation[1][:200]), epochs=2,
                  batch_size=64, verbose=0)
    return search, directory


@pytest.mark.slow
def test_nsga2_returns_the_pareto_front_of_accuracy_and_parameters(nsga_search):
    search, directory = nsga_search
    assert_all_completed(search, expected=8)
    study = search.oracle.study()
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = search.oracle.pareto_front()
    assert front
    points = [(t.score, search.hypermodel.architecture(t.hyperparameters.copy()).count_params()) for t in front]
    assert [p for _, p in points] == sorted(p for _, p in points)  # cheapest first
    everything = [(t.score, search.hypermodel.architecture(t.hyperparameters.copy()).count_params())
                  for t in search.oracle.trials.values() if t.status == "COMPLETED"]
    for score, params in points:  # nobody is at least as good on both and better on one
        assert not any(s >= score and p <= params and (s > score or p < params) for s, p in everything)
    for score, params in everything:  # and everybody else is beaten by someone on the front
        if (score, params) not in points:
            assert any(s >= score and p <= params for s, p in points)
    # the project's own Pareto front (from the trials' records) is the same set of trials
    assert {t.trial_id for t in front} == {t.trial_id for t in kso.search.pareto_front(search, cost="params")}
    assert (directory / "pareto" / "optuna.db").is_file()


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_as_stopped_and_never_the_best(tmp_path):
    data = kso.data.load_digits_split("flat", seed=0)
    (x, y), validation = data.train, data.validation
    # a learning rate of 1e-5 leaves a trial near chance: the median pruner stops it after its first epoch
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=(8, 32), connection="plain",
                             dropout=0.0, learning_rate=[1e-2, 1e-5], seed=0)
    search = kso.search.tuner(OptunaSearch, hm, objective="val_accuracy", max_trials=8, sampler="random",
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1), seed=3,
                              directory=tmp_path, project_name="pruned")
    search.search(x[:400], y[:400], validation_data=(validation[0][:200], validation[1][:200]), epochs=4,
                  batch_size=64, verbose=0)
    trials = list(search.oracle.trials.values())
    pruned = [t for t in trials if t.metrics.exists("stopped_at_epoch")]
    assert pruned, [(t.hyperparameters.values, t.score) for t in trials]
    for trial in pruned:
        note = json.loads((tmp_path / "pruned" / f"trial_{trial.trial_id}" / "structopt.json").read_text())
        assert 1 <= note["pruned"]["epoch"] < 3  # after the warm-up step, before the last of 4 epochs
    # every near-chance trial after the pruner's two start-up trials was stopped
    hopeless = [t for t in trials if t.hyperparameters.values["learning_rate"] == 1e-5 and int(t.trial_id) >= 2]
    assert hopeless and all(t in pruned for t in hopeless), [(t.trial_id, t.hyperparameters.values) for t in trials]
    states = {t.number: t.state.name for t in search.oracle.study().trials}
    assert sorted(states[search.oracle.numbers[t.trial_id][0]] for t in pruned) == ["PRUNED"] * len(pruned)
    best = search.oracle.get_best_trials(1)[0]
    assert not best.metrics.exists("stopped_at_epoch") and best.hyperparameters.values["learning_rate"] == 1e-2


@pytest.mark.slow
def test_a_killed_optuna_search_resumes_from_its_study(tmp_path):
    from tests.search.test_tuners import kill_at_third_trial_and_resume

    project = kill_at_third_trial_and_resume(tmp_path, "optuna")
    study = optuna.load_study(study_name="optuna", storage=f"sqlite:///{project / 'optuna.db'}")
    assert "RUNNING" not in [t.state.name for t in study.trials]  # the killed trial's ask was closed
    numbers = json.loads((project / "oracle.json").read_text())["optuna_numbers"]
    assert sorted(numbers) == ["0", "1", "2", "3", "4"]
    for trial_id, (number, _) in numbers.items():  # each trial told once: its score, or pruned by the median
        record = json.loads((project / f"trial_{trial_id}" / "trial.json").read_text())
        stopped = "stopped_at_epoch" in record["metrics"]["metrics"]
        frozen = study.trials[number]
        assert frozen.state.name == ("PRUNED" if stopped else "COMPLETE")
        assert stopped or frozen.value == pytest.approx(record["score"])
