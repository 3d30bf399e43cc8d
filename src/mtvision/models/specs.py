"""What to build for one task, given before the pyramid that sizes its head is known."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from mtvision.structures import TaskInfo

__all__ = ["TaskSpec"]


class TaskSpec(NamedTuple):
    """What to build for one task: its type (a key of ``mtvision.tasks.TASKS``), its label
    space, and the keyword options of that task type's constructor."""

    kind: str
    info: TaskInfo
    options: Mapping[str, Any] = MappingProxyType({})
