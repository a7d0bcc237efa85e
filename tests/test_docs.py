"""The documentation site: its API reference holds exactly the public names (the build itself,
`mkdocs build --strict`, checks that every reference resolves)."""

from __future__ import annotations

import importlib
import re
import sys
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


def _on_path(folder: Path) -> None:
    """Puts `folder` (bench/, or the docs' hooks) on sys.path once: bench/tables imports as `tables`."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def test_the_benchmarks_page_has_no_hand_copied_table_and_every_marker_renders_from_json():
    """`docs/benchmarks.md` places its tables with `<!-- table: name -->` markers, which the site's
    build fills from `bench/results/*.json` (`docs/_hooks/benchmarks.py`): no table row is typed."""
    _on_path(ROOT / "docs" / "_hooks")
    import benchmarks
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert not [line for line in page.splitlines() if line.startswith("|")]
    names = benchmarks.MARKER.findall(page)
    assert len(names) >= 20 and len(set(names)) == len(names)
    filled = benchmarks.fill(page)
    from tables import TABLES  # the hook put bench/ on sys.path

    assert not benchmarks.MARKER.search(filled) and set(names) == set(TABLES)
    from tables import FIGURES

    figures = benchmarks.FIGURE_MARKER.findall(page)
    assert len(figures) >= 2 and set(figures) == set(FIGURES) and not benchmarks.FIGURE_MARKER.search(filled)
    assert len(re.findall(r'^<img alt="[^"]+" src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+">$', filled,
                          re.M)) == len(figures)
    tables = [block for block in re.split(r"\n\n+", filled) if block.startswith("| ")]
    assert len(tables) == len(names)
    for block in tables:
        rows = block.splitlines()
        assert re.fullmatch(r"\|(-{3}:?\|)+", rows[1]) and len(rows) >= 3
        assert {row.count("|") for row in rows} == {rows[0].count("|")}


def test_a_table_is_rendered_from_the_json_it_reads(tmp_path):
    """The families table follows its JSON: a changed number in the file is a changed cell."""
    import json
    import shutil

    _on_path(ROOT / "bench")
    from tables import render

    shutil.copy(ROOT / "bench" / "results" / "families.json", tmp_path / "families.json")
    before = render("families", tmp_path)
    document = json.loads((tmp_path / "families.json").read_text())
    document["results"][0]["params"] = 123_456
    (tmp_path / "families.json").write_text(json.dumps(document))
    after = render("families", tmp_path)
    assert "123,456" in after and "123,456" not in before
    assert [a == b for a, b in zip(before.splitlines(), after.splitlines())] == [True, True, False] + [True] * (
        len(before.splitlines()) - 3)


def test_a_figure_is_drawn_from_the_json_it_reads(tmp_path):
    """The search-cost plot follows its JSON: the same file draws the same SVG, a changed accuracy a
    different one, and the point moves to where the new number puts it."""
    import json
    import shutil
    import xml.etree.ElementTree as ET

    _on_path(ROOT / "bench")
    from tables import render_figure

    shutil.copy(ROOT / "bench" / "results" / "search_cost_one_shot.json", tmp_path / "search_cost_one_shot.json")
    before = render_figure("search_cost", tmp_path)
    assert render_figure("search_cost", tmp_path) == before  # no date, fixed ids: the same bytes
    ET.fromstring(before)  # well-formed SVG
    document = json.loads((tmp_path / "search_cost_one_shot.json").read_text())
    document["rows"][0]["test_accuracy"] = 0.123  # the paper's MLP, far below every other point
    (tmp_path / "search_cost_one_shot.json").write_text(json.dumps(document))
    after = render_figure("search_cost", tmp_path)
    texts = [sorted(t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text") if t.text)
             for svg in (before, after)]
    assert "one-shot" in texts[0] and "0.2" not in texts[0] and "0.2" in texts[1]  # the axis reaches down to it
