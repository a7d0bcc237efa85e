"""One writer per project: the lock refuses a second process at once, and a dead holder's lock is taken over."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keras_structopt import _lock
from keras_structopt._lock import LOCK_FILE, ProjectLock, check_free, holder
from keras_structopt.errors import ConfigurationError

# The holder loads the lock's module alone (no TensorFlow import: the test stays fast).
HOLD = textwrap.dedent(f"""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("lock", {str(Path(_lock.__file__))!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lock = module.ProjectLock(sys.argv[1], "run").acquire()
    print("held", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def other_writer(tmp_path):
    """A second process holding `tmp_path`'s lock (killed at the end)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_second_writer_is_refused_at_once_with_the_holders_pid(tmp_path, other_writer):
    with pytest.raises(ConfigurationError, match=rf"one writer at a time .*PID {other_writer.pid} on .*started 20"):
        ProjectLock(tmp_path, "search").acquire()
    assert holder(tmp_path)["pid"] == other_writer.pid
    with pytest.raises(ConfigurationError, match=f"PID {other_writer.pid}"):
        check_free(tmp_path, "run")


def test_a_killed_holders_lock_is_taken_over(tmp_path, other_writer):
    other_writer.send_signal(signal.SIGKILL)
    other_writer.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; the lock went with the process
    assert holder(tmp_path) is None
    with ProjectLock(tmp_path, "run"):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) is None and not (tmp_path / LOCK_FILE).exists()  # released: the file is gone


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    with ProjectLock(tmp_path, "run"), ProjectLock(tmp_path, "search"):  # the command and its tuner
        check_free(tmp_path)  # our own lock does not refuse us
    assert holder(tmp_path) is None


def test_the_command_refuses_a_second_run_into_a_locked_out(tmp_path, other_writer, capsys):
    from keras_structopt._cli import main

    status = main(["run", "--out", str(tmp_path), "--trials", "1", "--epochs", "1"])
    error = capsys.readouterr().err
    assert status == 2 and f"PID {other_writer.pid}" in error and "Traceback" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]  # the holder's; nothing of ours


def test_a_tuner_is_refused_on_a_project_another_process_searches(tmp_path):
    import keras_tuner

    import keras_structopt as kso

    project = tmp_path / "p"
    project.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(project)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        hypermodel = kso.DenseHyperModel(input_shape=(4,), outputs=2, num_layers=1, units=4)
        with pytest.raises(ConfigurationError, match=f"one writer at a time .*PID {process.pid}"):
            kso.search.tuner(keras_tuner.RandomSearch, hypermodel, max_trials=1, directory=tmp_path,
                             project_name="p", overwrite=True)  # overwrite would delete the other's project
    finally:
        process.kill()
        process.wait()
    assert project.is_dir()
