"""Facts about this process read from its environment, importable without TensorFlow."""

from __future__ import annotations

import os


def is_worker() -> bool:
    """Whether this process is a Keras Tuner worker of a distributed search (not its chief).

    Keras Tuner's distributed mode sets `KERASTUNER_ORACLE_IP` in every process and a
    `KERASTUNER_TUNER_ID` containing "chief" in the chief's.

    Example:
        >>> is_worker()  # not under a launcher
        False
    """
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "chief")
