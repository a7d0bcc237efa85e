"""Bad input, table-driven: each row is rejected before any training, with a message that names
the argument, the value received and what is accepted, and leaves no file behind."""

import json
import re

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_structopt as kso
from keras_structopt._cli import main
from keras_structopt.compress import Cluster, Prune, Quantize, Slim

X = np.random.default_rng(0).random((64, 64)).astype("float32")
Y = np.arange(64) % 10
DENSE = dict(input_shape=(64,), outputs=10)


def tiny_model():
    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def lambda_model():
    inputs = keras.Input((64,))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    return keras.Model(inputs, outputs)


def search(tmp, *fit_args, tuner_kwargs=None, **fit_kwargs):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(**DENSE), objective="val_accuracy",
                             max_trials=1, directory=tmp / "search", project_name="p", **(tuner_kwargs or {}))
    fit_kwargs.setdefault("epochs", 1)
    tuner.search(*fit_args, **fit_kwargs)


def search_regression(tmp, x, y):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(input_shape=(64,), outputs=1, task="regression"),
                             objective="val_loss", max_trials=1, directory=tmp / "search", project_name="p")
    tuner.search(x, y, validation_data=(x, y), epochs=1)


def search_binary(tmp, x, y):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(input_shape=(64,), outputs=1, task="binary"),
                             objective="val_loss", max_trials=1, directory=tmp / "search", project_name="p")
    tuner.search(x, y, validation_data=(x, y), epochs=1)


def make_tuner(tmp, **kwargs):
    return kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(**DENSE), objective="val_accuracy",
                            max_trials=1, directory=tmp / "search", project_name="p", **kwargs)


def compress(tmp, **kwargs):
    kso.compress(tiny_model(), (X, Y), validation_data=(X, Y), **kwargs)


def write(relative, content):
    """A setup step: a file the user already has."""
    def setup(tmp):
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return setup


def cli(tmp, *flags):
    command("run", "--out", str(tmp / "out"), *flags)


def command(*argv):
    raise SystemExit(main(list(argv)))


NAN_X = X.copy()
NAN_X[3, 7] = np.nan
DATASET = tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)

KFOLD = __import__("sklearn.model_selection").model_selection.KFold(3)
ROWS = [
    # HyperModels: the space
    ("num_layers zero", None, lambda t: kso.DenseHyperModel(**DENSE, num_layers=0), "Expected num_layers to be an int >= 1.*Received: num_layers=0"),
    ("units range reversed", None, lambda t: kso.DenseHyperModel(**DENSE, units=(256, 16)), r"Expected units.*Received: units=\(256, 16\)"),
    ("dropout above 1", None, lambda t: kso.DenseHyperModel(**DENSE, dropout=1.5), r"Expected dropout.*Received: dropout=1\.5"),
    ("unknown connection", None, lambda t: kso.DenseHyperModel(**DENSE, connection="sideways"), r"Expected connection.*Received: connection='sideways'"),
    ("learning rate above 1", None, lambda t: kso.DenseHyperModel(**DENSE, learning_rate=5.0), r"Expected learning_rate to be a float >= 1e-07 and <= 1\.0.*Received: learning_rate=5\.0"),
    ("input shape with zero", None, lambda t: kso.DenseHyperModel(input_shape=(0,), outputs=10), r"Expected input_shape to be a non-empty tuple of ints >= 1.*Received: input_shape=\(0,\)"),
    ("outputs zero", None, lambda t: kso.DenseHyperModel(input_shape=(64,), outputs=0), r"Expected outputs.*Received: outputs=0"),
    ("unknown task", None, lambda t: kso.DenseHyperModel(**DENSE, task="ranking"), r"Expected task to be one of .*Received: task='ranking'"),
    ("negative seed", None, lambda t: kso.DenseHyperModel(**DENSE, seed=-1), r"Expected seed to be an int >= 0.*Received: seed=-1"),
    ("unknown optimizer", None, lambda t: kso.DenseHyperModel(**DENSE, optimizer="adamm"), r"Expected optimizer to be a Keras optimizer name among .*Received: optimizer='adamm'"),
    ("optimizer choice with an object", None, lambda t: kso.DenseHyperModel(**DENSE, optimizer=["adam", 3]), r"Expected optimizer.*Received: optimizer=\['adam', 3\]"),
    ("unknown loss", None, lambda t: kso.DenseHyperModel(**DENSE, loss="hinge_of_fate"), r"Expected loss to be None.*Received: loss='hinge_of_fate'"),
    ("unknown metric", None, lambda t: kso.DenseHyperModel(**DENSE, metrics=["accuracy", "recal"]), r"Expected metrics.*Received: 'recal' in metrics=\['accuracy', 'recal'\]"),
    ("metrics not a list", None, lambda t: kso.DenseHyperModel(**DENSE, metrics="auc"), r"Expected metrics to be None .*a non-empty list.*Received: 'auc'"),
    ("conv input of rank 1", None, lambda t: kso.ConvHyperModel(input_shape=(64,), outputs=10), r"Expected input_shape.*Received: input_shape=\(64,\)"),
    ("unknown recurrent cell", None, lambda t: kso.RecurrentHyperModel(input_shape=(8, 8), outputs=10, cell="rnn"), r"Expected cell.*Received: cell='rnn'"),
    # Search data: checked before the first trial
    ("x of the wrong shape", None, lambda t: search(t, X[:, :63], Y, validation_data=(X, Y)), r"Expected x of shape \(batch, 64\).*Received: x\.shape=\(64, 63\)"),
    ("labels out of range", None, lambda t: search(t, X, Y + 1, validation_data=(X, Y)), r"Expected y to hold class ids in \[0, 9\].*Received: labels from 1 to 10"),
    ("NaN in the inputs", None, lambda t: search(t, NAN_X, Y, validation_data=(X, Y)), r"Expected x to hold finite numbers\. Received: 1 NaN or inf values, the first at index \(3, 7\)"),
    ("empty data", None, lambda t: search(t, X[:0], Y[:0], validation_data=(X, Y)), r"Expected x to hold at least one example\. Received: x\.shape=\(0, 64\)"),
    ("fewer labels than examples", None, lambda t: search(t, X, Y[:10], validation_data=(X, Y)), r"Expected as many labels as examples\. Received: x with 64 examples and y with 10"),
    ("validation of the wrong shape", None, lambda t: search(t, X, Y, validation_data=(X[:, :8], Y)), r"Expected validation_data\[0\] of shape \(batch, 64\).*Received"),
    ("folds with validation_data", None, lambda t: search(t, X, Y, validation_data=(X, Y), tuner_kwargs={"folds": KFOLD}), r"Expected no validation_data with folds="),
    ("tf.data where folds need a length", None, lambda t: search(t, DATASET, tuner_kwargs={"folds": KFOLD}), r"a tf\.data\.Dataset has no known length to split"),
    # Search options
    ("folds not a splitter", None, lambda t: make_tuner(t, folds=5), r"Expected folds to be a scikit-learn splitter.*Received: folds=5"),
    ("unknown refit", None, lambda t: make_tuner(t, refit="last"), r"Expected refit to be one of \['all', 'best_fold'\]\. Received: refit='last'"),
    ("unknown cost", None, lambda t: make_tuner(t, cost="flops"), r"Expected cost to be one of \['params', 'macs'\]\. Received: cost='flops'"),
    ("negative cost weight", None, lambda t: make_tuner(t, cost="params", cost_weight=-1), r"Expected cost_weight to be a number >= 0\. Received: cost_weight=-1"),
    ("zero params budget", None, lambda t: make_tuner(t, max_params=0), r"Expected max_params to be an int >= 1\. Received: max_params=0"),
    ("median stopping not a rule", None, lambda t: make_tuner(t, median_stopping="yes"), r"Expected median_stopping to be a keras_structopt\.search\.MedianStopping.*Received: median_stopping='yes'"),
    ("isolated trials with folds", None, lambda t: make_tuner(t, isolate_trials=True, folds=KFOLD), r"Expected no folds with isolate_trials=True \(not carried into trial processes yet\)\. Received: folds=KFold"),
    ("isolated trials with a dataset", None, lambda t: search(t, DATASET, tuner_kwargs={"isolate_trials": True}), r"Expected numpy arrays for isolate_trials=True .*Received: x of type"),
    ("base not a tuner", None, lambda t: kso.search.tuner(int, kso.DenseHyperModel(**DENSE)), r"Expected base to be a Keras Tuner tuner class\. Received: base=<class 'int'>"),
    ("corrupted project directory", write("search/p/oracle.json", '{"ongoing_trials": {'), lambda t: make_tuner(t), r"Expected a project directory Keras Tuner can resume\. Received: .*oracle\.json', which cannot be read"),
    ("search directory under a file", write("f", ""), lambda t: make_tuner(t / "f" / "x"), r"Expected directory to be a directory that can be written \(or created\).*is a file, not a directory"),
    # Compression
    ("negative tolerance", None, lambda t: compress(t, max_accuracy_loss=-0.1), r"max_accuracy_loss.*Received: max_accuracy_loss=-0\.1"),
    ("unknown target", None, lambda t: compress(t, target="watch"), r"Expected target to be one of.*Received: target='watch'"),
    ("sparsity of one", None, lambda t: compress(t, recipe=[Prune(1.0)]), r"Expected sparsity to be a float with 0 <= sparsity < 1.*Received: sparsity=1\.0"),
    ("one cluster", None, lambda t: compress(t, recipe=[Cluster(1)]), r"Expected clusters.*Received: clusters=1"),
    ("m:n with m >= n", None, lambda t: compress(t, recipe=[Prune(m_by_n=(4, 2))]), r"Expected m_by_n.*Received: m_by_n=\(4, 2\)"),
    ("unknown quantization", None, lambda t: compress(t, recipe=[Quantize("int4")]), r"Expected mode to be one of.*Received: mode='int4'"),
    ("slim everything", None, lambda t: compress(t, recipe=[Slim(1.0)]), r"Expected ratio.*Received: ratio=1\.0"),
    ("unknown schedule", None, lambda t: compress(t, recipe=[Prune(schedule="cosine")]), r"Expected schedule to be .*Received: schedule='cosine'"),
    ("exclude an unknown layer", None, lambda t: compress(t, recipe=[Prune(exclude=("no_such_layer",))]), r"Expected layer names of the model in exclude / per_layer\. Received: \['no_such_layer'\]; the layers with weights are"),
    ("a recipe that is a name", None, lambda t: compress(t, recipe="mobile"), r"Expected recipe to be a list of stages .*Received: 'mobile'"),
    ("fine-tuning as a dict", None, lambda t: compress(t, fine_tuning={"prune_epochs": 2}), r"Expected fine_tuning to be a keras_structopt\.compress\.FineTuning\. Received: fine_tuning=\{'prune_epochs': 2\}"),
    ("training data of the wrong shape", None, lambda t: kso.compress(tiny_model(), (X[:, :8], Y), validation_data=(X, Y)), r"Expected train_data\[0\] of shape \(batch, 64\) to match the model's input\. Received: train_data\[0\]\.shape=\(64, 8\)"),
    ("compress labels out of range", None, lambda t: kso.compress(tiny_model(), (X, Y + 5), validation_data=(X, Y)), r"Expected train_data\[1\] to hold class ids in \[0, 9\] for the model's 10 outputs\. Received: labels from 5 to 14"),
    ("a width that cannot fit in memory", None, lambda t: kso.search.tuner(keras_tuner.RandomSearch, kso.DenseHyperModel(**DENSE, units=10**9), objective="val_accuracy", max_trials=1, max_params=10**6, directory=t / "search", project_name="p"), r"Expected a network whose training fits in this machine's memory \(.* GiB\)\. Received: a network of [\d,]+ parameters"),
    # Projects read back: resumed with their own settings, records that cannot be read named
    ("resume with another family", write("search/p/structopt-search.json", json.dumps({"hypermodel": {"class": "ConvHyperModel", "config": {}}})), lambda t: make_tuner(t), r"Expected the search's own settings to resume it\. Received: a search in .*p' started with HyperModel ConvHyperModel \(now DenseHyperModel\)"),
    ("resume with another space", write("search/p/structopt-search.json", json.dumps({"hypermodel": {"class": "DenseHyperModel", "config": {**kso.DenseHyperModel(**DENSE).get_config(), "units": 48}}})), lambda t: make_tuner(t), r"Expected the search's own settings to resume it\. Received: .* started with units=48 \(now \{'range': \[16, 256\]\}\)"),
    ("a search record that is not JSON", write("search/p/structopt-search.json", "{oops"), lambda t: make_tuner(t), r"Expected '.*structopt-search\.json' to hold the search's settings as keras-structopt wrote them\. Received: a file that cannot be read \(JSONDecodeError"),
    ("command: resume with another family", write("out/tuner/structopt-search.json", json.dumps({"hypermodel": {"class": "DenseHyperModel", "config": {}}})), lambda t: cli(t, "--resume", "--family", "conv", "--view", "image"), r"Expected the search's own settings to resume it\. Received: .* started with HyperModel DenseHyperModel \(now ConvHyperModel\)"),
    ("command: report of a report that is not JSON", write("out/report.json", "{half"), lambda t: command("report", str(t / "out"), "--out", str(t / "r")), r"Expected the run's report as keras-structopt wrote it\. Received: '.*report\.json', which cannot be read"),
    # Labels, checked for the task and the loss (search and compress)
    ("float labels for classes", None, lambda t: search(t, X, Y + 0.5, validation_data=(X, Y)), r"Expected y to hold integer class ids in \[0, 9\] for a 10-class model\. Received: float labels with fractional values \(for example 0\.5\)"),
    ("a regression target of three columns for one output", None, lambda t: search_regression(t, X, np.zeros((64, 3))), r"Expected y of shape \(n,\) or \(n, 1\) for a regression model with 1 output\. Received: y\.shape=\(64, 3\)"),
    ("NaN labels", None, lambda t: search(t, X, np.where(Y == 3, np.nan, Y), validation_data=(X, Y)), r"Expected y to hold finite labels\. Received: 7 NaN or inf labels of 64, the first at index \(3,\)"),
    ("one-hot labels for a sparse loss", None, lambda t: search(t, X, np.eye(10)[Y], validation_data=(X, Y)), r"Expected y to hold class ids \(one per example\) for a 10-class model\. Received: one-hot rows of shape \(64, 10\); pass y\.argmax\(axis=1\)"),
    ("string labels", None, lambda t: search(t, X, np.array(["cat", "dog"] * 32), validation_data=(X, Y)), r"Expected y to hold numeric labels for task='multiclass'\. Received: string labels \(for example 'cat'\)"),
    ("binary labels beyond one", None, lambda t: search_binary(t, X, Y), r"Expected y to hold class ids in \[0, 1\] for task='binary' with outputs=1\. Received: labels from 0 to 9"),
    ("validation labels of fractions", None, lambda t: search(t, X, Y, validation_data=(X, Y / 2)), r"Expected validation_data\[1\] to hold integer class ids in \[0, 9\].*float labels with fractional values"),
    ("compress float labels", None, lambda t: kso.compress(tiny_model(), (X, Y + 0.25), validation_data=(X, Y)), r"Expected train_data\[1\] to hold integer class ids in \[0, 9\] for a 10-class model\. Received: float labels"),
    ("compress NaN labels", None, lambda t: kso.compress(tiny_model(), (X, Y), validation_data=(X, np.where(Y == 0, np.nan, Y))), r"Expected validation_data\[1\] to hold finite labels\. Received: 7 NaN or inf labels of 64"),
    ("compress string labels", None, lambda t: kso.compress(tiny_model(), (X, np.array(["a", "b"] * 32)), validation_data=(X, Y)), r"Expected train_data\[1\] to hold numeric labels for task='multiclass'\. Received: string labels"),
    ("compress one-hot labels for a sparse loss", None, lambda t: kso.compress(tiny_model(), (X, np.eye(10)[Y]), validation_data=(X, Y)), r"Expected train_data\[1\] to hold class ids \(one per example\) for a 10-class model\. Received: one-hot rows"),
    ("a Lambda layer", None, lambda t: kso.compress(lambda_model(), (X, Y), validation_data=(X, Y)), r"Expected a Keras 3 Sequential or functional model of standard layers\. Received: model .* 1 layer\(s\) the bridge cannot carry into tf_keras:(.|\n)*Lambda"),
    # Exports
    ("an existing SavedModel version", write("models/digits/1/saved_model.pb", "mine"), lambda t: kso.export_saved_model(tiny_model(), t / "models", "digits", version=1), r"Expected a new version\. Received: version=1, but .* exists"),
    ("a model name with a path", None, lambda t: kso.export_saved_model(tiny_model(), t / "models", "a/b"), r"Expected name to be a model name .*Received: name='a/b'"),
    ("an existing TFLite file", write("m.tflite", "mine"), lambda t: kso.export_tflite(tiny_model(), t / "m.tflite"), r"Expected path to be a new file\. Received: path=.*m\.tflite', which exists; pass overwrite=True"),
    ("unknown TFLite quantization", None, lambda t: kso.export_tflite(tiny_model(), t / "m.tflite", quantization="int4"), r"Expected quantization to be one of.*Received: quantization='int4'"),
    ("int8 without calibration data", None, lambda t: kso.export_tflite(tiny_model(), t / "m.tflite", quantization="int8"), r"Expected representative_data .*Received: representative_data=None"),
    ("export under a file", write("file", "not a directory"), lambda t: kso.export_saved_model(tiny_model(), t / "file" / "models", "digits"), r"Expected directory to be a directory that can be written \(or created\)\. Received: directory=.*is a file, not a directory"),
    # Architectures
    ("unknown family", None, lambda t: kso.Architecture.from_dict({"version": 1, "family": "graph"}), r"family"),
    ("architecture JSON that is not JSON", None, lambda t: kso.Architecture.from_json("{not json"), r"Expected"),
    ("architecture of a future version", None, lambda t: kso.Architecture.from_dict({"version": 99, "family": "dense"}), r"Expected an architecture dict with version=1\. Received: version=99\."),
    # Transfer
    ("warm start from a missing project", None, lambda t: kso.search.warm_start(make_tuner(t), t / "nowhere"), r"Expected from_directory to be a Keras Tuner project directory \(holding oracle\.json\)\. Received: from_directory='.*nowhere'"),
    ("warm start of no structures", None, lambda t: kso.search.warm_start(make_tuner(t), t, top_k=0), r"Expected top_k to be an int >= 1\. Received: top_k=0"),
    # The command
    ("command: zero epochs", None, lambda t: cli(t, "--epochs", "0"), r"Expected --epochs to be an int >= 1\. Received: --epochs=0"),
    ("command: --out is a file", write("out", ""), lambda t: cli(t), r"Expected --out to be a directory that can be written \(or created\)\. Received: --out=.*is a file"),
    ("command: resume a corrupted search", write("out/tuner/oracle.json", "garbage"), lambda t: cli(t, "--resume"), r"Expected a project directory Keras Tuner can resume\. Received: .*oracle\.json', which cannot be read"),
    ("command: unknown view", None, lambda t: cli(t, "--view", "sideways"), r"Expected --view to be one of \['flat', 'rows', 'image', 'tokens'\]\. Received: --view='sideways'"),
    ("command: a model name with a path", None, lambda t: cli(t, "--name", "../digits"), r"Expected --name to be a model name of letters, digits, '\.', '_' and '-' \(no path separators\)\. Received: --name='\.\./digits'\."),
    ("command: a model name ending in a newline", None, lambda t: cli(t, "--name", "digits\n"), r"Expected --name to be a model name of letters, digits.*Received: --name='digits\\n'\."),
    ("command: a model name that is the tuner's folder", None, lambda t: cli(t, "--name", "tuner"), r"Expected --name to differ from the output directory's own folders \['tuner', 'tflite', 'worker-logs', 'report'\].*Received: --name='tuner'\."),
    ("command: an empty --out", None, lambda t: command("run", "--out", ""), r"Expected --out to name a directory\. Received: --out='' \(an empty path\)\."),
    ("command: more workers than cores", None, lambda t: cli(t, "--workers", "100000"), r"Expected --workers to be an int from 0 to \d+ \(this machine's CPU cores: each worker is a process that trains\)\. Received: --workers=100000\."),
    ("export: a name ending in a newline", None, lambda t: kso.export_saved_model(tiny_model(), t / "models", "digits\n"), r"Expected name to be a model name of letters, digits.*Received: name='digits\\n'\."),
    ("command: prune epochs zero", None, lambda t: cli(t, "--max-accuracy-loss", "none", "--prune-epochs", "0"), r"Expected --prune-epochs to be an int >= 1\. Received: --prune-epochs=0"),
    ("command: sparsity above one", None, lambda t: cli(t, "--sparsity", "1.5"), r"Expected --sparsity to be a float with 0 <= --sparsity < 1\. Received: --sparsity=1\.5\."),
    ("command: one cluster", None, lambda t: cli(t, "--clusters", "1"), r"Expected --clusters to be an int in \[2, 256\]\. Received: --clusters=1\."),
    ("command: unknown quantization", None, lambda t: cli(t, "--quantization", "int4"), r"Expected --quantization to be one of \['none', 'dynamic', 'float16', 'int8', 'qat'\]\. Received: --quantization='int4'\."),
    ("command: a tolerance that is no number", None, lambda t: cli(t, "--max-accuracy-loss", "abc"), r"Expected --max-accuracy-loss to be a number in \[0, 1\) or 'none'\. Received: --max-accuracy-loss='abc'\."),
    ("command: a tfds split for the digits", None, lambda t: cli(t, "--split", "train,test,test"), r"Expected no --split with --dataset='digits' \(it is for tensorflow-datasets data; .*Received: --split='train,test,test'\."),
    ("command: a tfds label for the digits", None, lambda t: cli(t, "--label", "y"), r"Expected no --label with --dataset='digits' .*Received: --label='y'\."),
    ("command: slim everything", None, lambda t: cli(t, "--slim", "1"), r"Expected --slim to be a float with 0 <= --slim < 1\. Received: --slim=1\.0\."),
]


def _files(directory):
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in directory.rglob("*") if p.is_file()}


def test_the_tables_hold_at_least_a_hundred_bad_inputs():
    assert len(ROWS) + len(JOB_ROWS) >= 100 and len({row[0] for row in ROWS + JOB_ROWS}) == len(ROWS) + len(JOB_ROWS)


@pytest.mark.parametrize("name, setup, call, message", ROWS, ids=[row[0] for row in ROWS])
def test_bad_input_is_rejected_before_any_training_and_leaves_no_file(tmp_path, capsys, monkeypatch, name, setup,
                                                                      call, message):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    import tf_keras

    monkeypatch.setattr(keras.Model, "fit", no_training)
    monkeypatch.setattr(tf_keras.Model, "fit", no_training)  # compression fine-tunes tf_keras copies
    if setup is not None:
        setup(tmp_path)
    before = _files(tmp_path)
    folders = sorted(tmp_path.rglob("*"))
    with pytest.raises((kso.ConfigurationError, kso.UnsupportedModelError, FileExistsError, SystemExit)) as caught:
        call(tmp_path)
    text = str(caught.value)
    if caught.type is SystemExit:
        assert caught.value.code == 2
        text = capsys.readouterr().err
    assert re.search(message, text), text
    assert _files(tmp_path) == before  # no file appeared, none of the user's changed
    if name.startswith("command"):  # the command leaves no empty --out behind either
        assert sorted(tmp_path.rglob("*")) == folders, sorted(set(tmp_path.rglob("*")) - set(folders))
        assert "Traceback" not in text


# The command's job files: the rows above cover flags; these cover `--job`.
JOB_ROWS = [
    ("job file that is not JSON", "{family: conv", r"Expected --job to hold JSON\. Received: --job='.*job\.json', which does not parse"),
    ("job file holding a list", "[1, 2]", r"Expected --job to hold a JSON object of settings\. Received: a JSON list"),
    ("job with an unknown key", '{"colour": "red"}', r"Expected the keys of --job among \[.*'family'.*\]\. Received: 'colour'"),
    ("job with a string for trials", '{"trials": "many"}', r"Expected trials in --job to be an integer\. Received: trials='many'\."),
    ("job with a bad tuner", '{"tuner": "sideways"}', r"Expected --tuner to be one of \['random', 'grid', 'bayesian', 'hyperband'\]\. Received: --tuner='sideways'\."),
    ("job with a number for resume", '{"resume": 1}', r"Expected resume in --job to be true or false\. Received: resume=1\."),
]


@pytest.mark.parametrize("name, text, message", JOB_ROWS, ids=[row[0] for row in JOB_ROWS])
def test_a_bad_job_file_is_rejected_before_any_work(tmp_path, capsys, name, text, message):
    (tmp_path / "job.json").write_text(text)
    before = _files(tmp_path)
    assert main(["run", "--job", str(tmp_path / "job.json"), "--out", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert _files(tmp_path) == before


def test_a_job_file_sets_the_flags_and_flags_given_win(tmp_path):
    from keras_structopt._cli import parse_run

    (tmp_path / "job.json").write_text(json.dumps({"family": "conv", "trials": 4, "max_accuracy_loss": "none",
                                                    "clusters": 8, "quiet": True}))
    args = parse_run(["run", "--job", str(tmp_path / "job.json"), "--trials", "2", "--out", str(tmp_path / "o")])
    assert (args.family, args.trials, args.max_accuracy_loss, args.clusters, args.quiet) == ("conv", 2, None, 8, True)
