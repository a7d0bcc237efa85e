"""bench/gpu_backends.py: the bfloat16 copy of a model and the combined report (no accelerator needed)."""

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_backends.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_backends", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bfloat16_copy_keeps_weights_and_predictions():
    gpu = _module()
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    copy = gpu._bfloat16(model)
    assert {layer.dtype_policy.name for layer in copy.layers if layer.weights} == {"mixed_bfloat16"}
    for mine, theirs in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    np.testing.assert_allclose(np.asarray(copy(x), dtype="float32"), model(x), atol=0.03)


def _part(path, backend, seconds_by_case):
    rows = []
    for case, (base, slimmed) in seconds_by_case.items():
        for ratio, seconds in ((0.0, base), (0.5, slimmed)):
            for precision in ("float32", "bfloat16"):
                for part, batch in (("inference", 256), ("training", 1024)):
                    rows.append({"backend": backend, "case": case, "slim": ratio, "precision": precision,
                                 "part": part, "batch": batch, "seconds": seconds * (0.5 if precision == "bfloat16"
                                                                                      else 1.0),
                                 "params": 10, "macs": 10, "test_accuracy": 0.9})
    path.write_text(json.dumps({"device": {"backend": backend}, "keras": keras.__version__, "rows": rows}))
    return path


def test_report_combines_parts_later_rows_replace_earlier(tmp_path, capsys):
    gpu = _module()
    first = _part(tmp_path / "a.json", "jax", {"dense": (4.0, 2.0), "conv": (9.0, 9.0)})
    again = _part(tmp_path / "b.json", "jax", {"conv": (8.0, 2.0)})
    out = tmp_path / "report.json"
    assert gpu.report([first, again], out, (256,)) == 0
    rows = json.loads(out.read_text())["rows"]
    conv = [r for r in rows if r["case"] == "conv"]
    assert len(conv) == 8 and {r["seconds"] for r in conv if r["slim"] == 0.0} == {8.0, 4.0}
    speedups = {(r["case"], r["slim"], r["precision"], r["part"]): r["speedup"] for r in rows}
    assert speedups[("dense", 0.5, "float32", "inference")] == 2.0
    assert speedups[("conv", 0.5, "bfloat16", "training")] == 4.0
    assert all(r["vs_float32"] == 2.0 for r in rows if r["precision"] == "bfloat16")
    assert "| jax | conv | 0.5 | float32 |" in capsys.readouterr().out
