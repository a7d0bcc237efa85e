"""tf.distribute and mixed precision through keras-structopt's tuners: checked on the models that train."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import keras_tuner
import pytest
import tensorflow as tf

import keras_structopt as kso
from tests.conftest import REPOSITORY

# Logical devices must be configured before TensorFlow starts its runtime: a fresh process.
MIRRORED_SEARCH = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, keras_tuner
    import keras_structopt as kso
    from keras_structopt.data import load_digits_split

    directory, probe_file = sys.argv[1], sys.argv[2]

    class Probe(keras.callbacks.Callback):  # what the model that trains really uses
        def on_train_begin(self, logs=None):
            layer = self.model.get_layer("block_0_dense")
            with open(probe_file, "a") as f:
                f.write(json.dumps({
                    "replicas": self.model.distribute_strategy.num_replicas_in_sync,
                    "mirrored": isinstance(layer.kernel.value, tf.distribute.DistributedValues),
                    "policy": layer.dtype_policy.name, "compute": layer.compute_dtype,
                    "variables": str(layer.kernel.dtype), "output": str(self.model.outputs[0].dtype)}) + "\\n")

    data = load_digits_split("flat", seed=0)
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[16, 32], connection="plain",
                             learning_rate=1e-2, seed=0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    search = kso.search.tuner(keras_tuner.RandomSearch, hm, objective="val_accuracy", max_trials=2, seed=1,
                              distribution_strategy=strategy, dtype_policy="mixed_bfloat16", directory=directory,
                              project_name="mirrored")
    search.search(*data.train, validation_data=data.validation, epochs=3, batch_size=64, verbose=0,
                  callbacks=[Probe()])
    best = search.get_best_models(1)[0]
    bridged = kso.to_tf_keras(best)
    x = data.test[0][:200]
    print(json.dumps({
        "score": float(search.oracle.get_best_trials(1)[0].score), "policy_after": keras.config.dtype_policy().name,
        "best_replicas": best.distribute_strategy.num_replicas_in_sync,
        "best_policy": best.get_layer("block_0_dense").dtype_policy.name,
        "bridge_difference": float(np.abs(bridged.predict(x, verbose=0) - best.predict(x, verbose=0)).max()),
    }))
""")


@pytest.mark.slow
def test_a_search_under_mirrored_strategy_and_mixed_bfloat16_really_uses_both(tmp_path):
    script, probes = tmp_path / "search.py", tmp_path / "probes.jsonl"
    script.write_text(MIRRORED_SEARCH)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPOSITORY)
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(probes)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads(line) for line in probes.read_text().splitlines()]
    assert len(seen) == 2  # both trials, as they trained
    for probe in seen:
        assert probe == {"replicas": 2, "mirrored": True, "policy": "mixed_bfloat16", "compute": "bfloat16",
                         "variables": "float32", "output": "float32"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["score"] > 0.8  # it learns in bfloat16 over two replicas
    assert result["policy_after"] == "float32"  # the process's policy is left as it was
    assert result["best_replicas"] == 2 and result["best_policy"] == "mixed_bfloat16"
    # the float32 bridge of a bfloat16-trained model: the same weights, float32 arithmetic
    assert result["bridge_difference"] < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtype_policy": "float16"}, r"Expected dtype_policy to be one of \['float32', 'mixed_float16', "
                                      r"'mixed_bfloat16'\]\. Received: dtype_policy='float16'"),
        ({"jit_compile": "xla"}, r'Expected jit_compile to be True, False or "auto"\. Received: jit_compile=\'xla\''),
        ({"jit_compile": True, "distribution_strategy": tf.distribute.OneDeviceStrategy("/cpu:0")},
         r"Expected jit_compile=False or \"auto\" with a distribution_strategy.*Received: jit_compile=True and "
         r"distribution_strategy=OneDeviceStrategy\."),
    ],
)
def test_bad_precision_and_xla_settings_are_explained(tmp_path, kwargs, message):
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10)
    with pytest.raises(kso.ConfigurationError, match=message):
        kso.search.tuner(keras_tuner.RandomSearch, hm, objective="val_accuracy", directory=tmp_path,
                         project_name="bad", **kwargs)


def test_a_policy_set_around_each_build_survives_keras_tuners_clear_session(tmp_path):
    hm = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=8, seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hm, objective="val_accuracy", max_trials=1,
                              dtype_policy="mixed_float16", jit_compile=False, directory=tmp_path,
                              project_name="policy")
    model = search._try_build(keras_tuner.HyperParameters())  # clears the session first, as a trial does
    assert model.get_layer("block_0_dense").dtype_policy.name == "mixed_float16"
    assert model.get_layer("float32_output").compute_dtype == "float32" and model.jit_compile is False
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"  # float16 needs loss scaling; Keras adds it
    assert keras.config.dtype_policy().name == "float32"
