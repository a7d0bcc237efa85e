"""Accelerator check: what mixed precision, slimming and 2:4 sparsity do on the machine it runs on.

One script to run on a GPU machine (it runs on a CPU too, skipping what needs a GPU and saying
so in the output):

* **Search throughput**: the same small structural search (RandomSearch over the dense and
  the convolutional digits spaces, fixed trials and epochs, seed 0) in float32 and under each
  mixed-precision policy the device supports (`mixed_float16` needs a GPU; `mixed_bfloat16`
  runs on GPUs of compute capability 8.0 and later and on CPUs): trials per minute, as a
  ratio to float32 measured in the same run, and the best validation accuracy of each.
* **Inference throughput** of the dense digits winner (`bench/compress.py`'s), of its slimmed
  version (half its units removed, fine-tuned) and of its 2:4-sparse version (two zeros in
  every four consecutive input weights, fine-tuned), at batch 1, 256 and 4096: examples per
  second of the model's forward pass in TensorFlow (traced once), as ratios to the winner's.
  2:4 sparsity speeds up only kernels that use it (TensorRT, cuSPARSELt); TensorFlow's dense
  matmul does not, which this measures rather than assumes.

    python bench/gpu_check.py                     # about 5 minutes on 2 CPU cores
    python bench/gpu_check.py --out bench/results/gpu_check.json

Writes JSON (device, TensorFlow version, every row) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import FineTuning, Prune  # noqa: E402
from keras_structopt.compress._measure import keras_latency  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compress import train_winner  # noqa: E402

BATCHES = (1, 256, 4096)


def device() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    capability = max((d.get("compute_capability", (0, 0)) for d in details), default=(0, 0))
    return {"gpus": [d.get("device_name", "GPU") for d in details], "compute_capability": list(capability),
            "cpus": os.cpu_count(), "tensorflow": tf.__version__, "keras": keras.__version__}


def policies(info: dict) -> tuple[list[str], dict[str, str]]:
    """The policies to measure, and why the others are skipped."""
    run, skipped = ["float32"], {}
    if info["gpus"]:
        run.append("mixed_float16")
    else:
        skipped["mixed_float16"] = "needs a GPU (float16 matmuls are emulated on CPUs)"
    if info["gpus"] and tuple(info["compute_capability"]) < (8, 0):
        skipped["mixed_bfloat16"] = f"GPU compute capability {info['compute_capability']} < 8.0"
    else:
        run.append("mixed_bfloat16")
    return run, skipped


def search_throughput(policy: str, family: str, trials: int, epochs: int, directory: Path) -> dict:
    view = "flat" if family == "dense" else "image"
    data = load_digits_split(view, seed=0)
    if family == "dense":
        hypermodel = kso.DenseHyperModel(input_shape=data.input_shape, outputs=10, seed=0)
    else:
        hypermodel = kso.ConvHyperModel(input_shape=data.input_shape, outputs=10, seed=0)
    search = kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=trials,
                              seed=1, dtype_policy=policy, directory=directory, project_name=f"{family}-{policy}")
    started = time.perf_counter()
    search.search(*data.train, validation_data=data.validation, epochs=epochs, batch_size=64, verbose=0)
    seconds = time.perf_counter() - started
    best = search.oracle.get_best_trials(1)[0]
    return {"part": "search", "family": family, "policy": policy, "trials": trials, "epochs": epochs,
            "seconds": seconds, "trials_per_minute": 60 * trials / seconds, "best_val_accuracy": float(best.score)}


def inference_models(epochs: int) -> tuple[dict, np.ndarray]:
    """The dense winner, slimmed (0.5, fine-tuned) and 2:4-sparse (fine-tuned), as tf_keras models."""
    model, data = train_winner("dense", epochs, 0)
    slimmed, _ = kso.slim(model, data.train[0][:512], ratio=0.5, train_data=data.train, epochs=5)
    _, compressed = kso.compress(model, data.train, validation_data=data.validation, test_data=data.test,
                                 recipe=[Prune(0.0, m_by_n=(2, 4))], max_accuracy_loss=None,
                                 fine_tuning=FineTuning(prune_epochs=3), measure_latency=False)
    sparse, report = compressed.tf_keras_model, compressed.report
    accuracy = {"winner": float(model.evaluate(*data.test, verbose=0)[1]),
                "slimmed 0.5": float(slimmed.evaluate(*data.test, verbose=0)[1]),
                "2:4 sparse": float(report.final.metrics["accuracy"])}
    models = {"winner": kso.to_tf_keras(model), "slimmed 0.5": kso.to_tf_keras(slimmed), "2:4 sparse": sparse}
    return {name: (m, accuracy[name]) for name, m in models.items()}, data.test[0]


def inference_rows(models: dict, x: np.ndarray) -> list[dict]:
    rows = []
    for batch in BATCHES:
        base = keras_latency(models["winner"][0], x, batch)
        for name, (model, accuracy) in models.items():
            seconds = base if name == "winner" else keras_latency(model, x, batch)
            rows.append({"part": "inference", "model": name, "batch": batch, "params": int(model.count_params()),
                         "test_accuracy": accuracy, "seconds": seconds, "examples_per_second": batch / seconds,
                         "throughput_ratio": base / seconds})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--winner-epochs", type=int, default=60)
    parser.add_argument("--out", default="bench/results/gpu_check.json")
    args = parser.parse_args(argv)
    info = device()
    run, skipped = policies(info)
    print(f"device: {info['gpus'] or 'no GPU'}; TensorFlow {info['tensorflow']}; measured: {run}; skipped: "
          f"{skipped or 'nothing'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for family in ("dense", "conv"):
            for policy in run:
                rows.append(search_throughput(policy, family, args.trials, args.epochs, Path(workdir)))
    for family in ("dense", "conv"):
        float32 = next(r for r in rows if r["family"] == family and r["policy"] == "float32")
        for r in rows:
            if r["family"] == family:
                r["throughput_ratio"] = r["trials_per_minute"] / float32["trials_per_minute"]
    models, x = inference_models(args.winner_epochs)
    rows += inference_rows(models, x)

    print("\n| search | policy | trials / min | vs float32 | best val accuracy |\n|---|---|---:|---:|---:|")
    for r in (r for r in rows if r["part"] == "search"):
        print(f"| {r['family']} | {r['policy']} | {r['trials_per_minute']:.2f} | {r['throughput_ratio']:.2f}x | "
              f"{r['best_val_accuracy']:.4f} |")
    print("\n| inference | batch | parameters | test accuracy | examples / s | vs winner |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in (r for r in rows if r["part"] == "inference"):
        print(f"| {r['model']} | {r['batch']} | {r['params']:,} | {r['test_accuracy']:.4f} | "
              f"{r['examples_per_second']:,.0f} | {r['throughput_ratio']:.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": info, "skipped": skipped, "settings": vars(args), "rows": rows}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
