"""The bridge for any Keras 3 model: exact translation, and refusals that name every layer."""

from unittest import mock

import keras
import numpy as np
import pytest
import tf_keras

import keras_structopt as kso
from tests.bridge.user_models import MODELS, data_for, max_difference


@pytest.mark.parametrize("name", sorted(MODELS))
def test_user_models_translate_exactly_on_real_data(name):
    model = MODELS[name][0]()
    before = [w.copy() for w in model.get_weights()]
    legacy = kso.to_tf_keras(model)
    assert isinstance(legacy, tf_keras.Model)
    x = data_for(name, test_size=64)[2][0]
    assert max_difference(legacy.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert legacy.count_params() == model.count_params()


def test_shared_nested_model_stays_shared():
    legacy = kso.to_tf_keras(MODELS["two_input"][0]())
    towers = [layer for layer in legacy.layers if layer.name == "tower"]
    assert len(towers) == 1 and isinstance(towers[0], tf_keras.Sequential)
    assert len(towers[0]._inbound_nodes) == 2  # called on top and on bottom


def test_trained_weights_and_batch_statistics_are_carried(digits):
    model = MODELS["residual_cnn"][0]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    (x, y), _, (x_test, _) = data_for("residual_cnn", train_size=256, test_size=128)
    model.fit(x, y, epochs=1, verbose=0)
    legacy = kso.to_tf_keras(model)
    moving_mean = next(w for w in legacy.weights if "moving_mean" in w.name).numpy()
    assert np.abs(moving_mean).max() > 0  # trained statistics, not the initial zeros
    assert max_difference(legacy.predict(x_test, verbose=0), model.predict(x_test, verbose=0)) <= 1e-5


def test_tf_keras_model_passes_through():
    legacy = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    assert kso.to_tf_keras(legacy) is legacy


class Scale(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def test_every_unsupported_layer_is_named_before_any_training(digits):
    inputs = keras.Input((64,))
    x = keras.layers.Lambda(lambda t: t / 2.0, name="halve")(inputs)
    x = Scale(name="double")(x)
    inner = keras.Sequential([keras.Input((64,)), Scale(name="inner_scale")], name="inner")
    outputs = keras.layers.Dense(10, activation="softmax")(inner(x))
    model = keras.Model(inputs, outputs, name="odd")
    model.compile(loss="sparse_categorical_crossentropy")
    expected = [
        r"model 'odd' with 3 layer\(s\) the bridge cannot carry",
        r"layer 'halve' \(Lambda\): a Lambda layer holds Python code",
        r"layer 'double' \(Scale\): a custom layer class the bridge does not know; register it: "
        r"kso.bridge.register\(Scale, to_tf_keras=",
        r"layer 'inner/inner_scale' \(Scale\)",
    ]
    with mock.patch.object(tf_keras.Model, "fit") as fit:
        for call in (kso.to_tf_keras, lambda m: kso.compress(m, digits.train, validation_data=digits.validation)):
            with pytest.raises(kso.UnsupportedModelError) as raised:
                call(model)
            for pattern in expected:
                assert raised.match(pattern)
        fit.assert_not_called()
    assert kso.bridge.unsupported_layers(model)[0].startswith("layer 'halve' (Lambda)")


def test_operations_on_symbolic_tensors_are_named_or_replayed():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.ops.sin(inputs)))
    with pytest.raises(kso.UnsupportedModelError, match=r"\(Sin\): an operation applied directly to symbolic tensors"):
        kso.to_tf_keras(model)
    # arithmetic is replayed with the same TensorFlow operations (MobileNetV3 and ConvNeXt are written so)
    hidden = keras.layers.Dense(3)(inputs)
    joined = -(keras.ops.maximum(hidden * 3.0, 1.0) + hidden) / 6.0 - keras.ops.minimum(hidden, 0.5)
    model = keras.Model(inputs, keras.layers.Dense(2)(joined))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    assert max_difference(kso.to_tf_keras(model)(x).numpy(), np.asarray(model(x))) <= 1e-6


def test_subclassed_models_and_unbuilt_sequentials_are_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(kso.UnsupportedModelError, match=r"a subclassed model has no graph of layers to translate"):
        kso.to_tf_keras(Net())
    with pytest.raises(kso.UnsupportedModelError, match=r"it is not built; give it a keras.Input first"):
        kso.to_tf_keras(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(kso.UnsupportedModelError, match=r"Received: an object of type str"):
        kso.to_tf_keras("model.keras")


# The test builds a LayerNormalization with rms_scaling, an option Keras deprecates (and tf_keras lacks).
@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")
def test_options_tf_keras_lacks_are_refused_not_dropped():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.LayerNormalization(rms_scaling=True, name="rms")(inputs))
    with pytest.raises(kso.UnsupportedModelError, match=r"layer 'rms' \(LayerNormalization\): option rms_scaling=True"):
        kso.to_tf_keras(model)


def _chain(gain, depth=40, seed=0):
    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=gain / np.sqrt(32))
    layers = [keras.Input((32,))] + [keras.layers.Dense(32, activation="tanh", kernel_initializer=init)
                                     for _ in range(depth)]
    return keras.Sequential(layers)


@pytest.mark.parametrize("gain, says", [(4.0, "rounding noise"), (0.5, "please report this model")])
def test_a_failed_check_says_whether_the_model_itself_is_ill_conditioned(gain, says):
    from keras_structopt.bridge._bridge import verify
    from keras_structopt.bridge._graph import translate

    chaotic = gain > 1  # 40 tanh layers of gain 4 amplify any rounding; 2 of gain 0.5 do not
    model = _chain(gain, depth=40 if chaotic else 2)
    legacy = translate(model)
    assert verify(model, legacy) <= 1e-6  # the translation itself is exact
    bias = legacy.layers[0 if chaotic else -1].bias
    bias.assign(bias.numpy() + (1e-6 if chaotic else 1e-2))  # then one weight is nudged
    with pytest.raises(kso.UnsupportedModelError, match=says):
        verify(model, legacy)
