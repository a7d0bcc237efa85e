"""Facts about this process read from its environment, importable without TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

# A large model: at least this many parameters (80 MB of float32 weights). `compress` fine-tunes its
# stages and converts its files in child processes, and `export_tflite` converts it in one (see
# FineTuning.isolated): TensorFlow keeps about four times the weights after every training, and
# TFLite's converter needs tens of times them while it runs, memory only a process's end gives back;
# a child costs seconds against a large model's minutes.
LARGE_MODEL_PARAMS = 20_000_000


def is_worker() -> bool:
    """Whether this process is a Keras Tuner worker of a distributed search (not its chief).

    Keras Tuner's distributed mode sets `KERASTUNER_ORACLE_IP` in every process and a
    `KERASTUNER_TUNER_ID` containing "chief" in the chief's.

    Example:
        >>> is_worker()  # not under a launcher
        False
    """
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "chief")


def child_environment() -> dict[str, str]:
    """The environment of a child Python process that runs one of this package's modules: this
    process's, with the package found where this process found it and TensorFlow's C++ logging off.

    Example:
        >>> import os
        >>> env = child_environment()
        >>> env["TF_CPP_MIN_LOG_LEVEL"], os.path.isdir(os.path.join(env["PYTHONPATH"].split(os.pathsep)[0],
        ...                                                          "keras_structopt"))
        ('3', True)
    """
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def offer_to_out_of_memory_killer() -> None:
    """Marks this process as the first the kernel's out-of-memory killer ends (Linux).

    A child process that fine-tunes or converts for its parent calls it first: if the two
    together outgrow the machine's memory, the kernel kills the child, whose failure the
    parent reports, and not the parent, which holds the user's session. Raising one's own
    score needs no privilege; elsewhere it does nothing.

    Example:
        >>> import subprocess, sys
        >>> code = ("from keras_structopt._env import offer_to_out_of_memory_killer as offer; offer(); "
        ...         "import os; print(open('/proc/self/oom_score_adj').read().strip() "
        ...         "if os.path.exists('/proc/self/oom_score_adj') else 1000)")
        >>> subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
        ...                env=child_environment()).stdout.strip()
        '1000'
    """
    try:
        with open("/proc/self/oom_score_adj", "w") as file:
            file.write("1000")
    except OSError:
        pass
