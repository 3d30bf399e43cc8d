"""COCO panoptic annotations: ``segments_info`` + an RGB PNG per image -> instances.

Every segment, "thing" or "stuff", becomes one instance of the ``"objects"`` task with a
compressed RLE mask cut from the PNG (segment id = R + 256 G + 256² B, 0 = unlabelled),
so a panoptic file feeds instance segmentation directly and a semantic map can be painted
from the masks. Segments listed in the JSON but absent from the PNG, and PNGs whose size
differs from the image, are errors: they mean the JSON and the PNGs do not belong together.

Example:
    >>> is_panoptic([{"image_id": 1, "file_name": "1.png", "segments_info": []}])
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats._annotations import CROWD
from mtvision.data.formats._files import load_png, safe_join
from mtvision.data.formats.coco_categories import CocoTaskInfo
from mtvision.data.record import Annotation, ImageRecord
from mtvision.structures import mask_to_rle, rle_box

__all__ = ["is_panoptic", "add_segments"]

_SEGMENT_KEYS = frozenset({"id", "category_id", "area", "bbox", "iscrowd"})


def is_panoptic(anns: list) -> bool:
    """A panoptic file's annotations are per image and carry ``segments_info``."""
    return isinstance(anns[0], dict) and "segments_info" in anns[0]


def add_segments(anns: list, images: list[ImageRecord], task: CocoTaskInfo, path: Path,
                 png_dir: str | Path) -> None:
    """Append one :class:`Annotation` per segment to each image's ``"objects"`` list."""
    by_id = {im.id: im for im in images}
    index = {cid: i for i, cid in enumerate(task.category_ids)}
    for i, ann in enumerate(anns):
        entry = f"annotations[{i}]"
        try:
            image = by_id.get(ann["image_id"])
            if image is None:
                raise ValueError(f"unknown image_id {ann['image_id']!r:.40}")
            ids = _segment_ids(safe_join(png_dir, ann["file_name"], path, entry), image, path, entry)
            segments = ann["segments_info"]
            if not isinstance(segments, list):
                raise ValueError("segments_info must be a list")
            image.targets["objects"].extend(_segment(s, ids, index) for s in segments)
        except FormatError:
            raise
        except PARSE_ERRORS as exc:
            raise FormatError(path, entry, describe(exc)) from exc


def _segment_ids(png: Path, image: ImageRecord, path: Path, entry: str) -> np.ndarray:
    rgb = load_png(png, path, entry, modes=("RGB", "RGBA")).astype(np.int64)
    if rgb.shape[:2] != (image.height, image.width):
        raise FormatError(path, entry, f"{png.name} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                       f"the image is {image.width}x{image.height}")
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _segment(seg: dict, ids: np.ndarray, index: dict[Any, int]) -> Annotation:
    category = index.get(seg["category_id"])
    if category is None:
        raise ValueError(f"unknown category_id {seg['category_id']!r:.40}")
    if type(seg["id"]) is not int or seg["id"] <= 0:
        raise ValueError(f"segment id must be a positive integer, got {seg['id']!r:.40}")
    mask = ids == seg["id"]
    if not mask.any():
        raise ValueError(f"segment id {seg['id']} has no pixels in the PNG")
    crowd = CROWD.get(seg.get("iscrowd", 0))
    if crowd is None:
        raise ValueError(f"iscrowd must be 0, 1 or a boolean, got {seg['iscrowd']!r:.40}")
    rle = mask_to_rle(mask)
    attributes = {k: v for k, v in seg.items() if k not in _SEGMENT_KEYS}
    return Annotation(category, rle_box(rle), rle, None, crowd, attributes)
