"""tf.data and tensorflow-datasets in, offline: the same results as the equivalent numpy input."""

import json

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_structopt as kso
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize
from keras_structopt.data import load_tfds
from keras_structopt.export import tflite_predict


def test_load_tfds_reads_a_stored_mnist_through_the_real_builder(stored_mnist):
    split = load_tfds("mnist", data_dir=stored_mnist)
    assert split.input_shape == (28, 28, 1) and split.num_classes == 10
    assert [len(part[1]) for part in (split.train, split.validation, split.test)] == [1150, 287, 360]
    x = split.train[0]
    assert x.dtype == np.float32 and x.min() == 0.0 and 0.9 < x.max() <= 1.0  # scaled as the tfds guides do
    raw = tfds.load("mnist", data_dir=stored_mnist, split="train[:80%]", as_supervised=True, download=False)
    first_image, first_label = next(iter(raw.as_numpy_iterator()))
    np.testing.assert_allclose(x[0], first_image / 255.0, atol=1e-7)
    assert split.train[1][0] == first_label


def test_a_dataset_without_supervised_keys_uses_its_class_label(stored_mnist):
    split = load_tfds("digits_pixels", data_dir=stored_mnist, split=("train[:50%]", "train[50%:]", "test"))
    assert split.input_shape == (64,) and split.num_classes == 10 and len(split.test[1]) == 360
    with pytest.raises(kso.ConfigurationError, match=r"Expected label to be one of the dataset's features \[.*\]\. Received: label='colour'"):
        load_tfds("digits_pixels", data_dir=stored_mnist, label="colour")
    with pytest.raises(kso.ConfigurationError, match=r"Expected a tfds dataset that is available offline .* Received: name='no_such_set'"):
        load_tfds("no_such_set", data_dir=stored_mnist)


def test_load_tfds_pipelines_are_batched_shuffled_and_prefetched(stored_mnist):
    split = load_tfds("mnist", data_dir=stored_mnist, as_dataset=True, batch_size=64, seed=3)
    x, y = next(iter(split.train))
    assert tuple(x.shape) == (64, 28, 28, 1) and x.dtype == tf.float32 and tuple(y.shape) == (64,)
    again = next(iter(load_tfds("mnist", data_dir=stored_mnist, as_dataset=True, batch_size=64, seed=3).train))
    np.testing.assert_array_equal(y.numpy(), again[1].numpy())  # the seed fixes the shuffle


def _search(tmp_path, name, x, y=None, validation=None, input_shape=(64,), **fit):
    hypermodel = kso.DenseHyperModel(input_shape=input_shape, outputs=10, num_layers=(1, 2), units=[8, 16], seed=0)
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=1, seed=5,
                             directory=tmp_path, project_name=name)
    tuner.search(x, y, validation_data=validation, epochs=1, verbose=0, **fit)
    return sorted((json.dumps(t.hyperparameters.values, sort_keys=True), t.score) for t in tuner.oracle.trials.values())


def test_a_search_on_tfds_load_data_matches_the_same_search_on_arrays(stored_mnist, tmp_path):
    """tfds.load pipelines, batched and unbatched (then batched by the HyperModel), give the trial
    and score that the same examples as numpy arrays give (unshuffled, the same batch size)."""
    def scaled(image, label):
        return tf.cast(image, tf.float32) / 255.0, label

    def loaded(split):
        return tfds.load("mnist", split=split, data_dir=stored_mnist, as_supervised=True, download=False).map(scaled)

    arrays = load_tfds("mnist", data_dir=stored_mnist, split=("train[:256]", "train[256:384]", "test[:8]"))
    shape = dict(input_shape=(28, 28, 1))
    from_arrays = _search(tmp_path, "arrays", *arrays.train, validation=arrays.validation, batch_size=32,
                          shuffle=False, **shape)
    batched = _search(tmp_path, "batched", loaded("train[:256]").batch(32),
                      validation=loaded("train[256:384]").batch(32), **shape)
    unbatched = _search(tmp_path, "unbatched", loaded("train[:256]"), validation=loaded("train[256:384]"),
                        batch_size=32, **shape)
    assert [v for v, _ in from_arrays] == [v for v, _ in batched] == [v for v, _ in unbatched]
    for (_, a), (_, b), (_, c) in zip(from_arrays, batched, unbatched):
        assert a == pytest.approx(b, abs=1e-6) and a == pytest.approx(c, abs=1e-6)


def test_a_dataset_of_the_wrong_shape_is_refused_before_any_trial(tmp_path):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=1,
                             directory=tmp_path, project_name="p")
    wrong = tf.data.Dataset.from_tensor_slices((np.zeros((8, 32), "float32"), np.zeros(8, "int32"))).batch(4)
    with pytest.raises(kso.ConfigurationError, match=r"Expected x's examples of shape \(64,\) to match input_shape=\(64,\) \(batched or not\)\. Received: a dataset whose x has shape \(None, 32\)"):
        tuner.search(wrong, epochs=1, verbose=0)
    dicts = tf.data.Dataset.from_tensor_slices({"image": np.zeros((8, 64), "float32")})
    with pytest.raises(kso.ConfigurationError, match=r"Expected x to be a tf.data.Dataset of \(x, y\) pairs"):
        tuner.search(dicts, epochs=1, verbose=0)
    assert not list((tmp_path / "p").glob("trial_*"))


@pytest.mark.slow
def test_compress_and_exports_on_tfds_and_tf_data_match_numpy(stored_mnist, tmp_path):
    split = load_tfds("digits_pixels", data_dir=stored_mnist)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(24, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*split.train, epochs=10, verbose=0)
    settings = dict(recipe=[Prune(0.5), Cluster(8), Quantize("int8")], max_accuracy_loss=None,
                    fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1), measure_latency=False)

    def ship(name, train, validation, test):
        keras.utils.set_random_seed(0)
        small, result = kso.compress(model, train, validation_data=validation, test_data=test, **settings)
        saved = kso.export_saved_model(small, tmp_path / name, "m")
        lite = kso.export_tflite(small, tmp_path / name / "m.tflite", quantization="int8", representative_data=train)
        return result.report, saved, lite

    arrays = ship("numpy", split.train, split.validation, split.test)
    pipelines = load_tfds("digits_pixels", data_dir=stored_mnist, as_dataset=True, batch_size=32)
    ordered_train = tf.data.Dataset.from_tensor_slices(split.train).batch(32)  # the same order as the arrays
    datasets = ship("datasets", ordered_train, pipelines.validation, pipelines.test)
    for a, b in zip(arrays[0].stages, datasets[0].stages):
        assert a.name == b.name and a.metrics == pytest.approx(b.metrics, abs=1e-6)
        assert a.tflite_gzip_bytes == b.tflite_gzip_bytes
    # The same predictions from both int8 files (training is seeded; TensorFlow's CPU kernels
    # may still sum in another order, so the files are compared by what they compute).
    x_test = split.test[0]
    from_arrays = tflite_predict(arrays[2].read_bytes(), x_test)
    from_datasets = tflite_predict(datasets[2].read_bytes(), x_test)
    assert np.mean(from_arrays.argmax(1) == from_datasets.argmax(1)) >= 0.99
    assert np.abs(from_arrays - from_datasets).max() <= 0.05
    assert (datasets[1] / "saved_model.pb").is_file()
    baseline = arrays[0].baseline.metrics["accuracy"]
    assert baseline > 0.85 and arrays[0].final.metrics["accuracy"] >= baseline - 0.1
