"""`RecommenderHyperModel`: user and item features, and how they interact, as a search space."""

from __future__ import annotations

from collections.abc import Sequence

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
from keras_structopt.hypermodels._tabular import TabularHyperModel
from keras_structopt.hypermodels._tunable import declare_per_block, declare_when
from keras_structopt.space import Architecture, Block

INTERACTIONS = ("dot", "mlp", "cross")


class RecommenderHyperModel(TabularHyperModel):
    """A Keras Tuner HyperModel over recommenders: embeddings, towers and the interaction.

    User-side features (a user id, and optional side features such as age or
    occupation) and item-side features (an item id, genres, year, ...) are encoded as in
    `TabularHyperModel` — ids and categories looked up and embedded, each embedding's
    width a hyperparameter, numbers normalised — and the search chooses how they meet:

    * `"dot"`: two towers (`num_layers` dense layers each, then a projection to
      `tower_units`) and their dot product as the score — the logit for `"binary"`
      (implicit feedback: clicked / watched), the rating for `"regression"`. The towers
      serve retrieval on their own (`keras_structopt.export.towers`).
    * `"mlp"` (NCF-style): both sides concatenated into a dense trunk and a head.
    * `"cross"` (DCN-style): cross layers beside the trunk, then a head.

    Args:
        features: A `TabularSchema` of every column (ids are categorical columns).
        user_features: The columns on the user side (at least the user id).
        item_features: The columns on the item side (at least the item id).
        task: `"regression"` (ratings) or `"binary"` (implicit feedback).
        interaction: `"dot"`, `"mlp"` and/or `"cross"`.
        num_layers, units: Each tower's (or the trunk's) depth and widths.
        tower_units: The towers' output width (the retrieval vector), for `"dot"`.
        cross_layers: Cross layers, for `"cross"`.
        embedding_units: Every categorical column's embedding width; `None` searches
            each over `embedding_units_range` of its cardinality.
        activation, dropout, batch_norm, batch_norm_momentum, head_bias, learning_rate, optimizer,
            loss, metrics, width_multiple, seed, name, tunable: As in `TabularHyperModel`.

    Example:
        >>> import keras_tuner, numpy as np, keras_structopt as kso
        >>> x = {"user_id": np.array(["u1", "u2", "u1", "u3"]), "movie_id": np.array(["m1", "m1", "m2", "m3"])}
        >>> schema = kso.data.TabularSchema.from_data(x)
        >>> hypermodel = kso.RecommenderHyperModel(schema, user_features=["user_id"], item_features=["movie_id"],
        ...                                        task="binary", interaction="dot", seed=0)
        >>> spec = hypermodel.architecture()
        >>> spec.family, spec.connection, spec.option("user_features")
        ('recommender', 'dot', ('user_id',))
    """

    family = "recommender"

    def __init__(
        self,
        features: Features,
        user_features: Sequence[str],
        item_features: Sequence[str],
        outputs: int | None = None,
        *,
        task: Task = "regression",
        interaction: StrSpace = INTERACTIONS,
        num_layers: IntSpace = (1, 2),
        units: IntSpace = (16, 128),
        tower_units: IntSpace = (8, 64),
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
        if task == "multiclass":
            raise _checks.error(
                'Expected task="regression" (ratings) or "binary" (implicit feedback) for a recommender. '
                'Received: task="multiclass".'
            )
        super().__init__(
            features, 1 if outputs is None else outputs, task=task, num_layers=num_layers, units=units,
            connection="plain", cross_layers=cross_layers, embedding_units=embedding_units, activation=activation,
            dropout=dropout, batch_norm=batch_norm, batch_norm_momentum=batch_norm_momentum,
            head_bias=head_bias, learning_rate=learning_rate, optimizer=optimizer, loss=loss, metrics=metrics,
            width_multiple=width_multiple, seed=seed, name=name, tunable=tunable,
        )
        self.outputs = outputs
        names = self.schema.names
        for argument, value in (("user_features", user_features), ("item_features", item_features)):
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value or any(
                    v not in names for v in value):
                raise _checks.error(
                    f"Expected {argument} to be a non-empty list of the schema's columns {names}. "
                    f"Received: {argument}={value!r}."
                )
        self.user_features = list(user_features)
        self.item_features = list(item_features)
        self.interaction = interaction
        self.tower_units = tower_units
        self._interaction = self.option("interaction", interaction, INTERACTIONS)
        self._tower_units = self.width("tower_units", tower_units)
        # Architecture checks that the two sides split the columns, before any training.
        self.architecture()

    def _declare(self, hp) -> Architecture:
        num_layers = self._num_layers.declare(hp)
        widths = declare_per_block(hp, self._units, self._num_layers, "block_{}/units")
        interaction = self._interaction.declare(hp)
        tower_units = declare_when(hp, self._tower_units, self._interaction, interaction, "dot") or 1
        cross_layers = declare_when(hp, self._cross_layers, self._interaction, interaction, "cross") or 1
        embedding_units = [tunable.declare(hp, f"{name}/embedding_units")
                           for name, tunable in self._embedding_units.items()]
        return Architecture(
            family="recommender",
            input_shape=self._shape,
            blocks=tuple(Block("dense", units) for units in widths[:num_layers]),
            connection=interaction,
            task=self.task,
            outputs=self._outputs,
            options=tuple({
                "features": self.schema.features,
                "user_features": tuple(self.user_features),
                "item_features": tuple(self.item_features),
                "embedding_units": tuple(embedding_units),
                "tower_units": tower_units,
                "cross_layers": cross_layers,
                "activation": self._activation.declare(hp),
                "dropout": self._dropout.declare(hp),
                "batch_norm": self._batch_norm.declare(hp),
                "batch_norm_momentum": self._momentum.declare(hp),
                **self._fixed,
            }.items()),
        )
