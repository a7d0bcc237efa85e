"""Fuzzing the command's job files: any JSON object either parses into checked settings or
is rejected with a `ConfigurationError` that says what was expected and what was received."""

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_structopt._cli import parse_run
from keras_structopt.compress import FineTuning, Recipe
from keras_structopt.errors import ConfigurationError

KEYS = ["family", "view", "tuner", "trials", "epochs", "target", "max_accuracy_loss", "max-accuracy-loss", "slim",
        "sparsity", "clusters", "quantization", "prune_epochs", "cluster_epochs", "name", "seed", "resume", "quiet",
        "colour", "", "verbose", "space", "search", "compression"]
VALUES = (st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=6) | st.sampled_from(["none", "conv", "dense", "image", "rows", "grid", "mobile", "int8"])
          | st.lists(st.integers(), max_size=2))
SPACE_KEYS = st.sampled_from(["num_layers", "units", "dropout", "connection", "input_shape", "colour", "trials"])
SIMPLE = st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=4) | st.lists(st.integers(0, 64), max_size=3)
VALUES = VALUES | st.dictionaries(SPACE_KEYS, SIMPLE | st.fixed_dictionaries({"min": SIMPLE, "max": SIMPLE}),
                                  max_size=3)
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 80)), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(job=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6) | st.lists(st.integers(), max_size=2))
def test_any_job_file_is_accepted_or_explained(job):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "job.json"
        path.write_text(json.dumps(job))
        try:
            args = parse_run(["run", "--job", str(path), "--out", str(Path(directory) / "out")])
        except ConfigurationError as error:
            message = str(error)
            assert message.startswith("Expected") and "Received" in message, message
            return
        # Accepted: the settings are the checked types the run reads.
        assert isinstance(args.trials, int) and args.trials >= 1 and isinstance(args.epochs, int)
        assert args.max_accuracy_loss is None or 0 <= args.max_accuracy_loss < 1
        assert args.sparsity is None or 0 <= args.sparsity < 1
        assert isinstance(args.recipe, Recipe) and isinstance(args.fine_tuning, FineTuning) and isinstance(args.quiet, bool)
        assert not (Path(directory) / "out").exists()  # parsing writes nothing
