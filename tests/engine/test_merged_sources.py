"""Training straight from two annotation exports in different formats, each labelling part of the images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mtvision.data.sources import read_record

torch.set_num_threads(1)


def _exports(root: Path) -> tuple[Path, Path]:
    """Six 32-px images: COCO boxes for images 0-3, a CSV scene label for images 2-5."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    images, annotations = [], []
    for i in range(6):
        pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
        pixels[8:20, 4 + i:16 + i] = 220  # one bright square per image
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        if i < 4:
            images.append({"id": i + 1, "file_name": f"{i}.png", "width": 32, "height": 32})
            annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4 + i, 8, 12, 12],
                                "area": 144, "iscrowd": 0})
    coco = root / "images" / "boxes.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "square"}]}))
    csv = root / "images" / "scenes.csv"
    csv.write_text("file,label\n" + "".join(f"{i}.png,{'dark' if i % 2 else 'bright'}\n" for i in range(2, 6)))
    return coco, csv


def test_train_from_a_coco_file_and_a_csv_with_partial_labels(tmp_path: Path, train_from_config) -> None:
    coco, csv = _exports(tmp_path)
    sources = [{"path": str(coco)}, {"path": str(csv), "rename": {"label": "scene"}}]
    record = read_record(sources)
    assert len(record.images) == 6 and record.coverage() == {"objects": 4, "scene": 4}

    (row,) = train_from_config({
        "data": {"source": sources, "val": sources, "image_size": 32, "batch_size": 3, "augment": "light"},
        "tasks": {"objects": {"type": "detection"}, "scene": {"type": "classification"}},
        "train": {"best_metric": "val/scene/top1"},
    })
    assert np.isfinite(row["train/objects/loss"]) and np.isfinite(row["train/scene/loss"])
    assert 0.0 <= row["val/objects/bbox_ap50"] <= 1.0 and 0.0 <= row["val/scene/top1"] <= 1.0
