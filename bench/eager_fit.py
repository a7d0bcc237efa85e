"""Benchmark: a compression stage's fine-tuning `fit`, traced as a graph or run eagerly, by its steps.

`compress` fine-tunes TFMOT-wrapped tf_keras models. A traced `fit` first builds its
training step as a graph (Python walks every layer, then TensorFlow optimises the
graph), which on a large network costs far more than a few steps; an eager `fit` has no
such start but pays Python's dispatch on every step. This measures where the two cross,
to set `FineTuning.run_eagerly`'s default (`EAGER_MAX_STEPS`).

For each model (random weights, batch 16, one epoch of `steps` batches of random data),
a fresh copy is pruned by `keras_structopt.compress`'s own pruning stage (TFMOT's
wrappers, fine-tuning, stripping) once traced and once eagerly, in the same run; the
ratio is eager seconds over traced seconds (below 1: eager is faster).

    python bench/eager_fit.py                        # about 10 minutes on 2 cores
    python bench/eager_fit.py --models dense --steps 2,8
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
import numpy as np  # noqa: E402

from keras_structopt.bridge._bridge import tf_keras_copy  # noqa: E402
from keras_structopt.compress import FineTuning, Prune  # noqa: E402
from keras_structopt.compress._fine_tune import EAGER_MAX_STEPS, CompileSettings  # noqa: E402
from keras_structopt.compress._prune import plan, prune  # noqa: E402

BATCH = 16


def build(name: str):
    """A model by name: a 3-layer dense network on 64 features, or a `keras.applications` model at 32x32."""
    keras.utils.set_random_seed(0)
    if name == "dense":
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                                 keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    return getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10,
                                             classifier_activation=None)


def measure(name: str, steps_list: list[int]) -> list[dict]:
    model = build(name)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    settings = CompileSettings.resolve(model, FineTuning(), task=None)
    base = tf_keras_copy(model, for_tflite=True)
    rng = np.random.default_rng(0)
    rows = []
    for steps in steps_list:
        x = rng.uniform(0, 1, size=(BATCH * steps, *model.input_shape[1:])).astype("float32")
        y = rng.integers(0, 10, size=BATCH * steps)
        seconds = {}
        for mode, eager in (("traced", False), ("eager", True)):
            treatments = plan(base, Prune())
            start = time.perf_counter()
            prune(tf_keras_copy(base), (x, y), Prune(), epochs=1, batch_size=BATCH, fine_tuning=settings,
                  treatments=treatments, run_eagerly=eager)
            seconds[mode] = time.perf_counter() - start
        rows.append({"model": name, "params": model.count_params(), "steps": steps, "seconds": seconds,
                     "eager_over_traced": seconds["eager"] / seconds["traced"]})
        print(f"  {name} {steps} steps: traced {seconds['traced']:.2f} s, eager {seconds['eager']:.2f} s", flush=True)
    return rows


def table(rows) -> str:
    lines = ["| model | params | steps | traced (s) | eager (s) | eager / traced |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['params']:,} | {r['steps']} | {r['seconds']['traced']:.2f} | "
                     f"{r['seconds']['eager']:.2f} | {r['eager_over_traced']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="dense,MobileNetV3Small,NASNetMobile",
                        help="comma-separated: dense, or keras.applications constructors")
    parser.add_argument("--steps", default="2,8,16,32,64", help="comma-separated steps of one fit")
    parser.add_argument("--out", default="bench/results/eager_fit.json")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    rows = []
    for name in args.models.split(","):
        rows += measure(name, steps)
    print(table(rows))
    print(f"FineTuning(run_eagerly=None) runs a fit of at most {EAGER_MAX_STEPS} steps eagerly.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "eager_max_steps": EAGER_MAX_STEPS, "rows": rows},
                              indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
