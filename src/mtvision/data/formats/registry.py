"""The format registry's dict and decorator, apart from ``mtvision.data.formats`` so that
each format module can register itself without importing the package that imports it.

A format is a module with ``read(path, **options) -> DatasetRecord`` and
``detect(path) -> bool`` (and ``write(record, path)`` where it can be written); it registers
by decorating its ``read``, and the registry holds the module.

Example:
    >>> import mtvision.data.formats
    >>> FORMATS["coco"].__name__
    'mtvision.data.formats.coco'
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

from mtvision.structures.registry import registrar

__all__ = ["FORMATS", "register_format"]

FORMATS: dict[str, ModuleType] = {}
_add = registrar(FORMATS, "format")

F = TypeVar("F", bound=Callable)


def register_format(name: str) -> Callable[[F], F]:
    """Decorator for a format module's ``read``: registers the module under ``name`` (once)."""

    def add(read: F) -> F:
        _add(name)(sys.modules[read.__module__])
        return read

    return add
