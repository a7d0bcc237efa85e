"""MkDocs hook: fill `docs/benchmarks.md`'s `<!-- table: name -->` markers with the tables rendered from
`bench/results/*.json` by `bench/tables` (so no benchmark number on the site is copied by hand)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- table: ([\w-]+) -->$", re.M)


def fill(markdown: str) -> str:
    """`markdown` with every table marker replaced by its rendered table (an unknown name raises)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    from tables import render

    return MARKER.sub(lambda match: render(match.group(1)), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    return fill(markdown) if MARKER.search(markdown) else markdown
