"""The types of the public API's arguments: string options as `typing.Literal` types, and the
shapes of HyperModel spaces and data (checked by mypy; the functions still check every value
at run time and name the accepted ones)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

Task = Literal["multiclass", "binary", "regression"]
Target = Literal["mobile", "cpu", "gpu", "tpu"]
Schedule = Literal["polynomial", "constant"]
Quantization = Literal["none", "dynamic", "float16", "int8", "qat"]  # compress: conversions and QAT
TFLiteQuantization = Literal["none", "dynamic", "float16", "int8"]  # a TFLite conversion
Cost = Literal["params", "macs"]
Refit = Literal["all", "best_fold"]
SelectionRule = Literal["one_se", "best"]
DigitsView = Literal["flat", "image", "rows", "tokens"]

# The arguments of a HyperModel: each may be fixed (a value), a choice (a list) or a range (a
# `(min, max)` tuple); see `keras_structopt.hypermodels.StructuralHyperModel`.
IntSpace = int | Sequence[int] | tuple[int, int]
FloatSpace = float | Sequence[float] | tuple[float, float]
StrSpace = str | Sequence[str]
BoolSpace = bool | Sequence[bool]
Shape = Sequence[int]  # one example's shape, without the batch axis
Statistics = tuple[Sequence[float], Sequence[float]]  # (mean, variance), one value per input feature
Features = Any  # a TabularSchema, its to_list(), a pandas DataFrame or a dict of columns
OptimizerSpace = Any  # an optimizer name, a list of names (a choice), or a keras.optimizers.Optimizer
Loss = Any  # a Keras loss name, a keras.losses.Loss or a function (y_true, y_pred); None: the task's
Metrics = Sequence[Any] | None  # Keras metric names, keras.metrics.Metric objects or functions
Model = Any  # a Keras 3 model (keras.Model); where said, a tf_keras one
Data = Any  # (x, y) arrays (x: an array, or a list or dict of arrays), or a tf.data.Dataset of such pairs
Inputs = Any  # an array, or a list or dict of arrays (one per model input)
PathLike = str | os.PathLike
Searched = Any  # a Keras Tuner tuner, a `keras_structopt.search.Project` or a `RaySearch`: a search to read
ObjectiveArg = Any  # a metric name ("val_accuracy"), a keras_tuner.Objective, or a list of them
