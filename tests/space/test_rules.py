"""The design rules: every candidate of a convolutional space sees its whole input and ends on a small map."""

import random

import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.search import rejected_candidates
from keras_structopt.space import Architecture, Block, receptive_field

# (what, input shape): images and signals of the sizes the rules must hold for
INPUTS = [
    ("image", (8, 8, 1)), ("image", (28, 28, 1)), ("image", (32, 32, 3)), ("image", (224, 224, 3)),
    ("signal", (40,)), ("signal", (16_000, 1)),
]


def _draws(hypermodel, count, seed=0):
    """Random specs over the whole space (every hyperparameter, conditions respected), built from none."""
    rng = random.Random(seed)
    for _ in range(count):
        hp = keras_tuner.HyperParameters()
        hypermodel.architecture(hp)
        for parameter in hp.space:
            if hp.is_active(parameter):
                hp.values[parameter.name] = parameter.random_sample(rng.randint(0, 10**6))
        yield hypermodel.architecture(hp)


def _spaces(what, shape):
    """The default space and the space `suggest` designs for 60 random examples of this shape."""
    cls = kso.ConvHyperModel if what == "image" else kso.Conv1DHyperModel
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, *shape)).astype("float32")
    if what == "signal" and len(shape) == 1:  # an ordered vector: smoothed noise, neighbours correlate
        x = np.stack([np.convolve(row, np.ones(5) / 5, mode="same") for row in x]).astype("float32")
    suggestion = kso.suggest(x, rng.integers(0, 3, 60))
    assert suggestion.family == ("conv" if what == "image" else "conv1d"), suggestion.rationale
    return {"default": cls(input_shape=shape, outputs=3), "suggested": suggestion.hypermodel,
            "every block type": cls(input_shape=shape, outputs=3, blocks_per_stage=(1, 3), kernel_size=[3, 5],
                                    downsample=["max_pool", "avg_pool"])}


@pytest.mark.parametrize("what, shape", INPUTS)
def test_no_candidate_of_a_convolutional_space_breaks_the_rules(what, shape):
    extent = max(shape[:2]) if what == "image" else shape[0]
    for name, hypermodel in _spaces(what, shape).items():
        stages = set()
        for spec in _draws(hypermodel, 60):
            field = receptive_field(spec)
            assert field.extent == extent
            assert field.field >= extent, (name, spec)  # the last convolution sees the whole input
            assert max(field.last_map) <= 8, (name, spec)  # and the map pooled away is small
            assert hypermodel.rule_violation(spec) is None
            stages.add(spec.blocks[-1].stage + 1)
        assert len(stages) >= 2 or isinstance(hypermodel.num_stages, int), (name, stages)  # searched where it can be


def test_stage_counts_follow_the_input_size():
    assert [kso.ConvHyperModel(input_shape=s, outputs=3).num_stages for s in
            [(8, 8, 1), (28, 28, 1), (32, 32, 3), (224, 224, 3)]] == [(2, 3), (4, 5), (4, 5), (7, 8)]
    signal = kso.Conv1DHyperModel(input_shape=(16_000, 1), outputs=3)
    assert signal.num_stages == 7 and signal.architecture().option("pool_size") == 4  # halving would need 12
    assert kso.Conv1DHyperModel(input_shape=(40,), outputs=3).architecture().option("pool_size") == 2


def test_a_network_that_breaks_the_rules_is_not_built(tmp_path, digits_image):
    # A space set by hand with one-stage networks: those whose receptive field (3 or 5) misses the 8x8 image.
    hypermodel = kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, num_stages=[2, 1], blocks_per_stage=(1, 2),
                                    filters=8, block_type="plain", dropout=0.0, learning_rate=1e-2, seed=0)
    hopeless = Architecture("conv", (8, 8, 1), [Block("plain", 8)], outputs=10)
    assert hypermodel.rule_violation(hopeless) == (
        "its receptive field (3) does not cover the input (8)")
    hp = keras_tuner.HyperParameters()
    hp.values.update({"num_stages": 1, "stage_0/blocks": 1})
    with pytest.raises(keras_tuner.errors.FailedTrialError, match=r"Not built: its receptive field \(3\)"):
        hypermodel.build(hp)  # what a plain Keras Tuner tuner gets: a failed trial, nothing trained
    # keras-structopt's oracle replaces such a candidate before it is built: every trial keeps the rules.
    search = kso.search.tuner(keras_tuner.GridSearch, hypermodel, objective="val_accuracy", max_trials=8,
                              directory=tmp_path, project_name="rules")
    x, y = digits_image
    search.search(x[:120], y[:120], validation_data=(x[120:180], y[120:180]), epochs=1, verbose=0)
    trials = list(search.oracle.trials.values())
    assert trials and all(t.status == "COMPLETED" for t in trials)
    assert all(hypermodel.rule_violation(hypermodel.architecture(t.hyperparameters.copy())) is None for t in trials)
    assert any("breaks the design rules" in r["reason"] for r in rejected_candidates(search))
    assert {hypermodel.architecture(t.hyperparameters.copy()).blocks[-1].stage for t in trials} == {1}


def test_a_space_without_a_network_that_keeps_the_rules_is_refused():
    with pytest.raises(kso.ConfigurationError, match=r"num_stages=1.*input_shape=\(28, 28, 1\).*design_rules=False"):
        kso.ConvHyperModel(input_shape=(28, 28, 1), outputs=10, num_stages=1)
    with pytest.raises(kso.ConfigurationError, match=r"downsample='none'"):
        kso.Conv1DHyperModel(input_shape=(40,), outputs=10, downsample="none")
    # Keras Tuner builds a space's first network to learn the space: it must keep the rules.
    with pytest.raises(kso.ConfigurationError, match=r"first network .*num_stages=\(1, 2\).*put such a value first"):
        kso.ConvHyperModel(input_shape=(8, 8, 1), outputs=10, num_stages=(1, 2))
    free = kso.ConvHyperModel(input_shape=(28, 28, 1), outputs=10, num_stages=1, design_rules=False)
    assert free.rule_violation(free.architecture()) is None  # searched as given


@pytest.fixture
def digits_image():
    data = kso.data.load_digits_split("image", seed=0)
    return data.train
