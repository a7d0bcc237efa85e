"""`compress`: slim, prune, cluster and quantize a Keras model, measuring every stage.

The stages form a list (`Recipe`): structural slimming in Keras 3, then TFMOT pruning
and clustering in tf_keras, then quantization (in the TFLite conversion, or
quantization-aware fine-tuning first). Given a tolerance, `compress` climbs each
stage's ladder of stronger settings, judged on validation data only, and keeps the
smallest model within it.
"""

from __future__ import annotations

import dataclasses
import gzip
import warnings
from typing import Any, cast

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import Quantization, Schedule, Target, TFLiteQuantization
from keras_structopt.bridge import architecture_of, check_bridgeable, is_tf_keras, tf_keras_copy
from keras_structopt.compress.cluster import cluster, max_unique_kernel_values
from keras_structopt.compress.fine_tune import FineTuning
from keras_structopt.compress.measure import count_model_macs, entropy_bits, keras_latency, tflite_latency
from keras_structopt.compress.prune import check_plan, check_reached, plan, prune
from keras_structopt.compress.quantize import quantize_aware
from keras_structopt.compress.recipe import PRESETS, TARGETS, Recipe
from keras_structopt.compress.slim import slim as slim_model
from keras_structopt.compress.treatment import LayerTreatment, pruned_arrays, zero_fraction
from keras_structopt.data.datasets import dataset_arrays, is_batched, is_dataset, model_input_rank
from keras_structopt.data.tabular import TabularSchema, is_table
from keras_structopt.errors import ConfigurationError
from keras_structopt.export._runtime import tflite_predict
from keras_structopt.export._signature import serving_names
from keras_structopt.export._tflite import recurrent_layers, to_tflite_bytes

LATENCY_BATCHES = (1, 256)


@dataclasses.dataclass(frozen=True)
class Stage:
    """Measurements of one compression stage.

    Every stage is measured on its own TFLite file (the file whose size is given),
    run by the TFLite interpreter on the evaluation data.

    Attributes:
        name: `"baseline"`, `"slimmed"`, `"pruned"`, `"clustered"` or `"quantized"`.
        metrics: The loss and the metrics the model was compiled with (or those
            given to `compress`), on the evaluation data: `{"loss": ...,
            "accuracy": ...}` for a keras-structopt classifier.
        kernel_sparsity: Fraction of zeros over the weights pruning acts on.
        max_unique_kernel_values: Most distinct values in any one kernel (per output
            channel for convolutions clustered per channel).
        tflite_bytes: Size of the stage's TFLite file.
        tflite_gzip_bytes: Size of that file compressed with gzip level 9.
        params: Parameters of the model (zeros included).
        quantization: The TFLite conversion used (`"none"`, `"dynamic"`, `"float16"`, `"int8"`).
        macs: Multiply-accumulates of one example (dense: zeros are still computed).
        bits_per_weight: The gzip'd file's bits per parameter.
        entropy_bits_per_weight: The entropy bound of the stage's weights per parameter
            (each tensor coded at the entropy of its values; 32 for random floats).
        latency: Median seconds per batch: `tf_1`, `tf_256` (the tf_keras model, traced)
            and `tflite_1`, `tflite_256` (the TFLite file, one thread).
        settings: What the stage did.
    """

    name: str
    metrics: dict[str, float]
    kernel_sparsity: float
    max_unique_kernel_values: int
    tflite_bytes: int
    tflite_gzip_bytes: int
    params: int
    quantization: str
    macs: int = 0
    bits_per_weight: float = 0.0
    entropy_bits_per_weight: float = 0.0
    latency: dict[str, float] = dataclasses.field(default_factory=dict)
    settings: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; stages with an accuracy metric also carry `test_accuracy`."""
        result = dataclasses.asdict(self)
        if "accuracy" in self.metrics:
            result["test_accuracy"] = self.metrics["accuracy"]
        return result


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """The stages of one `compress` call, first (`"baseline"`) to last, and what was done.

    Attributes:
        stages: The measured stages.
        layers: One `LayerTreatment` per layer with weights: pruned or not (and
            the sparsity reached), clustered or not (and to how many values), and
            why a layer was left alone.
        fine_tuning: The optimizer, loss and metrics fine-tuning used, and where
            they came from.
        metric: The metric tolerances and tables use (the first compiled metric).
        warnings: Anything that fell short, such as a sparsity below the target.
        recipe: The settings of the stages (found by the search, with a tolerance).
        search: With a tolerance, every setting tried: stage, setting, validation
            value, loss against the baseline, parameters, and whether it was kept.
        slimmed_widths: `{layer: (before, after)}` for the layers slimming narrowed.
        distilled: Whether fine-tuning learnt from the uncompressed model's predictions too.

    Example:
        >>> report = CompressionReport(stages=())
        >>> sorted(report.to_dict())[:4]
        ['distilled', 'fine_tuning', 'layers', 'metric']
    """

    stages: tuple[Stage, ...]
    layers: tuple[LayerTreatment, ...] = ()
    fine_tuning: FineTuning | None = None
    metric: str = "accuracy"
    warnings: tuple[str, ...] = ()
    recipe: Recipe | None = None
    search: tuple[dict, ...] = ()
    slimmed_widths: dict = dataclasses.field(default_factory=dict)
    distilled: bool = False

    @property
    def baseline(self) -> Stage:
        return self.stages[0]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def size_ratio(self) -> float:
        """How many times smaller the final gzip'd TFLite is than the baseline's."""
        return self.baseline.tflite_gzip_bytes / self.final.tflite_gzip_bytes

    def latency_ratios(self, stage: Stage | None = None) -> dict[str, float]:
        """A stage's latencies as fractions of the baseline's, measured in the same run."""
        stage = stage or self.final
        return {k: v / self.baseline.latency[k] for k, v in stage.latency.items() if self.baseline.latency.get(k)}

    def tflite_options(self) -> dict[str, Any]:
        """The `export_tflite` arguments that write the file the final stage was measured on:
        its `quantization`, `strip` and `per_channel`.

        Example:
            >>> report = CompressionReport(stages=(), recipe=Recipe(quantization="int8", strip=True,
            ...                                                     per_tensor_scales=True))
            >>> report.tflite_options()
            {'quantization': 'int8', 'strip': True, 'per_channel': None}
        """
        recipe = self.recipe or Recipe()
        quantization = self.final.quantization if self.stages else recipe.quantization
        return {"quantization": "int8" if quantization == "qat" else quantization, "strip": recipe.strip,
                "per_channel": recipe.tflite_per_channel}

    def to_dict(self) -> dict[str, Any]:
        stages = []
        for stage in self.stages:
            entry = stage.to_dict()
            entry["size_ratio"] = self.baseline.tflite_gzip_bytes / stage.tflite_gzip_bytes
            entry["latency_ratio"] = self.latency_ratios(stage)
            stages.append(entry)
        return {
            "stages": stages,
            "layers": [layer.to_dict() for layer in self.layers],
            "fine_tuning": None if self.fine_tuning is None else self.fine_tuning.to_dict(),
            "metric": self.metric,
            "warnings": list(self.warnings),
            "recipe": None if self.recipe is None else self.recipe.to_dict(),
            "search": list(self.search),
            "slimmed_widths": {k: list(v) for k, v in self.slimmed_widths.items()},
            "distilled": self.distilled,
        }


def _input(item):
    """One input as an array; strings as a TensorFlow string tensor (what Keras 3 takes)."""
    if getattr(getattr(item, "dtype", None), "name", None) == "string":  # a tf string tensor already
        return item
    array = np.asarray(item)
    if array.dtype.kind in "OUS":
        import tensorflow as tf

        flat = [value.decode() if isinstance(value, bytes) else str(value) for value in array.reshape(-1).tolist()]
        return tf.constant(np.asarray(flat, dtype=str).reshape(array.shape))
    return array


def _inputs(value, argument: str):
    """One model input as an array, several as a list or dict of arrays (strings as tensors)."""
    if isinstance(value, dict):
        return {key: _input(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and value and all(hasattr(item, "shape") for item in value):
        return [_input(item) for item in value]
    if hasattr(value, "shape") or isinstance(value, (list, tuple)):
        return np.asarray(value)
    raise _checks.error(
        f"Expected {argument} to hold arrays (one per input). Received: {argument} of type {type(value).__name__}."
    )


def _as_arrays(data, argument: str, model=None):
    if data is None:
        return None
    if is_dataset(data):  # read once into memory: every stage slices, calibrates and measures it again
        batched = model is not None and is_batched(data, model_input_rank(model))
        return dataset_arrays(data, argument, batched=batched)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = data[0]
        spec = architecture_of(model) if model is not None else None
        raw_columns = is_table(x) or (isinstance(x, np.ndarray) and x.ndim == 2)
        if spec is not None and spec.family in ("tabular", "recommender") and raw_columns:
            x = TabularSchema(spec.option("features")).inputs(x, f"{argument}[0]")
        return _inputs(x, f"{argument}[0]"), _inputs(data[1], f"{argument}[1]")
    raise _checks.error(
        f"Expected {argument} to be an (x, y) pair of arrays or a tf.data.Dataset of (x, y) pairs. Received: "
        f"{argument} of type "
        f"{type(data).__name__}."
    )




def _check_against_model(model, data, argument: str) -> None:
    """Raises before any training if `(x, y)` cannot feed `model`: input shapes, lengths, empty or
    non-finite inputs, class ids beyond the output's width."""
    x, y = data
    named = dict(x) if isinstance(x, dict) else None
    arrays = list(named.values()) if named is not None else list(x) if isinstance(x, (list, tuple)) else [x]
    inputs = list(model.inputs)
    names = list(named) if named is not None else [f"{argument}[0]" + (f"[{i}]" if len(arrays) > 1 else "")
                                                  for i in range(len(arrays))]
    if len(arrays) != len(inputs):
        raise _checks.error(
            f"Expected {argument}[0] to hold {len(inputs)} input array(s), one per model input. Received: "
            f"{len(arrays)}."
        )
    if named is not None:  # match by input name where the names agree
        by_name = {t.name.split(":")[0]: t for t in inputs}
        inputs = [by_name.get(key, tensor) for key, tensor in zip(named, inputs)]
    for name, array, tensor in zip(names, arrays, inputs):
        array = np.asarray(array)
        if len(array) == 0:
            raise _checks.error(f"Expected {name} to hold at least one example. Received: shape {array.shape}.")
        expected = tuple(tensor.shape[1:])
        if len(array.shape[1:]) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, array.shape[1:])):
            raise _checks.error(
                f"Expected {name} of shape (batch, {', '.join(str(d) for d in expected)}) to match the model's "
                f"input. Received: {name}.shape={array.shape}."
            )
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise _checks.error(f"Expected {name} to hold finite numbers. Received: NaN or inf values.")
    y_values = list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, (list, tuple)) else [y]
    for labels in y_values:
        labels = np.asarray(labels)
        if len(labels) != len(np.asarray(arrays[0])):
            raise _checks.error(
                f"Expected as many labels as examples. Received: {argument} with {len(np.asarray(arrays[0]))} "
                f"examples and {len(labels)} labels."
            )
    outputs = list(model.outputs)
    if len(outputs) == 1 and len(y_values) == 1:
        labels, width = np.asarray(y_values[0]), outputs[0].shape[-1]
        sparse = np.issubdtype(labels.dtype, np.integer) and (labels.ndim == 1 or labels.shape[-1] == 1)
        if sparse and width is not None and width > 1 and labels.size and (labels.min() < 0 or labels.max() >= width):
            raise _checks.error(
                f"Expected {argument}[1] to hold class ids in [0, {width - 1}] for the model's {width} outputs. "
                f"Received: labels from {labels.min()} to {labels.max()}."
            )


_HIGHER_IS_BETTER_HINTS = ("loss", "error", "crossentropy", "hinge", "logcosh", "poisson", "divergence", "mae", "mse")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is better (accuracy, AUC) or worse (losses, errors).

    Example:
        >>> higher_is_better("accuracy"), higher_is_better("mean_absolute_error")
        (True, False)
    """
    return not any(hint in metric for hint in _HIGHER_IS_BETTER_HINTS)


class _Tolerance:
    """Whether a validation value stays within the tolerance of the baseline's."""

    def __init__(self, metric: str, baseline: float, max_accuracy_loss, max_metric_increase):
        self.metric, self.baseline = metric, baseline
        self.higher = higher_is_better(metric)
        if self.higher and max_accuracy_loss is None:
            raise _checks.error(
                f"Expected max_accuracy_loss (not max_metric_increase) for the metric {metric!r}, where higher "
                f"is better. Received: max_metric_increase={max_metric_increase!r}."
            )
        if not self.higher and max_metric_increase is None:
            raise _checks.error(
                f"Expected max_metric_increase (not max_accuracy_loss) for the metric {metric!r}, where lower "
                f"is better. Received: max_accuracy_loss={max_accuracy_loss!r}."
            )
        self.limit = max_accuracy_loss if self.higher else max_metric_increase

    def loss(self, value: float) -> float:
        return self.baseline - value if self.higher else value - self.baseline

    def within(self, value: float) -> bool:
        return self.loss(value) <= self.limit + 1e-9


def _resolve_recipe(target, recipe_arguments: dict) -> Recipe:
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
    if target is None:
        return Recipe(**recipe_arguments)
    _checks.one_of("target", target, TARGETS)
    preset = PRESETS[target].recipe
    conflicts = sorted(
        name for name, value in recipe_arguments.items()
        if name in _PRESET_FIELDS and _differs(value, defaults[name]) and _differs(value, getattr(preset, name))
    )
    if conflicts:
        raise _checks.error(
            f"Expected either target= or the stage settings it chooses, not both. Received: target={target!r} "
            f"and {', '.join(f'{n}={recipe_arguments[n]!r}' for n in conflicts)}; target {target!r} sets "
            f"{', '.join(f'{n}={getattr(preset, n)!r}' for n in conflicts)}."
        )
    chosen = dict(recipe_arguments)
    chosen.update({name: getattr(preset, name) for name in _PRESET_FIELDS})
    chosen["exclude"] = recipe_arguments["exclude"] or preset.exclude  # the caller's exclusions win
    return Recipe(**chosen)


_PRESET_FIELDS = ("slim", "multiple", "sparsity", "sparsity_m_by_n", "clusters", "quantization", "strip",
                  "per_tensor_scales")


def _differs(a, b) -> bool:
    return (tuple(a) if isinstance(a, list) else a) != (tuple(b) if isinstance(b, list) else b)


def compress(
    model,
    train_data,
    *,
    validation_data=None,
    test_data=None,
    target: Target | None = None,
    max_accuracy_loss: float | None = None,
    max_metric_increase: float | None = None,
    slim: float | None = None,
    multiple: int = 1,
    sparsity: float = 0.8,
    schedule: Schedule = "polynomial",
    sparsity_m_by_n: tuple[int, int] | None = None,
    exclude=(),
    layer_sparsity=None,
    clusters: int | None = 16,
    per_channel: bool = False,
    layer_clusters=None,
    quantization: Quantization = "dynamic",
    strip: bool = False,
    per_tensor_scales: bool = False,
    slim_epochs: int = 3,
    prune_epochs: int = 10,
    cluster_epochs: int = 3,
    qat_epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    loss=None,
    metrics=None,
    distill: bool | None = None,
    measure_latency: bool = True,
    verbose: int = 0,
):
    """Makes a Keras model smaller (and narrower), measuring every stage.

    The model is carried into tf_keras by the bridge (`to_tf_keras`: a
    keras-structopt model through its `Architecture`, any other Keras 3 Sequential
    or functional model of standard layers through the layer table); the model you
    pass is never modified. The stages, each optional:

    1. `"baseline"`: the model as is, converted to a float TFLite file.
    2. `"slimmed"`: structural slimming (`slim=ratio`): the least important
       fraction of every group of tied units, filters and recurrent units is
       removed and the model rebuilt narrower (`keras_structopt.compress.slim`),
       then fine-tuned `slim_epochs`. Fewer parameters *and* MACs: faster on any
       hardware. Needs a Keras 3 model.
    3. `"pruned"`: TFMOT `prune_low_magnitude` towards `sparsity` (per layer:
       `layer_sparsity`; kept dense: `exclude`, which also understands `"first"`
       and `"last"`), with a `"polynomial"` or `"constant"` schedule sized from the
       real step count, or m:n structured sparsity (`sparsity_m_by_n=(2, 4)` for
       sparse tensor cores), fine-tuned `prune_epochs`, stripped. The sparsity
       reached is checked against the target (a shortfall is a warning).
    4. `"clustered"`: TFMOT sparsity-preserving `cluster_weights`, so each kernel
       holds at most `clusters` distinct values (zero counts as one; per output
       channel of a convolution with `per_channel`; per layer: `layer_clusters`),
       fine-tuned `cluster_epochs`, stripped. Skipped when `clusters` is None.
    5. `"quantized"`: the TFLite conversion `quantization`: `"dynamic"` (int8
       weights), `"float16"`, `"int8"` (full integer, calibrated on the training
       inputs) or `"qat"` (TFMOT quantization-aware fine-tuning for `qat_epochs`,
       keeping the zeros and shared values, then full int8). Skipped with `"none"`.

    `target="mobile" | "cpu" | "gpu" | "tpu"` chooses the stages for a deployment
    (see `keras_structopt.compress.PRESETS`). With `max_accuracy_loss` (or, for a
    metric where lower is better, `max_metric_increase`), `compress` searches
    instead: for each stage in turn it tries the preset's stronger and stronger
    settings (default preset: `"cpu"`), keeps the strongest whose validation metric
    stays within the tolerance of the uncompressed model's, and returns the
    smallest model found with `report.search` listing every try. The search judges
    on `validation_data` only, never on `test_data`.

    Every stage is measured by running its TFLite file on `test_data` with the
    loss and metrics fine-tuning uses, and for its size, parameters, MACs, bits per
    weight against the entropy bound of its weights, and latency at batch 1 and
    256 (tf_keras and TFLite). Fine-tuning uses the optimizer class, loss and
    metrics the model was compiled with (the learning rate is `learning_rate`), or
    explicit `loss=` / `metrics=`; a keras-structopt model that was never compiled
    uses its task's. The report lists every layer's treatment.

    Args:
        model: A Keras 3 model (a tuner's best model, a hand-written Sequential or
            functional model, a winner loaded from `.keras`) or a tf_keras model.
        train_data: `(x, y)` to fine-tune on (or a finite `tf.data.Dataset` of such pairs,
            batched or not, read into memory once); `x` is an array, or a list/dict of
            arrays for several inputs.
        validation_data: `(x, y)` shown during fine-tuning; what the search judges on.
        test_data: `(x, y)` every stage is measured on; by default
            `validation_data`, else `train_data`.
        target: A deployment preset (`"mobile"`, `"cpu"`, `"gpu"`, `"tpu"`); it sets
            `slim`, `multiple`, `sparsity`, `sparsity_m_by_n`, `clusters` and
            `quantization`, which must then be left at their defaults.
        max_accuracy_loss: Search for the smallest model whose validation metric
            (accuracy, AUC, ...) is at most this much below the uncompressed
            model's (0.01 is one point of accuracy).
        max_metric_increase: The same, for a metric where lower is better (a
            regression model's mean absolute error, say): at most this much above.
        slim: Fraction of units and filters to remove in slimming, in `[0, 1)`, or
            None to skip slimming.
        multiple: Keep slimmed widths a multiple of this (8 for GPUs, 128 for TPUs).
        sparsity: Target fraction of zeros in the prunable weights, in `[0, 1)`; 0
            skips pruning.
        schedule: `"polynomial"` or `"constant"`.
        sparsity_m_by_n: `(m, n)`: m zeros in every n consecutive input weights.
        exclude: Layer names kept dense (also `"first"`, `"last"`).
        layer_sparsity: `{layer name: sparsity}` overriding `sparsity` per layer.
        clusters: Most distinct values per kernel (2..256), or None to skip.
        per_channel: Cluster each output channel of Conv2D kernels on its own.
        layer_clusters: `{layer name: clusters}` overriding `clusters` per layer.
        quantization: `"dynamic"`, `"float16"`, `"int8"`, `"qat"` or `"none"`.
        strip: Measure (and, in `keras-structopt run`, export) TFLite files without
            tensor names and converter metadata (`export_tflite(strip=True)`).
        per_tensor_scales: Give a clustered model's int8 weights one scale per kernel
            instead of TFLite's one per output channel (`"dynamic"` and `"int8"`; models
            with BatchNormalization keep per-channel scales: see
            `keras_structopt.export.tflite.few_valued`). Each kernel then keeps exactly
            its shared values, and the gzip'd file is smaller (the digits dense winner's
            guarded `mobile` result: 2,598 -> 2,085 bytes at the same accuracy). The
            `mobile` and `cpu` presets set it; off otherwise, so that
            `compress(model, data)` alone is TFMOT's recipe with TFLite's defaults.
        slim_epochs: Fine-tuning epochs after slimming (>= 0).
        prune_epochs: Fine-tuning epochs while pruning (>= 1).
        cluster_epochs: Fine-tuning epochs while clustering (>= 0).
        qat_epochs: Quantization-aware fine-tuning epochs (>= 1).
        batch_size: Fine-tuning batch size.
        learning_rate: Learning rate of the fine-tuning optimizer.
        loss: A loss (name or Keras object) to fine-tune with instead of the model's.
        metrics: Metrics to measure instead of the model's.
        distill: Fine-tune on targets half label, half the uncompressed model's
            prediction (knowledge distillation; for cross-entropy and regression
            losses). By default on with `target` or a tolerance, off otherwise, so
            that `compress(model, data)` alone is TFMOT's recipe.
        measure_latency: Time every stage (a few seconds per stage).
        verbose: Keras verbosity while fine-tuning.

    Returns:
        `(compressed_model, report)`: a tf_keras model (export it with
        `export_saved_model` / `export_tflite`; a quantization-aware one converts
        to int8) and a `CompressionReport`.

    Raises:
        ConfigurationError: for bad arguments, an uncompiled model without `loss=`,
            or a sparsity that no layer can take -- before any training.
        UnsupportedModelError: for a model the bridge cannot carry, naming every
            unsupported layer -- before any training.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split(seed=0)
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=32).build(keras_tuner.HyperParameters())
        >>> _ = model.fit(*data.train, epochs=2, verbose=0)
        >>> small, report = kso.compress(model, data.train, test_data=data.test, slim=0.5,
        ...                              prune_epochs=1, cluster_epochs=1, measure_latency=False)
        >>> [stage.name for stage in report.stages]
        ['baseline', 'slimmed', 'pruned', 'clustered', 'quantized']
        >>> report.slimmed_widths, report.final.max_unique_kernel_values <= 16
        ({'block_0_dense': (32, 16)}, True)
    """
    recipe_arguments = dict(
        slim=slim, multiple=multiple, sparsity=sparsity, schedule=schedule, sparsity_m_by_n=sparsity_m_by_n,
        exclude=tuple(exclude) if not isinstance(exclude, str) else exclude,
        layer_sparsity=layer_sparsity or (), clusters=clusters, per_channel=bool(per_channel),
        layer_clusters=layer_clusters or (), quantization=quantization, strip=strip,
        per_tensor_scales=per_tensor_scales, slim_epochs=slim_epochs,
        prune_epochs=prune_epochs, cluster_epochs=cluster_epochs, qat_epochs=qat_epochs,
    )
    searching = max_accuracy_loss is not None or max_metric_increase is not None
    recipe = _resolve_recipe(target or ("cpu" if searching else None), recipe_arguments)
    _checks.positive_int("batch_size", batch_size)
    _checks.positive_number("learning_rate", learning_rate)
    for name, value in (("max_accuracy_loss", max_accuracy_loss), ("max_metric_increase", max_metric_increase)):
        if value is not None and (not _checks.is_number(value) or value < 0):
            raise _checks.error(f"Expected {name} to be a number >= 0 or None. Received: {name}={value!r}.")
    train = _as_arrays(train_data, "train_data", model)
    validation = _as_arrays(validation_data, "validation_data", model)
    test = _as_arrays(test_data, "test_data", model) or validation or train
    if searching and validation is None:
        raise _checks.error(
            "Expected validation_data to judge the search for the smallest model on (it never looks at "
            f"test_data). Received: validation_data=None with max_accuracy_loss={max_accuracy_loss!r}."
        )
    check_bridgeable(model)
    for argument, data in (("train_data", train), ("validation_data", validation), ("test_data", test)):
        if data is not None:
            _check_against_model(model, data, argument)
    if recipe.slim is not None and is_tf_keras(model):
        raise _checks.error(
            "Expected a Keras 3 model for slimming (it rebuilds the network narrower in Keras 3). Received: a "
            f"tf_keras model and slim={recipe.slim!r}. Pass the Keras 3 model, or slim=None."
        )
    spec = architecture_of(model)
    fine_tuning = FineTuning.resolve(
        model, loss=loss, metrics=metrics, learning_rate=learning_rate, task=spec.task if spec else None
    )
    if distill is None:
        distill = searching or target is not None
    job = _Job(model, train, validation, test, fine_tuning, batch_size=batch_size, verbose=verbose,
               measure_latency=measure_latency, distill=bool(distill), strip=recipe.strip,
               per_channel=recipe.tflite_per_channel)
    job.check_prunable(recipe, strict=not searching)  # before any training
    if not searching and recipe.quantization in ("int8", "qat"):
        recurrent = recurrent_layers(job.baseline)
        if recurrent:  # the conversion would refuse them after all the fine-tuning: say it now
            chose = f"target={target!r}, which converts" if target else f"quantization={recipe.quantization!r}"
            raise _checks.error(
                f"Expected a model without recurrent layers for a full-integer TFLite file. Received: {chose} to "
                f"int8, and a model with {', '.join(recurrent)}. Use quantization=\"dynamic\" (or target=\"cpu\"), "
                "or max_accuracy_loss= (the guarded search skips what cannot convert)."
            )
    if searching:
        return job.search(target or "cpu", recipe, max_accuracy_loss, max_metric_increase)
    return job.run(recipe)


class _Job:
    """One `compress` call: the data, the fine-tuning settings and the stage runners."""

    def __init__(self, model, train, validation, test, fine_tuning, *, batch_size, verbose, measure_latency,
                 distill, strip, per_channel):
        self.model = model
        self.train, self.validation, self.test = train, validation, test
        self.fine_tuning = fine_tuning
        self.batch_size, self.verbose, self.measure_latency = batch_size, verbose, measure_latency
        self.strip = strip  # whether TFLite files lose names and metadata
        self.per_channel = per_channel  # int8 kernel scales; None: per tensor for clustered kernels
        self.warnings: list[str] = []
        self.slimmed_widths: dict = {}
        self.calibration = _head(train[0], 512)
        # One tf_keras copy of the model (the user's is left alone), with LSTMs that convert exactly;
        # every stage works on copies of it.
        self.baseline = tf_keras_copy(model, for_tflite=True)
        # What fine-tuning fits: the labels, or (distilling) labels mixed with the model's predictions.
        self.fit_settings, self.fit_data, self.fit_validation = fine_tuning, train, validation
        self.distilled = False
        if distill:
            teacher = self.baseline.predict(train[0], batch_size=256, verbose=0)
            if not isinstance(teacher, (list, dict)):
                settings, targets = fine_tuning.distilling(train[1], teacher)
                if settings is not fine_tuning:
                    self.fit_settings, self.fit_data, self.fit_validation = settings, (train[0], targets), None
                    self.distilled = True

    # -- the stages ------------------------------------------------------------------

    def fit_kwargs(self, treatments):
        return {"batch_size": self.batch_size, "fine_tuning": self.fit_settings, "treatments": treatments,
                "validation": self.fit_validation, "verbose": self.verbose}

    def treatments_for(self, current, recipe: Recipe) -> dict[str, LayerTreatment]:
        treatments = plan(current, sparsity=recipe.sparsity, exclude=recipe.exclude,
                          layer_sparsity=recipe.layer_sparsity, m_by_n=recipe.sparsity_m_by_n)
        if not recipe.prunes:
            for treatment in treatments.values():
                if treatment.pruned:
                    treatment.pruned, treatment.target = False, None
                    treatment.notes.append("pruning skipped")
        return treatments

    def check_prunable(self, recipe: Recipe, strict: bool) -> None:
        """Checks the layer names in the settings, and (strict) that pruning has something to prune."""
        treatments = self.treatments_for(self.baseline, recipe)
        if strict and recipe.prunes:
            check_plan(treatments, recipe.sparsity)

    def slimmed(self, ratio: float, multiple: int, epochs: int):
        """The model slimmed by `ratio`, as a fine-tuned tf_keras copy, and the widths changed.

        A plan that removes nothing (every width already at most `multiple`, or pinned)
        leaves the model as it is, without fine-tuning it: more epochs at the fine-tuning
        learning rate would only move a converged model."""
        narrower, slim_plan = slim_model(self.model, self.calibration, ratio=ratio, multiple=multiple)
        current = tf_keras_copy(narrower, for_tflite=True)
        if not slim_plan.widths:
            message = (f"slimming (ratio {ratio:g}, widths a multiple of {multiple}) removed nothing: every "
                       "tied width is pinned or would not shrink; the model was not fine-tuned")
            if message not in self.warnings:
                self.warnings.append(message)
        elif epochs:
            self.fit_settings.compile(current)
            current.fit(self.fit_data[0], self.fit_data[1], batch_size=self.batch_size, epochs=epochs,
                        validation_data=self.fit_validation, verbose=self.verbose)
        return current, slim_plan.widths

    def pruned(self, current, recipe: Recipe, treatments):
        return prune(tf_keras_copy(current), self.fit_data, epochs=recipe.prune_epochs, schedule=recipe.schedule,
                     m_by_n=recipe.sparsity_m_by_n, **self.fit_kwargs(treatments))

    def clustered(self, current, recipe: Recipe, treatments, clusters: int):
        return cluster(tf_keras_copy(current), self.fit_data, clusters=clusters, epochs=recipe.cluster_epochs,
                       per_channel=recipe.per_channel, layer_clusters_by_name=recipe.layer_clusters,
                       **self.fit_kwargs(treatments))

    def quantized(self, current, recipe: Recipe, treatments, quantization: str):
        """`(model to convert, TFLite conversion)` for a quantization setting."""
        if quantization != "qat":
            return current, quantization
        preserve = "cluster" if any(t.clustered for t in treatments.values()) else (
            "prune" if any(t.pruned for t in treatments.values()) else None)
        model = quantize_aware(tf_keras_copy(current), self.fit_data, epochs=recipe.qat_epochs,
                               batch_size=self.batch_size, fine_tuning=self.fit_settings, preserve=preserve,
                               validation=self.fit_validation, verbose=self.verbose)
        return model, "int8"

    # -- measuring ---------------------------------------------------------------------

    def tflite(self, model, conversion: str) -> bytes:
        checked = cast(TFLiteQuantization, conversion)  # a stage's conversion, "qat" already turned into "int8"
        return to_tflite_bytes(model, checked, representative_data=self.calibration, strip=self.strip,
                               per_channel=self.per_channel)

    def score(self, model, data, conversion: str | None = None) -> dict[str, float]:
        """Metrics of `model` on `data`: through its TFLite file with `conversion`, else Keras."""
        if conversion is None:
            predictions = model.predict(data[0], batch_size=256, verbose=0)
            if isinstance(predictions, (list, tuple)):  # several outputs: named as the signature names them
                predictions = dict(zip(serving_names(model)[1], predictions))
        else:
            predictions = tflite_predict(self.tflite(model, conversion), data[0])  # several: by signature name
        return self.fine_tuning.score(predictions, data[1])

    def measure(self, name, model, conversion, treatments, settings="", per_channel_layers=(),
                stats_model=None) -> Stage:
        """Measures a stage on the test data; `stats_model` (the model before quantization-aware
        fine-tuning, whose wrappers hide the layers) gives the weight statistics."""
        stats = stats_model if stats_model is not None else model
        data = self.tflite(model, conversion)
        predictions = tflite_predict(data, self.test[0])
        params = int(stats.count_params())
        gzipped = len(gzip.compress(data, compresslevel=9))
        latency = {}
        if self.measure_latency:
            for batch in LATENCY_BATCHES:
                latency[f"tf_{batch}"] = keras_latency(model, self.test[0], batch)
                latency[f"tflite_{batch}"] = tflite_latency(data, self.test[0], batch)
        return Stage(
            name=name,
            metrics=self.fine_tuning.score(predictions, self.test[1]),
            kernel_sparsity=zero_fraction(pruned_arrays(stats, treatments)),
            max_unique_kernel_values=max_unique_kernel_values(stats, per_channel_layers),
            tflite_bytes=len(data),
            tflite_gzip_bytes=gzipped,
            params=params,
            quantization=conversion,
            macs=count_model_macs(stats),
            bits_per_weight=8.0 * gzipped / params if params else 0.0,
            entropy_bits_per_weight=entropy_bits(stats) / params if params else 0.0,
            latency=latency,
            settings=settings,
        )

    def report(self, stages, treatments, recipe, search=()):
        for message in self.warnings:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return CompressionReport(
            stages=tuple(stages),
            layers=tuple(treatments.values()),
            fine_tuning=self.fine_tuning,
            metric=self.fine_tuning.metric_key(stages[0].metrics) if stages else self.fine_tuning.primary_metric,
            warnings=tuple(self.warnings),
            recipe=recipe,
            search=tuple(search),
            slimmed_widths=dict(self.slimmed_widths),
            distilled=self.distilled,
        )

    # -- one recipe ----------------------------------------------------------------------

    def run(self, recipe: Recipe):
        current = self.baseline
        treatments = self.treatments_for(current, recipe)
        stages = [self.measure("baseline", current, "none", treatments)]
        if recipe.slim is not None:
            current, self.slimmed_widths = self.slimmed(recipe.slim, recipe.multiple, recipe.slim_epochs)
            treatments = self.treatments_for(current, recipe)
            stages.append(self.measure("slimmed", current, "none", treatments, f"slim {recipe.slim:g}"))
        if recipe.prunes:
            current = self.pruned(current, recipe, treatments)
            self.warnings += check_reached(current, treatments)
            stages.append(self.measure("pruned", current, "none", treatments, recipe.describe()))
        per_channel_layers: tuple[str, ...] = ()
        if recipe.clusters is not None:
            current = self.clustered(current, recipe, treatments, recipe.clusters)
            if recipe.prunes:
                self.warnings += [w.replace("pruning reached", "after clustering, pruning kept")
                                  for w in check_reached(current, treatments)]
            per_channel_layers = _per_channel_layers(treatments)
            stages.append(self.measure("clustered", current, "none", treatments, per_channel_layers=per_channel_layers))
        if recipe.quantization != "none":
            quantized, conversion = self.quantized(current, recipe, treatments, recipe.quantization)
            stages.append(self.measure("quantized", quantized, conversion, treatments, recipe.quantization,
                                       per_channel_layers, stats_model=current))
            current = quantized
        return current, self.report(stages, treatments, recipe)

    # -- the search for the smallest model within a tolerance ----------------------------

    def search(self, target: str, recipe: Recipe, max_accuracy_loss, max_metric_increase):
        preset = PRESETS[target]
        baseline = self.baseline
        scores = self.score(baseline, self.validation, "none")
        metric = self.fine_tuning.metric_key(scores)
        reference = scores[metric]
        tolerance = _Tolerance(metric, reference, max_accuracy_loss, max_metric_increase)
        tries: list[dict] = []

        def judge(stage, setting, model, conversion=None):
            value = self.score(model, self.validation, conversion)[metric]
            kept = tolerance.within(value)
            tries.append({"stage": stage, "setting": setting, "validation": value, "loss": tolerance.loss(value),
                          "params": int(model.count_params()), "kept": kept})
            return kept

        chosen: dict[str, Any] = dict(slim=None, sparsity=0.0, sparsity_m_by_n=None, clusters=None, quantization="none")
        steps = []  # (stage name, model) along the kept path
        current = baseline

        # 1. Slimming: the strongest ratio within the tolerance.
        multiple = preset.recipe.multiple if target in ("gpu", "tpu") else recipe.multiple

        def try_slim(ratio):
            candidate, widths = self.slimmed(ratio, multiple, recipe.slim_epochs)
            return judge("slim", ratio, candidate), (candidate, widths, ratio)

        best = _climb(() if is_tf_keras(self.model) else preset.slim_ladder, try_slim, start=0.0)
        if best is not None:  # slimming rebuilds Keras 3 models only
            current, self.slimmed_widths, chosen["slim"] = best
            chosen["multiple"] = multiple
            steps.append(("slimmed", current))
        treatments = self.treatments_for(current, recipe.replace(sparsity=0.0, sparsity_m_by_n=None))

        # 2. Pruning: the preset's m:n pattern, or the strongest sparsity within the tolerance.
        def try_prune(trial, label):
            trial_treatments = self.treatments_for(current, trial)
            if not any(t.pruned for t in trial_treatments.values()):
                return False, None
            candidate = self.pruned(current, trial, trial_treatments)
            return judge("prune", label, candidate), (candidate, trial_treatments, trial)

        if preset.recipe.sparsity_m_by_n is not None:
            pattern = preset.recipe.sparsity_m_by_n
            kept, found = try_prune(recipe.replace(sparsity=0.0, sparsity_m_by_n=pattern), "{}:{}".format(*pattern))
            best = found if kept else None
        else:
            best = _climb(preset.sparsity_ladder,
                          lambda value: try_prune(recipe.replace(sparsity=value, sparsity_m_by_n=None), value),
                          start=0.0)
        if best is not None:
            current, treatments, trial = best
            chosen["sparsity"], chosen["sparsity_m_by_n"] = trial.sparsity, trial.sparsity_m_by_n
            self.warnings += check_reached(current, treatments)
            steps.append(("pruned", current))

        # 3. Clustering: the fewest values within the tolerance.
        def try_cluster(count):
            trial_treatments = {k: dataclasses.replace(t, notes=list(t.notes)) for k, t in treatments.items()}
            candidate = self.clustered(current, recipe, trial_treatments, int(count))
            return judge("cluster", int(count), candidate), (candidate, trial_treatments, int(count))

        best = _climb(preset.cluster_ladder, try_cluster, start=None)
        if best is not None:
            current, treatments, chosen["clusters"] = best
            steps.append(("clustered", current))

        # 4. Quantization: of the conversions within the tolerance (judged on their TFLite files), the
        # smallest file; on a tiny model a fully int8 file can be larger than a dynamic-range one.
        conversion = "none"
        best = None
        for quantization in preset.quantization_ladder:
            try:
                candidate, candidate_conversion = self.quantized(current, recipe, treatments, quantization)
                size = len(gzip.compress(self.tflite(candidate, candidate_conversion), compresslevel=9))
                kept = judge("quantize", quantization, candidate, candidate_conversion)
            except ConfigurationError as error:  # layers the conversion cannot take
                tries.append({"stage": "quantize", "setting": quantization, "validation": None, "loss": None,
                              "params": None, "kept": False, "note": str(error).split(". Received")[0]})
                continue
            tries[-1]["gzip_bytes"] = size
            if kept and (best is None or size < best[0]):
                best = (size, candidate, candidate_conversion, quantization)
        if best is not None:
            _, candidate, conversion, chosen["quantization"] = best
            steps.append(("quantized", candidate))
            current = candidate

        per_channel_layers = _per_channel_layers(treatments)
        stages = [self.measure("baseline", baseline, "none", treatments)]
        before = baseline
        for name, model in steps:
            quantized = name == "quantized"
            stages.append(self.measure(name, model, conversion if quantized else "none", treatments,
                                       per_channel_layers=per_channel_layers,
                                       stats_model=before if quantized else None))
            before = model
        return current, self.report(stages, treatments, recipe.replace(**chosen), tries)


def _climb(ladder, attempt, start):
    """Tries the settings of `ladder` (weak to strong) until one fails, then once the midpoint
    between the last one kept (or `start`) and the failed one. Returns what the strongest
    kept attempt returned, or None.

    `attempt(setting)` returns `(kept, result)`. Integer ladders (cluster counts) bisect
    to integers; a midpoint equal to a tried setting is skipped.

    Example:
        >>> _climb([0.25, 0.5, 0.75], lambda v: (v <= 0.65, v), start=0.0)
        0.625
        >>> _climb([32, 16, 8], lambda v: (v >= 12, v), start=None)
        12
    """
    best, last_kept, failed = None, start, None
    for setting in ladder:
        kept, result = attempt(setting)
        if not kept:
            failed = setting
            break
        best, last_kept = result, setting
    if failed is None or last_kept is None:
        return best
    middle = (last_kept + failed) / 2
    if isinstance(failed, int):
        middle = int(round(middle))
    if middle in (last_kept, failed):
        return best
    kept, result = attempt(middle)
    return result if kept else best


def _per_channel_layers(treatments) -> tuple[str, ...]:
    marked = "clustered per output channel"
    return tuple(t.layer for t in treatments.values() if any(n.startswith(marked) for n in t.notes))


def _head(x, count: int):
    if isinstance(x, dict):
        return {k: v[:count] for k, v in x.items()}
    if isinstance(x, list):
        return [v[:count] for v in x]
    return x[:count]
