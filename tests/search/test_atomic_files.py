"""Every file of a project is written atomically, Keras Tuner's own included, and a full disk loses nothing."""

import errno
import json

import keras_tuner
import pytest

import keras_structopt as kso
from keras_structopt import _trial_files


def _search(tmp_path, trials=3):
    hypermodel = kso.DenseHyperModel(input_shape=(64,), outputs=10, num_layers=1, units=[8, 16, 24], seed=0)
    return kso.search.tuner(keras_tuner.RandomSearch, hypermodel, objective="val_accuracy", max_trials=trials,
                            seed=0, directory=tmp_path, project_name="p")


def _completed(project):
    return {p.parent.name: p.read_bytes() for p in project.glob("trial_*/trial.json")
            if json.loads(p.read_text())["status"] == "COMPLETED"}


def test_a_full_disk_mid_search_is_named_and_the_search_resumes_from_the_last_whole_files(tmp_path, digits,
                                                                                          monkeypatch):
    real_fsync, calls = _trial_files.os.fsync, []

    def fsync_until_full(descriptor):  # the disk fills up after a few whole files
        calls.append(descriptor)
        if len(calls) > 9:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(_trial_files.os, "fsync", fsync_until_full)
    with pytest.raises(OSError, match=r"No space left on the device to write '.*\.json' \([\d,]+ bytes needed, "
                                      r"[\d,]+ bytes free\); free some space and run the same search again"):
        _search(tmp_path).search(*digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    project = tmp_path / "p"
    assert not list(project.rglob(".*.tmp-*"))  # no half-written file left
    for path in project.rglob("*.json"):
        json.loads(path.read_text())  # every file there is whole
    before = _completed(project)
    assert 1 <= len(before) < 3

    monkeypatch.setattr(_trial_files.os, "fsync", real_fsync)  # space freed: the same search resumes
    resumed = _search(tmp_path)
    resumed.search(*digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    after = _completed(project)
    assert len(after) == 3 and all(after[name] == before[name] for name in before)  # none lost, none re-run


@pytest.mark.parametrize("where", ["checkpoint", "callback"])
def test_a_full_disk_inside_a_trial_stops_the_search_and_the_trial_runs_on_resume(tmp_path, digits, monkeypatch,
                                                                                  where):
    """Keras Tuner records an exception inside a trial as a failed trial, never run again: a full disk there
    (our checkpoint writer, or any raw ENOSPC) stops the search instead, and resuming runs that trial."""
    import keras

    calls = []

    def full_on_the_second_trial():
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    if where == "checkpoint":
        real_save = keras.Model.save_weights

        def save_weights(model, *args, **kwargs):
            full_on_the_second_trial()
            return real_save(model, *args, **kwargs)

        monkeypatch.setattr(keras.Model, "save_weights", save_weights)
        callbacks = []
    else:
        callbacks = [keras.callbacks.LambdaCallback(on_train_begin=lambda logs: full_on_the_second_trial())]
    with pytest.raises(OSError, match="No space left") as raised:
        _search(tmp_path).search(*digits.train, validation_data=digits.validation, epochs=1, verbose=0,
                                 callbacks=callbacks)
    assert raised.value.errno == errno.ENOSPC and isinstance(raised.value, keras_tuner.errors.FatalError)
    project = tmp_path / "p"
    statuses = sorted(json.loads(p.read_text())["status"] for p in project.glob("trial_*/trial.json"))
    assert "FAILED" not in statuses and "INVALID" not in statuses, statuses
    before = _completed(project)
    assert len(before) == 1

    monkeypatch.undo()
    resumed = _search(tmp_path)
    resumed.search(*digits.train, validation_data=digits.validation, epochs=1, verbose=0, callbacks=callbacks)
    after = _completed(project)
    assert len(after) == 3 and all(after[name] == before[name] for name in before)


def test_keras_tuners_files_and_checkpoints_are_written_through_temporary_files(tmp_path, digits, monkeypatch):
    import os

    replaced = []
    real_replace = os.replace

    def spy(source, target):
        replaced.append((os.path.basename(str(source)), os.path.basename(str(target))))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", spy)
    _search(tmp_path, trials=1).search(*digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    targets = {target for _, target in replaced}
    assert {"oracle.json", "trial.json", "tuner0.json", "checkpoint.weights.h5"} <= targets
    assert all(source.startswith(".") for source, _ in replaced)  # each from a temporary beside it
