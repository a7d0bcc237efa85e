"""What an architecture family is, and the registry of families.

A family is one module: its space rules (block kinds, connections, options and their
checks), its rendering (one function on the builder interface, which makes real layers
or only counts them) and its slimming map (which layers carry each block's width). A new
family is that module plus one `register_family(...)` line; the `Architecture`, `render`,
`count`, the bridge and slimming then know it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from keras_structopt import _checks

if TYPE_CHECKING:
    from keras_structopt.space._architecture import Architecture, Block


@dataclasses.dataclass(frozen=True)
class Family:
    """One architecture family: its rules, its rendering, its slimming map.

    Args:
        name: The family's name, as `Architecture(family=...)` takes it.
        kinds: The block kinds its specs may hold.
        connections: The connections it accepts.
        options: Its options and their defaults.
        build: `build(spec, b)`: the network on the builder `b` (`b.input`, `b.dense`,
            `b.conv`, ..., `b.model`); the same code renders (Keras 3, tf_keras) and
            counts (parameters, MACs).
        block_layers: `block_layers(spec, i, block)`: the names of the layers whose
            width is block `i`'s (what slimming reads back to keep a spec); `[]` where
            a block has no single width.
        choices: Options limited to a set of values.
        check: `check(shape, blocks, options)`: raises a `ConfigurationError` for a
            bad combination; may put options in their canonical form (in place).
        connection: `connection(shape, blocks, options, connection)`: the connection
            the spec stores (two descriptions of one network are one spec).
        slimmed_options: `slimmed_options(spec, model)`: options a narrower model
            changes besides the blocks' widths (None: the spec cannot describe it).

    Example:
        >>> from keras_structopt.space import family
        >>> family("dense").connections
        ('plain', 'residual', 'dense')
    """

    name: str
    kinds: tuple[str, ...]
    connections: tuple[str, ...]
    options: Mapping[str, Any]
    build: Callable[..., Any]
    block_layers: Callable[[Architecture, int, Block], list[str]]
    choices: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    check: Callable[..., None] | None = None
    connection: Callable[..., str] | None = None
    slimmed_options: Callable[..., dict | None] | None = None


_FAMILIES: dict[str, Family] = {}


def register_family(definition: Family) -> Family:
    """Makes a family known to `Architecture`, `render`, `count` and slimming; returns it.

    Registering a family of the same name again replaces it (a module reloaded).

    Example:
        >>> from keras_structopt.space import family, register_family
        >>> register_family(family("dense")).name
        'dense'
    """
    if not isinstance(definition, Family):
        raise _checks.error(f"Expected a keras_structopt.space.Family. Received: {definition!r}.")
    _FAMILIES[definition.name] = definition
    return definition


def family(name: str) -> Family:
    """The registered family `name`; a `ConfigurationError` names the known ones otherwise.

    Example:
        >>> family("conv").kinds
        ('plain', 'residual', 'inception', 'separable')
    """
    _checks.one_of("family", name, tuple(_FAMILIES))
    return _FAMILIES[name]


def family_names() -> tuple[str, ...]:
    """The registered families' names, in the order they were registered.

    Example:
        >>> family_names()[:2]
        ('dense', 'conv')
    """
    return tuple(_FAMILIES)
