"""The one error every format reader raises on malformed input, and the helpers that make it.

Readers catch exactly :data:`PARSE_ERRORS` while parsing an entry and re-raise them as
:class:`FormatError` with :func:`describe` as the problem; :func:`require` reads a typed field.

Example:
    >>> require({"id": 3}, "file_name", "ann.json", "images[0]", str)
    Traceback (most recent call last):
    ...
    mtvision.data.errors.FormatError: ann.json: images[0]: missing field 'file_name'
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar


class FormatError(ValueError):
    """A malformed annotation: names the file, the entry in it, and what is wrong.

    Readers raise only this (never KeyError/IndexError from deep inside a parser), so a
    user sees e.g. ``instances.json: annotations[12] (id=40): bbox has 3 numbers, expected 4``.

    Example:
        >>> str(FormatError("ann.json", "images[3]", "missing 'file_name'"))
        "ann.json: images[3]: missing 'file_name'"
    """

    def __init__(self, file: str | Path, entry: str, problem: str) -> None:
        self.file = str(file)
        self.entry = entry
        self.problem = problem
        super().__init__(f"{self.file}: {entry}: {problem}" if entry else f"{self.file}: {problem}")


T = TypeVar("T")

#: Exceptions a parser may raise on bad input; readers catch exactly these and re-raise
#: them as FormatError with :func:`describe` as the problem.
PARSE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


def describe(exc: BaseException) -> str:
    """A user-facing problem text for an exception raised while parsing one entry."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    if isinstance(exc, (TypeError, AttributeError)):
        return f"a field has the wrong type ({exc})"
    return str(exc) or type(exc).__name__


def require(mapping: object, key: str, file: str | Path, entry: str, kind: type[T] | tuple[type, ...]) -> T:
    """``mapping[key]`` checked to be of ``kind``; missing or mistyped -> FormatError.

    ``bool`` is refused where a number is expected unless ``kind`` names ``bool``, because
    JSON ``true`` silently passing as ``1`` hides broken exporters.
    """
    if not isinstance(mapping, dict):
        raise FormatError(file, entry, f"expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise FormatError(file, entry, f"missing field {key!r}")
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise FormatError(file, entry, f"field {key!r} must be {names}, got {value!r:.60}")
    return value  # type: ignore[return-value]
