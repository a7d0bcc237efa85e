"""The two towers of a dot-product recommender, as models of their own (for retrieval)."""

from __future__ import annotations

from keras_structopt import _checks
from keras_structopt._types import Model


def towers(model: Model) -> tuple[Model, Model]:
    """Returns `(user_tower, item_tower)` of a `"dot"` recommender (Keras 3 or tf_keras).

    Each tower is a model over its side's raw columns (the same named inputs, lookups
    and embeddings as the full model; its layers are the full model's, shared, not
    copied) whose output is that side's `tower_units`-wide vector. The full model's
    score is their dot product (the logit of a `"binary"` model), so item vectors can
    be computed once and indexed for nearest-neighbour retrieval, and user vectors at
    request time. Export each with `export_saved_model`.

    Example:
        >>> import keras_tuner, numpy as np, keras_structopt as kso
        >>> x = {"user_id": np.array(["u1", "u2"]), "movie_id": np.array(["m1", "m2"])}
        >>> schema = kso.data.TabularSchema.from_data(x)
        >>> model = kso.RecommenderHyperModel(schema, ["user_id"], ["movie_id"], interaction="dot",
        ...                                   tower_units=8).build(keras_tuner.HyperParameters())
        >>> users, items = towers(model)
        >>> sorted(users.input), items.output.shape[-1]
        (['user_id'], 8)
    """
    from keras_structopt.bridge import architecture_of

    spec = architecture_of(model)
    if spec is None or spec.family != "recommender" or spec.connection != "dot":
        found = "no Architecture" if spec is None else f"family={spec.family!r}, connection={spec.connection!r}"
        raise _checks.error(
            "Expected a recommender with interaction='dot' (two towers). Received: a model with " + found + "."
        )
    keras_module = _keras_of(model)
    inputs = model.input
    result = []
    for side in ("user", "item"):
        names = spec.option(f"{side}_features")
        result.append(keras_module.Model({name: inputs[name] for name in names},
                                         model.get_layer(f"{side}_projection").output, name=f"{side}_tower"))
    return result[0], result[1]


def _keras_of(model):
    import keras

    if isinstance(model, keras.Model):
        return keras
    import tf_keras

    return tf_keras
