"""Keras Tuner's distributed mode with a launcher that owns every process.

Keras Tuner distributes a search over processes that run the same script: a chief whose
oracle serves the others over gRPC, and workers that ask it for trials and train them,
sharing the project directory (environment variables `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`). On its own it does not end well: the
chief's server loop never returns when the workers die (or when one dies and the others
finish), and workers wait up to an hour for a dead chief.

`launch(script, workers=2)` starts the chief and the workers on this host (loopback) and
watches them:

* every worker finished -> the chief leaves its server and runs the script's post-search
  code (picking, compressing, exporting), however long it takes; a chief still serving
  `grace_s` after the last worker left is stuck in Keras Tuner's server loop and is ended
  (`"chief hung"`: its oracle is saved at each trial's end, so a resume finishes the job);
* the chief finished (exit status 0) -> the run is complete; a worker still running `grace_s`
  later is ended (one that first asked for a trial after the chief's server closed would
  wait for it for an hour);
* a worker died (a signal, or an error) -> it is started again under the same id, up to
  `respawns` times (Keras Tuner's chief hands a returning worker its unfinished trial
  back); past that, the chief and the other workers are ended and the result says so;
* the chief died -> the workers are ended;
* `deadline_s` passed -> everything is ended.

Each process runs in its own process group and is ended with SIGTERM, then SIGKILL. The
workers start only once the chief listens, so a chief that starts a project afresh has done
so before any worker reads it; keras-structopt's tuners never let a worker overwrite the
shared project (`overwrite` is ignored on a worker). A run that ended early resumes with
the same project directory and `overwrite=False` in the script: no finished trial is lost or
run again, and the interrupted trials are trained from their first epoch. The best model is
picked (and compressed) once, by whoever calls the script's post-search code: the chief
returns from `search()` only when the search is over. (Keras Tuner 1.4 prints the first
value of every condition it sends over gRPC, a leftover debug line; keras-structopt's
tuners silence it in distributed mode.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from keras_structopt import _checks
from keras_structopt._env import is_worker
from keras_structopt._types import PathLike

__all__ = ["LaunchResult", "free_port", "is_worker", "launch"]


@dataclasses.dataclass(frozen=True)
class LaunchResult:
    """How a distributed run ended.

    Attributes:
        status: `"completed"`, `"worker died"`, `"chief died"`, `"chief hung"` or `"deadline"`.
        returncodes: Each process's exit code by tuner id (`"chief"`, `"tuner0"`, ...);
            negative: ended by that signal.
        respawned: How many times each worker was started again.
        seconds: Wall time of the run.
        ended_after_failure_s: Seconds from the failure that ended the run to the last
            process gone (None when it completed).

    Example:
        >>> result = LaunchResult("completed", {"chief": 0, "tuner0": 0}, {"tuner0": 0}, 12.5)
        >>> result.ok
        True
    """

    status: str
    returncodes: dict[str, int | None]
    respawned: dict[str, int]
    seconds: float
    ended_after_failure_s: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the search completed."""
        return self.status == "completed"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now.

    Example:
        >>> 1024 <= free_port() <= 65535
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _end(process: subprocess.Popen, term_s: float = 10.0) -> None:
    """SIGTERM to the process group, SIGKILL after `term_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=term_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def launch(script: PathLike, *args: str, workers: int = 2, host: str = "127.0.0.1", port: int | None = None,
           respawns: int = 0, deadline_s: float | None = None, grace_s: float = 30.0, start_timeout_s: float = 300.0,
           env: dict | None = None, log_dir: PathLike | None = None, chief_output: str = "log", join: str | None = None,
           python: str | None = None) -> LaunchResult:
    """Runs `script` as a Keras Tuner chief and `workers` workers on this host; returns a `LaunchResult`.

    Args:
        script: A Python file that builds a tuner (any keras-structopt or Keras Tuner tuner)
            and calls `search`; every process runs it with `args`.
        workers: Worker processes (at least 1).
        host: The chief's address; loopback by default.
        port: The chief's port; a free one by default.
        respawns: How many times a dead worker is started again under its id.
        deadline_s: Wall-time limit; everything is ended when it passes.
        grace_s: How long the chief may keep serving after the last worker finished.
        start_timeout_s: How long to wait for the chief to listen.
        env: Extra environment variables for every process.
        log_dir: Where each process's output goes (`<tuner id>.log`); default: discarded.
        chief_output: `"log"` (as the workers') or `"inherit"`: the chief writes to this
            process's stdout and stderr (the `keras-structopt run --workers` command).
        join: `"host:port"` of a chief already running (on this host or another): only
            workers are started, named `<hostname>-tuner<i>` (stable, so a respawned or
            resumed worker gets its trial back). The run is over when they finish; a chief
            that stops listening while they run ends them (`"chief died"`).
        python: The interpreter (default: this one).

    Typically: `result = launch("search.py", "--data", "digits", workers=2)`, then
    `result.ok`; the script is the one that would run the search in one process, with
    `overwrite=False` so that a run that ended early resumes.

    Example:
        >>> script = getfixture("tmp_path") / "search.py"
        >>> _ = script.write_text("raise SystemExit(3)")  # fails before its chief serves
        >>> result = launch(script, workers=1)
        >>> result.status, result.returncodes
        ('chief died', {'chief': 3})
    """
    workers = _checks.positive_int("workers", workers)
    if respawns < 0 or not _checks.is_int(respawns):
        raise _checks.error(f"Expected respawns to be an int >= 0. Received: respawns={respawns!r}.")
    if deadline_s is not None:
        _checks.positive_number("deadline_s", deadline_s)
    script = Path(script)
    if not script.is_file():
        raise _checks.error(f"Expected script to be a Python file. Received: script={str(script)!r}, which does not "
                            "exist.")
    if join is not None:
        joined_host, _, joined_port = str(join).rpartition(":")
        if not joined_host or not joined_port.isdigit():
            raise _checks.error(f"Expected join to be 'host:port' of a running chief. Received: join={join!r}.")
        host, port = joined_host, int(joined_port)
    port = port or free_port(host)
    logs = Path(log_dir) if log_dir is not None else None
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
    base_env = dict(os.environ, **(env or {}), KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))

    _checks.one_of("chief_output", chief_output, ("log", "inherit"))
    opened: list = []  # the log files handed to the processes

    def start(tuner_id: str) -> subprocess.Popen:
        out: Any = subprocess.DEVNULL
        if tuner_id == "chief" and chief_output == "inherit":
            out = None
        elif logs is not None:
            out = open(logs / f"{tuner_id}.log", "a")  # noqa: SIM115 - the child writes it; closed in finish()
            opened.append(out)
        return subprocess.Popen([python or sys.executable, str(script), *args], env=dict(
            base_env, KERASTUNER_TUNER_ID=tuner_id), stdout=out, stderr=None if out is None else subprocess.STDOUT,
            start_new_session=True)

    processes: dict[str, subprocess.Popen] = {}
    try:
        return _supervise(start, processes, opened, join, host, port, workers, respawns, deadline_s, grace_s,
                          start_timeout_s)
    except BaseException:  # Ctrl-C, SIGTERM (as the command raises it), or an error here: no process is left
        for process in processes.values():
            _end(process)
        for file in opened:
            file.close()
        raise


def _supervise(start, processes, opened, join, host, port, workers, respawns, deadline_s, grace_s,
               start_timeout_s) -> LaunchResult:
    """Starts the chief and the workers and watches them until the search ends (`launch`'s loop)."""
    started = time.monotonic()
    chief = None if join is not None else start("chief")
    if chief is not None:
        processes["chief"] = chief
    prefix = f"{socket.gethostname()}-" if join is not None else ""
    respawned = {f"{prefix}tuner{i}": 0 for i in range(workers)}

    def finish(status: str, failed_at: float | None = None) -> LaunchResult:
        for process in processes.values():
            _end(process)
        for file in opened:
            file.close()
        return LaunchResult(status, {k: p.returncode for k, p in processes.items()}, dict(respawned),
                            time.monotonic() - started,
                            None if failed_at is None else time.monotonic() - failed_at)

    while not _listening(host, port):  # a joined chief may still be starting too
        if chief is not None and chief.poll() is not None:
            return finish("chief died", time.monotonic())
        if time.monotonic() - started > start_timeout_s:
            return finish("deadline", time.monotonic())
        time.sleep(0.2)
    for tuner_id in respawned:
        processes[tuner_id] = start(tuner_id)

    all_done_at = None
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        if deadline_s is not None and now - started > deadline_s:
            return finish("deadline", now)
        if chief is None:  # joined: over when the workers are; a chief gone while they run ends them
            if all(processes[t].poll() == 0 for t in respawned):
                return finish("completed")
            if not _listening(host, port) and any(processes[t].poll() is None for t in respawned):
                # The chief left: when the search is over its workers leave too, at once.
                while time.monotonic() - now < grace_s and any(processes[t].poll() is None for t in respawned):
                    time.sleep(0.5)
                if all(processes[t].poll() == 0 for t in respawned):
                    return finish("completed")
                return finish("chief died", now)
        elif chief.poll() is not None:
            if chief.returncode == 0:  # the search is over and the script's post-search code done
                while time.monotonic() - now < grace_s and any(processes[t].poll() is None for t in respawned):
                    time.sleep(0.5)
                # A worker still there has nothing left to do: one that first asked for a trial after the
                # chief's server had closed (a worker slow to start, the trials all taken) waits for it
                # up to an hour. It is ended, and the run is complete.
                return finish("completed")
            return finish("chief died", now)
        for tuner_id in respawned:
            code = processes[tuner_id].poll()
            if code is None or code == 0:
                continue
            if respawned[tuner_id] < respawns:
                respawned[tuner_id] += 1
                processes[tuner_id] = start(tuner_id)
            else:
                return finish("worker died", now)
        if chief is not None and all(processes[t].poll() == 0 for t in respawned) and _listening(host, port):
            # The workers are done but the chief still serves: Keras Tuner's server loop does not
            # always return. Past `grace_s` it is ended; the search is saved, its post-search code
            # did not run: a resume finishes it.
            all_done_at = all_done_at or now
            if now - all_done_at > grace_s:
                return finish("chief hung", now)
        else:  # still searching, or the chief's post-search work (compression, export): no limit but the deadline
            all_done_at = None
