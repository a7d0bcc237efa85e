"""Benchmark: a fixed-budget structural search per family on digits, then `compress`.

For each case (family x view of digits) it runs a Keras Tuner RandomSearch of
`--trials` trials of at most `--epochs` epochs (early stopping on validation accuracy),
measures the winner on the test split, compresses it with `compress`'s defaults and
measures again. It prints a table and writes JSON. The baseline of every ratio is the
uncompressed winner measured in the same run.

    python bench/families.py                     # all cases, 20 trials x 30 epochs
    python bench/families.py --cases conv_image --trials 5 --epochs 10
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

import keras  # noqa: E402
import keras_tuner  # noqa: E402
from tables.compression import families_table  # noqa: E402  (bench/ is the script's folder)

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import Cluster, Prune, Quantize  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402

# The search space of each case: the families' own defaults, narrowed to sizes that
# fit a 2-core budget.
CASES = {
    "dense_flat": ("flat", kso.DenseHyperModel, dict(num_layers=(1, 3), units=(32, 256))),
    "conv_image": (
        "image",
        kso.ConvHyperModel,
        dict(num_stages=(2, 3), blocks_per_stage=(1, 2), filters=[32, 48, 64], dropout=[0.0, 0.25],
             learning_rate=(1e-3, 5e-3)),
    ),
    "recurrent_rows": (
        "rows",
        kso.RecurrentHyperModel,
        dict(num_layers=(1, 2), units=[32, 48, 64, 96], learning_rate=(2e-3, 1e-2)),
    ),
    "recurrent_tokens": (
        "tokens",
        kso.RecurrentHyperModel,
        dict(num_layers=(1, 2), units=[32, 48, 64], embedding_units=[16, 32], bidirectional=True,
             reduce=["mean", "max"], learning_rate=(2e-3, 1e-2)),
    ),
    "transformer_rows": (
        "rows",
        kso.TransformerHyperModel,
        dict(model_units=[32, 64], num_blocks=(1, 3), num_heads=[2, 4], key_units=[8, 16],
             ffn_units=[64, 128], learning_rate=(1e-3, 5e-3)),
    ),
    "transformer_tokens": (
        "tokens",
        kso.TransformerHyperModel,
        dict(model_units=[32, 64], num_blocks=(1, 2), num_heads=[2, 4], key_units=[8, 16],
             ffn_units=[64, 128], learning_rate=(1e-3, 5e-3)),
    ),
}


def run_case(name: str, trials: int, epochs: int, seed: int, directory: Path) -> dict:
    view, cls, space = CASES[name]
    data = load_digits_split(view, seed=seed)
    keras.utils.set_random_seed(seed)
    extra = {"vocabulary_size": data.vocabulary_size} if data.vocabulary_size else {}
    hypermodel = cls(input_shape=data.input_shape, outputs=data.num_classes, seed=seed, **space, **extra)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=trials, seed=seed + 1,
        directory=str(directory), project_name=name,
    )
    started = time.time()
    tuner.search(
        *data.train, validation_data=data.validation, epochs=epochs, verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=6)],
    )
    search_seconds = time.time() - started
    statuses = [trial.status for trial in tuner.oracle.trials.values()]
    completed = statuses.count("COMPLETED")
    if not completed:
        raise RuntimeError(f"{name}: every trial failed: {statuses}")
    best_trial = tuner.oracle.get_best_trials(1)[0]
    spec = hypermodel.architecture(best_trial.hyperparameters)
    model = tuner.get_best_models(1)[0]
    test_accuracy = float(model.evaluate(*data.test, verbose=0)[1])
    started = time.time()
    keras.utils.set_random_seed(seed)
    # TFMOT's published recipe (the stages' defaults), applied as it is.
    _, compressed = kso.compress(model, data.train, validation_data=data.validation, test_data=data.test,
                                 recipe=[Prune(), Cluster(), Quantize()], max_accuracy_loss=None)
    report = compressed.report
    compress_seconds = time.time() - started
    final = report.final
    return {
        "case": name,
        "view": view,
        "trials_completed": completed,
        "trials": len(statuses),
        "best_val_accuracy": float(best_trial.score),
        "test_accuracy": test_accuracy,
        "params": spec.count_params(),
        "macs": spec.count_macs(),
        "search_seconds": search_seconds,
        "architecture": spec.to_dict(),
        "baseline_tflite_test_accuracy": report.baseline.metrics["accuracy"],
        "compressed_test_accuracy": final.metrics["accuracy"],
        "accuracy_loss_points": 100 * (report.baseline.metrics["accuracy"] - final.metrics["accuracy"]),
        "compressed_kernel_sparsity": final.kernel_sparsity,
        "compressed_max_unique_kernel_values": final.max_unique_kernel_values,
        "baseline_tflite_gzip_bytes": report.baseline.tflite_gzip_bytes,
        "compressed_tflite_gzip_bytes": final.tflite_gzip_bytes,
        "size_ratio": report.size_ratio(),
        "compress_seconds": compress_seconds,
        "stages": report.to_dict()["stages"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/families.json")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown --cases {unknown}; accepted: {list(CASES)}")
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="structopt-bench-") as directory:
        for name in names:
            print(f"== {name}: {args.trials} trials x <= {args.epochs} epochs", flush=True)
            rows.append(run_case(name, args.trials, args.epochs, args.seed, Path(directory)))
            print(families_table(rows[-1:]).splitlines()[-1], flush=True)
            out.write_text(json.dumps({"settings": vars(args), "results": rows}, indent=2) + "\n")
    print()
    print(families_table(rows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
