"""What the convolutional HyperModels share: stage counts derived from the input, and the design rules.

A space's number of stages, when not given, follows from the input's size
(`keras_structopt.space._rules.stage_range`): even its smallest network covers the input
with its receptive field and ends on a feature map of at most 8 per side. A network that
breaks these rules anyway (a space the user set by hand) is not built; a space none of
whose networks keeps them is refused at construction, naming what to change.
"""

from __future__ import annotations

import itertools

import keras_tuner

from keras_structopt import _checks
from keras_structopt.hypermodels._tunable import Tunable, declare_per_block
from keras_structopt.space._rules import LAST_MAP, stage_range


def derived_stages(num_stages, extent: int, kernel: Tunable, factor: int):
    """`num_stages` as given, or, when None, the range the input's size calls for (an int when it is one value).

    Example:
        >>> derived_stages(None, 28, Tunable.parse("kernel_size", 3, kind=int), 2)
        (4, 5)
    """
    if num_stages is not None:
        return num_stages
    low, high = stage_range(extent, kernel.minimum, factor)
    return low if low == high else (low, high)


def check_space_keeps_rules(hypermodel, extremes: dict[str, list]) -> None:
    """Raises a `ConfigurationError` when no network among the space's `extremes` keeps the design rules,
    or when its first network (Keras Tuner's defaults, which every tuner builds) does not.

    `extremes` maps hyperparameter names to the values to try (the deepest, widest-seeing
    settings); the other hyperparameters keep their defaults. The convolutional spaces'
    receptive field grows with depth, kernel and downsampling, so if none of these
    networks keeps the rules, none of the space does.
    """
    if not hypermodel.design_rules:
        return
    first = hypermodel.rule_violation(hypermodel.architecture(keras_tuner.HyperParameters()))
    names = list(extremes)
    reasons = []
    for combination in itertools.product(*(extremes[name] for name in names)):
        hp = keras_tuner.HyperParameters()
        hp.values.update(dict(zip(names, combination)))
        reason = hypermodel.rule_violation(hypermodel.architecture(hp))
        if reason is None:
            if first is not None:  # Keras Tuner builds the defaults to learn the space: they must build
                raise _checks.error(
                    "Expected the space's first network (Keras Tuner's defaults: the smallest of each range, the "
                    "first of each choice) to keep the design rules, as Keras Tuner builds it to learn the space. "
                    f"Received: num_stages={hypermodel.num_stages!r}, blocks_per_stage="
                    f"{hypermodel.blocks_per_stage!r}, kernel_size={hypermodel.kernel_size!r}, downsample="
                    f"{hypermodel.downsample!r} for input_shape={tuple(hypermodel._shape)}, whose first network "
                    f"fails ({first}). Start the ranges where networks keep the rules (leave num_stages unset: it is "
                    "derived from the input), put such a value first in a choice, or pass design_rules=False."
                )
            return
        reasons.append(reason)
    raise _checks.error(
        f"Expected a space with networks whose receptive field covers the input and whose last feature map "
        f"is at most {LAST_MAP} per side (the design rules). Received: num_stages={hypermodel.num_stages!r}, "
        f"blocks_per_stage={hypermodel.blocks_per_stage!r}, kernel_size={hypermodel.kernel_size!r}, "
        f"downsample={hypermodel.downsample!r} for "
        f"input_shape={tuple(hypermodel._shape)}: even its deepest network fails ({reasons[0]}). Leave num_stages "
        "unset (derived from the input), allow more stages or blocks, or pass design_rules=False to search it "
        "anyway."
    )


def stage_filters(hypermodel, hp, num_stages: int) -> list[int]:
    """Each stage's filters: one hyperparameter per stage, or the first stage's grown by `filter_growth`."""
    if hypermodel.filter_growth is None:
        return declare_per_block(hp, hypermodel._filters, hypermodel._num_stages, "stage_{}/filters")[:num_stages]
    base = hypermodel._filters.declare(hp, "stage_0/filters")
    multiple = hypermodel.width_multiple
    return [
        max(multiple, int(round(base * hypermodel.filter_growth**stage / multiple)) * multiple)
        for stage in range(num_stages)
    ]
