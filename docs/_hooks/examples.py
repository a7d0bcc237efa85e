"""A griffe extension for the API reference: our docstrings end with `Example:` (singular, as
Keras writes it), which griffe's Google-style parser reads as a plain admonition; this makes
it the examples section, so the doctest lines render as code."""

from __future__ import annotations

import re

import griffe


class ExampleSections(griffe.Extension):
    """Renames a docstring's `Example:` section heading to `Examples:` before parsing."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = re.sub(r"^(\s*)Example:$", r"\1Examples:", obj.docstring.value, flags=re.M)
