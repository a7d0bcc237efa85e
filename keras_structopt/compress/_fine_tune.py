"""How compression fine-tunes: the user's options (`FineTuning`), and the compile settings they resolve to.

`FineTuning` holds what a user may choose: the batch size, the learning rate, the epochs
of each stage, the loss and metrics, and distillation. `CompileSettings` is what those
choices and the model resolve to. A Keras 3 model's `get_compile_config()` names its optimizer, loss and metrics; each
is made again with tf_keras (same class, same options), except the learning rate,
which comes from `FineTuning.learning_rate`. Explicit `loss=` / `metrics=` win over the
model's; a keras-structopt model that was never compiled falls back to its task's
loss and metric; any other uncompiled model without `loss=` is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt._env import LARGE_MODEL_PARAMS
from keras_structopt.bridge._layers import _accepted_keys, _dtype

# A fine-tuning fit of at most this many steps runs eagerly unless FineTuning.run_eagerly says otherwise:
# the traced graph overtakes eager steps between 16 and 32 steps, for a 3-layer dense network,
# MobileNetV3Small and NASNetMobile alike (bench/eager_fit.py).
EAGER_MAX_STEPS = 16

# A large model (`LARGE_MODEL_PARAMS`, from `_env`): its fine-tuned stages and conversions run in child
# processes unless FineTuning.isolated says otherwise (docs/design.md, "Memory"). And it fine-tunes as a
# traced graph however short the fit: an eager step's gradient tape holds every intermediate tensor of
# the step, and TFMOT's clustering computes each kernel's distance to every centroid (16 times the
# kernel): ConvNeXtLarge's eager clustering step took 17 GB.

# A spec's task -> (loss, metrics), for keras-structopt models that were never compiled.
TASK_COMPILE = {
    "multiclass": ("sparse_categorical_crossentropy", ["accuracy"]),
    "binary": ("binary_crossentropy", ["accuracy"]),
    "regression": ("mean_squared_error", ["mean_absolute_error"]),
}


def _serialise(value, what: str):
    """A loss/metric/optimizer given as a string, a Keras 3 or a tf_keras object -> plain data."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "class_name" in value:
        return value
    if isinstance(value, dict):
        return {key: _serialise(item, what) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_serialise(item, what) for item in value]
    module = type(value).__module__.split(".")[0]
    if module == "keras":
        import keras

        return keras.saving.serialize_keras_object(value)
    if module == "tf_keras":
        import tf_keras

        return tf_keras.saving.serialize_keras_object(value)
    name = getattr(value, "__name__", None)
    if callable(value) and name:
        return name  # a built-in loss or metric function, by name
    raise _checks.error(
        f"Expected {what} to be a string or a Keras loss/metric object. Received: {what}={value!r}."
    )


def _tf_keras_object(tf_keras, kind: str, value, what: str):
    """A fresh tf_keras loss/metric from plain data (strings stay strings)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "class_name" in value:
        class_name = value["class_name"]
        config = value.get("config")
        if class_name == "function" and isinstance(config, str):
            return config  # a built-in function, by name
        module = getattr(tf_keras, kind)
        cls = getattr(module, class_name, None)
        if cls is None or not isinstance(cls, type):
            raise _checks.error(
                f"Expected {what} to be a standard Keras {kind[:-1]} (or pass {what}= explicitly). "
                f"Received: {what} of class {class_name!r}, which tf_keras does not have."
            )
        accepted = _accepted_keys(cls)
        return cls(**{key: _dtype(item) for key, item in dict(config or {}).items() if key in accepted})
    if isinstance(value, dict):
        return {key: _tf_keras_object(tf_keras, kind, item, what) for key, item in value.items()}
    if isinstance(value, list):
        return [_tf_keras_object(tf_keras, kind, item, what) for item in value]
    raise _checks.error(f"Expected {what} to be a string or a Keras {kind[:-1]}. Received: {what}={value!r}.")


# Metrics Keras knows by a short string too; the long name is the one reports use.
_LONG_NAMES = {"acc": "accuracy", "mae": "mean_absolute_error", "mse": "mean_squared_error"}


def _names(value) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "class_name" in value:
        config = value.get("config")
        if isinstance(config, str):
            return config
        return (config or {}).get("name") or value["class_name"]
    if isinstance(value, dict):
        return {key: _names(item) for key, item in value.items()}
    return [_names(item) for item in value]


@dataclasses.dataclass(frozen=True)
class CompileSettings:
    """The compile settings compression fine-tunes and measures with: optimizer, loss, metrics.

    Attributes:
        optimizer: The tf_keras optimizer class name (the model's own, else `"Adam"`).
        optimizer_config: Its options; `learning_rate` comes from `compress`.
        loss: The loss, as a name or serialised object (several for several outputs).
        metrics: The metrics, likewise.
        source: Where they came from: `"model"` (its compile settings),
            `"arguments"` (explicit `loss=`/`metrics=`) or `"task"` (a
            keras-structopt model's task, when it was never compiled).

    Example:
        >>> settings = CompileSettings("SGD", {"learning_rate": 0.01}, "binary_crossentropy", ["auc"], "arguments")
        >>> settings.to_dict()["optimizer"]
        'SGD'
    """

    optimizer: str
    optimizer_config: dict
    loss: Any
    metrics: Any
    source: str

    @classmethod
    def resolve(cls, model, options: FineTuning, *, task: str | None = None) -> CompileSettings:
        """The settings for `model` under `options`; raises `ConfigurationError` if there is no loss."""
        loss, metrics, learning_rate = options.loss, options.metrics, options.learning_rate
        config = _compile_config(model)
        optimizer = config.get("optimizer")
        if isinstance(optimizer, dict) and optimizer.get("class_name") == "LossScaleOptimizer":
            optimizer = optimizer["config"].get("inner_optimizer")
        optimizer_name, optimizer_config = "Adam", {}
        if isinstance(optimizer, dict) and "class_name" in optimizer:
            optimizer_name, optimizer_config = optimizer["class_name"], dict(optimizer.get("config") or {})
        elif isinstance(optimizer, str):
            optimizer_name = optimizer
        source = "model" if config.get("loss") is not None else None
        model_loss, model_metrics = config.get("loss"), config.get("metrics")
        if loss is not None:
            model_loss, source = _serialise(loss, "loss"), "arguments"
            model_metrics = None
        if metrics is not None:
            model_metrics = _serialise(metrics, "metrics")
        if model_loss is None and task is not None:
            model_loss, task_metrics = TASK_COMPILE[task]
            model_metrics = task_metrics if model_metrics is None else model_metrics
            source = "task"
        if model_loss is None:
            raise _checks.error(
                "Expected a compiled model or an explicit loss= to fine-tune with. Received: model "
                f"{getattr(model, 'name', model)!r}, which was never compiled, and loss=None. Compile it "
                "(model.compile(loss=..., metrics=[...])) or pass fine_tuning=FineTuning(loss=..., metrics=[...])."
            )
        import tf_keras

        optimizer_class = getattr(tf_keras.optimizers, optimizer_name, None)
        if optimizer_class is None:
            raise _checks.error(
                f"Expected the model's optimizer to be a standard Keras optimizer. Received: {optimizer_name!r}, "
                "which tf_keras does not have. Compile the model with a standard optimizer."
            )
        accepted = _accepted_keys(optimizer_class)
        optimizer_config = {
            key: value for key, value in optimizer_config.items()
            if key in accepted and key != "learning_rate" and not isinstance(value, dict)
        }
        optimizer_config["learning_rate"] = float(learning_rate)
        assert source is not None  # "model", "arguments" or "task": without a loss it raised above
        settings = cls(optimizer_name, optimizer_config, model_loss, model_metrics or [], source)
        settings.objects(tf_keras)  # every piece must exist in tf_keras: fail now, not mid-way
        return settings

    def objects(self, tf_keras):
        """Fresh tf_keras `(optimizer, loss, metrics)`."""
        optimizer = getattr(tf_keras.optimizers, self.optimizer)(**self.optimizer_config)
        loss = _tf_keras_object(tf_keras, "losses", copy.deepcopy(self.loss), "loss")
        metrics = _tf_keras_object(tf_keras, "metrics", copy.deepcopy(self.metrics), "metrics")
        return optimizer, loss, metrics

    def compile(self, model, **options) -> None:
        """Compiles a tf_keras model with fresh objects of these settings."""
        import tf_keras

        optimizer, loss, metrics = self.objects(tf_keras)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **options)

    def score(self, predictions, y) -> dict[str, float]:
        """The loss and metrics of `predictions` against `y`, as Keras computes them.

        Several outputs come as a list (in the order of the losses) or as a dict by
        output name (a TFLite file's signature); a dict is put in the order in which
        a dict of losses names the outputs.

        An identity tf_keras model compiled with these settings evaluates the
        predictions, so the figures match `model.evaluate` (and work for a TFLite
        file's outputs too).
        """
        import tf_keras

        if isinstance(predictions, dict):  # several outputs by name: in the order the losses name them
            names = self._output_names(len(predictions))
            outputs = [predictions[n] for n in names] if set(names) <= set(predictions) else list(predictions.values())
        else:
            outputs = list(predictions) if isinstance(predictions, (list, tuple)) else [predictions]
            names = self._output_names(len(outputs))
        inputs = [tf_keras.Input(shape=np.asarray(p).shape[1:], name=f"prediction_{i}") for i, p in enumerate(outputs)]
        identity = tf_keras.Model(
            inputs, [tf_keras.layers.Activation("linear", name=name)(x) for name, x in zip(names, inputs)]
        )
        self.compile(identity, run_eagerly=True)  # small data; no tracing per stage
        values = identity.evaluate(
            [np.asarray(p) for p in outputs] if len(outputs) > 1 else np.asarray(outputs[0]),
            y, batch_size=256, verbose=0, return_dict=True,
        )
        return {key: float(value) for key, value in values.items()}

    def _output_names(self, count: int) -> list[str]:
        if isinstance(self.loss, dict) and "class_name" not in self.loss and len(self.loss) == count:
            return list(self.loss)
        return [f"output_{i}" for i in range(count)]

    def distilling(self, y, teacher, weight: float = 0.5):
        """Settings and targets for fine-tuning on a mix of the labels and a teacher's outputs.

        Compression fine-tunes a smaller network; learning from the uncompressed
        model's predictions as well as from the labels (knowledge distillation)
        keeps it closer to the original. The targets are `weight * labels +
        (1 - weight) * teacher`; sparse class ids become one-hot rows and the loss
        its categorical form. Returns `(settings, targets)`, or `(self, y)` when the
        loss has no such form (a custom loss, several outputs).

        Example:
            >>> import numpy as np
            >>> settings = CompileSettings("Adam", {"learning_rate": 1e-3}, "sparse_categorical_crossentropy",
            ...                       ["accuracy"], "model")
            >>> soft, targets = settings.distilling(np.array([1]), np.array([[0.2, 0.8]]))
            >>> soft.loss, [[round(float(v), 3) for v in row] for row in targets]
            ('categorical_crossentropy', [[0.1, 0.9]])
        """
        name = _names(self.loss)
        if isinstance(self.loss, dict) and (self.loss.get("config") or {}).get("from_logits"):
            return self, y  # a teacher's logits do not mix with labels
        teacher = np.asarray(teacher, dtype="float32")
        labels = np.asarray(y)
        if name in ("sparse_categorical_crossentropy",) and teacher.ndim == 2:
            labels = np.eye(teacher.shape[-1], dtype="float32")[labels.reshape(-1).astype(int)]
            name = "categorical_crossentropy"
        elif name not in ("categorical_crossentropy", "binary_crossentropy", "mean_squared_error", "mse",
                          "mean_absolute_error", "mae", "huber", "huber_loss"):
            return self, y
        if labels.shape != teacher.shape:
            labels = labels.reshape(teacher.shape)
        targets = weight * labels.astype("float32") + (1.0 - weight) * teacher
        return dataclasses.replace(self, loss=name, metrics=[]), targets

    @property
    def primary_metric(self) -> str:
        """The name of the first metric (the one reports and tolerances use), else `"loss"`."""
        names = _names(self.metrics)
        if isinstance(names, dict):
            names = [n for value in names.values() for n in (value if isinstance(value, list) else [value])]
        first = names[0] if names else "loss"
        return _LONG_NAMES.get(first, first)

    def metric_key(self, scores) -> str:
        """The key under which `score` reports `primary_metric`.

        Keras names a metric after the string it was given (`"mae"` stays `"mae"`) or
        after its object (`"AUC"` becomes `"auc"`), so the name is matched against the
        keys `scores` really has: the name itself, its long or short alias, its lower
        case; else the first key that is not a loss; else `"loss"`.

        Example:
            >>> settings = CompileSettings("Adam", {"learning_rate": 1e-3}, "mse", ["mae"], "arguments")
            >>> settings.primary_metric, settings.metric_key({"loss": 0.5, "mae": 0.4})
            ('mean_absolute_error', 'mae')
        """
        first = self.primary_metric
        short = {long: name for name, long in _LONG_NAMES.items()}
        for name in (first, short.get(first), first.lower()):
            if name is not None and name in scores:
                return name
        others = [key for key in scores if not key.endswith("loss")]
        return others[0] if others else "loss"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for reports."""
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.optimizer_config["learning_rate"],
            "loss": _names(self.loss),
            "metrics": _names(self.metrics),
            "source": self.source,
        }


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """How compression fine-tunes after each stage, and what it measures with.

    The optimizer is the model's own class (its learning rate is `learning_rate`); the
    loss and metrics are the model's compile settings unless `loss` / `metrics` are
    given (a keras-structopt model that was never compiled uses its task's).

    Args:
        batch_size: The fine-tuning batch size.
        learning_rate: The fine-tuning optimizer's learning rate.
        slim_epochs: Epochs after slimming (>= 0).
        prune_epochs: Epochs while pruning (>= 1): the sparsity schedule spans them.
        cluster_epochs: Epochs while clustering (>= 0).
        qat_epochs: Quantization-aware epochs (>= 1).
        loss: A loss (name or Keras object) to fine-tune with instead of the model's.
        metrics: Metrics to measure with instead of the model's.
        distill: Fine-tune on targets half label, half the uncompressed model's
            prediction (knowledge distillation; for cross-entropy and regression
            losses). None: on for a preset or a guarded search, off for a recipe
            applied as it is.
        run_eagerly: Run each fine-tuning `fit` eagerly (True) or as a traced graph
            (False). None (the default) decides per fit: eagerly when the fit takes
            at most `EAGER_MAX_STEPS` (16) steps in all and the model has fewer than
            `LARGE_MODEL_PARAMS` (20 M) parameters (an eager step holds all its
            intermediate tensors at once: ConvNeXtLarge's clustering step took 17 GB). Tracing a large model's
            training step costs as much as tens of its eager steps (`bench/eager_fit.py`
            on 2 cores: 2 steps of NASNetMobile under pruning, 98 s traced, 18 s eager;
            of a 3-layer dense network, 2.1 s and 0.24 s; past 16-32 steps the traced
            graph is faster).
        isolated: Run each fine-tuned stage (slimming's fine-tuning, pruning,
            clustering) and each TFLite conversion in a child process (True), or all
            in this one (False). None (the default) isolates them for models of at
            least `LARGE_MODEL_PARAMS` (20 M) parameters. TensorFlow keeps about four
            times a model's float32 weights after every training, which only the
            process's end gives back, and TFLite's converter needs tens of times them
            while it runs (ConvNeXtTiny: this process peaked at 6.0 GB in `compress`
            with TFMOT's recipe, 3.1 GB with the conversions isolated). A child costs a
            TensorFlow import and the model written to a temporary folder (seconds per
            stage). A model with layers of your own (`kso.bridge.register`) stays in
            this process with None; True refuses it before any training.
            Quantization-aware training always runs in this process. A stage whose
            child the kernel kills for lack of memory (SIGKILL) is skipped, and the
            report's warnings say so; any other failure of a child is raised.

    Example:
        >>> FineTuning(prune_epochs=4).epochs("prune")
        4
        >>> FineTuning().runs_eagerly(examples=64, epochs=1), FineTuning().runs_eagerly(examples=6400, epochs=1)
        (True, False)
        >>> large = 196_245_706  # ConvNeXtLarge's parameters
        >>> FineTuning().runs_eagerly(examples=64, epochs=1, params=large), FineTuning().isolates(large)
        (False, True)
        >>> FineTuning().isolates(2_000_000), FineTuning(isolated=True).isolates(2_000_000)
        (False, True)
    """

    batch_size: int = 32
    learning_rate: float = 1e-3
    slim_epochs: int = 3
    prune_epochs: int = 10
    cluster_epochs: int = 3
    qat_epochs: int = 2
    loss: Any = None
    metrics: Any = None
    distill: bool | None = None
    run_eagerly: bool | None = None
    isolated: bool | None = None

    def __post_init__(self):
        _checks.positive_int("batch_size", self.batch_size)
        _checks.positive_number("learning_rate", self.learning_rate)
        _checks.non_negative_int("slim_epochs", self.slim_epochs)
        _checks.positive_int("prune_epochs", self.prune_epochs)
        _checks.non_negative_int("cluster_epochs", self.cluster_epochs)
        _checks.positive_int("qat_epochs", self.qat_epochs)
        if self.distill is not None and not isinstance(self.distill, bool):
            raise _checks.error(
                f"Expected distill to be True, False or None. Received: distill={self.distill!r}."
            )
        if self.run_eagerly is not None and not isinstance(self.run_eagerly, bool):
            raise _checks.error(
                f"Expected run_eagerly to be True, False or None. Received: run_eagerly={self.run_eagerly!r}."
            )
        if self.isolated is not None and not isinstance(self.isolated, bool):
            raise _checks.error(
                f"Expected isolated to be True, False or None. Received: isolated={self.isolated!r}."
            )

    def epochs(self, kind: str) -> int:
        """The fine-tuning epochs of a stage kind (`"slim"`, `"prune"`, `"cluster"`, `"qat"`)."""
        return int(getattr(self, f"{kind}_epochs"))

    def runs_eagerly(self, examples: int, epochs: int, params: int = 0) -> bool:
        """Whether a fine-tuning `fit` of `epochs` over `examples` runs eagerly (see `run_eagerly`);
        a model of `params` parameters, `LARGE_MODEL_PARAMS` or more, never does by default."""
        if self.run_eagerly is not None:
            return self.run_eagerly
        return math.ceil(examples / self.batch_size) * epochs <= EAGER_MAX_STEPS and params < LARGE_MODEL_PARAMS

    def isolates(self, params: int) -> bool:
        """Whether the fine-tuned stages of a model of `params` parameters run in a child process
        (see `isolated`; a model the child cannot rebuild is checked separately)."""
        return self.isolated if self.isolated is not None else params >= LARGE_MODEL_PARAMS

    def replace(self, **changes: Any) -> FineTuning:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options that go to JSON (loss and metrics by name)."""
        result = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        result["loss"], result["metrics"] = _names(_serialise(self.loss, "loss")), _names(
            _serialise(self.metrics, "metrics"))
        return result


def _compile_config(model) -> dict:
    getter = getattr(model, "get_compile_config", None)
    try:
        config = getter() if getter is not None else None
    except Exception:  # an uncompiled tf_keras model may raise instead of returning None
        config = None
    return dict(config or {})
