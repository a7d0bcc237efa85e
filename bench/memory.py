"""Benchmark: resident memory of one process over a long search.

A `RandomSearch` of keras-structopt's tuner over the `DenseHyperModel`'s default space on
digits (`--trials` trials of `--epochs` epochs each, all in this process); after every
trial the process's resident set size (RSS, from /proc/self/statm) is recorded. Prints
the RSS per trial and the growth per trial after the first five (a least-squares slope,
so one noisy reading does not decide it), and writes JSON.

Keras Tuner clears the Keras session before each build and keras-structopt's tuners collect
garbage after each trial, yet TensorFlow 2.21 / Keras 3 keep each trained model's step
graphs alive: in one process the memory grows with every trial. With `--isolate` each trial
trains in its own process (`isolate_trials=True`) and the search process stays flat.

    python bench/memory.py                 # 50 trials x 1 epoch (a few minutes on 2 cores)
    python bench/memory.py --trials 12     # a quick look
    python bench/memory.py --isolate       # one process per trial (isolate_trials=True)
    python bench/memory.py --baseline keras-tuner --trials 20   # Keras Tuner's own RandomSearch
    python bench/memory.py --baseline keras --trials 20         # a bare build/fit/clear_session loop

The two baselines show where the growth comes from: Keras Tuner's RandomSearch over the same
HyperModel without keras-structopt's tuner class, and a loop of `build`, `fit`,
`keras.backend.clear_session()` and `gc.collect()` with no tuner at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux)."""
    with open("/proc/self/statm") as file:
        pages = int(file.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Recording(keras_tuner.RandomSearch):
    """RandomSearch that records the RSS after every trial."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rss: list[float] = []

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.rss.append(rss_mib())


def growth_per_trial(rss: list[float], skip: int = 5) -> float:
    """The least-squares slope of RSS over trial number, after the first `skip` trials (MiB per trial).

    Example:
        >>> growth_per_trial([100, 200, 300, 300, 300, 301, 302, 303, 304], skip=5)
        1.0
    """
    tail = np.asarray(rss[skip:], dtype=float)
    if len(tail) < 2:
        return float("nan")
    return float(np.polyfit(np.arange(len(tail)), tail, 1)[0])


def bare_keras_loop(data, models: int, epochs: int) -> list[float]:
    """RSS after each of `models` build/fit/clear_session/collect rounds, no tuner involved."""
    import gc

    import keras

    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
    rss = []
    for _ in range(models):
        keras.backend.clear_session()
        model = hypermodel.build(keras_tuner.HyperParameters())  # the space's default architecture
        model.fit(*data.train, validation_data=data.validation, epochs=epochs, batch_size=32, verbose=0)
        del model
        gc.collect()
        rss.append(rss_mib())
    return rss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--isolate", action="store_true", help="one process per trial (isolate_trials=True)")
    parser.add_argument("--baseline", choices=("keras-tuner", "keras"), default=None,
                        help="Keras Tuner's RandomSearch without keras-structopt's tuner, or a bare Keras loop")
    parser.add_argument("--out", default=None,
                        help="JSON path (default: bench/results/memory[-isolated|-keras-tuner|-keras].json)")
    args = parser.parse_args(argv)
    if args.baseline and args.isolate:
        parser.error("--isolate is keras-structopt's tuner option: not with --baseline")
    data = load_digits_split("flat", seed=0)
    workdir = Path(tempfile.mkdtemp(prefix="structopt-bench-memory-"))
    started = time.perf_counter()
    completed = args.trials
    try:
        hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
        before = rss_mib()
        if args.baseline == "keras":
            rss = bare_keras_loop(data, args.trials, args.epochs)
        else:
            if args.baseline == "keras-tuner":
                tuner = Recording(hypermodel, objective="val_accuracy", max_trials=args.trials, seed=1,
                                  directory=workdir, project_name="memory")
            else:
                tuner = kso.search.tuner(Recording, hypermodel, objective="val_accuracy", max_trials=args.trials,
                                         seed=1, directory=workdir, project_name="memory",
                                         isolate_trials=args.isolate)
            before = rss_mib()
            tuner.search(*data.train, validation_data=data.validation, epochs=args.epochs, batch_size=32,
                         verbose=0)
            rss = tuner.rss
            completed = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    slope = growth_per_trial(rss)
    print("| trial | RSS (MiB) |\n|---:|---:|")
    for index, value in enumerate(rss, start=1):
        print(f"| {index} | {value:.1f} |")
    print(f"\nRSS before the search {before:.1f} MiB, after trial 5 {rss[min(4, len(rss) - 1)]:.1f} MiB, after "
          f"trial {len(rss)} {rss[-1]:.1f} MiB; growth per trial after the first five: {slope:.2f} MiB "
          f"({len(rss)} trials, {time.perf_counter() - started:.0f} s)")
    suffix = f"-{args.baseline}" if args.baseline else ("-isolated" if args.isolate else "")
    out = Path(args.out or f"bench/results/memory{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "rss_before_mib": before, "rss_mib": rss,
                               "growth_mib_per_trial_after_5": slope,
                               "completed": completed},
                              indent=2) + "\n")
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
