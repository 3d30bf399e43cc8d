"""Per-task statistics of a dataset: what is labelled, how much, and how balanced.

Example:
    >>> from pathlib import Path
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> rec = DatasetRecord(Path("."), [ImageRecord("a.png", 8, 8, targets={"objects": [
    ...     Annotation(category=1, box=(0.0, 0.0, 4.0, 4.0))]})], {"objects": TaskInfo("instances", ["x", "y"])})
    >>> dataset_stats(rec)["tasks"]["objects"]["per_class"]
    {'x': 0, 'y': 1}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mtvision.data.record import Annotation, DatasetRecord, DenseRef  # noqa: E402
from mtvision.structures import TaskInfo


def dataset_stats(record: DatasetRecord) -> dict[str, Any]:
    """Counts per task: images labelled, and per kind instances/keypoints/masks or class histograms."""
    tasks = {name: _task_stats(record, name, info) for name, info in record.tasks.items()}
    return {"images": len(record.images), "tasks": tasks}


def _task_stats(record: DatasetRecord, name: str, info: TaskInfo) -> dict[str, Any]:
    targets = [im.targets[name] for im in record.images if name in im.targets]
    stats: dict[str, Any] = {"kind": info.kind, "images": len(targets)}
    if info.kind == "instances":
        anns: list[Annotation] = [a for t in targets for a in t]  # type: ignore[union-attr]
        stats.update(instances=len(anns), per_class=_histogram(info.classes, [a.category for a in anns]),
                     with_mask=sum(a.segmentation is not None for a in anns),
                     crowd=sum(a.iscrowd for a in anns),
                     keypoints_labelled=sum(v > 0 for a in anns for v in (a.keypoints or [])[2::3]))
    elif info.kind == "label":
        ids = [c for t in targets for c in ([t] if isinstance(t, int) else t)]  # type: ignore[union-attr]
        stats["per_class"] = _histogram(info.classes, ids)
    else:
        stats["maps"] = sum(isinstance(t, DenseRef) for t in targets)
    return stats


def _histogram(classes: list[str], ids: list[int]) -> dict[str, int]:
    counts = dict.fromkeys(classes, 0)
    for i in ids:
        key = classes[i] if 0 <= i < len(classes) else f"<id {i}>"
        counts[key] = counts.get(key, 0) + 1
    return counts


def plot_stats(stats: dict[str, Any], path: Path) -> Path:
    """One bar chart per task with a class histogram (coverage for the others)."""
    tasks = stats["tasks"]
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(4 * max(len(tasks), 1), 3.2), squeeze=False)
    for ax, (name, task) in zip(axes[0], tasks.items()):
        bars = task.get("per_class") or {"labelled": task["images"], "unlabelled": stats["images"] - task["images"]}
        ax.bar(range(len(bars)), list(bars.values()), color="tab:blue")
        ax.set_xticks(range(len(bars)), list(bars), rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{name} ({task['kind']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
