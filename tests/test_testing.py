"""The public conformance kit, on all six families and on a family added by one module and one line."""

import numpy as np
import pytest

import keras_structopt as kso
from keras_structopt.data import TabularSchema, load_digits_split
from keras_structopt.testing import check_hypermodel
from tests.hypermodels.test_tabular import cancer_frame

CHECKS = ("default build", "random structures", "the space varies", "training", "bridge", "slimming map")


def _digits(view, size=48):
    data = load_digits_split(view, seed=0)
    x, y = data.train
    return data, (x[:size], y[:size])


def _case(name):
    if name == "dense":
        data, xy = _digits("flat")
        return kso.DenseHyperModel(input_shape=data.input_shape, outputs=10, num_layers=(1, 3), units=[8, 16, 24],
                                   seed=0), xy
    if name == "conv":
        data, xy = _digits("image")
        return kso.ConvHyperModel(input_shape=data.input_shape, outputs=10, num_stages=[2, 1], filters=[8, 12],
                                  block_type=["plain", "residual"], seed=0), xy
    if name == "conv1d":
        data, xy = _digits("rows")
        return kso.Conv1DHyperModel(input_shape=data.input_shape, outputs=10, filters=[8, 12], seed=0), xy
    if name == "recurrent":
        data, xy = _digits("rows")
        return kso.RecurrentHyperModel(input_shape=data.input_shape, outputs=10, num_layers=(1, 2), units=[8, 12],
                                       seed=0), xy
    if name == "transformer":
        data, xy = _digits("tokens")
        return kso.TransformerHyperModel(input_shape=data.input_shape, outputs=10, vocabulary_size=17,
                                         model_units=8, num_blocks=(1, 2), num_heads=2, key_units=4,
                                         ffn_units=[8, 16], seed=0), xy
    frame, y = cancer_frame()
    if name == "tabular":
        return kso.TabularHyperModel(frame.iloc[:48], task="binary", num_layers=(1, 2), units=[8, 16],
                                     seed=0), (frame.iloc[:48], y[:48])
    rng = np.random.default_rng(0)
    columns = {"user_id": np.array([f"u{i}" for i in rng.integers(0, 12, 64)]),
               "movie_id": np.array([f"m{i}" for i in rng.integers(0, 20, 64)])}
    stars = rng.integers(1, 6, 64).astype("float32")
    return kso.RecommenderHyperModel(TabularSchema.from_data(columns), ["user_id"], ["movie_id"], task="regression",
                                     num_layers=(1, 2), units=[8, 16], tower_units=[4, 8], seed=0), (columns, stars)


@pytest.mark.parametrize("name", ["dense", "conv", "conv1d", "recurrent", "transformer", "tabular", "recommender"])
def test_every_family_passes_the_conformance_kit(name):
    hypermodel, data = _case(name)
    report = check_hypermodel(hypermodel, data, seeds=3)
    assert report.passed == CHECKS
    assert report.structures >= 2 and report.bridge_difference <= 1e-5


def test_a_family_is_one_module_and_one_registration_line():
    from tests import sketch_family

    kso.space.register_family(sketch_family.CONV1D_STACK)  # the one line
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 40, 1)).astype("float32"), np.arange(48) % 10
    hypermodel = sketch_family.Conv1DStackHyperModel(input_shape=(40, 1), outputs=10, seed=0)
    report = check_hypermodel(hypermodel, (x, y), seeds=4)
    assert report.passed == CHECKS
    spec = kso.Architecture("conv1d_stack", (40, 1), [kso.Block("conv", 8), kso.Block("conv", 16)])
    assert kso.count(spec).params == 5 * 1 * 8 + 8 + 5 * 8 * 16 + 16 + 16 * 10 + 10
    assert kso.count(spec).macs == 40 * 5 * 1 * 8 + 40 * 5 * 8 * 16 + 16 * 10
    assert kso.Architecture.from_json(spec.to_json()) == spec
    model = kso.render(spec, __import__("keras"))
    small, plan = kso.slim(model, x[:32], ratio=0.5)
    assert kso.architecture_of(small).widths == (4, 8)  # the slimming map keeps the spec


def test_the_kit_names_the_check_that_fails():
    from tests import sketch_family

    kso.space.register_family(sketch_family.CONV1D_STACK)

    import dataclasses

    # A family whose slimming map names layers its rendering does not make.
    kso.space.register_family(dataclasses.replace(sketch_family.CONV1D_STACK, name="conv1d_misnamed",
                                                  block_layers=lambda spec, i, block: [f"layer_{i}"]))

    class Misnamed(sketch_family.Conv1DStackHyperModel):
        def _declare(self, hp):
            return super()._declare(hp).replace(family="conv1d_misnamed")

    x, y = np.random.default_rng(0).normal(size=(32, 40, 1)).astype("float32"), np.arange(32) % 10
    with pytest.raises(AssertionError, match=r"check_hypermodel: slimming map: block 0 names the layers \['layer_0'\]"):
        check_hypermodel(Misnamed(input_shape=(40, 1), outputs=10, seed=0), (x, y), seeds=2)
