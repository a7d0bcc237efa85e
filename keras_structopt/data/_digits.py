"""scikit-learn's bundled digits (1,797 real 8x8 images), split and shaped for each family."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import DigitsView

DIGITS_VIEWS = {
    "flat": (64,),
    "image": (8, 8, 1),
    "rows": (8, 8),
    "tokens": (64,),
}


@dataclasses.dataclass(frozen=True)
class Split:
    """A train / validation / test split; each part is an `(x, y)` pair of arrays.

    Example:
        >>> data = load_digits_split(seed=0)
        >>> [len(part[0]) for part in (data.train, data.validation, data.test)]
        [1078, 359, 360]
    """

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    input_shape: tuple[int, ...]
    num_classes: int
    vocabulary_size: int | None = None


def load_digits_split(view: DigitsView = "flat", *, seed: int = 0) -> Split:
    """Loads digits with a fixed stratified 60/20/20 split, shaped for one family.

    No download: the images ship with scikit-learn.

    Args:
        view: `"flat"` (64 intensities in [0, 1], for MLPs), `"image"` (8x8x1, for
            CNNs), `"rows"` (8 timesteps of 8 features, for RNNs and transformers) or
            `"tokens"` (64 integer intensities 0..16, vocabulary 17).
        seed: Seed of the split; the same seed always gives the same split.

    Returns:
        A `Split`.

    Example:
        >>> data = load_digits_split("image", seed=0)
        >>> data.train[0].shape, data.num_classes
        ((1078, 8, 8, 1), 10)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _checks.one_of("view", view, tuple(DIGITS_VIEWS))
    _checks.non_negative_int("seed", seed)
    digits = load_digits()
    pixels, labels = digits.data, digits.target.astype("int32")
    if view == "tokens":
        x = pixels.astype("int32")
    else:
        x = (pixels / 16.0).astype("float32").reshape((-1,) + DIGITS_VIEWS[view])
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, labels, test_size=0.4, stratify=labels, random_state=seed
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return Split(
        train=(x_train, y_train),
        validation=(x_val, y_val),
        test=(x_test, y_test),
        input_shape=DIGITS_VIEWS[view],
        num_classes=10,
        vocabulary_size=17 if view == "tokens" else None,
    )
