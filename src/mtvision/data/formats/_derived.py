"""Maps a reader must compute before training can read them, written once into a cache folder.

Most readers only point at files (a record holds paths; pixels are decoded lazily by
:mod:`mtvision.data.loading`). Three research layouts store their targets in a form no decoder
can read per image: NYUv2 packs 1449 images into one HDF5 ``.mat``; MTAN/LibMTL store images
as float ``.npy`` arrays; PASCAL-Context stores 459-class label maps and human-part masks in
MATLAB structs, from which the 21/59-class maps, part maps and edges are *derived*. Their
readers convert each such target once into a plain file (index PNG, 8-bit RGB PNG, float
``.npy``) under a cache folder and return a record pointing at those files, so the loader and
the kind decoders (:mod:`mtvision.tasks.kinds`) stay format-blind.

A cached file is reused while it is newer than every source it was derived from; the source
files are never touched. The default cache is a hidden ``.mtvision/`` folder inside the
dataset (hidden, so folder readers never take it for data); a read-only dataset needs the
reader's ``cache=`` option.

Example:
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> cache = Cache(root, None, entry="x")
    >>> cache.index_png("label/0.png", np.array([[0, 255]], np.uint8), sources=[]).as_posix()
    '.mtvision/label/0.png'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mtvision.data.errors import FormatError

DEFAULT_FOLDER = ".mtvision"


class Cache:
    """Where one dataset's derived files go: ``relative`` paths under ``folder``, relative to ``root``.

    ``root`` is the record's root; ``folder`` (``cache=`` of the reader, default
    ``root/.mtvision``) may lie outside it, in which case the paths handed back are absolute.
    """

    def __init__(self, root: Path, folder: str | Path | None, entry: str) -> None:
        self.root = Path(root)
        self.folder = Path(folder) if folder is not None else self.root / DEFAULT_FOLDER
        self.entry = entry  # the reader option named in errors

    def path(self, relative: str) -> Path:
        return self.folder / relative

    def ref(self, relative: str) -> Path:
        """The record's path of a cached file: relative to ``root`` when the cache is inside it."""
        full = self.path(relative)
        try:
            return full.relative_to(self.root)
        except ValueError:
            return full.resolve()

    def fresh(self, relative: str, sources: Sequence[Path]) -> bool:
        """Whether the cached file exists and is newer than each of ``sources``."""
        target = self.path(relative)
        if not target.is_file():
            return False
        mtime = target.stat().st_mtime
        return all(source.stat().st_mtime <= mtime for source in sources)

    def write(self, relative: str, save: Callable[[Path], None]) -> Path:
        """Write through ``save(temporary path)`` then rename, so a killed run leaves no half file."""
        target = self.path(relative)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            save(temporary)
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise FormatError(target, "", f"cannot write the derived map ({exc}); give the reader a writable "
                                          f"folder with {self.entry}=<folder>") from exc
        return self.ref(relative)

    def index_png(self, relative: str, labels: np.ndarray, sources: Sequence[Path]) -> Path:
        """A uint8 index map (255 = void) as a grey PNG, the form ``decode_semantic`` reads."""
        if self.fresh(relative, sources):
            return self.ref(relative)
        return self.write(relative, lambda p: Image.fromarray(labels.astype(np.uint8), "L").save(p, format="PNG"))

    def rgb_png(self, relative: str, pixels: np.ndarray, sources: Sequence[Path]) -> Path:
        """An ``[H, W, 3]`` uint8 image as PNG (lossless, unlike JPEG)."""
        if self.fresh(relative, sources):
            return self.ref(relative)
        return self.write(relative, lambda p: Image.fromarray(pixels.astype(np.uint8), "RGB").save(p, format="PNG"))

    def npy(self, relative: str, array: np.ndarray, sources: Sequence[Path]) -> Path:
        """A float array as ``.npy`` (depth in metres, unit normals), read by the dense decoders as is."""
        if self.fresh(relative, sources):
            return self.ref(relative)
        return self.write(relative, lambda p: np.save(p, array, allow_pickle=False))


def to_uint8_image(array: np.ndarray, file: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 from an image array stored HWC or CHW, uint8 or float in [0, 1] (MTAN).

    Floats are rounded to the nearest of 256 levels: at most 0.5/255 from the stored value,
    below what the uint8 pipeline keeps of any image anyway.
    """
    hwc = np.moveaxis(array, 0, -1) if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3 else array
    if hwc.ndim != 3 or hwc.shape[-1] != 3:
        raise FormatError(file, "", f"image array has shape {array.shape}; expected [H, W, 3] or [3, H, W]")
    if hwc.dtype == np.uint8:
        return hwc
    if not np.issubdtype(hwc.dtype, np.floating):
        raise FormatError(file, "", f"image array of dtype {hwc.dtype}; expected uint8 or float in [0, 1]")
    low, high = float(np.nanmin(hwc)), float(np.nanmax(hwc))
    if not (low >= -1e-3 and high <= 1 + 1e-3):
        raise FormatError(file, "", f"float image values span [{low:.3g}, {high:.3g}]; expected [0, 1]")
    return np.clip(np.rint(hwc * 255), 0, 255).astype(np.uint8)


def check_labels(labels: np.ndarray, allowed: int, void: Sequence[int], file: Path, what: str) -> np.ndarray:
    """``labels`` as int64, refusing values that are neither in ``0..allowed-1`` nor in ``void``.

    A label outside the class set would index past the head's logits (a crash deep in the
    loss, or a silently wrong confusion matrix); here it names the file and the values.
    """
    values = np.asarray(labels)
    if np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise FormatError(file, what, "labels must be whole numbers (found fractions or NaN)")
    values = values.astype(np.int64)
    bad = np.setdiff1d(np.unique(values), np.concatenate([np.arange(allowed), np.asarray(void, np.int64)]))
    if bad.size:
        shown = ", ".join(map(str, bad[:8].tolist())) + (" ..." if bad.size > 8 else "")
        raise FormatError(file, what, f"label value(s) {shown} outside the {allowed} classes "
                                      f"(0..{allowed - 1}, void {list(void)})")
    return values
