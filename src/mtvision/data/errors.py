"""The one error every format reader raises on malformed input."""

from __future__ import annotations

from pathlib import Path


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
