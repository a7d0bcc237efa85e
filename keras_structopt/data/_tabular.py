"""Tabular data: a schema of named numeric and categorical columns, read from the data.

A `TabularSchema` lists each feature a `TabularHyperModel` takes, with what its
preprocessing layers need and nothing else: a numeric column's mean and variance (for
a `Normalization` layer), a categorical column's vocabulary (for a `StringLookup` or
`IntegerLookup` layer; index 0 is every value outside it). It is JSON-safe, so it
lives in the model's `Architecture` and the model rebuilds exactly in `keras` and in
`tf_keras` without seeing the data again.

Columns come from a pandas DataFrame, a dict of 1-D arrays or lists (pandas is not
required), or a 2-D numpy array (its columns are named `x0`, `x1`, ...). A `tf.data`
pipeline of `(dict of (batch, 1) columns, labels)` batches feeds a tabular model too:
`tf.data.Dataset.from_tensor_slices((schema.inputs(x), y)).batch(32)` makes one.

How a column's kind is decided, unless `categorical=` or `numeric=` says:
strings, bools, objects and pandas categoricals are categorical (`"string"`); integers
and floats are numeric. An integer column that holds codes (a zip code, a user id) is
categorical only when you name it in `categorical=` (it becomes `"integer"`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_structopt import _checks

FEATURE_KINDS = ("numeric", "string", "integer")


def is_table(x: Any) -> bool:
    """Whether `x` is a pandas DataFrame or a dict of columns (what `TabularSchema` reads).

    Example:
        >>> is_table({"age": [30, 40]}), is_table([[1, 2]])
        (True, False)
    """
    return isinstance(x, Mapping) or (hasattr(x, "columns") and hasattr(x, "__getitem__") and hasattr(x, "dtypes"))


def _columns(x, argument: str) -> dict[str, np.ndarray]:
    """The columns of a DataFrame, a dict or a 2-D array (`x0`, `x1`, ...) as 1-D arrays (same length)."""
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return _columns({f"x{i}": x[:, i] for i in range(x.shape[1])}, argument)
    if not is_table(x):
        raise _checks.error(
            f"Expected {argument} to be a pandas DataFrame, a dict of 1-D columns or a 2-D array. "
            f"Received: {argument} of type {type(x).__name__}."
        )
    names = [str(name) for name in (x.columns if hasattr(x, "columns") else x.keys())]
    columns: dict[str, np.ndarray] = {}
    for name, key in zip(names, list(x.columns) if hasattr(x, "columns") else list(x.keys())):
        column = x[key]
        if str(getattr(column, "dtype", "")) == "category":
            column = column.astype(object)
        array = np.asarray(column.numpy() if hasattr(column, "numpy") else column)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise _checks.error(
                f"Expected each column of {argument} to be 1-D (one value per example). "
                f"Received: {argument}[{name!r}] with shape {array.shape}."
            )
        columns[name] = array
    lengths = {name: len(array) for name, array in columns.items()}
    if len(set(lengths.values())) > 1:
        raise _checks.error(
            f"Expected every column of {argument} to have as many values as there are examples. "
            f"Received: column lengths {lengths}."
        )
    if not columns or not next(iter(lengths.values())):
        raise _checks.error(
            f"Expected {argument} to hold at least one column and one example. Received: {len(columns)} columns "
            f"and {next(iter(lengths.values()), 0)} examples."
        )
    return columns


def _is_categorical_dtype(array: np.ndarray) -> bool:
    return array.dtype.kind in "OUSb" or str(array.dtype) in ("string", "str")


def _as_strings(array: np.ndarray) -> np.ndarray:
    return np.asarray([value.decode() if isinstance(value, bytes) else str(value) for value in array.tolist()],
                      dtype=object)


@dataclasses.dataclass(frozen=True)
class TabularSchema:
    """The features of a table, as a `TabularHyperModel` and its `Architecture` see them.

    Each feature is a dict: `{"name", "kind": "numeric", "mean", "variance"}` or
    `{"name", "kind": "string" | "integer", "vocabulary": [...]}`. Build one from data
    with `TabularSchema.from_data`; `to_list` / `from_list` round-trip through JSON.

    Example:
        >>> schema = TabularSchema.from_data({"age": [20.0, 40.0], "city": ["Oslo", "Rome"]})
        >>> [(f["name"], f["kind"]) for f in schema.features]
        [('age', 'numeric'), ('city', 'string')]
        >>> schema.feature("age")["mean"], schema.feature("city")["vocabulary"]
        (30.0, ['Oslo', 'Rome'])
    """

    features: tuple[dict[str, Any], ...]

    def __post_init__(self):
        features = tuple(check_feature(feature, index) for index, feature in enumerate(self.features))
        if not features:
            raise _checks.error("Expected at least one feature in the schema. Received: features=[].")
        names = [feature["name"] for feature in features]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise _checks.error(f"Expected feature names to be unique. Received: {repeated} more than once.")
        object.__setattr__(self, "features", features)

    @classmethod
    def from_data(
        cls,
        x,
        *,
        categorical: Sequence[str] | None = None,
        numeric: Sequence[str] | None = None,
        max_vocabulary: int = 10_000,
        min_count: int = 1,
    ) -> TabularSchema:
        """Reads a schema from training data (a DataFrame or a dict of columns).

        Args:
            x: The training inputs, one column per feature.
            categorical: Columns to treat as categorical whatever their dtype
                (integer codes become `"integer"` features).
            numeric: Columns to treat as numeric whatever their dtype.
            max_vocabulary: The most values kept per categorical column (the most
                frequent; the others share the out-of-vocabulary index).
            min_count: Values seen fewer times are left out of the vocabulary.

        Numeric columns must hold finite numbers; their mean and variance are
        computed here (a constant column gets variance 1, so it normalises to 0).

        Example:
            >>> schema = TabularSchema.from_data({"zone": [3, 3, 7]}, categorical=["zone"])
            >>> schema.feature("zone")
            {'name': 'zone', 'kind': 'integer', 'vocabulary': [3, 7]}
        """
        columns = _columns(x, "x")
        categorical = [str(name) for name in (categorical or [])]
        numeric = [str(name) for name in (numeric or [])]
        for argument, names in (("categorical", categorical), ("numeric", numeric)):
            unknown = [name for name in names if name not in columns]
            if unknown:
                raise _checks.error(
                    f"Expected {argument} to name columns of x {sorted(columns)}. Received: {argument}={unknown}."
                )
        both = sorted(set(categorical) & set(numeric))
        if both:
            raise _checks.error(f"Expected a column to be categorical or numeric, not both. Received: {both} in both.")
        _checks.positive_int("max_vocabulary", max_vocabulary)
        _checks.positive_int("min_count", min_count)
        features: list[dict[str, Any]] = []
        for name, array in columns.items():
            is_categorical = name in categorical or (name not in numeric and _is_categorical_dtype(array))
            if is_categorical:
                _check_present(array, f"x[{name!r}]")
                kind = "integer" if array.dtype.kind in "iu" else "string"
                values = array.astype(np.int64).tolist() if kind == "integer" else _as_strings(array).tolist()
                counts = Counter(values)
                ranked = sorted((v for v, c in counts.items() if c >= min_count), key=lambda v: (-counts[v], v))
                vocabulary = sorted(ranked[:max_vocabulary])
                if not vocabulary:
                    raise _checks.error(
                        f"Expected column {name!r} to have a value seen at least min_count={min_count} times. "
                        "Received: none."
                    )
                features.append({"name": name, "kind": kind, "vocabulary": vocabulary})
            else:
                try:
                    values = array.astype(np.float64)
                except (TypeError, ValueError):
                    raise _checks.error(
                        f"Expected numeric column {name!r} to hold numbers. Received: values of dtype {array.dtype}."
                    ) from None
                _check_finite(values, f"x[{name!r}]")
                variance = float(values.var())
                features.append({"name": name, "kind": "numeric", "mean": float(values.mean()),
                                 "variance": variance if variance > 0 else 1.0})
        return cls(tuple(features))

    @classmethod
    def from_list(cls, features) -> TabularSchema:
        """The schema of `to_list()` output (a list of feature dicts)."""
        if isinstance(features, TabularSchema):
            return features
        if not isinstance(features, (list, tuple)):
            raise _checks.error(
                "Expected features to be a TabularSchema or a list of feature dicts. "
                f"Received: features of type {type(features).__name__}."
            )
        return cls(tuple(features))

    def to_list(self) -> list[dict[str, Any]]:
        """The features as a JSON-safe list of dicts."""
        return [dict(feature, **({"vocabulary": list(feature["vocabulary"])} if "vocabulary" in feature else {}))
                for feature in self.features]

    @property
    def names(self) -> list[str]:
        """The feature names, in order."""
        return [feature["name"] for feature in self.features]

    def feature(self, name: str) -> dict[str, Any]:
        """One feature's dict, by name."""
        for feature in self.features:
            if feature["name"] == name:
                return dict(feature, **({"vocabulary": list(feature["vocabulary"])} if "vocabulary" in feature else {}))
        raise _checks.error(f"Expected a feature name among {self.names}. Received: {name!r}.")

    def inputs(self, x, argument: str = "x") -> dict[str, Any]:
        """The model inputs for a table: one `(examples, 1)` array per feature.

        Numeric columns become float32, `"integer"` columns int64, `"string"` columns
        TensorFlow string tensors (Keras takes strings as tensors, not numpy arrays).
        Extra columns are ignored; a missing one, or a non-finite number in a numeric
        column, is an error naming it.

        Example:
            >>> schema = TabularSchema.from_data({"age": [20.0, 40.0], "city": ["Oslo", "Rome"]})
            >>> inputs = schema.inputs({"age": [30.0], "city": ["Paris"]})
            >>> inputs["age"].shape, inputs["city"].dtype.name
            ((1, 1), 'string')
        """
        import tensorflow as tf

        columns = _columns(x, argument)
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise _checks.error(
                f"Expected {argument} to have the columns {self.names}. Received: columns {sorted(columns)} "
                f"(missing {missing})."
            )
        result: dict[str, Any] = {}
        for feature in self.features:
            name, array = feature["name"], columns[feature["name"]]
            if feature["kind"] == "numeric":
                try:
                    values = array.astype(np.float32)
                except (TypeError, ValueError):
                    raise _checks.error(
                        f"Expected {argument}[{name!r}] to hold numbers (a numeric feature). Received: values of "
                        f"dtype {array.dtype}."
                    ) from None
                _check_finite(values, f"{argument}[{name!r}]")
                result[name] = values.reshape(-1, 1)
            elif feature["kind"] == "integer":
                if array.dtype.kind not in "iu":
                    raise _checks.error(
                        f"Expected {argument}[{name!r}] to hold integers (an integer categorical feature). "
                        f"Received: values of dtype {array.dtype}."
                    )
                result[name] = array.astype(np.int64).reshape(-1, 1)
            else:
                _check_present(array, f"{argument}[{name!r}]")
                result[name] = tf.constant(_as_strings(array).astype(str).reshape(-1, 1))
        return result

    def input_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Each feature's model input: `(shape, dtype)` (shape without the batch axis)."""
        dtypes = {"numeric": "float32", "integer": "int64", "string": "string"}
        return {feature["name"]: ((1,), dtypes[feature["kind"]]) for feature in self.features}


def category_indices(feature: dict[str, Any], values) -> np.ndarray:
    """The lookup indices of a categorical feature's values, as its lookup layer gives them.

    Index 0 is every value outside the vocabulary; `vocabulary[i]` is `i + 1`. Takes
    strings, bytes, string tensors or integer codes; returns int64 of shape `(n, 1)`.
    (A TFLite file of a tabular model takes these indices, see `keras_structopt.export.tflite_vocabularies`.)

    Example:
        >>> feature = {"name": "city", "kind": "string", "vocabulary": ["Oslo", "Rome"]}
        >>> category_indices(feature, ["Rome", "Lima", b"Oslo"]).ravel().tolist()
        [2, 0, 1]
    """
    if hasattr(values, "numpy"):
        values = values.numpy()
    array = np.asarray(values).reshape(-1)
    position = {value: i + 1 for i, value in enumerate(feature["vocabulary"])}
    keys: list[Any]
    if feature["kind"] == "string":
        keys = [value.decode() if isinstance(value, bytes) else str(value) for value in array.tolist()]
    else:
        keys = [int(value) for value in array.tolist()]
    return np.asarray([position.get(key, 0) for key in keys], dtype=np.int64).reshape(-1, 1)


def _is_missing(value) -> bool:
    """None, a float NaN, pandas' NA or NaT: a value that is not there."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, (float, np.floating)) and value != value


def _check_present(array: np.ndarray, name: str) -> None:
    """Refuses missing values in a categorical column (they would become categories such as 'nan')."""
    if array.dtype.kind == "f":
        count = int(np.isnan(array).sum())
    elif array.dtype.kind == "O":
        count = sum(1 for value in array if _is_missing(value))
    else:
        count = 0
    if count:
        raise _checks.error(
            f"Expected categorical column {name} to have no missing values (None, NaN, pd.NA); fill them first, for "
            f"example with a 'missing' category of your own. Received: {count} missing of {len(array)} rows."
        )


def _check_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise _checks.error(
            f"Expected {name} to hold finite numbers. Received: {int(bad.sum())} NaN or inf values, the first at "
            f"index {int(np.argmax(bad))}. Fill or drop them first."
        )


def check_feature(feature, index: int = 0) -> dict[str, Any]:
    """A feature dict checked and in canonical form (vocabularies as tuples)."""
    where = f"features[{index}]"
    if not isinstance(feature, Mapping):
        raise _checks.error(f"Expected {where} to be a feature dict. Received: {feature!r}.")
    feature = dict(feature)
    name, kind = feature.get("name"), feature.get("kind")
    if not isinstance(name, str) or not name:
        raise _checks.error(f"Expected {where}['name'] to be a non-empty string. Received: {name!r}.")
    _checks.one_of(f"{where}['kind']", kind, FEATURE_KINDS)
    if kind == "numeric":
        expected = {"name", "kind", "mean", "variance"}
        if set(feature) != expected:
            raise _checks.error(
                f"Expected {where} (numeric) to have the keys {sorted(expected)}. Received: {sorted(feature)}."
            )
        mean, variance = feature["mean"], feature["variance"]
        if not (_checks.is_number(mean) and np.isfinite(mean)):
            raise _checks.error(f"Expected {where}['mean'] to be a finite number. Received: {mean!r}.")
        if not (_checks.is_number(variance) and np.isfinite(variance) and variance > 0):
            raise _checks.error(f"Expected {where}['variance'] to be a number > 0. Received: {variance!r}.")
        return {"name": name, "kind": kind, "mean": float(mean), "variance": float(variance)}
    expected = {"name", "kind", "vocabulary"}
    if set(feature) != expected:
        raise _checks.error(
            f"Expected {where} ({kind}) to have the keys {sorted(expected)}. Received: {sorted(feature)}."
        )
    vocabulary = feature["vocabulary"]
    if not isinstance(vocabulary, (list, tuple)) or not vocabulary:
        raise _checks.error(f"Expected {where}['vocabulary'] to be a non-empty list. Received: {vocabulary!r}.")
    if kind == "integer" and not all(_checks.is_int(v) for v in vocabulary):
        raise _checks.error(f"Expected {where}['vocabulary'] to hold ints (kind 'integer'). Received: {vocabulary!r}.")
    if kind == "string" and not all(isinstance(v, str) for v in vocabulary):
        raise _checks.error(
            f"Expected {where}['vocabulary'] to hold strings (kind 'string'). Received: {vocabulary!r}."
        )
    if len(set(vocabulary)) != len(vocabulary):
        raise _checks.error(f"Expected {where}['vocabulary'] without repeated values. Received: {vocabulary!r}.")
    values = tuple(int(v) for v in vocabulary) if kind == "integer" else tuple(vocabulary)
    return {"name": name, "kind": kind, "vocabulary": values}


def embedding_units_range(cardinality: int) -> tuple[int, int]:
    """The embedding widths searched for a categorical feature with `cardinality` values.

    The upper end follows the common rule of thumb `1.6 * cardinality ** 0.56` (capped at
    64); the lower end is a quarter of it (at least 1). Documented rule, not tuned.

    Example:
        >>> embedding_units_range(2), embedding_units_range(100), embedding_units_range(100_000)
        ((1, 2), (5, 21), (16, 64))
    """
    high = max(2, min(64, round(1.6 * cardinality**0.56)))
    return max(1, high // 4), high
