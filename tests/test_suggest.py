"""kso.suggest: the family, task and space read from the data, each choice with its reason."""

import json

import keras_tuner
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

import keras_structopt as kso
from keras_structopt.data import load_digits_split
from tests.conftest import assert_all_completed
from tests.hypermodels.test_tabular import diabetes_frame


def values(hypermodel, name):
    """Every value a hyperparameter of the HyperModel's space can take."""
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    return hp._hps[name][0]


@pytest.mark.parametrize(
    "view, family, facts",
    [
        ("flat", "dense", ["family dense: flat vectors of 64 features", "task multiclass: 10 classes",
                           "widths 32..256", "depth 1..3"]),
        ("image", "conv", ["family conv: images of shape (8, 8, 1)", "stages 2..3", "filters 16..64"]),
        ("rows", "conv1d", ["family conv1d: sequences of 8 steps x 8 features", "stages 2..3, kernels 3 wide",
                            "the recurrent family is the alternative"]),
    ],
)
def test_digits_views_get_their_family_and_a_space_sized_for_1078_examples(view, family, facts):
    data = load_digits_split(view, seed=0)
    suggestion = kso.suggest(*data.train, seed=0)
    assert suggestion.family == family and suggestion.objective == "val_loss"
    text = str(suggestion)
    for fact in facts + ["small data (1,078 < 2,000 examples): dropout among 0, 0.1, 0.2 and 0.3",
                         "objective val_loss: 1,078 < 10,000 examples"]:
        assert fact in text, text
    hm = suggestion.hypermodel
    assert hm.architecture().family == family
    assert sorted(values(hm, "dropout").values) == [0.0, 0.1, 0.2, 0.3]
    assert "input_normalization" not in suggestion.arguments  # the loader scales pixels to [0, 1]
    rebuilt = type(hm)(**suggestion.arguments)  # the arguments rebuild it, and survive JSON like any config
    assert rebuilt.get_config() == type(hm).from_config(json.loads(json.dumps(hm.get_config()))).get_config()


def test_classification_objective_is_validation_loss_below_10000_examples_and_accuracy_above():
    rng = np.random.default_rng(0)
    small = kso.suggest(rng.normal(size=(9_999, 4)).astype("float32"), rng.integers(0, 3, 9_999), seed=0)
    large = kso.suggest(rng.normal(size=(10_000, 4)).astype("float32"), rng.integers(0, 3, 10_000), seed=0)
    assert (small.objective, large.objective) == ("val_loss", "val_accuracy")
    assert not any(line.startswith("objective") for line in large.rationale)
    imbalanced = np.where(rng.random(2_000) < 0.1, 1, 0)  # 9 to 1: AUC, whatever the size
    assert kso.suggest(rng.normal(size=(2_000, 4)).astype("float32"), imbalanced, seed=0).objective == "val_auc"


def test_breast_cancer_is_binary_standardised_in_the_model_and_a_search_runs(tmp_path):
    data = load_breast_cancer()
    x, y = data.data[:300].astype("float32"), data.target[:300]
    suggestion = kso.suggest(x, y, seed=0)
    assert suggestion.family == "dense" and suggestion.arguments["task"] == "binary"
    assert suggestion.arguments["units"] == (16, 128) and suggestion.arguments["num_layers"] == (1, 2)
    assert "depth 1..2: fewer than 1,000 examples" in suggestion.rationale
    # raw measurements (areas in the hundreds): the model standardises its input itself
    mean, variance = suggestion.arguments["input_normalization"]
    np.testing.assert_allclose(mean, x.astype("float64").mean(0), rtol=1e-6)
    assert any(line.startswith("inputs standardised inside the model: column means up to ")
               for line in suggestion.rationale)
    tuner = keras_tuner.RandomSearch(suggestion.hypermodel, objective=suggestion.objective, max_trials=1, seed=1,
                                     directory=tmp_path, project_name="cancer")
    validation = (data.data[300:400].astype("float32"), data.target[300:400])
    tuner.search(x, y, validation_data=validation, epochs=3, verbose=0)
    assert_all_completed(tuner, expected=1)
    model = tuner.get_best_models(1)[0]
    assert model.get_layer("input_normalization") is not None
    # raw values in, a useful classifier out after three epochs (unscaled, the same space stays near chance)
    assert model.evaluate(*validation, verbose=0)[1] >= 0.85


def test_a_table_gets_the_tabular_family_and_regression_from_float_labels():
    frame, y = diabetes_frame()
    suggestion = kso.suggest(frame[:300], y[:300])
    assert suggestion.family == "tabular" and suggestion.objective == "val_loss"
    assert suggestion.arguments["task"] == "regression" and suggestion.arguments["outputs"] == 1
    assert "cross" in suggestion.arguments["connection"]
    assert suggestion.rationale[0] == ("family tabular: a table of 10 columns (2 categorical: age (4 values), "
                                       "sex (2 values))")
    hm = suggestion.hypermodel
    assert values(hm, "age/embedding_units").max_value <= 4  # from the cardinality, not a fixed range
    # the diabetes target as integers: 200+ distinct values are counts, not classes
    assert "head_bias" not in suggestion.arguments  # standardised targets: the head starts at 0
    # the diabetes target as integers: 200+ distinct values are counts, not classes, centred far from 0
    target = load_diabetes().target[:300]
    counts = kso.suggest(load_diabetes().data[:300], target.astype("int64"))
    assert counts.arguments["task"] == "regression" and "counts, not classes" in counts.rationale[1]
    assert counts.arguments["head_bias"] == pytest.approx(target.astype("int64").mean())
    assert float(counts.hypermodel.build(keras_tuner.HyperParameters()).get_layer("head").bias.numpy()[0]) == (
        pytest.approx(target.astype("int64").mean()))


def test_imbalanced_binary_labels_get_auc_and_a_class_weight_note():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5_000, 6)).astype("float32"), (np.arange(5_000) % 10 == 0).astype("int64")
    suggestion = kso.suggest(x, y)
    assert suggestion.objective == "val_auc"
    assert [getattr(m, "name", m) for m in suggestion.arguments["metrics"]] == ["accuracy", "auc"]
    assert any("pass class_weight" in line for line in suggestion.rationale)
    assert "dropout" not in suggestion.arguments  # not small data: the default regularisation
    assert suggestion.arguments["units"] == (64, 512)  # 8 x sqrt(5,000) ~ 566 -> 512
    assert "input_normalization" not in suggestion.arguments  # already on a unit scale


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros(10), np.zeros(10), r"Expected x of shape \(examples, features\).*Received: x of shape \(10,\)"),
        (np.zeros((10, 3)), np.array(["a"] * 10), r"Expected y to hold class ids .* Received: y of dtype <U1"),
        (np.zeros((10, 3)), np.zeros(9, dtype=int), r"Expected as many labels as examples\. Received: x with 10"),
        (np.zeros((10, 3)), -np.ones(10, dtype=int), r"Expected y to hold class ids .*values from -1 to -1"),
    ],
)
def test_bad_data_is_explained(x, y, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        kso.suggest(x, y)


def test_a_rating_table_with_user_and_item_ids_gets_a_recommender(stored_movielens):
    columns, ratings = kso.data.load_movielens(data_dir=stored_movielens)
    suggestion = kso.suggest(columns, ratings, seed=0)
    assert suggestion.family == "recommender" and suggestion.objective == "val_loss"
    assert suggestion.arguments["item_features"] == ["movie_id"]
    assert set(suggestion.arguments["user_features"]) == {"user_id", "user_gender", "bucketized_user_age",
                                                          "user_occupation_text"}
    assert suggestion.rationale[0].startswith("family recommender: a user_id column and item id(s) ['movie_id']")
    assert suggestion.arguments["head_bias"] == pytest.approx(float(np.mean(ratings)), abs=1e-5)
    implicit = kso.suggest(columns, (ratings >= 4).astype("int64"))
    assert implicit.arguments["task"] == "binary" and "RankingMetrics" in implicit.rationale[2]
    spec = implicit.hypermodel.architecture()
    assert spec.family == "recommender" and spec.count_params() > 0


def test_a_sequence_gets_the_recurrent_family_as_its_alternative():
    data = load_digits_split("rows", seed=0)
    suggestion = kso.suggest(*data.train, seed=0)
    (recurrent,) = suggestion.alternatives
    assert recurrent.family == "recurrent" and isinstance(recurrent.hypermodel, kso.RecurrentHyperModel)
    assert "recurrent layers 1..3, units 32..256: about 8 x sqrt(1,078 examples) at most" in recurrent.rationale
    assert recurrent.objective == suggestion.objective and recurrent.hypermodel.architecture().family == "recurrent"


@pytest.fixture(scope="module")
def mnist1d():
    from mnist1d.data import get_dataset_args, make_dataset

    return make_dataset(get_dataset_args())  # generated offline: 4,000 training and 1,000 test signals


def test_ordered_columns_get_one_dimensional_convolutions_and_say_why(mnist1d):
    x, y = mnist1d["x"].astype("float32"), mnist1d["y"]
    suggestion = kso.suggest(x, y, seed=0)
    assert suggestion.family == "conv1d" and isinstance(suggestion.hypermodel, kso.Conv1DHyperModel)
    line = suggestion.rationale[0]
    assert line.startswith("family conv1d: 40 ordered values (neighbouring columns correlate 0.8"), line
    assert "stages 4..5, kernels 5 wide, pooled by 2" in str(suggestion)
    assert suggestion.hypermodel.architecture().input_shape == (40,)
    # The paper's "shuffle" row: the same values, columns in a random order, are no signal.
    shuffled = x[:, np.random.default_rng(0).permutation(40)]
    flat = kso.suggest(shuffled, y, seed=0)
    assert flat.family == "dense" and "columns not ordered like a signal" in flat.rationale[0]
    cancer = load_breast_cancer()  # 30 measurements side by side: related, not ordered
    assert kso.suggest(cancer.data.astype("float32"), cancer.target).family == "dense"
    assert kso.suggest(load_digits_split("flat", seed=0).train[0], load_digits_split("flat", seed=0).train[1]
                       ).family == "dense"
