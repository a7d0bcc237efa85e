"""Every benchmark table of the documentation, rendered from `bench/results/*.json`.

    python bench/tables            # prints every table
    python bench/tables families   # prints one

`docs/benchmarks.md` places them with `<!-- table: name -->` markers; `docs/_hooks/benchmarks.py`
renders them when the site is built.
"""

from . import compression, platforms, searching  # noqa: F401  (each registers its tables)
from ._base import RESULTS, TABLES, load, markdown, render, table

__all__ = ["RESULTS", "TABLES", "load", "markdown", "render", "table"]
