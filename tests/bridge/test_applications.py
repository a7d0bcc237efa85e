"""Every `keras.applications` constructor crosses the bridge exactly and comes back; the smallest of each
family is served from its SavedModel, and one model of each kind is slimmed, and (built with fewer
blocks where Keras's builder allows) slimmed again, compressed and served.

Random weights (`weights=None`), the smallest input each accepts (32x32; 75x75 for the
Inception family and Xception), 10 classes, logits out (no softmax to hide a difference).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_structopt as kso
from keras_structopt.compress import Cluster, FineTuning, Prune, Quantize
from keras_structopt.export import tflite_predict

CONSTRUCTORS = sorted(name for name, value in vars(keras.applications).items()
                      if callable(value) and name[:1].isupper())


# With random weights, EfficientNetV2L's activations grow block after block (to 3e4 by the top), and so
# does float32 rounding, which differs between any two implementations (oneDNN's fused kernels, an add's
# order): layer by layer the relative difference is 1e-6 in block 2, 1e-4 in block 4, 0.8 at the logits.
# Its float32 outputs are noise; it is compared in float64, where the bridge is exact to 1e-9.
FLOAT64 = {"EfficientNetV2L"}


def build(name: str, classifier_activation=None):
    """`keras.applications.<name>` at its smallest input, random weights, 10 classes (logits by default)."""
    size = 75 if ("Inception" in name or "Xception" in name) else 32
    keras.utils.set_random_seed(0)
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    if name in FLOAT64:  # built in float64: every layer's weights and computations (the global policy
        keras.config.set_floatx("float64")  # wins over floatx once any test has set one)
        keras.config.set_dtype_policy("float64")
    try:
        model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10,
                                                  classifier_activation=classifier_activation)
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    assert name not in FLOAT64 or {w.dtype for w in model.weights} == {"float64"}
    return model


def test_the_list_is_every_constructor_of_the_installed_keras():
    assert len(CONSTRUCTORS) >= 40
    assert {"ConvNeXtTiny", "EfficientNetV2B0", "MobileNetV3Small", "InceptionResNetV2", "NASNetMobile",
            "ResNet50V2", "VGG16"} <= set(CONSTRUCTORS)


# The export path does not depend on a model's size: the suite serves the smallest of each family, and
# `bench/models.py` exports all of them (SavedModel and TFLite). Serving every one of the 40 here cost
# 9 minutes of the suite, most of it writing the large ones' variables. The seven kinds (MobileNetV3,
# ConvNeXt, EfficientNetV2, ResNetV2, DenseNet, NASNet, Xception) are served after slimming and
# compression, by the test of one model of each kind; these are the other families.
SERVED = {"EfficientNetB0", "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "ResNet50", "VGG16"}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_every_application_is_bridged_exactly_and_its_saved_model_answers(name, tmp_path):
    model = build(name)
    size = model.input_shape[1]
    x = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype(model.inputs[0].dtype)
    expected = np.asarray(model(x, training=False))
    scale = max(1.0, float(np.abs(expected).max()))

    legacy = kso.to_tf_keras(model)
    assert float(np.abs(legacy(x, training=False).numpy() - expected).max()) <= 1e-5 * scale
    back = kso.bridge.carry_back(legacy, model)
    assert isinstance(back, keras.Model) and back.count_params() == model.count_params()
    assert float(np.abs(np.asarray(back(x, training=False)) - expected).max()) <= 1e-5 * scale

    if name not in SERVED:
        return
    version = kso.export_saved_model(model, tmp_path, "application")
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    input_name = sorted(serve.structured_input_signature[1])[0]
    answered = serve(**{input_name: tf.constant(x)})["outputs"].numpy()
    assert float(np.abs(answered - expected).max()) <= 1e-4 * scale


# One model of each kind: squeeze-excite and hard-swish (MobileNetV3), LayerScale and grouped convolutions
# (ConvNeXt), fused MBConv with Rescaling/Normalization front ends (EfficientNetV2), pre-activation residual
# stages (ResNetV2), dense concatenations (DenseNet), NASNet's cells and Xception's separable stages.
KINDS = {"MobileNetV3Small": 3.0, "ConvNeXtTiny": 1.8, "EfficientNetV2B0": 1.8, "ResNet50V2": 3.0,
         "DenseNet121": 3.0, "NASNetMobile": 3.0, "Xception": 3.0}


def shallow(name: str):
    """The kind of `name` built by Keras's own builder with fewer blocks (same input, random weights,
    10 classes, logits): every layer and connection pattern of the kind, a fraction of its operations.

    Compressing costs time in proportion to a network's operations, not its widths: a `compress`
    traces the model and converts it to TFLite once per stage. With the full-size models this test
    took 903 s of three workers on 2 cores (ConvNeXtTiny 185 s, NASNetMobile 235 s), with these
    477 s (NASNet 103 s, ConvNeXt 76 s); the full-size models are compressed by `bench/models.py`.
    Xception has no depth setting and is compressed whole."""
    from keras.src.applications import convnext, densenet, efficientnet_v2, mobilenet_v3, nasnet, resnet

    keras.utils.set_random_seed(0)
    common = {"weights": None, "classes": 10, "classifier_activation": None}
    size = 75 if name == "Xception" else 32
    shape = (size, size, 3)
    if name == "MobileNetV3Small":  # its first five inverted-residual blocks of eleven (with and without
        relu = mobilenet_v3.relu  # squeeze-excite, ReLU and the builder's hard-swish `activation`)

        def blocks(x, kernel, activation, se_ratio):
            for expansion, filters, size, stride, se, act, index in (
                    (1, 16, 3, 2, se_ratio, relu, 0), (72 / 16, 24, 3, 2, None, relu, 1),
                    (88 / 24, 24, 3, 1, None, relu, 2), (4, 40, kernel, 2, se_ratio, activation, 3),
                    (6, 40, kernel, 1, se_ratio, activation, 4)):
                x = mobilenet_v3._inverted_res_block(x, expansion, filters, size, stride, se, act, index)
            return x

        return mobilenet_v3.MobileNetV3(blocks, 1024, shape, 1.0, "small", False, True, None, None, 10, None, 0.2,
                                        None, name="mobilenetv3_shallow")
    if name == "ConvNeXtTiny":  # 4 blocks, one a stage, instead of 3, 3, 9, 3
        return convnext.ConvNeXt([1, 1, 1, 1], [96, 192, 384, 768], input_shape=shape, name="convnext_shallow",
                                 **common)
    if name == "EfficientNetV2B0":  # at most two blocks a stage (fused MBConv, then MBConv with squeeze-excite)
        blocks = [dict(block, num_repeat=min(block["num_repeat"], 2))
                  for block in efficientnet_v2.DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"]]
        # (a name ending in "-b0" keeps B0's Normalization front end)
        return efficientnet_v2.EfficientNetV2(1.0, 1.0, 224, blocks_args=blocks, input_shape=shape,
                                              name="efficientnetv2-shallow-b0", **common)
    if name == "ResNet50V2":  # two blocks a stage (a projection shortcut, then a strided one)

        def stacks(x):
            for filters, stride, stage in ((64, 2, "conv2"), (128, 2, "conv3"), (256, 2, "conv4"), (512, 1, "conv5")):
                x = resnet.stack_residual_blocks_v2(x, filters, 2, stride1=stride, name=stage)
            return x

        return resnet.ResNet(stacks, True, True, input_shape=shape, name="resnetv2_shallow", **common)
    if name == "DenseNet121":  # two convolution blocks a dense block instead of 6, 12, 24, 16
        return densenet.DenseNet([2, 2, 2, 2], input_shape=shape, name="densenet_shallow", **common)
    if name == "NASNetMobile":  # one normal cell a stage instead of four
        return nasnet.NASNet(input_shape=shape, penultimate_filters=1056, num_blocks=1, stem_block_filters=32,
                             skip_reduction=False, filter_multiplier=2, default_size=224, name="nasnet_shallow",
                             **common)
    return build(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KINDS))
def test_one_model_of_each_kind_slims_compresses_and_is_served(name, tmp_path):
    model = build(name)
    size = model.input_shape[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(32, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, size=32)
    slimmed, plan = kso.slim(model, x, ratio=0.5)
    assert model.count_params() / slimmed.count_params() >= KINDS[name]
    assert plan.widths and all(after < before for before, after in plan.widths.values())
    answered = np.asarray(slimmed(x[:4], training=False))
    assert answered.shape == (4, 10) and np.isfinite(answered).all()
    legacy = kso.to_tf_keras(slimmed)  # the slimmed model still crosses the bridge exactly
    assert float(np.abs(legacy(x[:4], training=False).numpy() - answered).max()) <= 1e-5 * max(
        1.0, float(np.abs(answered).max()))

    # The same kind with fewer blocks (`shallow`), slimmed, compressed and served.
    full, model = model, shallow(name)
    assert {type(layer).__name__ for layer in model.layers} == {type(layer).__name__ for layer in full.layers}
    assert len(model.layers) <= len(full.layers) * (1 if name == "Xception" else 0.6)
    slimmed, plan = kso.slim(model, x, ratio=0.5)
    assert plan.widths and model.count_params() > slimmed.count_params()
    # TFMOT's recipe on the slimmed model (prune to 0.8, 16 clusters, dynamic-range TFLite), one
    # fine-tuning epoch a stage: the point is that every stage applies, not accuracy on random labels.
    # Two steps a stage: `compress` runs them eagerly (FineTuning.run_eagerly=None), which took NASNetMobile's
    # compression from 318 s (traced) to 124 s.
    slimmed.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    small, result = kso.compress(slimmed, (x, y), recipe=[Prune(), Cluster(), Quantize()], max_accuracy_loss=None,
                                 fine_tuning=FineTuning(batch_size=16, prune_epochs=1, cluster_epochs=1),
                                 measure_latency=False)
    assert isinstance(small, keras.Model) and small.count_params() == slimmed.count_params()
    assert result.size_ratio() >= 4.0, result.report
    assert result.report.final.kernel_sparsity >= 0.7
    expected = np.asarray(small(x[:8], training=False))
    agree = np.mean(tflite_predict(result.tflite, x[:8]).argmax(-1) == expected.argmax(-1))
    assert agree >= 0.75  # the measured TFLite file (weights quantized to 8 bits) answers as the model does
    version = kso.export_saved_model(small, tmp_path, name)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    input_name = sorted(serve.structured_input_signature[1])[0]
    served = serve(**{input_name: tf.constant(x[:8])})["outputs"].numpy()
    assert float(np.abs(served - expected).max()) <= 1e-4 * max(1.0, float(np.abs(expected).max()))
