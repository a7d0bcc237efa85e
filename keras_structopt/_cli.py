"""The `keras-structopt` command.

`keras-structopt run` searches a structural space on a bundled dataset, compresses
the winner, exports it and writes a report. With no flags it runs a small real job:
the dense family on scikit-learn's digits. `compress MODEL` and `export MODEL` do the
end of that job for a model the user already has; `report DIR` redraws the tables and
plots of an existing search. `python -m keras_structopt` is the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

from keras_structopt import _checks
from keras_structopt._env import is_worker
from keras_structopt._types import DigitsView

TUNERS = ("random", "grid", "bayesian", "hyperband")
DEFAULT_SPLITS = ("train[:80%]", "train[80%:]", "test")  # as keras_structopt.data.datasets
FAMILIES: dict[str, tuple[DigitsView, str]] = {
    # family -> (digits view, HyperModel class name)
    "dense": ("flat", "DenseHyperModel"),
    "conv": ("image", "ConvHyperModel"),
    "conv1d": ("rows", "Conv1DHyperModel"),
    "recurrent": ("rows", "RecurrentHyperModel"),
    "transformer": ("rows", "TransformerHyperModel"),
}
# Views each family can read.
FAMILY_VIEWS = {
    "dense": ("flat", "rows", "image", "tokens"),
    "conv": ("image",),
    "conv1d": ("rows", "flat"),
    "recurrent": ("rows", "tokens"),
    "transformer": ("rows", "tokens"),
}


EXAMPLES = """examples:
  keras-structopt run                                  # dense family on bundled digits, the defaults
  keras-structopt run --family conv --trials 5 --epochs 10 --out cnn
  keras-structopt run --config job.toml                # settings (and the space) from a job file
  keras-structopt compress model.keras --out small     # compress a model you already have
  keras-structopt export model.keras --out serving     # SavedModel version + TFLite, no compression
  keras-structopt report structopt-out                 # tables and plots of an existing search
"""


def _add_output_flags(parser, *, name_default: str = "digits") -> None:
    parser.add_argument("--out", default="structopt-out", help="output directory (default: structopt-out)")
    parser.add_argument(
        "--name", default=None,
        help=f"exported model name (default: {name_default}" + (", or the --dataset name)" if name_default ==
                                                               "digits" else ")"),
    )
    parser.set_defaults(default_name=name_default)
    _add_verbosity_flags(parser)


def _add_verbosity_flags(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--verbose", action="store_true", help="let TensorFlow's own log lines through (hidden by default)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error (one line by default)"
    )


def _add_compression_flags(parser) -> None:
    from keras_structopt.compress._pipeline import DEFAULT_MAX_ACCURACY_LOSS
    from keras_structopt.compress._stages import DEFAULT_TARGET, TARGETS

    parser.add_argument(
        "--target", default=None,
        help=f"deployment preset whose stages and ladders the compression uses: {', '.join(TARGETS)} "
        f"(default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--max-accuracy-loss", default=None,
        help="search for the smallest model whose validation accuracy is at most this much below the "
        f"winner's (default: {DEFAULT_MAX_ACCURACY_LOSS:g}, one point); 'none' applies the target's preset as it "
        "is (with the stages fixed below in place of its own)",
    )
    parser.add_argument("--slim", type=float, default=None, help="fix slimming: fraction of units to remove (0 skips)")
    parser.add_argument("--sparsity", type=float, default=None, help="fix pruning: target kernel sparsity (0 skips)")
    parser.add_argument(
        "--clusters", type=int, default=None, help="fix clustering: max distinct values per kernel (0 skips)"
    )
    parser.add_argument(
        "--quantization", default=None, help="fix the quantization: dynamic, float16, int8, qat or none",
    )
    parser.add_argument("--prune-epochs", type=int, default=None, help="fine-tuning epochs while pruning")
    parser.add_argument("--cluster-epochs", type=int, default=None, help="fine-tuning epochs while clustering")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the weights (default: 0)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-structopt",
        description="Search a Keras model's structure, compress the winner, export it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--dataset", default="digits",
        help="digits (bundled with scikit-learn, the default) or a tensorflow-datasets name read offline from "
        "--data-dir (mnist, fashion_mnist, ...)",
    )
    run.add_argument("--data-dir", default=None, help="tensorflow-datasets' data directory (default: tfds' own)")
    run.add_argument(
        "--split", default=",".join(DEFAULT_SPLITS),
        help="three tfds split specs, train,validation,test (default: train[:80%%],train[80%%:],test)",
    )
    run.add_argument("--label", default=None, help="the label feature of a tfds dataset without supervised keys")
    run.add_argument("--features", default=None, help="the input feature of a tfds dataset without supervised keys")
    run.add_argument("--family", default="dense", help=f"one of {sorted(FAMILIES)} (default: dense)")
    run.add_argument(
        "--suggest", action="store_true",
        help="design the space from the training data (kso.suggest: family, depth and width ranges, regularisation) "
        "and print why; a job's [space] arguments still override it",
    )
    run.add_argument(
        "--view", default=None, help="digits view: flat, image, rows or tokens (default: the family's)"
    )
    run.add_argument("--tuner", default="random", help=f"one of {list(TUNERS)} (default: random)")
    run.add_argument(
        "--trials", type=int, default=10, help="max trials (default: 10; Hyperband sizes itself from --epochs)"
    )
    run.add_argument("--epochs", type=int, default=20, help="epochs per trial (default: 20)")
    run.add_argument(
        "--budget", default=None,
        help="the search's time budget, 90s, 10m or 1h30m: no trial starts that could not finish in it, a "
        "trial running when it ends stops after its epoch, and the best so far is kept (default: none)",
    )
    run.add_argument(
        "--median-stopping", action=argparse.BooleanOptionalAction, default=True,
        help="stop a trial whose objective falls below the median of earlier trials at the same epoch "
        "(random, grid and bayesian tuners; Hyperband halves its brackets itself; default: on)",
    )
    _add_compression_flags(run)
    _add_output_flags(run)
    run.add_argument("--resume", action="store_true", help="continue the search already in OUT/tuner")
    run.add_argument(
        "--workers", type=int, default=0,
        help="search with Keras Tuner's distributed mode: a chief and this many worker processes on this host "
        "(default: 0, one process); the chief compresses and exports once, after the search",
    )
    run.add_argument(
        "--job", "--config", dest="job", default=None,
        help="a job file (.toml or .json) of these settings, keys as the flags without dashes (family = "
        "\"conv\", trials = 5, max_accuracy_loss = \"none\"), optionally grouped in [search], [compression] "
        "and [export] tables, and a [space] table of HyperModel arguments (a list is a choice, {min, max} a "
        "range); flags given as well win",
    )
    run.set_defaults(space=None)

    compress = commands.add_parser(
        "compress",
        help="compress a saved Keras model, export it, write the report",
        description=(
            "Load MODEL (a .keras file, in Keras' safe mode), compress it on the bundled digits view its "
            "input fits (fine-tuning and the guarded search on the training and validation splits, the "
            "report on the test split), export a SavedModel version and a TFLite file, and write "
            "OUT/report.json, OUT/report.md and OUT/compression.png."
        ),
    )
    compress.add_argument("model", help="the model: a .keras file")
    compress.add_argument(
        "--view", default=None, help="digits view the model reads: flat, image, rows or tokens (default: from "
        "the model's input)",
    )
    _add_compression_flags(compress)
    _add_output_flags(compress, name_default="model")

    export = commands.add_parser(
        "export",
        help="export a saved Keras model: SavedModel version + TFLite",
        description="Load MODEL (a .keras file, in Keras' safe mode) and write OUT/NAME/VERSION (the next "
        "TF Serving version) and OUT/tflite/NAME-VERSION.tflite.",
    )
    export.add_argument("model", help="the model: a .keras file")
    export.add_argument(
        "--quantization", default="dynamic", help="TFLite conversion: dynamic, float16 or none (default: dynamic)"
    )
    _add_output_flags(export, name_default="model")

    report = commands.add_parser(
        "report",
        help="tables and plots of an existing search directory",
        description="Read a search's project directory (a Keras Tuner project, or the OUT of `keras-structopt "
        "run`), without changing it, and write trials.json, trials.md, learning_curves.png, pareto.png and "
        "TensorBoard HParams (and, for a run's OUT, report.md and compression.png again) to a new directory.",
    )
    report.add_argument("directory", help="the project directory, or a `run` OUT directory")
    report.add_argument("--out", default=None, help="where to write (default: DIRECTORY/report); must be new")
    _add_verbosity_flags(report)
    return parser


def _run_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]


JOB_SECTIONS = ("search", "compression", "export")
RESERVED_NAMES = ("tuner", "tflite", "worker-logs", "report")  # folders of OUT that are not a model's
# HyperModel arguments a job's [space] cannot set: the command sets them from the data.
_SPACE_FIXED = ("input_shape", "outputs", "seed", "vocabulary_size", "name", "tunable")


def _read_job_file(path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib

    is_toml = str(path).lower().endswith(".toml")
    kind = "TOML" if is_toml else "JSON"
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise _checks.error(
            f"Expected --job to be a readable job file (.toml or .json). Received: --job={str(path)!r} ({error})."
        ) from None
    try:
        job = tomllib.loads(text) if is_toml else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise _checks.error(
            f"Expected --job to hold {kind}. Received: --job={str(path)!r}, which does not parse ({error})."
        ) from None
    if not isinstance(job, dict):
        raise _checks.error(
            f"Expected --job to hold a {kind} object of settings. Received: a {kind} {type(job).__name__} in "
            f"{str(path)!r}."
        )
    flat = {}
    for key, value in job.items():
        if key in JOB_SECTIONS:
            if not isinstance(value, dict):
                raise _checks.error(
                    f"Expected [{key}] in --job to be a table of settings. Received: {key}={value!r}."
                )
            for inner, setting in value.items():
                if inner in flat:
                    raise _checks.error(
                        f"Expected each setting once in --job. Received: {inner!r} twice in {str(path)!r}."
                    )
                flat[inner] = setting
        elif key in flat:
            raise _checks.error(f"Expected each setting once in --job. Received: {key!r} twice in {str(path)!r}.")
        else:
            flat[key] = value
    return flat


def _space_arguments(space, path) -> dict:
    """A job's [space] table as HyperModel arguments: a list is a choice, {min, max} a range."""
    if not isinstance(space, dict):
        raise _checks.error(
            f"Expected space in --job to be a table of HyperModel arguments. Received: space={space!r}."
        )
    arguments = {}
    for key, value in space.items():
        if key in _SPACE_FIXED:
            raise _checks.error(
                f"Expected [space] in --job without {list(_SPACE_FIXED)} (the command sets them from the data). "
                f"Received: {key}={value!r} in {str(path)!r}."
            )
        if isinstance(value, dict):
            if set(value) == {"min", "max"}:
                value = (value["min"], value["max"])
            elif set(value) == {"range"} and isinstance(value["range"], list) and len(value["range"]) == 2:
                value = tuple(value["range"])
            else:
                raise _checks.error(
                    f"Expected {key} in [space] to be a value, a list (a choice) or {{min = A, max = B}} (a "
                    f"range). Received: {key}={value!r}."
                )
        arguments[key] = value
    return arguments


def load_job(path, parser: argparse.ArgumentParser | None = None) -> dict:
    """Reads a job file (TOML or JSON): `run` settings, each key a flag without its dashes.

    Settings may be grouped in `[search]`, `[compression]` and `[export]` tables; a
    `[space]` table holds arguments of the family's HyperModel (a list is a choice,
    `{min = A, max = B}` a range). Every key and value is checked against the flags
    (unknown keys, wrong types), so a malformed job fails before any work, naming the key,
    the value and what is accepted; the space's values are checked by the HyperModel.

    Example:
        >>> import json
        >>> path = getfixture("tmp_path") / "job.json"
        >>> _ = path.write_text(json.dumps({"family": "conv", "trials": 5, "max_accuracy_loss": "none"}))
        >>> load_job(path)
        {'family': 'conv', 'trials': 5, 'max_accuracy_loss': 'none'}
        >>> path = getfixture("tmp_path") / "job.toml"
        >>> _ = path.write_text(
        ...     '[search]\\ntrials = 3\\n[space]\\nnum_layers = {min = 1, max = 2}\\nunits = [16, 32]\\n')
        >>> load_job(path)
        {'trials': 3, 'space': {'num_layers': (1, 2), 'units': [16, 32]}}
    """
    run = _run_parser(parser or _parser())
    actions = {a.dest: a for a in run._actions if a.dest not in ("help", "job")}
    job = _read_job_file(path)
    settings: dict[str, Any] = {}
    for key, value in job.items():
        name = str(key).replace("-", "_")
        if name == "space":
            settings["space"] = _space_arguments(value, path)
            continue
        action = actions.get(name)
        if action is None:
            raise _checks.error(
                f"Expected the keys of --job among {sorted([*actions, 'space'])}. Received: {str(key)!r} in "
                f"{str(path)!r}."
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

    TensorFlow's own log lines are kept out of the output unless `--verbose` is given
    (`keras_structopt._quiet`). Bad flags and bad job files exit with status 2 before
    any work, a search without a completed trial with status 1.

    Example:
        >>> from keras_structopt._cli import main
        >>> main(["run", "--tuner", "sideways"])  # bad flags fail before any work
        2
    """
    from keras_structopt._quiet import quiet_tensorflow

    global _AS_COMMAND
    _AS_COMMAND = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    end_quiet = (lambda: None) if args.verbose else quiet_tensorflow()
    previous = None
    unraisable = sys.unraisablehook
    if threading.current_thread() is threading.main_thread():  # SIGTERM ends the run as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _terminate)
        sys.unraisablehook = _redeliver(unraisable)
    _PHASE.clear()
    try:
        return _dispatch(args, argv)
    except (KeyboardInterrupt, Terminated) as stop:
        # Every process the command started has been ended on the way out (the launcher's `finally`);
        # what finished is on disk. One line, no traceback; a launched chief or worker says nothing.
        if not is_worker() and "KERASTUNER_TUNER_ID" not in os.environ:
            print(f"keras-structopt {args.command}: {_interrupted(args)}", file=sys.stderr, flush=True)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
            sys.unraisablehook = unraisable
        end_quiet()


def _redeliver(hook):
    """An unraisable-exception hook that sends an interrupt raised where Python cannot raise it (a signal
    handled while a garbage-collector callback or a `__del__` runs: Python prints "Exception ignored in"
    and goes on) to this process again, to be raised at the next step; anything else goes to `hook`."""

    def handle(unraisable):
        if isinstance(unraisable.exc_value, (Terminated, KeyboardInterrupt)):
            number = signal.SIGTERM if isinstance(unraisable.exc_value, Terminated) else signal.SIGINT
            # From another thread, a moment later: sent from here, it would be handled inside this hook.
            threading.Timer(0.05, os.kill, (os.getpid(), number)).start()
            return
        hook(unraisable)

    return handle


class Terminated(BaseException):
    """SIGTERM, raised in the command's main thread so that every `finally` runs (as for Ctrl-C)."""


def _terminate(signum, frame):
    raise Terminated()


_PHASE: dict[str, str] = {}  # where this process's `run` is once its search is over (for `_interrupted`)


def _interrupted(args) -> str:
    """The one line an interrupted command prints: what finished, and how to go on."""
    if args.command != "run":
        return "interrupted; nothing was written in place of an earlier file: run the same command again"
    project = Path(args.out) / "tuner"
    finished = 0
    for path in project.glob("trial_*/trial.json"):
        try:
            finished += json.loads(path.read_text()).get("status") == "COMPLETED"
        except (OSError, ValueError, AttributeError):
            continue
    total = "?" if getattr(args, "tuner", None) == "hyperband" else getattr(args, "trials", "?")
    phase = _PHASE.get("run")
    if phase is None and getattr(args, "workers", None):  # the chief compresses and exports: its job file says where
        job = _read_job(Path(args.out))
        if job.get("status") == "compressing":
            phase = "compressing"
        elif job.get("status") == "exporting":
            phase = f"exporting version {job.get('version')}"
    if phase is not None:  # the search is over: compressing, or exporting a version
        return (f"interrupted while {phase} ({finished} of {total} trials finished); run the same command with "
                "--resume to continue (the finished search is kept)")
    return (f"interrupted after {finished} of {total} trials; run the same command with --resume to continue "
            "(finished trials are kept)")


def _dispatch(args, argv) -> int:
    out = getattr(args, "out", None)
    fresh = Path(out) if out and not Path(out).exists() else None
    status = _dispatch_command(args, argv)
    if status != 0 and fresh is not None:  # refused (or failed) before writing anything: no empty --out left
        with contextlib.suppress(OSError):
            fresh.rmdir()
    return status


def _dispatch_command(args, argv) -> int:
    from keras_structopt.errors import ConfigurationError

    try:
        if args.command == "run":
            args = parse_run(argv)
            with _writer_lock(args.out, "run"):
                _check_fresh(args)  # again, under the lock: no other run began the search since
                if args.workers and "KERASTUNER_TUNER_ID" not in os.environ:
                    return run_distributed(args, argv)
                return run(args)
        if args.command == "compress":
            _validate_compression(args)
            _validate_output(args)
            with _writer_lock(args.out, "compress"):
                return compress_command(args)
        if args.command == "export":
            _checks.one_of("--quantization", args.quantization, ("dynamic", "float16", "none"))
            _validate_output(args)
            with _writer_lock(args.out, "export"):
                return export_command(args)
        return report_command(args)
    except ConfigurationError as error:  # bad flags, a job file, a model or a project that cannot be read
        print(f"keras-structopt {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # anything else: one line, the traceback only with --debug
        if getattr(args, "debug", False):
            raise
        print(f"keras-structopt {args.command}: error: {type(error).__name__}: {error} (run again with --debug "
              "for the traceback)", file=sys.stderr)
        return 1


def _writer_lock(out, what: str):
    """The output directory's lock for this command (none in a distributed worker, or in a process
    whose launcher holds it)."""
    from keras_structopt._lock import ProjectLock, held_by_launcher

    if is_worker() or held_by_launcher():
        return contextlib.nullcontext()
    return ProjectLock(out, what)


def _check_fresh(args) -> None:
    """Refuses a run (not `--resume`) into an `--out` that holds a search."""
    project = Path(args.out) / "tuner"
    begun = project.is_dir() and ((project / "oracle.json").exists() or any(project.glob("trial_*")))
    if begun and not args.resume and not is_worker():  # a worker joins the chief's search; a run refused
        # before its first trial left an empty project behind, which blocks nothing
        raise _checks.error(
            f"Expected --out to hold no earlier search. Received: --out={args.out!r}, whose "
            f"{str(project)!r} exists; pass --resume to continue that search, or choose another --out."
        )


def parse_duration(name: str, text) -> float | None:
    """Seconds in a duration written `90`, `90s`, `10m`, `1h` or `1h30m` (None stays None).

    Example:
        >>> parse_duration("--budget", "1h30m"), parse_duration("--budget", "90")
        (5400.0, 90.0)
    """
    if text is None or (isinstance(text, (int, float)) and not isinstance(text, bool)):
        seconds = text
    else:
        match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*",
                             str(text))
        if match is None or not any(match.groups()):
            seconds = -1.0
        else:
            hours, minutes, rest = (float(group or 0) for group in match.groups())
            seconds = 3600 * hours + 60 * minutes + rest
    if seconds is not None and (not _checks.is_number(seconds) or seconds <= 0):
        raise _checks.error(f"Expected {name} to be a duration such as 90s, 10m or 1h30m. Received: {name}={text!r}.")
    return None if seconds is None else float(seconds)


def _validate(args) -> None:
    _checks.one_of("--tuner", args.tuner, TUNERS)
    _checks.one_of("--family", args.family, tuple(FAMILIES))
    if args.dataset == "digits":
        if args.view is not None:
            _checks.one_of("--view", args.view, FAMILY_VIEWS[args.family])
        given = {"--split": args.split if args.split != ",".join(DEFAULT_SPLITS) else None, "--label": args.label,
                 "--features": args.features, "--data-dir": args.data_dir}
        for flag, value in given.items():
            if value is not None:  # tfds flags: the bundled digits are split 60/20/20, stratified, by --seed
                raise _checks.error(
                    f"Expected no {flag} with --dataset='digits' (it is for tensorflow-datasets data; the bundled "
                    f"digits are split 60/20/20, stratified, by --seed). Received: {flag}={value!r}."
                )
    else:
        if args.view is not None:
            raise _checks.error(
                f"Expected no --view with --dataset={args.dataset!r} (views are the bundled digits' shapes). "
                f"Received: --view={args.view!r}."
            )
        splits = [part.strip() for part in str(args.split).split(",")]
        if len(splits) != 3 or not all(splits):
            raise _checks.error(
                "Expected --split to be three tfds split specs, train,validation,test. "
                f"Received: --split={args.split!r}."
            )
        args.split = tuple(splits)
        if args.name is None:
            args.name = "".join(c if c.isalnum() or c in "._-" else "-" for c in args.dataset.split(":")[0])
    _checks.positive_int("--trials", args.trials)
    _checks.positive_int("--epochs", args.epochs)
    args.budget = parse_duration("--budget", args.budget)
    most = os.cpu_count() or 1
    if not _checks.is_int(args.workers) or not 0 <= args.workers <= most:
        raise _checks.error(
            f"Expected --workers to be an int from 0 to {most} (this machine's CPU cores: each worker is a process "
            f"that trains). Received: --workers={args.workers!r}."
        )
    _validate_compression(args)
    _validate_output(args)
    from keras_structopt._lock import check_free, held_by_launcher

    if not is_worker() and not held_by_launcher():
        check_free(args.out, "run")  # another run writes there now: said first, with its PID
    _check_fresh(args)
    if args.dataset != "digits" or args.space is not None:
        # The tfds dataset must be there (offline), and the job's [space] fit the HyperModel: before any work.
        _hypermodel(args, *_data_shape(args))


# The compression objects' arguments, as the command's flags name them.
_COMPRESSION_FLAGS = {
    "target": "--target", "ratio": "--slim", "sparsity": "--sparsity", "clusters": "--clusters",
    "mode": "--quantization", "prune_epochs": "--prune-epochs", "cluster_epochs": "--cluster-epochs",
}


def _validate_compression(args) -> None:
    """Builds the objects `kso.compress` takes from the flags (their own checks, speaking of the flags).

    Sets `args.target`, `args.max_accuracy_loss`, `args.recipe` (the stages the flags fix: in
    a guarded search they are honoured and the rest is searched; with `--max-accuracy-loss
    none` they replace the preset's own) and `args.fine_tuning`.

    Example:
        >>> import argparse
        >>> args = argparse.Namespace(seed=0, target="mobile", max_accuracy_loss=None, slim=None, sparsity=0.9,
        ...                           clusters=None, quantization=None, prune_epochs=None, cluster_epochs=None)
        >>> _validate_compression(args)
        >>> args.recipe.describe(), args.max_accuracy_loss
        ('sparsity 0.9 (polynomial)', 0.01)
    """
    from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Recipe, Slim
    from keras_structopt.compress._pipeline import DEFAULT_MAX_ACCURACY_LOSS
    from keras_structopt.compress._stages import DEFAULT_TARGET, PRESETS, TARGETS

    _checks.non_negative_int("--seed", args.seed)
    raw = args.max_accuracy_loss
    if raw is None:
        args.max_accuracy_loss = DEFAULT_MAX_ACCURACY_LOSS
    elif str(raw).strip().lower() == "none":
        args.max_accuracy_loss = None
    else:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not 0 <= value < 1:
            raise _checks.error(
                "Expected --max-accuracy-loss to be a number in [0, 1) or 'none'. "
                f"Received: --max-accuracy-loss={raw if value is None else value!r}."
            )
        args.max_accuracy_loss = value
    with _checks.argument_names(_COMPRESSION_FLAGS):
        if args.target is not None:
            _checks.one_of("target", args.target, TARGETS)
        preset = PRESETS[args.target or DEFAULT_TARGET]
        fixed: list[Slim | Prune | Cluster | Quantize] = []
        if args.slim is not None:
            fixed.append(Slim(None) if args.slim == 0 else (preset.slim or Slim()).replace(ratio=args.slim))
        if args.sparsity is not None:
            fixed.append((preset.prune or Prune()).replace(sparsity=args.sparsity, m_by_n=None))
        if args.clusters is not None:
            fixed.append(Cluster(None) if args.clusters == 0 else (preset.cluster or Cluster()).replace(
                clusters=args.clusters))
        if args.quantization is not None:
            fixed.append((preset.quantize or Quantize()).replace(mode=args.quantization))
        epochs = {"prune_epochs": args.prune_epochs, "cluster_epochs": args.cluster_epochs}
        args.fine_tuning = FineTuning(**{name: value for name, value in epochs.items() if value is not None})
    args.recipe = Recipe(fixed)
    if args.max_accuracy_loss is None:  # applied as it is: the preset, with the stages the flags fix in its place
        for stage in fixed:
            preset = preset.with_stage(stage)
        args.recipe = preset
    quantize = args.recipe.quantize
    if getattr(args, "family", None) == "recurrent" and quantize is not None and quantize.mode in ("int8", "qat"):
        raise _checks.error(  # the conversion refuses recurrent layers (kso.compress says why): before the search
            "Expected --quantization dynamic, float16 or none for the recurrent family: a full-integer TFLite "
            f"file of recurrent layers cannot be converted. Received: --family recurrent and --quantization "
            f"{quantize.mode}."
        )


def _validate_output(args) -> None:
    from keras_structopt.export._saved_model import _NAME

    if args.name is None:
        args.name = args.default_name
    if not isinstance(args.name, str) or not _NAME.fullmatch(args.name):
        raise _checks.error(
            "Expected --name to be a model name of letters, digits, '.', '_' and '-' (no path separators). "
            f"Received: --name={args.name!r}."
        )
    if args.name in RESERVED_NAMES:
        raise _checks.error(
            f"Expected --name to differ from the output directory's own folders {list(RESERVED_NAMES)} (the model's "
            f"versions are written under OUT/NAME). Received: --name={args.name!r}."
        )
    if not str(args.out).strip():
        raise _checks.error("Expected --out to name a directory. Received: --out='' (an empty path).")
    _checks.writable_directory("--out", args.out)


def _data_shape(args):
    """`(input_shape, classes, vocabulary_size)` of the run's data, read without loading it."""
    from keras_structopt.data._digits import DIGITS_VIEWS

    if args.dataset == "digits":
        view = args.view or FAMILIES[args.family][0]
        return DIGITS_VIEWS[view], 10, 17 if view == "tokens" else None
    from keras_structopt.data._datasets import tfds_shape

    shape, classes = tfds_shape(args.dataset, data_dir=args.data_dir, label=args.label, features=args.features)
    return shape, classes, None


def _load_data(args):
    """The run's train / validation / test `Split` and its record for the report."""
    if args.dataset == "digits":
        from keras_structopt.data import load_digits_split

        view = cast(DigitsView, args.view or FAMILIES[args.family][0])
        record = {"dataset": "digits", "view": view, "split": "stratified 60/20/20", "seed": args.seed}
        return load_digits_split(view, seed=args.seed), record
    from keras_structopt.data import load_tfds

    data = load_tfds(args.dataset, split=args.split, data_dir=args.data_dir, label=args.label,
                     features=args.features)
    return data, {"dataset": args.dataset, "split": list(args.split), "data_dir": args.data_dir}


def _hypermodel(args, input_shape, outputs, vocabulary_size=None):
    """The family's HyperModel on the data's shape, with the job's [space] arguments."""
    import inspect

    import keras_structopt as kso

    class_name = FAMILIES[args.family][1]
    cls = getattr(kso, class_name)
    kwargs = {"input_shape": tuple(input_shape), "outputs": outputs, "seed": args.seed}
    if vocabulary_size and args.family != "dense":
        kwargs["vocabulary_size"] = vocabulary_size
    space = dict(args.space or {})
    accepted = [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", *_SPACE_FIXED)]
    unknown = sorted(set(space) - set(accepted))
    if unknown:
        raise _checks.error(
            f"Expected the [space] arguments of {class_name} among {accepted}. Received: {unknown} in --job."
        )
    return cls(**kwargs, **space)


def make_tuner(
    kind: str, hypermodel, *, trials: int, epochs: int, seed: int, directory, project_name: str,
    overwrite: bool = False, objective: str | None = None, median_stopping: bool = True,
):
    """A Keras Tuner tuner of `kind` on `hypermodel`, ranking trials by validation accuracy.

    `objective` replaces that default (`"val_accuracy"`, or `"val_loss"` for regression):
    with `--suggest`, the suggestion's objective is used (`kso.suggest` ranks small
    classification searches by validation loss).

    The tuner is keras-structopt's (`keras_structopt.search.tuner`): no duplicate
    networks, a diverging trial failed at once with its reason, a search without one
    completed trial an error. Keras Tuner silently replaces a seed of 0 with a random
    one, so the oracle gets `seed + 1`: every seed, 0 included, repeats its search.
    Random, grid and Bayesian searches stop a trial that falls below the median of the
    earlier trials at the same epoch (`median_stopping`, `MedianStopping()`'s defaults);
    Hyperband's successive halving does that itself.

    Example:
        >>> import keras_structopt as kso
        >>> from keras_structopt._cli import make_tuner
        >>> tuner = make_tuner("random", kso.DenseHyperModel(input_shape=(64,), outputs=10),
        ...                    trials=2, epochs=1, seed=0, directory=getfixture("tmp_path"),
        ...                    project_name="doc")
        >>> tuner.oracle.seed, type(tuner).__name__
        (1, 'StructuralRandomSearch')
    """
    import keras_tuner

    from keras_structopt.search import tuner as structural

    objective = objective or ("val_loss" if hypermodel.task == "regression" else "val_accuracy")
    common = {
        "objective": objective,
        "seed": seed + 1,
        "directory": str(directory),
        "project_name": project_name,
        "overwrite": overwrite,
    }
    stopping = {"median_stopping": True} if median_stopping else {}
    if kind == "random":
        return structural(keras_tuner.RandomSearch, hypermodel, max_trials=trials, **stopping, **common)
    if kind == "grid":
        return structural(keras_tuner.GridSearch, hypermodel, max_trials=trials, **stopping, **common)
    if kind == "bayesian":
        return structural(keras_tuner.BayesianOptimization, hypermodel, max_trials=trials,
                          num_initial_points=min(3, trials), **stopping, **common)
    return structural(keras_tuner.Hyperband, hypermodel, max_epochs=epochs, factor=3, hyperband_iterations=1,
                      **common)


def _progress_callback(say, total, objective, done: int = 0):
    """A Keras callback that reports each trial's end with its best value of the search's objective
    (it survives Keras Tuner's deep copy). `done` trials finished before (a resumed search)."""
    import keras

    state: dict[str, Any] = {"trial": done, "start": 0.0, "best": None, "seconds": []}
    key, better = objective.name, (max if objective.direction == "max" else min)

    def report(event, logs):
        if event == "begin":
            state.update(trial=state["trial"] + 1, start=time.time(), best=None)
        elif event == "epoch":
            value = logs.get(key)
            if value is not None:
                state["best"] = value if state["best"] is None else better(state["best"], value)
        else:
            seconds = time.time() - state["start"]
            state["seconds"].append(seconds)
            best = "n/a" if state["best"] is None else f"{state['best']:.4f}"
            left = ""
            if isinstance(total, int) and state["trial"] < total:
                mean = sum(state["seconds"]) / len(state["seconds"])
                left = f", about {_duration(mean * (total - state['trial']))} left"
            say(f"  trial {state['trial']}/{total}: best {key} {best} ({seconds:.1f} s{left})")

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


def _finished(tuner) -> int:
    """How many trials of the tuner's project ended already (a resumed search counts on from there)."""
    trials = getattr(tuner.oracle, "trials", None) or {}  # a distributed worker's oracle is the chief's client
    return sum(1 for trial in trials.values() if trial.status in ("COMPLETED", "FAILED", "INVALID"))


def _duration(seconds: float) -> str:
    """A duration for people.

    Example:
        >>> _duration(42.4), _duration(125), _duration(7300)
        ('42 s', '2 min 5 s', '2 h 1 min')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


JOB_FILE = "job.json"  # where a run is: {"status": "compressing"} or {"status": "exporting" | "done", "version": N}


def _read_job(out: Path) -> dict:
    try:
        job = json.loads((out / JOB_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) else {}


def _write_job(out: Path, job: dict) -> None:
    from keras_structopt._trial_files import write_atomically

    write_atomically(out / JOB_FILE, (json.dumps(job) + "\n").encode())


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


# True while `main` runs as the command itself (not called from Python with its own argv).
_AS_COMMAND = False


def _freeze_what_lives_on() -> None:
    """Puts every object alive now (TensorFlow's, Keras' and Keras Tuner's modules, the data: about half a
    million) out of the garbage collector's sight for the rest of the process.

    Keras Tuner collects garbage before every trial, and each collection walked them all (0.25-0.3 s on
    2 cores); frozen, a search of small trials ran 1.5-1.8x faster. A library search freezes only for its
    own duration (`frozen_while_searching`); the command, which owns its process, freezes for the job.
    """
    gc.collect()
    gc.freeze()


def run(args) -> int:
    """Runs one job from parsed `run` flags: search, compress, export, report."""
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    import warnings

    # Keras Tuner restores weights without optimizer state: expected, not worth a warning.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    import keras
    import tensorflow as tf

    import keras_structopt as kso
    from keras_structopt.search._budget import read_budget

    out = Path(args.out)
    worker = is_worker()
    out.mkdir(parents=True, exist_ok=True)
    job = _read_job(out) if args.resume and not worker else {}
    if args.resume and not worker:
        _remove_temporaries(out, args.name)
    data, data_record = _load_data(args)
    if _AS_COMMAND:
        _freeze_what_lives_on()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(args.seed)
    suggestion = None
    if getattr(args, "suggest", False):
        suggestion = kso.suggest(*data.train, seed=args.seed)
        space = dict(args.space or {})
        hypermodel = type(suggestion.hypermodel)(**{**suggestion.arguments, **space}) if space else (
            suggestion.hypermodel)
        args.family = suggestion.family
        for line in str(suggestion).splitlines():
            say(line)
    else:
        hypermodel = _hypermodel(args, data.input_shape, data.num_classes, data.vocabulary_size)
    where = f"digits ({data_record['view']})" if args.dataset == "digits" else args.dataset
    tuner = make_tuner(
        args.tuner, hypermodel, trials=args.trials, epochs=args.epochs, seed=args.seed,
        directory=out, project_name="tuner", objective=None if suggestion is None else suggestion.objective,
        median_stopping=getattr(args, "median_stopping", True),
    )
    total = "?" if args.tuner == "hyperband" else args.trials
    say(f"Searching the {args.family} family on {where} with {args.tuner}: "
        f"{total} trials x {args.epochs} epochs")
    started = time.time()
    try:
        tuner.search(
            *data.train,
            validation_data=data.validation,
            epochs=args.epochs,
            verbose=0,
            callbacks=[_progress_callback(say, total, tuner.oracle.objective, done=_finished(tuner))],
            max_time=getattr(args, "budget", None),
        )
    except kso.SearchFailedError as error:
        print(f"keras-structopt run: error: {error}", file=sys.stderr)
        return 1
    if worker:  # the chief picks, compresses and exports the best model, once
        return 0
    seconds = time.time() - started
    trials = list(tuner.oracle.trials.values())
    completed = [t for t in trials if t.status == "COMPLETED"]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_hp = best_trial.hyperparameters
    spec = hypermodel.architecture(best_hp)
    best_model = tuner.get_best_models(1)[0]
    objective = tuner.oracle.objective.name
    best_value = float(best_trial.metrics.get_best_value(objective))
    test = {name: float(value) for name, value in best_model.evaluate(*data.test, verbose=0, return_dict=True).items()}
    metric = next((name for name in test if name != "loss"), "loss")
    say(f"Best trial {best_trial.trial_id}: {objective} {best_value:.4f}, test {metric} {test[metric]:.4f}, "
        f"{spec.count_params():,} parameters")

    search = {
        "family": args.family,
        "suggestion": None if suggestion is None else list(suggestion.rationale),
        "tuner": args.tuner,
        "objective": tuner.oracle.objective.name,
        "trials_completed": len(completed),
        "trials_total": len(trials),
        "best_trial": best_trial.trial_id,
        "best_value": best_value,
        "best_test_metrics": test,
        "best_val_accuracy": (float(best_trial.metrics.get_best_value("val_accuracy"))
                              if best_trial.metrics.exists("val_accuracy") else None),
        "best_test_accuracy": test.get("accuracy"),
        "best_hyperparameters": {k: v for k, v in best_hp.values.items()},
        "best_architecture": spec.to_dict(),
        "best_params": spec.count_params(),
        "best_macs": spec.count_macs(),
        "seconds": seconds,
        "median_stopping": bool(getattr(args, "median_stopping", True)) and args.tuner != "hyperband",
        "budget": read_budget(tuner.project_dir),
    }
    return _compress_and_export(best_model, data, args, out, say, job, {"data": data_record, "search": search})


def run_distributed(args, argv: list[str]) -> int:
    """`run --workers N`: the same job as a Keras Tuner chief and N workers, under `kso.search.launch`.

    Every process runs `run` with the same flags; the workers train the chief's trials,
    the chief then compresses and exports as a one-process run does (its output is this
    command's). A run that ended early (a dead worker or chief) resumes with `--resume`.
    """
    from keras_structopt.search._distributed import launch

    children = [a for i, a in enumerate(argv) if a != "--workers" and not a.startswith("--workers=")
                and not (i and argv[i - 1] == "--workers")]
    script = Path(__file__).with_name("__main__.py")
    from keras_structopt._lock import HELD_ENV

    result = launch(script, *children, workers=args.workers, log_dir=Path(args.out) / "worker-logs",
                    chief_output="inherit", env={HELD_ENV: str(os.getpid())})
    if result.ok:
        return 0
    print(f"keras-structopt run: error: the distributed search ended early ({result.status}; exit codes "
          f"{result.returncodes}){_full_disk(Path(args.out))}; run the same command with --resume to continue it",
          file=sys.stderr)
    return 1


FULL_DISK_BYTES = 16 * 2**20  # below this much free space, a process that died most likely died of a full disk


def _full_disk(out: Path) -> str:
    """`"; the disk holding OUT is full (N bytes free): free some space first"` when it nearly is, else `""`:
    a worker that ran out of space wrote its one-line error into its log on that same disk, maybe not at all."""
    try:
        free = shutil.disk_usage(out).free
    except OSError:
        return ""
    if free >= FULL_DISK_BYTES:
        return ""
    return f"; the disk holding {str(out)!r} is full ({free:,} bytes free): free some space first"


def _compress_and_export(model, data, args, out: Path, say, job: dict, report: dict) -> int:
    """Compresses `model` (the guarded search or fixed settings of `args`), exports the next version
    (or finishes the version a killed job left), writes the report; the end of `run` and `compress`."""
    import keras

    import keras_structopt as kso
    from keras_structopt.compress._stages import DEFAULT_TARGET
    from keras_structopt.export._report import plot_stages, search_table, stage_table, write_report
    from keras_structopt.export._saved_model import existing_versions

    target = args.target or DEFAULT_TARGET
    _PHASE["run"] = "compressing"  # what an interrupt's one line says (`_interrupted`)
    if job.get("status") != "exporting":  # (a version a killed job left to finish is kept)
        _write_job(out, {"status": "compressing"})
    if args.max_accuracy_loss is not None:
        fixed = f" ({args.recipe.describe()} fixed)" if len(args.recipe) else ""
        say(f"Compressing: the smallest {target} model whose validation metric stays within "
            f"{args.max_accuracy_loss:g} of the uncompressed model's{fixed}")
    else:
        say(f"Compressing: {args.recipe.describe()}")
    settings = {"target": target, "max_accuracy_loss": args.max_accuracy_loss, "recipe": args.recipe.to_dict(),
                "fine_tuning": args.fine_tuning.to_dict()}
    keras.utils.set_random_seed(args.seed)
    compressed, result = kso.compress(
        model,
        data.train,
        validation_data=data.validation,
        test_data=data.test,
        recipe=args.recipe,
        target=args.target,
        max_accuracy_loss=args.max_accuracy_loss,
        fine_tuning=args.fine_tuning,
    )
    compression = result.report

    # A job killed while exporting left its version in job.json: the resumed job finishes that
    # version (a SavedModel directory appears whole or not at all); otherwise the next version.
    pending = job.get("version") if job.get("status") == "exporting" else None
    version = pending or (existing_versions(out, args.name) or [0])[-1] + 1
    _write_job(out, {"status": "exporting", "version": version})
    _PHASE["run"] = f"exporting version {version}"
    saved_model = out / args.name / str(version)
    if pending is None or not (saved_model / "saved_model.pb").is_file():
        saved_model = kso.export_saved_model(compressed, out, args.name, version=version)
    # The file the final stage was measured on, byte for byte.
    tflite = result.save_tflite(out / "tflite" / f"{args.name}-{version}.tflite", overwrite=pending is not None)
    report = {
        **report,
        "compression": {
            "settings": settings,
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


def _load_user_model(path):
    """A .keras file loaded in Keras' safe mode (no code from the file runs); a clear error otherwise."""
    import keras

    if not str(path).endswith(".keras") or not Path(path).is_file():
        raise _checks.error(f"Expected MODEL to be an existing .keras file. Received: MODEL={str(path)!r}.")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a file it cannot read
        raise _checks.error(
            f"Expected MODEL to be a Keras model file that loads in safe mode. Received: MODEL={str(path)!r} "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})."
        ) from None


def _view_of(model, view):
    """The digits view a model reads: given, or recognised from its input."""
    from keras_structopt.data._digits import DIGITS_VIEWS

    if len(model.inputs) != 1:
        raise _checks.error(
            f"Expected a model with one input for the bundled digits. Received: {len(model.inputs)} inputs."
        )
    shape = tuple(int(d) for d in model.inputs[0].shape[1:] if d is not None)
    integer = "int" in str(model.inputs[0].dtype)
    if view is not None:
        _checks.one_of("--view", view, tuple(DIGITS_VIEWS))
        fits = DIGITS_VIEWS[view] == shape and (view == "tokens") == integer
    else:
        matches = [v for v, s in DIGITS_VIEWS.items() if s == shape and (v == "tokens") == integer]
        view, fits = (matches[0], True) if matches else (None, False)
    if not fits:
        accepted = ", ".join(f"{v} {s}" for v, s in DIGITS_VIEWS.items())
        raise _checks.error(
            f"Expected a model whose input fits a bundled digits view ({accepted}; tokens are integers). "
            f"Received: input shape {shape} of dtype {model.inputs[0].dtype}"
            f"{'' if view is None else f' for --view={view}'}."
        )
    return view


def compress_command(args) -> int:
    """`keras-structopt compress MODEL`: the end of `run`, on a model the user already has."""
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    import tensorflow as tf

    from keras_structopt.data import load_digits_split

    out = Path(args.out)
    if (out / "report.json").exists():
        raise _checks.error(
            f"Expected --out without an earlier report. Received: --out={args.out!r}, which holds report.json; "
            "choose another --out."
        )
    model = _load_user_model(args.model)
    view = _view_of(model, args.view)
    data = load_digits_split(view, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    tf.config.experimental.enable_op_determinism()
    say(f"Compressing {args.model} on digits ({view})")
    record = {"model": str(args.model),
              "data": {"dataset": "digits", "view": view, "split": "stratified 60/20/20", "seed": args.seed}}
    from keras_structopt.export import isolated_conversion

    with isolated_conversion("int8"):  # a model file from outside: a calibrator crash must not end the command
        return _compress_and_export(model, data, args, out, say, {}, record)


def export_command(args) -> int:
    """`keras-structopt export MODEL`: the next SavedModel version and a TFLite file, nothing compressed."""
    import keras_structopt as kso
    from keras_structopt.export._saved_model import existing_versions

    model = _load_user_model(args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    version = (existing_versions(out, args.name) or [0])[-1] + 1
    saved_model = kso.export_saved_model(model, out, args.name, version=version)
    with kso.export.isolated_conversion():  # a model file from outside: a converter crash must not end the command
        tflite = kso.export_tflite(model, out / "tflite" / f"{args.name}-{version}.tflite",
                                   quantization=args.quantization)
    if args.quiet:
        print(json.dumps({"saved_model": str(saved_model), "tflite": str(tflite)}))
    else:
        print(f"Wrote {saved_model} (TF Serving version {version}) and {tflite}", flush=True)
    return 0


def report_command(args) -> int:
    """`keras-structopt report DIR`: tables and plots of an existing search, the project only read."""
    from keras_structopt.export._report import plot_stages, render_markdown
    from keras_structopt.search._project import write_search_report

    directory = Path(args.directory)
    project = directory / "tuner" if (directory / "tuner" / "oracle.json").is_file() else directory
    out = Path(args.out) if args.out else directory / "report"
    run_report = directory / "report.json"
    report = None
    if run_report.is_file():  # the OUT of `keras-structopt run`: read (and refused) before anything is written
        report = _checks.json_object(run_report, "the run's report as keras-structopt wrote it",
                                     "run the job again with --resume to write it anew")
    written = write_search_report(project, out)
    if report is not None:  # its compression report again
        (out / "report.md").write_text(render_markdown(report))
        written.append(out / "report.md")
        if report.get("compression"):
            written.append(plot_stages(report["compression"], out / "compression.png"))
    if args.quiet:
        print(json.dumps([str(p) for p in written]))
    else:
        print(f"Wrote {', '.join(str(p) for p in written)}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
