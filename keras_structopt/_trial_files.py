"""What a search keeps in each trial's folder besides Keras Tuner's own files, written atomically.

`curves.json`: the per-epoch metrics of every run of a trial (one per fold when
cross-validated), written by `CurveRecorder` after every epoch. `structopt.json`: what
keras-structopt notes about a trial (rejected, stopped, refit epochs, warm-start origin).
Every write goes to a temporary file, is flushed to disk and renamed into place, so a kill
or a full disk leaves the last whole file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from keras_structopt.errors import NoSpaceError

CURVES_FILE = "curves.json"
NOTE_FILE = "structopt.json"  # what keras-structopt notes about a trial (rejected, stopped, refit epochs)


def trial_folder(project_dir, trial_id: str) -> Path:
    """The folder of trial `trial_id` in a project directory."""
    return Path(project_dir) / f"trial_{trial_id}"


def read_json(path: Path) -> dict:
    """A JSON file's object, or {} if it is missing or half-written."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str | os.PathLike, data) -> None:
    """Writes `data` as JSON atomically: a temporary file, flushed to disk, then renamed into place."""
    write_atomically(path, json.dumps(data).encode())


def write_atomically(path, content: bytes) -> None:
    """Writes `content` to `path` atomically (a temporary file beside it, fsynced, renamed into place):
    a kill or a full disk leaves the old file whole, never half of the new one. A full disk raises
    `OSError(ENOSPC)` naming the path and the bytes it needed.

    Example:
        >>> path = getfixture("tmp_path") / "state.json"
        >>> write_atomically(path, b"{}")
        >>> path.read_bytes()
        b'{}'
    """
    import errno

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno != errno.ENOSPC:
            raise
        raise no_space(path, len(content)) from None


def no_space(path, needed: int | None) -> NoSpaceError:
    """The `OSError(ENOSPC)` keras-structopt raises for a full disk: the path, the bytes needed (about, for
    a checkpoint: the size of the one it replaces; None when not known), the bytes free. It is a
    `NoSpaceError`, fatal to a search (Keras Tuner does not record it as a failed trial)."""
    import errno
    import shutil

    try:
        free = f"{shutil.disk_usage(Path(path).parent).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    size = "size unknown" if needed is None else f"{needed:,} bytes needed"
    return NoSpaceError(errno.ENOSPC, f"No space left on the device to write {str(path)!r} ({size}, {free}); "
                                      "free some space and run the same search again to resume it (every finished "
                                      "trial is kept)")


def read_note(project_dir, trial_id: str) -> dict:
    """What keras-structopt noted about a trial ({} if nothing)."""
    return read_json(trial_folder(project_dir, trial_id) / NOTE_FILE)


def write_note(project_dir, trial_id: str, update: dict) -> None:
    """Adds `update` to a trial's note (written atomically)."""
    path = trial_folder(project_dir, trial_id) / NOTE_FILE
    note = read_json(path)
    note.update(update)
    write_json(path, note)


class CurveRecorder(keras.callbacks.Callback):
    """Appends each epoch's logs to `curves.json` in a trial's folder.

    The file is rewritten atomically after every epoch, so a killed search keeps the
    epochs it finished. Keras Tuner deep-copies the callbacks it is given; this one
    holds only a path and plain values, so its copies write the same file.

    Example:
        >>> import json
        >>> recorder = CurveRecorder(getfixture("tmp_path"), fold=None, validation_size=359)
        >>> recorder.on_epoch_end(0, {"loss": 0.5, "val_accuracy": 0.9})
        >>> json.loads((getfixture("tmp_path") / "curves.json").read_text())["runs"][0]["epochs"]
        [{'epoch': 0, 'loss': 0.5, 'val_accuracy': 0.9}]
    """

    def __init__(self, directory, *, fold: int | None = None, validation_size: int | None = None):
        super().__init__()
        self.path = Path(directory) / CURVES_FILE
        self.fold = fold
        self.validation_size = validation_size

    def on_train_begin(self, logs=None):
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        data["runs"] = [r for r in data.get("runs", []) if r.get("fold", "all") != key]
        data["runs"].append({"fold": key, "validation_size": self.validation_size, "epochs": []})
        write_json(self.path, data)

    def on_epoch_end(self, epoch, logs=None):
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        runs = [r for r in data.get("runs", []) if r.get("fold", "all") == key]
        if not runs:
            runs = [{"fold": key, "validation_size": self.validation_size, "epochs": []}]
            data.setdefault("runs", []).append(runs[0])
        entry = {"epoch": int(epoch)}
        entry.update({name: float(value) for name, value in (logs or {}).items() if _is_number(value)})
        runs[0]["epochs"].append(entry)
        write_json(self.path, data)


    def truncate(self, epochs: int) -> None:
        """Keeps the first `epochs` epochs of this run (a trial resumed from a checkpoint of that epoch).

        Example:
            >>> recorder = CurveRecorder(getfixture("tmp_path"))
            >>> for epoch in range(3):
            ...     recorder.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
            >>> recorder.truncate(1)
            >>> [e["epoch"] for e in read_curves_file(getfixture("tmp_path"))[0]["epochs"]]
            [0]
        """
        data = read_json(self.path)
        key = "all" if self.fold is None else self.fold
        for run in data.get("runs", []):
            if run.get("fold", "all") == key:
                run["epochs"] = [e for e in run["epochs"] if e["epoch"] < epochs]
        write_json(self.path, data)


def read_curves_file(directory) -> list[dict]:
    """The runs recorded in `directory/curves.json` ([] if none)."""
    return read_json(Path(directory) / CURVES_FILE).get("runs", [])


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
