"""Architecture specs, their costs, and rendering with `keras` or `tf_keras`."""

import keras as _keras

from keras_structopt.space.architecture import Architecture, Block, family_defaults
from keras_structopt.space.render import (
    ARCHITECTURE_ATTRIBUTE,
    Counts,
    count,
    position_embedding_class,
    render,
    structured_model_class,
)

# Register the Keras 3 classes now, not at first render: a saved winner must load in a
# fresh process that has only imported keras_structopt.
position_embedding_class(_keras)
structured_model_class()

__all__ = ["ARCHITECTURE_ATTRIBUTE", "Architecture", "Block", "Counts", "count", "family_defaults", "render"]
