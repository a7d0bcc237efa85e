"""SavedModel export in the TF Serving layout: `<directory>/<name>/<version>/`."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from keras_structopt import _checks
from keras_structopt._types import Model, PathLike
from keras_structopt.export._signature import write_saved_model

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (fullmatch): no trailing newline slips through


def existing_versions(directory, name) -> list[int]:
    """The integer version directories already under `<directory>/<name>/`, sorted."""
    base = Path(directory) / name
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def export_saved_model(model: Model, directory: PathLike, name: str, version: int | None = None) -> Path:
    """Writes `model` as a TF Serving SavedModel `<directory>/<name>/<version>/`.

    The `serving_default` signature takes `inputs` (a batch of examples) and returns
    `outputs` (class probabilities, or predictions for regression). The export is
    written into a temporary directory beside the target and renamed into place, so
    TF Serving never sees a half-written version. An existing version is never
    overwritten.

    Args:
        model: A Keras 3 or tf_keras model (a tuner's best model, a `compress` result).
        directory: The model base directory TF Serving watches (its parent).
        name: The model name; letters, digits, `.`, `_` and `-`.
        version: A positive integer version; by default one more than the highest
            version present (1 for the first).

    Returns:
        The version directory written.

    Raises:
        FileExistsError: if `version` already exists.

    Example:
        >>> import keras_tuner, keras_structopt as kso
        >>> model = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1,
        ...                             units=8).build(keras_tuner.HyperParameters())
        >>> base = getfixture("tmp_path")
        >>> kso.export_saved_model(model, base, "digits").name
        '1'
        >>> kso.export_saved_model(model, base, "digits").name
        '2'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _checks.error(
            "Expected name to be a model name of letters, digits, '.', '_' and '-' "
            f"(no path separators). Received: name={name!r}."
        )
    if version is not None:
        _checks.positive_int("version", version)
    _checks.writable_directory("directory", directory)
    base = Path(directory) / name
    if version is None:
        version = (existing_versions(directory, name) or [0])[-1] + 1
    target = base / str(version)
    if target.exists():
        raise FileExistsError(
            f"Expected a new version. Received: version={version}, but {str(target)!r} "
            f"exists; existing versions: {existing_versions(directory, name)}. Pass "
            "another version, or none for the next free one."
        )
    base.mkdir(parents=True, exist_ok=True)
    temporary = base / f".tmp-{version}-{uuid.uuid4().hex}"
    try:
        write_saved_model(model, temporary)
        if target.exists():  # another writer won the race: leave its version alone
            raise FileExistsError(f"Version directory {str(target)!r} appeared during the export.")
        os.rename(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return target
