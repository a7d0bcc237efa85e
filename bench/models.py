"""Benchmark: every `keras.applications` constructor through the bridge, slimming, compression and export.

Each constructor is built with random weights (`weights=None`) at its smallest input (32x32;
75x75 for the Inception family and Xception), 10 classes, and trained for one epoch on
random images with random labels (the point is what each stage can do to the structure, not
accuracy). Then, per model, each step caught and reported on its own:

* `bridge`: `to_tf_keras`, and the largest output difference against the Keras 3 model;
* `slim`: `kso.slim(model, x, ratio=0.5)`: parameters before and after, or why nothing could
  be removed (every channel pinned: the layers that pin them);
* `compress`: `kso.compress` with TFMOT's recipe (prune to 0.8, cluster to 16 values,
  dynamic-range TFLite), one fine-tuning epoch per stage: the gzip'd TFLite size ratio against
  the float file, and the layers each stage left alone, with TFMOT's reasons;
* `export`: `export_saved_model` and `export_tflite` of the compressed model, and whether both
  files answer with the model's predictions: the SavedModel to 1e-4; the TFLite file is the one
  compress measured and its class probabilities are within 0.1 of the model's (its 8-bit
  weights move them a little; the top class's agreement is reported too: on the near-tied
  classes of random weights and random labels it is not a measure of the file);
* the seconds each model took, and each stage's (`stage_seconds`).

    python bench/models.py                          # all 40 (hours on 2 cores: NASNetLarge alone took 21 min)
    python bench/models.py --only MobileNetV3Small ConvNeXtTiny
    python bench/models.py --resume                 # measure only the models not yet in the JSON
    python bench/models.py --resume --no-compress --only ConvNeXtXLarge   # too large to compress in 24 GB

Prints the table and writes `bench/results/models.json` (after every model: a run cut short
keeps what it measured). Each model is measured in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tables.compression import models_table  # noqa: E402  (bench/ is the script's folder)

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize  # noqa: E402
from keras_structopt.export import tflite_predict  # noqa: E402

CONSTRUCTORS = sorted(name for name, value in vars(keras.applications).items()
                      if callable(value) and name[:1].isupper())


def build(name: str):
    size = 75 if ("Inception" in name or "Xception" in name) else 32
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# How far the TFLite file's class probabilities may be from the model's (8-bit weights); a file that
# computes something else differs by far more.
TFLITE_TOLERANCE = 0.1


def data(model, count: int, seed: int):
    size = model.input_shape[1]
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(count, size, size, 3)).astype("float32"), rng.integers(0, 10, size=count)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}" if str(error) else type(error).__name__


def _compressed(model, train, test, row: dict):
    """`(compressed model, its measured TFLite file)`, its numbers put in `row`; `(None, None)` with
    the reason in `row["compress"]` where `compress` failed."""
    try:
        small, result = kso.compress(model, train, test_data=test, recipe=[Prune(), Cluster(), Quantize()],
                                     max_accuracy_loss=None,
                                     fine_tuning=FineTuning(batch_size=16, prune_epochs=1, cluster_epochs=1),
                                     measure_latency=False)
    except Exception as error:  # noqa: BLE001 - reported per model
        row["compress"] = _reason(error)
        return None, None
    report = result.report
    row["compress_size_ratio"] = round(report.size_ratio(), 2)
    row["kernel_sparsity"] = round(report.final.kernel_sparsity, 3)
    left: dict[str, int] = {}
    for layer in report.layers:
        for note in layer.notes:
            left[note] = left.get(note, 0) + 1
    row["compress_notes"] = left
    row["compress_warnings"] = list(report.warnings)
    return small, result.tflite


def one(name: str, directory: Path, compress: bool = True) -> dict:
    """The row of one model; `compress=False` leaves compression out (the row says why: `measure`)."""
    started = time.perf_counter()
    row: dict = {"model": name}
    model = build(name)
    train, test = data(model, 64, 0), data(model, 32, 1)
    model.fit(*train, epochs=1, batch_size=16, verbose=0)
    row["params"] = int(model.count_params())
    expected = np.asarray(model(test[0], training=False))
    stages: dict[str, float] = {}
    row["stage_seconds"] = stages  # where each model's time goes
    mark = time.perf_counter()
    stages["build_and_train"] = round(mark - started, 1)
    try:
        legacy = kso.to_tf_keras(model)
        row["bridge_max_difference"] = float(np.abs(legacy(test[0], training=False).numpy() - expected).max())
    except Exception as error:  # noqa: BLE001 - reported per model
        row["bridge"] = _reason(error)
    stages["bridge"], mark = round(time.perf_counter() - mark, 1), time.perf_counter()
    try:
        slimmed, plan = kso.slim(model, train[0], ratio=0.5)
        row["slim_params"] = int(slimmed.count_params())
        row["slim_ratio"] = round(row["params"] / max(1, row["slim_params"]), 3)
        row["slim_layers_narrowed"] = len(plan.widths)
        if not plan.widths:
            row["slim"] = "every channel is pinned (a model input or output, LayerNormalization, a reshape, ...)"
    except Exception as error:  # noqa: BLE001
        row["slim"] = _reason(error)
    stages["slim"], mark = round(time.perf_counter() - mark, 1), time.perf_counter()
    small = measured = None
    if compress:
        small, measured = _compressed(model, train, test, row)
    else:
        row["compress"] = "not run (--no-compress)"
    stages["compress"], mark = round(time.perf_counter() - mark, 1), time.perf_counter()
    exported = small if small is not None else model
    try:
        reference = np.asarray(exported(test[0], training=False))
        version = kso.export_saved_model(exported, directory / "serving", name)
        serve = tf.saved_model.load(str(version)).signatures["serving_default"]
        input_name = sorted(serve.structured_input_signature[1])[0]
        served = serve(**{input_name: tf.constant(test[0])})["outputs"].numpy()
        row["saved_model_max_difference"] = float(np.abs(served - reference).max())
        path = kso.export_tflite(exported, directory / f"{name}.tflite")
        written = path.read_bytes()
        answered = tflite_predict(written, test[0])
        # The file is the one compress measured (its 8-bit weights included); its outputs are class
        # probabilities, which 8-bit weights move a little: on near-tied classes (random weights,
        # random labels) that can flip the top class, so the class agreement is reported, not required.
        row["tflite_is_measured"] = measured is None or written == measured
        row["tflite_max_difference"] = float(np.abs(answered - reference).max())
        row["tflite_agreement"] = float(np.mean(answered.argmax(-1) == reference.argmax(-1)))
        row["export_ok"] = bool(row["saved_model_max_difference"] <= 1e-4 and row["tflite_is_measured"]
                                and answered.shape == reference.shape
                                and row["tflite_max_difference"] <= TFLITE_TOLERANCE)
    except Exception as error:  # noqa: BLE001
        row["export"] = _reason(error)
        row["export_ok"] = False
    stages["export"] = round(time.perf_counter() - mark, 1)
    row["seconds"] = round(time.perf_counter() - started, 1)
    # Peak memory: this process's, and the largest of its children's (compress's fine-tuned stages and
    # conversions run in children for models of 20 M parameters or more: FineTuning.isolated).
    row["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    row["children_peak_gb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)
    keras.backend.clear_session()
    return row


ROW = "MODEL-ROW "


def _child(name: str, compress: bool) -> subprocess.CompletedProcess:
    """`bench/models.py --child name` run to its end, its output captured."""
    return subprocess.run([sys.executable, __file__, "--child", name] + ([] if compress else ["--no-compress"]),
                          capture_output=True, text=True)


def _row(child) -> dict | None:
    for line in reversed(child.stdout.splitlines()):
        if line.startswith(ROW):
            return json.loads(line[len(ROW):])
    return None


def _gigabytes() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def measure(name: str, compress: bool = True) -> dict:
    """Measures one model in a child process of its own, so that what it leaves in TensorFlow's memory
    (traced functions, converters, SavedModels loaded) goes with it: in one process, 19 models grew it
    to the machine's 24 GB and the kernel killed the run at the twentieth.

    A child the kernel kills for lack of memory is measured again without compression (the stage
    that holds the most copies of the model: TensorFlow keeps memory after each training, see
    docs/benchmarks.md): its row has the bridge, slimming and both exports of the uncompressed
    model, and says why compression is missing."""
    started = time.perf_counter()
    child = _child(name, compress)
    row = _row(child)
    if row is not None:
        return row
    first = round(time.perf_counter() - started, 1)
    if child.returncode == -9 and compress:
        again = _child(name, compress=False)
        row = _row(again)
        if row is not None:
            row["compress"] = (f"out of memory: killed by the kernel on this {_gigabytes():.0f} GB machine "
                               f"({first:.0f} s in); measured again without compress")
            row["seconds"] = round(row["seconds"] + first, 1)
            return row
        child = again
    how = (f"killed by signal {-child.returncode}" + (" (out of memory)" if child.returncode == -9 else "")
           if child.returncode < 0 else f"exited with status {child.returncode}")
    return {"model": name, "params": 0, "seconds": round(time.perf_counter() - started, 1),
            "error": f"its process {how} before reporting", "traceback": child.stderr[-2000:]}


def child(name: str, compress: bool = True) -> dict:
    """The row of one model, measured in this process (the child `measure` starts)."""
    with tempfile.TemporaryDirectory() as directory:
        try:
            return one(name, Path(directory), compress)
        except Exception as error:  # noqa: BLE001 - building or training failed: reported, the run goes on
            return {"model": name, "params": 0, "seconds": 0.0, "error": _reason(error),
                    "traceback": traceback.format_exc()[-2000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one model, its row printed
    parser.add_argument("--no-compress", action="store_true",
                        help="leave compression out (the rows say so): for models whose compression does not fit "
                             "this machine's memory; the bridge, slimming and both exports are still measured")
    parser.add_argument("--only", nargs="+", default=None, help="constructor names (default: all)")
    parser.add_argument("--output", default="bench/results/models.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --output and measure only the other models (a long run "
                             "can be spread over several sittings)")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(ROW + json.dumps(child(args.child, compress=not args.no_compress)), flush=True)
        return 0
    names = args.only or CONSTRUCTORS
    unknown = sorted(set(names) - set(CONSTRUCTORS))
    if unknown:
        parser.error(f"unknown constructors {unknown}; the installed Keras has {CONSTRUCTORS}")
    rows: list[dict] = []
    started = time.perf_counter()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.resume and out.exists():
        rows = [row for row in json.loads(out.read_text())["rows"] if "error" not in row]
        started -= sum(row["seconds"] for row in rows)  # the total counts the earlier sittings' models too
    done = {row["model"] for row in rows}
    for name in [n for n in names if n not in done]:
        rows.append(measure(name, compress=not args.no_compress))
        print(models_table(rows[-1:]).splitlines()[-1], flush=True)
        out.write_text(json.dumps({"settings": vars(args), "cpus": os.cpu_count(),
                                   "python": platform.python_version(), "keras": keras.__version__,
                                   "seconds": round(time.perf_counter() - started, 1), "rows": rows},
                                  indent=2) + "\n")
    print()
    print(models_table(rows))
    print(f"\n{len(rows)} models in {time.perf_counter() - started:.0f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
