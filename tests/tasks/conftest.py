"""Shared fixtures of the task tests: a fake FPN pyramid and a task builder."""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from mtvision.structures import TaskInfo
from mtvision.tasks import Task, create_task, task_type

STRIDES = [4, 8, 16, 32]
CHANNELS = 16
IMAGE_SIZE = (64, 64)


@pytest.fixture
def pyramid() -> list[torch.Tensor]:
    """Random features of a batch of 2 at strides 4..32 for a 64x64 input."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(2, CHANNELS, 64 // s, 64 // s, generator=generator) for s in STRIDES]


@pytest.fixture
def build() -> Callable[..., Task]:
    """``build(kind, classes=[...], multi_label=False, **options)`` -> a task named after its kind."""

    def make(kind: str, classes: list[str] | None = None, multi_label: bool = False, **options: Any) -> Task:
        info = TaskInfo(kind=task_type(kind).target_kind, classes=classes or [], multi_label=multi_label)
        return create_task(kind, kind, info, CHANNELS, STRIDES, **options)

    return make
