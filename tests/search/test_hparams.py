"""Each trial's structure in TensorBoard's HParams, read back from the event files."""

import keras
import keras_tuner
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

import keras_structopt as kso
from keras_structopt.data import load_digits_split


def read_run(run):
    """The HParams values and the scalar summaries of one run directory."""
    hparams, scalars = {}, {}
    for path in sorted(run.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                    if data.HasField("session_start_info"):
                        for name, item in data.session_start_info.hparams.items():
                            kind = item.WhichOneof("kind")
                            hparams[name] = getattr(item, kind)
                elif value.HasField("tensor"):
                    scalars[value.tag] = float(tf.make_ndarray(value.tensor))
    return hparams, scalars


def test_every_trial_structure_and_metrics_are_read_back_from_the_event_files(tmp_path):
    data = load_digits_split(seed=0)
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 2), units=[8, 16],
                                     connection=["plain", "residual"], seed=0)
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=2, seed=4,
                             directory=tmp_path, project_name="p")
    logs = tmp_path / "logs"
    tuner.search(data.train[0][:300], data.train[1][:300], validation_data=data.validation, epochs=1, verbose=0,
                 callbacks=[keras.callbacks.TensorBoard(str(logs))])
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    assert sorted(p.name for p in (logs / "structure").iterdir()) == sorted(t.trial_id for t in trials)
    for trial in trials:
        hparams, scalars = read_run(logs / "structure" / trial.trial_id)
        spec = hypermodel.architecture(trial.hyperparameters.copy())
        assert hparams["family"] == "dense" and hparams["depth"] == spec.num_blocks
        assert hparams["widths"] == ",".join(map(str, spec.widths)) and hparams["connection"] == spec.connection
        assert hparams["params"] == spec.count_params() and hparams["macs"] == spec.count_macs()
        assert hparams["learning_rate"] == pytest.approx(trial.hyperparameters.get("learning_rate"))
        assert scalars["val_accuracy"] == pytest.approx(trial.metrics.get_best_value("val_accuracy"), abs=1e-6)
    # Keras Tuner's own logs are still written beside ours.
    assert any(p.name != "structure" for p in logs.iterdir())
