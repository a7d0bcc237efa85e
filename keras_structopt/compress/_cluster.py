"""Sparsity-preserving weight clustering of a tf_keras model with TFMOT, layer by layer."""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks
from keras_structopt.bridge._registry import _with_tfmot_interfaces
from keras_structopt.bridge._tfmot import tfmot
from keras_structopt.compress._prune import KERNEL_NAMES, kernels, wrap_fine_tune_strip
from keras_structopt.compress._stages import Cluster


def _registry():
    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    return ClusteringRegistry


def _clusterable_position_embedding(layer):
    """A copy of a tf_keras PositionEmbedding that TFMOT can cluster (its table, as a registered layer's
    weights are made clusterable).

    Position tables are clustered but not pruned: every position keeps a vector.
    """
    copy = _with_tfmot_interfaces(type(layer), (), ("embeddings",)).from_config(layer.get_config())
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy


# TFMOT refuses fewer than 3 clusters in a layer.
_FEWEST = 3


def _enough_weights(layer, count: int, per_channel: bool) -> bool:
    """TFMOT's own test of whether it will cluster a Conv2D (it skips the layer silently otherwise)."""
    import warnings

    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras.cluster import (
        layer_has_enough_weights_to_cluster,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(layer_has_enough_weights_to_cluster(layer, count, per_channel))


def _base_name(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def layer_clusters(layer, clusters: int, per_channel: bool = False) -> int:
    """How many clusters a layer's kernels get, so each holds at most `clusters` values.

    Zeros left by pruning stay zeros and count as one of the values. A kernel (or,
    per channel, an output channel) with fewer non-zero weights than clusters would
    crash k-means++ initialisation, so the count is capped by the smallest one.
    """
    counts = []
    has_zeros = False
    for weight in layer.weights:
        if _base_name(weight) in KERNEL_NAMES:
            values = np.asarray(weight.numpy())
            has_zeros = has_zeros or int(np.count_nonzero(values)) < values.size
            parts = [values[..., i] for i in range(values.shape[-1])] if per_channel else [values]
            counts += [len(np.unique(part[part != 0])) for part in parts]
    if not counts:
        return 0
    return min(clusters - 1 if has_zeros else clusters, min(counts))


def cluster(model, train, stage: Cluster, *, epochs: int, batch_size: int, fine_tuning, treatments,
            validation=None, verbose=0, run_eagerly=False):
    """Clusters every kernel to at most `stage.clusters` distinct values, keeping its zeros.

    With `stage.per_channel`, each output channel of a Conv2D kernel gets its own
    values (TFMOT's `cluster_per_channel`); `stage.per_layer` gives layers their own
    counts. It consumes `model` (a disposable tf_keras copy)
    and returns a new, stripped tf_keras model; it records in `treatments` which
    layers were clustered, to how many values, or why not.
    """

    api = tfmot().clustering.keras
    registry = _registry()
    clusters, per_channel, counts_by_name = stage.clusters, stage.per_channel, dict(stage.per_layer)
    unknown = sorted(set(counts_by_name) - set(treatments) - {path.rsplit("/", 1)[-1] for path in treatments})
    if unknown:
        raise _checks.error(
            f"Expected layer names of the model in Cluster's per_layer. Received: {unknown}; the layers with "
            f"weights are {sorted(treatments)}."
        )

    frozen = []

    def leave(layer, treatment, note):
        treatment.notes.append(note)
        if treatment.pruned and layer.trainable:
            # Not clustered, but pruned: frozen while the others fine-tune, so its zeros stay zeros.
            layer.trainable = False
            frozen.append(layer)
        return layer  # shared with the disposable copy, weights and all

    def wrap(path, layer):
        treatment = treatments.get(path)
        if treatment is None:
            return layer  # no weights
        wanted = int(counts_by_name.get(path, counts_by_name.get(path.rsplit("/", 1)[-1], clusters or 0)))
        channelwise = per_channel and type(layer).__name__ == "Conv2D"
        count = layer_clusters(layer, wanted, channelwise)
        if channelwise and (count < _FEWEST or not _enough_weights(layer, count, True)):
            # Too few weights per channel: TFMOT would skip the layer (and drop its zeros); cluster it as one.
            channelwise, count = False, layer_clusters(layer, wanted)
        if count >= _FEWEST and type(layer).__name__ == "PositionEmbedding":
            layer = _clusterable_position_embedding(layer)
        elif count < _FEWEST:
            has_kernel = any(_base_name(w) in KERNEL_NAMES for w in layer.weights)
            return leave(layer, treatment, f"fewer than {_FEWEST} clusters possible (TFMOT's least): not clustered"
                         if has_kernel else "no kernel to cluster")
        elif not (registry.supports(layer) or isinstance(layer, api.ClusterableLayer)):  # a registered layer's
            return leave(layer, treatment, f"TFMOT cannot cluster {type(layer).__name__} layers")
        elif type(layer).__name__ == "Conv2D" and not _enough_weights(layer, count, False):
            return leave(layer, treatment, f"too few weights for {count} clusters: not clustered")
        treatment.clustered, treatment.clusters = True, count
        if channelwise:
            treatment.notes.append(f"clustered per output channel: {count} values in each")
        return api.cluster_weights(
            layer,
            number_of_clusters=count,
            cluster_centroids_init=api.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=True,
            cluster_per_channel=channelwise,
        )

    result = wrap_fine_tune_strip(
        model, wrap, api.strip_clustering, train, epochs=epochs, batch_size=batch_size,
        fine_tuning=fine_tuning, validation=validation, verbose=verbose, run_eagerly=run_eagerly,
    )
    for layer in frozen:
        layer.trainable = True
    return result


def max_unique_kernel_values(model, per_channel_layers=()) -> int:
    """The largest number of distinct values in any one kernel of the model.

    For the layers in `per_channel_layers` (clustered per output channel) it counts
    the values of each output channel of the kernel.
    """
    found = 0
    for name, values in kernels(model):
        layer = name.rsplit("/", 1)[0]
        if layer in per_channel_layers and values.ndim > 1:
            found = max([found] + [len(np.unique(values[..., i])) for i in range(values.shape[-1])])
        else:
            found = max(found, len(np.unique(values)))
    return found
