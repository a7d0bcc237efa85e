"""MovieLens ratings through tensorflow-datasets, as the columns a recommender takes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_structopt import _checks
from keras_structopt._types import PathLike

# The rating columns kept (movielens/<version>-ratings): ids, the user's side features, the label.
USER_COLUMNS = ("user_id", "user_gender", "bucketized_user_age", "user_occupation_text")
ITEM_COLUMNS = ("movie_id",)


def load_movielens(
    name: str = "movielens/100k-ratings",
    *,
    data_dir: PathLike | None = None,
    split: str = "train",
    implicit_threshold: float | None = None,
    download: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """MovieLens ratings from tensorflow-datasets: `(columns, labels)`.

    `columns` is a dict of 1-D arrays — `user_id` and `movie_id` (strings), the user's
    gender (`"F"`/`"M"`), age band (float) and occupation (string) where the version has
    them (`100k` and `1m`) — ready for `TabularSchema.from_data` and a
    `RecommenderHyperModel`. `labels` are the ratings (1..5, float32), or with
    `implicit_threshold` the implicit-feedback labels `rating >= threshold` (int64).
    Nothing is downloaded unless `download=True`: the dataset must be prepared under
    `data_dir` (tests store a small one with MovieLens's own schema).

    Example:
        >>> columns, ratings = load_movielens(data_dir=getfixture("stored_movielens"))
        >>> sorted(columns)[:3], ratings.dtype.name
        (['bucketized_user_age', 'movie_id', 'user_gender'], 'float32')
    """
    import tensorflow_datasets as tfds

    if implicit_threshold is not None and not _checks.is_number(implicit_threshold):
        raise _checks.error(
            f"Expected implicit_threshold to be a rating (a number) or None. Received: "
            f"implicit_threshold={implicit_threshold!r}."
        )
    if not name.startswith("movielens/") or not name.endswith("-ratings"):
        raise _checks.error(
            "Expected name to be a MovieLens ratings config, 'movielens/<version>-ratings' (for example "
            f"'movielens/100k-ratings'). Received: name={name!r}."
        )
    try:
        dataset = tfds.load(name, split=split, data_dir=None if data_dir is None else os.path.expanduser(data_dir),
                            download=download)
    except Exception as error:  # tfds raises several types for a dataset that is not prepared
        raise _checks.error(
            f"Expected {name!r} prepared under data_dir={str(data_dir)!r} (nothing is downloaded unless "
            f"download=True). Received: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from None
    wanted = [c for c in USER_COLUMNS + ITEM_COLUMNS if c in dataset.element_spec]
    rows: dict[str, list[Any]] = {c: [] for c in wanted + ["user_rating"]}
    for batch in tfds.as_numpy(dataset.batch(4096)):
        for column in rows:
            rows[column].extend(batch[column].tolist())
    columns: dict[str, np.ndarray] = {}
    for column in wanted:
        values = rows[column]
        if column == "user_gender":  # True is male in MovieLens's builder
            columns[column] = np.asarray(["M" if v else "F" for v in values], dtype=object)
        elif values and isinstance(values[0], bytes):
            columns[column] = np.asarray([v.decode() for v in values], dtype=object)
        else:
            columns[column] = np.asarray(values, dtype=np.float32)
    ratings = np.asarray(rows["user_rating"], dtype=np.float32)
    if implicit_threshold is not None:
        return columns, (ratings >= implicit_threshold).astype(np.int64)
    return columns, ratings
