"""Benchmark: choosing depth and width with evidence, on digits, over several seeds.

Every arm searches the `DenseHyperModel`'s default space (1-3 layers of 16-256 units,
plain / residual / dense connections, dropout, learning rate) with Keras Tuner's
`RandomSearch` and the same number of trials and epochs; the data split is fixed (the
bundled digits, seed 0), the seed changes the candidates drawn and the weights. Per seed:

* `accuracy only`: the best validation accuracy wins (what Keras Tuner does);
* `one-SE rule`: `select_simplest` on that same search (no extra training);
* `cost-aware`: the tuner's objective is `val_accuracy - cost_weight * log2(params / ref)`
  (`cost="params"`, the default weight 0.01: halving the parameters is worth one point);
* `max_params=5000`: the budget checked before building; no candidate over it is trained;
* `hold-out` vs `cross-validated` selection: the hold-out arm is `accuracy only`; the
  cross-validated arm searches with 3 stratified folds of training + validation data and
  refits the winner on all of it. Their spread (std over seeds) of test accuracy is compared.

The chosen model of each arm is scored on the test split (never seen by any choice).
Prints a table (mean ± std over seeds) and writes JSON; seed 0's accuracy-only search
draws the Pareto front and the learning curves by depth next to the JSON.

    python bench/search.py                       # 5 seeds (about 25 min on 2 cores)
    python bench/search.py --seeds 1 --trials 3 --epochs 3   # a smoke run
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
from sklearn.model_selection import StratifiedKFold  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402

ARMS = ("accuracy only", "one-SE rule", "cost-aware", "max_params=5000", "cross-validated")


def _test_accuracy(model, test) -> float:
    x, y = test
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def _hypermodel(seed: int):
    return kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=seed)


def _row(arm, seed, hypermodel, trial, model, test, seconds, search) -> dict:
    spec = hypermodel.architecture(trial.hyperparameters.copy())
    trials = [t for t in search.oracle.trials.values() if t.status == "COMPLETED"]
    largest = max(hypermodel.architecture(t.hyperparameters.copy()).count_params() for t in trials)
    return {
        "arm": arm,
        "seed": seed,
        "trial": trial.trial_id,
        "test_accuracy": _test_accuracy(model, test),
        "params": spec.count_params(),
        "macs": spec.count_macs(),
        "widths": list(spec.widths),
        "connection": spec.connection,
        "trials_completed": len(trials),
        "largest_trained_params": largest,
        "seconds": seconds,
    }


def run_seed(seed: int, args, data, workdir: Path, plots: Path | None) -> list[dict]:
    (x, y), validation, test = data.train, data.validation, data.test
    fit = dict(epochs=args.epochs, batch_size=32, verbose=0)
    rows = []

    def make(name, **kwargs):
        hypermodel = _hypermodel(seed)
        search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
                                  max_trials=args.trials, seed=seed + 1, directory=workdir,
                                  project_name=f"{name}-{seed}", **kwargs)
        return hypermodel, search

    start = time.perf_counter()
    hypermodel, plain = make("accuracy")
    plain.search(x, y, validation_data=validation, **fit)
    seconds = time.perf_counter() - start
    best = plain.oracle.get_best_trials(1)[0]
    rows.append(_row("accuracy only", seed, hypermodel, best, plain.load_model(best), test, seconds, plain))
    chosen = kso.search.select_simplest(plain).trial
    rows.append(_row("one-SE rule", seed, hypermodel, chosen, plain.load_model(chosen), test, seconds, plain))
    if plots is not None:
        kso.search.plot_pareto(plain, plots / "search_pareto.png")
        kso.search.plot_learning_curves(plain, plots / "search_curves.png", group_by="depth")

    start = time.perf_counter()
    hypermodel, costly = make("cost", cost="params")
    costly.search(x, y, validation_data=validation, **fit)
    best = costly.oracle.get_best_trials(1)[0]
    rows.append(_row("cost-aware", seed, hypermodel, best, costly.load_model(best), test,
                     time.perf_counter() - start, costly))

    start = time.perf_counter()
    hypermodel, budget = make("budget", max_params=5000)
    budget.search(x, y, validation_data=validation, **fit)
    best = budget.oracle.get_best_trials(1)[0]
    row = _row("max_params=5000", seed, hypermodel, best, budget.load_model(best), test,
               time.perf_counter() - start, budget)
    row["refused_candidates"] = len(kso.search.rejected_candidates(budget))
    rows.append(row)

    start = time.perf_counter()
    hypermodel, folded = make("cv", folds=StratifiedKFold(3, shuffle=True, random_state=seed))
    x_all = np.concatenate([x, validation[0]])
    y_all = np.concatenate([y, validation[1]])
    folded.search(x_all, y_all, **fit)
    best = folded.oracle.get_best_trials(1)[0]
    model = folded.get_best_models(1)[0]  # refit on training + validation data
    rows.append(_row("cross-validated", seed, hypermodel, best, model, test, time.perf_counter() - start, folded))
    return rows


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for arm in ARMS:
        found = [r for r in rows if r["arm"] == arm]
        if not found:
            continue
        accuracy = np.array([r["test_accuracy"] for r in found])
        params = np.array([r["params"] for r in found])
        summary[arm] = {
            "seeds": len(found),
            "test_accuracy_mean": float(accuracy.mean()),
            "test_accuracy_std": float(accuracy.std()),
            "params_mean": float(params.mean()),
            "params_std": float(params.std()),
            "largest_trained_params": int(max(r["largest_trained_params"] for r in found)),
            "seconds_mean": float(np.mean([r["seconds"] for r in found])),
        }
    base = summary.get("accuracy only")
    for arm, values in summary.items():
        if base:
            values["accuracy_vs_accuracy_only_pts"] = 100 * (values["test_accuracy_mean"] - base["test_accuracy_mean"])
            values["params_vs_accuracy_only"] = values["params_mean"] / base["params_mean"]
    return summary


def print_table(summary: dict) -> None:
    print("\n| arm | seeds | test accuracy (mean ± std) | vs accuracy only | params (mean ± std) | params ratio "
          "| largest trained | s per search |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for arm, v in summary.items():
        print(f"| {arm} | {v['seeds']} | {v['test_accuracy_mean']:.4f} ± {v['test_accuracy_std']:.4f} "
              f"| {v.get('accuracy_vs_accuracy_only_pts', 0):+.2f} pts | {v['params_mean']:,.0f} ± "
              f"{v['params_std']:,.0f} | {v.get('params_vs_accuracy_only', 1):.2f} "
              f"| {v['largest_trained_params']:,} | {v['seconds_mean']:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="bench/results/search.json")
    args = parser.parse_args(argv)
    data = load_digits_split("flat", seed=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="structopt-bench-search-"))
    rows: list[dict] = []
    try:
        for seed in range(args.seeds):
            found = run_seed(seed, args, data, workdir, out.parent if seed == 0 else None)
            for row in found:
                print(f"  seed {seed}  {row['arm']:<16} test {row['test_accuracy']:.4f}  "
                      f"{row['params']:>7,} params  {row['widths']} {row['connection']}", flush=True)
            rows.extend(found)
            out.write_text(json.dumps({"settings": vars(args), "summary": summarise(rows), "rows": rows},
                                      indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarise(rows)
    print_table(summary)
    print(f"\nWrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
