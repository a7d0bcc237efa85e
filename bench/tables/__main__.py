"""`python bench/tables [name ...]`: print the named benchmark tables (all of them by default);
`python bench/tables --figures DIR`: write every benchmark figure to DIR/<name>.svg."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tables import FIGURES, TABLES, render, render_figure  # noqa: E402

if sys.argv[1:2] == ["--figures"]:
    folder = Path(sys.argv[2] if len(sys.argv) > 2 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(FIGURES):
        (folder / f"{name}.svg").write_text(render_figure(name))
        print(folder / f"{name}.svg")
else:
    for name in sys.argv[1:] or sorted(TABLES):
        print(f"## {name}\n\n{render(name)}\n")
