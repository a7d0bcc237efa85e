"""What compression did to each layer, and the weights each stage acts on.

Every layer with weights gets one `LayerTreatment`: whether it was pruned (and to
what sparsity), whether it was clustered (and to how many values), and, when it was
left alone, why. Layers are named by their path (`tower/dense` inside a nested model).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_structopt.bridge._graph import iter_layers, weight_key


@dataclasses.dataclass
class LayerTreatment:
    """One layer's treatment by `compress`.

    Attributes:
        layer: The layer's path (`name`, or `outer/inner` in nested models).
        kind: The layer's class name.
        params: Its parameter count.
        pruned: Whether its prunable weights were pruned.
        pruned_weights: Those weights' names within the layer (`kernel`, ...).
        target: The sparsity it was pruned towards (None for m:n sparsity).
        sparsity: The fraction of zeros reached in them after stripping.
        clustered: Whether its weights were clustered.
        clusters: The number of clusters it got (zero counts as one value).
        notes: Why something was not done, or anything worth knowing.

    Example:
        >>> LayerTreatment("dense", "Dense", 650).to_dict()["pruned"]
        False
    """

    layer: str
    kind: str
    params: int
    pruned: bool = False
    pruned_weights: tuple[str, ...] = ()
    target: float | None = None
    sparsity: float | None = None
    clustered: bool = False
    clusters: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        result["pruned_weights"] = list(self.pruned_weights)
        return result


def layer_weights(layer) -> dict[str, np.ndarray]:
    """A layer's weights by their names within it."""
    return {weight_key(layer, v): np.asarray(v.numpy()) for v in layer.weights}


def zero_fraction(arrays) -> float:
    total = sum(a.size for a in arrays)
    return float(sum(int(np.count_nonzero(a == 0)) for a in arrays) / total) if total else 0.0


def pruned_arrays(model, treatments: dict[str, LayerTreatment]) -> list[np.ndarray]:
    """The current values of the weights the pruning plan acts on."""
    arrays = []
    for path, layer in iter_layers(model):
        treatment = treatments.get(path)
        if treatment is None or not treatment.pruned_weights:
            continue
        weights = layer_weights(layer)
        arrays += [weights[key] for key in treatment.pruned_weights if key in weights]
    return arrays
