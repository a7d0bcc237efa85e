"""The child process of `isolated_conversion`: converts one SavedModel to TFLite.

    python -m keras_structopt.export._convert_child FOLDER

FOLDER holds `saved_model/`, `options.json` (as `configure_converter` takes them) and, for
int8, `examples.npz` (the calibration inputs, one array per model input). The child writes
`model.tflite`, or `error.txt` with the converter's message and exits 3; a crash of the
converter's C++ code ends only this process (its parent reports the signal).

Example:
    >>> from keras_structopt.export._convert_child import examples_of
    >>> import numpy as np
    >>> [row[0].shape for row in examples_of({"input_0": np.zeros((2, 3))}, None)()]
    [(1, 3), (1, 3)]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def examples_of(arrays, names):
    """A representative-dataset generator function over saved calibration arrays: one example at a
    time, by signature name where the model has several inputs (`names`), else as a list."""
    columns = [np.asarray(arrays[f"input_{i}"]) for i in range(len(arrays))]

    def examples():
        for index in range(len(columns[0])):
            row = [column[index : index + 1] for column in columns]
            yield dict(zip(names, row)) if names else row

    return examples


def main(folder: str) -> int:
    folder_path = Path(folder)
    try:
        import tensorflow as tf

        from keras_structopt._quiet import library_noise
        from keras_structopt.export._tflite import configure_converter

        options = json.loads((folder_path / "options.json").read_text())
        examples = None
        if (folder_path / "examples.npz").is_file():
            with np.load(folder_path / "examples.npz") as saved:
                examples = examples_of({key: saved[key] for key in saved.files}, options.get("example_names"))
        converter = tf.lite.TFLiteConverter.from_saved_model(str(folder_path / "saved_model"),
                                                             signature_keys=["serving_default"])
        configure_converter(converter, options, examples)
        with library_noise(stdout=True):
            data = converter.convert()
    except Exception as error:  # the converter raises many types: its message goes back to the parent
        (folder_path / "error.txt").write_text(f"{type(error).__name__}: {error}")
        return 3
    (folder_path / "model.tflite").write_bytes(data)
    return 0


if __name__ == "__main__":
    from keras_structopt._env import offer_to_out_of_memory_killer

    offer_to_out_of_memory_killer()  # if memory runs out, this child goes, not its parent
    sys.exit(main(sys.argv[1]))
