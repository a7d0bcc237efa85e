"""One fact, one place: every compression default is written once in the package, and the command
writes none of its own (its flags default to None: "the library's default")."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keras_structopt"
# The compression settings whose default must be written once.
SETTINGS = ("sparsity", "clusters", "ratio", "prune_epochs", "cluster_epochs", "slim_epochs", "qat_epochs",
            "max_accuracy_loss", "target")
FLAGS = ("--target", "--max-accuracy-loss", "--slim", "--sparsity", "--clusters", "--quantization",
         "--prune-epochs", "--cluster-epochs")


def _literal_defaults() -> dict[str, list[str]]:
    """`{setting: [where a literal default is written]}` over function signatures and dataclass fields."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            pairs = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                positional = arguments.posonlyargs + arguments.args
                pairs += list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
                pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d is not None]
                pairs = [(a.arg, d) for a, d in pairs]
            elif isinstance(node, ast.ClassDef):
                pairs = [(item.target.id, item.value) for item in node.body
                         if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value]
            for name, default in pairs:
                literal = isinstance(default, ast.Constant) and default.value is not None
                if name in SETTINGS and literal:
                    found[name].append(f"{path.relative_to(PACKAGE)}:{default.lineno} {name}={default.value!r}")
    return found


def test_each_compression_default_is_written_once():
    found = _literal_defaults()
    assert {name: places for name, places in found.items() if len(places) > 1} == {}
    assert {"sparsity", "clusters", "prune_epochs", "cluster_epochs", "slim_epochs", "qat_epochs"} <= set(found)


def test_the_commands_flags_write_no_default_of_their_own():
    from keras_structopt._cli import _parser

    parser = _parser()
    subcommands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for command in ("run", "compress"):
        for action in subcommands[command]._actions:
            flags = set(action.option_strings) & set(FLAGS)
            if flags:
                assert action.default is None, (command, flags, action.default)
