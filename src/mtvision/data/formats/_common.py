"""Helpers every format reader shares: safe file access, typed field access, mask maths.

They exist so that each reader turns *every* malformed input into a
:class:`~mtvision.data.errors.FormatError` naming the file, the entry and the problem,
instead of a bare ``KeyError`` from deep inside a parser, and so that a path written in
an annotation file can never reach outside the dataset root.

Example:
    >>> safe_relpath("images/./a.jpg", "ann.json", "images[0]")
    'images/a.jpg'
    >>> box_from_points([3, 1, 2], [5, 4, 9])
    (1.0, 4.0, 3.0, 9.0)
    >>> flip_idx_from_names(["nose", "left_eye", "right_eye"])
    [0, 2, 1]
"""

from __future__ import annotations

import gc
import json
import posixpath
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.record import DatasetRecord
from mtvision.structures import TaskInfo

T = TypeVar("T")

#: File suffixes treated as images when a layout is discovered by listing folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"})

#: Accepted spellings of COCO's ``iscrowd``: 0/1, JSON booleans (True == 1), and the strings
#: some tools (COCO-Annotator) write. A dict lookup keeps the COCO hot loop fast.
CROWD = {0: False, 1: True, "0": False, "1": True, "false": False, "true": True, "False": False, "True": True}

#: Exceptions a parser may raise on bad input; readers catch exactly these and re-raise
#: them as FormatError with :func:`describe` as the problem.
PARSE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)

#: What PIL raises on missing, unreadable, truncated or corrupt images (decoders raise
#: SyntaxError / EOFError / zlib.error for some broken files, and a header announcing a
#: gigantic image raises DecompressionBombError).
PIL_ERRORS = (OSError, SyntaxError, EOFError, ValueError, zlib.error, Image.DecompressionBombError)


def describe(exc: BaseException) -> str:
    """A user-facing problem text for an exception raised while parsing one entry."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    if isinstance(exc, (TypeError, AttributeError)):
        return f"a field has the wrong type ({exc})"
    return str(exc) or type(exc).__name__


@contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector out of a reader that builds millions of objects.

    Parsing a large JSON file allocates millions of containers in one go, and CPython's
    collector, triggered by allocation counts, walks that growing heap again and again
    (young collections every 700 allocations, a full one whenever the old generation grew
    by a quarter) without ever finding garbage: parsed JSON and records hold no reference
    cycles. That is ~45% of pycocotools' ``COCO()`` time on the files of
    ``benchmarks/read_coco.py``, and would make the COCO reader ~1.7x slower. So the
    collector is off while reading, and on exit every tracked object of the process is
    moved straight into the oldest generation (``gc.freeze()`` + ``gc.unfreeze()``: two
    list splices, no walk) rather than walked twice more on its way up through the young
    generations: the survivors are long-lived record data. The next full collection walks
    them once, as any long-lived data (the benchmark reports that cost too). The side
    effect, young objects of the caller promoted early, is harmless; it is skipped when
    the program has frozen objects of its own, which ``unfreeze`` would release.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; unreadable, non-UTF-8, too deeply nested or invalid -> FormatError."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise FormatError(path, "", f"cannot read JSON: {exc}") from exc


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (a BOM is tolerated); unreadable or not text -> FormatError."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, "", f"cannot read text: {exc}") from exc


_UNUSUAL_PATH = re.compile(r"[\\\0:]|^/|^\s|\s$|//|/$|(^|/)\.\.?(/|$)")


def safe_relpath(relpath: object, file: str | Path, entry: str) -> str:
    """Normalise a relative path from an annotation file, refusing one that leaves its root.

    The check is lexical (no symlink resolution) so that datasets whose image folder is a
    symlink keep working, while ``..``, absolute paths, drive letters and NUL bytes, which
    would let an annotation file read arbitrary files, are refused. Backslashes count as
    separators because Windows tools write them.
    """
    if not isinstance(relpath, str) or not relpath.strip():
        raise FormatError(file, entry, f"path must be a non-empty string, got {relpath!r}")
    if not _UNUSUAL_PATH.search(relpath):  # plain "dir/name.jpg": nothing to normalise or refuse
        return relpath
    posix = relpath.replace("\\", "/")
    norm = posixpath.normpath(posix)
    if "\0" in posix or posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or norm == ".." \
            or norm.startswith("../"):
        raise FormatError(file, entry, f"path {relpath!r} points outside the dataset root")
    return norm


def safe_join(root: str | Path, relpath: object, file: str | Path, entry: str) -> Path:
    """``root / relpath`` after :func:`safe_relpath` has refused paths escaping ``root``."""
    return Path(root) / safe_relpath(relpath, file, entry)


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


def instance_task(record: DatasetRecord, task: str) -> TaskInfo:
    """The writers' check that ``task`` exists and holds instances, naming the valid ones."""
    info = record.tasks.get(task)
    if info is None or info.kind != "instances":
        valid = [name for name, t in record.tasks.items() if t.kind == "instances"]
        raise ValueError(f"no instance task {task!r} in the record; instance tasks: {valid}")
    return info


def box_from_points(xs: Iterable[float], ys: Iterable[float]) -> tuple[float, float, float, float]:
    """The XYXY box enclosing points; formats without explicit boxes derive them this way."""
    xs, ys = list(xs), list(ys)
    if not xs or not ys:
        raise ValueError("cannot compute a box from zero points")
    return (float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)))


def flip_idx_from_names(names: Sequence[str]) -> list[int]:
    """Keypoint order after a horizontal flip, pairing ``left``/``right`` names.

    Returns ``[]`` (unknown) when no name mentions a side, so that a caller never mistakes
    "no pairs found" for "the skeleton is symmetric".
    """
    swap = {"left": "right", "right": "left", "l": "r", "r": "l"}
    index = {n.lower(): i for i, n in enumerate(names)}

    def mirrored(name: str) -> str:
        parts = re.split(r"([_\-\s.])", name.lower())
        return "".join(swap.get(p, p) for p in parts)

    flip = [index.get(mirrored(n), i) for i, n in enumerate(names)]
    return flip if any(f != i for i, f in enumerate(flip)) else []


def image_size(path: str | Path, file: str | Path, entry: str) -> tuple[int, int]:
    """``(width, height)`` from the image header only (PIL does not decode pixels here)."""
    try:
        with Image.open(path) as im:
            return im.size
    except PIL_ERRORS as exc:
        raise FormatError(file, entry, f"cannot read image size of {path}: {exc}") from exc


def load_png(path: str | Path, file: str | Path, entry: str, modes: Sequence[str]) -> np.ndarray:
    """Decode a PNG whose PIL mode is one of ``modes`` (e.g. palette ``P``) to an array."""
    try:
        with Image.open(path) as im:
            mode, array = im.mode, np.asarray(im)
    except PIL_ERRORS as exc:
        raise FormatError(file, entry, f"cannot read {path}: {exc}") from exc
    if mode not in modes:
        raise FormatError(file, entry, f"{path}: PNG mode {mode!r}, expected one of {list(modes)}")
    return array
