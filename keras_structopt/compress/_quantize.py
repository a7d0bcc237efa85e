"""Quantization-aware fine-tuning with TFMOT, keeping what pruning and clustering did.

TFMOT's plain `quantize_model` undoes pruning and clustering; its collaborative schemes
(`Default8BitPrunePreserveQuantizeScheme`, `Default8BitClusterPreserveQuantizeScheme`)
keep the zeros and the shared values while the model learns int8 ranges. A Dense layer
followed by a BatchNormalization would keep a float kernel (TFMOT folds BatchNorm only
into convolutions), so such pairs are folded first: the Dense kernel and bias absorb the
normalisation, and the BatchNorm becomes an identity.
"""

from __future__ import annotations

import numpy as np

from keras_structopt import _checks
from keras_structopt.bridge._graph import iter_layers
from keras_structopt.bridge._tfmot import tfmot


def fold_dense_batch_norms(model):
    """A copy of a tf_keras model with each Dense -> BatchNormalization pair folded.

    The BatchNorm is replaced by a linear activation (the graph keeps its shape) and
    the Dense layer computes what the pair computed at inference.

    Example:
        >>> import numpy as np, tf_keras
        >>> inputs = tf_keras.Input((4,))
        >>> x = tf_keras.layers.Dense(3, use_bias=False, name="d")(inputs)
        >>> model = tf_keras.Model(inputs, tf_keras.layers.BatchNormalization(name="bn")(x))
        >>> model.get_layer("bn").set_weights([np.full(3, 2.0), np.ones(3), np.zeros(3), np.full(3, 4.0)])
        >>> folded = fold_dense_batch_norms(model)
        >>> x = np.random.rand(5, 4).astype("float32")
        >>> bool(np.allclose(folded(x), model(x), atol=1e-5)), type(folded.get_layer("bn")).__name__
        (True, 'Activation')
    """
    import tf_keras

    pairs = {}
    for _, layer in iter_layers(model):
        if isinstance(layer, tf_keras.layers.BatchNormalization) and len(layer._inbound_nodes) == 1:
            source = layer._inbound_nodes[0].inbound_layers
            if isinstance(source, tf_keras.layers.Dense) and len(source._outbound_nodes) == 1:
                pairs[layer.name] = source.name
    if not pairs:
        return model
    dense_names = set(pairs.values())

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            return tf_keras.layers.Activation("linear", name=layer.name)
        if layer.name in dense_names:
            config["use_bias"] = True
        return type(layer).from_config(config)

    folded = tf_keras.models.clone_model(model, clone_function=clone)
    for layer in folded.layers:
        original = model.get_layer(layer.name)
        if layer.name in dense_names:
            norm = model.get_layer(next(b for b, d in pairs.items() if d == layer.name))
            gamma, beta, mean, variance = _batch_norm_weights(norm)
            scale = gamma / np.sqrt(variance + norm.epsilon)
            kernel = original.kernel.numpy()
            bias = original.bias.numpy() if original.use_bias else np.zeros(kernel.shape[-1], "float32")
            layer.set_weights([kernel * scale, (bias - mean) * scale + beta])
        elif layer.weights and layer.name not in pairs:
            layer.set_weights(original.get_weights())
    return folded


def _batch_norm_weights(layer):
    size = int(layer.moving_mean.shape[-1])
    gamma = layer.gamma.numpy() if layer.scale else np.ones(size, "float32")
    beta = layer.beta.numpy() if layer.center else np.zeros(size, "float32")
    return gamma, beta, layer.moving_mean.numpy(), layer.moving_variance.numpy()


def quantize_aware(model, train, *, epochs: int, batch_size: int, fine_tuning, preserve: str | None,
                   validation=None, verbose=0, run_eagerly=False):
    """Quantization-aware fine-tuning of a tf_keras model; returns the QAT model.

    `preserve` is `"cluster"` (keep shared values and zeros), `"prune"` (keep zeros)
    or None. Convert the result with `quantization="int8"` for a fully int8 file.

    Raises:
        ConfigurationError: if TFMOT cannot quantize a layer of the model (an LSTM, a
            LayerNormalization, attention, a custom layer, ...).
    """
    api = tfmot().quantization.keras
    combine = tfmot().experimental.combine
    if preserve == "cluster":
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    elif preserve == "prune":
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = None  # TFMOT's default 8-bit scheme
    folded = fold_dense_batch_norms(model)
    try:
        annotated = api.quantize_annotate_model(folded)
        with api.quantize_scope():
            quantized = api.quantize_apply(annotated, scheme) if scheme else api.quantize_apply(annotated)
    except (ValueError, RuntimeError, KeyError, TypeError) as error:
        raise _checks.error(
            "Expected a model whose layers TFMOT can quantize for quantization-aware training (Dense, "
            "convolutions, BatchNorm after a convolution, pooling, Add, Concatenate, activations). "
            f"Received: {str(error).splitlines()[0][:300]} Use quantization=\"int8\" (post-training) or "
            "\"dynamic\" for this model."
        ) from None
    fine_tuning.compile(quantized, run_eagerly=run_eagerly)
    quantized.fit(train[0], train[1], batch_size=batch_size, epochs=epochs, validation_data=validation,
                  verbose=verbose)
    return quantized
