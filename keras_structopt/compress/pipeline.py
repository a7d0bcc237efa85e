"""`compress`: prune, cluster and quantize a search winner, measuring every stage."""

from __future__ import annotations

import dataclasses
import gzip
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt.bridge import architecture_of, to_tf_keras
from keras_structopt.compress.cluster import cluster, max_unique_kernel_values
from keras_structopt.compress.prune import kernel_sparsity, prune
from keras_structopt.export.tflite import QUANTIZATIONS, tflite_predict, to_tflite_bytes


@dataclasses.dataclass(frozen=True)
class Stage:
    """Measurements of one compression stage.

    Attributes:
        name: `"baseline"`, `"pruned"`, `"clustered"` or `"quantized"`.
        metrics: `{"accuracy": ...}` for classification, `{"mean_absolute_error": ...}`
            for regression, on the evaluation data.
        kernel_sparsity: Fraction of zeros over all prunable kernels.
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
        """A JSON-safe dict; classification stages also carry `test_accuracy`."""
        result = dataclasses.asdict(self)
        if "accuracy" in self.metrics:
            result["test_accuracy"] = self.metrics["accuracy"]
        return result


@dataclasses.dataclass(frozen=True)
class CompressionReport:
    """The stages of one `compress` call, first (`"baseline"`) to last.

    Example:
        >>> report = CompressionReport(stages=())
        >>> report.to_dict()
        {'stages': []}
    """

    stages: tuple[Stage, ...]

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
        return {"stages": [stage.to_dict() for stage in self.stages]}


def _as_arrays(data, argument: str):
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    raise _checks.error(
        f"Expected {argument} to be an (x, y) pair of arrays. Received: {argument} of type "
        f"{type(data).__name__}."
    )


def _score(task: str, predictions: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if task == "multiclass":
        return {"accuracy": float(np.mean(np.argmax(predictions, axis=-1) == y.reshape(-1)))}
    if task == "binary":
        return {"accuracy": float(np.mean((predictions.reshape(-1) > 0.5) == (y.reshape(-1) > 0.5)))}
    return {"mean_absolute_error": float(np.mean(np.abs(predictions - y.reshape(predictions.shape))))}


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
    verbose: int = 0,
):
    """Prunes, clusters and quantizes a search winner with TFMOT, measuring each stage.

    The Keras 3 model is carried into tf_keras by the bridge (the model you pass is
    never modified), then:

    1. `"baseline"`: the winner as is, converted to a float TFLite file.
    2. `"pruned"`: TFMOT `prune_low_magnitude` on every prunable kernel with a
       polynomial-decay schedule to `sparsity`, fine-tuned `prune_epochs`, stripped.
    3. `"clustered"`: TFMOT sparsity-preserving `cluster_weights`, so each kernel
       holds at most `clusters` distinct values (zero counts as one), fine-tuned
       `cluster_epochs`, stripped. Skipped when `clusters` is None.
    4. `"quantized"`: the last model converted with `quantization`
       (dynamic-range int8 weights by default); its accuracy is measured by running
       the TFLite file itself. Skipped when `quantization="none"`.

    Args:
        model: A Keras 3 model built by a keras-structopt HyperModel (for example
            `tuner.get_best_models()[0]`), or a tf_keras model from `to_tf_keras`.
        train_data: `(x, y)` arrays to fine-tune on.
        validation_data: `(x, y)` arrays shown during fine-tuning.
        test_data: `(x, y)` arrays every stage is measured on; by default
            `validation_data`, else `train_data`.
        sparsity: Target fraction of zero kernel weights, in `[0, 1)`.
        clusters: Most distinct values per kernel (2..256), or None to skip.
        quantization: `"dynamic"`, `"float16"` or `"none"` for the last stage.
        prune_epochs: Fine-tuning epochs while pruning (>= 1).
        cluster_epochs: Fine-tuning epochs while clustering (>= 0).
        batch_size: Fine-tuning batch size.
        learning_rate: Adam learning rate for fine-tuning.
        verbose: Keras verbosity while fine-tuning.

    Returns:
        `(compressed_model, report)`: a stripped tf_keras model (export it with
        `export_saved_model` / `export_tflite`) and a `CompressionReport`.

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
    spec = architecture_of(model)
    current = to_tf_keras(model)  # a fresh copy: the user's model is left alone
    if spec is None:
        spec = architecture_of(current)
    task = spec.task

    import tf_keras

    def compile_fn(target):
        loss, metrics = {
            "multiclass": ("sparse_categorical_crossentropy", ["accuracy"]),
            "binary": ("binary_crossentropy", ["accuracy"]),
            "regression": ("mean_squared_error", ["mean_absolute_error"]),
        }[task]
        target.compile(
            optimizer=tf_keras.optimizers.Adam(learning_rate=learning_rate),
            loss=loss,
            metrics=metrics,
        )

    def measure(name, stage_model, conversion):
        data = to_tflite_bytes(stage_model, conversion)
        if conversion == "none":
            predictions = stage_model.predict(test[0], batch_size=256, verbose=0)
        else:
            predictions = tflite_predict(data, test[0])
        return Stage(
            name=name,
            metrics=_score(task, np.asarray(predictions), test[1]),
            kernel_sparsity=kernel_sparsity(stage_model),
            max_unique_kernel_values=max_unique_kernel_values(stage_model),
            tflite_bytes=len(data),
            tflite_gzip_bytes=len(gzip.compress(data, compresslevel=9)),
            params=int(stage_model.count_params()),
            quantization=conversion,
        )

    fit = {"batch_size": batch_size, "compile_fn": compile_fn, "validation": validation, "verbose": verbose}
    stages = [measure("baseline", current, "none")]
    current = prune(current, train, sparsity=sparsity, epochs=prune_epochs, **fit)
    stages.append(measure("pruned", current, "none"))
    if clusters is not None:
        current = cluster(current, train, clusters=clusters, epochs=cluster_epochs, **fit)
        stages.append(measure("clustered", current, "none"))
    if quantization != "none":
        stages.append(measure("quantized", current, quantization))
    return current, CompressionReport(stages=tuple(stages))
