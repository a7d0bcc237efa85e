"""Fuzzing `Architecture.from_dict` / `from_json`: any input either gives a valid Architecture
that renders and counts, or raises a `ConfigurationError` whose message says what was
expected and what was received -- never an error from deep inside Keras or Python."""

import json
import os
import random

import keras
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_structopt.errors import ConfigurationError
from keras_structopt.space import Architecture, render
from tests.space.random_specs import random_spec

FAMILIES = ("dense", "conv", "recurrent", "transformer", "tabular")
SCALARS = (st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=6) | st.sampled_from(["relu", "plain", "residual", "dense", "lstm", "avg", "max"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                             max_size=3), max_leaves=8)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _expected_error(error: ConfigurationError) -> None:
    message = str(error)
    assert message.startswith("Expected") and "Received" in message, message


def _accept_or_explain(config) -> None:
    try:
        spec = Architecture.from_dict(config)
    except ConfigurationError as error:
        _expected_error(error)
        return
    # Accepted: it must count and render like any spec (no crash deep in Keras).
    assert spec.count_params() == render(spec, keras).count_params()


@FUZZ
@given(config=st.dictionaries(st.sampled_from(["version", "family", "input_shape", "blocks", "connection", "task",
                                               "outputs", "options", "colour"]), VALUES, max_size=9))
def test_random_dicts_are_accepted_or_explained(config):
    _accept_or_explain(config)


@FUZZ
@given(family=st.sampled_from(FAMILIES), seed=st.integers(0, 10_000), data=st.data())
def test_one_field_of_a_valid_spec_changed_is_accepted_or_explained(family, seed, data):
    config = random_spec(random.Random(seed), family).to_dict()
    where = data.draw(st.sampled_from(["top", "block", "option"]))
    if where == "top":
        key = data.draw(st.sampled_from(sorted(config)))
        config[key] = data.draw(VALUES)
    elif where == "block":
        block = data.draw(st.sampled_from(config["blocks"]))
        block[data.draw(st.sampled_from(["kind", "units", "stage"]))] = data.draw(VALUES)
    else:
        options = config.setdefault("options", {})
        key = data.draw(st.sampled_from(sorted(options) or ["activation"]))
        options[key] = data.draw(VALUES)
    _accept_or_explain(config)


@FUZZ
@given(text=st.text(max_size=40) | st.builds(json.dumps, VALUES))
def test_any_text_is_accepted_or_explained_by_from_json(text):
    try:
        Architecture.from_json(text)
    except ConfigurationError as error:
        _expected_error(error)
