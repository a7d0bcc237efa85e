"""Sparsity-preserving weight clustering of a tf_keras model with TFMOT, layer by layer."""

from __future__ import annotations

import numpy as np

from keras_structopt.compress._tfmot import tfmot
from keras_structopt.compress.prune import KERNEL_NAMES, kernels, wrap_fine_tune_strip


def _registry():
    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    return ClusteringRegistry


_CLUSTERABLE_POSITIONS = None


def _clusterable_position_embedding(layer):
    """A copy of a tf_keras PositionEmbedding that TFMOT can cluster.

    Position tables are clustered but not pruned: every position keeps a vector.
    """
    global _CLUSTERABLE_POSITIONS
    if _CLUSTERABLE_POSITIONS is None:

        class ClusterablePositionEmbedding(type(layer), tfmot().clustering.keras.ClusterableLayer):
            def get_clusterable_weights(self):
                return [("embeddings", self.embeddings)]

        _CLUSTERABLE_POSITIONS = ClusterablePositionEmbedding
    copy = _CLUSTERABLE_POSITIONS.from_config(layer.get_config())
    copy.build(layer.input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def _base_name(weight) -> str:
    return weight.name.split("/")[-1].split(":")[0]


def layer_clusters(layer, clusters: int) -> int:
    """How many clusters a layer's kernels get, so each holds at most `clusters` values.

    Zeros left by pruning stay zeros and count as one of the values. A kernel with
    fewer non-zero weights than clusters would crash k-means++ initialisation, so
    the count is capped by the smallest kernel's non-zero weights.
    """
    counts = []
    has_zeros = False
    for weight in layer.weights:
        if _base_name(weight) in KERNEL_NAMES:
            values = np.asarray(weight.numpy())
            nonzero = int(np.count_nonzero(values))
            has_zeros = has_zeros or nonzero < values.size
            counts.append(len(np.unique(values[values != 0])))
    if not counts:
        return 0
    return min(clusters - 1 if has_zeros else clusters, min(counts))


def cluster(model, train, *, clusters: int, epochs: int, batch_size: int, fine_tuning, treatments,
            validation=None, verbose=0):
    """Clusters every kernel to at most `clusters` distinct values, keeping its zeros.

    It consumes `model` (a disposable tf_keras copy) and returns a new, stripped
    tf_keras model; it records in `treatments` which layers were clustered, to how
    many values, or why not.
    """
    api = tfmot().clustering.keras
    registry = _registry()

    def wrap(path, layer):
        treatment = treatments.get(path)
        count = layer_clusters(layer, clusters) if layer.weights else 0
        if treatment is None:
            return layer  # no weights
        if count >= 2 and type(layer).__name__ == "PositionEmbedding":
            layer = _clusterable_position_embedding(layer)
        elif count < 2:
            has_kernel = any(_base_name(w) in KERNEL_NAMES for w in layer.weights)
            treatment.notes.append(
                "fewer than 2 distinct non-zero kernel values: not clustered" if has_kernel else "no kernel to cluster"
            )
            return layer  # shared with the disposable copy, weights and all
        elif not registry.supports(layer):
            treatment.notes.append(f"TFMOT cannot cluster {type(layer).__name__} layers")
            return layer
        treatment.clustered, treatment.clusters = True, count
        return api.cluster_weights(
            layer,
            number_of_clusters=count,
            cluster_centroids_init=api.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=True,
        )

    return wrap_fine_tune_strip(
        model, wrap, api.strip_clustering, train, epochs=epochs, batch_size=batch_size,
        fine_tuning=fine_tuning, validation=validation, verbose=verbose,
    )


def max_unique_kernel_values(model) -> int:
    """The largest number of distinct values in any one kernel of the model."""
    return max((len(np.unique(values)) for _, values in kernels(model)), default=0)
