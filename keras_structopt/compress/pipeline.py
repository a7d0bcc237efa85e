"""`compress`: prune, cluster and quantize a Keras model, measuring every stage."""

from __future__ import annotations

import dataclasses
import gzip
import warnings
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt.bridge import architecture_of, check_bridgeable, tf_keras_copy
from keras_structopt.compress.cluster import cluster, max_unique_kernel_values
from keras_structopt.compress.fine_tune import FineTuning
from keras_structopt.compress.prune import check_plan, check_reached, plan, prune
from keras_structopt.compress.treatment import LayerTreatment, pruned_arrays, zero_fraction
from keras_structopt.export.tflite import QUANTIZATIONS, serving_names, tflite_predict, to_tflite_bytes


@dataclasses.dataclass(frozen=True)
class Stage:
    """Measurements of one compression stage.

    Every stage is measured on its own TFLite file (the file whose size is given),
    run by the TFLite interpreter on the evaluation data.

    Attributes:
        name: `"baseline"`, `"pruned"`, `"clustered"` or `"quantized"`.
        metrics: The loss and the metrics the model was compiled with (or those
            given to `compress`), on the evaluation data: `{"loss": ...,
            "accuracy": ...}` for a keras-structopt classifier.
        kernel_sparsity: Fraction of zeros over the weights pruning acts on.
        max_unique_kernel_values: Most distinct values in any one kernel.
        tflite_bytes: Size of the stage's TFLite file.
        tflite_gzip_bytes: Size of that file compressed with gzip level 9.
        params: Parameters of the model (zeros included).
        quantization: The TFLite conversion used (`"none"`, `"dynamic"`, `"float16"`).
    """

    name: str
    metrics: dict[str, float]
    kernel_sparsity: float
    max_unique_kernel_values: int
    tflite_bytes: int
    tflite_gzip_bytes: int
    params: int
    quantization: str

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

    Example:
        >>> report = CompressionReport(stages=())
        >>> report.to_dict()
        {'stages': [], 'layers': [], 'fine_tuning': None, 'metric': 'accuracy', 'warnings': []}
    """

    stages: tuple[Stage, ...]
    layers: tuple[LayerTreatment, ...] = ()
    fine_tuning: FineTuning | None = None
    metric: str = "accuracy"
    warnings: tuple[str, ...] = ()

    @property
    def baseline(self) -> Stage:
        return self.stages[0]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def size_ratio(self) -> float:
        """How many times smaller the final gzip'd TFLite is than the baseline's."""
        return self.baseline.tflite_gzip_bytes / self.final.tflite_gzip_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [stage.to_dict() for stage in self.stages],
            "layers": [layer.to_dict() for layer in self.layers],
            "fine_tuning": None if self.fine_tuning is None else self.fine_tuning.to_dict(),
            "metric": self.metric,
            "warnings": list(self.warnings),
        }


def _inputs(value, argument: str):
    """One model input as an array, several as a list or dict of arrays."""
    if isinstance(value, dict):
        return {key: np.asarray(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and value and all(hasattr(item, "shape") for item in value):
        return [np.asarray(item) for item in value]
    if hasattr(value, "shape") or isinstance(value, (list, tuple)):
        return np.asarray(value)
    raise _checks.error(
        f"Expected {argument} to hold arrays (one per input). Received: {argument} of type {type(value).__name__}."
    )


def _as_arrays(data, argument: str):
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _inputs(data[0], f"{argument}[0]"), _inputs(data[1], f"{argument}[1]")
    raise _checks.error(
        f"Expected {argument} to be an (x, y) pair of arrays. Received: {argument} of type "
        f"{type(data).__name__}."
    )


def compress(
    model,
    train_data,
    *,
    validation_data=None,
    test_data=None,
    sparsity: float = 0.8,
    clusters: int | None = 16,
    quantization: str = "dynamic",
    prune_epochs: int = 10,
    cluster_epochs: int = 3,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    loss=None,
    metrics=None,
    verbose: int = 0,
):
    """Prunes, clusters and quantizes a Keras model with TFMOT, measuring each stage.

    The model is carried into tf_keras by the bridge (`to_tf_keras`: a
    keras-structopt model through its `Architecture`, any other Keras 3 Sequential
    or functional model of standard layers through the layer table); the model you
    pass is never modified. Then:

    1. `"baseline"`: the model as is, converted to a float TFLite file.
    2. `"pruned"`: TFMOT `prune_low_magnitude` on every prunable weight with a
       polynomial-decay schedule to `sparsity`, fine-tuned `prune_epochs`, stripped.
       The sparsity reached is checked against the target (a shortfall is a
       warning in the report). Skipped when `sparsity=0`.
    3. `"clustered"`: TFMOT sparsity-preserving `cluster_weights`, so each kernel
       holds at most `clusters` distinct values (zero counts as one), fine-tuned
       `cluster_epochs`, stripped. Skipped when `clusters` is None.
    4. `"quantized"`: the last model converted with `quantization`
       (dynamic-range int8 weights by default). Skipped when `quantization="none"`.

    Every stage is measured by running its TFLite file on `test_data` with the
    loss and metrics fine-tuning uses. Fine-tuning uses the optimizer class, loss
    and metrics the model was compiled with (the learning rate is `learning_rate`),
    or explicit `loss=` / `metrics=`; a keras-structopt model that was never
    compiled uses its task's (sparse categorical cross-entropy and accuracy for a
    classifier). The report lists every layer's treatment.

    Args:
        model: A Keras 3 model (a tuner's best model, a hand-written Sequential or
            functional model, a winner loaded from `.keras`) or a tf_keras model.
        train_data: `(x, y)` to fine-tune on; `x` is an array, or a list/dict of
            arrays for several inputs.
        validation_data: `(x, y)` shown during fine-tuning.
        test_data: `(x, y)` every stage is measured on; by default
            `validation_data`, else `train_data`.
        sparsity: Target fraction of zero weights in the prunable kernels, in `[0, 1)`.
        clusters: Most distinct values per kernel (2..256), or None to skip.
        quantization: `"dynamic"`, `"float16"` or `"none"` for the last stage.
        prune_epochs: Fine-tuning epochs while pruning (>= 1).
        cluster_epochs: Fine-tuning epochs while clustering (>= 0).
        batch_size: Fine-tuning batch size.
        learning_rate: Learning rate of the fine-tuning optimizer.
        loss: A loss (name or Keras object) to fine-tune with instead of the model's.
        metrics: Metrics to measure instead of the model's.
        verbose: Keras verbosity while fine-tuning.

    Returns:
        `(compressed_model, report)`: a stripped tf_keras model (export it with
        `export_saved_model` / `export_tflite`) and a `CompressionReport`.

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
        >>> small, report = kso.compress(model, data.train, test_data=data.test,
        ...                              prune_epochs=1, cluster_epochs=1)
        >>> [stage.name for stage in report.stages]
        ['baseline', 'pruned', 'clustered', 'quantized']
        >>> report.final.max_unique_kernel_values <= 16
        True
        >>> [(layer.layer, layer.pruned, layer.clustered) for layer in report.layers]
        [('block_0_dense', True, True), ('head', True, True)]
    """
    _checks.fraction("sparsity", sparsity)
    if clusters is not None and (not _checks.is_int(clusters) or not 2 <= clusters <= 256):
        raise _checks.error(
            f"Expected clusters to be an int in [2, 256] or None. Received: clusters={clusters!r}."
        )
    _checks.one_of("quantization", quantization, QUANTIZATIONS)
    _checks.positive_int("prune_epochs", prune_epochs)
    _checks.non_negative_int("cluster_epochs", cluster_epochs)
    _checks.positive_int("batch_size", batch_size)
    _checks.positive_number("learning_rate", learning_rate)
    train = _as_arrays(train_data, "train_data")
    validation = _as_arrays(validation_data, "validation_data")
    test = _as_arrays(test_data, "test_data") or validation or train
    check_bridgeable(model)
    spec = architecture_of(model)
    fine_tuning = FineTuning.resolve(
        model, loss=loss, metrics=metrics, learning_rate=learning_rate, task=spec.task if spec else None
    )
    # A fresh copy (the user's model is left alone), with LSTMs that convert exactly.
    current = tf_keras_copy(model, for_tflite=True)
    treatments = plan(current)
    if sparsity > 0:
        check_plan(treatments, sparsity)
    else:
        for treatment in treatments.values():
            if treatment.pruned:
                treatment.pruned = False
                treatment.notes.append("sparsity=0: pruning skipped")

    def measure(name, stage_model, conversion):
        data = to_tflite_bytes(stage_model, conversion)
        predictions = tflite_predict(data, test[0])
        if isinstance(predictions, dict):  # several outputs, by signature name
            predictions = [predictions[name] for name in serving_names(stage_model)[1]]
        return Stage(
            name=name,
            metrics=fine_tuning.score(predictions, test[1]),
            kernel_sparsity=zero_fraction(pruned_arrays(stage_model, treatments)),
            max_unique_kernel_values=max_unique_kernel_values(stage_model),
            tflite_bytes=len(data),
            tflite_gzip_bytes=len(gzip.compress(data, compresslevel=9)),
            params=int(stage_model.count_params()),
            quantization=conversion,
        )

    fit = {"batch_size": batch_size, "fine_tuning": fine_tuning, "treatments": treatments,
           "validation": validation, "verbose": verbose}
    stages = [measure("baseline", current, "none")]
    warnings_found: list[str] = []
    if sparsity > 0:
        current = prune(current, train, sparsity=sparsity, epochs=prune_epochs, **fit)
        warnings_found += check_reached(current, treatments, sparsity)
        stages.append(measure("pruned", current, "none"))
    if clusters is not None:
        current = cluster(current, train, clusters=clusters, epochs=cluster_epochs, **fit)
        stages.append(measure("clustered", current, "none"))
    if quantization != "none":
        stages.append(measure("quantized", current, quantization))
    for message in warnings_found:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return current, CompressionReport(
        stages=tuple(stages),
        layers=tuple(treatments.values()),
        fine_tuning=fine_tuning,
        metric=fine_tuning.primary_metric,
        warnings=tuple(warnings_found),
    )
