"""What every keras-structopt HyperModel shares.

A HyperModel's constructor declares a search space. Every argument may be

* a single value -- fixed (`num_layers=2`),
* a list -- a choice among those values (`units=[32, 64, 128]`),
* a `(min, max)` tuple -- a range, both ends included (`num_layers=(1, 4)`;
  integer widths and learning rates are sampled on a log scale).

`build(hp)` turns the hyperparameter values into an `Architecture`, renders it with
Keras 3 and compiles it. `architecture(hp)` gives the spec without building.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_structopt import _checks
from keras_structopt._keras_tuner import checkpoint_directory
from keras_structopt._labels import check_labels, task_of_loss
from keras_structopt._trial_files import CurveRecorder
from keras_structopt._types import FloatSpace, Loss, Metrics, OptimizerSpace, Shape, Task
from keras_structopt.data._datasets import check_dataset, is_dataset, with_batches
from keras_structopt.hypermodels import _compile_choices
from keras_structopt.hypermodels._tunable import Tunable, _plain, as_choice
from keras_structopt.space import Architecture, render
from keras_structopt.space._architecture import TASKS


def fixed_options(input_shape=(1,), **options) -> dict:
    """Checks options that are set, never searched (`input_normalization`, `head_bias`); returns them canonical.

    Raises the `Architecture`'s error at construction, before any trial, for a bad value.

    Example:
        >>> fixed_options(input_shape=(2,), input_normalization=([0, 1], [1, 0]), head_bias=3)
        {'input_normalization': ((0.0, 1.0), (1.0, 1.0)), 'head_bias': 3.0}
    """
    from keras_structopt.space._architecture import canonical_input_and_head

    checked = dict(options)
    canonical_input_and_head(tuple(input_shape), checked)
    return checked


def fit_model(model, arguments: list, kwargs: dict):
    """`model.fit(*arguments, **kwargs)`, with `shuffle=False` for a `tf.data.Dataset` unless given: Keras
    ignores `shuffle` for a dataset (shuffled in its pipeline, or not) and warns about its default True on
    every fit.

    Example:
        >>> import numpy as np, keras
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model.compile("sgd", "mse")
        >>> len(fit_model(model, [np.zeros((4, 2)), np.zeros(4)], {"epochs": 1, "verbose": 0}).epoch)
        1
    """
    if is_dataset(kwargs.get("x", arguments[0] if arguments else None)):
        kwargs.setdefault("shuffle", False)
    return model.fit(*arguments, **kwargs)


class StructuralHyperModel(keras_tuner.HyperModel):
    """Base class of the keras-structopt HyperModels.

    Subclasses implement `_declare(hp) -> Architecture`. This class validates the
    task, compiles the model, seeds each trial's weights and checks the data a search
    receives before any training.

    Args:
        input_shape: The shape of one example, without the batch axis.
        outputs: Classes (multiclass), 1 (binary) or regression targets.
        task: `"multiclass"`, `"binary"` or `"regression"`.
        learning_rate: The optimizer's learning rate: fixed, choices or a range. `None`
            keeps the rate (or schedule) of an optimizer object given as `optimizer`.
        optimizer: The optimizer, the Keras way: a name (`"adam"`, `"sgd"`, ...), an
            optimizer object (each trial compiles its own copy, with `learning_rate`
            set unless it is `None`), or a list of names -- a choice the search makes.
        loss: The loss: a Keras name, a loss object or function. `None` is the task's
            (sparse categorical / binary cross-entropy, mean squared error).
        metrics: Metrics to compile with: a list of names, metric objects (copied for
            each trial) or functions. `None` is the task's (accuracy, or mean absolute
            error). Each metric `m` can be a tuner objective as `"val_" + m.name`.
        width_multiple: Round every width up to this multiple (8 suits GPU tensor
            cores, 128 TPUs).
        seed: Seeds each trial's weight initialisation and data shuffling from this
            seed and the trial's hyperparameters, so reruns repeat (0 is a seed like
            any other). `None` leaves them unseeded.
        name: The HyperModel's name.
        tunable: Whether the space's hyperparameters may be tuned (Keras Tuner's flag).

    Example:
        >>> import keras_structopt as kso
        >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, seed=0)
        >>> isinstance(hypermodel, kso.hypermodels.StructuralHyperModel)
        True
    """

    family: str = ""

    def __init__(
        self,
        input_shape: Shape,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        learning_rate: FloatSpace | None = (1e-3, 1e-2),
        optimizer: OptimizerSpace = "adam",
        loss: Loss = None,
        metrics: Metrics = None,
        width_multiple: int = 1,
        seed: int | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        self.input_shape = input_shape
        self.outputs = outputs
        self.task = task
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.width_multiple = width_multiple
        self.seed = seed
        self._shape = _checks.shape("input_shape", input_shape)
        _checks.one_of("task", task, TASKS)
        if task == "binary":
            if outputs not in (None, 1):
                raise _checks.error(
                    f'Expected outputs=1 (or None) for task="binary". Received: outputs={outputs!r}.'
                )
            self._outputs = 1
        else:
            if outputs is None:
                raise _checks.error(
                    f"Expected outputs (number of classes or targets) for task={task!r}. "
                    "Received: outputs=None."
                )
            self._outputs = _checks.positive_int("outputs", outputs)
        _checks.positive_int("width_multiple", width_multiple)
        if seed is not None:
            _checks.non_negative_int("seed", seed)
        self._learning_rate = (
            None
            if learning_rate is None
            else Tunable.parse("learning_rate", learning_rate, kind=float, low=1e-7, high=1.0, log=True)
        )
        self._optimizer = _compile_choices.optimizer_tunable(optimizer)
        _compile_choices.check_loss(loss)
        _compile_choices.check_metrics(metrics)

    # -- the space ----------------------------------------------------------------

    def width(self, name: str, value) -> Tunable:
        """Parses a width argument (units, filters), aligned to `width_multiple`."""
        return Tunable.parse(name, value, kind=int, low=1, log=True, multiple=self.width_multiple)

    @staticmethod
    def rate(name: str, value) -> Tunable:
        """Parses a rate argument in `[0, 1)` (dropout, batch-norm momentum)."""
        return Tunable.parse(name, value, kind=float, low=0.0, high=1.0, high_inclusive=False)

    @staticmethod
    def option(name: str, value, accepted) -> Tunable:
        """Parses a string or bool argument; a tuple of them is a choice too."""
        kind = bool if accepted is bool else str
        return Tunable.parse(name, as_choice(value), kind=kind, accepted=None if kind is bool else accepted)

    def _declare(self, hp: keras_tuner.HyperParameters) -> Architecture:
        raise NotImplementedError

    def architecture(self, hp: keras_tuner.HyperParameters | None = None) -> Architecture:
        """Returns the `Architecture` that `hp` selects (the defaults when `hp` is None).

        Example:
            >>> import keras_structopt as kso
            >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=2, units=32)
            >>> hypermodel.architecture().widths
            (32, 32)
        """
        hp = keras_tuner.HyperParameters() if hp is None else hp
        return self._declare(hp)

    def rule_violation(self, spec: Architecture) -> str | None:
        """Why the network `spec` breaks this space's design rules (it is not built), or None.

        The convolutional HyperModels reject a network whose receptive field does not
        cover the input or whose last feature map is larger than 8 per side
        (`keras_structopt.space.receptive_field`), unless built with `design_rules=False`;
        the other families have no such rule.

        Example:
            >>> import keras_structopt as kso
            >>> from keras_structopt.space import Architecture, Block
            >>> hypermodel = kso.ConvHyperModel(input_shape=(28, 28, 1), outputs=10)
            >>> hypermodel.rule_violation(Architecture("conv", (28, 28, 1), [Block("plain", 16)]))
            'its receptive field (3) does not cover the input (28), and its last feature map (28x28) is larger than 8'
        """
        if not getattr(self, "design_rules", False):
            return None
        from keras_structopt.space import receptive_field

        field = receptive_field(spec)
        return None if field is None else field.violation()

    # -- keras_tuner.HyperModel ---------------------------------------------------

    def build(self, hp: keras_tuner.HyperParameters):
        """Builds and compiles the Keras 3 model that `hp` selects.

        A network that breaks the space's design rules (`rule_violation`) is not built:
        Keras Tuner records the trial as failed, with the reason, having trained nothing.
        """
        spec = self._declare(hp)
        reason = self.rule_violation(spec)
        if reason is not None:
            raise keras_tuner.errors.FailedTrialError(
                f"Not built: {reason} (the space's design rules; design_rules=False builds it)."
            )
        check_fits_memory(spec, hp)  # before Keras makes a weight (Keras Tuner builds a default network first)
        learning_rate = None if self._learning_rate is None else self._learning_rate.declare(hp)
        if self._optimizer is None:  # an object
            optimizer = self.optimizer
        elif self._optimizer.form == "fixed":  # not a hyperparameter: a space without a choice stays as it was
            optimizer = self._optimizer.values[0]
        else:
            optimizer = self._optimizer.declare(hp)
        if self.seed is not None:
            keras.utils.set_random_seed(trial_seed(self.seed, hp.values))
        model = render(spec, keras)  # carries its spec, also through model.save
        loss, metrics = {
            "multiclass": ("sparse_categorical_crossentropy", ["accuracy"]),
            "binary": ("binary_crossentropy", ["accuracy"]),
            "regression": ("mean_squared_error", ["mean_absolute_error"]),
        }[self.task]
        model.compile(
            optimizer=_compile_choices.make_optimizer(optimizer, learning_rate),
            loss=loss if self.loss is None else self.loss,
            metrics=metrics if self.metrics is None else _compile_choices.copy_metrics(self.metrics),
        )
        return model

    def check_fit_data(self, *args, **kwargs) -> None:
        """Raises a `ConfigurationError` if numpy data given to `fit`/`search` does not fit the space.

        Checked: the example shape against `input_shape`, as many labels as examples, no
        empty data, no NaN or inf in the inputs (or in regression targets), class ids in
        range; for `x` and `y` and for `validation_data`. For a `tf.data.Dataset`, its
        example shape (batched or not, from its `element_spec`) and that it is not empty.
        `search` calls it before its first trial, `fit` before each training.

        Example:
            >>> import numpy as np, keras_structopt as kso
            >>> hypermodel = kso.DenseHyperModel(input_shape=(4,), outputs=3)
            >>> try:
            ...     hypermodel.check_fit_data(np.zeros((5, 4)), np.array([0, 1, 2, 3, 0]))
            ... except kso.ConfigurationError as error:
            ...     print(str(error).split(".")[0])
            Expected y to hold class ids in [0, 2] for task='multiclass' with outputs=3
        """
        x = kwargs.get("x", args[0] if args else None)
        y = kwargs.get("y", args[1] if len(args) > 1 else None)
        validation = kwargs.get("validation_data")
        if is_dataset(x):
            check_dataset(x, self._shape, "x")
        else:
            check_data(self._shape, self.task, self._outputs, x, y, "x", "y", self.loss)
        if is_dataset(validation):
            check_dataset(validation, self._shape, "validation_data")
        elif isinstance(validation, (tuple, list)) and len(validation) >= 2:
            check_data(
                self._shape, self.task, self._outputs, validation[0], validation[1],
                "validation_data[0]", "validation_data[1]", self.loss,
            )

    def fit(self, hp, model, *args, **kwargs):
        """Checks the training data against the space, then trains as Keras Tuner does.

        A `tf.data.Dataset` given unbatched (for `x` or `validation_data`) is batched here,
        by `batch_size` (default 32), as Keras needs; Keras does not shuffle a dataset
        (shuffle it in its pipeline). Inside any Keras Tuner tuner, the
        trial's per-epoch metrics are kept in its folder (`curves.json`, which Keras Tuner
        itself does not keep), so `kso.search.learning_curves` and the selection helpers
        read a plain `keras_tuner.RandomSearch`'s project too.
        """
        self.check_fit_data(*args, **kwargs)
        record_curves(kwargs)
        arguments = list(args)
        x = kwargs.get("x", arguments[0] if arguments else None)
        if is_dataset(x):
            rank, size = len(self._shape), kwargs.pop("batch_size", None)
            if "x" in kwargs:
                kwargs["x"] = with_batches(x, rank, size)
            else:
                arguments[0] = with_batches(x, rank, size)
            kwargs["validation_data"] = with_batches(kwargs.get("validation_data"), rank, size)
        return fit_model(model, arguments, kwargs)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments in a form that survives JSON with its meaning.

        A `(min, max)` range becomes `{"range": [min, max]}` (JSON has no tuples, and a
        list means a choice), other tuples (choices of strings, `input_shape`) become lists,
        and Keras optimizer, loss and metric objects become `{"keras_object": ...}` (Keras'
        own serialization). `from_config` reads it back.

        Example:
            >>> import json, keras_structopt as kso
            >>> hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=(1, 3))
            >>> config = json.loads(json.dumps(hypermodel.get_config()))
            >>> config["num_layers"], config["units"], config["connection"]
            ({'range': [1, 3]}, {'range': [16, 256]}, ['plain', 'residual', 'dense'])
            >>> kso.DenseHyperModel.from_config(config).num_layers
            (1, 3)
        """
        return {name: _encode(name, getattr(self, name)) for name in self._config_names()}

    @classmethod
    def from_config(cls, config):
        """Builds the HyperModel from `get_config()` output (also after a JSON round trip)."""
        return cls(**{name: _decode(name, value) for name, value in dict(config).items()})

    def _config_names(self):
        import inspect

        return [
            name
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
        ]


def record_curves(fit_kwargs: dict) -> None:
    """Inside a Keras Tuner tuner, adds a `CurveRecorder` for the trial's folder to `fit`'s callbacks.

    Keras Tuner keeps only each trial's best epoch; the recorder keeps every one, where the
    search helpers read them. A tuner of keras-structopt's adds its own recorder (fold by fold).
    """
    callbacks = list(fit_kwargs.get("callbacks") or [])
    folder = checkpoint_directory(callbacks)
    if folder is None or any(isinstance(c, CurveRecorder) for c in callbacks):
        return
    validation = fit_kwargs.get("validation_data")
    first = validation[0] if isinstance(validation, (tuple, list)) and validation else None
    size = None
    if first is not None:
        size = len(next(iter(first.values()))) if isinstance(first, dict) else len(first)
    fit_kwargs["callbacks"] = [*callbacks, CurveRecorder(folder, validation_size=size)]


_KERAS_OBJECTS = (keras.optimizers.Optimizer, keras.losses.Loss, keras.metrics.Metric)


def _encode(name, value):
    """One constructor argument in JSON-safe form (see `StructuralHyperModel.get_config`)."""
    if isinstance(value, tuple):
        numbers = len(value) == 2 and all(_checks.is_number(v) and not isinstance(v, bool) for v in value)
        if numbers and name != "input_shape":
            return {"range": [_plain(v) for v in value]}
        return [_encode(None, v) for v in value]
    if isinstance(value, list):
        return [_encode(None, v) for v in value]
    if isinstance(value, _KERAS_OBJECTS):
        return {"keras_object": keras.saving.serialize_keras_object(value)}
    return _plain(value)


def _decode(name, value):
    """The inverse of `_encode`."""
    if isinstance(value, dict) and set(value) == {"range"} and isinstance(value["range"], list):
        return tuple(value["range"])
    if isinstance(value, dict) and set(value) == {"keras_object"}:
        return keras.saving.deserialize_keras_object(value["keras_object"])
    if name == "input_shape" and isinstance(value, list):
        return tuple(value)
    if isinstance(value, list):
        return [_decode(None, v) for v in value]
    return value


def trial_seed(seed: int, values: dict) -> int:
    """A per-trial seed derived from the user's seed and the trial's values.

    Example:
        >>> trial_seed(0, {"units": 32}) == trial_seed(0, {"units": 32})
        True
    """
    text = json.dumps({k: _plain(v) for k, v in sorted(values.items())}, sort_keys=True, default=str)
    return zlib.crc32(f"{seed}:{text}".encode()) % (2**31 - 1)


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes, where the system says."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_memory(spec: Architecture, hp=None) -> None:
    """Raises a `ConfigurationError` when training `spec` cannot fit in this machine's memory: its
    float32 weights, gradients and two optimizer slots (16 bytes a parameter) above the physical memory.

    Example:
        >>> from keras_structopt.space import Architecture, Block
        >>> check_fits_memory(Architecture("dense", (64,), [Block("dense", 32)]))  # fits
        >>> try:
        ...     check_fits_memory(Architecture("dense", (64,), [Block("dense", 10**9)]))
        ... except Exception as error:
        ...     print(str(error).split(" (")[0])
        Expected a network whose training fits in this machine's memory
    """
    total = _memory_bytes()
    params = spec.count_params()
    if total is None or params * 16 <= total:
        return
    chosen = "" if hp is None else f" (hyperparameters {dict(hp.values)})"
    raise _checks.error(
        f"Expected a network whose training fits in this machine's memory ({total / 2**30:.1f} GiB). Received: a "
        f"network of {params:,} parameters{chosen}, about {params * 16 / 2**30:,.0f} GiB for its float32 weights, "
        "gradients and optimizer slots; lower the widths (units, filters) or their ranges."
    )


def check_data(shape, task, outputs, x, y, x_name, y_name, loss=None) -> None:
    """Raises a `ConfigurationError` if numpy data does not fit the space (the labels, for the task and
    `loss`: a loss of the user's own that Keras does not name is trusted with any labels)."""
    if isinstance(x, np.ndarray) and len(x) == 0:
        raise _checks.error(f"Expected {x_name} to hold at least one example. Received: {x_name}.shape={x.shape}.")
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and len(x) != len(y):
        raise _checks.error(
            f"Expected as many labels as examples. Received: {x_name} with {len(x)} examples and {y_name} with "
            f"{len(y)}."
        )
    for name, values in ((x_name, x), (y_name, y if task == "regression" else None)):
        if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.floating):
            bad = ~np.isfinite(values)
            if bad.any():
                raise _checks.error(
                    f"Expected {name} to hold finite numbers. Received: {int(bad.sum())} NaN or inf values, the first "
                    f"at index {tuple(int(i) for i in np.argwhere(bad)[0])}."
                )
    if isinstance(x, np.ndarray) and tuple(x.shape[1:]) != tuple(shape):
        raise _checks.error(
            f"Expected {x_name} of shape (batch, {', '.join(map(str, shape))}) to match "
            f"input_shape={tuple(shape)}. Received: {x_name}.shape={x.shape}."
        )
    if y is None or is_dataset(y):
        return
    if loss is None:  # the task's own loss: class ids, 0/1, or targets shaped as the outputs
        check_labels(y, task=task, outputs=outputs, name=y_name)
        return
    known = task_of_loss(loss)
    if known is not None:  # a loss Keras has: the labels it takes
        check_labels(y, task=task, outputs=outputs, name=y_name, one_hot=known[1])
