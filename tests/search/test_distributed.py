"""Keras Tuner's distributed mode under keras-structopt's launcher: a chief and two workers on loopback,
killed workers and a killed chief, resumed with nothing finished lost or re-run."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keras_structopt import ConfigurationError
from keras_structopt.search import launch
from keras_structopt.search._distributed import free_port
from tests.conftest import REPOSITORY

SEARCH = textwrap.dedent("""
    import os, signal, sys
    import keras, keras_tuner
    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    directory, log = sys.argv[1], sys.argv[2]
    me = os.environ["KERASTUNER_TUNER_ID"]
    if me == "chief":
        with open(os.path.join(directory, "chief.pid"), "w") as f:
            f.write(str(os.getpid()))

    def count(who):
        return sum(1 for line in open(log) if line.split()[0] == who)

    class Log(keras.callbacks.Callback):  # on a worker's n-th training: it dies, or it kills the chief
        def on_train_begin(self, logs=None):
            with open(log, "a") as f:
                f.write(me + " start\\n")
            who, n = (os.environ.get("KILL_AT") or "-:0").split(":")
            if who == me and count(me) == int(n):
                os.kill(os.getpid(), signal.SIGKILL)
            who, n = (os.environ.get("KILL_CHIEF_AT") or "-:0").split(":")
            if who == me and count(me) == int(n):
                os.kill(int(open(os.path.join(directory, "chief.pid")).read()), signal.SIGKILL)

    x, y = load_digits_split("flat", seed=0).train
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16, 32],
                                     connection="plain", dropout=0.0, learning_rate=1e-2, seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=6, seed=0,
                              directory=directory, project_name="shared", overwrite=False)
    search.search(x[:240], y[:240], validation_data=(x[240:400], y[240:400]), epochs=2, batch_size=32, verbose=0,
                  callbacks=[Log()])
    if me == "chief":  # the search is over: picked once, by the chief
        print("best", search.oracle.get_best_trials(1)[0].trial_id, flush=True)
""")


def _finished(project: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in project.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] == "COMPLETED"}


def _run(tmp_path, **env):
    (tmp_path / "trainings.log").write_text("")
    result = launch(tmp_path / "search.py", str(tmp_path), str(tmp_path / "trainings.log"), workers=2,
                    respawns=int(env.pop("respawns", 0)), deadline_s=300, log_dir=tmp_path / "logs",
                    env={"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPOSITORY, **env})
    started = (tmp_path / "trainings.log").read_text().split("\n")
    return result, [line.split()[0] for line in started if line]


@pytest.mark.slow
def test_chief_and_two_workers_survive_killed_workers_and_a_killed_chief(tmp_path):
    (tmp_path / "search.py").write_text(SEARCH)
    project = tmp_path / "shared"

    # 1. A worker is SIGKILLed as it starts its second trial: the launcher ends the run at once.
    result, started = _run(tmp_path, KILL_AT="tuner1:2")
    assert result.status == "worker died" and result.returncodes["tuner1"] == -9
    assert result.ended_after_failure_s < 60
    assert all(code is not None for code in result.returncodes.values())  # nothing left running
    assert set(started) == {"tuner0", "tuner1"}  # the two workers shared the trials
    finished = _finished(project)
    # The killed worker's first trial finished; the other worker finished none, one or two by then (on a
    # loaded machine the two run at different speeds): what finished is what the resumes keep, and at least
    # two of the six trials are left for the next run's two workers.
    assert 1 <= len(finished) <= 4

    # 2. Resumed, the chief is SIGKILLed when a worker starts its first trial: the workers are ended.
    result, _ = _run(tmp_path, KILL_CHIEF_AT="tuner0:1")
    assert result.status == "chief died" and result.returncodes["chief"] == -9
    assert result.ended_after_failure_s < 60 and all(code is not None for code in result.returncodes.values())
    assert {k: v for k, v in _finished(project).items() if k in finished} == finished  # finished: untouched
    finished = _finished(project)

    # 3. Resumed with a respawn allowed: a worker dies at its first trial, comes back under its id,
    # gets its unfinished trial back, and the budget completes.
    result, started = _run(tmp_path, KILL_AT="tuner1:1", respawns=1)
    assert result.status == "completed", (result, (tmp_path / "logs" / "chief.log").read_text()[-2000:])
    assert result.respawned == {"tuner0": 0, "tuner1": 1}
    everything = _finished(project)
    assert sorted(everything) == [f"trial_{i}" for i in range(6)]
    assert {k: everything[k] for k in finished} == finished  # no finished trial re-run
    # trainings in this run: the trials left unfinished, plus the one the killed worker restarted
    assert len(started) == 6 - len(finished) + 1
    assert "best " in (tmp_path / "logs" / "chief.log").read_text()


# A chief that listens until its workers have started, then finishes its job (exit 0); tuner1 never
# gets an answer (it asked after the chief's server had closed, as a worker slow to start can).
LATE_WORKER = textwrap.dedent("""
    import os, socket, sys, time
    me = os.environ["KERASTUNER_TUNER_ID"]
    if me == "chief":
        server = socket.create_server((os.environ["KERASTUNER_ORACLE_IP"], int(os.environ["KERASTUNER_ORACLE_PORT"])))
        time.sleep(2)
        server.close()
    elif me == "tuner1":
        time.sleep(600)
""")


def test_a_worker_still_waiting_when_the_chief_has_finished_is_ended_and_the_run_is_complete(tmp_path):
    # Once seen in CI: a resumed run whose chief finished the search, compressed and exported (exit 0)
    # was reported as "chief died" because its second worker, slow to start, waited on the closed server.
    (tmp_path / "late.py").write_text(LATE_WORKER)
    result = launch(tmp_path / "late.py", workers=2, grace_s=5, deadline_s=60)
    assert result.status == "completed" and result.ok
    assert result.returncodes["chief"] == 0 and result.returncodes["tuner0"] == 0
    assert result.returncodes["tuner1"] not in (0, None)  # ended by the launcher, not left running
    assert result.seconds < 30


@pytest.mark.slow
def test_workers_join_a_chief_that_is_already_running(tmp_path):
    (tmp_path / "search.py").write_text(SEARCH)
    (tmp_path / "trainings.log").write_text("")
    port = free_port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPOSITORY, KERASTUNER_TUNER_ID="chief",
               KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
    with open(tmp_path / "chief.log", "w") as log:
        chief = subprocess.Popen([sys.executable, str(tmp_path / "search.py"), str(tmp_path),
                                  str(tmp_path / "trainings.log")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        result = launch(tmp_path / "search.py", str(tmp_path), str(tmp_path / "trainings.log"), workers=2,
                        join=f"127.0.0.1:{port}", deadline_s=300, log_dir=tmp_path / "logs",
                        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPOSITORY})
        assert chief.wait(timeout=60) == 0
    finally:
        if chief.poll() is None:
            chief.kill()
    assert result.status == "completed" and set(result.returncodes) == {f"{socket.gethostname()}-tuner{i}"
                                                                         for i in range(2)}
    assert sorted(_finished(tmp_path / "shared")) == [f"trial_{i}" for i in range(6)]
    assert "best " in (tmp_path / "chief.log").read_text()


def test_launch_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigurationError, match=r"Expected workers to be an int >= 1\. Received: workers=0"):
        launch(tmp_path / "s.py", workers=0)
    with pytest.raises(ConfigurationError, match=r"Expected script to be a Python file\. Received: script='.*missing"
                                                 r"\.py', which does not exist\."):
        launch(tmp_path / "missing.py")
    (tmp_path / "s.py").write_text("")
    with pytest.raises(ConfigurationError, match=r"Expected respawns to be an int >= 0\. Received: respawns=-1\."):
        launch(tmp_path / "s.py", respawns=-1)
    with pytest.raises(ConfigurationError, match=r"Expected join to be 'host:port' of a running chief\. Received: "
                                                 r"join='somewhere'\."):
        launch(tmp_path / "s.py", join="somewhere")
