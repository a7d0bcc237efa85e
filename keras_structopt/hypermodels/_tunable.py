"""A HyperModel argument parsed into fixed / choice / range form, and declared on Keras Tuner's `hp`.

Every argument of a keras-structopt HyperModel may be a single value (fixed), a list (a
choice) or a `(min, max)` tuple (a range, both ends included; integer widths and learning
rates are sampled on a log scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras_tuner
import numpy as np

from keras_structopt import _checks


class Tunable:
    """One constructor argument parsed into fixed / choice / range form.

    Example:
        >>> Tunable.parse("units", [64, 32], kind=int).values
        [64, 32]
        >>> Tunable.parse("num_layers", (1, 3), kind=int).values
        [1, 2, 3]
        >>> Tunable.parse("learning_rate", (1e-3, 1e-2), kind=float).values  # a float range: its two ends
        [0.001, 0.01]
    """

    def __init__(self, name: str, form: str, values: Sequence[Any] | None, low: Any = None, high: Any = None,
                 log: bool = False, step: int | None = None, kind: type | None = None):
        self.name = name
        self.kind = kind
        self.form = form  # "fixed", "choice" or "range"
        self._values: list[Any] = list(values) if values is not None else [low, high]
        self.low, self.high, self.log, self.step = low, high, log, step

    @property
    def values(self) -> list:
        """Every value the argument can take: for a range of ints all of them, for a float range its two ends."""
        if self.form == "range" and isinstance(self.low, int):
            return list(range(self.low, self.high + 1, self.step or 1))
        return list(self._values)

    @property
    def minimum(self) -> Any:
        """The smallest value it can take."""
        return self.low if self.form == "range" else min(self._values)

    @property
    def maximum(self) -> Any:
        """The largest value it can take."""
        return self.high if self.form == "range" else max(self._values)

    @classmethod
    def parse(
        cls,
        name: str,
        value: Any,
        *,
        kind: type,
        accepted: Sequence[Any] | None = None,
        low: float | None = None,
        high: float | None = None,
        high_inclusive: bool = True,
        log: bool = False,
        multiple: int = 1,
    ) -> Tunable:
        """Parses and validates one argument; raises `ConfigurationError` if bad."""

        def describe() -> str:
            what = {int: "an int", float: "a float", str: "a string", bool: "a bool"}[kind]
            bounds = ""
            if low is not None:
                bounds = f" >= {low}"
            if high is not None:
                bounds += f"{' and' if bounds else ''} {'<=' if high_inclusive else '<'} {high}"
            if accepted is not None:
                bounds = f" among {list(accepted)}"
            ranges = ", or a (min, max) range" if kind in (int, float) else ""
            return f"Expected {name} to be {what}{bounds}, a list of them{ranges}. Received: {name}={value!r}."

        def valid(item) -> bool:
            if kind is int and not _checks.is_int(item):
                return False
            if kind is float and not _checks.is_number(item):
                return False
            if kind is str and not isinstance(item, str):
                return False
            if kind is bool and not isinstance(item, (bool, np.bool_)):
                return False
            if accepted is not None and item not in accepted:
                return False
            if low is not None and item < low:
                return False
            return high is None or (item <= high if high_inclusive else item < high)

        def align(item):
            return int(math.ceil(item / multiple) * multiple) if kind is int and multiple > 1 else item

        if isinstance(value, tuple):
            if kind not in (int, float) or len(value) != 2:
                raise _checks.error(describe() + " Use a list for a choice among values.")
            lo, hi = value
            if not (valid(lo) and valid(hi)) or lo > hi:
                raise _checks.error(describe())
            lo, hi = align(kind(lo)), align(kind(hi))
            if lo == hi:
                return cls(name, "fixed", [lo], kind=kind)
            step = multiple if kind is int and multiple > 1 else None
            return cls(name, "range", None, lo, hi, log=log and step is None, step=step, kind=kind)
        if isinstance(value, list):
            if not value or not all(valid(item) for item in value):
                raise _checks.error(describe())
            items = []
            for item in value:
                item = align(kind(item))
                if item not in items:
                    items.append(item)
            return cls(name, "fixed" if len(items) == 1 else "choice", items, kind=kind)
        if not valid(value):
            raise _checks.error(describe())
        return cls(name, "fixed", [align(kind(value))], kind=kind)

    def declare(self, hp: keras_tuner.HyperParameters, name: str | None = None, **condition):
        """Declares the hyperparameter on `hp` and returns its current value."""
        name = name or self.name
        if self.form == "fixed":
            value = hp.Fixed(name, self._values[0], **condition)
        elif self.form == "choice":
            value = hp.Choice(name, self._values, **condition)
        elif isinstance(self.low, int):
            value = hp.Int(
                name,
                self.low,
                self.high,
                step=self.step,
                sampling="log" if self.log else "linear",
                **condition,
            )
        else:
            value = hp.Float(name, self.low, self.high, sampling="log" if self.log else "linear", **condition)
        value = _plain(value)
        return self.kind(value) if self.kind is not None and value is not None else value


def _plain(value):
    """Hyperparameter values as plain Python scalars (Keras 3 refuses numpy ints)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def as_choice(value):
    """Tuples of strings or bools mean a choice too (they are never ranges)."""
    return list(value) if isinstance(value, tuple) else value


def declare_per_block(hp: keras_tuner.HyperParameters, tunable: Tunable, depth: Tunable, name_format: str) -> list:
    """Declares one hyperparameter per block; blocks past the minimum depth are conditional.

    Each block's value is its own hyperparameter (`name_format.format(i)`), active only
    when the depth reaches the block (Keras Tuner's conditional scope on `depth`), so no
    tuner varies a width the network does not have. Returns the values of the active
    blocks, in order.

    Example:
        >>> import keras_tuner
        >>> hp = keras_tuner.HyperParameters()
        >>> depth = Tunable.parse("num_layers", (1, 3), kind=int)
        >>> _ = depth.declare(hp)
        >>> declare_per_block(hp, Tunable.parse("units", [8, 16], kind=int), depth, "block_{}/units")
        [8]
    """
    values = []
    depth_now = hp.get(depth.name)
    for i in range(depth.maximum):
        name = name_format.format(i)
        if i < depth.minimum:
            values.append(tunable.declare(hp, name))
            continue
        deeper = [n for n in depth.values if n > i]
        with hp.conditional_scope(depth.name, deeper):
            value = tunable.declare(hp, name)
        if i < depth_now:
            values.append(value)
    return values


def declare_when(hp, tunable: Tunable, option: Tunable, chosen, needed):
    """Declares a hyperparameter that matters only when `option` is `needed`; returns its value then.

    Where `option` is a choice including `needed`, the hyperparameter is declared under Keras
    Tuner's condition on it (so no tuner varies it while it has no effect); otherwise it is
    declared only when `chosen == needed`. Returns None when it does not apply.
    """
    if option.form == "fixed" or needed not in option.values:
        return tunable.declare(hp) if chosen == needed else None
    with hp.conditional_scope(option.name, [needed]):
        value = tunable.declare(hp)
    return value if chosen == needed else None
