"""The public mask codec: COCO RLE and polygons to and from binary masks, and mask boxes.

Every layer meets instance masks in one of three forms: COCO polygons (flat
``[x1, y1, x2, y2, ...]`` lists), COCO RLE (``{"size": [h, w], "counts": ...}``), or a binary
``[H, W]`` array. pycocotools does the rasterising and run-length coding; this module adds
what it leaves out: validating an RLE before decoding it (pycocotools reads past a short
one into uninitialised memory), JSON-ready ``str`` counts, and boxes in this project's
convention (far edges exclusive).

Example:
    >>> import numpy as np
    >>> mask = np.zeros((4, 5), np.uint8); mask[1:3, 2:4] = 1
    >>> rle = mask_to_rle(mask)
    >>> rle_box(rle), int(decode_mask(rle, 4, 5).sum())
    ((2.0, 1.0, 4.0, 3.0), 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

__all__ = ["Polygons", "Rle", "check_rle", "decode_mask", "mask_to_rle", "rle_box", "segmentation_area",
           "to_coco_rle"]

Polygons = list[list[float]]  # COCO style: each polygon a flat [x1, y1, x2, y2, ...] in pixels
Rle = dict[str, Any]  # COCO RLE: {"size": [h, w], "counts": str | list[int]}


def _rle_string_total(counts: str) -> int:
    """Sum of the run lengths in a compressed COCO RLE string.

    Only a length check: pycocotools decodes an RLE whose runs add up to less than h*w
    into uninitialised memory without an error, so readers must verify the total first.
    The decoding loop mirrors pycocotools' ``rleFrString``.
    """
    runs: list[int] = []
    pos, n = 0, len(counts)
    while pos < n:
        value, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError("truncated RLE counts string")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {counts[pos]!r} in RLE counts")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos, shift = pos + 1, shift + 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("negative run length in RLE counts")
        runs.append(value)
    total = sum(runs)
    return total


def check_rle(rle: dict, height: int, width: int) -> Rle:
    """Validate a COCO RLE for an image of the given size; return it with ``str`` counts.

    Raises ValueError (callers wrap it in FormatError) when the size differs from the
    image or the runs do not cover exactly ``height * width`` pixels.
    """
    size, counts = rle["size"], rle["counts"]
    if list(size) != [height, width]:
        raise ValueError(f"RLE size {size} differs from the image size [h, w] = [{height}, {width}]")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        total = _rle_string_total(counts)
    elif isinstance(counts, list) and all(type(c) is int and c >= 0 for c in counts):
        total = sum(counts)
    else:
        raise ValueError("RLE counts must be a string or a list of non-negative integers")
    if total != height * width:
        raise ValueError(f"RLE runs cover {total} pixels, the image has {height * width}")
    return {"size": [height, width], "counts": counts}


def to_coco_rle(segmentation: Polygons | Rle, height: int, width: int) -> dict:
    """One pycocotools RLE (bytes counts) for polygons, uncompressed or compressed RLE."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")
            if isinstance(segmentation["counts"], str) else segmentation["counts"]}


def segmentation_area(segmentation: Polygons | Rle, height: int, width: int) -> int:
    """Pixel area of a segmentation as pycocotools rasterises it."""
    return int(mask_utils.area(to_coco_rle(segmentation, height, width)))


def decode_mask(segmentation: Polygons | Rle, height: int, width: int) -> np.ndarray:
    """``[H, W]`` uint8 mask of a segmentation (polygons are rasterised by pycocotools)."""
    return mask_utils.decode(to_coco_rle(segmentation, height, width))


def mask_to_rle(mask: np.ndarray) -> Rle:
    """Compressed COCO RLE (``str`` counts, JSON-ready) of a binary ``[H, W]`` mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_box(rle: Rle) -> tuple[float, float, float, float]:
    """XYXY box of an RLE mask (pycocotools' ``toBbox`` gives XYWH)."""
    x, y, w, h = (float(v) for v in mask_utils.toBbox(to_coco_rle(rle, *rle["size"])))
    return (x, y, x + w, y + h)
