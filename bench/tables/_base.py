"""The registry of benchmark tables and figures, and the helpers every renderer uses.

A table renderer reads `bench/results/*.json` and returns one Markdown table. It is registered
under a name with `@table("name")`; `docs/benchmarks.md` holds `<!-- table: name -->` where the
table goes, and the documentation build (`docs/_hooks/benchmarks.py`) puts the rendered table
there. A figure renderer (`@figure("name")`, `<!-- figure: name -->`) draws a Matplotlib figure
from the same files; it is embedded in the page as an SVG image. No number in a benchmarks table
or plot is typed by hand. Tables need the standard library only; figures need Matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "results"

Renderer = Callable[[Path], str]
TABLES: dict[str, Renderer] = {}
FIGURES: dict[str, Callable[[Path], Any]] = {}


def _registrar(registry: dict, kind: str, name: str) -> Callable:
    def register(function):
        if name in registry:
            raise ValueError(f"{kind} {name!r} is registered twice")
        registry[name] = function
        return function

    return register


def table(name: str) -> Callable[[Renderer], Renderer]:
    """Register `function(results_directory) -> markdown` as the table called `name`."""
    return _registrar(TABLES, "table", name)


def figure(name: str) -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    """Register `function(results_directory) -> matplotlib Figure` as the figure called `name`."""
    return _registrar(FIGURES, "figure", name)


def render_figure(name: str, results: Path | str = RESULTS) -> str:
    """The figure called `name` as SVG text, drawn from the JSON files under `results` (the same files
    give the same bytes: no date, fixed element ids)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if name not in FIGURES:
        raise KeyError(f"no benchmark figure called {name!r}; registered: {sorted(FIGURES)}")
    with matplotlib.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        drawn = FIGURES[name](Path(results))
        buffer = io.StringIO()
        drawn.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(drawn)
    return buffer.getvalue()


def render(name: str, results: Path | str = RESULTS) -> str:
    """The Markdown of the table called `name`, read from the JSON files under `results`."""
    if name not in TABLES:
        raise KeyError(f"no benchmark table called {name!r}; registered: {sorted(TABLES)}")
    return TABLES[name](Path(results))


def load(results: Path, file: str) -> Any:
    """The parsed `results/file` (for example `load(results, "families.json")`)."""
    return json.loads((results / file).read_text())


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str) -> str:
    """A Markdown table: `align` has one letter per column, `l` (left) or `r` (right)."""
    if len(align) != len(header) or any(len(row) != len(header) for row in rows):
        raise ValueError(f"a table of {len(header)} columns got align {align!r} and rows of "
                         f"{sorted({len(row) for row in rows})} cells")
    rule = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
