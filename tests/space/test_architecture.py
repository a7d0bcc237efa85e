import dataclasses
import json
import random

import keras
import numpy as np
import pytest
import tf_keras

from keras_structopt import ConfigurationError
from keras_structopt.space import Architecture, Block, count, family_defaults, render
from tests.space.random_specs import random_spec

FAMILIES = ["dense", "conv", "recurrent", "transformer"]


def test_round_trip_through_json_for_many_random_specs():
    rng = random.Random(0)
    for family in FAMILIES:
        for _ in range(50):
            spec = random_spec(rng, family)
            again = Architecture.from_dict(json.loads(json.dumps(spec.to_dict())))
            assert again == spec
            assert again.to_json() == spec.to_json()
            assert hash(again) == hash(spec)


def test_to_dict_has_format_version_and_defaults_filled_in():
    spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
    config = spec.to_dict()
    assert config["version"] == 1
    assert config["options"] == family_defaults("dense")


def test_from_dict_rejects_another_version():
    config = Architecture("dense", (4,), [Block("dense", 8)], outputs=3).to_dict()
    config["version"] = 99
    with pytest.raises(ConfigurationError, match=r"version=1\. Received: version=99\."):
        Architecture.from_dict(config)


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_count_equals_keras_for_random_specs(family):
    rng = random.Random(hash(family) % 1000)
    for _ in range(6):
        spec = random_spec(rng, family)
        assert render(spec, keras).count_params() == spec.count_params(), spec
        assert render(spec, tf_keras).count_params() == spec.count_params(), spec


def test_dense_counts_by_hand():
    # 64 -> 32 (residual projection, no bias) -> 16 -> 10
    spec = Architecture(
        "dense", (64,), [Block("dense", 32), Block("dense", 16)], connection="residual", outputs=10
    )
    params = (64 * 32 + 32) + 64 * 32 + (32 * 16 + 16) + 32 * 16 + (16 * 10 + 10)
    assert spec.count_params() == params
    assert spec.count_macs() == 64 * 32 * 2 + 32 * 16 * 2 + 16 * 10


def test_conv_macs_by_hand():
    spec = Architecture("conv", (8, 8, 1), [Block("plain", 4)], outputs=10)
    assert spec.count_macs() == 8 * 8 * 3 * 3 * 1 * 4 + 4 * 10
    assert count(spec).params == 3 * 3 * 4 + 4 * 4 + 4 * 10 + 10


def test_macs_grow_with_width():
    narrow = Architecture("dense", (64,), [Block("dense", 16)], outputs=10)
    wide = narrow.replace(blocks=[Block("dense", 64)])
    assert wide.count_macs() > narrow.count_macs()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "graph"}, r"Expected family to be one of \['dense', 'conv', 'conv1d', 'recurrent', 'transformer', 'tabular', 'recommender'\]\. Received: family='graph'\."),
        ({"input_shape": (0,)}, r"Expected input_shape to be a non-empty tuple of ints >= 1"),
        ({"blocks": []}, r"Expected at least one block\. Received: blocks=\[\]\."),
        ({"blocks": [Block("lstm", 4)]}, r"Expected block kind to be one of \['dense'\]\. Received: block kind='lstm'\."),
        ({"connection": "skip"}, r"Expected connection to be one of \['plain', 'residual', 'dense'\]\. Received: connection='skip'\."),
        ({"task": "ranking"}, r"Expected task to be one of"),
        ({"task": "binary", "outputs": 2}, r'Expected outputs=1 for task="binary"'),
        ({"options": {"dropout": 1.5}}, r"Expected dropout to be a float with 0 <= dropout < 1\. Received: dropout=1\.5\."),
        ({"options": {"kernel_size": 3}}, r"Expected options of family='dense' among .*Received: unknown options \['kernel_size'\]"),
        ({"options": {"input_normalization": ([0.0] * 3, [1.0] * 4)}}, r"Expected input_normalization=\(mean, variance\): 4 finite values each \(one per input feature\), variances >= 0\. Received: input_normalization of type tuple with lengths 3 and 4\."),
        ({"options": {"input_normalization": ([0.0] * 4, [1.0, 1.0, -1.0, 1.0])}}, r"variances >= 0\. Received: input_normalization of type tuple with lengths 4 and 4\."),
        ({"options": {"input_normalization": "data"}}, r"Expected input_normalization=\(mean, variance\).*Received: input_normalization of type str\."),
        ({"options": {"head_bias": "mean"}}, r"Expected head_bias to be a finite float or None\. Received: head_bias='mean'\."),
        ({"options": {"head_bias": float("nan")}}, r"Expected head_bias to be a finite float or None\. Received: head_bias=nan\."),
    ],
)
def test_bad_fields_raise_clear_errors(kwargs, message):
    fields = {"family": "dense", "input_shape": (4,), "blocks": [Block("dense", 8)], "outputs": 3}
    fields.update(kwargs)
    with pytest.raises(ConfigurationError, match=message):
        Architecture(**fields)


def test_input_normalization_and_head_bias_are_in_the_model_and_survive_json():
    from keras_structopt.bridge import to_tf_keras

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 2, 2)) * [[100.0, 1.0], [0.1, 5.0]] + 50.0).astype("float32")
    flat = x.reshape(64, -1)
    variance = flat.var(0)
    variance[3] = 0.0  # a constant column is only centred: stored with variance 1
    spec = Architecture("dense", (2, 2), [Block("dense", 8)], task="regression", outputs=1,
                        options={"input_normalization": (flat.mean(0), variance), "head_bias": 3.5})
    assert spec.option("input_normalization")[1][3] == 1.0 and spec.option("head_bias") == 3.5
    assert Architecture.from_json(spec.to_json()) == spec
    model = render(spec, keras)
    assert model.count_params() == spec.count_params() == 4 * 8 + 8 + 8 + 1  # the statistics are constants
    assert float(model.get_layer("head").bias.numpy()[0]) == 3.5
    standardised = keras.Model(model.input, model.get_layer("input_normalization").output).predict(x, verbose=0)
    expected = (flat - np.array(spec.option("input_normalization")[0])) / np.sqrt(
        np.array(spec.option("input_normalization")[1]))
    np.testing.assert_allclose(standardised, expected, rtol=1e-4, atol=1e-4)
    bridged = to_tf_keras(model)
    assert isinstance(bridged, tf_keras.Model)
    assert np.abs(bridged.predict(x, verbose=0) - model.predict(x, verbose=0)).max() <= 1e-5


def test_block_validation():
    with pytest.raises(ConfigurationError, match=r"Expected units to be an int >= 1\. Received: units=0\."):
        Block("dense", 0)
    with pytest.raises(ConfigurationError, match=r"units >= 4 for an inception block"):
        Architecture("conv", (8, 8, 1), [Block("inception", 3)])


def test_family_input_shapes_are_checked():
    with pytest.raises(ConfigurationError, match=r"input_shape=\(height, width, channels\)"):
        Architecture("conv", (8, 8), [Block("plain", 8)])
    with pytest.raises(ConfigurationError, match=r"input_shape=\(timesteps,\) for token ids"):
        Architecture("recurrent", (8, 8), [Block("lstm", 8)], options={"vocabulary_size": 5})


def test_spec_is_frozen():
    spec = Architecture("dense", (4,), [Block("dense", 8)], outputs=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.family = "conv"


def test_render_is_deterministic_and_names_come_from_the_spec():
    spec = Architecture(
        "dense", (64,), [Block("dense", 32), Block("dense", 16)], connection="residual", outputs=10,
        options={"batch_norm": True, "dropout": 0.1},
    )
    names = [layer.name for layer in render(spec, keras).layers]
    assert names == [layer.name for layer in render(spec, keras).layers]
    assert names == [layer.name for layer in render(spec, tf_keras).layers]
    assert names[:4] == ["inputs", "block_0_dense", "block_0_batch_norm", "block_0_activation"]
    assert "block_0_projection" in names and names[-1] == "head"


def test_render_rejects_non_specs():
    with pytest.raises(TypeError, match="Expected spec to be an Architecture"):
        render({"family": "dense"}, keras)


def test_heads_follow_the_task():
    x = np.random.rand(5, 4).astype("float32")
    binary = render(Architecture("dense", (4,), [Block("dense", 8)], task="binary", outputs=1), keras)
    probabilities = np.asarray(binary(x))
    assert probabilities.shape == (5, 1) and ((probabilities > 0) & (probabilities < 1)).all()
    multiclass = np.asarray(render(Architecture("dense", (4,), [Block("dense", 8)], outputs=3), keras)(x))
    np.testing.assert_allclose(multiclass.sum(axis=1), 1.0, rtol=1e-5)


def test_recurrent_residual_that_cannot_apply_is_the_plain_network():
    from keras_structopt.space import Architecture, Block

    def spec(connection, units, reduce="last"):
        return Architecture(family="recurrent", input_shape=(6, 3), outputs=2, connection=connection,
                            blocks=tuple(Block(kind="gru", units=u) for u in units),
                            options={"reduce": reduce, "bidirectional": False})

    # One layer returning its last state: no add anywhere, so "residual" is "plain".
    assert spec("residual", (8,)) == spec("plain", (8,))
    assert spec("residual", (8,)).connection == "plain"
    # Two equal layers returning sequences: the second layer's add applies.
    assert spec("residual", (8, 8), reduce="mean").connection == "residual"
    assert spec("residual", (8, 8), reduce="mean").count_params() == spec("plain", (8, 8), reduce="mean").count_params()
    # An input as wide as the first layer: the first add applies.
    assert Architecture(family="recurrent", input_shape=(6, 8), outputs=2, connection="residual",
                        blocks=(Block(kind="gru", units=8),), options={"reduce": "mean"}).connection == "residual"
