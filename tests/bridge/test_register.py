"""A user's own layer class: refused with the call to write, then carried by `kso.bridge.register`."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from keras import ops

import keras_structopt as kso
from keras_structopt.bridge._registry import unregister
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Slim
from keras_structopt.export import tflite_predict


class GatedLinearUnit(keras.layers.Layer):
    """A gated linear unit with its own weights: `(x W + b)[:units] * sigmoid((x W + b)[units:])`."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), 2 * self.units),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(2 * self.units,), initializer="zeros")

    def call(self, x):
        linear, gate = ops.split(ops.matmul(x, self.kernel) + self.bias, 2, axis=-1)
        return linear * ops.sigmoid(gate)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class LegacyGatedLinearUnit(tf_keras.layers.Layer):
    """The same unit in tf_keras (TFMOT's Keras)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), 2 * self.units))
        self.bias = self.add_weight(name="bias", shape=(2 * self.units,), initializer="zeros")

    def call(self, x):
        linear, gate = tf.split(tf.matmul(x, self.kernel) + self.bias, 2, axis=-1)
        return linear * tf.sigmoid(gate)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    x = keras.layers.Dense(48, activation="relu", name="wide")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    x = GatedLinearUnit(16, name="glu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def unregistered():
    unregister(GatedLinearUnit)
    yield
    unregister(GatedLinearUnit)


def test_without_a_registration_the_error_names_the_layer_and_the_call_to_write(unregistered):
    with pytest.raises(kso.UnsupportedModelError) as caught:
        kso.to_tf_keras(_model())
    message = str(caught.value)
    assert "layer 'glu' (GatedLinearUnit)" in message
    assert "kso.bridge.register(GatedLinearUnit, to_tf_keras=" in message
    assert "@kso.bridge.register(to_tf_keras=...)" in message


@pytest.mark.parametrize("bad, message", [
    (dict(layer_class=int, to_tf_keras=LegacyGatedLinearUnit), "layer_class to be a keras.layers.Layer subclass"),
    (dict(layer_class=GatedLinearUnit, to_tf_keras=GatedLinearUnit), "to_tf_keras to be a tf_keras layer class"),
    (dict(layer_class=GatedLinearUnit, to_tf_keras=LegacyGatedLinearUnit, slim="width"), "slim"),
    (dict(layer_class=GatedLinearUnit, to_tf_keras=LegacyGatedLinearUnit, prune="kernel"), "prune to be a list"),
    (dict(layer_class=GatedLinearUnit, to_tf_keras=LegacyGatedLinearUnit, slim_width="units"), "slim_width"),
])
def test_a_bad_registration_is_refused_with_what_is_accepted(unregistered, bad, message):
    with pytest.raises(kso.ConfigurationError, match=message):
        kso.bridge.register(**bad)


def test_one_register_call_carries_a_custom_layer_through_compress_and_both_exports(unregistered, tmp_path):
    kso.bridge.register(GatedLinearUnit, to_tf_keras=LegacyGatedLinearUnit, prune=["kernel"], cluster=["kernel"])
    data = kso.data.load_digits_split("flat", seed=0)
    model = _model()
    model.fit(*data.train, epochs=3, batch_size=32, verbose=0)
    x_test = data.test[0]

    legacy = kso.to_tf_keras(model)
    assert type(legacy.get_layer("glu")).__name__ == "LegacyGatedLinearUnit"
    assert np.abs(legacy(x_test).numpy() - model.predict(x_test, verbose=0)).max() <= 1e-5

    small, result = kso.compress(model, data.train, test_data=data.test, recipe=[Slim(0.5), Prune(), Cluster(),
                                                                                 Quantize()],
                                 max_accuracy_loss=None,
                                 fine_tuning=FineTuning(slim_epochs=1, prune_epochs=1, cluster_epochs=1),
                                 measure_latency=False)
    glu = next(t for t in result.report.layers if t.layer == "glu")
    assert glu.pruned and glu.clustered  # TFMOT pruned and clustered the unit's kernel, as registered
    assert result.report.slimmed_widths == {"wide": (48, 24)}  # the unit is pinned: what it reads stays
    assert small.get_layer("glu").kernel.shape[1] == 32
    assert small.get_layer("hidden").units == 32  # the channels the unit reads are pinned
    assert result.report.final.kernel_sparsity >= 0.75
    expected = small.predict(x_test, verbose=0)

    version = kso.export_saved_model(small, tmp_path / "serving", "glu")
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    name = sorted(served.structured_input_signature[1])[0]
    assert np.abs(served(**{name: tf.constant(x_test)})["outputs"].numpy() - expected).max() <= 1e-4
    path = kso.export_tflite(small, tmp_path / "glu.tflite")
    answered = tflite_predict(path.read_bytes(), x_test)
    assert float(np.mean(answered.argmax(-1) == expected.argmax(-1))) >= 0.97

    model.save(tmp_path / "glu.keras")  # registered: it reloads with no custom_objects, and bridges again
    reloaded = keras.models.load_model(tmp_path / "glu.keras")
    assert type(reloaded.get_layer("glu")) is GatedLinearUnit
    assert np.abs(kso.to_tf_keras(reloaded)(x_test).numpy() - model.predict(x_test, verbose=0)).max() <= 1e-5


def test_the_decorator_form_and_a_channelwise_layer_slim_with_their_channels(tmp_path):
    @kso.bridge.register(to_tf_keras=lambda config: LegacyScale(**config), slim="channelwise")
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gamma

    class LegacyScale(tf_keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gamma

    try:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((64,))
        hidden = Scale(name="scale")(keras.layers.Dense(32, activation="relu", name="hidden")(inputs))
        model = keras.Model(inputs, keras.layers.Dense(10, name="head")(hidden))
        model.get_layer("scale").gamma.assign(np.linspace(0.5, 2.0, 32).astype("float32"))
        x = kso.data.load_digits_split("flat", seed=0).train[0]
        assert np.abs(kso.to_tf_keras(model)(x[:64]).numpy() - np.asarray(model(x[:64]))).max() <= 1e-5
        slimmed, plan = kso.slim(model, x, ratio=0.5)
        assert plan.widths == {"hidden": (32, 16)}
        gamma = np.asarray(slimmed.get_layer("scale").gamma)
        kept = plan.kept_out["hidden"]  # the hidden units kept: the scale keeps its own values for them
        np.testing.assert_allclose(gamma, np.linspace(0.5, 2.0, 32)[kept], rtol=1e-6)
        assert gamma.shape == (16,)
    finally:
        unregister(Scale)
