"""Dataset statistics: hand-counted values on a small record, and what the plot draws."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

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


def test_counts_match_hand_counts() -> None:
    stats = dataset_stats(_record())
    assert stats["images"] == 3
    assert stats["tasks"]["objects"] == {"kind": "instances", "images": 2, "instances": 3,
                                         "per_class": {"cat": 1, "dog": 2}, "with_mask": 1, "crowd": 1,
                                         "keypoints_labelled": 3}
    assert stats["tasks"]["scene"] == {"kind": "label", "images": 2, "per_class": {"indoor": 1, "night": 2}}
    assert stats["tasks"]["depth"] == {"kind": "depth", "images": 1, "maps": 1}


def test_plot_has_a_bar_chart_per_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Class histograms for tasks with classes, labelled / unlabelled images for the others."""
    close, kept = plt.close, []
    monkeypatch.setattr(plt, "close", kept.append)  # keep the figure open to read what was drawn
    path = plot_stats(dataset_stats(_record()), tmp_path / "stats.png")
    (fig,) = kept
    drawn = {ax.get_title(): ([t.get_text() for t in ax.get_xticklabels()], [bar.get_height() for bar in ax.patches])
             for ax in fig.axes}
    close(fig)
    assert drawn == {"objects (instances)": (["cat", "dog"], [1, 2]), "scene (label)": (["indoor", "night"], [1, 2]),
                     "depth (depth)": (["labelled", "unlabelled"], [1, 2])}
    picture = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert picture.shape[:2] == (320, 1200)  # 3 panels of 4 x 3.2 inches at 100 dpi
    blue = (abs(picture - (31, 119, 180)) < 8).all(axis=-1)  # tab:blue bars
    assert blue[:, :400].any() and blue[:, 400:800].any() and blue[:, 800:].any()  # bars in each panel
