"""Task types. Each module registers itself on import; this file imports them all so the
registry is complete whenever ``mtvision.tasks`` is imported (no empty-registry surprise)."""

from mtvision.tasks.base import TASKS, Metric, Task, available_tasks, create_task, register, select
from mtvision.tasks import classification, depth, detection, edges, normals, semantic_segmentation  # noqa: F401

__all__ = ["TASKS", "Metric", "Task", "available_tasks", "create_task", "register", "select"]
