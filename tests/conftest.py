"""Shared fixtures: bundled digits splits, seeding, and trial-status checks."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores: one thread each runs small models as fast, without
    # oversubscribing the machine.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_structopt.data import load_digits_split  # noqa: E402

# The checkout's root: what a subprocess puts on PYTHONPATH (tests run in a fresh working directory).
REPOSITORY = str(Path(__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def digits():
    return load_digits_split("flat", seed=0)


@pytest.fixture(scope="session")
def small_digits(digits):
    """A quarter of the training split, for the fastest tests."""
    x, y = digits.train
    return (x[:300], y[:300]), digits.validation, digits.test


def assert_all_completed(tuner, expected=None):
    """Fails unless every trial of the tuner COMPLETED (a search of failed trials is a failure)."""
    trials = list(tuner.oracle.trials.values())
    statuses = [trial.status for trial in trials]
    assert trials, "the search ran no trial"
    assert all(status == "COMPLETED" for status in statuses), statuses
    if expected is not None:
        assert len(trials) == expected, statuses


def max_abs_difference(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64"))))
