"""Validators that word every message alike: argument, value received, what is accepted."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keras_structopt.errors import ConfigurationError


def error(message: str) -> ConfigurationError:
    from keras_structopt.errors import ConfigurationError  # imports Keras Tuner: only when raising

    return ConfigurationError(message)


def one_of(name: str, value: Any, accepted: Sequence[Any]) -> Any:
    if isinstance(value, bool) and not any(isinstance(a, bool) for a in accepted):
        raise error(f"Expected {name} to be one of {list(accepted)}. Received: {name}={value!r}.")
    if value not in accepted:
        raise error(f"Expected {name} to be one of {list(accepted)}. Received: {name}={value!r}.")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise error(f"Expected {name} to be an int >= 1. Received: {name}={value!r}.")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 0:
        raise error(f"Expected {name} to be an int >= 0. Received: {name}={value!r}.")
    return int(value)


def fraction(name: str, value: Any, *, inclusive_high: bool = False) -> float:
    ok = is_number(value) and value >= 0 and (value <= 1 if inclusive_high else value < 1)
    if not ok:
        upper = "<= 1" if inclusive_high else "< 1"
        raise error(f"Expected {name} to be a float with 0 <= {name} {upper}. Received: {name}={value!r}.")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    if not is_number(value) or value <= 0:
        raise error(f"Expected {name} to be a number > 0. Received: {name}={value!r}.")
    return float(value)


def shape(name: str, value: Any) -> tuple[int, ...]:
    try:
        dims = tuple(value)
    except TypeError:
        dims = None
    if not dims or not all(is_int(d) and d >= 1 for d in dims):
        raise error(
            f"Expected {name} to be a non-empty tuple of ints >= 1 (one example's shape, "
            f"without the batch axis). Received: {name}={value!r}."
        )
    return tuple(int(d) for d in dims)


def writable_directory(name: str, value: Any) -> None:
    """Raises unless `value` is a directory that exists and can be written, or can be created.

    Example:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "file"
        >>> _ = file.write_text("")
        >>> try:
        ...     writable_directory("directory", file / "models")
        ... except ValueError as error:
        ...     print(str(error).split(".")[0])
        Expected directory to be a directory that can be written (or created)
    """
    import os
    from pathlib import Path

    path = Path(os.fspath(value))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{str(existing)!r} is a file, not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{str(existing)!r} cannot be written"
    if problem is not None:
        raise error(
            f"Expected {name} to be a directory that can be written (or created). Received: {name}={str(value)!r}; "
            f"{problem}."
        )
