"""Transformer encoders as Keras users write them: heads removed whole, FFN units by importance,
then TFMOT's stages and both exports (the accuracy on a trained task: bench/encoders.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_structopt as kso
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Slim
from keras_structopt.export import tflite_predict
from tests.bridge.encoders import bert_style, ffn_parameters, vit_style


def _untrained_vit():
    keras.utils.set_random_seed(0)
    return vit_style((8, 8, 1), 10)


def test_a_head_that_adds_a_constant_is_removed_and_its_constant_kept():
    model = _untrained_vit()
    attention = model.get_layer("attention_1")
    value_kernel = attention._value_dense.kernel
    silenced = np.array(value_kernel.numpy())
    silenced[:, 2] = 0.0  # head 2 reads nothing: it adds its value bias, mixed by the output projection
    value_kernel.assign(silenced)
    value_bias = attention._value_dense.bias
    value_bias.assign(np.random.default_rng(1).normal(size=value_bias.shape).astype("float32"))
    x = kso.data.load_digits_split("image", seed=0).train[0][:128]

    slimmed, plan = kso.slim(model, x, ratio=0.0)

    assert plan.heads == {"attention_1": (4, 3)} and plan.widths == {}
    assert slimmed.get_layer("attention_1").num_heads == 3
    np.testing.assert_allclose(np.asarray(slimmed(x)), np.asarray(model(x)), atol=1e-5)


def test_the_least_important_heads_go_and_heads_follow_their_own_fraction():
    model = _untrained_vit()
    x = kso.data.load_digits_split("image", seed=0).train[0][:128]
    output = model.get_layer("attention_0")._output_dense.kernel
    scaled = np.array(output.numpy())
    scaled[0] *= 0.01  # head 0 of the first layer barely reaches the output
    scaled[3] *= 10.0  # head 3 dominates it
    output.assign(scaled)

    _, plan = kso.slim(model, x, ratio=0.5)
    _, quarter = kso.slim(model, x, ratio=0.5, heads=0.25)

    assert plan.heads == {"attention_0": (4, 2), "attention_1": (4, 2)}
    assert 0 not in plan.kept_heads["attention_0"] and 3 in plan.kept_heads["attention_0"]
    assert quarter.heads == {"attention_0": (4, 3), "attention_1": (4, 3)}
    assert list(quarter.kept_heads["attention_0"]) == [1, 2, 3]
    assert plan.widths == quarter.widths == {"ffn_in_0": (128, 64), "ffn_in_1": (128, 64)}


@pytest.mark.parametrize("heads", [1.0, -0.5, "half"])
def test_a_bad_heads_fraction_is_refused_naming_it(heads):
    with pytest.raises(kso.ConfigurationError, match="heads"):
        Slim(0.5, heads=heads)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "vit"])
def test_an_encoder_is_bridged_slimmed_compressed_and_exported(kind, tmp_path):
    data = kso.data.load_digits_split("tokens" if kind == "bert" else "image", seed=0)
    keras.utils.set_random_seed(0)
    model = bert_style(17, 64, 10) if kind == "bert" else vit_style((8, 8, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(*data.train, epochs=3, batch_size=32, verbose=0)
    x_test = data.test[0]
    expected = model.predict(x_test, verbose=0)
    assert np.abs(kso.to_tf_keras(model)(x_test).numpy() - expected).max() <= 1e-5

    small, result = kso.compress(model, data.train, test_data=data.test,
                                 recipe=[Slim(0.6, heads=0.25), Prune(), Cluster(), Quantize()],
                                 max_accuracy_loss=None,
                                 fine_tuning=FineTuning(slim_epochs=1, prune_epochs=1, cluster_epochs=1),
                                 measure_latency=False)

    report = result.report
    assert report.slimmed_heads == {"attention_0": (4, 3), "attention_1": (4, 3)}
    assert report.slimmed_widths == {"ffn_in_0": (128, 52), "ffn_in_1": (128, 52)}
    assert ffn_parameters(model) >= 2.4 * ffn_parameters(small)
    assert small.get_layer("attention_0").num_heads == 3
    assert {t.layer for t in report.layers if t.pruned} >= {"ffn_in_0", "ffn_out_0", "attention_0"}
    assert report.final.kernel_sparsity >= 0.75
    assert report.final.metrics["accuracy"] >= 0.5  # three epochs, then each stage's one: far above chance

    served_expected = small.predict(x_test, verbose=0)
    version = kso.export_saved_model(small, tmp_path / "serving", kind)
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    name = sorted(served.structured_input_signature[1])[0]
    answered = served(**{name: tf.constant(x_test)})["outputs"].numpy()
    assert np.abs(answered - served_expected).max() <= 1e-4
    path = kso.export_tflite(small, tmp_path / f"{kind}.tflite")
    choices = tflite_predict(path.read_bytes(), x_test).argmax(-1)
    assert float(np.mean(choices == served_expected.argmax(-1))) >= 0.97
