"""The command's other subcommands (compress, export, report), its quiet output and its job files."""

import hashlib
import json
import os
import subprocess
import sys

import keras
import keras_tuner
import pytest

from keras_structopt._cli import main, parse_run
from keras_structopt._quiet import TENSORFLOW_LOG_LINE

COMMAND = os.path.join(os.path.dirname(sys.executable), "keras-structopt")


def kso_params(path):
    """Parameters of the Architecture a saved search winner carries."""
    import keras_structopt as kso

    return kso.architecture_of(keras.models.load_model(path)).count_params()


def tensorflow_lines(text):
    return [line for line in text.splitlines() if TENSORFLOW_LOG_LINE.match(line)]


def test_tensorflow_log_lines_are_recognised_and_ours_are_not():
    assert TENSORFLOW_LOG_LINE.match("I0000 00:00:1795948113.960021   31145 cudart_stub.cc:31] Could not find cuda")
    assert TENSORFLOW_LOG_LINE.match("W0000 00:00:1795948113.960021   31145 tf_tfl_flatbuffer_helpers.cc:364] Ignored")
    assert TENSORFLOW_LOG_LINE.match("2026-11-29 10:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN")
    assert TENSORFLOW_LOG_LINE.match("WARNING: All log messages before absl::InitializeLog() is called are written")
    assert not TENSORFLOW_LOG_LINE.match("keras-structopt run: error: Expected --trials to be an int >= 1.")
    assert not TENSORFLOW_LOG_LINE.match("Traceback (most recent call last):")


def test_the_command_help_lists_every_subcommand_without_tensorflow_logs():
    result = subprocess.run([sys.executable, "-m", "keras_structopt", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    for word in ("run", "compress", "export", "report", "examples:", "keras-structopt report structopt-out"):
        assert word in result.stdout
    assert result.stderr == ""  # TensorFlow loads with the package; its import-time lines are kept out


@pytest.fixture(scope="module")
def saved_model_file(tmp_path_factory, finished_search):
    """The winner of a search (a dense network on digits), saved as .keras as a user would."""
    path = tmp_path_factory.mktemp("user") / "model.keras"
    finished_search.get_best_models(1)[0].save(path)
    return path


@pytest.mark.slow
def test_export_then_compress_a_saved_model_quietly(tmp_path, saved_model_file):
    out = tmp_path / "serving"
    first = subprocess.run([COMMAND, "export", str(saved_model_file), "--out", str(out), "--name", "m"],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "m" / "1" / "saved_model.pb").is_file() and (out / "tflite" / "m-1.tflite").stat().st_size > 0
    assert first.stderr == "" and tensorflow_lines(first.stdout) == []  # TensorFlow's C++ logs are kept out
    stamp = (out / "m" / "1" / "saved_model.pb").stat().st_mtime_ns
    assert main(["export", str(saved_model_file), "--out", str(out), "--name", "m", "--quiet"]) == 0
    assert (out / "m" / "2" / "saved_model.pb").is_file()  # the next version; version 1 untouched
    assert (out / "m" / "1" / "saved_model.pb").stat().st_mtime_ns == stamp

    small = tmp_path / "small"
    result = subprocess.run(
        [COMMAND, "compress", str(saved_model_file), "--out", str(small), "--max-accuracy-loss", "none",
         "--slim", "0", "--sparsity", "0.5", "--clusters", "8", "--prune-epochs", "1", "--cluster-epochs", "1"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert tensorflow_lines(result.stderr) == [] and tensorflow_lines(result.stdout) == []
    assert "Compressing" in result.stdout and "Wrote" in result.stdout
    report = json.loads((small / "report.json").read_text())
    assert report["data"]["view"] == "flat" and report["model"] == str(saved_model_file)
    assert report["compression"]["stages"][0]["params"] == kso_params(saved_model_file)  # the search's winner
    stages = report["compression"]["stages"]
    assert [s["name"] for s in stages] == ["baseline", "pruned", "clustered", "quantized"]
    assert stages[-1]["max_unique_kernel_values"] <= 8 and stages[1]["kernel_sparsity"] >= 0.45
    assert (small / report["export"]["saved_model"] / "saved_model.pb").is_file()
    # Not over an earlier report:
    assert main(["compress", str(saved_model_file), "--out", str(small), "--quiet"]) == 2


def test_export_and_compress_refuse_a_missing_model_before_any_work(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing.keras"), "--out", str(tmp_path / "o")]) == 2
    assert "Expected MODEL to be an existing .keras file. Received: MODEL=" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "nothing.keras"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_compress_refuses_a_model_that_fits_no_digits_view(tmp_path, capsys):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    path = tmp_path / "odd.keras"
    model.save(path)
    assert main(["compress", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "Expected a model whose input fits a bundled digits view" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _digest(directory):
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_report_redraws_a_finished_search_without_touching_it(finished_search, tmp_path):
    project = finished_search.project_dir
    from pathlib import Path

    before = _digest(Path(project))
    out = tmp_path / "report"
    assert main(["report", str(project), "--out", str(out), "--quiet"]) == 0
    assert _digest(Path(project)) == before
    rows = json.loads((out / "trials.json").read_text())
    assert sorted(r["trial"] for r in rows) == sorted(finished_search.oracle.trials)
    for row in rows:
        trial = finished_search.oracle.trials[row["trial"]]
        spec = finished_search.hypermodel.architecture(trial.hyperparameters.copy())
        assert row["params"] == spec.count_params() and row["depth"] == spec.num_blocks
        assert row["val_accuracy"] == pytest.approx(trial.metrics.get_best_value("val_accuracy"))
        assert row["epochs"] == 2
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "| trial | status | val_accuracy |" in (out / "trials.md").read_text()
    assert len(list((out / "tensorboard" / "structure").iterdir())) == len(rows)
    assert main(["report", str(project), "--out", str(out)]) == 2  # never over an earlier report


def test_a_toml_job_sets_flags_and_the_space(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(
        '[search]\nfamily = "dense"\ntrials = 3\nepochs = 2\n'
        '[compression]\nmax_accuracy_loss = "none"\nprune_epochs = 1\n'
        '[space]\nnum_layers = {min = 1, max = 2}\nunits = [8, 16]\nconnection = "residual"\n'
    )
    args = parse_run(["run", "--config", str(job), "--out", str(tmp_path / "o"), "--epochs", "4"])
    assert (args.trials, args.epochs, args.max_accuracy_loss, args.prune_epochs) == (3, 4, None, 1)
    assert args.space == {"num_layers": (1, 2), "units": [8, 16], "connection": "residual"}
    from keras_structopt._cli import _data_shape, _hypermodel

    hypermodel = _hypermodel(args, *_data_shape(args))
    assert hypermodel.num_layers == (1, 2) and hypermodel._units.values == [8, 16]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ('[space]\nunits = {low = 1, high = 4}\n', r"Expected units in \[space\] to be a value, a list \(a choice\) or"),
        ('[space]\ninput_shape = [8]\n', r"Expected \[space\] in --job without \['input_shape'"),
        ('[space]\nwidth = [8]\n', r"Expected the \[space\] arguments of DenseHyperModel among \[.*'units'.*\]\. Received: \['width'\]"),
        ('[space]\nnum_layers = {min = 3, max = 1}\n', r"Expected num_layers to be an int >= 1.*Received: num_layers=\(3, 1\)"),
        ('[search]\ntrials = 3\n[compression]\ntrials = 4\n', r"Expected each setting once in --job\. Received: 'trials' twice"),
        ('trials = [3\n', r"Expected --job to hold TOML\. Received: --job='.*job\.toml', which does not parse"),
    ],
)
def test_bad_toml_jobs_fail_before_any_work(tmp_path, capsys, text, message):
    import re

    job = tmp_path / "job.toml"
    job.write_text(text)
    assert main(["run", "--config", str(job), "--out", str(tmp_path / "o")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_the_progress_line_says_how_long_is_left():
    from keras_structopt._cli import _progress_callback

    lines = []
    progress = _progress_callback(lines.append, 4, keras_tuner.Objective("val_accuracy", "max"))
    for trial in range(2):
        progress.on_train_begin()
        progress.on_epoch_end(0, {"val_accuracy": 0.5 + trial / 10})
        progress.on_train_end()
    assert lines[0].startswith("  trial 1/4: best val_accuracy 0.5000 (") and "left)" in lines[0]
    assert lines[1].startswith("  trial 2/4: best val_accuracy 0.6000 (") and ", about 0 s left)" in lines[1]
    # The search's own objective, in its own direction, counted on from the trials a resumed search had.
    lines.clear()
    progress = _progress_callback(lines.append, 4, keras_tuner.Objective("val_loss", "min"), done=2)
    progress.on_train_begin()
    for epoch, loss in enumerate((0.7, 0.4, 0.9)):
        progress.on_epoch_end(epoch, {"val_loss": loss, "val_accuracy": 0.5})
    progress.on_train_end()
    assert lines[0].startswith("  trial 3/4: best val_loss 0.4000 (")


@pytest.mark.slow
def test_run_on_a_stored_tfds_dataset_offline(stored_mnist, tmp_path):
    out = tmp_path / "mnist"
    result = subprocess.run(
        [COMMAND, "run", "--dataset", "mnist", "--data-dir", str(stored_mnist), "--trials", "1", "--epochs", "2",
         "--max-accuracy-loss", "none", "--prune-epochs", "1", "--cluster-epochs", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert tensorflow_lines(result.stdout + result.stderr) == []
    assert "Searching the dense family on mnist with random" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["dataset"] == "mnist" and report["data"]["split"] == ["train[:80%]", "train[80%:]", "test"]
    assert report["search"]["best_architecture"]["input_shape"] == [28, 28, 1]
    assert report["search"]["best_val_accuracy"] > 0.6
    assert report["export"]["saved_model"] == os.path.join("mnist", "1")
    assert (out / report["export"]["tflite"]).stat().st_size > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset", "no_such_set"], r"Expected a tfds dataset that is available offline under data_dir=.*Received: name='no_such_set'"),
        (["--dataset", "mnist", "--view", "image"], r"Expected no --view with --dataset='mnist'.*Received: --view='image'"),
        (["--dataset", "mnist", "--split", "train,test"], r"Expected --split to be three tfds split specs.*Received: --split='train,test'"),
        (["--dataset", "digits_pixels", "--label", "colour"], r"Expected label to be one of the dataset's features"),
    ],
)
def test_bad_dataset_flags_fail_before_any_work(stored_mnist, tmp_path, capsys, flags, message):
    import re

    code = main(["run", *flags, "--data-dir", str(stored_mnist), "--out", str(tmp_path / "o")])
    assert code == 2 and re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_a_tokens_view_gets_its_vocabulary():
    from keras_structopt._cli import _data_shape, _hypermodel

    args = parse_run(["run", "--family", "transformer", "--view", "tokens", "--out", "unused-out"])
    hypermodel = _hypermodel(args, *_data_shape(args))
    assert hypermodel.vocabulary_size == 17 and hypermodel.input_shape == (64,)
    assert not os.path.exists("unused-out")
