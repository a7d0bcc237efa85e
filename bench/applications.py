"""Benchmark: the tabular and recommender families against hand-written Keras baselines, and
`kso.suggest`'s designed spaces against the fixed default spaces at the same budget.

Part `families` (one split, seed 0):

* tabular on scikit-learn's breast cancer (binary; the mean radius also as a string band) and
  diabetes (regression; sex as strings, age as a string band): a `TabularHyperModel` search
  (RandomSearch) against a hand-written Keras model on the same split — Normalization of the
  numbers, one-hot `StringLookup` of the categories, Dense(64)-Dense(32), a head;
* recommender on a MovieLens-shaped set (MovieLens's own schema, written and read back through
  tensorflow-datasets' MovieLens builder; ratings from a low-rank taste model): a
  `RecommenderHyperModel` search against a hand-written matrix factorisation (user and movie
  embeddings of 16, a dot product, user and movie biases).

Part `suggest` (`--seeds` seeds): on digits (flat and image), breast cancer, diabetes and the
rating set, RandomSearch over `kso.suggest`'s HyperModel ranked by its suggested objective, and
over the family's default HyperModel ranked by validation accuracy (validation loss for
regression), the same trials and epochs; the chosen trial's validation accuracy (or loss) and the
winner's test score.

Every search: RandomSearch, 6 trials (`--trials`), up to 10 epochs (`--epochs`) with early
stopping on the validation loss (patience 5), batch 64. Every row: test metric (accuracy, or RMSE
for regression: lower is better), parameters, MACs, search seconds. Prints tables, writes JSON.

    python bench/applications.py                      # both parts (about 45 minutes on 2 cores)
    python bench/applications.py --parts families --trials 4 --epochs 10
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from keras_structopt.data import TabularSchema, load_digits_split, load_movielens  # noqa: E402

USER = ["user_id", "user_gender", "bucketized_user_age", "user_occupation_text"]
ITEM = ["movie_id"]


# -- data ---------------------------------------------------------------------------------------------


def _split_table(columns, y, seed=0):
    """A fixed 60/20/20 split of a table (dict of columns) and its labels."""
    order = np.random.default_rng(seed).permutation(len(y))
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    take = lambda rows: ({k: np.asarray(v)[rows] for k, v in columns.items()}, np.asarray(y)[rows])  # noqa: E731
    return take(order[:a]), take(order[a:b]), take(order[b:])


def cancer():
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["radius_band"] = pd.qcut(frame["mean_radius"], 3, labels=["small", "medium", "large"]).astype(str)
    return _split_table({c: frame[c].to_numpy() for c in frame}, data.target.to_numpy("int64"))


def diabetes():
    import pandas as pd
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["sex"] = np.where(frame["sex"] > 0, "male", "female")
    frame["age"] = pd.cut(frame["age"], 4, labels=["young", "adult", "middle", "senior"]).astype(str)
    target = data.target.to_numpy("float32")
    return _split_table({c: frame[c].to_numpy() for c in frame}, (target - target.mean()) / target.std())


def movielens_shaped(directory: Path, users=300, movies=400, count=12_000):
    """A rating set with MovieLens's schema, written and read back through tfds' MovieLens builder."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    features = tfds.builder("movielens/100k-ratings", data_dir=str(directory)).info.features
    rng = np.random.default_rng(0)
    taste, style = rng.normal(size=(users, 4)), rng.normal(size=(movies, 4))
    bias = rng.normal(scale=0.5, size=movies)
    user, movie = rng.integers(0, users, count), rng.integers(0, movies, count)
    stars = np.clip(np.round(3.2 + 0.5 * (taste[user] * style[movie]).sum(1) + bias[movie]
                             + rng.normal(scale=0.3, size=count)), 1, 5)
    jobs = np.array(["student", "engineer", "artist", "doctor", "writer", "other"])
    ages = np.array([18.0, 25.0, 35.0, 45.0, 50.0, 56.0])
    user_age, user_job = ages[rng.integers(0, 6, users)], rng.integers(0, 6, users)
    columns = {
        "bucketized_user_age": user_age[user].astype("float32"),
        "movie_genres": tf.ragged.constant([[int(g)] for g in rng.integers(0, 19, count)], dtype=tf.int64),
        "movie_id": np.array([str(m + 1) for m in movie]),
        "movie_title": np.array([f"Movie {m + 1}" for m in movie]),
        "raw_user_age": user_age[user].astype("float32"),
        "timestamp": (880_000_000 + np.arange(count) * 60).astype("int64"),
        "user_gender": user % 2 == 0,
        "user_id": np.array([str(u + 1) for u in user]),
        "user_occupation_label": user_job[user].astype("int64"),
        "user_occupation_text": jobs[user_job[user]],
        "user_rating": stars.astype("float32"),
        "user_zip_code": np.array([f"{55_000 + u}" for u in user]),
    }
    with contextlib.redirect_stdout(io.StringIO()):
        tfds.dataset_builders.store_as_tfds_dataset(
            name="movielens", version="0.1.1", config="100k-ratings", data_dir=str(directory), features=features,
            split_datasets={"train": tf.data.Dataset.from_tensor_slices(columns)})
    table, ratings = load_movielens(data_dir=directory)
    return _split_table(table, ratings)


# -- models and scores --------------------------------------------------------------------------------


def _macs(model) -> int:
    from keras_structopt.compress._measure import count_model_macs

    return int(count_model_macs(kso.to_tf_keras(model)))


def _score(model, x, y, task) -> float:
    predictions = np.asarray(model.predict(x, verbose=0)).reshape(len(y), -1)
    if task == "binary":
        return float(np.mean((predictions[:, 0] > 0.5) == y))
    if task == "multiclass":
        return float(np.mean(predictions.argmax(1) == y))
    return float(np.sqrt(np.mean((predictions[:, 0] - y) ** 2)))  # RMSE


def hand_written_tabular(schema: TabularSchema, task: str):
    """What a Keras user writes by hand for a table: Normalization, one-hot lookups, two Dense layers."""
    inputs, parts = {}, []
    numeric = [f for f in schema.features if f["kind"] == "numeric"]
    for feature in schema.features:
        dtype = {"numeric": "float32", "string": "string", "integer": "int64"}[feature["kind"]]
        inputs[feature["name"]] = keras.Input((1,), dtype=dtype, name=feature["name"])
    if numeric:
        x = keras.layers.Concatenate()([inputs[f["name"]] for f in numeric]) if len(numeric) > 1 else inputs[
            numeric[0]["name"]]
        parts.append(keras.layers.Normalization(mean=[f["mean"] for f in numeric],
                                                variance=[f["variance"] for f in numeric])(x))
    for feature in (f for f in schema.features if f["kind"] != "numeric"):
        lookup = keras.layers.StringLookup if feature["kind"] == "string" else keras.layers.IntegerLookup
        parts.append(lookup(vocabulary=list(feature["vocabulary"]), output_mode="one_hot")(inputs[feature["name"]]))
    x = keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Dense(64, activation="relu")(x))
    output = keras.layers.Dense(1, activation="sigmoid" if task == "binary" else None)(x)
    model = keras.Model(inputs, output)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy" if task == "binary" else "mse")
    return model


def matrix_factorisation(schema: TabularSchema, units: int = 16):
    """A hand-written matrix factorisation: user and movie embeddings, a dot product, two biases."""
    user, movie = keras.Input((1,), dtype="string", name="user_id"), keras.Input((1,), dtype="string", name="movie_id")
    users = keras.layers.StringLookup(vocabulary=list(schema.feature("user_id")["vocabulary"]))(user)
    movies = keras.layers.StringLookup(vocabulary=list(schema.feature("movie_id")["vocabulary"]))(movie)
    n_users, n_movies = len(schema.feature("user_id")["vocabulary"]) + 1, len(schema.feature("movie_id")[
        "vocabulary"]) + 1
    u = keras.layers.Flatten()(keras.layers.Embedding(n_users, units)(users))
    m = keras.layers.Flatten()(keras.layers.Embedding(n_movies, units)(movies))
    bu = keras.layers.Flatten()(keras.layers.Embedding(n_users, 1)(users))
    bm = keras.layers.Flatten()(keras.layers.Embedding(n_movies, 1)(movies))
    score = keras.layers.Add()([keras.layers.Dot(axes=1)([u, m]), bu, bm])
    output = keras.layers.Rescaling(1.0, offset=3.5)(score)
    model = keras.Model({"user_id": user, "movie_id": movie}, output)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def _fit_baseline(model, train, validation, epochs):
    keras.utils.set_random_seed(0)
    model.fit(train[0], train[1], validation_data=validation, epochs=epochs, batch_size=64, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True)])
    return model


def _chosen_value(trial, metric: str) -> float:
    """`metric` of a trial at the epoch its objective chose (comparable whatever the objective)."""
    history = trial.metrics.get_history(metric)
    at_best = [o.value for o in history if o.step == trial.best_step]
    return float(np.mean(at_best[0] if at_best else history[-1].value))


def _search(hypermodel, train, validation, objective, trials, epochs, seed, directory, name):
    tuner = keras_tuner.RandomSearch(hypermodel, objective=objective, max_trials=trials, seed=seed + 1,
                                     directory=directory, project_name=name)
    stop = keras.callbacks.EarlyStopping("val_loss", patience=5, restore_best_weights=True)
    started = time.perf_counter()
    tuner.search(*train, validation_data=validation, epochs=epochs, batch_size=64, verbose=0, callbacks=[stop])
    best = tuner.oracle.get_best_trials(1)[0]
    return tuner, tuner.load_model(best), best, time.perf_counter() - started


# -- parts ---------------------------------------------------------------------------------------------


def run_families(args, workdir: Path, rating_data) -> list[dict]:
    rows = []
    cases = [("breast cancer (tabular)", cancer(), "binary"), ("diabetes (tabular)", diabetes(), "regression"),
             ("MovieLens-shaped (recommender)", rating_data, "regression")]
    for name, (train, validation, test), task in cases:
        schema = TabularSchema.from_data(train[0])
        if "recommender" in name:
            hypermodel = kso.RecommenderHyperModel(schema, USER, ITEM, task="regression", seed=0)
            baseline = matrix_factorisation(schema)
            base_inputs = lambda t: {c: hypermodel.schema.inputs(t)[c] for c in ("user_id", "movie_id")}  # noqa
        else:
            hypermodel = kso.TabularHyperModel(schema, task=task, outputs=None if task == "binary" else 1, seed=0)
            baseline = hand_written_tabular(schema, task)
            base_inputs = hypermodel.schema.inputs
        objective = "val_accuracy" if task == "binary" else "val_loss"
        tuner, model, best, seconds = _search(hypermodel, train, validation, objective, args.trials, args.epochs, 0,
                                              workdir, name.split()[0])
        started = time.perf_counter()
        baseline = _fit_baseline(baseline, (base_inputs(train[0]), train[1]),
                                 (base_inputs(validation[0]), validation[1]), args.epochs)
        base_seconds = time.perf_counter() - started
        metric = "accuracy" if task == "binary" else "RMSE"
        for arm, m, inputs, secs in (("keras-structopt search", model, hypermodel.inputs, seconds),
                                     ("hand-written Keras", baseline, base_inputs, base_seconds)):
            rows.append({"part": "families", "data": name, "arm": arm, "metric": metric,
                         "test": _score(m, inputs(test[0]), test[1], task), "params": int(m.count_params()),
                         "macs": _macs(m), "seconds": secs,
                         "structure": kso.architecture_of(m).to_dict() if kso.architecture_of(m) else None})
            print(f"  {name:<32} {arm:<24} test {metric} {rows[-1]['test']:.4f}  {rows[-1]['params']:>8,} params "
                  f"{rows[-1]['macs']:>8,} MACs  {secs:6.0f} s", flush=True)
    return rows


def _default(family, x, train_y, task, schema=None):
    if family == "tabular":
        return kso.TabularHyperModel(schema, task=task, outputs=None if task == "binary" else 1, seed=0)
    if family == "recommender":
        return kso.RecommenderHyperModel(schema, USER, ITEM, task=task, seed=0)
    shape = tuple(np.asarray(x).shape[1:])
    outputs = None if task == "binary" else int(np.max(train_y)) + 1
    cls = {"dense": kso.DenseHyperModel, "conv": kso.ConvHyperModel}[family]
    return cls(input_shape=shape, outputs=outputs, task=task, seed=0)


def run_suggest(args, workdir: Path, rating_data) -> list[dict]:
    from sklearn.datasets import load_breast_cancer

    digits_flat, digits_image = load_digits_split("flat", seed=0), load_digits_split("image", seed=0)
    raw = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(raw.target))
    a, b = int(0.6 * len(order)), int(0.8 * len(order))
    cancer_arrays = tuple((raw.data[rows].astype("float32"), raw.target[rows]) for rows in
                          (order[:a], order[a:b], order[b:]))
    cases = [
        ("digits flat", (digits_flat.train, digits_flat.validation, digits_flat.test)),
        ("digits image", (digits_image.train, digits_image.validation, digits_image.test)),
        ("breast cancer", cancer_arrays),
        ("diabetes (table)", diabetes()),
        ("MovieLens-shaped", rating_data),
    ]
    rows = []
    for name, (train, validation, test) in cases:
        suggestion = kso.suggest(*train, seed=0)
        task = suggestion.arguments.get("task")
        schema = TabularSchema.from_data(train[0]) if isinstance(train[0], dict) else None
        for seed in range(args.seeds):
            for arm in ("suggested", "default"):
                if arm == "suggested":  # the suggestion's space and objective
                    hypermodel = type(suggestion.hypermodel)(**{**suggestion.arguments, "seed": seed})
                    objective = suggestion.objective
                else:  # the family's default space, ranked as Keras Tuner users usually rank
                    hypermodel = _default(suggestion.family, train[0], train[1], task, schema)
                    hypermodel.seed = seed
                    objective = "val_loss" if task == "regression" else "val_accuracy"
                tuner, model, best, seconds = _search(hypermodel, train, validation, objective, args.trials,
                                                      args.epochs, seed, workdir, f"{name}-{arm}-{seed}".replace(" ",
                                                                                                               "_"))
                inputs = hypermodel.inputs if schema is not None else (lambda t: t)
                metric = "RMSE" if task == "regression" else "accuracy"
                rows.append({"part": "suggest", "data": name, "family": suggestion.family, "arm": arm, "seed": seed,
                             "metric": metric, "objective": objective,
                             "best_validation": _chosen_value(best, "val_loss" if task == "regression"
                                                              else "val_accuracy"),
                             "test": _score(model, inputs(test[0]), test[1], task),
                             "params": int(model.count_params()), "seconds": seconds})
                print(f"  {name:<18} seed {seed} {arm:<9} val {rows[-1]['best_validation']:.4f} test {metric} "
                      f"{rows[-1]['test']:.4f} {rows[-1]['params']:>8,} params {seconds:5.0f} s", flush=True)
    return rows


def summarise(rows) -> dict:
    summary: dict = {}
    for row in (r for r in rows if r["part"] == "suggest"):
        entry = summary.setdefault(row["data"], {}).setdefault(row["arm"], {"test": [], "best_validation": [],
                                                                           "params": []})
        for key in ("test", "best_validation", "params"):
            entry[key].append(row[key])
    return {data: {arm: {key: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
                         for key, v in values.items()} for arm, values in arms.items()}
            for data, arms in summary.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="families,suggest")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="bench/results/applications.json")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="structopt-bench-applications-"))
    rows: list[dict] = []
    try:
        rating_data = movielens_shaped(workdir / "tfds")
        if "families" in args.parts:
            rows += run_families(args, workdir, rating_data)
        if "suggest" in args.parts:
            rows += run_suggest(args, workdir, rating_data)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarise(rows)
    print()
    print("| data | arm | test (mean ± std) | best validation | parameters |")
    print("|---|---|---:|---:|---:|")
    for data, arms in summary.items():
        for arm, values in arms.items():
            print(f"| {data} | {arm} | {values['test']['mean']:.4f} ± {values['test']['std']:.4f} "
                  f"| {values['best_validation']['mean']:.4f} | {values['params']['mean']:,.0f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "summary": summary, "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
