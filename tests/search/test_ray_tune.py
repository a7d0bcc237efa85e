"""A HyperModel under Ray Tune with ASHA: on loopback only, its trials in the project's learning-curve table."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt.data import load_digits_split
from keras_structopt.search import ray_search
from keras_structopt.search._ray import active_values, ray_space


def test_the_space_translates_and_only_active_values_build():
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 3), units=(8, 64), dropout=[0.0, 0.2])
    space = keras_tuner.HyperParameters()
    hm.build(space)
    translated = ray_space(space)
    assert set(translated) == {hp.name for hp in space.space}
    units = translated["block_0/units"]
    assert (units.lower, units.upper) == (8, 65) and "LogUniform" in type(units.get_sampler()).__name__
    assert translated["dropout"].categories == [0.0, 0.2]
    config = {name: (dist.sample() if hasattr(dist, "sample") else dist) for name, dist in translated.items()}
    config["num_layers"] = 1
    values = active_values(space, config)
    assert "block_1/units" not in values and "block_2/units" not in values and values["num_layers"] == 1


def _raylets(temp_dir: str) -> list[str]:
    """The raylet processes of the Ray cluster whose temporary directory is `temp_dir` (another test worker's
    Ray search may be running beside this one: its raylet is not this test's)."""
    listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in listed if "raylet" in line and temp_dir in line and "ps -eo" not in line]


@pytest.fixture
def ray_temp_dir(monkeypatch):
    """A Ray temporary directory of this test's own (short: Ray's socket paths must fit in 107 bytes)."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", directory)  # read by ray.init, here and in the processes started here
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_an_asha_search_runs_on_loopback_and_its_curves_are_the_projects(tmp_path, ray_temp_dir):
    data = load_digits_split("flat", seed=0)
    (x, y), (xv, yv) = data.train, data.validation
    # A learning rate of 1e-5 leaves a trial near chance: ASHA's rungs (1, 2, 4 epochs) are where it is cut.
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16], connection="plain",
                             dropout=0.0, learning_rate=[1e-2, 1e-5], seed=0)
    proxy_before = os.environ.get("http_proxy")
    result = ray_search(hm, x[:400], y[:400], validation_data=(xv[:200], yv[:200]), epochs=4, num_samples=4,
                        max_concurrent_trials=2, storage_path=tmp_path, seed=0, num_cpus=2)
    # Network: the node served on loopback, and every trial ran with proxies at a closed loopback port.
    assert result.node_ip == "127.0.0.1"
    trials = result.oracle.trials
    for trial_id in trials:
        seen = json.loads((Path(result.project_dir) / f"trial_{trial_id}" / "trial.json").read_text())["environment"]
        assert seen == {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                        "no_proxy": "127.0.0.1,localhost,::1", "RAY_USAGE_STATS_ENABLED": "0"}
    assert os.environ.get("http_proxy") == proxy_before  # this process's environment is given back
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials.values())
    # The project's own table reads Ray's trials: one row per trial, epoch and metric.
    rows = kso.search.learning_curves(result)
    assert {r["trial"] for r in rows} == set(trials)
    for trial_id, trial in trials.items():
        epochs = sorted({r["epoch"] for r in rows if r["trial"] == trial_id})
        assert epochs == list(range(len(epochs))) and 1 <= len(epochs) <= 4
        assert len(epochs) == trial.last["epoch"]  # the curve has every epoch Ray saw reported
        assert {r["params"] for r in rows if r["trial"] == trial_id} == {
            hm.architecture(trial.hyperparameters.copy()).count_params()}
    best = result.best_trial()
    assert best.hyperparameters.values["learning_rate"] == 1e-2 and best.score > 0.3 and best.last["epoch"] == 4
    model = result.best_model()  # rebuilt from its checkpoint
    assert model.evaluate(xv[:200], yv[:200], verbose=0)[1] == pytest.approx(best.last["val_accuracy"], abs=1e-6)
    # and the project's Pareto front reads it: the trials no other beats on accuracy and parameters
    front = kso.search.pareto_front(result)
    assert front and max(t.score for t in front) == best.score  # the most accurate is on it (or a cheaper tie)
    deadline = time.time() + 90  # under a loaded machine (the whole suite on 2 cores) Ray takes longer to stop
    while _raylets(ray_temp_dir) and time.time() < deadline:  # the cluster this search started is gone
        time.sleep(1)
    assert _raylets(ray_temp_dir) == []


def test_bad_ray_arguments_are_explained(tmp_path):
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10)
    x, y = load_digits_split("flat", seed=0).train
    with pytest.raises(kso.ConfigurationError, match=r"Expected scheduler to be one of \['asha', 'fifo'\]\. "
                                                     r"Received: scheduler='pbt'"):
        ray_search(hm, x, y, validation_data=(x, y), epochs=1, scheduler="pbt")
    with pytest.raises(kso.ConfigurationError, match=r"Expected validation_data=\(x, y\)\. Received: "
                                                     r"validation_data of type NoneType\."):
        ray_search(hm, x, y, validation_data=None, epochs=1)


@pytest.mark.slow
def test_rays_optuna_searcher_asks_only_the_active_widths(tmp_path):
    data = load_digits_split("flat", seed=0)
    (x, y), (xv, yv) = data.train, data.validation
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 3), units=(8, 32), connection="plain",
                             dropout=0.0, learning_rate=1e-2, seed=0)
    result = ray_search(hm, x[:300], y[:300], validation_data=(xv[:100], yv[:100]), epochs=1, num_samples=3,
                        search_alg="optuna", scheduler="fifo", storage_path=tmp_path, seed=0, num_cpus=2)
    assert len(result.oracle.trials) == 3
    for trial in result.oracle.trials.values():
        values = trial.hyperparameters.values
        widths = sorted(k for k in values if k.startswith("block_"))
        assert widths == [f"block_{i}/units" for i in range(values["num_layers"])]
        # the searcher itself sampled only the active widths (Ray's own variants sample every one)
        assert sorted(k for k in trial.config if k.startswith("block_")) == widths
        assert all(8 <= values[k] <= 32 for k in widths) and trial.score is not None


RAY_SEARCH = """
import sys
import keras_structopt as kso
from keras_structopt.data import load_digits_split
from keras_structopt.search import ray_search

data = load_digits_split("flat", seed=0)
(x, y), (xv, yv) = data.train, data.validation
hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=[8, 16], connection="plain",
                         dropout=0.0, seed=0)
try:
    result = ray_search(hm, x[:400], y[:400], validation_data=(xv[:200], yv[:200]), epochs=10, num_samples=3,
                        max_concurrent_trials=1, scheduler="fifo", storage_path=sys.argv[1], seed=0, num_cpus=2,
                        restore=sys.argv[2] == "restore")
except KeyboardInterrupt as stop:
    print("INTERRUPTED", stop, flush=True)
    raise SystemExit(130)
print("COMPLETED", len(result.oracle.trials), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM"])
def test_an_interrupted_ray_search_raises_keyboard_interrupt_leaves_no_raylet_and_restores(tmp_path, sent,
                                                                                          ray_temp_dir):
    """Ctrl-C (Ray Tune saves the experiment and returns as if done) or SIGTERM while a trial trains:
    ray_search raises KeyboardInterrupt saying how to continue, Ray's local cluster is shut down, and
    restore=True completes every trial."""
    import signal

    script = tmp_path / "search.py"
    script.write_text(RAY_SEARCH)
    storage = tmp_path / "ray"
    process = subprocess.Popen([sys.executable, str(script), str(storage), "new"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(storage.glob("ray/structopt/trial_*/curves.json")) and time.monotonic() < deadline:
        time.sleep(0.5)  # a trial has recorded an epoch
    process.send_signal(getattr(signal, sent))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stdout[-2000:] + stderr[-3000:]
    assert "INTERRUPTED ray_search was interrupted" in stdout and "restore=True" in stdout, stdout[-2000:]
    deadline = time.monotonic() + 60  # a loaded machine takes a while to end the processes
    while _raylets(ray_temp_dir) and time.monotonic() < deadline:
        time.sleep(1)
    assert _raylets(ray_temp_dir) == []  # no Ray process left behind
    finished = subprocess.run([sys.executable, str(script), str(storage), "restore"], capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0 and "COMPLETED 3" in finished.stdout, finished.stdout[-2000:] + finished.stderr[-3000:]
