"""Label spaces: what a task's targets mean, shared by every image of a dataset.

A :class:`TaskInfo` travels from the format reader (which learns the class names, keypoint
names and skeleton from the annotation file) through the dataset and the model to the
checkpoint, so a prediction can be named without the original files.

``kind`` names how the targets are stored and decoded (a *target kind*). The built-in kinds
are ``instances``, ``label``, ``semantic``, ``depth``, ``normals`` and ``edges``; each is
declared by the task module that consumes it (see :mod:`mtvision.tasks.kinds`), and a task
module of the user's can declare a new one. How a kind is *stored* (inline, or a map file)
is also known here, in :data:`MAP_FILE_KINDS`: the format readers and writers need only that,
and reading it here keeps them, and the data commands, free of the task modules and torch.

Example:
    >>> TaskInfo(kind="semantic", classes=["floor", "wall"]).ignore_index
    255
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAP_FILE_KINDS", "VOID", "TargetKind", "TaskInfo", "dense_kinds", "kind_names"]

VOID = 255  # the void label of semantic masks unless a label space says otherwise (VOC, Cityscapes use it)
TargetKind = str  # a name in mtvision.tasks.TARGET_KINDS: "instances", "label", "semantic", "depth", ...

#: kind -> whether its targets are stored as per-pixel map files (``DenseRef``) rather than inline.
#: The built-in kinds are listed here; ``mtvision.tasks.target_kind`` adds a user's new kind.
MAP_FILE_KINDS: dict[TargetKind, bool] = {"label": False, "instances": False, "semantic": True, "depth": True,
                                          "normals": True, "edges": True}


def kind_names() -> tuple[TargetKind, ...]:
    """Every declared kind, sorted."""
    return tuple(sorted(MAP_FILE_KINDS))


def dense_kinds() -> tuple[TargetKind, ...]:
    """The kinds stored as per-pixel map files, sorted."""
    return tuple(sorted(kind for kind, dense in MAP_FILE_KINDS.items() if dense))


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
