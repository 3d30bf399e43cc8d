"""Label spaces: what a task's targets mean, shared by every image of a dataset.

A :class:`TaskInfo` travels from the format reader (which learns the class names, keypoint
names and skeleton from the annotation file) through the dataset and the model to the
checkpoint, so a prediction can be named without the original files.

``kind`` names how the targets are stored and decoded (a *target kind*). The built-in kinds
are ``instances``, ``label``, ``semantic``, ``depth``, ``normals`` and ``edges``; each is
declared by the task module that consumes it (see :mod:`mtvision.tasks.base`), and a task
module of the user's can declare a new one.

Example:
    >>> TaskInfo(kind="semantic", classes=["floor", "wall"]).ignore_index
    255
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["VOID", "TargetKind", "TaskInfo"]

VOID = 255  # the void label of semantic masks unless a label space says otherwise (VOC, Cityscapes use it)
TargetKind = str  # a name in mtvision.tasks.TARGET_KINDS: "instances", "label", "semantic", "depth", ...


@dataclass
class TaskInfo:
    """The label space of one task, shared by every image of the dataset."""

    kind: TargetKind
    classes: list[str] = field(default_factory=list)
    multi_label: bool = False  # only for kind == "label"
    keypoint_names: list[str] = field(default_factory=list)
    skeleton: list[tuple[int, int]] = field(default_factory=list)  # 0-based index pairs
    flip_idx: list[int] = field(default_factory=list)  # keypoint index after a horizontal flip
    keypoint_sigmas: list[float] = field(default_factory=list)  # OKS sigmas; empty = default
    ignore_index: int = VOID  # semantic: value meaning "void"; padding and rotation fill with it
