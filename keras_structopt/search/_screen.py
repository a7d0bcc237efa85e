"""Zero-cost pre-screening: rank untrained candidates by a published proxy, train only the best.

With `prescreen=k` a random (or Hyperband) search draws `k` admissible candidates for each
new trial, scores each untrained network on one batch of training data with NASWOT's score
(Mellor et al., "Neural Architecture Search without Training", ICML 2021), and trains only
the best-scoring one: a fraction `1/k` of what it drew. The score is `log |det K|`, where
`K[i, j]` counts the rectified units on which examples `i` and `j` agree (both active or
both inactive), plus the identity: a network whose units split the batch into more distinct activation
patterns scores higher. Scoring costs a build and one forward pass per candidate.

Each screened trial's note records the scores of what was drawn and which was trained.
Whether it helps is measured in `bench/search_cost.py` (`--parts prescreen`) and said in
docs/benchmarks.md: a proxy that does not rank a space's networks well makes the search worse, not better.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt.search._oracle import SCREEN_NOTE, values_with

__all__ = ["SCREEN_NOTE", "Screen", "check_prescreen", "naswot_score", "screening_batch"]

RECTIFIERS = ("relu", "relu6", "elu", "gelu", "swish", "silu")  # activations whose sign makes a pattern
BATCH = 64  # examples in the scoring batch (the paper's 128 at most; K is BATCH x BATCH)


def check_prescreen(prescreen: Any, oracle) -> int | None:
    """`prescreen` checked: None, or the candidates per trial (an int >= 2), for an oracle that draws at random."""
    if prescreen is None:
        return None
    if not _checks.is_int(prescreen) or prescreen < 2:
        raise _checks.error(
            f"Expected prescreen to be None or an int >= 2 (candidates drawn per trial, the best trained). "
            f"Received: prescreen={prescreen!r}."
        )
    import keras_tuner

    if not isinstance(oracle, (keras_tuner.oracles.RandomSearchOracle, keras_tuner.oracles.HyperbandOracle)):
        raise _checks.error(
            "Expected a random search or Hyperband for prescreen= (they draw candidates at random; other strategies "
            f"propose from a model of their own, which a screen would override). Received: {type(oracle).__name__}."
        )
    return int(prescreen)


def screening_batch(fit_args: tuple, fit_kwargs: dict):
    """The first `BATCH` training examples, as a NumPy array (a search on arrays only)."""
    x = fit_kwargs.get("x", fit_args[0] if fit_args else None)
    if x is None or isinstance(x, (dict, list, tuple)) or not hasattr(x, "shape"):
        raise _checks.error(
            "Expected x to be a NumPy array for prescreen= (the candidates are scored on its first examples). "
            f"Received: {type(x).__name__}."
        )
    return np.asarray(x[:BATCH])


def _activations(model) -> list:
    """The outputs of the model's rectifying layers (ReLU-like activations), the output layer aside."""
    import keras

    outputs = {id(t) for t in model.outputs}
    found = []
    for layer in model.layers:
        activation = getattr(layer, "activation", None)
        rectifies = isinstance(layer, keras.layers.ReLU) or getattr(activation, "__name__", None) in RECTIFIERS
        if rectifies and id(layer.output) not in outputs:
            found.append(layer.output)
    return found


def naswot_score(model, x) -> float:
    """NASWOT's score of an untrained Keras model on a batch `x`: `log |det K|` of its activation-pattern kernel.

    Batch normalisation uses the batch's statistics (the network as it is at initialisation).
    The identity is added to `K` (one more unit on which every example agrees with itself
    only), so that a network with fewer distinct patterns than examples scores finitely
    rather than `-inf`; next to the hundreds of units of a real network it changes nothing.
    A model without rectifying layers scores `-inf`.

    Example:
        >>> import numpy as np, keras_tuner, keras_structopt as kso
        >>> x = np.random.default_rng(0).normal(size=(32, 16)).astype("float32")
        >>> narrow, wide = (kso.DenseHyperModel(input_shape=(16,), outputs=3, num_layers=1, units=u, seed=0).build(
        ...     keras_tuner.HyperParameters()) for u in (2, 64))
        >>> naswot_score(wide, x) > naswot_score(narrow, x)
        True
    """
    import keras

    layers = _activations(model)
    if not layers:
        return float("-inf")
    single = len(model.inputs) == 1  # called with one array: the probe takes one input, not a list of one
    probe = keras.Model(model.inputs[0] if single else model.inputs, layers)
    outputs = probe(np.asarray(x, "float32"), training=True)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    codes = np.concatenate([np.reshape(np.asarray(o) > 0, (len(x), -1)) for o in outputs], axis=1)
    codes = codes.astype("float64")
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T + np.eye(len(codes))
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


class Screen:
    """A search's screen: `draws` candidates per new trial, scored untrained on the batch `x`.

    Example:
        >>> import numpy as np, keras_structopt as kso
        >>> screen = Screen(3, kso.DenseHyperModel(input_shape=(4,), outputs=3, units=[2, 16], seed=0),
        ...                 np.ones((8, 4), "float32"))
        >>> len(screen.scores([{"units_0": 2}, {"units_0": 16}]))
        2
    """

    def __init__(self, draws: int, hypermodel, x):
        self.draws, self.hypermodel, self.x = int(draws), hypermodel, x

    def scores(self, candidates: list[dict]) -> list[float]:
        found = []
        for values in candidates:
            model = self.hypermodel.build(values_with(self.hypermodel, values))
            found.append(naswot_score(model, self.x))
        return found
