"""The one place that imports the TF Model Optimization Toolkit, lazily.

Importing TFMOT sets `TF_USE_LEGACY_KERAS=1`, after which a not yet resolved
`tf.keras` would mean tf_keras for the whole process. We resolve `tf.keras` first,
import TFMOT, then restore the variable exactly as it was, so the user's `tf.keras`
means what it meant before.
"""

from __future__ import annotations

import os

_VARIABLE = "TF_USE_LEGACY_KERAS"
_MODULE = None


def tfmot():
    """Returns the `tensorflow_model_optimization` module, imported without side effects.

    Example:
        >>> from keras_structopt.bridge._tfmot import tfmot
        >>> hasattr(tfmot().sparsity.keras, "prune_low_magnitude")
        True
    """
    global _MODULE
    if _MODULE is None:
        import tensorflow as tf

        before = os.environ.get(_VARIABLE)
        getattr(tf.keras, "layers", None)  # resolve the lazy tf.keras as the user has it
        try:
            import tensorflow_model_optimization
        finally:
            if before is None:
                os.environ.pop(_VARIABLE, None)
            else:
                os.environ[_VARIABLE] = before
        _MODULE = tensorflow_model_optimization
    return _MODULE
