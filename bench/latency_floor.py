"""Benchmark: how much of a digits winner's batch latency slimming can remove at all.

A call of a model has a fixed cost that no narrowing touches: TensorFlow dispatches a
graph (executor, thread pool, one kernel launch per operation), TFLite sets up its
interpreter's tensors and copies the inputs and outputs. On a small network that fixed
cost is a large part of the batch's time, and it bounds what slimming can show.

For the dense and the convolutional winner of `bench/compress.py` (same architectures,
trained briefly: latency does not depend on the weights' values), one run measures at
batch 1 and batch 256, in TF (`tf.function` of the tf_keras model, as `compress`'s
report does) and TFLite (float file, one thread):

* the winner;
* the winner slimmed by 0.5 and by 0.75 (widths of `kso.compress.slim`);
* the floor: the same inputs and outputs with nothing in between but the head (a
  flattening and the 10-way softmax layer) -- the fastest model with this interface.

The models are measured in interleaved rounds (the median of each call series, the best
round kept); the ratios are to the winner in the same run. Prints a table and writes JSON.

    python bench/latency_floor.py            # both winners (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
from compress import train_winner  # noqa: E402

from keras_structopt.bridge._bridge import tf_keras_copy  # noqa: E402
from keras_structopt.compress import slim  # noqa: E402
from keras_structopt.compress._measure import keras_latency, tflite_latency  # noqa: E402
from keras_structopt.export import to_tflite_bytes  # noqa: E402

SETTINGS = ("tf_1", "tf_256", "tflite_1", "tflite_256")


def floor_model(winner):
    """The winner's inputs and outputs with only the head in between."""
    inputs = keras.Input(winner.input_shape[1:])
    outputs = keras.layers.Dense(winner.output_shape[-1], activation="softmax", name="head")(
        keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs, name="floor")


def measure(case: str, rounds: int, epochs: int) -> list[dict]:
    winner, data = train_winner(case, epochs, 0)
    x = data.train[0]
    models = {"winner": winner}
    for ratio in (0.5, 0.75):
        models[f"slim {ratio}"] = slim(winner, x[:512], ratio=ratio)[0]
    models["floor (head only)"] = floor_model(winner)
    prepared = {name: (tf_keras_copy(model, for_tflite=True), to_tflite_bytes(model, "none"), model.count_params())
                for name, model in models.items()}
    best: dict[str, dict[str, float]] = {name: {} for name in prepared}
    for _ in range(rounds):
        for name, (tf_model, lite, _) in prepared.items():
            for batch in (1, 256):
                timings = {f"tf_{batch}": keras_latency(tf_model, x, batch),
                           f"tflite_{batch}": tflite_latency(lite, x, batch)}
                for key, seconds in timings.items():
                    best[name][key] = min(best[name].get(key, float("inf")), seconds)
    rows = []
    for name, (_, _, params) in prepared.items():
        rows.append({"case": case, "model": name, "params": params,
                     "seconds": best[name],
                     "ratio": {k: best[name][k] / best["winner"][k] for k in SETTINGS}})
    return rows


def table(rows) -> str:
    lines = [f"| case | model | params | {' | '.join(SETTINGS)} |", "|" + "---|" * (3 + len(SETTINGS))]
    for r in rows:
        cells = " | ".join(f"{r['ratio'][k]:.2f}x ({1e6 * r['seconds'][k]:.0f} us)" for k in SETTINGS)
        lines.append(f"| {r['case']} | {r['model']} | {r['params']:,} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="dense,conv", help="comma-separated: dense, conv")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measuring rounds (the best is kept)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of each winner")
    parser.add_argument("--out", default="bench/results/latency_floor.json")
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        rows += measure(case, args.rounds, args.epochs)
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
