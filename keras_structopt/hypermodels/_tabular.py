"""`TabularHyperModel`: named numeric and categorical columns, and the network over them."""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import (
    BoolSpace,
    Features,
    FloatSpace,
    IntSpace,
    Loss,
    Metrics,
    OptimizerSpace,
    StrSpace,
    Task,
)
from keras_structopt.data._datasets import is_dataset
from keras_structopt.data._tabular import TabularSchema, embedding_units_range, is_table
from keras_structopt.hypermodels._base import (
    StructuralHyperModel,
    check_data,
    fit_model,
    fixed_options,
    record_curves,
)
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block, declare_when
from keras_structopt.space import Architecture, Block

CONNECTIONS = ("plain", "residual", "dense", "cross")


class TabularHyperModel(StructuralHyperModel):
    """A Keras Tuner HyperModel over networks for tables: embeddings, trunk, connections.

    The model takes one named input per feature — raw values: numbers, and strings or
    integer codes for categories — and preprocesses inside itself: numeric columns
    are normalised with the training data's mean and variance (a `Normalization`
    layer), categorical ones are looked up in their vocabulary (`StringLookup` or
    `IntegerLookup`; index 0 is any value outside it) and embedded, each with its own
    searched width (`"<feature>/embedding_units"`). The concatenation feeds a dense
    trunk whose depth and widths are searched as in `DenseHyperModel`, connected
    `"plain"`, `"residual"`, `"dense"`, or `"cross"`: `cross_layers` cross layers
    (DCN-style, feature interactions of growing order) beside a plain trunk. So the
    exported SavedModel's `serving_default` takes the raw columns by name.

    Args:
        features: The training table itself (a pandas DataFrame or a dict of columns),
            whose schema is read from it (`TabularSchema.from_data`: strings and booleans
            are categorical, numbers numeric); or a `keras_structopt.data.TabularSchema`
            (`TabularSchema.from_data(x_train, categorical=["zip_code"])` to say which
            integer columns are codes) or its `to_list()`. The HyperModel keeps the schema
            (`features` is its JSON-safe list).
        outputs: Number of classes (multiclass), 1 (binary) or targets (regression).
        task: `"multiclass"`, `"binary"` or `"regression"`.
        num_layers: Number of trunk layers (>= 1).
        units: Width of each trunk layer; sampled per layer.
        connection: `"plain"`, `"residual"`, `"dense"` and/or `"cross"`.
        cross_layers: Number of cross layers when the connection is `"cross"` (a
            hyperparameter active only then).
        embedding_units: Every categorical feature's embedding width (fixed, choice
            or range); `None` searches each feature over `embedding_units_range` of
            its cardinality (about `1.6 * cardinality ** 0.56` at most).
        activation, dropout, batch_norm, batch_norm_momentum, head_bias: As in `DenseHyperModel`.
        learning_rate, optimizer, loss, metrics, width_multiple, seed, name, tunable:
            See `StructuralHyperModel`.

    Training data is a pandas DataFrame, a dict of columns or a 2-D array (`x`, and the
    first item of `validation_data`), converted by the schema (`TabularSchema.inputs`);
    or a batched `tf.data.Dataset` of `(dict of (batch, 1) columns, label)`, such as
    `tf.data.Dataset.from_tensor_slices((schema.inputs(x), y)).batch(32)`.

    Example:
        >>> import keras_tuner, numpy as np, keras_structopt as kso
        >>> x = {"age": np.array([25.0, 40.0, 61.0, 33.0]),
        ...      "city": np.array(["Oslo", "Rome", "Oslo", "Lima"])}
        >>> y = np.array([0, 1, 1, 0])
        >>> hypermodel = kso.TabularHyperModel(x, task="binary", seed=0)  # its schema, read from the table
        >>> hypermodel.schema.names
        ['age', 'city']
        >>> tuner = keras_tuner.RandomSearch(
        ...     hypermodel, objective="loss", max_trials=1, seed=1,
        ...     directory=getfixture("tmp_path"), project_name="doc")
        >>> tuner.search(x, y, epochs=1, verbose=0)
        >>> sorted(tuner.get_best_models(1)[0].input)
        ['age', 'city']
    """

    family = "tabular"

    def __init__(
        self,
        features: Features,
        outputs: int | None = None,
        *,
        task: Task = "multiclass",
        num_layers: IntSpace = (1, 3),
        units: IntSpace = (16, 256),
        connection: StrSpace = CONNECTIONS,
        cross_layers: IntSpace = (1, 3),
        embedding_units: IntSpace | None = None,
        activation: StrSpace = "relu",
        dropout: FloatSpace = [0.0, 0.2],
        batch_norm: BoolSpace = False,
        batch_norm_momentum: float = 0.9,
        head_bias: float | None = None,
        learning_rate: FloatSpace | None = (1e-3, 1e-2),
        optimizer: OptimizerSpace = "adam",
        loss: Loss = None,
        metrics: Metrics = None,
        width_multiple: int = 1,
        seed: int | None = None,
        name: str | None = None,
        tunable: bool = True,
    ):
        # A table itself (a DataFrame or a dict of columns): its schema, read from it (strings and
        # booleans categorical, numbers numeric; TabularSchema.from_data(..., categorical=[...]) for codes).
        self.schema = TabularSchema.from_data(features) if is_table(features) else TabularSchema.from_list(features)
        super().__init__(
            (len(self.schema.features),),
            outputs,
            task=task,
            learning_rate=learning_rate,
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            width_multiple=width_multiple,
            seed=seed,
            name=name,
            tunable=tunable,
        )
        self.features = self.schema.to_list()
        self.num_layers = num_layers
        self.units = units
        self.connection = connection
        self.cross_layers = cross_layers
        self.embedding_units = embedding_units
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.head_bias = head_bias
        self._fixed = fixed_options(head_bias=head_bias)
        self._num_layers = Tunable.parse("num_layers", num_layers, kind=int, low=1)
        self._units = self.width("units", units)
        self._connection = self.option("connection", connection, CONNECTIONS)
        self._cross_layers = Tunable.parse("cross_layers", cross_layers, kind=int, low=1)
        self._embedding_units = {}
        for feature in self.schema.features:
            if feature["kind"] == "numeric":
                continue
            given = embedding_units
            if embedding_units is None:
                given = embedding_units_range(len(feature["vocabulary"]) + 1)
            self._embedding_units[feature["name"]] = Tunable.parse("embedding_units", given, kind=int, low=1, log=True)
        self._activation = self.option("activation", activation, ("relu", "gelu", "swish", "tanh", "elu"))
        self._dropout = self.rate("dropout", dropout)
        self._batch_norm = self.option("batch_norm", batch_norm, bool)
        self._momentum = self.rate("batch_norm_momentum", batch_norm_momentum)

    def _declare(self, hp) -> Architecture:
        num_layers = self._num_layers.declare(hp)
        widths = declare_per_block(hp, self._units, self._num_layers, "block_{}/units")
        connection = self._connection.declare(hp)
        cross_layers = declare_when(hp, self._cross_layers, self._connection, connection, "cross")
        embedding_units = [tunable.declare(hp, f"{name}/embedding_units")
                           for name, tunable in self._embedding_units.items()]
        return Architecture(
            family="tabular",
            input_shape=self._shape,
            blocks=tuple(Block("dense", units) for units in widths[:num_layers]),
            connection=connection,
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "features": self.schema.features,
                "embedding_units": tuple(embedding_units),
                "cross_layers": cross_layers or 1,  # unused unless "cross"
                "activation": self._activation.declare(hp),
                "dropout": self._dropout.declare(hp),
                "batch_norm": self._batch_norm.declare(hp),
                "batch_norm_momentum": self._momentum.declare(hp),
                **self._fixed,
            }.items()),
        )

    # -- data ---------------------------------------------------------------------

    def inputs(self, x, argument: str = "x"):
        """The model inputs for a table (DataFrame, dict of columns or 2-D array); datasets as they are."""
        return self.schema.inputs(x, argument) if _is_tabular(x) else x

    def check_fit_data(self, *args, **kwargs) -> None:
        """Raises a `ConfigurationError` if the data does not fit the schema and task.

        A table must have every feature's column (numbers finite, integer codes
        integers) and as many labels as rows; labels are checked against the task.

        Example:
            >>> import numpy as np, keras_structopt as kso
            >>> schema = kso.data.TabularSchema.from_data({"age": [20.0, 30.0]})
            >>> try:
            ...     kso.TabularHyperModel(schema, outputs=2).check_fit_data({"height": [1.0]}, np.array([0]))
            ... except kso.ConfigurationError as error:
            ...     print(str(error).split(" Received")[0])
            Expected x to have the columns ['age'].
        """
        x = kwargs.get("x", args[0] if args else None)
        y = kwargs.get("y", args[1] if len(args) > 1 else None)
        validation = kwargs.get("validation_data")
        self._check_table(x, y, "x", "y")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            self._check_table(validation[0], validation[1], "validation_data[0]", "validation_data[1]")

    def _check_table(self, x, y, x_name, y_name) -> None:
        if is_dataset(x):
            return
        if not _is_tabular(x):
            raise _checks.error(
                f"Expected {x_name} to be a pandas DataFrame, a dict of columns, a 2-D array or a tf.data.Dataset "
                f"for a TabularHyperModel. Received: {x_name} of type {type(x).__name__}"
                + (f" with shape {x.shape}." if hasattr(x, "shape") else ".")
            )
        inputs = self.schema.inputs(x, x_name)
        rows = len(next(iter(inputs.values())))
        if y is not None:
            labels = np.asarray(y)
            if len(labels) != rows:
                raise _checks.error(
                    f"Expected as many labels as examples. Received: {x_name} with {rows} rows and {y_name} with "
                    f"{len(labels)}."
                )
            check_data((rows,), self.task, self._outputs, None, labels, x_name, y_name, self.loss)

    def fit(self, hp, model, *args, **kwargs):
        """Converts tables to the model's named inputs, then trains as Keras Tuner does."""
        self.check_fit_data(*args, **kwargs)
        record_curves(kwargs)
        arguments = list(args)
        if arguments:
            arguments[0] = self.inputs(arguments[0])
        if "x" in kwargs:
            kwargs["x"] = self.inputs(kwargs["x"])
        for position, value in enumerate(arguments[1:2], start=1):
            if value is not None:
                arguments[position] = _labels(value)
        if kwargs.get("y") is not None:
            kwargs["y"] = _labels(kwargs["y"])
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            kwargs["validation_data"] = (self.inputs(validation[0], "validation_data[0]"),
                                         _labels(validation[1]), *validation[2:])
        return fit_model(model, arguments, kwargs)


def _is_tabular(x) -> bool:
    return is_table(x) or (isinstance(x, np.ndarray) and x.ndim == 2)


def _labels(y):
    return y if is_dataset(y) else np.asarray(y)
