"""Training on a COCO person-keypoints file: boxes + polygons + 17 keypoints, 1-based skeleton, v in {0,1,2}."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mtvision.data.sources import read_record

torch.set_num_threads(1)

# COCO's person keypoints and (1-based) skeleton, as in person_keypoints_*.json.
NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
         "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
         "right_knee", "left_ankle", "right_ankle"]
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
            [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def _person(rng: np.random.Generator, ann_id: int, image_id: int, x: float, y: float) -> dict:
    w, h = 14.0, 26.0
    keypoints = []
    for _ in NAMES:
        v = int(rng.choice([0, 1, 2], p=[0.2, 0.2, 0.6]))
        keypoints += [0, 0, 0] if v == 0 else [round(x + rng.uniform(1, w - 1), 1), round(y + rng.uniform(1, h - 1), 1), v]
    polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h], "area": w * h,
            "iscrowd": 0, "segmentation": [polygon], "keypoints": keypoints,
            "num_keypoints": sum(v > 0 for v in keypoints[2::3])}


def _coco_keypoints(root: Path) -> Path:
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(6):
        pixels = rng.integers(0, 50, (48, 48, 3), dtype=np.uint8)
        x, y = 4 + 3 * i, 10
        pixels[y:y + 26, x:x + 14] = (200, 160, 120)
        Image.fromarray(pixels).save(root / f"{i}.jpg")
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 48, "height": 48})
        annotations.append(_person(rng, i + 1, i + 1, float(x), float(y)))
    path = root / "person_keypoints.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "person", "supercategory": "person", "keypoints": NAMES, "skeleton": SKELETON}]}))
    return path


def test_train_detection_masks_and_keypoints_on_coco_keypoints(tmp_path: Path, train_from_config) -> None:
    path = _coco_keypoints(tmp_path)
    info = read_record(path).tasks["objects"]
    assert info.keypoint_names == NAMES
    assert info.skeleton[0] == (15, 13)  # 1-based [16, 14] read as 0-based
    assert info.flip_idx[1:3] == [2, 1] and info.flip_idx[0] == 0  # left_eye <-> right_eye, nose stays

    (row,) = train_from_config({
        "data": {"source": str(path), "val": str(path), "image_size": 48, "batch_size": 3, "augment": "light"},
        "tasks": {"objects": {"type": "detection", "options": {"masks": True, "keypoints": True}}},
        "train": {"predict_images": 2, "best_metric": "val/objects/kpt_ap50"},
    })
    assert np.isfinite(row["train/objects/loss"])
    for key in ("val/objects/bbox_ap50", "val/objects/segm_ap50", "val/objects/kpt_ap50"):
        assert 0.0 <= row[key] <= 1.0, key
    assert len(list((tmp_path / "runs" / "demo" / "predictions" / "final").glob("*.png"))) == 2
