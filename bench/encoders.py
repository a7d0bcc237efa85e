"""Benchmark: slimming transformer encoders along heads and feed-forward width, on trained tasks.

Two encoders written from `keras.layers` the way Keras users write them
(`tests/bridge/encoders.py`): a BERT-style one on the digits as 64 integer tokens (17
intensities), and a ViT-style one on the digits as 8x8 images (patches of 2x2). Each is
trained with early stopping on the validation split (Adam 1e-3, patience 5, best weights
restored), then `kso.compress(model, ..., recipe=[Slim(0.6, heads=0.25)])` removes 60 % of
each feed-forward network's units and a quarter of each attention layer's heads (by
importance on training data) and fine-tunes 10 epochs. Test accuracy before and after, FFN
parameters and heads before and after, per seed.

    python bench/encoders.py              # both encoders, seeds 0-2 (about 8 minutes on 2 cores)
    python bench/encoders.py --encoders bert --seeds 0 --ratio 0.5 --out /tmp/bert.json

Prints the table and writes `bench/results/encoders.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import keras_structopt as kso  # noqa: E402
from keras_structopt.compress import FineTuning, Slim  # noqa: E402
from tests.bridge.encoders import bert_style, ffn_parameters, vit_style  # noqa: E402

SIZE = dict(dim=64, heads=8, ffn=256, blocks=2)
FINE_TUNING_EPOCHS = 10


def one(kind: str, seed: int, recipe) -> dict:
    data = kso.data.load_digits_split("tokens" if kind == "bert" else "image", seed=seed)
    keras.utils.set_random_seed(seed)
    model = bert_style(17, 64, 10, **SIZE) if kind == "bert" else vit_style((8, 8, 1), 10, **SIZE)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(*data.train, epochs=100, batch_size=32, verbose=0, validation_data=data.validation,
                        callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)])
    trained = time.perf_counter() - started
    before = float(model.evaluate(*data.test, verbose=0)[1])
    started = time.perf_counter()
    small, result = kso.compress(model, data.train, validation_data=data.validation, test_data=data.test,
                                 recipe=recipe, max_accuracy_loss=None,
                                 fine_tuning=FineTuning(slim_epochs=FINE_TUNING_EPOCHS, learning_rate=1e-3,
                                                        distill=True),
                                 measure_latency=False)
    after = float(small.evaluate(*data.test, verbose=0)[1])
    heads = result.report.slimmed_heads
    return {
        "encoder": f"{kind}-style", "seed": seed, "epochs": len(history.history["loss"]),
        "train_seconds": round(trained, 1), "slim_seconds": round(time.perf_counter() - started, 1),
        "accuracy_before": before, "accuracy_after": after, "points_lost": round(100 * (before - after), 2),
        "ffn_parameters_before": ffn_parameters(model), "ffn_parameters_after": ffn_parameters(small),
        "ffn_reduction": ffn_parameters(model) / ffn_parameters(small),
        "heads": {name: list(value) for name, value in heads.items()},
        "parameters_before": int(model.count_params()), "parameters_after": int(small.count_params()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--encoders", nargs="+", choices=["bert", "vit"], default=["bert", "vit"])
    parser.add_argument("--ratio", type=float, default=0.6, help="Slim's ratio (FFN units removed)")
    parser.add_argument("--heads", type=float, default=0.25, help="Slim's heads (fraction of heads removed)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoders.json"))
    args = parser.parse_args(argv)
    recipe = [Slim(args.ratio, heads=args.heads)]
    rows = [one(kind, seed, recipe) for kind in args.encoders for seed in args.seeds]
    print(f"{'encoder':<11} {'seed':>4} {'before':>7} {'after':>7} {'lost':>6} {'FFN params':>17} {'heads/layer':>12}")
    for row in rows:
        heads = ", ".join(f"{a}->{b}" for a, b in row["heads"].values())
        print(f"{row['encoder']:<11} {row['seed']:>4} {row['accuracy_before']:>7.4f} {row['accuracy_after']:>7.4f} "
              f"{row['points_lost']:>6.2f} {row['ffn_parameters_before']:>7} -> {row['ffn_parameters_after']:<6} "
              f"{heads:>12}")
    Path(args.out).write_text(json.dumps({
        "settings": {"size": SIZE, "recipe": [stage.to_dict() for stage in recipe],
                     "fine_tuning_epochs": FINE_TUNING_EPOCHS},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "keras": keras.__version__},
        "rows": rows,
    }, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
