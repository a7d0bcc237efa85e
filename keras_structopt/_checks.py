"""Validators that word every message alike: argument, value received, what is accepted."""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keras_structopt.errors import ConfigurationError

# How the arguments checked here are called where they came from (the command's flags).
_SHOWN: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("keras_structopt_names", default=None)


@contextlib.contextmanager
def argument_names(names: Mapping[str, str]) -> Iterator[None]:
    """Within the block, the checks name each argument as `names` says (`{"sparsity": "--sparsity"}`).

    The command builds the library's own objects from its flags; their checks then speak
    of the flag the user typed, not of the constructor argument behind it.

    Example:
        >>> with argument_names({"sparsity": "--sparsity"}):
        ...     try:
        ...         fraction("sparsity", 1.5)
        ...     except ValueError as problem:
        ...         print(problem)
        Expected --sparsity to be a float with 0 <= --sparsity < 1. Received: --sparsity=1.5.
    """
    token = _SHOWN.set({**(_SHOWN.get() or {}), **names})
    try:
        yield
    finally:
        _SHOWN.reset(token)


def shown(name: str) -> str:
    """How an argument is called where it came from (see `argument_names`)."""
    return (_SHOWN.get() or {}).get(name, name)


def error(message: str) -> ConfigurationError:
    from keras_structopt.errors import ConfigurationError  # imports Keras Tuner: only when raising

    return ConfigurationError(message)


def one_of(name: str, value: Any, accepted: Sequence[Any]) -> Any:
    name = shown(name)
    # A bool is never taken for 0 or 1, nor a number for False or True.
    found = any(a == value and isinstance(a, bool) == isinstance(value, bool) for a in accepted)
    if not found:
        raise error(f"Expected {name} to be one of {list(accepted)}. Received: {name}={value!r}.")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value: Any) -> int:
    name = shown(name)
    if not is_int(value) or value < 1:
        raise error(f"Expected {name} to be an int >= 1. Received: {name}={value!r}.")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    name = shown(name)
    if not is_int(value) or value < 0:
        raise error(f"Expected {name} to be an int >= 0. Received: {name}={value!r}.")
    return int(value)


def fraction(name: str, value: Any, *, inclusive_high: bool = False) -> float:
    name = shown(name)
    ok = is_number(value) and value >= 0 and (value <= 1 if inclusive_high else value < 1)
    if not ok:
        upper = "<= 1" if inclusive_high else "< 1"
        raise error(f"Expected {name} to be a float with 0 <= {name} {upper}. Received: {name}={value!r}.")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    name = shown(name)
    if not is_number(value) or value <= 0:
        raise error(f"Expected {name} to be a number > 0. Received: {name}={value!r}.")
    return float(value)


def shape(name: str, value: Any) -> tuple[int, ...]:
    name = shown(name)
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


def json_object(path: Any, expected: str, remedy: str) -> dict:
    """The JSON object a file holds; a `ConfigurationError` naming the file (and `remedy`) when it is not one.

    Example:
        >>> path = getfixture("tmp_path") / "state.json"
        >>> _ = path.write_text("[1, 2]")
        >>> try:
        ...     json_object(path, "a state file", "write it again")
        ... except Exception as caught:
        ...     print(str(caught).split(" Received")[0], str(caught).endswith("write it again."))
        Expected a state file. True
    """
    import json
    from pathlib import Path

    try:
        state = json.loads(Path(path).read_text())
        if not isinstance(state, dict):
            raise ValueError(f"a JSON {type(state).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as problem:
        message = f"Expected {expected}. Received: {str(path)!r}, which cannot be read ({problem}); {remedy}."
        raise error(message) from None
    return state
