"""Runs `keras-structopt run` in this process and kills it with SIGKILL at a chosen point.

    python tests/fault_driver.py search|compress|export|tflite RUN-FLAGS...

`search`: at the end of an epoch once one trial has finished (a trial is running);
`search:int` and `search:term` send SIGINT or SIGTERM there instead of SIGKILL;
`compress`: when the pruning stage starts; `export`: after the SavedModel is written into
its temporary directory, before it is renamed into place; `tflite`: after the SavedModel
version is in place, before the TFLite file is written. The crash tests resume each.
"""

import json
import os
import signal
import sys
from pathlib import Path

SIGNAL = signal.SIGKILL  # `search:int` / `search:term` interrupt instead (Ctrl-C, a polite kill)


def die(*_, **__):
    os.kill(os.getpid(), SIGNAL)


def main(point, flags):
    import importlib

    global SIGNAL
    point, _, how = point.partition(":")
    SIGNAL = {"": signal.SIGKILL, "int": signal.SIGINT, "term": signal.SIGTERM}[how]

    import keras


    cli = importlib.import_module("keras_structopt._cli")
    pipeline = importlib.import_module("keras_structopt.compress._pipeline")  # kso.compress is the function
    saved_model = importlib.import_module("keras_structopt.export._saved_model")

    out = Path(flags[flags.index("--out") + 1])
    if point == "search":
        class Killer(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                finished = [p for p in (out / "tuner").glob("trial_*/trial.json")
                            if json.loads(p.read_text())["status"] == "COMPLETED"]
                if finished:
                    die()

        cli._progress_callback = lambda *args, **kwargs: Killer()
    elif point == "compress":
        pipeline._Job.pruned = die
    elif point == "export":
        original = saved_model.write_saved_model

        def write_then_die(model, directory):
            original(model, directory)
            die()

        saved_model.write_saved_model = write_then_die
    elif point == "tflite":
        from keras_structopt.compress import CompressionResult

        CompressionResult.save_tflite = die
    else:
        raise SystemExit(f"unknown point {point!r}")
    return cli.main(["run", *flags])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
