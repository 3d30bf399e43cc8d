"""Assemble a :class:`MultiTaskModel` from names: backbone, architecture, then one head per task.

The order matters: a head is sized by the pyramid the architecture gives it (its channels
and strides), and that by the backbone, so tasks are given as *specifications*
(:class:`TaskSpec`) and built here, once the pyramid is known, rather than as ready-made
modules.

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
from typing import Any

from mtvision.models.architectures import Trunk, create_architecture
from mtvision.models.backbone import Backbone
from mtvision.models.multitask import MultiTaskModel
from mtvision.models.specs import TaskSpec
from mtvision.tasks import create_task

__all__ = ["TaskSpec", "build_model"]

logger = logging.getLogger(__name__)


def build_model(backbone: str, tasks: Mapping[str, TaskSpec | tuple[Any, ...]],
                pretrained: bool | str | Path = False, neck_channels: int = 64,
                out_indices: Sequence[int] = (-4, -3, -2, -1), in_chans: int = 3,
                architecture: str = "hard", options: Mapping[str, Any] | None = None) -> MultiTaskModel:
    """A multi-task model: timm ``backbone`` shared as ``architecture`` says, one head per task.

    Args:
        backbone: timm model name.
        tasks: task name -> :class:`TaskSpec` (or a plain ``(kind, info[, options])`` tuple).
        pretrained: see :class:`~mtvision.models.Backbone` (``False``, ``True`` or a path).
        neck_channels: channels of every pyramid level, i.e. the width every head reads.
        out_indices: backbone stages fed to the neck.
        in_chans: image channels.
        architecture: how tasks share, a name of
            :func:`~mtvision.models.architectures.available_architectures` (``"hard"``: one
            trunk and neck for all).
        options: that architecture's keyword options.
    """
    specs = {name: TaskSpec(*spec) for name, spec in tasks.items()}
    trunk = Trunk(Backbone(backbone, pretrained=pretrained, out_indices=out_indices, in_chans=in_chans),
                  neck_channels, specs)
    sharing = create_architecture(architecture, trunk, options)
    heads = {name: create_task(spec.kind, name, spec.info, sharing.channels, sharing.strides, **spec.options)
             for name, spec in specs.items()}
    model = MultiTaskModel(sharing, heads)
    logger.info("built %s (%s): %s", backbone, architecture, _format_counts(model.parameter_counts()))
    return model


def _format_counts(counts: Mapping[str, int]) -> str:
    """``backbone 1.23M, neck 0.05M, ...``: what sharing saves, readable in a log line."""
    return ", ".join(f"{part} {n / 1e6:.2f}M" for part, n in counts.items())
