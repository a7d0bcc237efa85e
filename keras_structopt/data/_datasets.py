"""`tf.data` datasets and tensorflow-datasets (tfds) wherever keras-structopt takes data.

* **Searches** take a `tf.data.Dataset` of `(x, y)` pairs, batched or not, as `x` (and as
  `validation_data`): the HyperModel checks the example shape against its `input_shape`
  from the dataset's `element_spec` before any training, and batches an unbatched dataset
  (by the search's `batch_size`, else 32) as Keras needs. Keras does not shuffle a
  dataset: shuffle it yourself (`load_tfds(..., as_dataset=True)` does, seeded).
* **`compress`** and the exports' representative data take a dataset too; it is read into
  arrays once (compression needs to slice, calibrate and measure the same examples again
  and again), so it must be finite and fit in memory.
* **`load_tfds`** loads a tfds dataset by name and split spec, offline by default
  (`download=False`): images are scaled to [0, 1] floats as the tfds guides do, a dataset
  without supervised keys uses its one `ClassLabel` feature (or `label=`) as the label and
  its other feature (or `features=`) as the input, and the class count comes from tfds'
  `info`. It returns a `Split` of arrays, or of batched, prefetched `tf.data` pipelines
  (`as_dataset=True`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import PathLike
from keras_structopt.data._digits import Split

DEFAULT_SPLITS = ("train[:80%]", "train[80%:]", "test")


def length(x) -> int | None:
    """How many examples an input holds: an array, or a list or dict of arrays; None if it has no length."""
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    try:
        return len(x)
    except TypeError:
        return None


def is_dataset(value: Any) -> bool:
    """Whether `value` is a `tf.data.Dataset` (without importing TensorFlow for other values).

    Example:
        >>> is_dataset([1, 2]), is_dataset(__import__("tensorflow").data.Dataset.range(3))
        (False, True)
    """
    return hasattr(value, "element_spec") and type(value).__module__.startswith("tensorflow")


def pair_specs(dataset, argument: str):
    """The `(x, y)` element specs of a dataset of pairs; a clear error for anything else."""
    spec = dataset.element_spec
    if isinstance(spec, (tuple, list)) and len(spec) >= 2:
        return spec[0], spec[1]
    raise _checks.error(
        f"Expected {argument} to be a tf.data.Dataset of (x, y) pairs (tfds: as_supervised=True, or "
        f"kso.data.load_tfds). Received: a dataset of elements {spec}."
    )


def is_batched(dataset, input_rank: int) -> bool:
    """Whether the dataset's `x` has a batch axis beyond the `input_rank` axes of one example."""
    x_spec, _ = pair_specs(dataset, "x")
    rank = getattr(x_spec.shape, "rank", None)
    return rank is not None and rank == input_rank + 1


def check_dataset(dataset, shape, argument: str) -> None:
    """Raises a `ConfigurationError` if the dataset's examples do not have shape `shape`.

    Example:
        >>> import tensorflow as tf, keras_structopt as kso
        >>> data = tf.data.Dataset.from_tensor_slices((np.zeros((4, 3)), np.zeros(4))).batch(2)
        >>> check_dataset(data, (3,), "x")
        >>> try:
        ...     check_dataset(data, (5,), "x")
        ... except kso.ConfigurationError as error:
        ...     print(str(error).split(" Received")[0])
        Expected x's examples of shape (5,) to match input_shape=(5,) (batched or not).
    """
    import tensorflow as tf

    x_spec, _ = pair_specs(dataset, argument)
    if not hasattr(x_spec, "shape"):
        return  # several inputs: Keras checks them
    dims = tuple(x_spec.shape.as_list()) if x_spec.shape.rank is not None else None
    wanted = tuple(shape)
    fits = dims is not None and (
        _same(dims, wanted) or (len(dims) == len(wanted) + 1 and _same(dims[1:], wanted))
    )
    if not fits:
        raise _checks.error(
            f"Expected {argument}'s examples of shape {wanted} to match input_shape={wanted} (batched or not). "
            f"Received: a dataset whose x has shape {dims}."
        )
    if int(tf.data.experimental.cardinality(dataset)) == 0:
        raise _checks.error(f"Expected {argument} to hold at least one example. Received: an empty dataset.")


def _same(dims, wanted) -> bool:
    return len(dims) == len(wanted) and all(d is None or d == w for d, w in zip(dims, wanted))


def with_batches(dataset, input_rank: int, batch_size: int | None):
    """The dataset batched (by `batch_size`, else 32) if it is not already."""
    if dataset is None or not is_dataset(dataset) or is_batched(dataset, input_rank):
        return dataset
    return dataset.batch(batch_size or 32)


def dataset_arrays(dataset: Any, argument: str, *, batched: bool) -> tuple[Any, np.ndarray]:
    """All `(x, y)` of a finite dataset as numpy arrays, in order (`batched`: its elements are batches).

    Example:
        >>> import tensorflow as tf
        >>> data = tf.data.Dataset.from_tensor_slices((np.arange(6.0).reshape(3, 2), np.arange(3))).batch(2)
        >>> x, y = dataset_arrays(data, "train_data", batched=True)
        >>> x.shape, y.tolist()
        ((3, 2), [0, 1, 2])
    """
    import tensorflow as tf

    pair_specs(dataset, argument)
    if int(tf.data.experimental.cardinality(dataset)) == int(tf.data.experimental.INFINITE_CARDINALITY):
        raise _checks.error(
            f"Expected {argument} to be a finite dataset (it is read into memory once). Received: an infinite "
            "dataset (a .repeat() without a count?)."
        )
    xs, ys = [], []
    for element in dataset.as_numpy_iterator():
        xs.append(element[0])
        ys.append(element[1])
    if not xs:
        raise _checks.error(f"Expected {argument} to hold at least one example. Received: an empty dataset.")
    join = np.concatenate if batched else np.stack
    if isinstance(xs[0], dict):
        x: Any = {key: join([item[key] for item in xs]) for key in xs[0]}
    elif isinstance(xs[0], tuple):
        x = [join([item[i] for item in xs]) for i in range(len(xs[0]))]
    else:
        x = join(xs)
    return x, join(ys)


def model_input_rank(model) -> int:
    """The rank of one example of the model's (first) input, without the batch axis."""
    return len(model.inputs[0].shape) - 1


def load_tfds(
    name: str,
    *,
    split: str | Sequence[str] = DEFAULT_SPLITS,
    data_dir: PathLike | None = None,
    label: str | None = None,
    features: str | None = None,
    as_dataset: bool = False,
    batch_size: int = 128,
    seed: int = 0,
    download: bool = False,
) -> Split:
    """Loads a tensorflow-datasets dataset as a train / validation / test `Split`.

    Args:
        name: The tfds name (`"mnist"`, `"fashion_mnist"`, `"mnist:3.0.1"`, ...).
        split: Three tfds split specs: train, validation, test (default: the first 80 % of
            `train`, its last 20 %, `test`).
        data_dir: Where tfds keeps its data (tfds' default if None); `~` is expanded.
        label: The label feature, for a dataset without supervised keys (default: its one
            `ClassLabel` feature).
        features: The input feature, for a dataset without supervised keys (default: the
            one other feature).
        as_dataset: Return batched, prefetched `tf.data` pipelines (the training one
            cached and shuffled with `seed`) instead of numpy arrays.
        batch_size: The pipelines' batch size.
        seed: The training pipeline's shuffle seed.
        download: Let tfds download (never needed for data already under `data_dir`).

    Returns:
        A `Split` whose parts are `(x, y)` array pairs (or datasets), with `input_shape`
        and `num_classes` from tfds' `info`. Integer images are scaled to [0, 1] float32.

    Example:
        >>> split = load_tfds("mnist", data_dir=getfixture("stored_mnist"))
        >>> split.input_shape, split.num_classes, split.train[0].dtype
        ((28, 28, 1), 10, dtype('float32'))
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if not isinstance(split, (tuple, list)) or len(split) != 3 or not all(isinstance(s, str) for s in split):
        raise _checks.error(
            "Expected split to be three tfds split specs (train, validation, test), such as "
            f"{list(DEFAULT_SPLITS)}. Received: split={split!r}."
        )
    builder = _builder(name, data_dir, download)
    try:
        parts = [builder.as_dataset(split=s, shuffle_files=False) for s in split]
    except Exception as error:  # tfds raises many types for a split it cannot read
        raise _checks.error(
            f"Expected split specs that dataset {name!r} has (its splits: {sorted(builder.info.splits)}). "
            f"Received: split={list(split)!r} ({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from None
    info = builder.info
    label_key, input_key = _supervised_keys(info, label, features)
    input_shape, num_classes = _shape_and_classes(info, label_key, input_key)
    input_feature = info.features[input_key]
    scale = np.issubdtype(np.dtype(input_feature.dtype.as_numpy_dtype), np.integer) and isinstance(
        input_feature, tfds.features.Image
    )

    def prepare(element):
        x = element[input_key]
        x = tf.cast(x, tf.float32) / 255.0 if scale else x
        return x, element[label_key]

    pipelines = [part.map(prepare, num_parallel_calls=tf.data.AUTOTUNE) for part in parts]
    if as_dataset:
        train = pipelines[0].cache().shuffle(10_000, seed=seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        rest = [p.batch(batch_size).cache().prefetch(tf.data.AUTOTUNE) for p in pipelines[1:]]
        train_part, validation_part, test_part = train, rest[0], rest[1]
    else:
        train_part, validation_part, test_part = (
            dataset_arrays(p, f"split {s!r}", batched=False) for p, s in zip(pipelines, split)
        )
    return Split(train=train_part, validation=validation_part, test=test_part, input_shape=input_shape,
                 num_classes=num_classes)


def tfds_shape(name: str, *, data_dir=None, label=None, features=None) -> tuple[tuple[int, ...], int]:
    """`(input_shape, num_classes)` of a tfds dataset, from its `info` (no example is read).

    Example:
        >>> tfds_shape("mnist", data_dir=getfixture("stored_mnist"))
        ((28, 28, 1), 10)
    """
    info = _builder(name, data_dir, False).info
    label_key, input_key = _supervised_keys(info, label, features)
    return _shape_and_classes(info, label_key, input_key)


def _builder(name, data_dir, download):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.path.expanduser(data_dir))
        if download:
            builder.download_and_prepare()
        builder.info.splits  # noqa: B018 - a builder with no prepared data fails here, not later
        if not builder.info.splits:
            raise FileNotFoundError("no prepared splits")
        return builder
    except Exception as error:  # tfds raises many types for a missing dataset
        raise _checks.error(
            f"Expected a tfds dataset that is available offline under data_dir={str(data_dir)!r} (or "
            f"download=True). Received: name={name!r} ({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from None


def _shape_and_classes(info, label_key, input_key):
    shape = tuple(info.features[input_key].shape)
    if not shape or any(d is None or d < 1 for d in shape):
        raise _checks.error(f"Expected the input feature {input_key!r} to have a fixed shape. Received: shape {shape}.")
    input_shape = tuple(int(d) for d in shape)
    classes = getattr(info.features[label_key], "num_classes", None)
    return input_shape, int(classes) if classes else 1


def _supervised_keys(info, label, features):
    import tensorflow_datasets as tfds

    keys = list(info.features.keys())
    if label is None and features is None and info.supervised_keys:
        input_key, label_key = info.supervised_keys[:2]
        return label_key, input_key
    if label is None:
        labels = [k for k in keys if isinstance(info.features[k], tfds.features.ClassLabel)]
        if len(labels) != 1:
            raise _checks.error(
                f"Expected label= naming the label feature of a dataset without supervised keys and with "
                f"{len(labels)} ClassLabel features. Received: label=None; features are {keys}."
            )
        label = labels[0]
    if label not in keys:
        raise _checks.error(f"Expected label to be one of the dataset's features {keys}. Received: label={label!r}.")
    if features is None:
        others = [k for k in keys if k != label]
        if len(others) != 1:
            raise _checks.error(
                f"Expected features= naming the input feature (the dataset has {len(others)} besides the label). "
                f"Received: features=None; features are {keys}."
            )
        features = others[0]
    if features not in keys or features == label:
        raise _checks.error(
            f"Expected features to be one of the dataset's features {keys} other than the label. "
            f"Received: features={features!r}."
        )
    return label, features
