"""Slimmed models on an accelerator through Keras 3's JAX and PyTorch backends (no TensorFlow there).

A slimmed keras-structopt model is an ordinary Keras 3 model, so it runs under every Keras
backend. This check measures what slimming does to speed where TensorFlow's GPU build is not
installed (a machine with only JAX or PyTorch, as many accelerator images are), in two steps:

    python bench/gpu_backends.py export .gpu      # here: TensorFlow + keras-structopt train, slim, save
    python bench/gpu_backends.py measure .gpu --out bench/results/gpu_backends.json   # there: keras + jax/torch
    python bench/gpu_backends.py report --parts a.json b.json --out combined.json     # runs combined

`export` trains four digits models with a fixed protocol (seed 0) -- the dense and the
convolutional winners of `bench/compress.py`, and a wide dense (3 x 1024 units) and a wide
convolutional (3 residual blocks of 128 filters) network, large enough for an accelerator to
be busy -- slims each at 0.5 and 0.75 (widths kept multiples of 8, fine-tuned 5 epochs),
and writes every model as a plain functional `.keras` file with its test accuracy,
parameters and MACs (`manifest.json`) and the test split (`x_test.npy`, `y_test.npy`).

`measure` needs only `keras`, `numpy` and a backend. For each backend it can import (`jax`,
`torch`; each in its own process), it checks that every file reproduces its test accuracy,
then times in float32 and in bfloat16 (the layers' policy set to `mixed_bfloat16`):

* inference: the forward pass at batch 1, 256, 4096 and 65536 (JAX: `jax.jit` of
  `stateless_call`; PyTorch: eager `model(x)` under `no_grad`), median of repeats after
  warm-up, synchronised;
* training: one `train_on_batch` step at batch 1024 (Adam, compiled as Keras compiles it
  for the backend);
* 2:4 sparsity (PyTorch only, where its semi-structured sparse kernels are available): the
  wide dense model's hidden kernels pruned 2:4 by magnitude, `F.linear` against
  `to_sparse_semi_structured` in bfloat16 -- what a 2:4-capable kernel gives, which no
  Keras backend uses on its own.

Every ratio is against the unslimmed model of the same case, backend, precision and batch,
measured in the same process. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCHES = (1, 256, 4096, 65536)
TRAIN_BATCH = 1024
RATIOS = (0.5, 0.75)
BACKENDS = ("jax", "torch")


# --------------------------------------------------------------------------- export (TensorFlow side)

def _cases():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compress import WINNERS

    wide_dense = {"family": "dense", "input_shape": [64], "task": "multiclass", "outputs": 10,
                  "blocks": [{"kind": "dense", "units": 1024, "stage": 0}] * 3, "connection": "plain",
                  "options": {"activation": "relu", "batch_norm": False, "dropout": 0.2}}
    wide_conv = {"family": "conv", "input_shape": [8, 8, 1], "task": "multiclass", "outputs": 10,
                 "blocks": [{"kind": "residual", "units": 128, "stage": stage} for stage in (0, 1, 1)],
                 "connection": "plain",
                 "options": {"activation": "relu", "batch_norm_momentum": 0.9, "downsample": "max_pool",
                             "dropout": 0.25, "kernel_size": 3, "pooling": "avg"}}
    return {
        "dense": (WINNERS["dense"][0], WINNERS["dense"][1], 60),
        "conv": (WINNERS["conv"][0], WINNERS["conv"][1], 60),
        "dense wide": ("flat", wide_dense, 30),
        "conv wide": ("image", wide_conv, 30),
    }


def export(directory: Path) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import keras

    import keras_structopt as kso
    from keras_structopt.compress._measure import count_model_macs
    from keras_structopt.data import load_digits_split

    directory.mkdir(parents=True, exist_ok=True)
    manifest = []
    saved_test = {}
    for case, (view, architecture, epochs) in _cases().items():
        data = load_digits_split(view, seed=0)
        saved_test[view] = data.test
        keras.utils.set_random_seed(0)
        model = kso.render(kso.Architecture.from_dict({"version": 1, **architecture}), keras)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        started = time.time()
        model.fit(*data.train, validation_data=data.validation, epochs=epochs, batch_size=32, verbose=0,
                  callbacks=[keras.callbacks.EarlyStopping("val_accuracy", patience=10, restore_best_weights=True)])
        variants = {0.0: model}
        for ratio in RATIOS:
            variants[ratio], _ = kso.slim(model, data.train[0][:512], ratio=ratio, multiple=8,
                                          train_data=data.train, epochs=5)
        for ratio, variant in variants.items():
            plain = keras.Model(variant.inputs, variant.outputs, name=variant.name)  # no keras-structopt class
            name = f"{case.replace(' ', '_')}_{int(ratio * 100):02d}"
            plain.save(directory / f"{name}.keras")
            accuracy = float(np.mean(np.argmax(plain.predict(data.test[0], verbose=0), -1) == data.test[1]))
            manifest.append({"name": name, "case": case, "view": view, "slim": ratio,
                             "params": int(plain.count_params()), "macs": int(count_model_macs(kso.to_tf_keras(plain))),
                             "test_accuracy": accuracy})
            print(f"{name}: params {manifest[-1]['params']:,}, MACs {manifest[-1]['macs']:,}, "
                  f"test accuracy {accuracy:.4f} ({time.time() - started:.0f} s)", flush=True)
    for view, (x, y) in saved_test.items():
        np.save(directory / f"x_test_{view}.npy", x)
        np.save(directory / f"y_test_{view}.npy", y)
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"wrote {len(manifest)} models to {directory}")
    return 0


# --------------------------------------------------------------------------- measure (accelerator side)

def _bfloat16(model):
    """The same model with every layer's policy `mixed_bfloat16` (weights copied)."""

    def retype(value):
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy":
                return {**value, "config": {**value["config"], "name": "mixed_bfloat16"}}
            return {key: retype(item) for key, item in value.items()}
        if isinstance(value, list):
            return [retype(item) for item in value]
        return value

    config = retype(model.get_config())
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _median(function, repeats: int, budget_s: float = 1.0) -> float:
    times = []
    deadline = time.perf_counter() + budget_s
    for i in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
        if i >= 4 and time.perf_counter() > deadline:
            break
    return float(np.median(times))


def _tiled(x, batch: int):
    reps = -(-batch // len(x))
    return np.concatenate([x] * reps)[:batch]


def _device_info(backend: str) -> dict:
    if backend == "jax":
        import jax

        devices = jax.devices()
        return {"backend": "jax", "version": jax.__version__, "device": str(devices[0].device_kind),
                "platform": devices[0].platform}
    import torch

    gpu = torch.cuda.is_available()
    return {"backend": "torch", "version": torch.__version__,
            "device": torch.cuda.get_device_name(0) if gpu else platform.processor() or "cpu",
            "platform": "gpu" if gpu else "cpu"}


def _forward(backend: str, model, batch: np.ndarray):
    """A function running the forward pass on the device and waiting for it."""
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]
        call = jax.jit(lambda t, n, x: model.stateless_call(t, n, x, training=False)[0])
        inputs = jax.device_put(batch)
        return lambda: call(trainable, frozen, inputs).block_until_ready()
    import torch

    inputs = torch.as_tensor(batch, device="cuda" if torch.cuda.is_available() else "cpu")

    def run():
        with torch.no_grad():
            model(inputs, training=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return run


def _train_step(model, x: np.ndarray, y: np.ndarray):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return lambda: model.train_on_batch(x, y)


def _sparse_24(directory: Path, manifest: list, batches: tuple[int, ...]) -> list[dict]:
    """PyTorch's 2:4 semi-structured kernels on the wide dense model's hidden kernels."""
    import keras
    import torch
    from torch.sparse import to_sparse_semi_structured

    entry = next(m for m in manifest if m["case"] == "dense wide" and m["slim"] == 0.0)
    model = keras.models.load_model(directory / f"{entry['name']}.keras", compile=False)
    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers
               if hasattr(layer, "kernel") and layer.kernel.shape[0] == layer.kernel.shape[1]]
    rows = []
    for index, kernel in enumerate(kernels):
        weight = kernel.T.copy()  # (out, in): groups of 4 consecutive inputs
        groups = weight.reshape(weight.shape[0], -1, 4)
        order = np.argsort(np.abs(groups), axis=-1)
        mask = np.ones_like(groups, dtype=bool)
        np.put_along_axis(mask, order[..., :2], False, axis=-1)
        pruned = torch.as_tensor((groups * mask).reshape(weight.shape), dtype=torch.bfloat16, device="cuda")
        sparse = to_sparse_semi_structured(pruned)
        for batch in [b for b in batches if b > 1]:
            x = torch.randn(batch, weight.shape[1], dtype=torch.bfloat16, device="cuda")
            def timed(weights, inputs=x):
                return _median(lambda: (torch.nn.functional.linear(inputs, weights), torch.cuda.synchronize()), 50)

            dense_s, sparse_s = timed(pruned), timed(sparse)
            error = float((torch.nn.functional.linear(x, sparse) - torch.nn.functional.linear(x, pruned)).abs().max())
            rows.append({"part": "2:4", "backend": "torch", "kernel": f"hidden {index + 1} {tuple(weight.shape)}",
                         "batch": batch, "dense_seconds": dense_s, "sparse_seconds": sparse_s,
                         "speedup": dense_s / sparse_s, "max_abs_difference": error})
            print(f"2:4 kernel {index + 1} batch {batch}: dense {dense_s * 1e6:.1f} us, "
                  f"2:4 {sparse_s * 1e6:.1f} us ({dense_s / sparse_s:.2f}x)", flush=True)
    return rows


def measure_backend(backend: str, directory: Path, out: Path, batches: tuple[int, ...], cases=None) -> int:
    os.environ["KERAS_BACKEND"] = backend
    import keras

    manifest = json.loads((directory / "manifest.json").read_text())
    info = _device_info(backend)
    print(f"{backend}: {info}", flush=True)
    rows: list[dict] = []

    def save():
        out.write_text(json.dumps({"device": info, "keras": keras.__version__, "rows": rows}, indent=2))

    for entry in [m for m in manifest if not cases or m["case"] in cases]:
        x = np.load(directory / f"x_test_{entry['view']}.npy")
        y = np.load(directory / f"y_test_{entry['view']}.npy")
        model = keras.models.load_model(directory / f"{entry['name']}.keras", compile=False)
        for precision in ("float32", "bfloat16"):
            variant = model if precision == "float32" else _bfloat16(model)
            predicted = np.asarray(keras.ops.convert_to_numpy(variant.predict(x, batch_size=512, verbose=0)))
            accuracy = float(np.mean(np.argmax(predicted, -1) == y))
            base = {"backend": backend, "case": entry["case"], "slim": entry["slim"], "precision": precision,
                    "params": entry["params"], "macs": entry["macs"], "test_accuracy": accuracy,
                    "exported_test_accuracy": entry["test_accuracy"]}
            for batch in batches:
                run = _forward(backend, variant, _tiled(x, batch))
                for _ in range(3):
                    run()
                seconds = _median(run, 30)
                rows.append({**base, "part": "inference", "batch": batch, "seconds": seconds,
                             "examples_per_second": batch / seconds})
            step = _train_step(_bfloat16(model) if precision == "bfloat16" else
                               keras.models.clone_model(model), _tiled(x, TRAIN_BATCH), _tiled(y, TRAIN_BATCH))
            for _ in range(3):
                step()
            seconds = _median(step, 30)
            rows.append({**base, "part": "training", "batch": TRAIN_BATCH, "seconds": seconds,
                         "examples_per_second": TRAIN_BATCH / seconds})
            print(f"{entry['name']} {precision}: accuracy {accuracy:.4f} (exported {entry['test_accuracy']:.4f}); "
                  f"batch {batches[-1]} {rows[-2]['seconds'] * 1e3:.3f} ms; train step {seconds * 1e3:.3f} ms",
                  flush=True)
            save()
    if backend == "torch" and info["platform"] == "gpu":
        try:
            rows += _sparse_24(directory, manifest, batches)
        except Exception as error:  # noqa: BLE001 - recorded, not fatal: kernels need a capable GPU
            rows.append({"part": "2:4", "backend": "torch", "error": f"{type(error).__name__}: {error}"})
            print(f"2:4 kernels unavailable: {type(error).__name__}: {error}", flush=True)
        save()
    return 0


def _with_ratios(rows: list[dict]) -> list[dict]:
    for row in rows:
        if row.get("part") not in ("inference", "training"):
            continue
        base = next(r for r in rows if r.get("part") == row["part"] and r["backend"] == row["backend"]
                    and r["case"] == row["case"] and r["precision"] == row["precision"]
                    and r["batch"] == row["batch"] and r["slim"] == 0.0)
        row["speedup"] = base["seconds"] / row["seconds"]
        float32 = next(r for r in rows if r.get("part") == row["part"] and r["backend"] == row["backend"]
                       and r["case"] == row["case"] and r["precision"] == "float32"
                       and r["batch"] == row["batch"] and r["slim"] == row["slim"])
        row["vs_float32"] = float32["seconds"] / row["seconds"]
    return rows


def measure(directory: Path, out: Path, backends: list[str], timeout_s: int, batches: tuple[int, ...]) -> int:
    parts, exits = [], {}
    for backend in backends:
        part = out.with_name(f"{out.stem}.{backend}.json")
        command = [sys.executable, __file__, "measure-one", str(directory), "--backend", backend, "--out", str(part),
                   "--batches", *map(str, batches)]
        try:
            exits[backend] = subprocess.run(command, timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            exits[backend] = f"stopped at its {timeout_s} s limit"
        if part.exists():
            parts.append(part)
    return report(parts, out, batches, exits)


def report(parts: list[Path], out: Path, batches: tuple[int, ...], exits: dict | None = None) -> int:
    """Combines `measure-one` files (a later file's rows replace an earlier one's for the same backend
    and case: a case re-measured after a run stopped at its limit), adds the ratios, prints, writes."""
    results: dict = {"host": platform.node(), "backends": {}, "parts": [str(p) for p in parts], "rows": []}
    for part in parts:
        done = json.loads(Path(part).read_text())
        backend = done["device"]["backend"]
        results["backends"][backend] = {**done["device"], "keras": done["keras"],
                                        "exit": (exits or {}).get(backend, 0)}
        replaced = {(r["backend"], r.get("case")) for r in done["rows"]}
        results["rows"] = [r for r in results["rows"] if (r["backend"], r.get("case")) not in replaced]
        results["rows"] += done["rows"]
    rows = _with_ratios(results["rows"])
    print("\n| backend | case | slim | precision | params | MACs | test acc. | "
          + " | ".join(f"b={b}" for b in batches) + " | train step |")
    print("|---|---|---:|---|---:|---:|---:|" + "---:|" * (len(batches) + 1))
    keys = sorted({(r["backend"], r["case"], r["slim"], r["precision"]) for r in rows if "case" in r})
    for backend, case, ratio, precision in keys:
        mine = [r for r in rows if (r.get("backend"), r.get("case"), r.get("slim"), r.get("precision"))
                == (backend, case, ratio, precision)]
        cells = []
        for part, batch in [("inference", b) for b in batches] + [("training", TRAIN_BATCH)]:
            r = next(r for r in mine if r["part"] == part and r["batch"] == batch)
            cells.append(f"{r['seconds'] * 1e3:.3f} ms ({r['speedup']:.2f}x)")
        first = mine[0]
        print(f"| {backend} | {case} | {ratio} | {precision} | {first['params']:,} | {first['macs']:,} | "
              f"{first['test_accuracy']:.4f} | " + " | ".join(cells) + " |")
    sparse = [r for r in rows if r.get("part") == "2:4"]
    if sparse:
        print("\n| 2:4 kernel | batch | dense bf16 | 2:4 bf16 | speedup |\n|---|---:|---:|---:|---:|")
        for r in sparse:
            if "error" in r:
                print(f"| {r['error']} | | | | |")
            else:
                print(f"| {r['kernel']} | {r['batch']} | {r['dense_seconds'] * 1e6:.1f} us | "
                      f"{r['sparse_seconds'] * 1e6:.1f} us | {r['speedup']:.2f}x |")
    results["rows"] = rows
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("export", "measure", "measure-one", "report"))
    parser.add_argument("directory", type=Path, nargs="?", help="the exported models (export, measure, measure-one)")
    parser.add_argument("--parts", type=Path, nargs="+", help="report: measure-one files to combine, in order")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu_backends.json"))
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="backends to measure (default: both); measure-one takes exactly one")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per backend")
    parser.add_argument("--cases", nargs="+", help="measure-one: only these cases (default: all)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="inference batch sizes")
    args = parser.parse_args(argv)
    if args.step == "export":
        return export(args.directory)
    if args.step == "report":
        return report(args.parts, args.out, tuple(args.batches))
    if args.step == "measure-one":
        return measure_backend(args.backend[0], args.directory, args.out, tuple(args.batches), args.cases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    return measure(args.directory, args.out, args.backend or list(BACKENDS), args.timeout, tuple(args.batches))


if __name__ == "__main__":
    sys.exit(main())
