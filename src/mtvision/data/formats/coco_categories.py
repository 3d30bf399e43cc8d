"""COCO ``categories``: the label space of the ``"objects"`` task, keypoint names, skeleton.

Kept apart from the annotation parser because both the instance and the panoptic
readers use it, and the writer needs :class:`CocoTaskInfo` to restore the original ids.

Example:
    >>> cats = [{"id": 5, "name": "b"}, {"id": 2, "name": "a", "keypoints": ["l", "r"], "skeleton": [[1, 2]]}]
    >>> t = parse_categories(cats, [], "ann.json", None)
    >>> t.classes, t.category_ids, t.skeleton, t.flip_idx
    (['a', 'b'], [2, 5], [(0, 1)], [1, 0])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtvision.data.errors import FormatError, require
from mtvision.data.formats._annotations import flip_idx_from_names
from mtvision.structures import TaskInfo

__all__ = ["CocoTaskInfo", "parse_categories"]


@dataclass
class CocoTaskInfo(TaskInfo):
    """A :class:`TaskInfo` that also remembers COCO's own category ids (one per class).

    COCO ids are often non-contiguous (1..90 for 80 classes); training needs 0..C-1, but a
    file written back must use the original ids or every downstream COCO tool (and
    published results) would disagree about what ``category_id`` 13 means.
    """

    category_ids: list[int] = field(default_factory=list)
    supercategories: list[Any] = field(default_factory=list)


def parse_categories(entries: Any, anns: list, path: str | Path, skeleton_base: int | None) -> CocoTaskInfo:
    """Categories sorted by id -> contiguous classes; keypoint definition shared by all."""
    if skeleton_base not in (None, 0, 1):
        raise ValueError(f"skeleton_base must be None, 0 or 1, got {skeleton_base!r}")
    if not isinstance(entries, list):
        raise FormatError(path, "categories", "must be a list")
    cats = sorted((_category(c, path, i) for i, c in enumerate(entries)), key=lambda c: c["id"])
    for field_name in ("id", "name"):
        seen: set[Any] = set()
        for cat in cats:
            if cat[field_name] in seen:
                raise FormatError(path, "categories", f"duplicate category {field_name} {cat[field_name]!r}")
            seen.add(cat[field_name])
    names, pairs = _keypoint_definition(cats, path)
    k = len(names) or _keypoint_count(anns)
    return CocoTaskInfo(
        kind="instances",
        classes=[c["name"] for c in cats],
        keypoint_names=names or [str(i) for i in range(k)],
        skeleton=_skeleton(pairs, k, skeleton_base, path),
        flip_idx=flip_idx_from_names(names),
        category_ids=[c["id"] for c in cats],
        supercategories=[c.get("supercategory") for c in cats],
    )


def _category(cat: Any, path: str | Path, i: int) -> dict:
    entry = f"categories[{i}]"
    require(cat, "id", path, entry, int)
    require(cat, "name", path, entry, str)
    for key, kind in (("keypoints", str), ("skeleton", list)):
        value = cat.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
            raise FormatError(path, entry, f"{key} must be a list of {kind.__name__}")
    for pair in cat.get("skeleton", []):
        if len(pair) != 2 or not all(type(i) is int for i in pair):
            raise FormatError(path, entry, f"skeleton entries must be [i, j] integer pairs, got {pair!r:.40}")
    return cat


def _keypoint_definition(cats: list[dict], path: str | Path) -> tuple[list[str], list[list[int]]]:
    """The one (names, skeleton) every keypoint category shares; differing ones -> FormatError.

    A record has one keypoint layout per task; COCO allows one per category but real
    datasets (COCO person, animal poses) use a single layout.
    """
    defs = {(tuple(c.get("keypoints", [])), tuple(map(tuple, c.get("skeleton", [])))) for c in cats
            if c.get("keypoints") or c.get("skeleton")}
    if len(defs) > 1:
        raise FormatError(path, "categories", "categories define different keypoints or skeletons; "
                                              "only one keypoint layout per file is supported")
    names, pairs = defs.pop() if defs else ((), ())
    return list(names), [list(p) for p in pairs]


def _keypoint_count(anns: list) -> int:
    """K when categories name no keypoints: from the first annotation that has some."""
    first = next((a["keypoints"] for a in anns if isinstance(a, dict) and isinstance(a.get("keypoints"), list)
                  and a["keypoints"]), [])
    return len(first) // 3


def _skeleton(pairs: list[list[int]], k: int, base: int | None, path: str | Path) -> list[tuple[int, int]]:
    """0-based skeleton: a 0 anywhere means the file is 0-based, otherwise COCO's 1-based."""
    if base is None:
        base = 0 if any(0 in p for p in pairs) else 1
    edges = [(a - base, b - base) for a, b in pairs]
    if any(i < 0 or (k and i >= k) for e in edges for i in e):
        raise FormatError(path, "categories", f"skeleton {pairs} does not fit {k} keypoints "
                                              f"as {base}-based indices (set skeleton_base)")
    return edges
