"""The package type-checks: mypy over keras_structopt with the settings in setup.cfg."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_mypy_passes_on_the_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "keras_structopt", "--cache-dir", str(tmp_path / "mypy-cache")],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_the_package_is_marked_typed():
    from importlib import resources

    assert (resources.files("keras_structopt") / "py.typed").is_file()
