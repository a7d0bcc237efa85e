"""Writes the notebooks other than the quickstart from their cells below (run it after editing them).

Each notebook has an "Open in Colab" badge and an install cell, runs on a CPU runtime in a
few minutes, and takes a small budget when KERAS_STRUCTOPT_NOTEBOOK_BUDGET=small (the test
suite sets it, and executes every notebook).

    python notebooks/make_notebooks.py
"""

from pathlib import Path

import nbformat

REPOSITORY = "keras-structopt/keras-structopt"
HERE = Path(__file__).parent

INSTALL = '''# On Colab, install keras-structopt first; run locally, this cell does nothing.
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic(
        "pip", "install -q 'keras-structopt @ git+https://github.com/keras-structopt/keras-structopt'"
    )'''

BUDGET = '''import os

# The test suite runs every notebook with a small budget; on Colab the budget is the real one.
SMALL = os.environ.get("KERAS_STRUCTOPT_NOTEBOOK_BUDGET", "full") == "small"
TRIALS, EPOCHS = (1, 1) if SMALL else (8, 15)'''


def badge(name: str) -> str:
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{name})")


FAMILIES = [
    ("md", "# Every family: convolutional, recurrent and transformer structures\n\n{badge}\n\n"
           "The same kind of arguments (a value is fixed, a list a choice, a `(min, max)` tuple a range) "
           "describe a CNN, an LSTM/GRU stack and a transformer encoder. Each HyperModel works with every "
           "Keras Tuner tuner, and its winner carries its `Architecture` into compression and export. "
           "Everything runs on scikit-learn's bundled digits, seen as images, as rows of pixels, or as "
           "pixel tokens."),
    ("code", INSTALL),
    ("code", BUDGET),
    ("code", '''import tempfile
from pathlib import Path

import keras
import keras_tuner

import keras_structopt as kso
from keras_structopt.data import load_digits_split

keras.utils.set_random_seed(0)
work = Path(tempfile.mkdtemp(prefix="structopt-families-"))


def search(hypermodel, data, name):
    tuner = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy",
                             max_trials=TRIALS, seed=1, directory=work, project_name=name)
    tuner.search(*data.train, validation_data=data.validation, epochs=EPOCHS, verbose=0)
    best = tuner.get_best_models(1)[0]
    spec = kso.architecture_of(best)
    accuracy = best.evaluate(*data.test, verbose=0)[1]
    print(f"{name}: depth {spec.num_blocks}, widths {spec.widths}, {spec.count_params():,} parameters, "
          f"test accuracy {accuracy:.4f}")
    return tuner, best'''),
    ("md", "## Convolutional: stages of blocks, filters per stage, block types"),
    ("code", '''images = load_digits_split("image", seed=0)  # (8, 8, 1)
conv = kso.ConvHyperModel(
    input_shape=images.input_shape, outputs=10,  # stages follow from 8x8: 2 or 3 (the design rules)
    blocks_per_stage=(1, 2), filters=[16, 32],
    block_type=["plain", "residual", "separable"], width_multiple=8, seed=0,
)
print("stages:", conv.num_stages)
conv_tuner, conv_best = search(conv, images, "conv")
assert all(width % 8 == 0 for width in kso.architecture_of(conv_best).widths)'''),
    ("md", "## 1-D convolutional: stages of Conv1D blocks over a sequence (plain, residual, separable, dilated)"),
    ("code", '''rows = load_digits_split("rows", seed=0)  # 8 timesteps x 8 features
conv1d = kso.Conv1DHyperModel(input_shape=rows.input_shape, outputs=10, filters=[16, 32], seed=0)
conv1d_tuner, conv1d_best = search(conv1d, rows, "conv1d")'''),
    ("md", "## Recurrent: LSTM or GRU layers, bidirectional, residual"),
    ("code", '''recurrent = kso.RecurrentHyperModel(
    input_shape=rows.input_shape, outputs=10, cell=["lstm", "gru"], num_layers=(1, 2),
    units=[16, 32], bidirectional=[False, True], seed=0,
)
recurrent_tuner, recurrent_best = search(recurrent, rows, "recurrent")'''),
    ("md", "## Transformer: blocks, heads, key and feed-forward widths, over pixel tokens"),
    ("code", '''tokens = load_digits_split("tokens", seed=0)  # 64 integer intensities, vocabulary 17
transformer = kso.TransformerHyperModel(
    input_shape=tokens.input_shape, outputs=10, vocabulary_size=tokens.vocabulary_size,
    model_units=[16, 32], num_blocks=(1, 2), num_heads=[2], key_units=[8], ffn_units=[32, 64], seed=0,
)
transformer_tuner, transformer_best = search(transformer, tokens, "transformer")'''),
    ("md", "## Every winner compresses and ships the same way\n\n"
           "Slimming removes whole filters and units (tied across residual adds and recurrent gates), "
           "then pruning, clustering and quantization; the report measures each stage on the test split."),
    ("code", '''from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Slim

small, result = kso.compress(
    conv_best, images.train, validation_data=images.validation, test_data=images.test,
    recipe=[Slim(0.25), Prune(0.5), Cluster(16), Quantize("dynamic")], max_accuracy_loss=None,
    fine_tuning=FineTuning(prune_epochs=1 if SMALL else 5, cluster_epochs=1), measure_latency=False,
)
report = result.report
for stage in report.stages:
    print(f"{stage.name:10s} params {stage.params:7,d}  accuracy {stage.metrics['accuracy']:.4f}  "
          f"gzip {stage.tflite_gzip_bytes:7,d} bytes")
assert report.stages[-1].params < report.stages[0].params  # slimming really removed filters
print(kso.export_saved_model(small, work / "serving", "digits-cnn"))'''),
]

SERVING = [
    ("md", "# Compression and serving: the smallest model within a tolerance, TF Serving and TFLite\n\n{badge}\n\n"
           "`compress` searches for the smallest model whose **validation** accuracy stays within "
           "`max_accuracy_loss` of the original (slimming, pruning, clustering, quantization, in that order), "
           "measures every stage on the test split, and returns a Keras 3 model with what it measured. The export "
           "functions write a versioned TF Serving SavedModel and the measured TFLite file."),
    ("code", INSTALL),
    ("code", BUDGET),
    ("code", '''import json
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_structopt as kso
from keras_structopt.data import load_digits_split
from keras_structopt.compress import FineTuning
from keras_structopt.export import TFLiteRunner

keras.utils.set_random_seed(0)
data = load_digits_split("flat", seed=0)
work = Path(tempfile.mkdtemp(prefix="structopt-serving-"))'''),
    ("md", "## 1. Any Keras 3 model: here, one written by hand"),
    ("code", '''model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(64, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(*data.train, validation_data=data.validation, epochs=EPOCHS * 2, verbose=0)
print(f"{model.count_params():,} parameters, test accuracy {model.evaluate(*data.test, verbose=0)[1]:.4f}")'''),
    ("md", "## 2. The accuracy-guarded search for the smallest model\n\n"
           "`target` picks the deployment preset (which stages, which TFLite conversion): `mobile` ends in a fully "
           "int8 file, `cpu` in dynamic-range quantization, `gpu` keeps 2:4 sparsity and float16, `tpu` aligns "
           "widths to 128."),
    ("code", '''small, result = kso.compress(  # with validation data, within one point of accuracy by default
    model, data.train, validation_data=data.validation, test_data=data.test, target="cpu",
    fine_tuning=FineTuning(prune_epochs=2 if SMALL else 10, cluster_epochs=1 if SMALL else 3),
    measure_latency=not SMALL,
)
report = result.report
print(type(small).__module__.split(".")[0], "model; chosen:", report.recipe.describe())
for stage in report.stages:
    print(f"{stage.name:10s} params {stage.params:7,d}  accuracy {stage.metrics['accuracy']:.4f}  "
          f"gzip {stage.tflite_gzip_bytes:7,d} bytes")
print(f"{report.size_ratio():.1f}x smaller (gzip'd TFLite)")
assert report.final.tflite_gzip_bytes < report.baseline.tflite_gzip_bytes'''),
    ("md", "## 3. TF Serving: the versioned layout and a REST request\n\n"
           "`export_saved_model` writes `serving/digits/1/` (then `2/`, ...), never replacing a version. "
           "TF Serving serves the `serving_default` signature; its REST body is the JSON below. Here the same "
           "signature is called through TensorFlow."),
    ("code", '''version = kso.export_saved_model(small, work / "serving", "digits")
print(version, sorted(p.name for p in version.iterdir()))
x = data.test[0][:3]
request = {"signature_name": "serving_default", "instances": x.tolist()}
print("POST http://localhost:8501/v1/models/digits:predict", json.dumps(request)[:120], "...")
served = tf.saved_model.load(str(version)).signatures["serving_default"]
outputs = served(inputs=tf.constant(x))["outputs"].numpy()
print({"predictions": outputs.argmax(axis=1).tolist()})
np.testing.assert_allclose(outputs, small.predict(x, verbose=0), atol=1e-5)'''),
    ("md", "## 4. TFLite on LiteRT\n\n"
           "The TFLite file runs on LiteRT (`ai-edge-litert`) where it installs, on TensorFlow's interpreter "
           "otherwise; `TFLiteRunner` quantizes and dequantizes int8 inputs and outputs for you."),
    ("code", '''path = result.save_tflite(work / "digits.tflite")  # the very file the final stage was measured on
runner = TFLiteRunner(path.read_bytes())
predictions = runner(data.test[0]).argmax(axis=1)
print(runner.runtime, path.stat().st_size, "bytes, test accuracy", float(np.mean(predictions == data.test[1])))'''),
]

STRATEGIES = [
    ("md", "# Search strategies: evidence for depth and width, and cheaper searches\n\n{badge}\n\n"
           "`kso.search.tuner` wraps any Keras Tuner tuner: cross-validated trials, learning curves, parameter "
           "budgets checked before building, no duplicate networks; `EvolutionarySearch` and median stopping "
           "make a search cheaper; `select_simplest` and `pareto_front` choose with evidence; "
           "`write_search_report` redraws a finished search from its directory."),
    ("code", INSTALL),
    ("code", BUDGET),
    ("code", '''import tempfile
from pathlib import Path

import keras
import keras_tuner
from sklearn.model_selection import StratifiedKFold

import keras_structopt as kso
from keras_structopt.data import load_digits_split

keras.utils.set_random_seed(0)
data = load_digits_split("flat", seed=0)
work = Path(tempfile.mkdtemp(prefix="structopt-strategies-"))
space = dict(input_shape=(64,), outputs=10, num_layers=(1, 3), units=(8, 128), connection=["plain", "residual"],
             seed=0)'''),
    ("md", "## 1. Cross-validated trials under a parameter budget\n\n"
           "Each trial trains once per fold; its score is the folds' mean and their spread is kept. Candidates "
           "over `max_params` are refused before they are built (they are not trials)."),
    ("code", '''cv = kso.search.tuner(
    keras_tuner.RandomSearch, kso.DenseHyperModel(**space), objective="val_accuracy",
    max_trials=TRIALS, seed=1, folds=StratifiedKFold(3, shuffle=True, random_state=0), max_params=5000,
    directory=work, project_name="cv",
)
x, y = data.train
cv.search(x[:600] if SMALL else x, y[:600] if SMALL else y, epochs=EPOCHS, verbose=0)
cv.results_summary(3)'''),
    ("md", "## 2. Evolution with median stopping\n\n"
           "Regularized evolution mutates one hyperparameter of a good recent trial; median stopping ends a trial "
           "whose curve falls below the median of the finished ones at the same epoch."),
    ("code", '''evolution = kso.search.tuner(
    kso.search.EvolutionarySearch, kso.DenseHyperModel(**space), objective="val_accuracy",
    max_trials=TRIALS * 2, population_size=max(2, TRIALS), sample_size=2, seed=1,
    median_stopping=kso.search.MedianStopping(grace_epochs=1, min_trials=2),
    directory=work, project_name="evolution",
)
evolution.search(*data.train, validation_data=data.validation, epochs=EPOCHS, verbose=0)
print(len(evolution.oracle.trials), "trials")'''),
    ("md", "## 3. Choose with evidence: the simplest model within noise, and the Pareto front"),
    ("code", '''choice = kso.search.select_simplest(evolution)
print(f"best {choice.best_value:.4f}; chosen {choice.value:.4f} within one standard error "
      f"({choice.estimate}): {choice.architecture.count_params():,} parameters, widths {choice.architecture.widths}")
front = kso.search.pareto_front(evolution)
print("Pareto front:", [(t.trial_id, kso.DenseHyperModel(**space).architecture(t.hyperparameters).count_params())
                        for t in front])'''),
    ("md", "## 4. A finished search, read back from its directory\n\n"
           "The same as `keras-structopt report DIR`: the trials table, learning curves by depth, the Pareto plot "
           "and TensorBoard HParams, written to a new directory; the project itself is only read."),
    ("code", '''files = kso.search.write_search_report(evolution.project_dir, work / "evolution-report")
print(sorted(p.name for p in files))
print((work / "evolution-report" / "trials.md").read_text()[:800])'''),
]


def write(name: str, cells) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, text in cells:
        text = text.replace("{badge}", badge(name))
        notebook.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text))
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"  # stable ids: regenerating changes only what the cells say
    path = HERE / name
    nbformat.write(notebook, path)
    return path


if __name__ == "__main__":
    for name, cells in (("families.ipynb", FAMILIES), ("compression_and_serving.ipynb", SERVING),
                        ("search_strategies.ipynb", STRATEGIES)):
        print(write(name, cells))
