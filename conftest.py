"""Fixtures the doctests of the package use (`getfixture(...)` in an example)."""

import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The notebooks (executed by the suite through nbmake) take their small budget.
os.environ.setdefault("KERAS_STRUCTOPT_NOTEBOOK_BUDGET", "small")

import signal  # noqa: E402

import pytest  # noqa: E402

# A suite started from a background job of a non-interactive shell (`nohup pytest ... &`, many CI runners)
# inherits SIGINT ignored, and so would every process it starts: the tests that press Ctrl-C on the command
# (SIGINT) would see it run on to exit 0. A handler, unlike an ignored signal, is not inherited across exec:
# the processes the suite starts get SIGINT's default, as under a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, plus one. Many of the slow tests wait on a subprocess (the
    command, a killed and resumed search, a chief and its workers, a winner loaded in a fresh
    process); the extra worker keeps the cores busy meanwhile."""
    return (os.cpu_count() or 1) + 1


_last_module = [None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """At each new test module (its predecessor's fixtures torn down): collects everything, then freezes
    what is left: TensorFlow, Keras, Keras Tuner and the test modules (about half a million objects), and
    what earlier modules keep alive for the run (TensorFlow's caches, session fixtures).

    Keras Tuner collects garbage three times a trial, and each collection walked every object not frozen:
    a worker's grew module after module (to 660,000 and more), and 28 % of the search tests' time went to
    the collector. Unfreezing first lets garbage frozen earlier be collected, so nothing leaks. The
    `keras-structopt` command freezes too (`keras_structopt._cli`), and so does every search for its
    duration (`frozen_while_searching`)."""
    import gc

    if item.path != _last_module[0]:
        _last_module[0] = item.path
        gc.unfreeze()
        gc.collect()
        gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_working_directory(tmp_path, monkeypatch):
    """Every test and doctest runs in an empty working directory of its own.

    What the checkout holds (a `structopt-out/` left by the README's first command, say)
    can then change no result, and nothing a test writes by a relative path lands in it.
    """
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def finished_search(tmp_path_factory):
    """A small finished search with learning curves: four trials of a dense space on digits."""
    import keras_tuner

    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    data = load_digits_split("flat", seed=0)
    (x, y), validation = data.train, data.validation
    hypermodel = kso.DenseHyperModel(
        input_shape=(64,), outputs=10, num_layers=(1, 3), units=[8, 16, 32], connection="plain",
        dropout=0.0, learning_rate=1e-2, seed=0,
    )
    search = kso.search.tuner(
        keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=4, seed=1,
        directory=tmp_path_factory.mktemp("finished_search"), project_name="digits",
    )
    search.search(x[:600], y[:600], validation_data=validation, epochs=2, batch_size=64, verbose=0)
    return search


@pytest.fixture(scope="session")
def stored_mnist(tmp_path_factory):
    """A tfds data directory written offline through tensorflow-datasets' own builders.

    `mnist` (3.0.1, MNIST's features: 28x28x1 uint8 images, 10 classes) holds scikit-learn's
    digits scaled up (each pixel 3x3, padded to 28x28; 1,437 train and 360 test images), so
    the real MNIST builder reads it; `digits_pixels` (1.0.0) has no supervised keys: a
    `pixels` vector of 64 floats and a `digit` ClassLabel.
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from sklearn.datasets import load_digits

    tfds.disable_progress_bar()
    quiet = contextlib.redirect_stdout(io.StringIO())  # tfds prints what it prepares
    directory = tmp_path_factory.mktemp("tfds")
    digits = load_digits()
    images = np.pad(np.kron(digits.images, np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))[..., None]
    images = (images * 15).astype("uint8")
    labels = digits.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1437], order[1437:]

    def part(indices, **columns):
        return tf.data.Dataset.from_tensor_slices({name: values[indices] for name, values in columns.items()})

    image_features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10),
    })
    pixel_features = tfds.features.FeaturesDict({
        "pixels": tfds.features.Tensor(shape=(64,), dtype=np.float32),
        "digit": tfds.features.ClassLabel(num_classes=10),
    })
    pixels = (digits.data / 16.0).astype("float32")
    with quiet:
        tfds.dataset_builders.store_as_tfds_dataset(
            name="mnist", version="3.0.1", data_dir=str(directory), features=image_features,
            split_datasets={"train": part(train, image=images, label=labels),
                            "test": part(test, image=images, label=labels)},
        )
        tfds.dataset_builders.store_as_tfds_dataset(
            name="digits_pixels", version="1.0.0", data_dir=str(directory), features=pixel_features,
            split_datasets={"train": part(train, pixels=pixels, digit=labels),
                            "test": part(test, pixels=pixels, digit=labels)},
        )
    return directory


@pytest.fixture(scope="session")
def stored_movielens(tmp_path_factory):
    """`movielens/100k-ratings` (0.1.1) written offline with MovieLens's own feature schema, so the
    real MovieLens builder reads it: 60 users, 90 movies, 2,400 ratings drawn from a low-rank
    taste model (user and movie factors, plus a movie bias), rounded to 1..5 stars; the users'
    gender, age band and occupation come with them, the movies' genres, title and timestamps too.
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    directory = tmp_path_factory.mktemp("tfds_movielens")
    features = tfds.builder("movielens/100k-ratings", data_dir=str(directory)).info.features
    rng = np.random.default_rng(0)
    users, movies, count = 60, 90, 2_400
    taste, style = rng.normal(size=(users, 3)), rng.normal(size=(movies, 3))
    bias = rng.normal(scale=0.5, size=movies)
    user = rng.integers(0, users, count)
    movie = rng.integers(0, movies, count)
    stars = np.clip(np.round(3.2 + 0.6 * (taste[user] * style[movie]).sum(1) + bias[movie]), 1, 5)
    occupations = ["student", "engineer", "artist", "doctor", "writer"]
    ages = np.array([18.0, 25.0, 35.0, 45.0, 50.0, 56.0])
    user_age = ages[rng.integers(0, len(ages), users)]
    user_job = rng.integers(0, len(occupations), users)
    columns = {
        "bucketized_user_age": user_age[user].astype("float32"),
        "movie_genres": tf.ragged.constant([[int(g)] for g in rng.integers(0, 19, count)], dtype=tf.int64),
        "movie_id": np.array([str(m + 1) for m in movie]),
        "movie_title": np.array([f"Movie {m + 1} (1995)" for m in movie]),
        "raw_user_age": (user_age[user] + 1).astype("float32"),
        "timestamp": (880_000_000 + np.arange(count) * 60).astype("int64"),
        "user_gender": (user % 2 == 0),
        "user_id": np.array([str(u + 1) for u in user]),
        "user_occupation_label": user_job[user].astype("int64"),
        "user_occupation_text": np.array([occupations[j] for j in user_job[user]]),
        "user_rating": stars.astype("float32"),
        "user_zip_code": np.array([f"{55_000 + u}" for u in user]),
    }
    with contextlib.redirect_stdout(io.StringIO()):
        tfds.dataset_builders.store_as_tfds_dataset(
            name="movielens", version="0.1.1", config="100k-ratings", data_dir=str(directory), features=features,
            split_datasets={"train": tf.data.Dataset.from_tensor_slices(columns)},
        )
    return directory
