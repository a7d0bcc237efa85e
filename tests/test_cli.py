import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_structopt._cli import main
from keras_structopt._quiet import TENSORFLOW_LOG_LINE
from keras_structopt.compress import PRESETS, Cluster, FineTuning, Prune, Recipe
from keras_structopt.data import load_digits_split
from keras_structopt.export import tflite_predict

COMMAND = os.path.join(os.path.dirname(sys.executable), "keras-structopt")


def run_cli(*flags, timeout=900):
    result = subprocess.run([COMMAND, "run", *flags], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # Without --verbose, none of TensorFlow's own log lines reaches the output.
    logs = [line for line in (result.stdout + result.stderr).splitlines() if TENSORFLOW_LOG_LINE.match(line)]
    assert logs == [], logs[:5]
    return result


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tuner", "sideways"], r"Expected --tuner to be one of \['random', 'grid', 'bayesian', 'hyperband'\]\. Received: --tuner='sideways'\."),
        (["--trials", "0"], r"Expected --trials to be an int >= 1\. Received: --trials=0\."),
        (["--budget", "soon"], r"Expected --budget to be a duration such as 90s, 10m or 1h30m\. Received: --budget='soon'\."),
        (["--workers", "-1"], r"Expected --workers to be an int from 0 to \d+ .*Received: --workers=-1\."),
        (["--max-accuracy-loss", "none", "--sparsity", "1.2"], r"Expected --sparsity to be a float with 0 <= --sparsity < 1"),
        (["--max-accuracy-loss", "none", "--clusters", "1"], r"Expected --clusters to be an int in \[2, 256\]\. Received: --clusters=1\."),
        (["--sparsity", "1.5"], r"Expected --sparsity to be a float with 0 <= --sparsity < 1\. Received: --sparsity=1\.5\."),
        (["--max-accuracy-loss", "-0.1"], r"Expected --max-accuracy-loss to be a number in \[0, 1\) or 'none'\. Received: --max-accuracy-loss=-0\.1\."),
        (["--max-accuracy-loss", "lots"], r"Expected --max-accuracy-loss to be a number in \[0, 1\) or 'none'\. Received: --max-accuracy-loss='lots'\."),
        (["--target", "watch"], r"Expected --target to be one of \['mobile', 'cpu', 'gpu', 'tpu'\]\. Received: --target='watch'\."),
        (["--max-accuracy-loss", "none", "--quantization", "int4"], r"Expected --quantization to be one of \['none', 'dynamic', 'float16', 'int8', 'qat'\]"),
        (["--family", "graph"], r"Expected --family to be one of"),
        (["--family", "recurrent", "--max-accuracy-loss", "none", "--quantization", "int8"], r"Expected --quantization dynamic, float16 or none for the recurrent family.* Received: --family recurrent and --quantization int8\."),
        (["--seed", "-1"], r"Expected --seed to be an int >= 0"),
        (["--family", "conv", "--view", "rows"], r"Expected --view to be one of \['image'\]\. Received: --view='rows'\."),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path, capsys, flags, message):
    import re

    assert main(["run", "--out", str(tmp_path / "out"), *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_fixed_flags_are_honoured_and_the_rest_is_searched():
    from keras_structopt._cli import parse_run

    args = parse_run(["run", "--sparsity", "0.9", "--target", "mobile", "--prune-epochs", "4"])
    assert args.max_accuracy_loss == 0.01  # the guarded search, as in Python
    assert args.recipe == Recipe([Prune(0.9, exclude=("last",))])  # the mobile preset's pruning, at 0.9
    assert args.fine_tuning == FineTuning(prune_epochs=4)
    args = parse_run(["run", "--max-accuracy-loss", "none", "--sparsity", "0.9", "--clusters", "0"])
    assert args.max_accuracy_loss is None
    assert args.recipe == PRESETS["cpu"].with_stage(Prune(0.9, exclude=("last",))).with_stage(Cluster(None))


def test_an_earlier_search_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "tuner").mkdir()
    (tmp_path / "tuner" / "oracle.json").write_text("{}")
    assert main(["run", "--out", str(tmp_path)]) == 2
    assert "pass --resume to continue that search" in capsys.readouterr().err
    assert (tmp_path / "tuner" / "oracle.json").read_text() == "{}"


@pytest.mark.slow
def test_default_job_meets_the_acceptance_numbers(tmp_path):
    out = tmp_path / "out"
    result = run_cli("--out", str(out))  # the defaults: 10 trials x 20 epochs, the guarded search
    assert "trial 10/10" in result.stdout and "The search (validation split):" in result.stdout
    report = json.loads((out / "report.json").read_text())
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# keras-structopt report") and "### Accuracy-guarded search" in markdown
    assert (out / "compression.png").read_bytes()[:4] == b"\x89PNG"
    search = report["search"]
    assert search["trials_completed"] == 10 and search["best_val_accuracy"] > 0.9
    assert search["best_architecture"]["version"] == 1
    compression = report["compression"]
    assert compression["settings"] == {"target": "cpu", "max_accuracy_loss": 0.01, "recipe": {"stages": []},
                                       "fine_tuning": FineTuning().to_dict()}
    assert [stage["kind"] for stage in compression["recipe"]["stages"]] == ["slim", "prune", "cluster", "quantize"]
    stages = compression["stages"]
    assert stages[0]["name"] == "baseline" and stages[0]["quantization"] == "none"
    assert [s["name"] for s in stages][1:] and all(t["stage"] in ("slim", "prune", "cluster", "quantize") for t in compression["search"])
    final = stages[-1]
    # The defaults: within one point of the uncompressed winner on the test split, at least 10x smaller.
    assert final["test_accuracy"] >= stages[0]["test_accuracy"] - 0.01
    assert stages[0]["tflite_gzip_bytes"] / final["tflite_gzip_bytes"] >= 10
    for key in ("name", "test_accuracy", "kernel_sparsity", "max_unique_kernel_values", "tflite_gzip_bytes", "params",
                "macs", "latency", "bits_per_weight", "entropy_bits_per_weight", "latency_ratio"):
        assert all(key in stage for stage in stages)

    saved_model = out / report["export"]["saved_model"]
    assert saved_model == out / "digits" / "1" and (saved_model / "saved_model.pb").is_file()
    tflite = out / report["export"]["tflite"]
    x, y = load_digits_split(seed=0).test
    np.save(tmp_path / "x.npy", x)
    cli = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "run", "--dir", str(saved_model),
         "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"inputs={tmp_path / 'x.npy'}", "--outdir", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    served = np.load(tmp_path / "cli" / "outputs.npy")
    loaded = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    np.testing.assert_allclose(served, loaded(inputs=tf.constant(x))["outputs"].numpy(), atol=1e-6)
    assert np.mean(served.argmax(axis=1) == y) >= 0.95
    # The TFLite file is the quantized form of the same model, and the very file the report measured.
    assert len(gzip.compress(tflite.read_bytes(), compresslevel=9)) == final["tflite_gzip_bytes"]
    lite = tflite_predict(tflite.read_bytes(), x)
    assert np.mean(lite.argmax(axis=1) == y) == pytest.approx(final["test_accuracy"], abs=1e-6)  # Keras metrics are float32
    assert np.mean(lite.argmax(axis=1) == served.argmax(axis=1)) >= 0.97



def _search_record(out):
    report = json.loads((out / "report.json").read_text())
    trials = sorted(
        (json.loads(p.read_text()) for p in (out / "tuner").glob("trial_*/trial.json")),
        key=lambda trial: trial["trial_id"],
    )
    return (
        [(t["trial_id"], t["hyperparameters"]["values"], t["score"]) for t in trials],
        report["search"]["best_trial"],
        report["search"]["best_architecture"],
    )


FAULT_FLAGS = ["--trials", "3", "--epochs", "2", "--max-accuracy-loss", "none", "--prune-epochs", "1",
               "--cluster-epochs", "0", "--seed", "0", "--quiet"]
DRIVER = os.path.join(os.path.dirname(__file__), "fault_driver.py")


def run_killed(point, out, *flags):
    """`keras-structopt run` killed with SIGKILL at `point` (see tests/fault_driver.py)."""
    result = subprocess.run([sys.executable, DRIVER, point, *FAULT_FLAGS, "--out", str(out), *flags],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == -signal.SIGKILL, result.stdout[-2000:] + result.stderr[-3000:]


def _finished_trials(out):
    return {p.parent.name: (p.read_bytes(), (p.parent / "checkpoint.weights.h5").stat().st_mtime_ns)
            for p in (out / "tuner").glob("trial_*/trial.json") if json.loads(p.read_text())["status"] == "COMPLETED"}


@pytest.mark.slow
def test_killed_anywhere_and_resumed_a_job_ends_as_an_uninterrupted_one(tmp_path):
    """SIGKILL mid-search, mid-compression, mid-export and before the TFLite file, each time resumed:
    no finished trial lost or re-run, the same trials and winner as an uninterrupted run in another
    process, byte-identical TFLite files, nothing half-written left, one exported version."""
    uninterrupted, out = tmp_path / "a", tmp_path / "b"
    run_cli(*FAULT_FLAGS, "--out", str(uninterrupted))

    run_killed("search", out)  # the second trial is running
    before = _finished_trials(out)
    assert len(before) == 1
    run_killed("compress", out, "--resume")  # the search ends, then the run dies in the pruning stage
    after = _finished_trials(out)
    assert len(after) == 3  # trials lost: 0
    assert all(after[name] == before[name] for name in before)  # trials re-run: 0 (same record, same checkpoint)

    run_killed("export", out, "--resume")  # dies with the SavedModel written but not renamed into place
    assert list((out / "digits").glob(".tmp-*")) and not (out / "digits" / "1").exists()
    run_killed("tflite", out, "--resume")  # dies after the SavedModel version is in place
    assert not list((out / "digits").glob(".tmp-*"))  # the half-written export was removed
    assert (out / "digits" / "1" / "saved_model.pb").is_file() and not (out / "tflite" / "digits-1.tflite").exists()
    assert json.loads((out / "job.json").read_text()) == {"status": "exporting", "version": 1}
    run_cli(*FAULT_FLAGS, "--out", str(out), "--resume")
    assert sorted(p.name for p in (out / "digits").iterdir()) == ["1"]  # the killed job's version, finished
    assert json.loads((out / "job.json").read_text()) == {"status": "done", "version": 1}
    assert _finished_trials(out) == after

    assert _search_record(out) == _search_record(uninterrupted)  # same trials, scores and winner
    assert (out / "tflite" / "digits-1.tflite").read_bytes() == (uninterrupted / "tflite" / "digits-1.tflite").read_bytes()
    reports = [json.loads((d / "report.json").read_text())["compression"]["stages"] for d in (uninterrupted, out)]
    assert [s["test_accuracy"] for s in reports[0]] == [s["test_accuracy"] for s in reports[1]]


def _one_line(stderr: str) -> list[str]:
    """stderr's lines without TensorFlow's own log lines (the driver imports Keras before the command
    quiets TensorFlow's start-up lines)."""
    return [line for line in stderr.splitlines() if line.strip() and not TENSORFLOW_LOG_LINE.match(line)]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads live processes from /proc")
@pytest.mark.parametrize("how, status, later", [("int", 130, "compress"), ("term", 143, "export")])
def test_ctrl_c_or_sigterm_in_every_phase_ends_with_one_line_and_resumes(tmp_path, how, status, later):
    """Ctrl-C (SIGINT) or SIGTERM while a trial trains, then again while the resumed job compresses
    (SIGINT) or exports (SIGTERM): exit 130 / 143 each time, one line saying where it stopped and how to
    go on, no traceback, no process left, the lock released; the last --resume finishes the job with no
    finished trial lost or re-run and one exported version."""
    from keras_structopt._lock import holder

    out = tmp_path / "out"
    result = subprocess.run([sys.executable, DRIVER, f"search:{how}", *FAULT_FLAGS, "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == status, result.stderr[-3000:]
    assert _one_line(result.stderr) == ["keras-structopt run: interrupted after 1 of 3 trials; run the same command "
                                        "with --resume to continue (finished trials are kept)"], result.stderr[-3000:]
    assert holder(out) is None and holder(out / "tuner") is None
    before = _finished_trials(out)
    assert len(before) == 1

    fewer = ["--resume", "--trials", "2"]  # fewer trials: the search ends sooner
    result = subprocess.run([sys.executable, DRIVER, f"{later}:{how}", *FAULT_FLAGS, "--out", str(out), *fewer],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == status, result.stderr[-3000:]
    where = "compressing" if later == "compress" else "exporting version 1"
    assert _one_line(result.stderr) == [f"keras-structopt run: interrupted while {where} (2 of 2 trials finished); "
                                        "run the same command with --resume to continue (the finished search is "
                                        "kept)"], result.stderr[-3000:]
    assert holder(out) is None and _processes_mentioning(str(out)) == []
    after = _finished_trials(out)
    assert len(after) == 2 and all(after[name] == before[name] for name in before)
    assert not (out / "digits" / "1").exists()  # an interrupted export leaves no version behind

    run_cli(*FAULT_FLAGS, "--out", str(out), *fewer)
    assert _finished_trials(out) == after  # nothing lost, nothing re-run
    assert sorted(p.name for p in (out / "digits").iterdir()) == ["1"]
    assert json.loads((out / "job.json").read_text()) == {"status": "done", "version": 1}
    assert (out / "tflite" / "digits-1.tflite").stat().st_size > 0
    assert holder(out) is None and _processes_mentioning(str(out)) == []


@pytest.mark.slow
def test_a_fixed_sparsity_is_kept_and_the_other_stages_are_searched(tmp_path):
    out = tmp_path / "out"
    run_cli("--trials", "1", "--epochs", "2", "--sparsity", "0.9", "--prune-epochs", "1", "--cluster-epochs", "1",
            "--out", str(out), "--quiet")
    compression = json.loads((out / "report.json").read_text())["compression"]
    stages = {stage["kind"]: stage for stage in compression["recipe"]["stages"]}
    assert stages["prune"]["sparsity"] == 0.9  # fixed by the flag, under the guard (the default)
    searched = {entry["stage"] for entry in compression["search"] if not entry["fixed"]}
    assert "prune" not in searched and {"slim", "cluster"} <= searched
    assert [(e["setting"], e["kept"]) for e in compression["search"] if e["fixed"]] == [(0.9, True)]
    assert compression["stages"][-1]["kernel_sparsity"] >= 0.85


@pytest.mark.slow
# The command's other families differ from dense only in the HyperModel and the view it builds:
# one end-to-end run here (conv images); the contract tests compress and export saved winners of
# the recurrent and transformer families, tests/compress/test_any_model.py an Embedding + LSTM
# text model, and tests/test_cli_commands.py checks that a tokens view gets its vocabulary.
# It also runs the search distributed (--workers 2: a Keras Tuner chief and two workers under
# kso.search.launch; tests/search/test_distributed.py kills and resumes them).
@pytest.mark.parametrize("family, view", [("conv", "image")])
def test_other_families_run_end_to_end(tmp_path, family, view):
    out = tmp_path / family
    run_cli("--family", family, "--view", view, "--trials", "2", "--epochs", "1", "--max-accuracy-loss", "none",
            "--prune-epochs", "1", "--suggest", "--workers", "2",
            "--cluster-epochs", "1", "--sparsity", "0.5", "--out", str(out), "--quiet")
    report = json.loads((out / "report.json").read_text())
    assert report["search"]["trials_completed"] == 2
    assert (out / "tuner" / "tuner0.json").is_file() and (out / "tuner" / "tuner1.json").is_file()  # both joined
    architecture = report["search"]["best_architecture"]
    assert architecture["family"] == family and report["data"]["view"] == view
    # --suggest: the space designed from 1,078 8x8 images (kso.suggest), and why, in the report
    assert ("stages 2..3: the fewest whose receptive field covers the 8x8 image and leave a map of at most 8x8, "
            "and one more") in report["search"]["suggestion"]
    assert report["search"]["objective"] == "val_loss"  # the suggestion's: 1,078 examples rank by cross-entropy
    assert max(block["stage"] for block in architecture["blocks"]) in (1, 2)
    assert all(16 <= block["units"] <= 64 for block in architecture["blocks"])
    if view == "tokens":
        assert architecture["options"]["vocabulary_size"] == 17
    assert report["compression"]["stages"][-1]["max_unique_kernel_values"] <= 16
    assert (out / report["export"]["saved_model"] / "saved_model.pb").is_file()
    assert (out / report["export"]["tflite"]).stat().st_size > 0


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line holds `text` (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    if text.encode() in file.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads live processes from /proc")
@pytest.mark.parametrize("sent, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_on_a_distributed_run_ends_the_chief_and_the_workers(tmp_path, sent, status):
    """`run --workers 1` runs a chief and a worker in their own sessions: Ctrl-C on the command (SIGINT to
    the launcher) or SIGTERM ends both, prints one line and exits 130 / 143, and the lock is released."""
    import time

    from keras_structopt._lock import holder

    out = tmp_path / "out"
    process = subprocess.Popen([COMMAND, "run", *FAULT_FLAGS, "--workers", "1", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((out / "tuner").glob("trial_*")) and time.monotonic() < deadline:  # a trial has started
        time.sleep(0.5)
    assert len(_processes_mentioning(str(out))) >= 3  # the launcher, the chief and the worker
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip() and not TENSORFLOW_LOG_LINE.match(line)]
    assert len(lines) == 1 and "interrupted after" in lines[0] and "--resume" in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr
    time.sleep(1)
    assert _processes_mentioning(str(out)) == []  # no chief or worker left training
    assert holder(out) is None


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads live processes from /proc")
@pytest.mark.parametrize("sent, status, phase", [(signal.SIGINT, 130, "compressing"),
                                                 (signal.SIGTERM, 143, "exporting")])
def test_a_distributed_run_interrupted_while_its_chief_compresses_or_exports_resumes(tmp_path, sent, status, phase):
    """`run --workers 2`: the search over, the chief compresses, then exports (job.json says which). Ctrl-C
    or SIGTERM to the command then ends every process with one line naming the phase, exit 130 / 143;
    --resume keeps every finished trial and ends with one exported version."""
    import time

    out = tmp_path / "out"
    flags = [*FAULT_FLAGS, "--workers", "2", "--out", str(out)]
    process = subprocess.Popen([COMMAND, "run", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if json.loads((out / "job.json").read_text()).get("status") == phase:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before its chief was " + phase
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip() and not TENSORFLOW_LOG_LINE.match(line)]
    assert len(lines) == 1 and f"interrupted while {phase}" in lines[0] and "3 of 3 trials" in lines[0], lines
    time.sleep(1)
    assert _processes_mentioning(str(out)) == []
    finished = _finished_trials(out)
    assert len(finished) == 3
    run_cli(*flags, "--resume")
    assert _finished_trials(out) == finished  # nothing lost, nothing re-run
    assert sorted(p.name for p in (out / "digits").iterdir()) == ["1"]
    assert json.loads((out / "job.json").read_text()) == {"status": "done", "version": 1}


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs of its own (a disk that can really fill up), or a skip where mounting is not allowed:
    tests/search/test_atomic_files.py simulates ENOSPC in one process everywhere."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True,
                             text=True) if shutil.which("mount") else None
    if mounted is None or mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (it needs root); the simulated full disk is tested in one process")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk) -> Path:
    """Writes a file into `disk` until the disk is full; returns it (delete it to free the space)."""
    import errno

    filler = disk / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * 2**20)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads live processes from /proc")
def test_a_full_disk_during_a_distributed_search_loses_nothing_and_resumes(small_disk):
    """`run --workers 2` on a real disk that fills up once a trial has finished: a second writer is
    refused while it runs; the run ends non-zero with no traceback, saying the disk is full; no chief
    or worker is left; after space is freed, --resume (distributed again) completes with no finished
    trial lost or re-run."""
    import time

    out = small_disk / "out"
    flags = [*FAULT_FLAGS, "--workers", "2", "--out", str(out)]
    from keras_structopt._lock import LOCK_FILE

    process = subprocess.Popen([COMMAND, "run", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (out / LOCK_FILE).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    # The second writer comes while the whole search is still ahead of the first (once it came only after a
    # trial had finished, and the first run, fast enough, had ended before the second looked at the lock).
    second = subprocess.run([COMMAND, "run", *flags, "--resume"], capture_output=True, text=True, timeout=300)
    while not _finished_trials(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    filler = _fill(small_disk)
    before = _finished_trials(out)
    assert len(before) >= 1

    assert second.returncode != 0 and f"PID {process.pid}" in second.stderr, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode not in (0, None), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-5000:]
    assert "disk" in stderr and "full" in stderr, stderr[-3000:]
    time.sleep(1)
    assert _processes_mentioning(str(out)) == []
    finished = _finished_trials(out)
    assert all(finished[name] == before[name] for name in before)  # what had finished is whole

    filler.unlink()
    run_cli(*flags, "--resume")
    after = _finished_trials(out)
    statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in (out / "tuner").glob("trial_*/trial.json")}
    assert len(after) == 3 and all(after[name] == finished[name] for name in finished), statuses
    assert sorted(p.name for p in (out / "digits").iterdir()) == ["1"]
    assert _processes_mentioning(str(out)) == []


def test_an_interrupt_raised_inside_a_garbage_collector_callback_is_raised_again_outside_it():
    """A signal handled while a gc callback runs (TensorFlow registers one) raises where Python only prints
    "Exception ignored in" and goes on: the command's hook sends it again, and it ends the run."""
    import gc
    import threading
    import time

    from keras_structopt import _cli

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread")
    previous, hook = signal.signal(signal.SIGTERM, _cli._terminate), sys.unraisablehook
    sys.unraisablehook = _cli._redeliver(hook)
    fired = []

    def callback(phase, info):
        if phase == "start" and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # handled here, inside the callback

    gc.callbacks.append(callback)
    try:
        with pytest.raises(_cli.Terminated):
            gc.collect()
            for _ in range(2000):
                time.sleep(0.001)
    finally:
        gc.callbacks.remove(callback)
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook
    assert fired
