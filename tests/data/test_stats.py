"""Dataset statistics: hand-counted values on a small record, and the plot file."""

from __future__ import annotations

from pathlib import Path

from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.data.stats import dataset_stats, plot_stats
from mtvision.structures import TaskInfo


def _record() -> DatasetRecord:
    box = (0.0, 0.0, 2.0, 2.0)
    a = [Annotation(0, box, segmentation=[[0, 0, 2, 0, 2, 2]], keypoints=[1.0, 1.0, 2, 0.0, 0.0, 0]),
         Annotation(1, box, iscrowd=True), Annotation(1, box, keypoints=[1.0, 1.0, 1, 1.0, 2.0, 2])]
    images = [ImageRecord("1.png", 4, 4, targets={"objects": a, "scene": [0, 1], "depth": DenseRef("d1.png")}),
              ImageRecord("2.png", 4, 4, targets={"objects": [], "scene": [1]}),
              ImageRecord("3.png", 4, 4)]
    tasks = {"objects": TaskInfo("instances", ["cat", "dog"], keypoint_names=["l", "r"]),
             "scene": TaskInfo("label", ["indoor", "night"], multi_label=True), "depth": TaskInfo("depth")}
    return DatasetRecord(Path("."), images, tasks)


def test_counts_match_hand_counts(tmp_path: Path) -> None:
    stats = dataset_stats(_record())
    assert stats["images"] == 3
    assert stats["tasks"]["objects"] == {"kind": "instances", "images": 2, "instances": 3,
                                         "per_class": {"cat": 1, "dog": 2}, "with_mask": 1, "crowd": 1,
                                         "keypoints_labelled": 3}
    assert stats["tasks"]["scene"] == {"kind": "label", "images": 2, "per_class": {"indoor": 1, "night": 2}}
    assert stats["tasks"]["depth"] == {"kind": "depth", "images": 1, "maps": 1}
    path = plot_stats(stats, tmp_path / "stats.png")
    assert path.stat().st_size > 1000
