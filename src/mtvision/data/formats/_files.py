"""File access every format reader shares: JSON and text, image headers, PNGs, and paths
that can never leave the dataset root.

Each helper turns an unreadable or malformed file into a
:class:`~mtvision.data.errors.FormatError` naming the file, the entry and the problem, and
:func:`safe_relpath` refuses a path written in an annotation file that would reach outside
the dataset (``..``, absolute paths, drive letters, NUL bytes).

Example:
    >>> safe_relpath("images/./a.jpg", "ann.json", "images[0]")
    'images/a.jpg'
"""

from __future__ import annotations

import gc
import json
import posixpath
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtvision.data.errors import FormatError

#: File suffixes treated as images when a layout is discovered by listing folders.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".dng", ".mpo", ".pfm"})

#: What PIL raises on missing, unreadable, truncated or corrupt images (decoders raise
#: SyntaxError / EOFError / zlib.error for some broken files, and a header announcing a
#: gigantic image raises DecompressionBombError).
PIL_ERRORS = (OSError, SyntaxError, EOFError, ValueError, zlib.error, Image.DecompressionBombError)


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
    """``root / relpath`` after :func:`safe_relpath` has refused paths escaping ``root``, and
    :func:`within_root` one that a symlink inside the dataset leads out of it."""
    path = Path(root) / safe_relpath(relpath, file, entry)
    within_root(root, path, file, entry)
    return path


def within_root(root: str | Path, path: str | Path, file: str | Path, entry: str) -> None:
    """Refuse ``path`` when, symlinks followed, it lands outside ``root`` (followed too).

    The lexical check cannot see a link such as ``images/a.jpg -> /home/me/.ssh/id_rsa`` in
    a downloaded archive; resolving both sides can. A missing file is left to the reader
    that opens it (its error names the file).
    """
    target = Path(path)
    if not target.is_symlink() and not any(p.is_symlink() for p in target.parents if p != Path(".")):
        return
    resolved, base = target.resolve(), Path(root).resolve()
    if resolved != base and base not in resolved.parents:
        raise FormatError(file, entry, f"path {str(path)!r} leads through a symlink to {resolved}, outside the "
                                       f"dataset root {base}; copy the file into the dataset instead")


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
