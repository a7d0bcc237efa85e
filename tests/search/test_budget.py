"""The time budget: `tuner.search(..., max_time=...)` ends within its budget plus one epoch."""

import json
import time

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt.search import write_search_report
from keras_structopt.search._budget import read_budget


def _search(tmp_path, name, trials=20):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[16, 32], seed=0)
    return kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=trials, seed=1,
                            directory=tmp_path, project_name=name)


def test_a_trial_running_when_the_time_is_up_stops_after_its_epoch(tmp_path, digits):
    search = _search(tmp_path, "long")
    started = time.monotonic()
    # 12 s: under a loaded suite the first epoch (tracing included) can take most of 6 s
    search.search(*digits.train, validation_data=digits.validation, epochs=10_000, max_time=12, verbose=0)
    elapsed = time.monotonic() - started
    budget = read_budget(search.project_dir)
    (cut,) = budget["cut"]  # the first trial ran until the time was up, and no other could start
    assert len(search.oracle.trials) == 1 and cut["trial"] == "00"
    epochs = cut["after_epoch"]
    assert epochs >= 2
    # Within the budget plus one epoch (and the trial's own saving), measured from outside.
    assert elapsed <= 12 + 2 * (12 / (epochs - 1)) + 3, (elapsed, epochs)
    assert "no trial started" in budget["stopped"]
    best = search.oracle.get_best_trials(1)[0]
    assert best.status == "COMPLETED" and search.get_best_models(1)[0] is not None  # the best so far
    (out,) = [tmp_path / "report"]
    write_search_report(search.project_dir, out)
    assert "cut by max_time after epoch" in (out / "trials.md").read_text()
    assert "Time budget: max_time=12 s" in (out / "trials.md").read_text()


def test_no_trial_starts_that_could_not_finish(tmp_path, digits):
    # 20 s for trials of 2 epochs: room for several even when the suite's heavy tests load both cores (with 12 s
    # and 3 epochs, a loaded first trial took over half the budget and no second one fitted)
    search = _search(tmp_path, "short", trials=100)
    started = time.monotonic()
    (x, y), (x_val, y_val) = digits.train, digits.validation  # short trials: a loaded suite once fitted only one
    search.search(x[:300], y[:300], validation_data=(x_val[:150], y_val[:150]), epochs=2, max_time=20, verbose=0)
    elapsed = time.monotonic() - started
    budget = json.loads((tmp_path / "short" / "budget.json").read_text())
    seconds = budget["trial_seconds"]
    longest = max(seconds.values() if isinstance(seconds, dict) else seconds)
    # Every trial finished (none was cut), and the last one started only when the estimate said it would fit: the
    # search ends within the budget, give or take how much slower a trial ran than its estimate on a loaded machine.
    assert budget["cut"] == [] and elapsed <= 20 + longest / 2, (elapsed, seconds)
    # Several trials ran, each whole; the search stopped when the longest would no longer fit.
    assert len(budget["trial_seconds"]) == len(search.oracle.trials) >= 2
    assert all(t.status == "COMPLETED" for t in search.oracle.trials.values())
    assert len(search.oracle.trials) < 100 and "no trial started" in budget["stopped"]


def test_a_bad_time_budget_fails_before_any_training(tmp_path, digits):
    search = _search(tmp_path, "bad")
    with pytest.raises(kso.ConfigurationError, match=r"Expected max_time to be a number of seconds > 0\. "
                                                     r"Received: max_time='ten'\."):
        search.search(*digits.train, validation_data=digits.validation, epochs=1, max_time="ten")
    assert not search.oracle.trials
