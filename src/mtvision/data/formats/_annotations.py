"""Annotation-field helpers several readers and writers share: crowd flags, boxes from
points, left/right keypoint pairing, the instance task of a record.

Example:
    >>> box_from_points([3, 1, 2], [5, 4, 9])
    (1.0, 4.0, 3.0, 9.0)
    >>> flip_idx_from_names(["nose", "left_eye", "right_eye"])
    [0, 2, 1]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mtvision.data.record import DatasetRecord
from mtvision.structures import TaskInfo

#: Accepted spellings of COCO's ``iscrowd``: 0/1, JSON booleans (True == 1), and the strings
#: some tools (COCO-Annotator) write. A dict lookup keeps the COCO hot loop fast.
CROWD = {0: False, 1: True, "0": False, "1": True, "false": False, "true": True, "False": False, "True": True}


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
