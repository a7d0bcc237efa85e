"""RecommenderHyperModel on MovieLens's schema (stored offline, read by the real MovieLens builder):
every interaction trains, the family's contract holds, the two towers serve retrieval on their own."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import keras_structopt as kso
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Slim
from keras_structopt.data import TabularSchema, load_movielens
from keras_structopt.space import render
from tests.conftest import assert_all_completed, max_abs_difference
from tests.hypermodels.test_contract import random_hyperparameters

USER = ["user_id", "user_gender", "bucketized_user_age", "user_occupation_text"]
ITEM = ["movie_id"]


@pytest.fixture(scope="module")
def ratings(stored_movielens):
    columns, stars = load_movielens(data_dir=stored_movielens)
    order = np.random.default_rng(0).permutation(len(stars))
    train, validation = order[:1_800], order[1_800:]
    take = lambda rows: ({name: values[rows] for name, values in columns.items()}, stars[rows])  # noqa: E731
    return take(train), take(validation)


def hypermodel(train, **overrides):
    schema = TabularSchema.from_data(train[0])
    space = dict(task="regression", num_layers=(1, 2), units=[16, 32], tower_units=[8, 16], seed=0,
                 learning_rate=1e-2)
    space.update(overrides)
    return kso.RecommenderHyperModel(schema, USER, ITEM, **space)


def test_movielens_comes_through_tfds_with_its_schema(ratings, stored_movielens):
    (x, y), _ = ratings
    assert sorted(x) == sorted(USER + ITEM)
    assert set(np.unique(y)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and y.dtype == np.float32
    assert set(np.unique(x["user_gender"])) == {"F", "M"}
    _, implicit = load_movielens(data_dir=stored_movielens, implicit_threshold=4)
    assert implicit.dtype == np.int64 and 0.1 < implicit.mean() < 0.9
    with pytest.raises(kso.ConfigurationError, match=r"Expected name to be a MovieLens ratings config"):
        load_movielens("movielens/100k-movies", data_dir=stored_movielens)


@pytest.mark.parametrize("interaction", ["dot", "mlp", "cross"])
def test_every_interaction_learns_the_ratings_and_the_bridge_is_exact(ratings, interaction):
    train, validation = ratings
    hm = hypermodel(train, interaction=interaction, num_layers=1, units=16, tower_units=8)
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    history = hm.fit(hp, model, *train, validation_data=validation, epochs=6, batch_size=64, verbose=0)
    baseline = float(np.mean((validation[1] - train[1].mean()) ** 2))  # predicting the mean rating
    assert history.history["val_loss"][-1] < baseline, (history.history["val_loss"], baseline)
    x = hm.inputs(validation[0])
    assert max_abs_difference(kso.to_tf_keras(model).predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


def test_the_space_counts_names_and_round_trips(ratings):
    train, _ = ratings
    hm = hypermodel(train, task="binary")
    again = kso.RecommenderHyperModel.from_config(json.loads(json.dumps(hm.get_config())))
    seen = set()
    for seed in range(10):
        hp = random_hyperparameters(hm, seed)
        spec = hm.architecture(hp)
        seen.add(spec.connection)
        model = hm.build(hp)
        assert model.count_params() == spec.count_params() == render(spec, tf_keras).count_params()
        assert again.architecture(hp) == spec and kso.Architecture.from_json(spec.to_json()) == spec
        if spec.connection == "dot":
            assert model.get_layer("user_projection").units == hp.get("tower_units")
    assert seen == {"dot", "mlp", "cross"}
    for bad, message in [
        (dict(task="multiclass"), r'Expected task="regression" \(ratings\) or "binary"'),
        (dict(interaction="attention"), r"Expected interaction.*Received: interaction='attention'"),
    ]:
        with pytest.raises(kso.ConfigurationError, match=message):
            hypermodel(train, **bad)
    with pytest.raises(kso.ConfigurationError, match=r"Expected user_features to be a non-empty list"):
        kso.RecommenderHyperModel(hm.schema, ["user_name"], ITEM)
    with pytest.raises(kso.ConfigurationError, match=r"on neither side \['user_gender'"):
        kso.RecommenderHyperModel(hm.schema, ["user_id"], ITEM)


def test_ranking_metrics_on_made_up_scores():
    class Fixed:
        """Scores a (user, movie) pair by a table: user u1 likes m3 best, then m2, m1, m4."""

        table = {("u1", "m1"): 0.2, ("u1", "m2"): 0.5, ("u1", "m3"): 0.9, ("u1", "m4"): 0.1}

        def predict(self, x, **_):
            return np.array([self.table[(u, m)] for u, m in zip(x["user_id"], x["movie_id"])])

    catalogue = {"movie_id": np.array(["m1", "m2", "m3", "m4", "m2"])}
    users = {"user_id": np.array(["u1", "u1", "u1"])}
    liked = {"movie_id": np.array(["m3", "m2", "m4"])}  # ranks 0, 1, 3 among the other items
    at_2 = kso.search.RankingMetrics(users, liked, catalogue, k=2).evaluate(Fixed())
    assert at_2 == {"val_hit_rate_at_2": pytest.approx(2 / 3),
                    "val_ndcg_at_2": pytest.approx((1.0 + 1.0 / np.log2(3)) / 3)}
    with pytest.raises(kso.ConfigurationError, match=r"Expected catalogue to have the item columns \['movie_id'\]"):
        kso.search.RankingMetrics(users, liked, {"title": np.array(["x"])})


@pytest.mark.slow
def test_two_towers_serve_retrieval_and_their_dot_product_is_the_score(ratings, tmp_path):
    """Implicit feedback (rating >= 4), interaction "dot", searched with Keras Tuner's
    BayesianOptimization for NDCG@10 (a RankingMetrics callback) and RandomSearch; the winner's
    towers exported as SavedModels of their own."""
    (x, stars), (vx, vstars) = ratings
    train, validation = (x, (stars >= 4).astype("int64")), (vx, (vstars >= 4).astype("int64"))
    hm = hypermodel(train, task="binary", interaction="dot")
    liked = validation[1] == 1
    ranking = kso.search.RankingMetrics({c: validation[0][c][liked] for c in USER},
                                        {c: validation[0][c][liked] for c in ITEM},
                                        {c: train[0][c] for c in ITEM}, k=10, inputs=hm.schema.inputs)
    random = keras_tuner.RandomSearch(hm, objective="val_accuracy", max_trials=1, seed=1, directory=tmp_path,
                                      project_name="random")
    random.search(*train, validation_data=validation, epochs=1, batch_size=64, verbose=0)
    assert_all_completed(random)
    tuner = keras_tuner.BayesianOptimization(hm, objective=keras_tuner.Objective("val_ndcg_at_10", "max"),
                                             max_trials=2, num_initial_points=1, seed=1, directory=tmp_path,
                                             project_name="bayesian")
    tuner.search(*train, validation_data=validation, epochs=3, batch_size=64, verbose=0, callbacks=[ranking])
    assert_all_completed(tuner)
    trials = list(tuner.oracle.trials.values())
    scores = [t.metrics.get_best_value("val_ndcg_at_10") for t in trials]
    assert all(0.0 <= s <= 1.0 for s in scores) and tuner.oracle.get_best_trials(1)[0].score == max(scores)
    best = tuner.get_best_models(1)[0]
    assert ranking.evaluate(best)["val_ndcg_at_10"] == pytest.approx(max(scores), abs=1e-6)
    users, items = kso.export.towers(best)
    served = {}
    for tower, name in ((users, "users"), (items, "items")):
        path = kso.export_saved_model(tower, tmp_path / "serving", name)
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        columns = USER if name == "users" else ITEM
        inputs = hm.inputs(validation[0])
        arguments = {c: tf.constant(inputs[c]) for c in columns}
        if len(columns) == 1:  # one input is called "inputs" in the signature (see serving_names)
            arguments = {"inputs": arguments[columns[0]]}
        served[name] = signature(**arguments)["outputs"].numpy()
    score = keras.Model(best.input, best.get_layer("score").output).predict(hm.inputs(validation[0]), verbose=0)
    assert served["users"].shape == served["items"].shape == (len(validation[1]), hm.architecture(
        tuner.oracle.get_best_trials(1)[0].hyperparameters).option("tower_units"))
    assert max_abs_difference(np.sum(served["users"] * served["items"], axis=1, keepdims=True), score) <= 1e-4
    # the score's sigmoid is the model's output
    assert max_abs_difference(tf.sigmoid(score).numpy(), best.predict(hm.inputs(validation[0]), verbose=0)) <= 1e-5
    with pytest.raises(kso.ConfigurationError, match=r"Expected a recommender with interaction='dot'"):
        kso.export.towers(kso.DenseHyperModel(input_shape=(4,), outputs=2).build(keras_tuner.HyperParameters()))


@pytest.mark.slow
def test_a_recommender_compresses_and_exports(ratings, tmp_path):
    train, validation = ratings
    hm = hypermodel(train, interaction="mlp", num_layers=2, units=32)
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    hm.fit(hp, model, *train, validation_data=validation, epochs=4, batch_size=64, verbose=0)
    small, result = kso.compress(model, train, validation_data=validation, test_data=validation,
                                 recipe=[Slim(0.5), Prune(0.5), Cluster(8), Quantize("dynamic")], max_accuracy_loss=None,
                                 fine_tuning=FineTuning(slim_epochs=1, prune_epochs=2, cluster_epochs=1),
                                 measure_latency=False)
    report = result.report
    assert [s.name for s in report.stages] == ["baseline", "slimmed", "pruned", "clustered", "quantized"]
    assert report.final.params < report.baseline.params
    assert report.final.metrics["loss"] <= 1.3 * report.baseline.metrics["loss"]
    spec = kso.architecture_of(small)
    assert spec is not None and spec.family == "recommender" and spec.count_params() == small.count_params()
    lite = kso.export_tflite(small, tmp_path / "movies.tflite").read_bytes()
    from keras_structopt.export import tflite_predict, tflite_vocabularies

    assert {f["name"] for f in tflite_vocabularies(lite)} == {"user_id", "user_gender", "user_occupation_text",
                                                              "movie_id"}
    expected = small.predict(hm.inputs(validation[0]), verbose=0)
    assert max_abs_difference(tflite_predict(lite, validation[0]), expected) <= 0.15  # int8 weights, float math
    path = kso.export_saved_model(small, tmp_path / "serving", "movies")
    assert (path / "saved_model.pb").is_file()
