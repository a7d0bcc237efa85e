"""MkDocs hook: fill `docs/benchmarks.md`'s `<!-- table: name -->` markers with the tables, and its
`<!-- figure: name -->` markers with the plots (embedded SVG images), rendered from
`bench/results/*.json` by `bench/tables` (so no benchmark number on the site is copied by hand)."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- table: ([\w-]+) -->$", re.M)
FIGURE_MARKER = re.compile(r"^<!-- figure: ([\w-]+) -->$", re.M)


def _tables():
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    import tables

    return tables


def image(name: str) -> str:
    """The figure called `name` as an HTML image whose source is its SVG, inline (nothing to copy)."""
    tables = _tables()
    svg = tables.render_figure(name)
    alt = (tables.FIGURES[name].__doc__ or name).strip().splitlines()[0].rstrip(".")
    source = base64.b64encode(svg.encode()).decode()
    return f'<img alt="{alt}" src="data:image/svg+xml;base64,{source}">'


def fill(markdown: str) -> str:
    """`markdown` with every table and figure marker replaced by what it renders (an unknown name raises)."""
    tables = _tables()
    markdown = MARKER.sub(lambda match: tables.render(match.group(1)), markdown)
    return FIGURE_MARKER.sub(lambda match: image(match.group(1)), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    return fill(markdown) if MARKER.search(markdown) or FIGURE_MARKER.search(markdown) else markdown
