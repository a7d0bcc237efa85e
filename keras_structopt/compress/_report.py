"""What `compress` returns: the measured stages (`CompressionReport`) and the result itself.

`CompressionResult` holds what was measured: the final stage's TFLite bytes (written
as they are by `save_tflite`), the recipe, the report, and the `tf_keras` model the last
stage produced.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from keras_structopt.compress._fine_tune import CompileSettings
from keras_structopt.compress._stages import Recipe
from keras_structopt.compress._treatment import LayerTreatment
from keras_structopt.export._tflite import write_tflite


@dataclasses.dataclass(frozen=True)
class StageReport:
    """The measurements of one compression stage.

    Every stage is measured on its own TFLite file (the file whose size is given),
    run by the TFLite interpreter on the evaluation data.

    Example:
        >>> stage = StageReport("baseline", {"accuracy": 0.97}, 0.0, 900, 4_000, 3_600, 1_000, "none")
        >>> stage.to_dict()["test_accuracy"]
        0.97

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
        recipe: The stages applied, every kind listed (the off form of those that did not
            run): `compress(other_model, data, recipe=report.recipe)` applies the same.
        search: In a guarded search, every setting tried: stage, setting, validation
            value, loss against the baseline, parameters, whether it was kept (and
            whether the recipe fixed it).
        slimmed_widths: `{layer: (before, after)}` for the layers slimming narrowed.
        slimmed_heads: `{attention layer: (heads before, heads after)}` for the
            `MultiHeadAttention` layers slimming removed heads from.
        distilled: Whether fine-tuning learnt from the uncompressed model's predictions too.

    Example:
        >>> report = CompressionReport(stages=())
        >>> sorted(report.to_dict())[:4]
        ['distilled', 'fine_tuning', 'layers', 'metric']
    """

    stages: tuple[StageReport, ...]
    layers: tuple[LayerTreatment, ...] = ()
    fine_tuning: CompileSettings | None = None
    metric: str = "accuracy"
    warnings: tuple[str, ...] = ()
    recipe: Recipe | None = None
    search: tuple[dict, ...] = ()
    slimmed_widths: dict = dataclasses.field(default_factory=dict)
    slimmed_heads: dict = dataclasses.field(default_factory=dict)
    distilled: bool = False

    @property
    def baseline(self) -> StageReport:
        return self.stages[0]

    @property
    def final(self) -> StageReport:
        return self.stages[-1]

    def size_ratio(self) -> float:
        """How many times smaller the final gzip'd TFLite is than the baseline's."""
        return self.baseline.tflite_gzip_bytes / self.final.tflite_gzip_bytes

    def latency_ratios(self, stage: StageReport | None = None) -> dict[str, float]:
        """A stage's latencies as fractions of the baseline's, measured in the same run."""
        stage = stage or self.final
        return {k: v / self.baseline.latency[k] for k, v in stage.latency.items() if self.baseline.latency.get(k)}

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
            "slimmed_heads": {k: list(v) for k, v in self.slimmed_heads.items()},
            "distilled": self.distilled,
        }


@dataclasses.dataclass(frozen=True)
class CompressionResult:
    """What one `compress` call made and measured.

    Attributes:
        report: The `CompressionReport`: every stage measured, every layer's treatment.
        tflite: The final stage's TFLite file, the very bytes its size and accuracy were
            measured on.
        tf_keras_model: The `tf_keras` model the last stage produced (after
            quantization-aware training, the QAT model whose file `tflite` is), for
            those who want TFMOT's model itself.

    Example:
        >>> result = CompressionResult(report=CompressionReport(stages=()), tflite=b"the measured bytes")
        >>> path = result.save_tflite(getfixture("tmp_path") / "model.tflite")
        >>> path.read_bytes() == result.tflite
        True
    """

    report: CompressionReport
    tflite: bytes = dataclasses.field(repr=False)
    tf_keras_model: Any = dataclasses.field(repr=False, default=None)

    @property
    def recipe(self) -> Recipe | None:
        """The stages applied (see `CompressionReport.recipe`)."""
        return self.report.recipe

    def size_ratio(self) -> float:
        """How many times smaller the final gzip'd file is than the uncompressed model's."""
        return self.report.size_ratio()

    def save_tflite(self, path, *, overwrite: bool = False) -> Path:
        """Writes the measured TFLite file, byte for byte, atomically; returns the path.

        An existing file is never replaced unless `overwrite`.
        """
        return write_tflite(self.tflite, path, overwrite=overwrite)
