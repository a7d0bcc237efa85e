"""Magnitude pruning of a tf_keras model with TFMOT, layer by layer."""

from __future__ import annotations

import math

import numpy as np

from keras_structopt.bridge import architecture_of, rerender
from keras_structopt.compress._tfmot import tfmot

# Weight names TFMOT prunes and clusters; the measurements read the same ones.
KERNEL_NAMES = ("kernel", "recurrent_kernel", "pointwise_kernel", "embeddings")


def fresh_model(model):
    """A disposable tf_keras copy of `model` (same spec, same weights).

    TFMOT's wrappers mutate the layer they wrap, so they only ever wrap layers of a
    copy like this one, never of a model the caller still holds.
    """
    import tf_keras

    return rerender(model, tf_keras)


_PRUNABLE_BIDIRECTIONAL = None


def _prunable_bidirectional_class():
    """A tf_keras Bidirectional that tells TFMOT which weights to prune."""
    global _PRUNABLE_BIDIRECTIONAL
    if _PRUNABLE_BIDIRECTIONAL is None:
        import tf_keras

        class PrunableBidirectional(
            tf_keras.layers.Bidirectional, tfmot().sparsity.keras.PrunableLayer
        ):
            def get_prunable_weights(self):
                return [
                    weight
                    for direction in (self.forward_layer, self.backward_layer)
                    for weight in (direction.cell.kernel, direction.cell.recurrent_kernel)
                ]

        _PRUNABLE_BIDIRECTIONAL = PrunableBidirectional
    return _PRUNABLE_BIDIRECTIONAL


def _is_prunable(layer) -> bool:
    """Whether the layer has kernels TFMOT can prune (Bidirectional via our subclass)."""
    import tf_keras

    if not layer.weights:
        return False
    if isinstance(layer, tf_keras.layers.Bidirectional):
        return True
    tfmot()  # import the toolkit the careful way before its internals
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (
        PruneRegistry,
    )

    if not PruneRegistry.supports(layer):
        return False
    if PruneRegistry._is_rnn_layer(layer) or PruneRegistry._is_mha_layer(layer):
        return True
    return bool(PruneRegistry._weight_names(layer))


def pruning_schedule(sparsity: float, steps: int):
    """A polynomial-decay schedule that reaches `sparsity` within `steps` training steps.

    TFMOT's default `frequency=100` can leave a short fine-tune at 0 % sparsity; here
    the frequency and end step come from the real step count, and the last pruning
    step lands before training ends.
    """
    events = max(1, min(8, steps - 1))
    frequency = max(1, int(0.75 * steps) // events)
    return tfmot().sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=float(sparsity),
        begin_step=0,
        end_step=frequency * events,
        frequency=frequency,
    )


def prune(model, train, *, sparsity: float, epochs: int, batch_size: int, compile_fn, validation=None, verbose=0):
    """Prunes every prunable kernel of a tf_keras model to `sparsity`, fine-tuning it.

    Returns a new, stripped tf_keras model (the input is not modified).
    """
    import tf_keras

    sparsity_api = tfmot().sparsity.keras
    steps = math.ceil(len(train[0]) / batch_size) * epochs
    schedule = pruning_schedule(sparsity, steps)

    def wrap(layer):
        if not _is_prunable(layer):
            return layer  # shared with the disposable copy, weights and all
        if isinstance(layer, tf_keras.layers.Bidirectional):
            prunable = _prunable_bidirectional_class().from_config(layer.get_config())
            prunable.build(layer.input_shape)
            prunable.set_weights(layer.get_weights())
            layer = prunable
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    return wrap_fine_tune_strip(
        model, wrap, sparsity_api.strip_pruning, train, epochs=epochs, batch_size=batch_size,
        compile_fn=compile_fn, validation=validation, verbose=verbose,
        callbacks=[sparsity_api.UpdatePruningStep()],
    )


def wrap_fine_tune_strip(
    model, wrap, strip, train, *, epochs, batch_size, compile_fn, validation, verbose, callbacks=()
):
    """The shape of every TFMOT stage: wrap layers of a disposable copy, fine-tune, strip.

    Returns a clean tf_keras rendering of the model's spec with the stripped weights.
    """
    import tf_keras

    wrapped = tf_keras.models.clone_model(fresh_model(model), clone_function=wrap)
    compile_fn(wrapped)
    if epochs:
        wrapped.fit(
            train[0],
            train[1],
            batch_size=batch_size,
            epochs=epochs,
            validation_data=validation,
            callbacks=list(callbacks),
            verbose=verbose,
        )
    return rerender(strip(wrapped), tf_keras, architecture=architecture_of(model))


def kernels(model) -> list[tuple[str, np.ndarray]]:
    """The kernels pruning and clustering act on, as `(layer/weight name, values)`."""
    found = []
    for layer in model.layers:
        for weight in layer.weights:
            base = weight.name.split("/")[-1].split(":")[0]
            if base in KERNEL_NAMES and weight.trainable:
                found.append((f"{layer.name}/{weight.name}", np.asarray(weight.numpy())))
    return found


def kernel_sparsity(model) -> float:
    """Fraction of zeros over all pruned kernels (position tables are not pruned)."""
    values = [(name, v) for name, v in kernels(model) if not name.startswith("position_embedding/")]
    total = sum(v.size for _, v in values)
    return float(sum(int(np.count_nonzero(v == 0)) for _, v in values) / total) if total else 0.0
