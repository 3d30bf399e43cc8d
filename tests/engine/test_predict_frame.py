"""Predictions go back onto the user's image: the inverse of the letterbox, checked by hand and by round trip.

Hand-computed case: a 100x50 (w x h) image letterboxed to 64x64 is scaled by 0.64 to 64x32
content with 16 px bands above and below; a 100x30 image becomes 64x19 (19.2 rounded) with
22 px above and 23 below, so its x and y scales differ (0.64 and 19/30).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from torchvision import tv_tensors

from mtvision.data.transforms import build_transforms
from mtvision.engine.predict import predict_files
from mtvision.models import TaskSpec, build_model
from mtvision.structures import ImageFrame, Instances, Sample, TaskInfo, letterbox_frame
from mtvision.tasks.classification import Classification
from mtvision.tasks.depth import Depth
from mtvision.tasks.detection import Detection
from mtvision.tasks.edges import Edges
from mtvision.tasks.normals import Normals
from mtvision.tasks.semantic_segmentation import SemanticSegmentation

BACKBONE = "test_resnet.r160_in1k"  # a tiny timm model, random weights
MODEL = (64, 64)
WIDE = letterbox_frame((50, 100), MODEL)  # 0.64 scale, 16 px bands above and below
SHAPES = ["a", "b"]
KEYPOINTS = ["left", "right"]


def _detection(masks: bool = True, keypoints: bool = True) -> Detection:
    info = TaskInfo(kind="instances", classes=SHAPES, keypoint_names=KEYPOINTS)
    return Detection("objects", info, channels=8, strides=[4, 8, 16, 32], masks=masks, keypoints=keypoints)


def test_letterbox_frame_is_where_letterbox_puts_the_image() -> None:
    assert WIDE == ImageFrame(original=(50, 100), content=(32, 64), top=16, left=0)
    assert letterbox_frame((30, 100), MODEL) == ImageFrame((30, 100), (19, 64), 22, 0)  # 19.2 rounds down
    assert letterbox_frame((100, 30), MODEL) == ImageFrame((100, 30), (64, 19), 0, 22)  # tall: side bands
    assert letterbox_frame((30, 100), MODEL).scale == (0.64, 19 / 30)


def test_points_and_boxes_map_back_exactly() -> None:
    assert WIDE.points_to_original(np.array([[32.0, 40.0], [0.0, 16.0]])).tolist() == [[50.0, 37.5], [0.0, 0.0]]
    assert WIDE.boxes_to_original(np.array([[16.0, 24.0, 48.0, 40.0]])).tolist() == [[25.0, 12.5, 75.0, 37.5]]
    rounded = letterbox_frame((30, 100), MODEL)  # y scale 19/30: content row 9.5 is original row 15
    assert rounded.points_to_original(np.array([32.0, 22 + 9.5])).tolist() == pytest.approx([50.0, 15.0])
    tall = letterbox_frame((100, 30), MODEL)
    assert tall.points_to_original(np.array([22 + 9.5, 32.0])).tolist() == pytest.approx([15.0, 50.0])


def test_coordinates_in_the_padding_are_clipped_to_the_image() -> None:
    whole_input = np.array([[0.0, 0.0, 64.0, 64.0]])
    assert WIDE.boxes_to_original(whole_input).tolist() == [[0.0, 0.0, 100.0, 50.0]]


def test_detection_boxes_keypoints_and_masks_land_on_the_original_pixels() -> None:
    probs = np.zeros((1, 28, 28), dtype=np.float32)
    probs[0, :, :14] = 1.0  # the left half of the box
    output = {"boxes": np.array([[16.0, 24.0, 48.0, 40.0]], dtype=np.float32), "labels": np.array([1]),
              "scores": np.array([0.9], dtype=np.float32), "image_size": np.array([64, 64]), "mask_probs": probs,
              "masks": np.zeros((1, 64, 64), dtype=bool),
              "keypoints": np.array([[[32.0, 40.0], [16.0, 24.0]]], dtype=np.float32),
              "keypoint_scores": np.array([[1.0, 2.0]], dtype=np.float32)}
    mapped = _detection().to_image_frame(output, WIDE)
    assert mapped["boxes"].tolist() == [[25.0, 12.5, 75.0, 37.5]]
    assert mapped["keypoints"].tolist() == [[[50.0, 37.5], [25.0, 12.5]]]
    assert mapped["image_size"].tolist() == [50, 100]
    expected = np.zeros((1, 50, 100), dtype=bool)
    expected[0, 12:38, 25:50] = True  # the left half of the original box x 25-75, y 12.5-37.5
    assert mapped["masks"].shape == (1, 50, 100)
    assert _iou(mapped["masks"][0], expected[0]) > 0.9  # pasted at 100x50, not enlarged from 64x64
    assert mapped["labels"] is output["labels"] and mapped["scores"] is output["scores"]
    item = _detection().to_json(mapped)[0]
    assert item["box"] == [25.0, 12.5, 75.0, 37.5] and item["mask"]["size"] == [50, 100]


def test_label_maps_are_resampled_nearest_at_the_original_size() -> None:
    labels = np.full((64, 64), 1, dtype=np.int64)
    labels[:16], labels[48:] = 7, 7  # the padding bands: must not appear in the image
    labels[24:32, 16:32] = 2
    task = SemanticSegmentation("semseg", TaskInfo(kind="semantic", classes=["a", "b", "c"]), 8, [4])
    mapped = task.to_image_frame(labels, WIDE)
    expected = np.ones((50, 100), dtype=np.int64)
    expected[12:25, 25:50] = 2
    np.testing.assert_array_equal(mapped, expected)


def test_continuous_maps_are_interpolated_without_the_padding() -> None:
    centres = np.arange(64, dtype=np.float32) + 0.5
    depth = np.full((64, 64), 1000.0, dtype=np.float32)  # padding value, far above any content value
    depth[16:48] = centres  # content: depth = x of the pixel centre in the model's input
    mapped = Depth("depth", TaskInfo(kind="depth"), 8, [4]).to_image_frame(depth, WIDE)
    assert mapped.shape == (50, 100) and mapped.dtype == np.float32
    interior = (np.arange(1, 99) + 0.5) * 0.64  # bilinear reproduces a linear ramp exactly
    np.testing.assert_allclose(mapped[:, 1:99], np.broadcast_to(interior, (50, 98)), atol=1e-4)
    assert mapped.max() <= 64.0
    edges = Edges("edges", TaskInfo(kind="edges", classes=["edge"]), 8, [4]).to_image_frame(depth / 1000, WIDE)
    assert edges.shape == (50, 100)


def test_normals_stay_unit_vectors() -> None:
    normals = np.zeros((3, 64, 64), dtype=np.float32)  # zero (no normal) in the padding
    content = torch.randn(3, 32, 64, generator=torch.Generator().manual_seed(0))
    normals[:, 16:48] = (content / content.norm(dim=0, keepdim=True)).numpy()
    mapped = Normals("normals", TaskInfo(kind="normals"), 8, [4]).to_image_frame(normals, WIDE)
    assert mapped.shape == (3, 50, 100)
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=0), 1.0, atol=1e-5)


def test_classification_is_unchanged() -> None:
    task = Classification("scene", TaskInfo(kind="label", classes=["a", "b"]), 8, [4])
    output = {"probs": np.array([0.2, 0.8]), "label": 1}
    assert task.to_image_frame(output, WIDE) is output


@pytest.mark.parametrize("size", [(50, 100), (30, 100), (100, 30), (37, 91)])
def test_round_trip_through_the_evaluation_transform(size: tuple[int, int]) -> None:
    h, w = size
    box = torch.tensor([[0.1 * w, 0.2 * h, 0.7 * w, 0.9 * h]])
    points = torch.tensor([[[0.3 * w, 0.4 * h], [0.65 * w, 0.85 * h]]])
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[0, h // 4:3 * h // 4, w // 5:w // 2] = 1
    instances = Instances(boxes=tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=size),
                          labels=torch.tensor([0]), masks=tv_tensors.Mask(mask),
                          keypoints=tv_tensors.KeyPoints(points, canvas_size=size),
                          visibility=torch.tensor([[2, 2]]))
    semantic = tv_tensors.Mask(mask[0].long())
    sample = Sample(tv_tensors.Image(torch.zeros(3, h, w, dtype=torch.uint8)),
                    {"objects": instances, "semseg": semantic})
    out = build_transforms("none", MODEL, train=False)(sample)
    frame = letterbox_frame(size, MODEL)

    moved = out.targets["objects"]
    np.testing.assert_allclose(frame.boxes_to_original(moved.boxes.numpy()), box.numpy(), atol=1e-3)
    np.testing.assert_allclose(frame.points_to_original(moved.keypoints.numpy()), points.numpy(), atol=1e-3)
    back = frame.map_to_original(moved.masks.numpy().astype(bool), nearest=True)
    assert back.shape == (1, h, w)
    assert _iou(back[0], mask[0].numpy().astype(bool)) > 0.85  # only the borders may move, by < 1 input px
    labels = frame.map_to_original(out.targets["semseg"].numpy(), nearest=True)
    assert set(np.unique(labels)) <= {0, 1}  # the void (255) padding is cropped away


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_predict_files_writes_original_coordinates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detection_info = TaskInfo(kind="instances", classes=SHAPES, keypoint_names=KEYPOINTS)
    model = build_model(BACKBONE, {
        "objects": TaskSpec("detection", detection_info, {"masks": True, "keypoints": True, "score_thresh": 0.0}),
        "semseg": TaskSpec("semantic_segmentation", TaskInfo(kind="semantic", classes=["a", "b", "c"])),
        "depth": TaskSpec("depth", TaskInfo(kind="depth")),
        "normals": TaskSpec("normals", TaskInfo(kind="normals")),
        "lighting": TaskSpec("classification", TaskInfo(kind="label", classes=["day", "night"])),
    }, neck_channels=16)
    sizes = {"wide.png": (50, 100), "tall.png": (90, 40)}
    rng = np.random.default_rng(0)
    for name, (h, w) in sizes.items():
        PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / name)
    json_path = predict_files(model, [tmp_path / n for n in sizes], tmp_path / "out",
                              build_transforms("none", MODEL, train=False), torch.device("cpu"))

    predictions = json.loads(json_path.read_text())
    for name, (h, w) in sizes.items():
        detections = predictions[name]["objects"]
        assert detections, "score_thresh=0 keeps the untrained detector's boxes"
        for item in detections:
            x0, y0, x1, y1 = item["box"]
            assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
            assert item["mask"]["size"] == [h, w]
            assert all(0 <= x <= w and 0 <= y <= h for x, y, _ in item["keypoints"])
        assert PILImage.open(tmp_path / "out" / "depth" / name).size == (w, h)
        stem = Path(name).stem
        depth, normals, semseg = (np.load(tmp_path / "out" / task / f"{stem}.npy") for task in ("depth", "normals",
                                                                                                  "semseg"))
        assert depth.shape == (h, w) and depth.dtype == np.float32 and (depth > 0).all()  # metres
        assert normals.shape == (3, h, w) and np.allclose(np.linalg.norm(normals, axis=0), 1, atol=1e-5)
        assert semseg.shape == (h, w) and set(np.unique(semseg)) <= {0, 1, 2}
        assert not (tmp_path / "out" / "lighting" / f"{stem}.npy").exists()  # image-level: the JSON says it all
