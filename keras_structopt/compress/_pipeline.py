"""`compress`: slim, prune, cluster and quantize a Keras model, measuring every stage.

The stages form a `Recipe`: structural slimming in Keras 3, then TFMOT pruning and
clustering in tf_keras, then quantization (in the TFLite conversion, or
quantization-aware fine-tuning first). With validation data `compress` guards the
accuracy: it climbs each stage's ladder of stronger settings, judged on validation data
only, and keeps the smallest model within the tolerance. The final stage's weights come
back to Keras 3 through the bridge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import warnings
from typing import Any, Literal, cast

from keras_structopt import _checks
from keras_structopt._keras_tuner import metric_direction
from keras_structopt._quiet import library_noise
from keras_structopt._types import Data, Model, TFLiteQuantization
from keras_structopt.bridge import architecture_of, carry_back
from keras_structopt.bridge._bridge import check_bridgeable, is_tf_keras, tf_keras_copy
from keras_structopt.compress._child import StageOutOfMemory, isolation_refused, run_in_child
from keras_structopt.compress._cluster import cluster, max_unique_kernel_values
from keras_structopt.compress._data import (
    as_arrays,
    check_against_model,
    check_labels_for_loss,
    count_examples,
    head,
)
from keras_structopt.compress._fine_tune import CompileSettings, FineTuning
from keras_structopt.compress._measure import count_model_macs, entropy_bits, keras_latency, tflite_latency
from keras_structopt.compress._prune import check_plan, check_reached, plan, prune
from keras_structopt.compress._quantize import quantize_aware
from keras_structopt.compress._report import CompressionReport, CompressionResult, StageReport
from keras_structopt.compress._slim import slim as slim_model
from keras_structopt.compress._stages import (
    DEFAULT_TARGET,
    KINDS,
    PRESETS,
    TARGETS,
    Cluster,
    Prune,
    Quantize,
    Recipe,
    Slim,
    as_recipe,
    ladder,
)
from keras_structopt.compress._treatment import LayerTreatment, pruned_arrays, zero_fraction
from keras_structopt.errors import ConfigurationError
from keras_structopt.export._runtime import tflite_predict
from keras_structopt.export._signature import serving_names
from keras_structopt.export._tflite import MEASURED_CONVERSION, isolated_conversion, recurrent_layers, to_tflite_bytes

LATENCY_BATCHES = (1, 256)
DEFAULT_MAX_ACCURACY_LOSS = 0.01  # one point of accuracy
CALIBRATION_EXAMPLES = 512  # training inputs that slimming measures channels on and int8 calibrates with


def compress(
    model: Model,
    train_data: Data,
    *,
    validation_data: Data | None = None,
    test_data: Data | None = None,
    recipe: Recipe | list | None = None,
    target: Literal["mobile", "cpu", "gpu", "tpu"] | None = None,
    max_accuracy_loss: float | None = DEFAULT_MAX_ACCURACY_LOSS,
    fine_tuning: FineTuning | None = None,
    measure_latency: bool = True,
    verbose: int = 0,
) -> tuple[Model, CompressionResult]:
    """Makes a Keras model smaller and faster, measuring every stage; returns `(model, result)`.

    The model is carried into tf_keras by the bridge (TFMOT accepts nothing else), the
    stages run there, and the final stage's weights come back: a Keras 3 model in, a
    Keras 3 model out. The model you pass is never modified. The stages, each optional:

    1. `Slim`: structural slimming in Keras 3: the least important fraction of every
       group of tied units, filters and recurrent units is removed and the model rebuilt
       narrower (`keras_structopt.compress.slim`), then fine-tuned. Fewer parameters and
       MACs: faster on any hardware. Needs a Keras 3 model.
    2. `Prune`: TFMOT magnitude pruning, fine-tuned, stripped; the sparsity reached is
       checked against the target (a shortfall is a warning).
    3. `Cluster`: TFMOT sparsity-preserving clustering, so each kernel holds at most
       `clusters` distinct values (zero counts as one), fine-tuned, stripped.
    4. `Quantize`: the TFLite conversion (`"dynamic"`, `"float16"`, `"int8"`), or
       quantization-aware fine-tuning then a full-int8 one (`"qat"`).

    **One default everywhere.** Given `validation_data`, `compress` guards the accuracy
    (as `keras-structopt run` and `compress` do): for each stage in turn it tries the
    `target` preset's stronger and stronger settings (default target `"cpu"`), keeps the
    strongest whose validation metric stays within `max_accuracy_loss` of the
    uncompressed model's (default 0.01, one point), and returns the smallest model found;
    `result.report.search` lists every try. It judges on `validation_data` only, never on
    `test_data`. The stages `recipe` holds are fixed: they are applied as given, and the
    search runs over the other stages. With `max_accuracy_loss=None` (or without
    validation data), the recipe, or the target's preset, is applied as it is.

    Every stage is measured on `test_data` through its own TFLite file (its loss and
    metrics, its size gzip'd, parameters, MACs, bits per weight against the entropy of
    its weights, latency at batch 1 and 256 in TF and TFLite); each file is converted
    once and kept.

    Args:
        model: A Keras 3 model (a tuner's best model, a hand-written Sequential or
            functional model, a winner loaded from `.keras`) or a tf_keras model.
        train_data: `(x, y)` to fine-tune on (or a finite `tf.data.Dataset` of such pairs,
            batched or not, read into memory once); `x` is an array, or a list/dict of
            arrays for several inputs.
        validation_data: `(x, y)` the guarded search judges on (and fine-tuning shows).
        test_data: `(x, y)` every stage is measured on; by default `validation_data`,
            else `train_data`.
        recipe: A `Recipe` (or a list of `Slim`, `Prune`, `Cluster`, `Quantize`): the
            stages fixed. `report.recipe` of an earlier call reproduces its settings.
        target: The deployment preset whose stages and ladders are used for what
            `recipe` leaves open: `"mobile"`, `"cpu"` (default), `"gpu"` or `"tpu"`
            (`keras_structopt.compress.PRESETS`).
        max_accuracy_loss: How much the validation metric (the first compiled metric)
            may worsen, in its own units (0.01 is one point of accuracy; for an error
            metric, how much it may rise), whichever direction Keras Tuner says is
            better; None applies the recipe as it is.
        fine_tuning: A `FineTuning`: batch size, learning rate, epochs per stage, loss
            and metrics, distillation.
        measure_latency: Time every stage (a few seconds per stage).
        verbose: Keras verbosity while fine-tuning.

    Returns:
        `(compressed_model, result)`: a model of the Keras you passed (Keras 3 for a
        Keras 3 model; the final stage's float weights, compiled as yours was) and a
        `CompressionResult`, whose `report` holds the measurements, `tflite` the final
        stage's file (`result.save_tflite(path)` writes it), `tf_keras_model` the last
        stage's tf_keras model. `kso.export_tflite(compressed_model, path)` with no options
        converts it as it was measured.

    Raises:
        ConfigurationError: for bad arguments, an uncompiled model without a loss, a
            stage no layer can take -- before any training.
        UnsupportedModelError: for a model the bridge cannot carry, naming every
            unsupported layer -- before any training.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize, Recipe, Slim
        >>> from keras_structopt.data import load_digits_split
        >>> data = load_digits_split(seed=0)
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=32).build(keras_tuner.HyperParameters())
        >>> _ = model.fit(*data.train, epochs=2, verbose=0)
        >>> recipe = Recipe([Slim(0.5), Prune(0.8), Cluster(16), Quantize("dynamic")])
        >>> small, result = kso.compress(model, data.train, test_data=data.test, recipe=recipe,
        ...     max_accuracy_loss=None, fine_tuning=FineTuning(prune_epochs=1, cluster_epochs=1),
        ...     measure_latency=False)
        >>> [stage.name for stage in result.report.stages]
        ['baseline', 'slimmed', 'pruned', 'clustered', 'quantized']
        >>> import keras
        >>> isinstance(small, keras.Model), result.report.slimmed_widths
        (True, {'block_0_dense': (32, 16)})
    """
    fixed = as_recipe(recipe)
    if target is not None:
        _checks.one_of("target", target, TARGETS)
    preset: str = target or DEFAULT_TARGET
    if max_accuracy_loss is not None and (not _checks.is_number(max_accuracy_loss) or not max_accuracy_loss >= 0):
        raise _checks.error(
            "Expected max_accuracy_loss to be a number >= 0 or None. "
            f"Received: max_accuracy_loss={max_accuracy_loss!r}."
        )
    options = FineTuning() if fine_tuning is None else fine_tuning
    if not isinstance(options, FineTuning):
        raise _checks.error(
            f"Expected fine_tuning to be a keras_structopt.compress.FineTuning. Received: fine_tuning={fine_tuning!r}."
        )
    train = as_arrays(train_data, "train_data", model)
    validation = as_arrays(validation_data, "validation_data", model)
    test = as_arrays(test_data, "test_data", model) or validation or train
    guarded = max_accuracy_loss is not None and validation is not None
    notes = []
    if max_accuracy_loss is not None and validation is None:
        notes.append("no validation_data: the recipe was applied as it is, not guarded (pass validation_data to keep "
                     f"within max_accuracy_loss={max_accuracy_loss:g})")
    applied = fixed if fixed is not None and not guarded else (None if guarded else PRESETS[preset])
    check_bridgeable(model)
    for argument, data in (("train_data", train), ("validation_data", validation), ("test_data", test)):
        if data is not None:
            check_against_model(model, data, argument)
    slim_stage = (fixed.slim if fixed is not None else None) if guarded else applied.slim  # type: ignore[union-attr]
    if slim_stage is not None and slim_stage.applies and is_tf_keras(model):
        raise _checks.error(
            "Expected a Keras 3 model for slimming (it rebuilds the network narrower in Keras 3). Received: a "
            f"tf_keras model and {slim_stage!r}. Pass the Keras 3 model, or Slim(None)."
        )
    spec = architecture_of(model)
    settings = CompileSettings.resolve(model, options, task=spec.task if spec else None)
    check_labels_for_loss(model, settings.loss, (("train_data", train), ("validation_data", validation),
                                                 ("test_data", test)))
    distill = options.distill if options.distill is not None else (guarded or fixed is None)
    quantize = (applied or fixed or Recipe()).quantize or (None if applied is not None else PRESETS[preset].quantize)
    job = _Job(model, train, validation, test, settings, options, verbose=verbose, measure_latency=measure_latency,
               distill=bool(distill), quantize=quantize or Quantize("none"))
    job.warnings += notes
    job.decide_isolation()
    if applied is not None:
        job.check(applied, strict=True)  # before any training
    else:
        job.check(fixed or Recipe(), strict=True)
    # TFMOT's wrappers make tf_keras warn on every fine-tuning step; a large model's conversions run in
    # child processes, as its fine-tuned stages do (the converter needs tens of times the weights).
    with library_noise(), isolated_conversion() if job.isolating else contextlib.nullcontext():
        if applied is not None:
            return job.result(*job.run(applied))
        return job.result(*job.search(preset, fixed or Recipe(), cast(float, max_accuracy_loss)))


class _Tolerance:
    """Whether a validation value stays within the tolerance of the baseline's."""

    def __init__(self, metric: str, baseline: float, limit: float):
        direction = metric_direction(metric)
        if direction is None:
            raise _checks.error(
                "Expected a metric whose better direction Keras Tuner knows, to judge the guarded search on. "
                f"Received: {metric!r}; compile the model with a standard first metric (or pass fine_tuning=FineTuning("
                "metrics=[...])), or max_accuracy_loss=None."
            )
        self.metric, self.baseline, self.limit = metric, baseline, limit
        self.higher = direction == "max"

    def loss(self, value: float) -> float:
        return self.baseline - value if self.higher else value - self.baseline

    def within(self, value: float) -> bool:
        return self.loss(value) <= self.limit + 1e-9


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


@dataclasses.dataclass
class _Reached:
    """A state the guarded search reached with kept settings: the model, its treatments
    (None: not yet planned), the steps to it, the settings chosen and the slimming's plan."""

    model: Any
    treatments: dict[str, LayerTreatment] | None
    steps: list[tuple[str, Any, str]]
    chosen: dict[str, Any]
    plan: Any
    keras_model: Any

    def then(self, model, treatments, kind: str, stage, step: str) -> _Reached:
        """This state followed by one more kept stage."""
        return _Reached(model, treatments, [*self.steps, (step, model, stage.describe())],
                        {**self.chosen, kind: stage}, self.plan, self.keras_model)

    def label(self) -> str:
        return ", ".join(settings for _, _, settings in self.steps) or "the baseline"


def _copied(treatments: dict[str, LayerTreatment]) -> dict[str, LayerTreatment]:
    """Treatments a trial stage may change (its notes included) without changing these."""
    return {key: dataclasses.replace(t, notes=list(t.notes)) for key, t in treatments.items()}


def _gzip_size(data: bytes) -> int:
    """A file's size gzip'd at the strongest level: what the report's sizes are."""
    return len(gzip.compress(data, compresslevel=9))


def _per_channel_layers(treatments) -> tuple[str, ...]:
    marked = "clustered per output channel"
    return tuple(t.layer for t in treatments.values() if any(n.startswith(marked) for n in t.notes))


_OFF = Recipe().complete()  # the off form of every kind


class _Job:
    """One `compress` call: the data, the fine-tuning settings, the stage runners and their measurements."""

    def __init__(self, model, train, validation, test, settings: CompileSettings, options: FineTuning, *, verbose,
                 measure_latency, distill, quantize: Quantize):
        self.model = model
        self.train, self.validation, self.test = train, validation, test
        self.settings, self.options = settings, options
        self.verbose, self.measure_latency = verbose, measure_latency
        # Every stage's file is converted with the final conversion's scales and stripping, so sizes compare.
        self.strip, self.per_channel = quantize.strip, quantize.per_channel
        self.warnings: list[str] = []
        self.slim_plan: Any = None  # the SlimPlan applied (None: no slimming)
        self.calibration = head(train[0], CALIBRATION_EXAMPLES)
        self._files: dict[tuple[int, str], tuple[Any, bytes]] = {}  # one conversion per model and setting
        self.keras_model = model  # the Keras 3 model whose structure the result takes (narrower once slimmed)
        # One tf_keras copy of the model (the user's is left alone), with LSTMs that convert exactly;
        # every stage works on copies of it.
        self.baseline = tf_keras_copy(model, for_tflite=True)
        # What fine-tuning fits: the labels, or (distilling) labels mixed with the model's predictions.
        self.fit_settings, self.fit_data, self.fit_validation = settings, train, validation
        self.distilled = False
        if distill:
            teacher = self.baseline.predict(train[0], batch_size=256, verbose=0)
            if not isinstance(teacher, (list, dict)):
                distilling, targets = settings.distilling(train[1], teacher)
                if distilling is not settings:
                    self.fit_settings, self.fit_data, self.fit_validation = distilling, (train[0], targets), None
                    self.distilled = True

    # -- checks before any training -------------------------------------------------------

    def check(self, recipe: Recipe, strict: bool) -> None:
        """Layer names in the stages, a pruning stage that has something to prune, int8 of recurrent layers."""
        if recipe.prune is not None:
            treatments = plan(self.baseline, recipe.prune)
            if strict:
                check_plan(treatments, recipe.prune)
        if recipe.quantize is not None and recipe.quantize.mode in ("int8", "qat"):
            recurrent = recurrent_layers(self.baseline)
            if recurrent:  # the conversion would refuse them after all the fine-tuning: say it now
                raise _checks.error(
                    f"Expected a model without recurrent layers for a full-integer TFLite file. Received: "
                    f"{recipe.quantize!r}, which converts to int8, and a model with {', '.join(recurrent)}. Use "
                    'Quantize("dynamic") (or target="cpu"), or a guarded search (it skips what cannot convert).'
                )

    # -- the stages ---------------------------------------------------------------------

    def runs_eagerly(self, epochs: int) -> bool:
        return self.options.runs_eagerly(count_examples(self.fit_data[0]), epochs, int(self.baseline.count_params()))

    def fit_kwargs(self, treatments, kind: str):
        epochs = self.options.epochs(kind)
        return {"batch_size": self.options.batch_size, "fine_tuning": self.fit_settings, "treatments": treatments,
                "validation": self.fit_validation, "verbose": self.verbose, "epochs": epochs,
                "run_eagerly": self.runs_eagerly(epochs)}

    def decide_isolation(self) -> None:
        """Whether the fine-tuned stages and the TFLite conversions run in child processes
        (`FineTuning.isolated`); with isolated=True, raises before any training if a child
        cannot rebuild the model."""
        self.isolating = False
        if not self.options.isolates(int(self.baseline.count_params())):
            return
        refused = isolation_refused(self.baseline, {"fine_tuning": self.fit_settings})
        if refused is None:
            self.isolating = True
        elif self.options.isolated:
            raise _checks.error(
                "Expected a model a child process can rebuild for FineTuning(isolated=True) (tf_keras's and "
                f"keras-structopt's own layers, settings that pickle). Received: a model for which {refused}. "
                "Pass isolated=None (such a model then fine-tunes in this process) or False."
            )

    def treatments_for(self, current, stage: Prune | None) -> dict[str, LayerTreatment]:
        return plan(current, stage if stage is not None else Prune(0.0))

    def slimmed(self, stage: Slim):
        """`(tf_keras copy fine-tuned, SlimPlan, Keras 3 model)` of the model slimmed by `stage`.

        A plan that removes nothing (every width already at most `multiple`, or pinned)
        leaves the model as it is, without fine-tuning it: more epochs at the fine-tuning
        learning rate would only move a converged model."""
        ratio = cast(float, stage.ratio)
        narrower, slim_plan = slim_model(self.model, self.calibration, ratio=ratio, multiple=stage.multiple,
                                           heads=stage.heads)
        current = tf_keras_copy(narrower, for_tflite=True)
        if not slim_plan.widths and not slim_plan.heads:
            message = (f"slimming (ratio {ratio:g}, widths a multiple of {stage.multiple}) removed nothing: every "
                       "tied width is pinned or would not shrink; the model was not fine-tuned")
            if message not in self.warnings:
                self.warnings.append(message)
        elif self.options.slim_epochs:
            kwargs = self.fit_kwargs(None, "slim")
            kwargs.pop("treatments")
            if self.isolating:
                return run_in_child("fit", current, self.fit_data, **kwargs), slim_plan, narrower
            self.fit_settings.compile(current, run_eagerly=kwargs["run_eagerly"])
            current.fit(self.fit_data[0], self.fit_data[1], batch_size=kwargs["batch_size"],
                        epochs=kwargs["epochs"], validation_data=self.fit_validation, verbose=self.verbose)
        return current, slim_plan, narrower

    def pruned(self, current, stage: Prune, treatments):
        kwargs = self.fit_kwargs(treatments, "prune")
        if self.isolating:
            return run_in_child("prune", current, self.fit_data, stage, **kwargs)
        return prune(tf_keras_copy(current), self.fit_data, stage, **kwargs)

    def clustered(self, current, stage: Cluster, treatments):
        kwargs = self.fit_kwargs(treatments, "cluster")
        if self.isolating:
            return run_in_child("cluster", current, self.fit_data, stage, **kwargs)
        return cluster(tf_keras_copy(current), self.fit_data, stage, **kwargs)

    def quantized(self, current, stage: Quantize, treatments):
        """`(model to convert, TFLite conversion)` for a quantization stage."""
        if stage.mode != "qat":
            return current, stage.mode
        preserve = "cluster" if any(t.clustered for t in treatments.values()) else (
            "prune" if any(t.pruned for t in treatments.values()) else None)
        kwargs = self.fit_kwargs(treatments, "qat")
        kwargs.pop("treatments")
        model = quantize_aware(tf_keras_copy(current), self.fit_data, preserve=preserve, **kwargs)
        return model, "int8"

    # -- measuring ------------------------------------------------------------------------

    def tflite(self, model, conversion: str) -> bytes:
        """The model's TFLite file with `conversion`, converted once and kept."""
        key = (id(model), conversion)
        if key not in self._files:
            data = to_tflite_bytes(model, cast(TFLiteQuantization, conversion), representative_data=self.calibration,
                                   strip=self.strip, per_channel=self.per_channel)
            self._files[key] = (model, data)  # the model is held, so its id is not reused
        return self._files[key][1]

    def score(self, model, data, conversion: str | None = None) -> dict[str, float]:
        """Metrics of `model` on `data`: through its TFLite file with `conversion`, else Keras."""
        if conversion is None:
            predictions = model.predict(data[0], batch_size=256, verbose=0)
            if isinstance(predictions, (list, tuple)):  # several outputs: named as the signature names them
                predictions = dict(zip(serving_names(model)[1], predictions))
        else:
            predictions = tflite_predict(self.tflite(model, conversion), data[0])  # several: by signature name
        return self.settings.score(predictions, data[1])

    def measure(self, name, model, conversion, treatments, settings="", per_channel_layers=(),
                stats_model=None) -> StageReport:
        """Measures a stage on the test data; `stats_model` (the model before quantization-aware
        fine-tuning, whose wrappers hide the layers) gives the weight statistics."""
        stats = stats_model if stats_model is not None else model
        data = self.tflite(model, conversion)
        predictions = tflite_predict(data, self.test[0])
        params = int(stats.count_params())
        gzipped = _gzip_size(data)
        latency = {}
        if self.measure_latency:
            for batch in LATENCY_BATCHES:
                latency[f"tf_{batch}"] = keras_latency(model, self.test[0], batch)
                latency[f"tflite_{batch}"] = tflite_latency(data, self.test[0], batch)
        return StageReport(
            name=name,
            metrics=self.settings.score(predictions, self.test[1]),
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

    def measure_path(self, steps, treatments, conversion):
        """The baseline and every step along the path kept, measured on the test data."""
        per_channel_layers = _per_channel_layers(treatments)
        stages = [self.measure("baseline", self.baseline, "none", treatments)]
        before = self.baseline
        for name, model, settings in steps:
            quantized = name == "quantized"
            layers = per_channel_layers if name in ("clustered", "quantized") else ()
            # The files measured already are not needed again (a float32 file is as large as the weights,
            # the models they hold as large again): only the last step's file goes on to the result.
            self.forget_files(keep=model)
            stages.append(self.measure(name, model, conversion if quantized else "none", treatments, settings,
                                       per_channel_layers=layers, stats_model=before if quantized else None))
            before = model
        return stages

    def forget_files(self, keep) -> None:
        """Drops every converted file but those of model `keep` (and the models they held)."""
        self._files = {key: value for key, value in self._files.items() if value[0] is keep}

    # -- one recipe as it is ------------------------------------------------------------------

    def skipped(self, kind: str, error: StageOutOfMemory) -> None:
        """Records a stage whose child process ran out of memory: skipped, the model as it was."""
        self.warnings.append(f"the {kind} stage was skipped: {error} on this machine; the stages after it "
                             "went on from the model before it")

    def run(self, recipe: Recipe):
        current = self.baseline
        treatments = self.treatments_for(current, recipe.prune)
        steps: list[tuple[str, Any, str]] = []
        complete = recipe.complete()
        applied = {kind: complete.get(kind) for kind in KINDS}  # a stage skipped for memory: its off form
        pruned = False
        if recipe.slim is not None and recipe.slim.applies:
            try:
                current, self.slim_plan, self.keras_model = self.slimmed(recipe.slim)
                treatments = self.treatments_for(current, recipe.prune)
                steps.append(("slimmed", current, recipe.slim.describe()))
            except StageOutOfMemory as error:
                self.skipped("slim", error)
                applied["slim"] = _OFF.get("slim")
        if recipe.prune is not None and recipe.prune.applies:
            try:
                current = self.pruned(current, recipe.prune, treatments)
                self.warnings += check_reached(current, treatments)
                steps.append(("pruned", current, recipe.prune.describe()))
                pruned = True
            except StageOutOfMemory as error:
                self.skipped("prune", error)
                applied["prune"] = _OFF.get("prune")
                treatments = self.treatments_for(current, None)
        if recipe.cluster is not None and recipe.cluster.applies:
            trial = _copied(treatments)
            try:
                current = self.clustered(current, recipe.cluster, trial)
                treatments = trial
                if pruned:
                    self.warnings += [w.replace("pruning reached", "after clustering, pruning kept")
                                      for w in check_reached(current, treatments)]
                steps.append(("clustered", current, recipe.cluster.describe()))
            except StageOutOfMemory as error:
                self.skipped("cluster", error)
                applied["cluster"] = _OFF.get("cluster")
        conversion, final = "none", current
        if recipe.quantize is not None and recipe.quantize.applies:
            final, conversion = self.quantized(current, recipe.quantize, treatments)
            steps.append(("quantized", final, recipe.quantize.describe()))
        stages = self.measure_path(steps, treatments, conversion)
        return current, final, conversion, self.report(stages, treatments,
                                                       Recipe([v for v in applied.values() if v is not None]))

    # -- the search for the smallest model within a tolerance ------------------------------

    def search(self, target: str, fixed: Recipe, limit: float):
        scores = self.score(self.baseline, self.validation, "none")
        metric = self.settings.metric_key(scores)
        tolerance = _Tolerance(metric, scores[metric], limit)
        tries: list[dict] = []

        def judge(stage, setting, model, conversion=None, fixed_stage=False):
            value = self.score(model, self.validation, conversion)[metric]
            kept = tolerance.within(value)
            tries.append({"stage": stage, "setting": setting, "validation": value, "loss": tolerance.loss(value),
                          "params": int(model.count_params()), "kept": kept or fixed_stage, "fixed": fixed_stage})
            if fixed_stage and not kept:
                self.warnings.append(f"the fixed {stage} stage ({setting}) loses {tolerance.loss(value):.4g} in "
                                     f"validation {metric}, more than max_accuracy_loss={limit:g}")
            return kept

        def options(kind):
            """The fixed stage of `kind`, or the target's ladder of settings for it."""
            stage = fixed.get(kind)
            return (stage, []) if stage is not None else (None, ladder(target, kind))

        chosen: dict[str, Any] = {kind: _OFF.get(kind) for kind in KINDS}
        steps: list[tuple[str, Any, str]] = []
        current = self.baseline
        # Every state a kept try reached (weak to strong, the baseline first): if quantization
        # keeps nothing on the strongest, it is tried on these (conversions only, no training).
        # A large model (its stages in child processes) keeps only each stage's chosen state, which
        # the path holds anyway: each weaker rung kept would hold one more copy of its weights.
        reached: list[_Reached] = [_Reached(current, None, [], dict(chosen), None, None)]

        def held(states: list[_Reached]) -> list[_Reached]:
            if not self.isolating:
                return states
            models = [self.baseline] + [model for _, model, _ in steps]
            return [state for state in states if any(state.model is model for model in models)]

        # 1. Slimming (Keras 3 models only): the strongest ratio within the tolerance.
        stage, settings = options("slim")
        if is_tf_keras(self.model):
            stage, settings = None, []

        def out_of_memory(kind, setting, error):
            tries.append({"stage": kind, "setting": setting, "validation": None, "loss": None, "params": None,
                          "kept": False, "fixed": False, "note": str(error)})
            self.skipped(f"{kind} ({setting})", error)
            return False, None

        def try_slim(candidate_stage):
            try:
                candidate, slim_plan, narrower = self.slimmed(candidate_stage)
            except StageOutOfMemory as error:
                return out_of_memory("slim", candidate_stage.ratio, error)
            kept = judge("slim", candidate_stage.ratio, candidate, fixed_stage=candidate_stage is stage)
            if kept or candidate_stage is stage:
                reached.append(_Reached(candidate, None, [("slimmed", candidate, candidate_stage.describe())],
                                        {**chosen, "slim": candidate_stage}, slim_plan, narrower))
            return kept, (candidate, slim_plan, narrower, candidate_stage)

        if stage is not None:
            best = try_slim(stage)[1] if stage.applies else None
        else:
            ratios = [s.ratio for s in settings]
            templates = {s.ratio: s for s in settings}
            best = _climb(ratios, lambda r: try_slim(templates.get(r) or settings[0].replace(ratio=r)), start=0.0)
        if best is not None:
            current, self.slim_plan, self.keras_model, chosen["slim"] = best
            steps.append(("slimmed", current, chosen["slim"].describe()))
        reached = [state for state in reached if state.model is current or state.plan is None]
        unpruned = reached[-1]

        # 2. Pruning: the fixed stage, the target's m:n pattern, or the strongest sparsity within the tolerance.
        stage, settings = options("prune")

        def try_prune(candidate_stage):
            treatments = self.treatments_for(current, candidate_stage)
            if not any(t.pruned for t in treatments.values()):
                return False, None
            label = (candidate_stage.describe().split()[0] if candidate_stage.m_by_n else candidate_stage.sparsity)
            try:
                candidate = self.pruned(current, candidate_stage, treatments)
            except StageOutOfMemory as error:
                return out_of_memory("prune", label, error)
            kept = judge("prune", label, candidate, fixed_stage=candidate_stage is stage)
            if kept or candidate_stage is stage:
                reached.append(unpruned.then(candidate, treatments, "prune", candidate_stage, "pruned"))
            return kept or candidate_stage is stage, (candidate, treatments, candidate_stage)

        if stage is not None:
            best = try_prune(stage)[1] if stage.applies else None
        elif settings and settings[0].m_by_n is not None:
            kept, found = try_prune(settings[0])
            best = found if kept else None
        else:
            templates = {s.sparsity: s for s in settings}
            best = _climb(list(templates), lambda v: try_prune(templates.get(v) or settings[0].replace(sparsity=v)),
                          start=0.0)
        treatments = self.treatments_for(current, None)
        if best is not None:
            current, treatments, chosen["prune"] = best
            self.warnings += check_reached(current, treatments)
            steps.append(("pruned", current, chosen["prune"].describe()))
        reached = held(reached)

        # 3. Clustering: the fixed stage, or the fewest values within the tolerance.
        stage, settings = options("cluster")
        base = next(state for state in reversed(reached) if state.model is current)

        def try_cluster(candidate_stage):
            trial_treatments = _copied(treatments)
            try:
                candidate = self.clustered(current, candidate_stage, trial_treatments)
            except StageOutOfMemory as error:
                return out_of_memory("cluster", candidate_stage.clusters, error)
            kept = judge("cluster", candidate_stage.clusters, candidate, fixed_stage=candidate_stage is stage)
            if kept or candidate_stage is stage:
                reached.append(base.then(candidate, trial_treatments, "cluster", candidate_stage, "clustered"))
            return kept or candidate_stage is stage, (candidate, trial_treatments, candidate_stage)

        if stage is not None:
            best = try_cluster(stage)[1] if stage.applies else None
        else:
            templates = {s.clusters: s for s in settings}
            best = _climb(list(templates), lambda k: try_cluster(templates.get(k) or settings[0].replace(clusters=k)),
                          start=None)
        if best is not None:
            current, treatments, chosen["cluster"] = best
            steps.append(("clustered", current, chosen["cluster"].describe()))
        reached = held(reached)

        # 4. Quantization: of the conversions within the tolerance (judged on their TFLite files), the
        # smallest file; on a tiny model a fully int8 file can be larger than a dynamic-range one.
        stage, settings = options("quantize")
        candidates = [stage] if stage is not None and stage.applies else ([] if stage is not None else settings)

        def try_quantize(model, model_treatments, candidate_stage, setting, bound=None):
            """(gzip'd size, model, conversion, stage) if `model` quantized by `candidate_stage` keeps the
            tolerance (or is the fixed stage); None if not, if its layers cannot be converted (the try is
            listed with the converter's reason), or if its file is not smaller than `bound` (not judged)."""
            fixed_stage = candidate_stage is stage
            try:
                candidate, candidate_conversion = self.quantized(model, candidate_stage, model_treatments)
                size = _gzip_size(self.tflite(candidate, candidate_conversion))
                if bound is not None and size >= bound:
                    return None
                kept = judge("quantize", setting, candidate, candidate_conversion, fixed_stage=fixed_stage)
            except ConfigurationError as error:  # layers the conversion cannot take
                tries.append({"stage": "quantize", "setting": setting, "validation": None, "loss": None,
                              "params": None, "kept": False, "fixed": fixed_stage,
                              "note": str(error).split(". Received")[0]})
                return None
            tries[-1]["gzip_bytes"] = size
            return (size, candidate, candidate_conversion, candidate_stage) if kept or fixed_stage else None

        conversion, final, best = "none", current, None
        for candidate_stage in candidates:
            found = try_quantize(current, treatments, candidate_stage, candidate_stage.mode)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None and stage is None and candidates:
            # Quantization lost more than what the stages before it left of the tolerance. A
            # weaker state they reached (a weaker rung, an earlier stage, the baseline) may
            # leave enough: the strongest that keeps a quantization whose file is smaller than
            # the strongest state's float32 one is taken instead, with its quantization.
            float_size = _gzip_size(self.tflite(current, "none"))
            for state in reversed(reached):
                if state.model is current:
                    continue
                found = None
                for candidate_stage in candidates:
                    if candidate_stage.mode == "qat":  # the fallback converts, it does not fine-tune
                        continue
                    found = try_quantize(state.model, state.treatments, candidate_stage,
                                         f"{candidate_stage.mode} after {state.label()}",
                                         bound=float_size if found is None else found[0]) or found
                if found is not None:
                    best = found
                    current, steps, chosen = state.model, list(state.steps), dict(state.chosen)
                    treatments = state.treatments if state.treatments is not None else self.treatments_for(
                        current, None)
                    self.slim_plan = state.plan
                    self.keras_model = state.keras_model if state.plan is not None else self.model
                    self.warnings.append(
                        f"quantization lost more than max_accuracy_loss={limit:g} after the strongest stages "
                        f"found; it was kept after weaker ones whose file is smaller: {state.label()}")
                    break
        if best is not None:
            _, final, conversion, chosen["quantize"] = best
            if chosen["quantize"].applies:  # a float32 file is no stage of its own
                steps.append(("quantized", final, chosen["quantize"].describe()))

        stages = self.measure_path(steps, treatments, conversion)
        recipe = Recipe([chosen[kind] for kind in KINDS])
        return current, final, conversion, self.report(stages, treatments, recipe, tries)

    # -- the result ---------------------------------------------------------------------

    def report(self, stages, treatments, recipe, search=()):
        for message in self.warnings:
            warnings.warn(message, RuntimeWarning, stacklevel=4)
        return CompressionReport(
            stages=tuple(stages),
            layers=tuple(treatments.values()),
            fine_tuning=self.settings,
            metric=self.settings.metric_key(stages[0].metrics) if stages else self.settings.primary_metric,
            warnings=tuple(self.warnings),
            recipe=recipe,
            search=tuple(search),
            slimmed_widths=dict(self.slim_plan.widths) if self.slim_plan is not None else {},
            slimmed_heads=dict(self.slim_plan.heads) if self.slim_plan is not None else {},
            distilled=self.distilled,
        )

    def result(self, float_model, final_model, conversion: str, report: CompressionReport):
        """`(model, CompressionResult)`: the float weights carried back to the Keras the user gave."""
        data = self.tflite(final_model, conversion)
        if is_tf_keras(self.model):
            model = float_model
        else:
            model = carry_back(float_model, self.keras_model)
            compile_config = self.model.get_compile_config()
            if compile_config:
                model.compile_from_config(compile_config)
        setattr(model, MEASURED_CONVERSION, {
            "quantization": conversion, "strip": self.strip, "per_channel": self.per_channel,
            "representative_data": self.calibration if conversion == "int8" else None,
        })
        return model, CompressionResult(report=report, tflite=data, tf_keras_model=final_model)
