"""`python bench/tables [name ...]`: print the named benchmark tables (all of them by default)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tables import TABLES, render  # noqa: E402

for name in sys.argv[1:] or sorted(TABLES):
    print(f"## {name}\n\n{render(name)}\n")
