"""Benchmark: how wide the dense digits winner may stay and still be 30x smaller.

`bench/compress.py` asks for a file at least 30x smaller (gzip'd TFLite) than the float
file of the uncompressed winner, within 1.0 point of its accuracy. The dense winner
(64 -> 131 -> 10, 9,835 parameters) makes a float file of about 37 kB gzip'd, so 30x is
about 1.2 kB -- and a fully int8, stripped TFLite file of this interface costs about
0.55 kB gzip'd before it holds a single non-zero weight. This run measures both sides of
that budget:

* **size**: the winner's architecture at widths 131 ... 16, each trained (below), its
  first kernel pruned by magnitude to 0 / 50 / 75 / 85 / 90 % and every kernel clustered
  to 32 / 16 / 8 / 4 values (zero one of them, as TFMOT's sparsity-preserving clustering
  keeps it), converted the way the `mobile` preset converts (full int8, one scale per
  kernel, names and metadata stripped), gzip'd; and the same file with every weight zero
  (the container alone). No fine-tuning: the values' distribution is a trained one, which
  is all a file's size depends on.
* **accuracy**: each width trained from scratch with the winner's protocol (Adam 3e-3,
  dropout 0.2, up to `--epochs` epochs, early stopping on validation accuracy with
  patience 10, the best epoch kept), over `--seeds` seeds: validation and test accuracy,
  mean over the seeds, and the loss in points against the 131-unit winner trained the
  same way. A narrower network trained from scratch is what slimming plus fine-tuning is
  measured against (slimming the winner to the same width and fine-tuning it did not do
  better: docs/benchmarks.md, "Compression against TFMOT").

* **the candidates, compressed for real**: for every width whose from-scratch accuracy is
  within 1.0 point of the winner's on validation and whose file can reach 30x, each
  setting that reaches it is run through `kso.compress` (TFMOT pruning and clustering with
  distilled fine-tuning, full int8, stripped: the `mobile` preset's stages without
  slimming, since the width is already the slimmed one) on the seed-0 network; its
  validation and test accuracy and its real gzip'd size.

Prints the tables and writes JSON with every file size.

    python bench/size_floor.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize  # noqa: E402
from keras_structopt.data import load_digits_split  # noqa: E402
from keras_structopt.export import to_tflite_bytes  # noqa: E402

WIDTHS = (131, 98, 66, 50, 40, 33, 25, 16)
SPARSITIES = (0.0, 0.5, 0.75, 0.85, 0.9)
CLUSTERS = (32, 16, 8, 4)
GOAL = 30.0


def build(width: int):
    """The dense winner's architecture (docs/benchmarks.md: the digits winners) at `width` units."""
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(width, activation="relu", name="block_0_dense")(inputs)
    hidden = keras.layers.Dropout(0.2)(hidden)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(hidden)
    return keras.Model(inputs, outputs)


def train(width: int, seed: int, data, epochs: int):
    keras.utils.set_random_seed(seed)
    model = build(width)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(*data.train, validation_data=data.validation, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=10, restore_best_weights=True)])
    return model


def _cluster(values: np.ndarray, k: int) -> np.ndarray:
    """`values` with their non-zeros replaced by the nearest of `k - 1` centroids (1-D k-means)."""
    out = values.copy()
    nonzero = out != 0
    if nonzero.sum() <= k - 1:
        return out
    flat = out[nonzero]
    centroids = np.quantile(flat, np.linspace(0, 1, k - 1))
    for _ in range(25):
        nearest = np.abs(flat[:, None] - centroids[None, :]).argmin(1)
        centroids = np.array([flat[nearest == c].mean() if (nearest == c).any() else centroids[c]
                              for c in range(k - 1)])
    out[nonzero] = centroids[np.abs(flat[:, None] - centroids[None, :]).argmin(1)]
    return out


def compressed(model, sparsity: float, clusters: int):
    """A copy of `model` whose first kernel is pruned to `sparsity` and whose kernels hold `clusters` values."""
    copy = keras.models.clone_model(model)
    weights = [w.copy() for w in model.get_weights()]
    first = weights[0]
    if sparsity:
        first[np.abs(first) < np.quantile(np.abs(first), sparsity)] = 0.0
    weights[0] = _cluster(first, clusters)
    weights[2] = _cluster(weights[2], clusters)  # the head: clustered, never pruned (the preset's exclude="last")
    copy.set_weights(weights)
    return copy


def gzip_bytes(model, quantization: str, calibration) -> int:
    strip = quantization != "none"
    data = to_tflite_bytes(model, quantization, representative_data=calibration, strip=strip,
                           per_channel=None if strip else True)
    return len(gzip.compress(data, 9))


def measure(args) -> dict:
    data = load_digits_split("flat", seed=0)
    calibration = data.train[0][:256]
    rows, models = [], []
    for width in args.widths:
        trained = [train(width, seed, data, args.epochs) for seed in range(args.seeds)]
        models.append(trained[0])
        accuracy = {
            split: float(np.mean([m.evaluate(*getattr(data, split), verbose=0)[1] for m in trained]))
            for split in ("validation", "test")}
        model = trained[0]
        zero = keras.models.clone_model(model)
        zero.set_weights([np.zeros_like(w) for w in model.get_weights()])
        files = {f"{s}/{k}": gzip_bytes(compressed(model, s, k), "int8", calibration)
                 for s in SPARSITIES for k in CLUSTERS}
        rows.append({"width": width, "params": model.count_params(), "accuracy": accuracy,
                     "float_gzip_bytes": gzip_bytes(model, "none", calibration),
                     "int8_gzip_bytes": gzip_bytes(model, "int8", calibration),
                     "zero_weights_gzip_bytes": gzip_bytes(zero, "int8", calibration),
                     "pruned_clustered_gzip_bytes": files})
        print(f"  width {width:>3}: val {accuracy['validation']:.4f} test {accuracy['test']:.4f} "
              f"smallest {min(files.values()):,} B", flush=True)
    reference = next(r for r in rows if r["width"] == WIDTHS[0])
    for row in rows:
        row["loss_points"] = {split: 100 * (reference["accuracy"][split] - row["accuracy"][split])
                              for split in ("validation", "test")}
        setting, smallest = min(row["pruned_clustered_gzip_bytes"].items(), key=lambda item: item[1])
        row["smallest"] = {"setting": setting, "gzip_bytes": smallest,
                           "smaller": reference["float_gzip_bytes"] / smallest}
        row["settings_reaching_goal"] = sorted(
            s for s, b in row["pruned_clustered_gzip_bytes"].items() if reference["float_gzip_bytes"] / b >= GOAL)
    candidates = []
    for row, model in zip(rows, models):
        if row["loss_points"]["validation"] > 1.0:
            continue
        for setting in row["settings_reaching_goal"]:
            sparsity, clusters = setting.split("/")
            keras.utils.set_random_seed(0)
            recipe = [Prune(float(sparsity), exclude=("last",)), Cluster(int(clusters)),
                      Quantize("int8", per_channel="auto", strip=True)]
            _, compressed = kso.compress(model, data.train, validation_data=data.validation, test_data=data.test,
                                         recipe=recipe, max_accuracy_loss=None, fine_tuning=FineTuning(distill=True),
                                         measure_latency=False)
            report = compressed.report
            small = report.final
            candidate = {
                "width": row["width"], "setting": setting,
                "test_accuracy": small.metrics["accuracy"],
                "test_loss_points": 100 * (reference["accuracy"]["test"] - small.metrics["accuracy"]),
                "gzip_bytes": small.tflite_gzip_bytes,
                "smaller": reference["float_gzip_bytes"] / small.tflite_gzip_bytes}
            print(f"  compressed width {row['width']} at {setting}: test {candidate['test_accuracy']:.4f} "
                  f"({candidate['test_loss_points']:+.2f} pts) {candidate['gzip_bytes']:,} B "
                  f"{candidate['smaller']:.1f}x", flush=True)
            candidates.append(candidate)
    return {"settings": vars(args), "goal": GOAL, "baseline_float_gzip_bytes": reference["float_gzip_bytes"],
            "rows": rows, "candidates": candidates}


def table(result) -> str:
    lines = ["| width | params | val acc | test acc | loss (val / test pts) | int8 file, zero weights | "
             "smallest pruned + clustered | smaller | settings at >= 30x |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        reaching = ", ".join(r["settings_reaching_goal"]) or "none"
        lines.append(
            f"| {r['width']} | {r['params']:,} | {r['accuracy']['validation']:.4f} | {r['accuracy']['test']:.4f} "
            f"| {r['loss_points']['validation']:+.2f} / {r['loss_points']['test']:+.2f} "
            f"| {r['zero_weights_gzip_bytes']:,} B | {r['smallest']['gzip_bytes']:,} B ({r['smallest']['setting']}) "
            f"| {r['smallest']['smaller']:.1f}x | {reaching} |")
    if result.get("candidates"):
        lines += ["", "| width | setting (sparsity / clusters) | test acc | loss (test pts) | gzip'd | smaller |",
                  "|---:|---|---:|---:|---:|---:|"]
        for c in result["candidates"]:
            lines.append(f"| {c['width']} | {c['setting']} | {c['test_accuracy']:.4f} | {c['test_loss_points']:+.2f} "
                         f"| {c['gzip_bytes']:,} B | {c['smaller']:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=lambda s: [int(w) for w in s.split(",")], default=list(WIDTHS),
                        help="comma-separated widths; the first is the reference (the winner's 131)")
    parser.add_argument("--seeds", type=int, default=3, help="trainings per width (accuracy is their mean)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default="bench/results/size_floor.json")
    args = parser.parse_args(argv)
    if args.widths[0] != WIDTHS[0]:
        parser.error(f"--widths must start with the winner's width {WIDTHS[0]}, got {args.widths}")
    result = measure(args)
    print(f"float file of the {WIDTHS[0]}-unit winner: {result['baseline_float_gzip_bytes']:,} B gzip'd; "
          f"{GOAL:.0f}x is {result['baseline_float_gzip_bytes'] / GOAL:,.0f} B")
    print(table(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
