"""Benchmark: one search, one process against Keras Tuner's chief and two workers, and what a kill costs.

The same structural search (RandomSearch over the dense digits space, `--trials` trials of
`--epochs` epochs, seed 0) runs:

* in one process (`tuner.search` as usual);
* as a Keras Tuner chief and 2 workers under `kso.search.launch` (loopback);
* distributed again, with a worker SIGKILLed as it starts its third training, then resumed;
* distributed again, with the chief SIGKILLed when a worker starts its third training, then
  resumed.

* under Ray Tune (`kso.search.ray_search`) with 2 concurrent trials, FIFO (every trial to
  the end, as in the other rows), on a local loopback cluster.

For each: wall time, trials per minute, and for the killed runs how long the launcher took to
end the others, how many finished trials were lost or trained again on resume (both must be
0), and the total time to the completed budget. Prints a table and writes JSON.

    python bench/scale.py                 # about 6 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keras_structopt.search._distributed import launch  # noqa: E402

SEARCH = textwrap.dedent("""
    import os, signal, sys
    import keras, keras_tuner
    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    directory, log, trials, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    me = os.environ.get("KERASTUNER_TUNER_ID", "alone")
    if me == "chief":
        with open(os.path.join(directory, "chief.pid"), "w") as f:
            f.write(str(os.getpid()))

    class Log(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            with open(log, "a") as f:
                f.write(me + "\\n")
            started = sum(1 for line in open(log) if line.strip() == me)
            who, n = (os.environ.get("KILL") or "-:0").split(":")
            if who == me and started == int(n):
                os.kill(os.getpid(), signal.SIGKILL)
            who, n = (os.environ.get("KILL_CHIEF") or "-:0").split(":")
            if who == me and started == int(n):
                os.kill(int(open(os.path.join(directory, "chief.pid")).read()), signal.SIGKILL)

    data = load_digits_split("flat", seed=0)
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=trials,
                              seed=1, directory=directory, project_name="project", overwrite=False)
    search.search(*data.train, validation_data=data.validation, epochs=epochs, batch_size=32, verbose=0,
                  callbacks=[Log()])
""")


def _finished(project: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in project.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] == "COMPLETED"}


def _trainings(log: Path) -> int:
    return len([line for line in log.read_text().splitlines() if line.strip()]) if log.exists() else 0


def one_process(workdir: Path, script: Path, trials: int, epochs: int) -> dict:
    import subprocess

    log = workdir / "trainings.log"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(script), str(workdir), str(log), str(trials), str(epochs)], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True)
    seconds = time.perf_counter() - started
    return {"setup": "1 process", "seconds": seconds, "trials_per_minute": 60 * trials / seconds,
            "completed": len(_finished(workdir / "project")), "trainings": _trainings(log)}


def distributed(workdir: Path, script: Path, trials: int, epochs: int, **kill) -> dict:
    log = workdir / "trainings.log"
    args = (str(workdir), str(log), str(trials), str(epochs))
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    started = time.perf_counter()
    first = launch(script, *args, workers=2, env={**env, **kill}, log_dir=workdir / "logs", deadline_s=1800)
    row = {"seconds_first_run": first.seconds, "status_first_run": first.status,
           "ended_after_failure_s": first.ended_after_failure_s}
    if not kill:
        seconds = time.perf_counter() - started
        return {"setup": "KT chief + 2 workers", "seconds": seconds, "trials_per_minute": 60 * trials / seconds,
                "completed": len(_finished(workdir / "project")), "trainings": _trainings(log), **row}
    before = _finished(workdir / "project")
    second = launch(script, *args, workers=2, env=env, log_dir=workdir / "logs", deadline_s=1800)
    seconds = time.perf_counter() - started
    after = _finished(workdir / "project")
    return {"setup": f"KT chief + 2 workers, {'a worker' if 'KILL' in kill else 'the chief'} SIGKILLed, resumed",
            "seconds": seconds, "trials_per_minute": 60 * trials / seconds, "completed": len(after),
            "status_resume": second.status, "finished_before_kill": len(before),
            "lost": sum(1 for k in before if k not in after),
            "rerun": sum(1 for k in before if after.get(k) != before[k]),
            "trainings": _trainings(log), **row}  # both runs: the budget plus the interrupted trials


def ray_tune(workdir: Path, trials: int, epochs: int) -> dict:
    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    data = load_digits_split("flat", seed=0)
    started = time.perf_counter()
    result = kso.search.ray_search(kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0), *data.train,
                                   validation_data=data.validation, epochs=epochs, num_samples=trials,
                                   scheduler="fifo", max_concurrent_trials=2, batch_size=32, storage_path=workdir,
                                   seed=1, num_cpus=2)
    seconds = time.perf_counter() - started
    completed = sum(1 for t in result.oracle.trials.values() if t.status == "COMPLETED")
    return {"setup": "Ray Tune, 2 concurrent trials (FIFO)", "seconds": seconds,
            "trials_per_minute": 60 * trials / seconds, "completed": completed, "node_ip": result.node_ip}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="bench/results/scale.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "search.py"
        script.write_text(SEARCH)
        cases = [("one", {}), ("distributed", {}), ("distributed", {"KILL": "tuner1:3"}),
                 ("distributed", {"KILL_CHIEF": "tuner0:3"}), ("ray", {})]
        for i, (kind, kill) in enumerate(cases):
            workdir = Path(tmp) / f"run{i}"
            workdir.mkdir()
            if kind == "one":
                row = one_process(workdir, script, args.trials, args.epochs)
            elif kind == "ray":
                row = ray_tune(workdir, args.trials, args.epochs)
            else:
                row = distributed(workdir, script, args.trials, args.epochs, **kill)
            rows.append(row)
            print(f"  {row['setup']:<55} {row['seconds']:6.0f} s  {row['trials_per_minute']:5.2f} trials/min  "
                  f"completed {row['completed']}", flush=True)
    base = rows[0]["seconds"]
    print("\n| setup | wall time | trials / min | vs 1 process | completed | lost / re-run | ended after the kill |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        lost = f"{row['lost']} / {row['rerun']}" if "lost" in row else "-"
        ended = f"{row['ended_after_failure_s']:.1f} s" if row.get("ended_after_failure_s") is not None else "-"
        print(f"| {row['setup']} | {row['seconds']:.0f} s | {row['trials_per_minute']:.2f} | "
              f"{base / row['seconds']:.2f}x | {row['completed']} | {lost} | {ended} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "cpus": os.cpu_count(), "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
