"""Every benchmark table and figure of the documentation, rendered from `bench/results/*.json`.

    python bench/tables            # prints every table
    python bench/tables families   # prints one

`docs/benchmarks.md` places them with `<!-- table: name -->` and `<!-- figure: name -->`
markers; `docs/_hooks/benchmarks.py` renders them when the site is built.
"""

from . import compression, figures, platforms, searching  # noqa: F401  (each registers its tables)
from ._base import FIGURES, RESULTS, TABLES, figure, load, markdown, render, render_figure, table

__all__ = ["FIGURES", "RESULTS", "TABLES", "figure", "load", "markdown", "render", "render_figure", "table"]
