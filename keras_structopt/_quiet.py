"""Keeps TensorFlow's own logging out of the command's output.

TensorFlow and XLA write C++ log lines to the process's standard error (CUDA probing,
CPU feature notes, absl's "before InitializeLog" banner, converter warnings), some of
them before any Python setting can apply. `keras-structopt` (without `--verbose`) sets
TensorFlow's log level and its Python loggers first, then passes standard error through
a filter that drops the lines in TensorFlow's C++ log format and keeps everything else
(the command's own errors, Python tracebacks) as it comes. `import keras_structopt` in the
command's process starts it before TensorFlow loads (the package imports TensorFlow, and
registers its Keras classes, on import).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings

# Lines in absl's / TensorFlow's C++ log formats, and the banners that go with them.
TENSORFLOW_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\]"  # absl: I0000 00:00:1795.91 123 file.cc:31]
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TensorFlow's own: 2026-01-01 10:00:00.1: W tensorflow/...
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r"|WARNING:absl:|INFO:tensorflow:|WARNING:tensorflow:)"
)
_ACTIVE: _Filter | None = None  # the filter in place, if any
_PYTHON_MODULES = r"(tensorflow|tf_keras|keras|keras_tuner|tensorflow_model_optimization|absl|google)(\.|$)"


class _Filter:
    """Standard error (file descriptor 2) through a pipe; a thread forwards what is not a TensorFlow log."""

    def __init__(self):
        sys.stderr.flush()
        self.original = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.reader = os.fdopen(read, "rb", buffering=0)
        self.thread = threading.Thread(target=self._forward, name="keras-structopt-stderr", daemon=True)
        self.thread.start()

    def _forward(self):
        pending = b""
        while True:
            chunk = self.reader.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._emit(line + b"\n")
        if pending:
            self._emit(pending)

    def _emit(self, line: bytes):
        if not TENSORFLOW_LOG_LINE.match(line.decode("utf-8", "replace")):
            os.write(self.original, line)

    def close(self):
        global _ACTIVE
        if _ACTIVE is not self:
            return
        _ACTIVE = None
        sys.stderr.flush()
        os.dup2(self.original, 2)  # the pipe's last writer is gone: the thread sees its end
        self.thread.join(timeout=5)
        os.close(self.original)


def quiet_tensorflow():
    """Silences TensorFlow's logs for the rest of the process; returns a function that ends the filter.

    Call it before TensorFlow is imported for the C++ level to apply from the start.

    Example (what the filter drops, and what it keeps):
        >>> bool(TENSORFLOW_LOG_LINE.match("I0000 00:00:1795948113.960021   31145 cudart_stub.cc:31] No CUDA"))
        True
        >>> bool(TENSORFLOW_LOG_LINE.match("keras-structopt run: error: Expected --trials to be an int >= 1."))
        False
    """
    global _ACTIVE
    if _ACTIVE is not None:  # already filtering (the package did it when the command started)
        return _ACTIVE.close
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    names = ("tensorflow", "absl", "keras_tuner")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=_PYTHON_MODULES)
    added = warnings.filters[0]  # the filter just inserted: the one taken out again

    def restore() -> None:  # the command called in a user's process leaves their logging as it was
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if added in warnings.filters:
            warnings.filters.remove(added)  # type: ignore[attr-defined]
            mutated = getattr(warnings, "_filters_mutated", None)  # registries made under it are stale
            if mutated is not None:
                mutated()

    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a notebook, a captured stream)
        return restore
    active = _ACTIVE = _Filter()

    def end() -> None:
        active.close()
        restore()

    return end


class _DropMessages(logging.Filter):
    def __init__(self, parts: tuple[str, ...]):
        super().__init__()
        self.parts = parts

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not any(part in message for part in self.parts)


# What TFMOT's wrappers make tf_keras's optimizer log on every step of a fine-tuning: the wrappers'
# own copies of the kernels get no gradient, by design.
FINE_TUNING_NOISE = ("Gradients do not exist for variables",)
# What the supernet's training makes tf.function log: it traces one step per network shape on purpose
# ("5 out of the last 6 calls to <function Supernet._step.<locals>.step> triggered tf.function retracing").
SUPERNET_NOISE = ("triggered tf.function retracing",)


@contextlib.contextmanager
def library_noise(*, stdout: bool = False, messages: tuple[str, ...] = FINE_TUNING_NOISE):
    """Silences what TensorFlow's internals print during one of the library's own calls, and nothing else.

    With `stdout`, file descriptors 1 and 2 go to /dev/null for the call (TFLite's converter
    prints `fully_quantize: 0, inference_type: 6, ...` from C++, past Python's streams; its
    errors still arrive, as the exception it raises); the
    log records that contain one of the `messages` are dropped from the "tensorflow" logger. The user's own logging and
    loggers are untouched, and everything is restored when the call ends, however it ends.

    Example:
        >>> with library_noise():
        ...     logging.getLogger("tensorflow").warning("Gradients do not exist for variables ['kernel']")
        >>> print("still printed")
        still printed
    """
    logger = logging.getLogger("tensorflow")
    dropping = _DropMessages(messages)
    logger.addFilter(dropping)
    saved: dict[int, int] = {}
    if stdout:
        for descriptor, stream in ((1, sys.stdout), (2, sys.stderr)):
            try:
                stream.flush()
                saved[descriptor] = os.dup(descriptor)
            except (AttributeError, OSError, ValueError):  # no real stream (a notebook's)
                continue
        null = os.open(os.devnull, os.O_WRONLY)
        for descriptor in saved:
            os.dup2(null, descriptor)
        os.close(null)
    try:
        yield
    finally:
        for descriptor, original in saved.items():
            os.dup2(original, descriptor)
            os.close(original)
        logger.removeFilter(dropping)
