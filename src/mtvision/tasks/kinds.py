"""Target kinds: how the targets of a task are stored in a record and decoded into a sample.

A record stores each image's target for a task in one of two ways: inline (a class index,
a list of annotations) or, for per-pixel maps, as a file (``DenseRef``) that the data layer
reads into an array. The *kind* (``TaskInfo.kind``) says which, and how the stored value
becomes the tensor target a head trains on. The task module that consumes a kind declares
it here with :func:`target_kind`, next to its head, loss and metric, so adding a task type
with a new kind of target is one file; :mod:`mtvision.data.loading` only looks kinds up.

The built-in kinds are declared by the built-in task modules, which ``mtvision.tasks``
imports, so this registry is complete whenever the package is imported. How each kind is stored
is also in :data:`mtvision.structures.MAP_FILE_KINDS`, which the readers use without torch.

Example:
    >>> import mtvision.tasks
    >>> sorted(TARGET_KINDS)
    ['depth', 'edges', 'instances', 'label', 'normals', 'semantic']
    >>> [k for k in sorted(TARGET_KINDS) if TARGET_KINDS[k].dense]
    ['depth', 'edges', 'normals', 'semantic']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtvision.structures import MAP_FILE_KINDS, TaskInfo, dense_kinds
from mtvision.structures.registry import registrar

__all__ = ["TARGET_KINDS", "TargetKindSpec", "dense_kinds", "get_target_kind", "single_channel", "target_kind"]

# decode(stored value, label space, image (h, w), scale) -> the Sample target. For a dense
# kind the stored value is the map file's array and ``scale`` its DenseRef.scale; otherwise
# it is the record's own value (an int, a list of annotations...) and scale is 1.
Decoder = Callable[[Any, TaskInfo, tuple[int, int], float], Any]


@dataclass(frozen=True)
class TargetKindSpec:
    """One kind of target: its name, whether it is a per-pixel map file, and its decoder."""

    name: str
    dense: bool  # stored as a map file (DenseRef) of the image's size, read into an array first
    decode: Decoder


TARGET_KINDS: dict[str, TargetKindSpec] = {}
_add_kind = registrar(TARGET_KINDS, "target kind")


def target_kind(name: str, *, dense: bool, decode: Decoder) -> TargetKindSpec:
    """Declare the kind ``name`` and how it is stored (:data:`~mtvision.structures.MAP_FILE_KINDS`);
    declaring one name twice is an error (two decoders for one kind), and so is a built-in
    kind declared with another storage (the readers would store it one way, decode it another)."""
    if MAP_FILE_KINDS.get(name, dense) != dense:
        raise ValueError(f"target kind {name!r} is stored {'as map files' if MAP_FILE_KINDS[name] else 'inline'}; "
                         f"declared with dense={dense}")
    spec = _add_kind(name)(TargetKindSpec(name, dense, decode))
    MAP_FILE_KINDS[name] = dense
    return spec


def get_target_kind(name: str) -> TargetKindSpec:
    """The kind ``name``; an unknown one lists the declared kinds."""
    if name not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {name!r}; declared kinds: {', '.join(sorted(TARGET_KINDS))} "
                         "(a task module declares its kind with mtvision.tasks.target_kind)")
    return TARGET_KINDS[name]


def single_channel(array: np.ndarray, kind: str) -> np.ndarray:
    """An ``[H, W]`` view of a one-channel map read as ``[H, W]``, ``[1, H, W]`` or ``[H, W, 1]``."""
    squeezed = array.squeeze(axis=0) if array.ndim == 3 and array.shape[0] == 1 else array
    squeezed = squeezed.squeeze(axis=-1) if squeezed.ndim == 3 and squeezed.shape[-1] == 1 else squeezed
    if squeezed.ndim != 2:
        raise ValueError(f"{kind} map must have one channel (an index / grey PNG), got shape {array.shape}")
    return squeezed
