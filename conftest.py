"""Fixtures the doctests of the package use (`getfixture(...)` in an example)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


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
