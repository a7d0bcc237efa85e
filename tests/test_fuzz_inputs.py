"""Fuzzing with hypothesis: label checks and names either accept the input or refuse it with a
`ConfigurationError`, never another exception. (Job files are fuzzed in tests/test_job_fuzz.py.)"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_structopt._cli import _parser, _validate_output
from keras_structopt._labels import check_labels
from keras_structopt.errors import ConfigurationError

DTYPES = st.sampled_from(["int64", "int32", "uint8", "float32", "float64", "bool"])
LABELS = st.one_of(
    hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
               elements=None, fill=None),
    st.lists(st.one_of(st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3)),
             min_size=0, max_size=8).map(lambda values: np.array(values, dtype=object)),
    st.lists(st.text(max_size=4), min_size=1, max_size=5).map(np.array),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=LABELS, task=st.sampled_from(["multiclass", "binary", "regression"]), outputs=st.integers(1, 12),
       one_hot=st.booleans())
def test_label_checks_accept_or_explain(labels, task, outputs, one_hot):
    try:
        check_labels(labels, task=task, outputs=outputs, one_hot=one_hot)
    except ConfigurationError as error:
        assert str(error).startswith("Expected ")
        return
    # Accepted: what Keras then trains on is sound for the task.
    values = np.asarray(labels)
    if values.size and task != "regression" and not one_hot:
        assert values.min() >= 0 and values.max() < (outputs if task == "multiclass" else 2)
        assert np.all(values == np.round(values))
    if values.size and values.dtype.kind == "f":
        assert np.isfinite(values).all()


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=12))
def test_model_names_are_accepted_or_refused_with_a_message(name, tmp_path_factory):
    args = _parser().parse_args(["export", "model.keras", f"--name={name}", "--out", str(tmp_path_factory.getbasetemp())])
    try:
        _validate_output(args)
    except ConfigurationError as error:
        assert "--name" in str(error) or "--out" in str(error)
        return
    assert name and "/" not in name and "\n" not in name and name not in ("tuner", "tflite", "worker-logs", "report")


@pytest.mark.parametrize("name", ["digits\n", "../x", "", "tuner", "a/b", "-x", ".hidden"])
def test_the_names_a_fuzzer_finds_first_are_refused(name, tmp_path):
    args = _parser().parse_args(["export", "model.keras", f"--name={name}", "--out", str(tmp_path)])
    with pytest.raises(ConfigurationError):
        _validate_output(args)
