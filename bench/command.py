"""Benchmark: the README's main job, `keras-structopt run` with its defaults, as a user runs it.

Runs the command (in its own process, in a fresh temporary directory, defaults only: the
bundled digits, 10 trials x 20 epochs, median stopping, the guarded compression, both
exports), times it, and reads what it wrote: the search's best trial, its test accuracy and
size, the compressed model's test accuracy, the size ratio and the files' sizes. Prints a
table and writes JSON; the README's figures for the main job come from this file.

    python bench/command.py              # about three minutes on 2 CPU cores
    python bench/command.py --repeats 2  # the time of each run, to see the spread
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once() -> dict:
    """One default `keras-structopt run` in a fresh directory; what it wrote, and its wall time."""
    workdir = Path(tempfile.mkdtemp(prefix="structopt-bench-command-"))
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "keras_structopt", "run", "--quiet"], cwd=workdir, check=True,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        seconds = time.perf_counter() - started
        out = workdir / "structopt-out"
        report = json.loads((out / "report.json").read_text())
        search, compression = report["search"], report["compression"]
        return {
            "seconds": seconds,
            "trials_completed": search["trials_completed"],
            "search_seconds": search["seconds"],
            "best_params": search["best_params"],
            "best_test_accuracy": search["best_test_accuracy"],
            "final_test_accuracy": compression["stages"][-1]["test_accuracy"],
            "size_ratio": compression["size_ratio"],
            "tflite_bytes": (out / report["export"]["tflite"]).stat().st_size,
            "saved_model_files": sum(1 for p in (out / report["export"]["saved_model"]).rglob("*") if p.is_file()),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", default="bench/results/command.json")
    args = parser.parse_args(argv)
    runs = [run_once() for _ in range(args.repeats)]
    print("| run | seconds | trials | best params | search test acc. | compressed test acc. | size ratio | "
          "TFLite bytes |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for index, row in enumerate(runs, start=1):
        print(f"| {index} | {row['seconds']:.0f} | {row['trials_completed']} | {row['best_params']:,} | "
              f"{row['best_test_accuracy']:.4f} | {row['final_test_accuracy']:.4f} | {row['size_ratio']:.1f}x | "
              f"{row['tflite_bytes']:,} |")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "cpus": os.cpu_count(), "python": platform.python_version(),
                               "command": "keras-structopt run --quiet", "runs": runs}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
