"""Benchmark: what a structure search costs, counted in trainings of the model it finds.

Two data sets, neither of which saturates:

* **MNIST-1D** (the `mnist1d` package's defaults, generated offline: 4,000 training and 1,000
  test signals of 40 steps; the last 20 % of the training signals validate). The paper's
  table reads: logistic regression 32 %, MLP 68 %, CNN 94 %, GRU 91 %.
* **Digit images** (scikit-learn's 8x8 digits, bundled; 60/20/20 split, seed 0).

Arms, each scored once on the test split that no choice ever saw:

* hand-written models trained once: the paper's MLP (40-100-100-10) and CNN (three
  convolutions of 25 channels, strides 2, 5.2k parameters) written in Keras, and a plain
  4-layer BatchNorm Conv1D; on the digits, a two-stage BatchNorm convnet;
* `one-shot`: `OneShotSearch` over the family's default space (MNIST-1D: `Conv1DHyperModel`,
  `max_params=10_000`; digits: `ConvHyperModel`), supernet and fine-tuning included; the
  supernet trains `--supernet-epochs` epochs (by default half of `--epochs`);
* `random` and `hyperband` (MNIST-1D): Keras Tuner's `RandomSearch` and `Hyperband` over the
  same space and budget, given the one-shot search's wall time (`max_time`);
* `random 20` (digits): a 20-trial `RandomSearch` over the conv space;
* `recurrent` (MNIST-1D as sequences of 40 steps of one value; not in the default parts): a
  hand-written GRU of 64 units trained once, and `OneShotSearch` over the recurrent family's
  default space (`max_params=50_000`);
* `prescreen` (MNIST-1D): the same random search, `--screen-trials` trials, with and without
  the zero-cost screen (`prescreen=4`: four admissible draws per trial scored untrained by
  NASWOT, the best trained), over `--seeds` seeds; and the rank correlation between NASWOT's
  score and the validation accuracy of the unscreened search's trials.

"One training" of a searched model is its structure trained once from scratch under the
protocol every hand-written model uses (Adam 1e-3, batch 32, up to `--epochs` epochs,
early stopping on validation accuracy with patience 10, best weights kept), timed in the
same run. Each search's wall time is divided by it: the search's cost in trainings.

    python bench/search_cost.py                         # everything (about an hour on 2 cores)
    python bench/search_cost.py --parts mnist1d --epochs 40
    python bench/search_cost.py --epochs 3 --trials 3   # a smoke run
    python bench/search_cost.py --parts digits --supernet-epochs 8   # a shorter supernet

Prints the table and writes `bench/results/search_cost.json`.
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

import keras_structopt as kso  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402

PATIENCE = 10


def mnist1d_split():
    """MNIST-1D with the package's default arguments; the last 20 % of train validate."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    x, y = data["x"].astype("float32"), data["y"].astype("int64")
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), (data["x_test"].astype("float32"), data["y_test"].astype("int64"))


def digits_split():
    data = load_digits_split("image", seed=0)
    return data.train, data.validation, data.test


def paper_mlp(outputs: int = 10) -> keras.Model:
    inputs = keras.Input((40,))
    h = keras.layers.Dense(100, activation="relu")(inputs)
    h = keras.layers.Dense(100, activation="relu")(h)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(h), name="paper_mlp")


def paper_cnn(outputs: int = 10) -> keras.Model:
    """The paper's CNN: three convolutions of 25 channels (kernels 5, 3, 3, strides 2), a linear head."""
    inputs = keras.Input((40,))
    h = keras.layers.Reshape((40, 1))(inputs)
    h = keras.layers.Conv1D(25, 5, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv1D(25, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Conv1D(25, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(h), name="paper_cnn")


def plain_conv1d(outputs: int = 10) -> keras.Model:
    """A plain 4-layer BatchNorm Conv1D network, as one writes it by hand."""
    inputs = keras.Input((40,))
    h = keras.layers.Reshape((40, 1))(inputs)
    for filters in (16, 16, 24, 24):
        h = keras.layers.Conv1D(filters, 5, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = keras.layers.MaxPooling1D(2)(h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(h), name="plain_conv1d")


def digits_convnet(outputs: int = 10) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    h = inputs
    for filters in (32, 64):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(h), name="digits_convnet")


def test_accuracy(model, test) -> float:
    x, y = test
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=512), -1) == y))


def train_once(model: keras.Model, train, validation, epochs: int, seed: int = 0) -> tuple[keras.Model, float]:
    """Trains `model` under the protocol; returns it and the seconds it took."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=PATIENCE,
                                         restore_best_weights=True)
    started = time.perf_counter()
    model.fit(*train, validation_data=validation, epochs=epochs, batch_size=32, callbacks=[stop], verbose=0)
    return model, time.perf_counter() - started


def retrain(best: keras.Model, train, validation, epochs: int) -> float:
    """One training of `best`'s structure, from scratch, under the protocol: its seconds."""
    fresh = keras.models.clone_model(best)
    return train_once(fresh, train, validation, epochs)[1]


def hand_row(data: str, model: keras.Model, train, validation, test, epochs: int) -> dict:
    model, seconds = train_once(model, train, validation, epochs)
    return {"data": data, "arm": model.name, "params": int(model.count_params()),
            "test_accuracy": test_accuracy(model, test), "seconds": round(seconds, 1),
            "trainings": 1.0, "trials": 1}


def search_row(data: str, arm: str, tuner, seconds: float, train, validation, test, epochs: int,
               extra: dict | None = None) -> dict:
    best = tuner.get_best_models(1)[0]
    once = retrain(best, train, validation, epochs)
    row = {"data": data, "arm": arm, "params": int(best.count_params()), "test_accuracy": test_accuracy(best, test),
           "seconds": round(seconds, 1), "one_training_seconds": round(once, 1),
           "trainings": round(seconds / once, 1), "trials": len(tuner.oracle.trials),
           "architecture": str(kso.architecture_of(best).blocks)}
    row.update(extra or {})
    return row


def one_shot(data: str, hypermodel, train, validation, test, epochs: int, trials: int, directory: Path,
             supernet_epochs: int | None = None, **kwargs) -> tuple[dict, float]:
    # The supernet trains for `--supernet-epochs` (by default half the protocol's epochs); the best three
    # are fine-tuned for up to all of them.
    if supernet_epochs is None:
        supernet_epochs = max(1, epochs // 2)
    tuner = kso.search.OneShotSearch(hypermodel, objective="val_accuracy", max_trials=trials, seed=0,
                                     supernet_epochs=supernet_epochs, directory=directory,
                                     project_name=f"{data}-one-shot", **kwargs)
    started = time.perf_counter()
    tuner.search(*train, validation_data=validation, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - started
    record = kso.search._one_shot.read_one_shot(tuner.project_dir) or {}
    tuned = [t for t in record.get("trials", []) if t.get("fine_tuned") is not None]
    extra = {"spearman_fine_tuned": record.get("spearman"),
             "fine_tuned": [(t["supernet"], t["fine_tuned"], t["params"], t.get("fine_tune_epochs")) for t in tuned],
             "supernet_epochs": (record.get("supernet") or {}).get("epochs")}
    return search_row(data, "one-shot", tuner, seconds, train, validation, test, epochs, extra), seconds


def trained_search(data: str, arm: str, base, hypermodel, train, validation, test, epochs: int, directory: Path,
                   max_time: float | None, **kwargs) -> dict:
    tuner = kso.search.tuner(base, hypermodel, objective="val_accuracy", seed=0, directory=directory,
                             project_name=f"{data}-{arm}", **kwargs)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=PATIENCE)
    started = time.perf_counter()
    tuner.search(*train, validation_data=validation, epochs=epochs, batch_size=32, callbacks=[stop],
                 max_time=max_time, verbose=0)
    seconds = time.perf_counter() - started
    return search_row(data, arm, tuner, seconds, train, validation, test, epochs)


def run_mnist1d(args, directory: Path) -> list[dict]:
    train, validation, test = mnist1d_split()
    rows = [hand_row("mnist1d", build(), train, validation, test, args.epochs)
            for build in (paper_mlp, paper_cnn, plain_conv1d)]
    print_rows(rows)

    def space():
        return kso.Conv1DHyperModel(input_shape=(40,), outputs=10, seed=0)

    row, seconds = one_shot("mnist1d", space(), train, validation, test, args.epochs, args.trials, directory,
                            args.supernet_epochs, max_params=10_000)
    rows.append(row)
    print_rows(rows[-1:])
    for arm, base, kwargs in (("random", keras_tuner.RandomSearch, {"max_trials": 1000}),
                              ("hyperband", keras_tuner.Hyperband, {"max_epochs": args.epochs, "factor": 3})):
        rows.append(trained_search("mnist1d", arm, base, space(), train, validation, test, args.epochs, directory,
                                   max_time=seconds, max_params=10_000, **kwargs))
        print_rows(rows[-1:])
    return rows


def run_digits(args, directory: Path) -> list[dict]:
    train, validation, test = digits_split()
    rows = [hand_row("digits", digits_convnet(), train, validation, test, args.epochs)]
    print_rows(rows)

    def space():
        return kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, seed=0)

    rows.append(trained_search("digits", "random 20", keras_tuner.RandomSearch, space(), train, validation, test,
                               args.epochs, directory, max_time=None, max_trials=args.random_trials))
    print_rows(rows[-1:])
    row, _ = one_shot("digits", space(), train, validation, test, args.epochs, args.trials, directory,
                      args.supernet_epochs)
    random_row = rows[-1]
    row["seconds_vs_random"] = round(row["seconds"] / random_row["seconds"], 3)
    row["points_vs_random"] = round(100 * (row["test_accuracy"] - random_row["test_accuracy"]), 2)
    rows.append(row)
    print_rows(rows[-1:])
    return rows


def hand_gru(outputs: int = 10) -> keras.Model:
    """One GRU layer of 64 units over the signal as 40 steps of one value, as one writes it by hand."""
    inputs = keras.Input((40, 1))
    h = keras.layers.GRU(64)(inputs)
    return keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax")(h), name="hand_gru")


def run_recurrent(args, directory: Path) -> list[dict]:
    """MNIST-1D as sequences (40 steps, one value each): a hand-written GRU trained once, and the one-shot
    search over the recurrent family's default space (LSTM or GRU, 1-2 layers, either direction)."""
    train, validation, test = ((x[..., None], y) for x, y in mnist1d_split())
    rows = [hand_row("mnist1d", hand_gru(), train, validation, test, args.epochs)]
    print_rows(rows)
    row, _ = one_shot("mnist1d", kso.RecurrentHyperModel(input_shape=(40, 1), outputs=10, seed=0), train,
                      validation, test, args.epochs, args.trials, directory, max_params=50_000)
    rows.append(dict(row, arm="one-shot (recurrent)"))
    print_rows(rows[-1:])
    return rows


def run_prescreen(args, directory: Path) -> list[dict]:
    """Random search on MNIST-1D with and without the zero-cost screen (4 draws per trial, the best trained),
    the same number of trials; and how NASWOT's score of the unscreened trials ranks their validation accuracy."""
    from keras_structopt.search._one_shot import _spearman
    from keras_structopt.search._screen import naswot_score

    train, validation, test = mnist1d_split()
    rows = []
    for seed in range(args.seeds):
        for arm, prescreen in (("random", None), ("random + screen", 4)):
            hypermodel = kso.Conv1DHyperModel(input_shape=(40,), outputs=10, seed=seed)
            tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
                                     max_trials=args.screen_trials, max_params=10_000, prescreen=prescreen, seed=seed,
                                     directory=directory, project_name=f"screen-{seed}-{prescreen}")
            stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=PATIENCE)
            started = time.perf_counter()
            tuner.search(*train, validation_data=validation, epochs=args.epochs, batch_size=32, callbacks=[stop],
                         verbose=0)
            seconds = time.perf_counter() - started
            trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
            best = tuner.get_best_models(1)[0]
            row = {"data": "mnist1d", "arm": f"{arm} s{seed}", "params": int(best.count_params()),
                   "test_accuracy": test_accuracy(best, test), "seconds": round(seconds, 1),
                   "trainings": None, "trials": len(trials),
                   "best_validation": max(t.score for t in trials),
                   "mean_validation": float(np.mean([t.score for t in trials]))}
            if prescreen is None:
                scores = [naswot_score(hypermodel.build(t.hyperparameters.copy()), train[0][:64]) for t in trials]
                row["naswot_spearman"] = _spearman(scores, [t.score for t in trials])
            rows.append(row)
            print_rows(rows[-1:])
    return rows


COLUMNS = (("data", 8), ("arm", 14), ("params", 7), ("test_accuracy", 13), ("seconds", 8), ("trainings", 9),
           ("trials", 6))


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        cells = []
        for name, width in COLUMNS:
            value = row.get(name, "")
            text = f"{value:.3f}" if isinstance(value, float) and name == "test_accuracy" else str(value)
            cells.append(text.ljust(width) if name in ("arm", "data") else text.rjust(width))
        print("  ".join(cells), flush=True)


def table(rows: list[dict]) -> str:
    lines = ["| data | arm | params | test accuracy | seconds | trainings | trials |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        trainings = "" if row["trainings"] is None else f"{row['trainings']:.1f}"
        lines.append(f"| {row['data']} | {row['arm']} | {row['params']:,} | {row['test_accuracy']:.3f} | "
                     f"{row['seconds']:.0f} | {trainings} | {row['trials']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="mnist1d,digits,prescreen",
                        help="mnist1d, digits, prescreen and/or recurrent")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the prescreen comparison")
    parser.add_argument("--screen-trials", type=int, default=12, help="trials of each prescreen arm")
    parser.add_argument("--epochs", type=int, default=60, help="most epochs of one training (and of the supernet)")
    parser.add_argument("--trials", type=int, default=30, help="one-shot trials (sub-networks scored)")
    parser.add_argument("--supernet-epochs", type=int, default=None,
                        help="the one-shot supernet's epochs (default: half of --epochs)")
    parser.add_argument("--random-trials", type=int, default=20, help="trials of the digits random search")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "search_cost.json"))
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - {"mnist1d", "digits", "prescreen", "recurrent"})
    if unknown:
        parser.error(f"--parts: unknown {unknown}; accepted: mnist1d, digits, prescreen, recurrent")
    print("  ".join(name.ljust(width) for name, width in COLUMNS))
    directory = Path(tempfile.mkdtemp(prefix="structopt-search-cost-"))
    rows: list[dict] = []

    def write(finished: bool) -> None:  # after every part: a long run cut short keeps what it measured
        result = {"epochs": args.epochs, "trials": args.trials, "supernet_epochs": args.supernet_epochs,
                  "patience": PATIENCE, "parts": parts,
                  "finished": finished, "rows": rows}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")

    try:
        for part, run in (("mnist1d", run_mnist1d), ("digits", run_digits), ("prescreen", run_prescreen),
                          ("recurrent", run_recurrent)):
            if part in parts:
                rows += run(args, directory)
                write(finished=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print()
    print(table(rows))
    write(finished=True)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
