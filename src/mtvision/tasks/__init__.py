"""Task types. Each module registers itself on import; this file imports them all so the
registries (task types and the target kinds they declare) are complete whenever
``mtvision.tasks`` is imported (no empty-registry surprise). A task type from outside the
package is named by import path, ``"package.module:Class"`` (see docs/adding_a_task.md)."""

from mtvision.tasks import classification, depth, detection, edges, instances, normals, semantic_segmentation  # noqa: F401
from mtvision.tasks.base import TASKS, Metric, Task, available_tasks, create_task, register, select, task_type
from mtvision.tasks.kinds import TARGET_KINDS, TargetKindSpec, dense_kinds, get_target_kind, single_channel, target_kind

__all__ = ["TARGET_KINDS", "TASKS", "Metric", "Task", "TargetKindSpec", "available_tasks", "create_task",
           "dense_kinds", "get_target_kind", "register", "select", "single_channel", "target_kind", "task_type"]
