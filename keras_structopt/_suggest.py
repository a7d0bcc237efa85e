"""`suggest`: a search space designed from the data and the task, with its reasons.

Every HyperModel has a fixed default space; a user with 300 rows and one with 3 million
get the same ranges. `suggest(x, y)` reads what the data says — the rank and shape of
the inputs, column types and cardinalities, the number of examples, the label type,
the classes and their balance — and returns a HyperModel whose space is sized for it,
with one line of rationale per choice. The rules are written out below, not learnt;
take the suggestion as it is, or read `suggestion.arguments`, edit and rebuild.

The rules (n = training examples):

* Family: a table (DataFrame or dict of columns) -> `TabularHyperModel`; inputs of
  shape `(n, h, w, c)` -> `ConvHyperModel`; `(n, t, f)` (a sequence of feature vectors)
  -> `Conv1DHyperModel`, with `RecurrentHyperModel` as the alternative
  (`suggestion.alternatives`): convolutions over time train in parallel and, under the
  design rules, see the whole sequence; `(n, d)` -> `DenseHyperModel`, or
  `Conv1DHyperModel` when the columns are ordered like a signal, measured: with at least
  16 columns, the mean absolute correlation of neighbouring columns is at least 0.5 and
  at least twice that of random column pairs (neighbouring values belong together, as in
  a spectrum, a time series or MNIST-1D; shuffled columns, or measurements listed side by
  side as in breast cancer, stay dense). The rationale gives both figures.
* Task: float labels, 2-D labels, or integers with more than 100 distinct values
  (more than n / 5) -> regression; otherwise class ids: two classes -> binary, more ->
  multiclass with `max(y) + 1` outputs.
* Capacity follows the data: the widest layer is about `8 * sqrt(n)` units (a power of
  two, 64..1024), the narrowest an eighth of it (at least 16); depth up to 2 below
  1,000 examples, 3 below 100,000, else 4. Conv filters (2-D and 1-D): 16..64 below
  5,000 examples, 32..128 above. Stages follow the design rules
  (`keras_structopt.space.receptive_field`): the fewest with which even the smallest
  network's receptive field covers the input and its last map is at most 8 per side,
  and one more (a 28x28 image: 4..5; a signal of 40 steps: 4..5); 1-D kernels are 3
  wide below 32 steps, else 5.
* Regularisation for small data: below 2,000 examples dropout is searched among
  0, 0.1, 0.2 and 0.3 (none stays a choice: early stopping may be enough); at 100,000
  examples and more, among 0 and 0.1. The learning rate keeps Adam's range 1e-3..1e-2
  whatever the size: few examples mean few updates per epoch, so a lower rate would
  leave a short search under-trained.
* Scale of flat inputs: when a column's mean or standard deviation is beyond 3 in
  magnitude (raw measurements, counts, pixel values), the dense model standardises
  its input itself (`input_normalization`, the training data's mean and variance):
  callers keep sending raw values. Tables are always normalised per column.
* Scale of regression targets: a single target whose mean is further from 0 than its
  standard deviation (ratings around 3.5, prices) starts the head's bias at that mean
  (`head_bias`) instead of 0, so the first epochs are not spent learning an offset.
* Imbalanced classes (largest / smallest class > 3): binary tasks also report AUC (a
  `val_auc` objective is suggested), and `class_weight` is recommended in the rationale.
* Objective for small classification data: below 10,000 examples (so a validation split
  of a few hundred to a few thousand), trials are ranked by validation cross-entropy
  (`val_loss`), not accuracy: accuracy on a few hundred examples moves in steps of
  several tenths of a point and ties between trials, so the ranking is decided by a
  handful of examples; cross-entropy is continuous and also counts how confident the
  right answers are. From 10,000 examples on, `val_accuracy` (imbalanced binary
  tasks: `val_auc`, above).
* Tables: the schema is read from `x` (`TabularSchema.from_data`), embedding widths
  follow each column's cardinality (`embedding_units_range`), cross layers are offered
  only with at least 4 features (they model pairwise interactions).
* Interactions: a table with a categorical `user_id` column and another categorical
  column whose name ends in `_id` (an item: `movie_id`, `item_id`, ...) is a
  recommender (`RecommenderHyperModel`): columns whose names contain `user` are the
  user side, the others the item side; the three interactions are searched, the towers'
  width up to the embedding width of the larger id; a multiclass label (star ratings as
  integers) is treated as a rating (regression).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt.space._rules import pool_factor, stage_range


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """What `suggest` returns: the HyperModel, its constructor arguments and the reasons.

    Attributes:
        hypermodel: A ready HyperModel (pass it to any Keras Tuner tuner).
        family: `"dense"`, `"conv"`, `"recurrent"` or `"tabular"`.
        arguments: The keyword arguments it was built with (edit and rebuild with
            `type(suggestion.hypermodel)(**arguments)`).
        objective: The objective the rules suggest (`"val_accuracy"`, `"val_auc"` or
            `"val_loss"`).
        rationale: One line per choice: what was chosen and why.
        alternatives: Other suggestions worth searching for the same data (for
            sequences, the recurrent family beside the 1-D convolutional one).

    Example:
        >>> import numpy as np, keras_structopt as kso
        >>> x, y = np.random.default_rng(0).normal(size=(200, 12)).astype("float32"), np.arange(200) % 3
        >>> suggestion = kso.suggest(x, y, seed=0)
        >>> suggestion.family, type(suggestion.hypermodel).__name__
        ('dense', 'DenseHyperModel')
    """

    hypermodel: Any
    family: str
    arguments: dict[str, Any]
    objective: str
    rationale: tuple[str, ...]
    alternatives: tuple[Suggestion, ...] = ()

    def __str__(self) -> str:
        return "\n".join([f"{type(self.hypermodel).__name__} (objective {self.objective}):"]
                         + [f"  - {line}" for line in self.rationale])


def _power_of_two(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, 2 ** round(math.log2(max(value, 1.0))))))


def _task(y, rationale: list[str]) -> tuple[str, int, np.ndarray]:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    distinct = len(np.unique(labels)) if labels.ndim == 1 and labels.dtype.kind in "iu" else 0
    if labels.dtype.kind == "f" or labels.ndim > 1 or (distinct > 100 and distinct > len(labels) / 5):
        outputs = 1 if labels.ndim == 1 else int(labels.shape[1])
        why = ("float labels" if labels.dtype.kind == "f" else
               "2-D labels" if labels.ndim > 1 else f"{distinct} distinct integer values: counts, not classes")
        rationale.append(f"task regression: {why} ({outputs} target(s)); pass integer class ids to classify")
        return "regression", outputs, labels.astype(np.float32)
    if labels.dtype.kind not in "iuf" or labels.size == 0 or labels.min() < 0:
        numeric = labels.dtype.kind in "iuf" and labels.size
        raise _checks.error(
            "Expected y to hold class ids (integers >= 0) or float regression targets. Received: y of dtype "
            f"{labels.dtype}" + (f" with values from {labels.min()} to {labels.max()}." if numeric else ".")
        )
    labels = labels.astype(np.int64)
    classes = int(labels.max()) + 1
    if classes <= 2:
        rationale.append("task binary: two classes (one sigmoid unit)")
        return "binary", 1, labels
    rationale.append(f"task multiclass: {classes} classes (class ids 0..{classes - 1})")
    return "multiclass", classes, labels


def _head_bias(labels: np.ndarray) -> float | None:
    """The targets' mean where it is further from 0 than their standard deviation (one target only)."""
    values = np.asarray(labels, dtype=np.float64)
    if values.ndim != 1 or not values.size:
        return None
    mean, std = float(values.mean()), float(values.std())
    return round(mean, 6) if abs(mean) > std else None


def _input_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-column mean and variance of flat inputs not on a unit scale (some |mean| or std > 3), else None."""
    columns = x.reshape(len(x), -1).astype(np.float64)
    mean, variance = columns.mean(axis=0), columns.var(axis=0)
    if max(np.abs(mean).max(), np.sqrt(variance).max()) <= 3:
        return None
    return mean, variance


def _recommender(schema, n: int, y, seed, ids, cls) -> Suggestion:
    """The recommender rule (see the module docstring)."""
    rationale = [f"family recommender: a user_id column and item id(s) {ids} in a table of {n:,} interactions"]
    user = [name for name in schema.names if "user" in name]
    item = [name for name in schema.names if name not in user]
    rationale.append(f"user side {user}; item side {item}")
    labels = np.asarray(y)
    if labels.dtype.kind in "iu" and labels.size and labels.min() >= 0 and labels.max() <= 1:
        task = "binary"
        rationale.append("task binary: implicit feedback (0/1 labels); rank with kso.search.RankingMetrics")
    else:
        task = "regression"
        rationale.append("task regression: ratings")
    largest = max(len(schema.feature(name)["vocabulary"]) for name in ["user_id", *ids])
    width = embedding_units_high(largest + 1)
    towers = (max(4, width // 4), max(8, width))
    arguments: dict[str, Any] = {"user_features": user, "item_features": item, "task": task, "seed": seed,
                                 "interaction": ["dot", "mlp", "cross"], "tower_units": towers,
                                 "num_layers": (1, 2 if n < 100_000 else 3),
                                 "units": (16, _power_of_two(8 * math.sqrt(n), 64, 512))}
    bias = _head_bias(labels) if task == "regression" else None
    if bias is not None:
        arguments["head_bias"] = bias
        rationale.append(f"head bias {bias:.4g} (mlp and cross heads): the ratings' mean, further from 0 than "
                         "their spread")
    rationale.append(f"interactions dot (two towers), mlp and cross searched; tower width {towers[0]}..{towers[1]} "
                     f"from the {largest:,} values of the largest id")
    hypermodel = cls(schema, **arguments)
    objective = "val_loss" if task == "regression" else "val_accuracy"
    return Suggestion(hypermodel, "recommender", {"features": schema.to_list(), **arguments}, objective,
                      tuple(rationale))


def embedding_units_high(cardinality: int) -> int:
    """The widest embedding `embedding_units_range` allows for `cardinality` values."""
    from keras_structopt.data._tabular import embedding_units_range

    return embedding_units_range(cardinality)[1]


def suggest(x: Any, y: Any, *, seed: int | None = None) -> Suggestion:
    """Designs a search space from the training data; returns a `Suggestion`.

    Args:
        x: The training inputs: an array `(n, d)`, `(n, t, f)` or `(n, h, w, c)`, or a
            table (pandas DataFrame or dict of columns).
        y: The training labels: class ids or regression targets.
        seed: Passed to the HyperModel (each trial's weights and shuffling).

    The rules are in this module's docstring; `str(suggestion)` prints the rationale.

    Example:
        >>> import keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split("image", seed=0)
        >>> suggestion = kso.suggest(*data.train, seed=0)
        >>> suggestion.family, suggestion.arguments["num_stages"], suggestion.objective
        ('conv', (2, 3), 'val_loss')
        >>> print(suggestion.rationale[0])
        family conv: images of shape (8, 8, 1)
    """
    from keras_structopt.data._tabular import TabularSchema, is_table
    from keras_structopt.hypermodels import (
        Conv1DHyperModel,
        ConvHyperModel,
        DenseHyperModel,
        RecommenderHyperModel,
        RecurrentHyperModel,
        TabularHyperModel,
    )

    rationale: list[str] = []
    if is_table(x):
        schema = TabularSchema.from_data(x)
        n = len(next(iter(schema.inputs(x).values())))
        shape: tuple[int, ...] = (len(schema.features),)
        family = "tabular"
        categorical = [f for f in schema.features if f["kind"] != "numeric"]
        ids = [f["name"] for f in categorical if f["name"].endswith("_id") and f["name"] != "user_id"]
        if "user_id" in [f["name"] for f in categorical] and ids:
            return _recommender(schema, n, y, seed, ids, RecommenderHyperModel)
        rationale.append(
            f"family tabular: a table of {len(schema.features)} columns ({len(categorical)} categorical: "
            + (", ".join(f"{f['name']} ({len(f['vocabulary'])} values)" for f in categorical) or "none") + ")"
        )
    else:
        array = np.asarray(x)
        if array.ndim not in (2, 3, 4) or not len(array):
            raise _checks.error(
                "Expected x of shape (examples, features), (examples, timesteps, features) or (examples, height, "
                f"width, channels), or a table. Received: x of shape {array.shape}."
            )
        n, shape = len(array), tuple(int(d) for d in array.shape[1:])
        family = {2: "dense", 3: "conv1d", 4: "conv"}[array.ndim]
        if family == "dense":
            ordered = ordered_columns(array)
            if ordered is not None and ordered[0] >= 0.5 and ordered[0] >= 2 * ordered[1]:
                family = "conv1d"
                rationale.append(
                    f"family conv1d: {shape[0]} ordered values (neighbouring columns correlate {ordered[0]:.2f} "
                    f"in mean absolute value, random pairs {ordered[1]:.2f}): a signal, convolved along its length"
                )
            else:
                why = ("fewer than 16 columns" if ordered is None else
                       f"columns not ordered like a signal (neighbours correlate {ordered[0]:.2f}, random pairs "
                       f"{ordered[1]:.2f})")
                rationale.append(f"family dense: flat vectors of {shape[0]} features ({why})")
        elif family == "conv1d":
            rationale.append(
                f"family conv1d: sequences of {shape[0]} steps x {shape[1]} features, convolved along time "
                "(trains in parallel; the design rules make it see the whole sequence); the recurrent family "
                "is the alternative (suggestion.alternatives)"
            )
        else:
            rationale.append(f"family conv: images of shape {shape}")
    if len(np.asarray(y)) != n:
        raise _checks.error(f"Expected as many labels as examples. Received: x with {n} examples and y with "
                            f"{len(np.asarray(y))}.")
    task, outputs, labels = _task(y, rationale)

    widest = _power_of_two(8 * math.sqrt(n), 64, 1024)
    narrowest = max(16, widest // 8)
    depth = 2 if n < 1_000 else 3 if n < 100_000 else 4
    if family not in ("conv", "conv1d"):
        rationale.append(f"widths {narrowest}..{widest}: about 8 x sqrt({n:,} examples) at most")
    arguments: dict[str, Any] = {"task": task, "seed": seed}
    if task != "binary":
        arguments["outputs"] = outputs
    if n < 2_000:
        arguments["dropout"] = [0.0, 0.1, 0.2, 0.3]
        rationale.append(f"small data ({n:,} < 2,000 examples): dropout among 0, 0.1, 0.2 and 0.3")
    elif n >= 100_000:
        arguments["dropout"] = [0.0, 0.1]
        rationale.append(f"large data ({n:,} >= 100,000 examples): dropout 0 or 0.1")
    if task == "regression" and family in ("dense", "tabular"):
        bias = _head_bias(labels)
        if bias is not None:
            arguments["head_bias"] = bias
            rationale.append(f"head bias {bias:.4g}: the targets' mean, further from 0 than their spread")
    if family == "dense":
        statistics = _input_statistics(np.asarray(x))
        if statistics is not None:
            mean, variance = statistics
            arguments["input_normalization"] = (mean.tolist(), variance.tolist())
            rationale.append(
                f"inputs standardised inside the model: column means up to {np.abs(mean).max():.3g}, standard "
                f"deviations up to {np.sqrt(variance).max():.3g} (beyond 3); the model takes raw values"
            )
    objective = "val_loss" if task == "regression" else "val_accuracy"
    if task != "regression":
        counts = np.bincount(labels, minlength=outputs if task == "multiclass" else 2)
        present = counts[counts > 0]
        ratio = float(present.max() / present.min())
        if ratio > 3:
            rationale.append(f"imbalanced classes (largest / smallest = {ratio:.1f}): pass class_weight to search")
            if task == "binary":
                import keras

                arguments["metrics"] = ["accuracy", keras.metrics.AUC(name="auc")]
                objective = "val_auc"
                rationale.append("objective val_auc: accuracy rewards predicting the majority class")
        else:
            rationale.append(f"balanced enough classes (largest / smallest = {ratio:.1f})")
        if objective == "val_accuracy" and n < 10_000:
            objective = "val_loss"
            rationale.append(f"objective val_loss: {n:,} < 10,000 examples, so the validation accuracy of a trial "
                             "moves in coarse steps and ties; cross-entropy ranks trials continuously")

    if family in ("dense", "tabular"):
        arguments.update(num_layers=(1, depth), units=(narrowest, widest))
        why = {2: "fewer than 1,000", 3: "fewer than 100,000", 4: "at least 100,000"}[depth]
        rationale.append(f"depth 1..{depth}: {why} examples")
    if family == "tabular":
        connections = ["plain", "residual", "dense"] + (["cross"] if len(shape) and shape[0] >= 4 else [])
        arguments["connection"] = connections
        rationale.append("cross layers offered: at least 4 features to interact" if "cross" in connections
                         else "no cross layers: fewer than 4 features")
        rationale.append("embedding widths from each column's cardinality (about 1.6 x cardinality^0.56 at most)")
        return Suggestion(TabularHyperModel(schema, **arguments), family, {"features": schema.to_list(), **arguments},
                          objective, tuple(rationale))
    arguments["input_shape"] = shape
    if family == "dense":
        return Suggestion(DenseHyperModel(**arguments), family, arguments, objective, tuple(rationale))
    filters = (16, 64) if n < 5_000 else (32, 128)
    rationale.append(f"filters {filters[0]}..{filters[1]}: {'fewer than' if n < 5_000 else 'at least'} 5,000 examples")
    if family == "conv1d":
        steps = shape[0]
        kernel = 3 if steps < 32 else 5
        factor = pool_factor(steps, kernel)
        low, high = stage_range(steps, kernel, factor)
        arguments.update(num_stages=low if low == high else (low, high), filters=filters, kernel_size=kernel)
        rationale.append(
            f"stages {_span(low, high)}, kernels {kernel} wide, pooled by {factor}: the fewest stages whose "
            f"receptive field covers the {steps} steps and leave at most 8" + (", and one more" if high > low else "")
        )
        alternatives: tuple[Suggestion, ...] = ()
        if len(shape) == 2:  # a sequence of vectors: the recurrent family too
            recurrent = {k: v for k, v in arguments.items() if k not in ("num_stages", "filters", "kernel_size")}
            recurrent.update(num_layers=(1, min(depth, 3)), units=(narrowest, min(widest, 256)))
            lines = [f"family recurrent: sequences of {shape[0]} steps x {shape[1]} features"]
            lines += [line for line in rationale[1:] if not line.startswith(("filters", "stages"))]
            lines.append(f"recurrent layers 1..{min(depth, 3)}, units {narrowest}..{min(widest, 256)}: about "
                         f"8 x sqrt({n:,} examples) at most")
            alternatives = (Suggestion(RecurrentHyperModel(**recurrent), "recurrent", recurrent, objective,
                                       tuple(lines)),)
        return Suggestion(Conv1DHyperModel(**arguments), family, arguments, objective, tuple(rationale),
                          alternatives)
    low, high = stage_range(max(shape[0], shape[1]), 3, 2)
    arguments.update(num_stages=low if low == high else (low, high), filters=filters)
    rationale.append(f"stages {_span(low, high)}: the fewest whose receptive field covers the {shape[0]}x"
                     f"{shape[1]} image and leave a map of at most 8x8" + (", and one more" if high > low else ""))
    return Suggestion(ConvHyperModel(**arguments), family, arguments, objective, tuple(rationale))


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}..{high}"


def ordered_columns(x: np.ndarray, examples: int = 5_000, seed: int = 0) -> tuple[float, float] | None:
    """How much a flat array's neighbouring columns correlate, against random pairs of columns.

    Returns `(neighbours, random_pairs)`: the mean absolute correlation of columns `i` and
    `i + 1`, and of random pairs at least two apart (constant columns left out), over
    the first `examples` rows; None below 16 columns that vary.

    Example:
        >>> import numpy as np
        >>> noise = np.random.default_rng(0).normal(size=(500, 40))
        >>> signals = np.stack([np.convolve(row, np.ones(5) / 5, mode="same") for row in noise])  # smooth
        >>> neighbours, random_pairs = ordered_columns(signals)
        >>> bool(neighbours > 0.5 and neighbours > 2 * random_pairs)
        True
    """
    columns = np.asarray(x).reshape(len(x), -1)[:examples].astype(np.float64)
    width = columns.shape[1]
    if width < 16:
        return None
    spread = columns.std(axis=0)
    if np.count_nonzero(spread > 0) < 16:
        return None
    z = np.where(spread > 0, (columns - columns.mean(axis=0)) / np.where(spread > 0, spread, 1), 0.0)
    alive = spread > 0

    def correlation(i, j):
        return abs(float(np.mean(z[:, i] * z[:, j])))

    neighbours = [correlation(i, i + 1) for i in range(width - 1) if alive[i] and alive[i + 1]]
    rng = np.random.default_rng(seed)
    pairs: list[float] = []
    while len(pairs) < 4 * width:
        i, j = (int(v) for v in rng.integers(0, width, 2))
        if abs(i - j) >= 2 and alive[i] and alive[j]:
            pairs.append(correlation(i, j))
    return (float(np.mean(neighbours)) if neighbours else 0.0), float(np.mean(pairs))
