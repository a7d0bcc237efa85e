"""A sketch family, written the way a user adds one: a plain stack of 1-D convolutions over a signal.

This module is the whole family: its rules, its rendering, its slimming map, and the
HyperModel over it. Registering it is one line, `kso.space.register_family(CONV1D_STACK)`;
then `Architecture`, `render`, `count`, the bridge, slimming and the conformance kit know it.
"""

import keras_structopt as kso
from keras_structopt.hypermodels import StructuralHyperModel, Tunable, declare_per_block
from keras_structopt.space import Architecture, Block, Family


def _build(spec, b):
    inputs = x = b.input(spec.input_shape, "float32", "inputs")
    for i, block in enumerate(spec.blocks):
        x = b.conv(x, block.units, spec.option("kernel_size"), f"block_{i}_conv", activation="relu")
    x = b.global_pool(x, "pooling", "avg")
    return b.model(inputs, b.dense(x, spec.outputs, "head", activation="softmax"), "conv1d_stack")


def _check(shape, blocks, options):
    if len(shape) != 2:
        raise kso.ConfigurationError(
            f"Expected input_shape=(length, channels) for family='conv1d_stack'. Received: input_shape={shape}."
        )


CONV1D_STACK = Family(
    name="conv1d_stack",
    kinds=("conv",),
    connections=("plain",),
    options={"kernel_size": 5},
    build=_build,
    block_layers=lambda spec, i, block: [f"block_{i}_conv"],
    check=_check,
)


class Conv1DStackHyperModel(StructuralHyperModel):
    """Depth and each layer's filters of a 1-D convolution stack."""

    family = "conv1d_stack"

    def __init__(self, input_shape, outputs=None, *, num_layers=(1, 3), filters=(8, 32), seed=None):
        super().__init__(input_shape, outputs, seed=seed, learning_rate=1e-2)
        self.num_layers, self.filters = num_layers, filters
        self._num_layers = Tunable.parse("num_layers", num_layers, kind=int, low=1)
        self._filters = self.width("filters", filters)

    def _declare(self, hp):
        depth = self._num_layers.declare(hp)
        widths = declare_per_block(hp, self._filters, self._num_layers, "block_{}/filters")[:depth]
        return Architecture("conv1d_stack", self._shape, [Block("conv", units) for units in widths],
                            task=self.task, outputs=self._outputs)
