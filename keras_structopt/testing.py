"""A conformance kit for HyperModels: the contract every keras-structopt family passes, for yours too.

`check_hypermodel(hypermodel, data)` runs the checks a structural HyperModel must pass to
work with the tuners, compression and export: its default build, random structures that
count, name and round-trip, the bridge to tf_keras, a short training, and its family's
slimming map. The suite runs it on every family; run it on a HyperModel (or a family) of
your own in your tests.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import numpy as np

from keras_structopt._types import Data

__all__ = ["CheckReport", "check_hypermodel"]


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What `check_hypermodel` checked, and what it saw.

    Attributes:
        passed: The names of the checks that passed, in the order they ran.
        structures: How many distinct `Architecture`s the random draws described.
        bridge_difference: The largest output difference between the trained model and
            its tf_keras copy.

    Example:
        >>> CheckReport(passed=("default build",), structures=1, bridge_difference=0.0).passed
        ('default build',)
    """

    passed: tuple[str, ...]
    structures: int
    bridge_difference: float


def _random_hyperparameters(hypermodel, seed: int):
    """Random values over the HyperModel's whole space, its conditions respected."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    rng = random.Random(seed)
    for parameter in hp.space:
        if hp.is_active(parameter):
            hp.values[parameter.name] = parameter.random_sample(rng.randint(0, 10**6))
    return hp


def _draw(hypermodel, seed: int):
    """A random draw the space's design rules let be built (a network that breaks them is never built)."""
    rules = getattr(hypermodel, "rule_violation", None)
    for attempt in range(100):
        hp = _random_hyperparameters(hypermodel, seed + 7919 * attempt)
        if rules is None or rules(hypermodel.architecture(hp)) is None:
            return hp
    raise _fail("random structures", f"100 random draws from seed {seed} all break the space's design rules")


def _fail(check: str, detail: str) -> AssertionError:
    return AssertionError(f"check_hypermodel: {check}: {detail}")


def _first(x, count: int):
    if isinstance(x, dict):
        return {key: value[:count] for key, value in x.items()}
    if isinstance(x, (list, tuple)):
        return [value[:count] for value in x]
    return x[:count]


def check_hypermodel(hypermodel: Any, data: Data, *, seeds: int = 3, epochs: int = 1,
                     tolerance: float = 1e-5) -> CheckReport:
    """Checks that a structural HyperModel keeps the contract the tuners, compression and export rely on.

    The checks, each named in the failure it raises:

    * `default build`: `build(HyperParameters())` gives a Keras 3 model carrying the
      `Architecture` that `architecture()` describes, with as many parameters.
    * `random structures`: for `seeds` random draws of the space (draws its design rules
      refuse are skipped: they are never built), the built model's
      parameter count equals the spec's, its layer names are the same in two builds and
      in the tf_keras rendering, the spec round-trips through JSON, and the HyperModel
      rebuilt from its JSON config describes the same spec.
    * `the space varies`: the draws describe more than one network (unless the space is
      fixed).
    * `training`: the model trains `epochs` on `data` with a finite loss (through the
      HyperModel's own `fit`, which checks the data first).
    * `bridge`: the trained model's tf_keras copy (`kso.to_tf_keras`) gives its outputs
      within `tolerance`.
    * `slimming map`: the family's slimming map names only layers its rendering makes, and
      a model slimmed by half keeps a spec that counts it exactly, where it keeps one.

    Args:
        hypermodel: A keras-structopt HyperModel, or a `StructuralHyperModel` of yours.
        data: `(x, y)` a few dozen examples of the data it is for.
        seeds: How many random structures to check.
        epochs: Training epochs of the `training` check.
        tolerance: The largest output difference the `bridge` check accepts.

    Returns:
        A `CheckReport`.

    Raises:
        AssertionError: naming the first check that failed and why.

    Example:
        >>> import numpy as np, keras_structopt as kso
        >>> from keras_structopt.testing import check_hypermodel
        >>> hypermodel = kso.DenseHyperModel(input_shape=(8,), outputs=3, num_layers=(1, 2), units=[4, 8], seed=0)
        >>> x, y = np.random.default_rng(0).normal(size=(32, 8)).astype("float32"), np.arange(32) % 3
        >>> check_hypermodel(hypermodel, (x, y)).passed
        ('default build', 'random structures', 'the space varies', 'training', 'bridge', 'slimming map')
    """
    import keras
    import keras_tuner
    import tf_keras

    from keras_structopt.bridge import architecture_of, to_tf_keras
    from keras_structopt.compress import slim
    from keras_structopt.space import Architecture, family, render

    passed: list[str] = []
    x, y = data
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    spec = hypermodel.architecture(hp)
    if not isinstance(model, keras.Model) or architecture_of(model) != spec:
        raise _fail("default build", f"the model carries {architecture_of(model)!r}, the HyperModel describes {spec!r}")
    if model.count_params() != spec.count_params():
        raise _fail("default build", f"the model has {model.count_params():,} parameters, its spec counts "
                                     f"{spec.count_params():,}")
    passed.append("default build")

    again = type(hypermodel).from_config(json.loads(json.dumps(hypermodel.get_config())))
    seen = set()
    for seed in range(seeds):
        hp = _draw(hypermodel, seed)
        spec = hypermodel.architecture(hp)
        seen.add(spec.to_json())
        built = hypermodel.build(hp)
        if built.count_params() != spec.count_params():
            raise _fail("random structures", f"draw {seed}: {built.count_params():,} parameters built, "
                                             f"{spec.count_params():,} counted by {spec.to_json()}")
        names = [layer.name for layer in built.layers]
        if names != [layer.name for layer in hypermodel.build(hp).layers]:
            raise _fail("random structures", f"draw {seed}: the layer names change from one build to the next")
        if names != [layer.name for layer in render(spec, tf_keras).layers]:
            raise _fail("random structures", f"draw {seed}: the tf_keras rendering names its layers differently")
        if Architecture.from_json(spec.to_json()) != spec:
            raise _fail("random structures", f"draw {seed}: the spec does not round-trip through JSON")
        if again.architecture(hp) != spec:
            raise _fail("random structures", f"draw {seed}: the HyperModel rebuilt from its JSON config describes "
                                             "another network")
    passed.append("random structures")
    if len(hp.space) and len(seen) < 2 and seeds > 1:
        raise _fail("the space varies", f"{seeds} random draws of a space with hyperparameters described one network")
    passed.append("the space varies")

    hp = _draw(hypermodel, seeds)
    model = hypermodel.build(hp)
    history = hypermodel.fit(hp, model, x, y, epochs=epochs, batch_size=16, verbose=0)
    loss = history.history["loss"][-1]
    if not np.isfinite(loss):
        raise _fail("training", f"the loss is {loss} after {epochs} epoch(s)")
    passed.append("training")

    convert = getattr(hypermodel, "inputs", None)  # a table's raw columns -> the model's named inputs
    probe = convert(_first(x, 16)) if convert is not None else _first(x, 16)
    legacy = to_tf_keras(model)
    expected = keras.tree.flatten(model.predict(probe, verbose=0))
    received = keras.tree.flatten(legacy.predict(probe, verbose=0))
    difference = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(expected, received))
    if difference > tolerance:
        raise _fail("bridge", f"the tf_keras copy's outputs differ by {difference:.3g} (tolerance {tolerance:g})")
    passed.append("bridge")

    trained = architecture_of(model)
    assert trained is not None  # the default build carries its spec (checked above)
    definition: Any = family(trained.family)
    layer_names = {layer.name for layer in model.layers}
    for i, block in enumerate(trained.blocks):
        missing = [name for name in definition.block_layers(trained, i, block) if name not in layer_names]
        if missing:
            raise _fail("slimming map", f"block {i} names the layers {missing}, which the rendering does not make")
    slimmed, _ = slim(model, probe, ratio=0.5)
    kept = architecture_of(slimmed)
    if kept is not None and kept.count_params() != slimmed.count_params():
        raise _fail("slimming map", f"the slimmed model has {slimmed.count_params():,} parameters, the spec it keeps "
                                    f"counts {kept.count_params():,}")
    passed.append("slimming map")
    return CheckReport(passed=tuple(passed), structures=len(seen), bridge_difference=difference)
