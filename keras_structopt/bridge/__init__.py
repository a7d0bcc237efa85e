"""The bridge: a Keras 3 model -> the same model in `tf_keras`, weights exact, and back.

TFMOT accepts only `tf_keras` (Keras 2) models; Keras Tuner under Keras 3 only Keras 3
models. A keras-structopt model (built by a HyperModel or `render`, also after saving and
loading) is rendered again from its `Architecture` and its weights copied by layer name;
any other Keras 3 Sequential or functional model of standard layers is translated layer by
layer through a table (`SUPPORTED_LAYERS`), the whole graph checked first and every layer
it cannot carry named in one error. A custom layer class is carried once `register` says
how it is made in tf_keras (keras.applications' own, ConvNeXt's LayerScale and
Inception-ResNet's CustomScaleLayer, are registered by the package). `carry_back` brings a
tf_keras model's weights home to its Keras 3 structure.

Example:
    >>> import keras_structopt as kso
    >>> "Dense" in kso.bridge.SUPPORTED_LAYERS
    True
"""

from keras_structopt.bridge._bridge import to_tf_keras, unsupported_layers
from keras_structopt.bridge._layers import SUPPORTED_LAYERS
from keras_structopt.bridge._registry import Registration, register
from keras_structopt.bridge._spec import architecture_of, carry_back

__all__ = ["SUPPORTED_LAYERS", "Registration", "architecture_of", "carry_back", "register", "to_tf_keras",
           "unsupported_layers"]
