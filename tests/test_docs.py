"""The documentation site: its API reference holds exactly the public names (the build itself,
`mkdocs build --strict`, checks that every reference resolves)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"


def _documented(page: Path) -> tuple[str, list[str]]:
    """`(module, members)` of a reference page: the `::: module` block and its members list."""
    text = page.read_text()
    module = re.search(r"^::: (\S+)\n    options:\n      members:\n", text, re.M)
    assert module, f"{page.name} has no `::: module` block with a members list"
    members = re.findall(r"^        - (\S+)$", text[module.end():], re.M)
    return module.group(1), members


@pytest.mark.parametrize("page", sorted(p.name for p in REFERENCE.glob("*.md") if p.name != "index.md"))
def test_each_module_page_documents_exactly_its_public_names(page):
    module_name, members = _documented(REFERENCE / page)
    module = importlib.import_module(module_name)
    assert sorted(members) == sorted(module.__all__)


def test_the_package_page_lists_exactly_the_package_names_and_every_module_has_a_page():
    import keras_structopt

    text = (REFERENCE / "index.md").read_text()
    listed = re.findall(r"^\| \[?`([^`]+)`", text, re.M)
    assert sorted(listed) == sorted(keras_structopt.__all__)
    from tests.test_public_api import PUBLIC

    pages = {_documented(p)[0] for p in REFERENCE.glob("*.md") if p.name != "index.md"}
    assert pages == set(PUBLIC) - {"keras_structopt"}
