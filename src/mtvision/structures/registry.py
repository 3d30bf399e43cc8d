"""The one registry style of the project: a plain dict filled by a decorator.

Task types, target kinds, balancing methods and dataset formats are each a ``dict`` from a
name to what it names, filled by a decorator in the module that defines the entry and
complete as soon as its package is imported (each package's ``__init__`` imports every
built-in module explicitly: no registry that is empty until some other import happens).
Registering a name twice is an error, so two modules can never silently shadow each other.

Example:
    >>> SHAPES: dict[str, type] = {}
    >>> shape = registrar(SHAPES, "shape")
    >>> @shape("disc")
    ... class Disc: ...
    >>> SHAPES["disc"].__name__
    'Disc'
    >>> shape("disc")(int)
    Traceback (most recent call last):
    ...
    ValueError: shape 'disc' is registered twice (mtvision.structures.registry.Disc and builtins.int)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["closest_hint", "registrar"]

T = TypeVar("T")


def registrar(registry: dict[str, Any], what: str) -> Callable[[str], Callable[[T], T]]:
    """A decorator factory adding entries to ``registry``; ``what`` names them in errors."""

    def register(name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in registry:
                raise ValueError(f"{what} {name!r} is registered twice ({_where(registry[name])} and {_where(entry)})")
            registry[name] = entry
            return entry

        return add

    return register


def _where(entry: Any) -> str:
    """``module.Name`` of a class or function, the name of a module."""
    module = getattr(entry, "__module__", None)
    name = getattr(entry, "__qualname__", None) or getattr(entry, "__name__", repr(entry))
    return f"{module}.{name}" if module else name


def closest_hint(word: str, names: Sequence[str]) -> str:
    """``"did you mean 'x'? "`` for the name closest to a mistyped ``word``, else ``""``: the
    suggestion every unknown-name error of the project puts before its list of valid names.

    Example:
        >>> closest_hint("mtam", ["hard", "mtan"]), closest_hint("zzz", ["hard"])
        ("did you mean 'mtan'? ", '')
    """
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""
