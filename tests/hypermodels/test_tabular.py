"""TabularHyperModel: the schema read from a table, the family's contract (counts, names, JSON,
bridge, every Keras Tuner tuner), and its model from raw columns to TF Serving and TFLite."""

import json

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tf_keras
from sklearn.datasets import load_breast_cancer, load_diabetes

import keras_structopt as kso
from keras_structopt.compress import FineTuning
from keras_structopt.data import TabularSchema
from keras_structopt.data._tabular import category_indices, embedding_units_range
from keras_structopt.export import tflite_predict, tflite_vocabularies, to_tflite_bytes
from keras_structopt.export._tflite import strip_tflite
from keras_structopt.space import render
from tests.conftest import assert_all_completed, max_abs_difference
from tests.hypermodels.test_contract import random_hyperparameters


def diabetes_frame():
    """scikit-learn's diabetes data with its categorical columns as people write them: sex as
    strings, age as a string band; the target standardised."""
    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["sex"] = np.where(frame["sex"] > 0, "male", "female")
    frame["age"] = pd.cut(frame["age"], 4, labels=["young", "adult", "middle", "senior"]).astype(str)
    target = data.target.to_numpy("float32")
    return frame, (target - target.mean()) / target.std()


def cancer_frame():
    """Breast cancer (binary) with a string band of the mean radius and an integer-coded column."""
    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :6].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["size_band"] = pd.qcut(frame["mean_radius"], 3, labels=["small", "medium", "large"]).astype(str)
    frame["texture_code"] = pd.qcut(frame["mean_texture"], 4, labels=False).astype("int64") * 10 + 3
    return frame, data.target.to_numpy("int64")


def split(frame, y, n_train=300, n_validation=100):
    return ((frame.iloc[:n_train], y[:n_train]), (frame.iloc[n_train:n_train + n_validation],
            y[n_train:n_train + n_validation]), (frame.iloc[n_train + n_validation:], y[n_train + n_validation:]))


def cancer_hypermodel(train, **overrides):
    schema = TabularSchema.from_data(train[0], categorical=["texture_code"])
    space = dict(task="binary", num_layers=(1, 2), units=[8, 16], seed=0, learning_rate=3e-3)
    space.update(overrides)
    return kso.TabularHyperModel(schema, **space)


def test_the_schema_is_read_from_the_table():
    frame, _ = cancer_frame()
    schema = TabularSchema.from_data(frame, categorical=["texture_code"])
    kinds = {f["name"]: f["kind"] for f in schema.features}
    assert kinds["size_band"] == "string" and kinds["texture_code"] == "integer"
    assert kinds["mean_radius"] == "numeric"
    radius = schema.feature("mean_radius")
    assert radius["mean"] == pytest.approx(frame["mean_radius"].mean())
    assert radius["variance"] == pytest.approx(frame["mean_radius"].var(ddof=0))
    assert schema.feature("size_band")["vocabulary"] == ["large", "medium", "small"]
    assert schema.feature("texture_code")["vocabulary"] == [3, 13, 23, 33]
    # a dict of columns reads the same; JSON round trip; the most frequent values are kept
    assert TabularSchema.from_data({c: frame[c].to_numpy() for c in frame}, categorical=["texture_code"]) == schema
    assert TabularSchema.from_list(json.loads(json.dumps(schema.to_list()))) == schema
    capped = TabularSchema.from_data({"c": ["a"] * 5 + ["b"] * 3 + ["c"]}, max_vocabulary=2)
    assert capped.feature("c")["vocabulary"] == ["a", "b"]
    assert TabularSchema.from_data({"c": ["a"] * 5 + ["b"]}, min_count=2).feature("c")["vocabulary"] == ["a"]
    # indices as the lookup layers give them: 0 outside the vocabulary
    assert category_indices(schema.feature("size_band"), ["small", "huge"]).ravel().tolist() == [3, 0]
    assert embedding_units_range(4) == (1, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: TabularSchema.from_data({"a": [1.0, np.nan]}), r"Expected x\['a'\] to hold finite numbers"),
        # Missing categories are refused, never turned into categories named "None", "nan" or "<NA>".
        (lambda: TabularSchema.from_data({"c": np.array(["a", None, "b"], dtype=object)}),
         r"Expected categorical column x\['c'\] to have no missing values \(None, NaN, pd\.NA\).*Received: 1 missing "
         r"of 3 rows\."),
        (lambda: TabularSchema.from_data({"c": np.array(["a", np.nan, np.nan, "b"], dtype=object)}),
         r"Received: 2 missing of 4 rows\."),
        (lambda: TabularSchema.from_data(pd.DataFrame({"c": pd.array(["a", pd.NA, "b"], dtype="string")})),
         r"Expected categorical column x\['c'\] to have no missing values.*Received: 1 missing of 3 rows\."),
        (lambda: TabularSchema.from_data({"c": [1.5, np.nan]}, categorical=["c"]), r"Received: 1 missing of 2 rows\."),
        (lambda: TabularSchema.from_data({"c": ["a", "b"]}).inputs({"c": np.array(["a", None], dtype=object)},
                                                                   "validation_data[0]"),
         r"Expected categorical column validation_data\[0\]\['c'\] to have no missing values.*Received: 1 missing"),
        (lambda: TabularSchema.from_data({"a": [1.0]}, categorical=["b"]),
         r"Expected categorical to name columns of x \['a'\]\. Received: categorical=\['b'\]"),
        (lambda: TabularSchema.from_data({"a": [1.0]}, categorical=["a"], numeric=["a"]), "not both"),
        (lambda: TabularSchema.from_data({"a": [1.0, 2.0], "b": [1.0]}), "as many values as there are examples"),
        (lambda: TabularSchema.from_data([[1.0, 2.0]]), "Expected x to be a pandas DataFrame, a dict of 1-D columns or a 2-D array"),
        (lambda: TabularSchema.from_list([{"name": "a", "kind": "text"}]), r"Expected features\[0\]\['kind'\]"),
        (lambda: TabularSchema.from_list([{"name": "a", "kind": "numeric", "mean": 0.0, "variance": 0.0}]),
         r"Expected features\[0\]\['variance'\] to be a number > 0"),
        (lambda: TabularSchema.from_list([{"name": "a", "kind": "string", "vocabulary": ["x", "x"]}]),
         "without repeated values"),
        (lambda: kso.Architecture("tabular", (1,), [kso.Block("dense", 4)], options={
            "features": [{"name": "a", "kind": "string", "vocabulary": ["x"]}], "embedding_units": []}),
         r"Expected embedding_units to list one width per categorical feature \['a'\]"),
        (lambda: kso.Architecture("tabular", (2,), [kso.Block("dense", 4)], options={
            "features": [{"name": "a", "kind": "numeric", "mean": 0.0, "variance": 1.0}]}),
         r"Expected input_shape=\(1,\) \(the number of features\)"),
    ],
)
def test_bad_schemas_and_specs_are_explained(call, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        call()


def test_bad_tables_are_refused_before_training(tmp_path):
    frame, y = cancer_frame()
    train, validation, _ = split(frame, y)
    hm = cancer_hypermodel(train)
    tuner = keras_tuner.RandomSearch(hm, objective="val_loss", max_trials=1, directory=tmp_path, project_name="p")
    for x, labels, message in [
        (train[0].drop(columns=["size_band"]), train[1], r"Expected x to have the columns .*missing \['size_band'\]"),
        (train[0], train[1][:10], "Expected as many labels as examples"),
        (train[0].assign(mean_area=np.nan), train[1], r"Expected x\['mean_area'\] to hold finite numbers"),
        (train[0]["mean_area"].to_numpy(), train[1], r"Expected x to be a pandas DataFrame, a dict of columns, a "
         r"2-D array or a tf.data.Dataset for a TabularHyperModel. Received: x of type ndarray with shape \(300,\)"),
        (train[0], train[1] + 2, r"Expected y to hold class ids in \[0, 1\]"),
    ]:
        with pytest.raises(kso.ConfigurationError, match=message):
            tuner.search(x, labels, validation_data=validation, epochs=1, verbose=0)
    assert not any(t.status == "COMPLETED" for t in tuner.oracle.trials.values())


def test_every_connection_counts_names_and_round_trips():
    frame, y = cancer_frame()
    train, _, _ = split(frame, y)
    hm = cancer_hypermodel(train)
    again = kso.TabularHyperModel.from_config(json.loads(json.dumps(hm.get_config())))
    seen = set()
    for seed in range(12):
        hp = random_hyperparameters(hm, seed)
        spec = hm.architecture(hp)
        seen.add(spec.connection)
        model = hm.build(hp)
        assert model.count_params() == spec.count_params() == render(spec, tf_keras).count_params()
        assert [layer.name for layer in model.layers] == [layer.name for layer in render(spec, tf_keras).layers]
        assert again.architecture(hp) == spec
        assert kso.Architecture.from_json(spec.to_json()) == spec
        assert sorted(model.input) == sorted(hm.schema.names)
        if spec.connection == "cross":
            assert spec.option("cross_layers") == hp.get("cross_layers")
            assert sum(layer.name.endswith("_multiply") for layer in model.layers) == spec.option("cross_layers")
        widths = [hp.get(f"{name}/embedding_units") for name in ("size_band", "texture_code")]
        assert list(spec.option("embedding_units")) == widths
    assert seen == {"plain", "residual", "dense", "cross"}


@pytest.mark.parametrize("connection", ["residual", "cross"])
def test_training_on_a_frame_and_the_bridge_is_exact(connection):
    frame, y = cancer_frame()
    train, validation, test = split(frame, y)
    hm = cancer_hypermodel(train, connection=connection)
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    history = hm.fit(hp, model, *train, validation_data=validation, epochs=2, verbose=0)
    assert np.isfinite(history.history["val_loss"][-1])
    x = hm.inputs(test[0])
    legacy = kso.to_tf_keras(model)
    assert max_abs_difference(legacy.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5
    # a regression head on diabetes, with string categories
    dframe, dy = diabetes_frame()
    schema = TabularSchema.from_data(dframe.iloc[:300])
    regression = kso.TabularHyperModel(schema, outputs=1, task="regression", connection=connection, num_layers=1,
                                       units=8, seed=0)
    model = regression.build(hp)
    history = regression.fit(hp, model, dframe.iloc[:300], dy[:300], epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# Like the other families (tests/hypermodels/test_contract.py's rotation), two of Keras Tuner's
# tuners here; RandomSearch runs in the serving test below and in the doctest. Hyperband's
# reloading of checkpoints is the same code for every family and runs there on three of them.
@pytest.mark.slow
@pytest.mark.parametrize("tuner_name", ["grid", "bayesian"])
def test_keras_tuners_search_a_frame(tmp_path, tuner_name):
    frame, y = cancer_frame()
    train, validation, _ = split(frame, y, n_train=200)
    hm = cancer_hypermodel(train)
    common = dict(objective="val_accuracy", directory=tmp_path, project_name=tuner_name)
    tuner = {
        "random": lambda: keras_tuner.RandomSearch(hm, max_trials=2, seed=1, **common),
        "grid": lambda: keras_tuner.GridSearch(hm, max_trials=2, **common),
        "bayesian": lambda: keras_tuner.BayesianOptimization(hm, max_trials=2, num_initial_points=1, seed=1, **common),
        "hyperband": lambda: keras_tuner.Hyperband(hm, max_epochs=2, factor=2, hyperband_iterations=1, seed=1,
                                                   **common),
    }[tuner_name]()
    tuner.search(*train, validation_data=validation, epochs=1, verbose=0)
    assert_all_completed(tuner)
    best = tuner.get_best_models(1)[0]
    assert best.count_params() == kso.architecture_of(best).count_params()


@pytest.mark.slow
def test_a_searched_frame_model_serves_raw_values_and_compresses(tmp_path):
    """Search on a DataFrame with string categories; the winner saved and loaded keeps its spec;
    its SavedModel takes raw strings and numbers; its TFLite file takes raw values through
    the vocabularies in its metadata; compress (mobile preset) slims, prunes, clusters and
    converts it, and the compressed model serves raw values too."""
    frame, y = cancer_frame()
    train, validation, test = split(frame, y)
    hm = cancer_hypermodel(train, units=[32, 64])
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hm, objective="val_accuracy", max_trials=2, seed=1,
                             directory=tmp_path / "search", project_name="cancer")
    tuner.search(*train, validation_data=validation, epochs=15, verbose=0)
    assert_all_completed(tuner, expected=2)
    best = tuner.get_best_models(1)[0]
    x = hm.inputs(test[0])
    expected = best.predict(x, verbose=0)
    assert np.mean((expected[:, 0] > 0.5) == test[1]) >= 0.85

    best.save(tmp_path / "best.keras")
    loaded = keras.models.load_model(tmp_path / "best.keras")
    assert kso.architecture_of(loaded) == kso.architecture_of(best)
    assert max_abs_difference(loaded.predict(x, verbose=0), expected) <= 1e-6

    path = kso.export_saved_model(best, tmp_path / "serving", "cancer")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    assert specs["size_band"].dtype == tf.string and specs["texture_code"].dtype == tf.int64
    raw = {name: tf.constant(test[0][name].to_numpy().reshape(-1, 1).astype(
        str if name == "size_band" else "int64" if name == "texture_code" else "float32")) for name in hm.schema.names}
    served = serve(**raw)["outputs"].numpy()
    assert max_abs_difference(served, expected) <= 1e-5
    unseen = dict(raw, size_band=tf.constant([["enormous"]] * len(test[1])))  # out of vocabulary: index 0
    assert np.all(np.isfinite(serve(**unseen)["outputs"].numpy()))

    lite = to_tflite_bytes(best, "none")
    assert [f["name"] for f in tflite_vocabularies(lite)] == ["size_band", "texture_code"]
    assert tflite_vocabularies(strip_tflite(lite)) == tflite_vocabularies(lite)
    assert max_abs_difference(tflite_predict(lite, test[0].to_dict("list")), expected) <= 1e-5

    small, result = kso.compress(best, train, validation_data=validation, test_data=test, target="mobile",
                                 max_accuracy_loss=None, measure_latency=False,
                                 fine_tuning=FineTuning(slim_epochs=3, prune_epochs=4, cluster_epochs=2, qat_epochs=1))
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "slimmed", "pruned", "clustered", "quantized"]
    assert report.final.params < report.baseline.params
    assert report.final.tflite_gzip_bytes < report.baseline.tflite_gzip_bytes  # a ~700-weight model: the file is mostly structure
    assert report.baseline.metrics["accuracy"] - report.final.metrics["accuracy"] <= 0.05
    spec = kso.architecture_of(small)
    assert spec is not None and spec.family == "tabular" and spec.count_params() == small.count_params()
    compressed = kso.export_saved_model(small, tmp_path / "serving", "cancer")
    assert compressed.name == "2" and (tmp_path / "serving" / "cancer" / "1").is_dir()
    again = tf.saved_model.load(str(compressed)).signatures["serving_default"](**raw)["outputs"].numpy()
    assert max_abs_difference(again, small.predict(hm.inputs(test[0]), verbose=0)) <= 1e-5


def test_a_users_model_with_lookups_bridges_and_converts_with_index_inputs():
    """A hand-written Keras 3 model over raw columns (Normalization, StringLookup into an Embedding,
    IntegerLookup one-hot): the bridge carries it; its TFLite file takes the string column as
    indices (vocabulary in the metadata); a one-hot lookup on an input is explained, not crashed."""
    city = keras.Input((1,), dtype="string", name="city")
    zone = keras.Input((1,), dtype="int64", name="zone")
    age = keras.Input((1,), name="age")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(4, 3)(
        keras.layers.StringLookup(vocabulary=["Lima", "Oslo", "Rome"], name="city_lookup")(city)))
    zones = keras.layers.IntegerLookup(vocabulary=[3, 7], output_mode="one_hot", name="zone_lookup")(zone)
    scaled = keras.layers.Normalization(mean=[40.0], variance=[100.0])(age)
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([embedded, zones, scaled]))
    model = keras.Model({"city": city, "zone": zone, "age": age}, keras.layers.Dense(1)(hidden))
    x = {"city": tf.constant([["Rome"], ["Paris"], ["Oslo"]]), "zone": np.array([[3], [9], [7]]),
         "age": np.array([[30.0], [50.0], [61.0]], "float32")}
    expected = model.predict(x, verbose=0)
    legacy = kso.to_tf_keras(model)
    assert max_abs_difference(legacy.predict(x, verbose=0), expected) <= 1e-6
    with pytest.raises(kso.ConfigurationError, match=r"Expected lookup layer 'zone_lookup' to have .*output_mode='int'"):
        to_tflite_bytes(model, "none")
    only_city = keras.Model({"city": city, "age": age}, keras.layers.Dense(1)(keras.layers.Concatenate()(
        [embedded, scaled])))
    lite = to_tflite_bytes(only_city, "none")
    assert tflite_vocabularies(lite) == [{"name": "city", "input": "city", "kind": "string",
                                          "vocabulary": ["Lima", "Oslo", "Rome"]}]
    raw = {"city": np.array(["Rome", "Paris", "Oslo"]), "age": np.array([30.0, 50.0, 61.0], "float32")}
    reference = only_city.predict({"city": tf.constant(raw["city"].reshape(-1, 1)), "age": raw["age"].reshape(-1, 1)},
                                  verbose=0)
    assert max_abs_difference(tflite_predict(lite, raw), reference) <= 1e-5


def test_numpy_arrays_and_tf_data_pipelines_feed_a_tabular_model(tmp_path):
    data = load_breast_cancer()
    x, y = data.data[:300].astype("float32"), data.target[:300]
    schema = TabularSchema.from_data(x)
    assert schema.names[:3] == ["x0", "x1", "x2"] and all(f["kind"] == "numeric" for f in schema.features)
    hm = kso.TabularHyperModel(schema, task="binary", num_layers=1, units=16, connection="plain", seed=0)
    pipeline = tf.data.Dataset.from_tensor_slices((schema.inputs(x[:200]), y[:200])).batch(32)
    validation = tf.data.Dataset.from_tensor_slices((schema.inputs(x[200:]), y[200:])).batch(32)
    tuner = keras_tuner.RandomSearch(hm, objective="val_accuracy", max_trials=1, directory=tmp_path, project_name="p")
    tuner.search(pipeline, validation_data=validation, epochs=3, verbose=0)
    assert_all_completed(tuner, expected=1)
    best = tuner.get_best_models(1)[0]
    from_arrays = best.predict(hm.inputs(x[200:]), verbose=0)
    assert max_abs_difference(best.predict(validation, verbose=0), from_arrays) <= 1e-6
    assert np.mean((from_arrays[:, 0] > 0.5) == y[200:]) >= 0.8
