"""Every Python block of the documentation runs, with a small budget.

The blocks of one page run in order in one namespace, the way a reader pastes them, in a fresh
working directory (`HOME` points at a directory whose `~/tensorflow_datasets` holds the TF
Datasets written offline by the `stored_mnist` and `stored_movielens` fixtures). Two HTML comments,
invisible on the site, steer a block:

* `<!-- context: ... -->` right before a block: code run first, defining what the block takes
  as given (`x, y`, a trained model); it may span lines.
* `<!-- not run: reason -->` right before a block: the block is not run; the reason must be
  stated (the test fails on an empty one).

The budget: every integer keyword argument named in `BUDGET` is capped (`epochs=20` runs as
`epochs=1`), and a `compress(...)` call without `fine_tuning=` gets `SMALL_FINE_TUNING`, so a
page runs in seconds to a minute while every call of its blocks is the one it shows.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

BUDGET = {"epochs": 1, "max_epochs": 2, "max_trials": 2, "num_samples": 2, "fine_tune": 1, "population_size": 2,
          "sample_size": 1, "slim_epochs": 0, "prune_epochs": 1, "cluster_epochs": 0, "qat_epochs": 1,
          "max_time": 120, "workers": 1, "grace_epochs": 1, "min_trials": 1}
SMALL_FINE_TUNING = "FineTuning(slim_epochs=0, prune_epochs=1, cluster_epochs=0, qat_epochs=1)"

_BLOCK = re.compile(r"(?:^ *<!-- (context|not run):(.*?)-->\n)?^( *)```python\n(.*?)^\3```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    context: str = ""
    not_run: str | None = None


def blocks(page: Path) -> list[Block]:
    """The Python blocks of a page, each with the context or the reason in the comment before it."""
    text = page.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        kind, comment, indent, code = match.groups()  # a block in a list item is indented
        code = textwrap.dedent(code)
        line = text.count("\n", 0, match.start(4))
        found.append(Block(str(page.relative_to(ROOT) if page.is_relative_to(ROOT) else page), line, code, context=comment if kind == "context" else "",
                           not_run=comment.strip() if kind == "not run" else None))
    return found


class _Budget(ast.NodeTransformer):
    """Caps the integer keyword arguments named in BUDGET; gives `compress` calls a small fine-tuning."""

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        for keyword in node.keywords:
            value = keyword.value
            if (keyword.arg in BUDGET and isinstance(value, ast.Constant) and isinstance(value.value, int)
                    and not isinstance(value.value, bool)):
                keyword.value = ast.Constant(min(value.value, BUDGET[keyword.arg]))
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name == "compress" and not any(k.arg == "fine_tuning" for k in node.keywords):
            node.keywords.append(ast.keyword("fine_tuning", ast.parse(SMALL_FINE_TUNING, mode="eval").body))
        return node


def budgeted(code: str, filename: str = "<docs>"):
    """`code` compiled with the budget applied."""
    tree = ast.fix_missing_locations(_Budget().visit(ast.parse(code, filename)))
    return compile(tree, filename, "exec")


def run_page(page: Path) -> None:
    """Runs every block of `page` that is not marked, in order, in one namespace."""
    namespace: dict = {"__name__": "__docs__"}
    exec(compile("from keras_structopt.compress import FineTuning", "<docs>", "exec"), namespace)
    for block in blocks(page):
        if block.not_run is not None:
            continue
        where = f"{block.page}:{block.line}"
        if block.context.strip():
            exec(compile(textwrap.dedent(block.context).strip(), f"{where} (context)", "exec"), namespace)
        exec(budgeted(block.code, where), namespace)


PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())


def test_the_pages_with_python_blocks_are_found():
    assert {p.name for p in PAGES} >= {"index.md", "search.md", "compress.md", "deploy.md"}


@pytest.mark.slow
@pytest.mark.parametrize("page", [str(p.relative_to(DOCS)) for p in PAGES])
def test_every_unmarked_block_of_the_page_runs(page, tmp_path, monkeypatch, stored_mnist, stored_movielens):
    home = tmp_path / "home"
    (home / "tensorflow_datasets").mkdir(parents=True)
    for stored in (stored_mnist, stored_movielens):
        for dataset in Path(stored).iterdir():
            if not (home / "tensorflow_datasets" / dataset.name).exists():  # both hold an empty downloads/
                (home / "tensorflow_datasets" / dataset.name).symlink_to(dataset)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    run_page(DOCS / page)


def test_every_block_that_is_not_run_says_why():
    skipped = [block for page in PAGES for block in blocks(page) if block.not_run is not None]
    assert all(block.not_run for block in skipped), [f"{b.page}:{b.line}" for b in skipped if not b.not_run]


def test_the_budget_caps_what_it_names_and_nothing_else():
    namespace: dict = {}
    code = "calls = []\ndef search(*a, **k): calls.append(k)\nsearch(1, epochs=30, max_trials=8, seed=7, units=64)"
    exec(budgeted(code), namespace)
    assert namespace["calls"] == [{"epochs": 1, "max_trials": 2, "seed": 7, "units": 64}]


def test_a_broken_block_fails_its_page(tmp_path):
    page = tmp_path / "broken.md"
    page.write_text("A page.\n\n```python\nx = 1\n```\n\n<!-- context: y = 2 -->\n```python\nassert x + y == 4\n```\n")
    with pytest.raises(AssertionError):
        run_page(page)
    assert [b.context.strip() for b in blocks(page)] == ["", "y = 2"]
