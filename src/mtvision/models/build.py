"""Assemble a :class:`MultiTaskModel` from names: backbone, neck, then one head per task.

The order matters: a head is sized by the neck (its channels and strides), and the neck by
the backbone, so tasks are given as *specifications* (:class:`TaskSpec`) and built here,
once the pyramid is known, rather than as ready-made modules.

Example:
    >>> import torch
    >>> model = build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16)
    >>> model(torch.zeros(1, 3, 64, 64))
    {}
    >>> model.parameter_counts()["neck"] > 0
    True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from mtvision.models.backbone import Backbone
from mtvision.models.multitask import MultiTaskModel
from mtvision.models.neck import FPN
from mtvision.structures import TaskInfo
from mtvision.tasks import Task, create_task

__all__ = ["TaskSpec", "build_model"]

logger = logging.getLogger(__name__)


class TaskSpec(NamedTuple):
    """What to build for one task: its type (a key of ``mtvision.tasks.TASKS``), its label
    space, and the keyword options of that task type's constructor."""

    kind: str
    info: TaskInfo
    options: Mapping[str, Any] = MappingProxyType({})


def build_model(backbone: str, tasks: Mapping[str, TaskSpec | tuple[Any, ...]],
                pretrained: bool | str | Path = False, neck_channels: int = 64,
                out_indices: Sequence[int] = (-4, -3, -2, -1), in_chans: int = 3) -> MultiTaskModel:
    """A hard-sharing multi-task model: timm ``backbone`` -> FPN -> one head per task.

    Args:
        backbone: timm model name.
        tasks: task name -> :class:`TaskSpec` (or a plain ``(kind, info[, options])`` tuple).
        pretrained: see :class:`~mtvision.models.Backbone` (``False``, ``True`` or a path).
        neck_channels: channels of every pyramid level, i.e. the width every head reads.
        out_indices: backbone stages fed to the neck.
        in_chans: image channels.
    """
    trunk = Backbone(backbone, pretrained=pretrained, out_indices=out_indices, in_chans=in_chans)
    neck = FPN(trunk.channels, trunk.strides, channels=neck_channels)
    heads = {name: _build_task(name, TaskSpec(*spec), neck) for name, spec in tasks.items()}
    model = MultiTaskModel(trunk, neck, heads)
    logger.info("built %s: %s", backbone, _format_counts(model.parameter_counts()))
    return model


def _build_task(name: str, spec: TaskSpec, neck: FPN) -> Task:
    return create_task(spec.kind, name, spec.info, neck.channels, neck.strides, **spec.options)


def _format_counts(counts: Mapping[str, int]) -> str:
    """``backbone 1.23M, neck 0.05M, ...``: what sharing saves, readable in a log line."""
    return ", ".join(f"{part} {n / 1e6:.2f}M" for part, n in counts.items())
