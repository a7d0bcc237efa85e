import keras
import keras_tuner
import numpy as np
import pytest
import tf_keras

import keras_structopt as kso
from tests.conftest import max_abs_difference


def test_trained_winner_bridges_exactly_on_real_data(digits):
    hm = kso.DenseHyperModel(
        input_shape=(64,), outputs=10, num_layers=3, units=[24], connection="dense",
        batch_norm=True, dropout=0.1, seed=0,
    )
    model = hm.build(keras_tuner.HyperParameters())
    model.fit(*digits.train, epochs=2, verbose=0)
    legacy = kso.to_tf_keras(model)
    assert isinstance(legacy, tf_keras.Model)
    assert [layer.name for layer in legacy.layers] == [layer.name for layer in model.layers]
    x = digits.test[0]
    assert max_abs_difference(legacy.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5
    assert kso.architecture_of(legacy) == kso.architecture_of(model)


def test_bridge_leaves_the_keras3_model_alone(digits):
    model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=8).build(
        keras_tuner.HyperParameters()
    )
    before = [w.copy() for w in model.get_weights()]
    legacy = kso.to_tf_keras(model)
    legacy.layers[1].set_weights([np.zeros_like(w) for w in legacy.layers[1].get_weights()])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_render_output_carries_its_spec():
    spec = kso.Architecture("dense", (4,), [kso.Block("dense", 8)], outputs=3)
    model = kso.render(spec, keras)
    assert kso.architecture_of(model) == spec
    legacy = kso.to_tf_keras(model)
    assert kso.architecture_of(legacy) == spec
    assert [layer.name for layer in legacy.layers] == [layer.name for layer in model.layers]


def test_explicit_architecture_for_a_rebuilt_model():
    spec = kso.Architecture("dense", (4,), [kso.Block("dense", 8)], outputs=3)
    model = keras.models.clone_model(kso.render(spec, keras))  # a clone has lost the spec
    assert kso.architecture_of(model) is None
    legacy = kso.to_tf_keras(model, architecture=spec)
    x = np.random.rand(3, 4).astype("float32")
    assert max_abs_difference(legacy(x), model(x)) <= 1e-6


def test_mismatched_architecture_is_refused():
    spec = kso.Architecture("dense", (4,), [kso.Block("dense", 8)], outputs=3)
    other = spec.replace(blocks=[kso.Block("dense", 9)])
    with pytest.raises(kso.UnsupportedModelError, match=r"Cannot copy weights of layer 'block_0_dense'"):
        kso.to_tf_keras(kso.render(spec, keras), architecture=other)
