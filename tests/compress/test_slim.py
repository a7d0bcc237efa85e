"""Structural slimming in Keras 3: tied channels, exact removal of dead units, every family."""

import keras
import keras_tuner
import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.compress import slim
from tests.bridge.user_models import MODELS, data_for, max_difference
from tests.hypermodels.test_contract import CASES, hypermodel
from tests.hypermodels.test_contract import data_for as family_data

RNG = np.random.default_rng(0)


def test_dead_and_constant_units_are_removed_without_changing_the_outputs():
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(12, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    kernel, bias = model.get_layer("hidden").get_weights()
    kernel[:, :4] = 0.0
    bias[:2], bias[2:4] = 0.0, 0.7  # units 0-1 dead, units 2-3 constant 0.7
    model.get_layer("hidden").set_weights([kernel, bias])
    x = RNG.normal(size=(200, 16)).astype("float32")
    small, plan = slim(model, x, ratio=0.0)
    assert plan.widths == {"hidden": (12, 8)}
    assert small.count_params() == model.count_params() - 4 * (16 + 1 + 3)
    assert max_difference(small.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


def test_constant_filters_fold_into_batch_norm_and_through_flatten():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, name="first")(inputs)
    x = keras.layers.BatchNormalization(name="first_norm")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="second")(x)  # padding "valid": folding is exact
    x = keras.layers.BatchNormalization(name="second_norm")(x)
    x = keras.layers.Flatten()(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))
    kernel, bias = model.get_layer("first").get_weights()
    kernel[..., :3] = 0.0  # filters 0-2 see nothing: after batch norm they are constant
    model.get_layer("first").set_weights([kernel, bias])
    gamma, beta, mean, variance = model.get_layer("first_norm").get_weights()
    model.get_layer("first_norm").set_weights([gamma, beta + np.array([-1, 0.5, 2, 0, 0, 0, 0, 0]), mean, variance])
    kernel = model.get_layer("second").get_weights()[0]
    kernel[..., :2] = 0.0  # second-layer filters 0-1 are dead: Flatten rows go with them
    kernel[..., 2:] = np.abs(kernel[..., 2:]) + 0.01  # the others see positive inputs: alive
    model.get_layer("second").set_weights([kernel])
    gamma, beta, mean, variance = model.get_layer("second_norm").get_weights()
    model.get_layer("second_norm").set_weights([gamma, beta - 5.0 * (np.arange(6) < 2), mean, variance])
    x = RNG.random(size=(64, 8, 8, 1)).astype("float32")
    small, plan = slim(model, x, ratio=0.0)
    assert plan.widths == {"first": (8, 5), "second": (6, 4)}
    assert small.get_layer("head").get_weights()[0].shape == (4 * 4 * 4, 10)
    assert max_difference(small.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-4


def test_depthwise_blocks_carry_their_channels_and_fold_constants_into_the_next_norm():
    # A MobileNet block: conv -> BN -> ReLU6 -> depthwise -> BN -> ReLU6 -> 1x1 conv -> BN. The
    # depthwise convolution and its norm pass each channel on, so removing a filter of the
    # first conv removes the same channel there; what the removed channels still add after the
    # depthwise norm (a constant) moves into the statistics of the norm after the 1x1 conv.
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="first")(inputs)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization(name="first_norm")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization(name="depthwise_norm")(x))
    x = keras.layers.Conv2D(6, 1, use_bias=False, name="point")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="point_norm")(x))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(x)))
    kernel, bias = model.get_layer("first").get_weights()
    kernel[..., :3], bias[:3] = 0.0, 0.0
    model.get_layer("first").set_weights([kernel, bias])
    gamma, beta, mean, variance = model.get_layer("first_norm").get_weights()
    beta[:3] = -1.0  # channels 0-2 are zero after the ReLU: the depthwise conv sees nothing there
    model.get_layer("first_norm").set_weights([gamma, beta, mean, variance])
    gamma, beta, mean, variance = model.get_layer("depthwise_norm").get_weights()
    beta[:3] = [0.5, 1.0, 2.0]  # ... and its norm turns that into constants the 1x1 conv reads
    model.get_layer("depthwise_norm").set_weights([gamma, beta, mean, variance])
    kernel = model.get_layer("point").get_weights()[0]
    model.get_layer("point").set_weights([np.abs(kernel) + 0.01])  # positive inputs, positive weights: alive
    x = RNG.random(size=(64, 8, 8, 1)).astype("float32")
    small, plan = slim(model, x, ratio=0.0)
    assert plan.widths == {"first": (8, 5)}
    assert small.get_layer("depthwise").get_weights()[0].shape == (3, 3, 5, 1)
    assert small.get_layer("point").get_weights()[0].shape == (1, 1, 5, 6)
    assert max_difference(small.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-4
    assert small.count_params() < model.count_params()


def test_residual_adds_tie_their_widths():
    inputs = keras.Input((16,))
    stem = keras.layers.Dense(32, activation="relu", name="stem")(inputs)
    branch = keras.layers.Dense(32, activation="relu", name="branch")(stem)
    merged = keras.layers.Add(name="add")([stem, keras.layers.Dense(32, name="back")(branch)])
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(merged))
    small, plan = slim(model, RNG.normal(size=(128, 16)).astype("float32"), ratio=0.5, multiple=8)
    assert plan.widths == {"stem": (32, 16), "branch": (32, 16), "back": (32, 16)}
    assert small.get_layer("out").get_weights()[0].shape == (16, 3)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_family_slims_and_still_runs(case):
    train, _, test = family_data(case, size=128)
    model = hypermodel(case).build(keras_tuner.HyperParameters())
    small, plan = slim(model, train[0], ratio=0.5)
    assert plan.widths, "nothing was removable"
    assert all(1 <= after <= (before + 1) // 2 for before, after in plan.widths.values())
    assert small.count_params() < model.count_params()
    assert small.predict(test[0][:8], verbose=0).shape == (8, 10)
    spec = kso.architecture_of(small)
    if spec is not None:  # a spec is kept only when it still describes the network
        assert spec.count_params() == small.count_params()


def test_a_transformer_winner_loses_heads_and_keeps_its_spec():
    train, _, test = family_data("transformer_rows", size=128)
    spec = kso.architecture_of(hypermodel("transformer_rows").build(keras_tuner.HyperParameters()))
    model = kso.space.render(spec.replace(options={"num_heads": 4}), keras)
    heads = 4
    small, plan = slim(model, train[0], ratio=0.5)
    assert set(plan.heads.values()) == {(heads, heads // 2)}  # every block, the same count
    spec = kso.architecture_of(small)
    assert spec is not None and spec.option("num_heads") == heads // 2
    assert spec.count_params() == small.count_params() < model.count_params()
    assert small.predict(test[0][:8], verbose=0).shape == (8, 10)


def test_a_plain_dense_winner_keeps_its_spec_through_saving_and_fine_tunes(tmp_path, digits):
    model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=64).build(
        keras_tuner.HyperParameters()
    )
    model.fit(*digits.train, epochs=5, verbose=0)
    small, _ = slim(model, digits.train[0], ratio=0.5, train_data=digits.train, epochs=3)
    assert kso.architecture_of(small).widths == (32, 32)
    assert type(small.optimizer).__name__ == "Adam" and small.evaluate(*digits.test, verbose=0)[1] > 0.85
    small.save(tmp_path / "small.keras")
    assert kso.architecture_of(keras.models.load_model(tmp_path / "small.keras")).widths == (32, 32)


@pytest.mark.parametrize("name", ["sequential_cnn", "residual_cnn", "lstm_text", "attention_encoder"])
def test_user_models_slim(name):
    model = MODELS[name][0]()
    train, _, test = data_for(name, train_size=128, test_size=8)
    small, plan = slim(model, train[0], ratio=0.5)
    assert plan.removed_fraction == pytest.approx(0.5, abs=0.05)
    assert small.count_params() < model.count_params()
    assert small.predict(test[0], verbose=0).shape == (8, 10)
    assert kso.bridge.unsupported_layers(small) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 2}, r"Expected train_data=\(x, y\) and a compiled model to fine-tune the slimmed model on"),
        ({"ratio": 1.0}, r"Expected ratio to be a float with 0 <= ratio < 1\. Received: ratio=1\.0\."),
        ({"multiple": 0}, r"Expected multiple to be an int >= 1\. Received: multiple=0\."),
        ({"min_units": -2}, r"Expected min_units to be an int >= 1\. Received: min_units=-2\."),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        slim(MODELS["sequential_cnn"][0](), np.zeros((4, 8, 8, 1), "float32"), **kwargs)
