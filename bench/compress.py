"""Benchmark: keras-structopt's compression against TFMOT's recipe, on the digits winners.

For the dense and the convolutional winner of `bench/families.py` (their architectures are
fixed here, trained afresh with a fixed protocol, seed 0), one run compares:

* `tfmot recipe`: TFMOT's published recipe (prune to 0.8, sparsity-preserving clustering
  to 16 values, dynamic-range TFLite), as `compress` runs it with `slim=None`;
* `tfmot swept`: the same with TFMOT's two knobs swept (sparsity 0.8 / 0.9 / 0.95 x
  clusters 16 / 8 / 4); the best within 1.0 point of test accuracy is TFMOT's tuned best;
* `qat`: TFMOT's recipe followed by quantization-aware fine-tuning that keeps the zeros and
  the shared values, converted to a fully int8 file (its tensor types are recorded);
* `slim only`: structural slimming alone (ratio 0.5 and 0.75, fine-tuned, no TFMOT);
* the deployment presets (`target=`), with their fixed settings;
* the accuracy-guarded search (`max_accuracy_loss=0.01`, judged on the validation split
  only) for the `mobile` and `cpu` presets.

Every row is measured on the test split through the stage's own TFLite file; "smaller" is
the gzip'd TFLite of the uncompressed winner (float) over the row's, latencies are
fractions of the uncompressed winner's measured in the same run. Prints a table and
writes JSON.

    python bench/compress.py                          # both winners, everything (about 16 min on 2 cores)
    python bench/compress.py --cases dense --quick    # a fast smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import PRESETS, Cluster, FineTuning, Prune, Quantize, Recipe, Slim  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402
from keras_structopt.export import (
    tensor_types,  # noqa: E402
    )

# The winners of bench/families.py (docs/benchmarks.md: "Every family on digits").
WINNERS = {
    "dense": (
        "flat",
        {"family": "dense", "input_shape": [64], "blocks": [{"kind": "dense", "units": 131, "stage": 0}],
         "connection": "plain", "task": "multiclass", "outputs": 10,
         "options": {"activation": "relu", "batch_norm": False, "dropout": 0.2}},
        3e-3,
    ),
    "conv": (
        "image",
        {"family": "conv", "input_shape": [8, 8, 1],
         "blocks": [{"kind": "residual", "units": 48, "stage": 0}, {"kind": "residual", "units": 48, "stage": 1},
                    {"kind": "residual", "units": 48, "stage": 1}],
         "connection": "plain", "task": "multiclass", "outputs": 10,
         "options": {"activation": "relu", "batch_norm_momentum": 0.9, "downsample": "max_pool", "dropout": 0.25,
                     "kernel_size": 3, "pooling": "avg"}},
        3e-3,
    ),
}
TOLERANCE = 0.01


def train_winner(case: str, epochs: int, seed: int):
    view, architecture, learning_rate = WINNERS[case]
    data = load_digits_split(view, seed=seed)
    keras.utils.set_random_seed(seed)
    spec = kso.Architecture.from_dict({"version": 1, **architecture})
    model = kso.render(spec, keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(*data.train, validation_data=data.validation, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=10, restore_best_weights=True)])
    return model, data


def row(case, method, settings, report, seconds):
    final, baseline = report.final, report.baseline
    ratios = report.latency_ratios(final)
    return {
        "case": case,
        "method": method,
        "settings": settings,
        "stages": [s.name for s in report.stages],
        "baseline_test_accuracy": baseline.metrics["accuracy"],
        "test_accuracy": final.metrics["accuracy"],
        "loss_points": 100 * (baseline.metrics["accuracy"] - final.metrics["accuracy"]),
        "baseline_gzip_bytes": baseline.tflite_gzip_bytes,
        "gzip_bytes": final.tflite_gzip_bytes,
        "smaller": report.size_ratio(),
        "params": final.params,
        "params_ratio": baseline.params / final.params,
        "macs": final.macs,
        "bits_per_weight": final.bits_per_weight,
        "entropy_bits_per_weight": final.entropy_bits_per_weight,
        "latency_ratio": ratios,
        "seconds": seconds,
        "report": report.to_dict(),
    }


def run(case, model, data, method, settings, *, recipe=None, target=None, max_accuracy_loss=None, **fine_tuning):
    """One `compress` call: a recipe applied as it is (`max_accuracy_loss=None`), a preset, or a guarded search."""
    measure_latency = fine_tuning.pop("measure_latency", True)
    started = time.time()
    keras.utils.set_random_seed(0)
    _, compressed = kso.compress(model, data.train, validation_data=data.validation, test_data=data.test,
                                 recipe=recipe, target=target, max_accuracy_loss=max_accuracy_loss,
                                 fine_tuning=FineTuning(**fine_tuning), measure_latency=measure_latency)
    report = compressed.report
    result = row(case, method, settings, report, time.time() - started)
    if report.final.quantization == "int8":  # what the measured file holds: a fully int8 file has no float32 tensor
        result["tensor_types"] = tensor_types(compressed.tflite)
    print(f"  {method:<18} {settings:<44} acc {result['test_accuracy']:.4f} ({result['loss_points']:+.2f} pts) "
          f"{result['gzip_bytes']:>8,} B {result['smaller']:6.1f}x  ({result['seconds']:.0f} s)", flush=True)
    return result


def bench_case(case: str, quick: bool, epochs: int, seed: int) -> list[dict]:
    model, data = train_winner(case, epochs, seed)
    print(f"{case}: {model.count_params():,} parameters, test accuracy "
          f"{model.evaluate(*data.test, verbose=0)[1]:.4f}", flush=True)
    tfmot = Recipe([Prune(), Cluster(), Quantize()])  # TFMOT's published recipe: the stages' defaults
    rows = [run(case, model, data, "tfmot recipe", tfmot.describe(), recipe=tfmot)]
    sweep = [(0.8, 16), (0.9, 8)] if quick else [(s, c) for s in (0.8, 0.9, 0.95) for c in (16, 8, 4)]
    for sparsity, clusters in sweep:
        swept = Recipe([Prune(sparsity), Cluster(clusters), Quantize()])
        rows.append(run(case, model, data, "tfmot swept", swept.describe(), recipe=swept, measure_latency=False))
    qat = Recipe([Prune(0.8), Cluster(16), Quantize("qat")])
    rows.append(run(case, model, data, "qat", qat.describe(), recipe=qat, distill=True))
    for ratio in (0.5,) if quick else (0.5, 0.75):
        rows.append(run(case, model, data, "slim only", f"slim {ratio}, fine-tuned, float", recipe=[Slim(ratio)],
                        slim_epochs=5))
    for target in ("mobile", "cpu", "gpu", "tpu"):
        rows.append(run(case, model, data, f"preset {target}", PRESETS[target].describe(), target=target))
    for target in ("mobile",) if quick else ("mobile", "cpu"):
        rows.append(run(case, model, data, f"guarded {target}", f"max_accuracy_loss={TOLERANCE}",
                        target=target, max_accuracy_loss=TOLERANCE, slim_epochs=5))
    return rows


def best_within(rows, methods, tolerance=1.0):
    chosen = [r for r in rows if r["method"] in methods and r["loss_points"] <= tolerance]
    return max(chosen, key=lambda r: r["smaller"], default=None)


def table(rows) -> str:
    lines = [
        "| case | method | settings | test acc | loss (pts) | gzip'd TFLite | smaller | params | MACs "
        "| bits/weight (entropy) | TF b256 | TFLite b256 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        latency = r["latency_ratio"]
        tf_ratio = f"{latency['tf_256']:.2f}x" if "tf_256" in latency else "-"
        lite_ratio = f"{latency['tflite_256']:.2f}x" if "tflite_256" in latency else "-"
        lines.append(
            f"| {r['case']} | {r['method']} | {r['settings']} | {r['test_accuracy']:.4f} | {r['loss_points']:+.2f} "
            f"| {r['gzip_bytes']:,} B | {r['smaller']:.1f}x | {r['params']:,} | {r['macs']:,} "
            f"| {r['bits_per_weight']:.2f} ({r['entropy_bits_per_weight']:.2f}) | {tf_ratio} | {lite_ratio} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="dense,conv", help="comma-separated: dense, conv")
    parser.add_argument("--quick", action="store_true", help="a short sweep and one guarded search")
    parser.add_argument("--epochs", type=int, default=60, help="most training epochs of each winner")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/compress.json")
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        rows += bench_case(case, args.quick, args.epochs, args.seed)
    print()
    print(table(rows))
    summary = {}
    for case in {r["case"] for r in rows}:
        case_rows = [r for r in rows if r["case"] == case]
        tfmot = best_within(case_rows, ("tfmot recipe", "tfmot swept"))
        ours = best_within(case_rows, tuple(r["method"] for r in case_rows if not r["method"].startswith("tfmot")))
        summary[case] = {
            "tfmot_best_within_1pt": None if tfmot is None else {
                k: tfmot[k] for k in ("settings", "smaller", "loss_points")},
            "structopt_best_within_1pt": None if ours is None else {
                k: ours[k] for k in ("method", "settings", "smaller", "loss_points")},
            "advantage": None if not (tfmot and ours) else ours["smaller"] / tfmot["smaller"],
        }
    print()
    print(json.dumps(summary, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "summary": summary, "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
