"""The `keras-structopt` command.

`keras-structopt run` searches a structural space on a bundled dataset, compresses
the winner, exports it and writes a report. With no flags it runs a small real job:
the dense family on scikit-learn's digits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from keras_structopt import _checks

TUNERS = ("random", "grid", "bayesian", "hyperband")
FAMILIES = {
    # family -> (digits view, HyperModel class name)
    "dense": ("flat", "DenseHyperModel"),
    "conv": ("image", "ConvHyperModel"),
    "recurrent": ("rows", "RecurrentHyperModel"),
    "transformer": ("rows", "TransformerHyperModel"),
}
# Views each family can read.
FAMILY_VIEWS = {
    "dense": ("flat", "rows", "image", "tokens"),
    "conv": ("image",),
    "recurrent": ("rows", "tokens"),
    "transformer": ("rows", "tokens"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-structopt",
        description="Search a Keras model's structure, compress the winner, export it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="search -> compress -> export on bundled digits",
        description=(
            "Search the structure of a network family on scikit-learn's digits (fixed "
            "stratified 60/20/20 split), compress the winner with TFMOT, export it as a "
            "TF Serving SavedModel and a TFLite file, and write OUT/report.json and "
            "OUT/report.md."
        ),
    )
    run.add_argument("--family", default="dense", help=f"one of {sorted(FAMILIES)} (default: dense)")
    run.add_argument(
        "--view", default=None, help="digits view: flat, image, rows or tokens (default: the family's)"
    )
    run.add_argument("--tuner", default="random", help=f"one of {list(TUNERS)} (default: random)")
    run.add_argument(
        "--trials", type=int, default=10, help="max trials (default: 10; Hyperband sizes itself from --epochs)"
    )
    run.add_argument("--epochs", type=int, default=20, help="epochs per trial (default: 20)")
    run.add_argument(
        "--target", default="cpu",
        help="deployment preset whose stages the compression uses: mobile, cpu, gpu or tpu (default: cpu)",
    )
    run.add_argument(
        "--max-accuracy-loss", default="0.01",
        help="search for the smallest model whose validation accuracy is at most this much below the "
        "winner's (default: 0.01, one point); 'none' applies the settings below once instead",
    )
    run.add_argument("--slim", type=float, default=None, help="fixed settings: fraction of units to remove")
    run.add_argument("--sparsity", type=float, default=None, help="fixed settings: target kernel sparsity (0.8)")
    run.add_argument(
        "--clusters", type=int, default=None, help="fixed settings: max distinct values per kernel; 0 skips (16)"
    )
    run.add_argument(
        "--quantization", default=None,
        help="fixed settings: TFLite conversion: dynamic, float16, int8, qat or none (dynamic)",
    )
    run.add_argument("--prune-epochs", type=int, default=10, help="fine-tuning epochs while pruning (default: 10)")
    run.add_argument("--cluster-epochs", type=int, default=3, help="fine-tuning epochs while clustering (default: 3)")
    run.add_argument("--out", default="structopt-out", help="output directory (default: structopt-out)")
    run.add_argument("--name", default="digits", help="exported model name (default: digits)")
    run.add_argument("--seed", type=int, default=0, help="seed of the split, the search and the weights (default: 0)")
    run.add_argument("--resume", action="store_true", help="continue the search already in OUT/tuner")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument(
        "--job", default=None,
        help="a JSON file of these settings, keys as the flags without dashes ({\"family\": \"conv\", "
        "\"trials\": 5, \"max_accuracy_loss\": \"none\"}); flags given as well win",
    )
    return parser


def _run_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]


def load_job(path, parser: argparse.ArgumentParser | None = None) -> dict:
    """Reads a job file: a JSON object of `run` settings, each key a flag without its dashes.

    Every key and value is checked against the flags (unknown keys, wrong types), so a
    malformed job fails before any work, naming the key, the value and what is accepted.

    Example:
        >>> import json
        >>> path = getfixture("tmp_path") / "job.json"
        >>> _ = path.write_text(json.dumps({"family": "conv", "trials": 5, "max_accuracy_loss": "none"}))
        >>> load_job(path)
        {'family': 'conv', 'trials': 5, 'max_accuracy_loss': 'none'}
    """
    run = _run_parser(parser or _parser())
    actions = {a.dest: a for a in run._actions if a.dest not in ("help", "job")}
    try:
        job = json.loads(Path(path).read_text())
    except OSError as error:
        raise _checks.error(
            f"Expected --job to be a readable JSON file. Received: --job={str(path)!r} ({error})."
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise _checks.error(
            f"Expected --job to hold JSON. Received: --job={str(path)!r}, which does not parse ({error})."
        ) from None
    if not isinstance(job, dict):
        raise _checks.error(
            f"Expected --job to hold a JSON object of settings. Received: a JSON {type(job).__name__} in {str(path)!r}."
        )
    settings = {}
    for key, value in job.items():
        name = str(key).replace("-", "_")
        action = actions.get(name)
        if action is None:
            raise _checks.error(
                f"Expected the keys of --job among {sorted(actions)}. Received: {str(key)!r} in {str(path)!r}."
            )
        if isinstance(action, argparse._StoreTrueAction):
            accepted, ok = "true or false", isinstance(value, bool)
        elif action.type is int:
            accepted, ok = "an integer", isinstance(value, int) and not isinstance(value, bool)
        elif action.type is float:
            accepted, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        elif name == "max_accuracy_loss":
            accepted, ok = "a number or 'none'", isinstance(value, (int, float, str)) and not isinstance(value, bool)
        else:
            accepted, ok = "a string", isinstance(value, str)
        if not ok and not (value is None and action.default is None):
            raise _checks.error(f"Expected {name} in --job to be {accepted}. Received: {name}={value!r}.")
        settings[name] = str(value) if name == "max_accuracy_loss" and value is not None else value
    return settings


def parse_run(argv: list[str]) -> argparse.Namespace:
    """Parses and checks `run` flags (and a `--job` file): every problem raises a
    `ConfigurationError` before any work.

    Example:
        >>> parse_run(["run", "--family", "conv", "--trials", "2"]).trials
        2
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "job", None) is not None:
        _run_parser(parser).set_defaults(**load_job(args.job, parser))
        args = parser.parse_args(argv)  # flags given on the command line win over the job's
    _validate(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-structopt` command; returns the exit status.

    Example:
        >>> from keras_structopt.cli import main
        >>> main(["run", "--tuner", "sideways"])  # bad flags fail before any work
        2
    """
    from keras_structopt.errors import ConfigurationError

    args = _parser().parse_args(argv)
    if args.command == "run":
        try:
            args = parse_run(argv)
            return run(args)
        except ConfigurationError as error:  # bad flags, or a --resume of a project that cannot be read
            print(f"keras-structopt run: error: {error}", file=sys.stderr)
            return 2
    return 2  # pragma: no cover - argparse requires a command


def _validate(args) -> None:
    _checks.one_of("--tuner", args.tuner, TUNERS)
    _checks.one_of("--family", args.family, tuple(FAMILIES))
    if args.view is not None:
        _checks.one_of("--view", args.view, FAMILY_VIEWS[args.family])
    _checks.positive_int("--trials", args.trials)
    _checks.positive_int("--epochs", args.epochs)
    _checks.one_of("--target", args.target, ("mobile", "cpu", "gpu", "tpu"))
    if str(args.max_accuracy_loss).lower() == "none":
        args.max_accuracy_loss = None
    else:
        try:
            args.max_accuracy_loss = float(args.max_accuracy_loss)
        except ValueError:
            args.max_accuracy_loss = -1.0
        if not 0 <= args.max_accuracy_loss < 1:
            raise _checks.error(
                "Expected --max-accuracy-loss to be a number in [0, 1) or 'none'. "
                f"Received: --max-accuracy-loss={args.max_accuracy_loss!r}."
            )
    fixed = [f for f in ("slim", "sparsity", "clusters", "quantization") if getattr(args, f) is not None]
    if fixed and args.max_accuracy_loss is not None:
        raise _checks.error(
            "Expected either the accuracy-guarded search (--max-accuracy-loss) or fixed settings "
            f"(--slim, --sparsity, --clusters, --quantization). Received: --max-accuracy-loss={args.max_accuracy_loss} "
            f"and {', '.join('--' + f for f in fixed)}; pass --max-accuracy-loss none to apply fixed settings."
        )
    args.sparsity = 0.8 if args.sparsity is None else args.sparsity
    args.clusters = 16 if args.clusters is None else args.clusters
    args.quantization = args.quantization or "dynamic"
    if args.slim is not None:
        _checks.fraction("--slim", args.slim)
    _checks.fraction("--sparsity", args.sparsity)
    if args.clusters != 0 and not 2 <= args.clusters <= 256:
        raise _checks.error(
            f"Expected --clusters to be 0 (skip) or in [2, 256]. Received: --clusters={args.clusters}."
        )
    _checks.one_of("--quantization", args.quantization, ("dynamic", "float16", "int8", "qat", "none"))
    _checks.positive_int("--prune-epochs", args.prune_epochs)
    _checks.non_negative_int("--cluster-epochs", args.cluster_epochs)
    _checks.non_negative_int("--seed", args.seed)
    from keras_structopt.export.saved_model import _NAME

    if not isinstance(args.name, str) or not _NAME.match(args.name):
        raise _checks.error(
            "Expected --name to be a model name of letters, digits, '.', '_' and '-' (no path separators). "
            f"Received: --name={args.name!r}."
        )
    _checks.writable_directory("--out", args.out)
    project = Path(args.out) / "tuner"
    if project.exists() and not args.resume:
        raise _checks.error(
            f"Expected --out to hold no earlier search. Received: --out={args.out!r}, whose "
            f"{str(project)!r} exists; pass --resume to continue that search, or choose another --out."
        )


def make_tuner(
    kind: str, hypermodel, *, trials: int, epochs: int, seed: int, directory, project_name: str, overwrite: bool = False
):
    """A Keras Tuner tuner of `kind` on `hypermodel`, maximising validation accuracy.

    The tuner is keras-structopt's (`keras_structopt.search.tuner`): no duplicate
    networks, a diverging trial failed at once with its reason, a search without one
    completed trial an error. Keras Tuner silently replaces a seed of 0 with a random
    one, so the oracle gets `seed + 1`: every seed, 0 included, repeats its search.

    Example:
        >>> import keras_structopt as kso
        >>> from keras_structopt.cli import make_tuner
        >>> tuner = make_tuner("random", kso.DenseHyperModel(input_shape=(64,), outputs=10),
        ...                    trials=2, epochs=1, seed=0, directory=getfixture("tmp_path"),
        ...                    project_name="doc")
        >>> tuner.oracle.seed, type(tuner).__name__
        (1, 'StructuralRandomSearch')
    """
    import keras_tuner

    from keras_structopt.search import tuner as structural

    objective = "val_loss" if hypermodel.task == "regression" else "val_accuracy"
    common = {
        "objective": objective,
        "seed": seed + 1,
        "directory": str(directory),
        "project_name": project_name,
        "overwrite": overwrite,
    }
    if kind == "random":
        return structural(keras_tuner.RandomSearch, hypermodel, max_trials=trials, **common)
    if kind == "grid":
        return structural(keras_tuner.GridSearch, hypermodel, max_trials=trials, **common)
    if kind == "bayesian":
        return structural(keras_tuner.BayesianOptimization, hypermodel, max_trials=trials,
                          num_initial_points=min(3, trials), **common)
    return structural(keras_tuner.Hyperband, hypermodel, max_epochs=epochs, factor=3, hyperband_iterations=1,
                      **common)


def _progress_callback(say, total):
    """A Keras callback that reports each trial's end (it survives Keras Tuner's deep copy)."""
    import keras

    state = {"trial": 0, "start": 0.0, "best": None}
    key = "val_accuracy"

    def report(event, logs):
        if event == "begin":
            state.update(trial=state["trial"] + 1, start=time.time(), best=None)
        elif event == "epoch":
            value = logs.get(key)
            if value is not None and (state["best"] is None or value > state["best"]):
                state["best"] = value
        else:
            best = "n/a" if state["best"] is None else f"{state['best']:.4f}"
            say(f"  trial {state['trial']}/{total}: best {key} {best} "
                f"({time.time() - state['start']:.1f} s)")

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.report = report

        def on_train_begin(self, logs=None):
            self.report("begin", logs or {})

        def on_epoch_end(self, epoch, logs=None):
            self.report("epoch", logs or {})

        def on_train_end(self, logs=None):
            self.report("end", logs or {})

    return Progress()


JOB_FILE = "job.json"  # where a run is: {"status": "exporting" | "done", "version": N}


def _read_job(out: Path) -> dict:
    try:
        job = json.loads((out / JOB_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) else {}


def _write_job(out: Path, job: dict) -> None:
    temporary = out / f".{JOB_FILE}.tmp-{os.getpid()}"
    temporary.write_text(json.dumps(job) + "\n")
    os.replace(temporary, out / JOB_FILE)


def _remove_temporaries(out: Path, name: str) -> list[Path]:
    """Removes what a killed run left half-written under `out` (only keras-structopt's temporary names).

    Example:
        >>> out = getfixture("tmp_path")
        >>> (out / "digits" / ".tmp-1-0a1b").mkdir(parents=True)
        >>> (out / "digits" / "1").mkdir()
        >>> [p.name for p in _remove_temporaries(out, "digits")], sorted(p.name for p in (out / "digits").iterdir())
        (['.tmp-1-0a1b'], ['1'])
    """
    import shutil

    patterns = [(out / name, ".tmp-*"), (out / "tflite", f".{name}-*.tflite.tmp-*"), (out, ".report.*.tmp-*"),
                (out, f".{JOB_FILE}.tmp-*")]
    removed = []
    for directory, pattern in patterns:
        for path in sorted(directory.glob(pattern)) if directory.is_dir() else ():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def run(args) -> int:
    """Runs one job from parsed `run` flags: search, compress, export, report."""
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    import warnings

    # Keras Tuner restores weights without optimizer state: expected, not worth a warning.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    import keras
    import tensorflow as tf

    import keras_structopt as kso
    from keras_structopt.data import load_digits_split
    from keras_structopt.export.report import plot_stages, search_table, stage_table, write_report
    from keras_structopt.export.saved_model import existing_versions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    job = _read_job(out) if args.resume else {}
    if args.resume:
        _remove_temporaries(out, args.name)
    view, class_name = FAMILIES[args.family]
    view = args.view or view
    data = load_digits_split(view, seed=args.seed)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(args.seed)
    hypermodel_kwargs = {"input_shape": data.input_shape, "outputs": data.num_classes, "seed": args.seed}
    if data.vocabulary_size and args.family != "dense":
        hypermodel_kwargs["vocabulary_size"] = data.vocabulary_size
    hypermodel = getattr(kso, class_name)(**hypermodel_kwargs)
    tuner = make_tuner(
        args.tuner, hypermodel, trials=args.trials, epochs=args.epochs, seed=args.seed,
        directory=out, project_name="tuner",
    )
    total = "?" if args.tuner == "hyperband" else args.trials
    say(f"Searching the {args.family} family on digits ({view}) with {args.tuner}: "
        f"{total} trials x {args.epochs} epochs")
    started = time.time()
    try:
        tuner.search(
            *data.train,
            validation_data=data.validation,
            epochs=args.epochs,
            verbose=0,
            callbacks=[_progress_callback(say, total)],
        )
    except kso.SearchFailedError as error:
        print(f"keras-structopt run: error: {error}", file=sys.stderr)
        return 1
    seconds = time.time() - started
    trials = list(tuner.oracle.trials.values())
    completed = [t for t in trials if t.status == "COMPLETED"]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_hp = best_trial.hyperparameters
    spec = hypermodel.architecture(best_hp)
    best_model = tuner.get_best_models(1)[0]
    objective = best_trial.metrics.get_best_value("val_accuracy")
    test_accuracy = float(best_model.evaluate(*data.test, verbose=0)[1])
    say(f"Best trial {best_trial.trial_id}: val accuracy {objective:.4f}, test accuracy "
        f"{test_accuracy:.4f}, {spec.count_params():,} parameters")

    if args.max_accuracy_loss is not None:
        settings = {"target": args.target, "max_accuracy_loss": args.max_accuracy_loss}
        say(f"Compressing: the smallest {args.target} model within {args.max_accuracy_loss:g} of the winner's "
            "validation accuracy")
    else:
        settings = {"slim": args.slim, "sparsity": args.sparsity, "clusters": args.clusters or None,
                    "quantization": args.quantization}
        say(f"Compressing: slim {args.slim or 'no'}, prune to {args.sparsity:.0%}, cluster to "
            f"{args.clusters or 'no'} values, {args.quantization} quantization")
    keras.utils.set_random_seed(args.seed)
    compressed, compression = kso.compress(
        best_model,
        data.train,
        validation_data=data.validation,
        test_data=data.test,
        prune_epochs=args.prune_epochs,
        cluster_epochs=args.cluster_epochs,
        **settings,
    )

    # A job killed while exporting left its version in job.json: the resumed job finishes that
    # version (a SavedModel directory appears whole or not at all); otherwise the next version.
    pending = job.get("version") if job.get("status") == "exporting" else None
    version = pending or (existing_versions(out, args.name) or [0])[-1] + 1
    _write_job(out, {"status": "exporting", "version": version})
    saved_model = out / args.name / str(version)
    if pending is None or not (saved_model / "saved_model.pb").is_file():
        saved_model = kso.export_saved_model(compressed, out, args.name, version=version)
    conversion = compression.final.quantization  # the conversion the final stage was measured with
    tflite = kso.export_tflite(
        compressed, out / "tflite" / f"{args.name}-{version}.tflite", quantization=conversion,
        representative_data=data.train[0][:512], strip=compression.recipe.strip, overwrite=pending is not None,
    )
    report = {
        "data": {"dataset": "digits", "view": view, "split": "stratified 60/20/20", "seed": args.seed},
        "search": {
            "family": args.family,
            "tuner": args.tuner,
            "trials_completed": len(completed),
            "trials_total": len(trials),
            "best_trial": best_trial.trial_id,
            "best_val_accuracy": float(objective),
            "best_test_accuracy": test_accuracy,
            "best_hyperparameters": {k: v for k, v in best_hp.values.items()},
            "best_architecture": spec.to_dict(),
            "best_params": spec.count_params(),
            "best_macs": spec.count_macs(),
            "seconds": seconds,
        },
        "compression": {
            "settings": {**settings, "prune_epochs": args.prune_epochs, "cluster_epochs": args.cluster_epochs},
            "size_ratio": compression.size_ratio(),
            "chart": "compression.png",
            **compression.to_dict(),
        },
        "export": {
            "saved_model": str(saved_model.relative_to(out)),
            "tflite": str(tflite.relative_to(out)),
        },
    }
    plot_stages(report["compression"], out / "compression.png")
    write_report(out, report)
    _write_job(out, {"status": "done", "version": version})
    if args.quiet:
        print(json.dumps({"final_test_accuracy": compression.final.metrics, "size_ratio": compression.size_ratio()}))
    else:
        say("")
        if compression.search:
            say("The search (validation split):")
            say("\n".join(search_table(list(compression.search), compression.metric)))
            say("")
        say("\n".join(stage_table(report["compression"]["stages"])))
        say("")
        say(f"Wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'compression.png'}, {saved_model}, {tflite}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
