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
draws the Pareto front and the learning curves by depth next to the JSON. That is the
`evidence` part; the others (`--parts`) compare cheaper searches:

* `strategies`: `RandomSearch`, `BayesianOptimization` (10 random points first) and
  `EvolutionarySearch` (population 10, tournaments of 3) over the same space, 30 trials
  each; the best validation accuracy after 10, 20 and 30 trials (`strategies_conv`: the
  same on the `ConvHyperModel`'s default space and the 8x8 digit images);
* `stopping`: the same random search with and without median stopping (its defaults):
  best validation accuracy and the epochs trained in all;
* `budget`: the `max_params=5000` search again, its (small, cheap) networks trained until
  validation accuracy stops improving (up to `--budget-epochs`, patience 10);
* `transfer`: a search on digits 0-4, then searches on digits 5-9 (a related task): cold,
  warm-started from the first (its best 3 structures first), and warm-started with weight
  inheritance from its best model; how many trials (and epochs, with early stopping on
  validation accuracy, patience 3) each needs to reach the cold search's best, and the best
  validation accuracy each has after 1, 2, ... trials (a search cut short);
* `inherit`: the same pair with one structure per seed, drawn from the space: trained on
  0-4, then on 5-9 from scratch, inheriting every layer, or every layer but the head.

    python bench/search.py                       # evidence, 5 seeds (about 50 min on 2 cores)
    python bench/search.py --parts strategies,stopping,transfer --epochs 10
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

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402
from keras_structopt.search import inherit_weights  # noqa: E402
from keras_structopt.search._curves import read_curves  # noqa: E402

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
    for values in summary.values():
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


# -- cheaper search: strategies, median stopping, transfer ---------------------------------------


def _best_so_far(search, checkpoints) -> dict:
    scores = [search.oracle.trials[i].score for i in search.oracle.start_order]
    best, found = float("-inf"), {}
    for index, score in enumerate(scores, start=1):
        if score is not None and not search.oracle.trials[search.oracle.start_order[index - 1]].metrics.exists(
                "stopped_at_epoch"):
            best = max(best, score)
        if index in checkpoints:
            found[index] = best
    return found


def run_strategies(seed, args, data, workdir, hypermodel=_hypermodel, part="strategies") -> list[dict]:
    (x, y), validation = data.train, data.validation
    rows = []
    bases = {
        "random": (keras_tuner.RandomSearch, {}),
        "bayesian": (keras_tuner.BayesianOptimization, {"num_initial_points": 10}),
        "evolution": (kso.search.EvolutionarySearch, {"population_size": 10, "sample_size": 3}),
    }
    for name, (base, options) in bases.items():
        start = time.perf_counter()
        total = args.strategy_trials
        search = kso.search.tuner(base, hypermodel(seed), objective="val_accuracy", max_trials=total,
                                  seed=seed + 1, directory=workdir, project_name=f"{part}-{name}-{seed}", **options)
        search.search(x, y, validation_data=validation, epochs=args.epochs, batch_size=32, verbose=0)
        checkpoints = (total // 3, 2 * total // 3, total)
        best = _best_so_far(search, checkpoints)
        row = {"part": part, "strategy": name, "seed": seed}
        row.update({f"best_at_{n}": best.get(n) for n in checkpoints})
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
    return rows


def run_strategies_conv(seed, args, data, workdir) -> list[dict]:
    """`strategies` on the `ConvHyperModel`'s default space and the 8x8 digit images."""
    images = load_digits_split("image", seed=0)
    return run_strategies(seed, args, images, workdir, part="strategies_conv",
                          hypermodel=lambda s: kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, seed=s))


def _epochs_trained(search) -> int:
    return sum(len(run["epochs"]) for trial_id in search.oracle.trials
               for run in read_curves(search, trial_id))


def run_stopping(seed, args, data, workdir) -> list[dict]:
    (x, y), validation = data.train, data.validation
    rows = []
    for name, rule in (("off", None), ("median", kso.search.MedianStopping())):
        start = time.perf_counter()
        search = kso.search.tuner(keras_tuner.RandomSearch, _hypermodel(seed), objective="val_accuracy",
                                  max_trials=args.trials * 2, seed=seed + 1, median_stopping=rule,
                                  directory=workdir, project_name=f"stopping-{name}-{seed}")
        search.search(x, y, validation_data=validation, epochs=args.epochs, batch_size=32, verbose=0)
        stopped = sum(1 for t in search.oracle.trials.values() if t.metrics.exists("stopped_at_epoch"))
        rows.append({"part": "stopping", "stopping": name, "seed": seed,
                     "best_val_accuracy": search.oracle.get_best_trials(1)[0].score,
                     "epochs_trained": _epochs_trained(search), "trials_stopped": stopped,
                     "seconds": time.perf_counter() - start})
    return rows


def _classes(split, low):
    x, y = split
    keep = (y >= low) & (y < low + 5)
    return x[keep], (y[keep] - low).astype("int32")


def run_transfer(seed, args, data, workdir) -> list[dict]:
    source = [_classes(s, 0) for s in (data.train, data.validation)]
    target = [_classes(s, 5) for s in (data.train, data.validation)]
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3)
    fit = dict(epochs=args.epochs, batch_size=32, verbose=0, callbacks=[stop])

    def make(name, **kwargs):
        hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=5, seed=seed)
        return kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
                                max_trials=args.trials, seed=seed + 101 if name != "source" else seed + 1,
                                directory=workdir, project_name=f"{name}-{seed}", **kwargs)

    earlier = make("source")
    earlier.search(*source[0], validation_data=source[1], **fit)
    donor = earlier.get_best_models(1)[0]
    arms = {"cold": make("cold"), "warm": make("warm"), "warm + inherit": make("warm-inherit", donors=[donor])}
    for name in ("warm", "warm + inherit"):
        kso.search.warm_start(arms[name], earlier.project_dir, top_k=3)
    rows = []
    for search in arms.values():
        search.search(*target[0], validation_data=target[1], **fit)
    goal = arms["cold"].oracle.get_best_trials(1)[0].score
    for name, search in arms.items():
        order = search.oracle.start_order
        best_so_far = _best_so_far(search, range(1, len(order) + 1))
        reached, epochs = None, 0
        for index, trial_id in enumerate(order, start=1):
            epochs += sum(len(run["epochs"]) for run in read_curves(search, trial_id))
            if search.oracle.trials[trial_id].score >= goal - 1e-9:
                reached = index
                break
        # Not reached: counted as one trial more than the search had (and all its epochs).
        rows.append({"part": "transfer", "arm": name, "seed": seed, "cold_best": goal,
                     "best_val_accuracy": search.oracle.get_best_trials(1)[0].score,
                     "reached": int(reached is not None), "trials_to_cold_best": reached or len(order) + 1,
                     "epochs_to_cold_best": epochs, "trials": len(order),
                     "epochs_trained": _epochs_trained(search),
                     **{f"best_after_{k}": v for k, v in best_so_far.items()}})
    return rows


def run_inherit(seed, args, data, workdir) -> list[dict]:
    """One structure of the dense space (drawn with `seed`) trained 10 epochs on digits 0-4, then
    trained `--epochs` on digits 5-9 three ways: from scratch, inheriting every layer (the donor's
    head too), inheriting all but the head. Validation accuracy after each epoch."""
    source = [_classes(s, 0) for s in (data.train, data.validation)]
    target = [_classes(s, 5) for s in (data.train, data.validation)]
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=5, seed=seed)
    space = keras_tuner.HyperParameters()
    hypermodel.build(space)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1, seed=seed + 1,
                                                    hyperparameters=space)
    hp = space.copy()
    hp.values.update(oracle.populate_space("draw")["values"])
    keras.utils.set_random_seed(seed)
    donor = hypermodel.build(hp.copy())
    donor.fit(*source[0], epochs=10, batch_size=32, verbose=0)
    structure = hypermodel.architecture(hp.copy()).to_dict()
    rows = []
    for arm, head in (("cold", None), ("inherit with head", True), ("inherit, fresh head", False)):
        keras.utils.set_random_seed(100 + seed)
        model = hypermodel.build(hp.copy())
        if head is not None:
            inherit_weights(model, [donor], head=head)
        history = model.fit(*target[0], validation_data=target[1], epochs=args.epochs, batch_size=32, verbose=0)
        rows.append({"part": "inherit", "arm": arm, "seed": seed, "structure": structure,
                     **{f"val_accuracy_epoch_{i}": float(v) for i, v in enumerate(history.history["val_accuracy"], 1)}})
    return rows


def run_budget(seed, args, data, workdir) -> list[dict]:
    """`max_params=5000` with small networks trained until they stop improving: up to
    `--budget-epochs` epochs, early stopping on validation accuracy (patience 10); the
    best epoch's weights are the trial's (Keras Tuner's checkpoint)."""
    (x, y), validation, test = data.train, data.validation, data.test
    start = time.perf_counter()
    hypermodel = _hypermodel(seed)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
                              max_trials=args.trials, seed=seed + 1, max_params=5000, directory=workdir,
                              project_name=f"budget-long-{seed}")
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=10)
    search.search(x, y, validation_data=validation, epochs=args.budget_epochs, batch_size=32, verbose=0,
                  callbacks=[stop])
    best = search.oracle.get_best_trials(1)[0]
    row = _row("max_params=5000, trained to convergence", seed, hypermodel, best, search.load_model(best), test,
               time.perf_counter() - start, search)
    row.update({"part": "budget", "refused_candidates": len(kso.search.rejected_candidates(search)),
                "epochs_trained": _epochs_trained(search), "best_val_accuracy": best.score})
    return [row]


def _mean_std(values):
    values = np.array([v for v in values if v is not None], dtype=float)
    return (float(values.mean()), float(values.std()), len(values)) if len(values) else (None, None, 0)


def summarise_parts(rows: list[dict]) -> dict:
    summary = {}
    for row in rows:
        part = row["part"]
        arm = row.get("strategy") or row.get("stopping") or row.get("arm")
        summary.setdefault(part, {}).setdefault(arm, []).append(row)
    table = {}
    for part, arms in summary.items():
        table[part] = {}
        for arm, found in arms.items():
            numeric = sorted({k for r in found for k, v in r.items() if isinstance(v, (int, float))
                              and k not in ("seed",)})
            table[part][arm] = {k: dict(zip(("mean", "std", "n"), _mean_std([r.get(k) for r in found])))
                                for k in numeric}
    return table


def print_parts(table: dict) -> None:
    for part, arms in table.items():
        print(f"\n{part}:")
        keys = sorted({k for values in arms.values() for k in values if k != "seconds"})
        print("| arm | " + " | ".join(keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for arm, values in arms.items():
            cells = []
            for k in keys:
                v = values.get(k, {"mean": None})
                cells.append("—" if v["mean"] is None else f"{v['mean']:.4g} ± {v['std']:.2g} (n={v['n']})")
            print(f"| {arm} | " + " | ".join(cells) + " |")


PARTS = {"strategies": run_strategies, "strategies_conv": run_strategies_conv, "stopping": run_stopping,
         "transfer": run_transfer, "inherit": run_inherit, "budget": run_budget}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="evidence",
                        help="comma-separated: evidence, strategies, strategies_conv, stopping, transfer, inherit, "
                        "budget")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (parts only): later seeds are added to an earlier run's rows")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--strategy-trials", type=int, default=30, help="trials of each strategies search")
    parser.add_argument("--budget-epochs", type=int, default=100, help="most epochs of a budget trial (budget part)")
    parser.add_argument("--out", default="bench/results/search.json")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p != "evidence" and p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; accepted: evidence, {', '.join(PARTS)}")
    data = load_digits_split("flat", seed=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    if "rows" in results:  # an evidence-only file
        results = {"evidence": results}
    workdir = Path(tempfile.mkdtemp(prefix="structopt-bench-search-"))
    try:
        if "evidence" in parts:
            rows: list[dict] = []
            for seed in range(args.seeds):
                found = run_seed(seed, args, data, workdir, out.parent if seed == 0 else None)
                for row in found:
                    print(f"  seed {seed}  {row['arm']:<16} test {row['test_accuracy']:.4f}  "
                          f"{row['params']:>7,} params  {row['widths']} {row['connection']}", flush=True)
                rows.extend(found)
                results["evidence"] = {"settings": vars(args), "summary": summarise(rows), "rows": rows}
                out.write_text(json.dumps(results, indent=2))
            print_table(summarise(rows))
        for part in (p for p in parts if p in PARTS):  # each part keeps its own settings and rows
            rows = []
            if args.first_seed > 0 and part in results:  # more seeds for an earlier run of the part
                earlier = results[part]
                if any(earlier["settings"].get(k) != v for k, v in vars(args).items()
                       if k in ("trials", "epochs", "strategy_trials", "budget_epochs") and k in earlier["settings"]):
                    parser.error(f"--first-seed extends the part {part!r} only with its earlier settings "
                                 f"{earlier['settings']}")
                rows = [r for r in earlier["rows"] if r["seed"] < args.first_seed]
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                found = PARTS[part](seed, args, data, workdir)
                for row in found:
                    print("  " + json.dumps(row), flush=True)
                rows.extend(found)
                results[part] = {"settings": vars(args), "summary": summarise_parts(rows)[part], "rows": rows}
                out.write_text(json.dumps(results, indent=2))
            print_parts(summarise_parts(rows))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nWrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
