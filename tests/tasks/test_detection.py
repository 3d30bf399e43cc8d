"""Detection task: partial labels by gradient, eval outputs, metric conversion, JSON/drawing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from mtvision.structures import Instances, TaskInfo
from mtvision.tasks.detection import Detection

SIZE = 64
STRIDES = [4, 8, 16, 32]
INFO = TaskInfo(kind="instances", classes=["square", "bar"], keypoint_names=["tl", "br", "c"],
                skeleton=[(0, 2), (2, 1)], flip_idx=[1, 0, 2])


def _instances() -> Instances:
    boxes = torch.tensor([[8.0, 8.0, 30.0, 30.0], [36.0, 20.0, 60.0, 28.0]])
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.uint8)
    masks[0, 8:30, 8:30] = 1
    masks[1, 20:28, 36:60] = 1
    kps = torch.tensor([[[8.0, 8.0], [30.0, 30.0], [19.0, 19.0]], [[36.0, 20.0], [60.0, 28.0], [48.0, 24.0]]])
    return Instances(
        boxes=tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(SIZE, SIZE)),
        labels=torch.tensor([0, 1]), masks=tv_tensors.Mask(masks),
        keypoints=tv_tensors.KeyPoints(kps, canvas_size=(SIZE, SIZE)),
        visibility=torch.tensor([[2, 2, 1], [2, 0, 2]]),
    )


def _task(**options: Any) -> Detection:
    torch.manual_seed(0)
    return Detection(name="objects", info=INFO, channels=16, strides=STRIDES, masks=True, keypoints=True, **options)


def _features(batch: int) -> list[torch.Tensor]:
    return [torch.randn(batch, 16, SIZE // s, SIZE // s, requires_grad=True) for s in STRIDES]


def test_unlabelled_images_get_no_detection_gradient() -> None:
    task = _task().train()
    features = _features(3)
    present = torch.tensor([True, False, True])
    _, losses = task.forward_train(features, (SIZE, SIZE), [_instances(), _instances()], present)
    assert set(losses) >= {"loss", "rpn_objectness", "rpn_box", "cls", "box", "mask", "keypoint"}
    losses["loss"].backward()
    for level in features:
        assert level.grad[1].abs().sum() == 0  # the unlabelled image
        assert level.grad[0].abs().sum() > 0 and level.grad[2].abs().sum() > 0


def test_labelled_negative_image_trains() -> None:
    task = _task().train()
    empty = Instances.empty((SIZE, SIZE), num_keypoints=3, with_masks=True)
    _, losses = task.forward_train(_features(1), (SIZE, SIZE), [empty], torch.tensor([True]))
    assert torch.isfinite(losses["loss"]) and losses["loss"] > 0  # objectness / classifier still learn


def test_eval_outputs_are_full_image_predictions() -> None:
    """With no score threshold every proposal keeps a scored box per class, so an untrained
    head returns hundreds of detections and every check below runs on real outputs."""
    with torch.no_grad():
        out = _task(score_thresh=0.0, detections_per_img=1000).eval()(_features(2), (SIZE, SIZE))
    assert len(out) == 2
    for det in out:
        n = len(det["scores"])
        assert n > 10 and det["image_size"].tolist() == [SIZE, SIZE]
        assert det["boxes"].shape == (n, 4) and det["masks"].shape == (n, SIZE, SIZE)
        assert det["masks"].dtype == torch.bool
        assert det["keypoints"].shape == (n, 3, 2) and det["keypoint_scores"].shape == (n, 3)
        assert set(det["labels"].tolist()) == {0, 1}  # 0-based: torchvision's background 0 is shifted out
        assert (det["scores"] > 0).all() and (det["scores"] <= 1).all() and (det["scores"].diff() <= 0).all()
        x1, y1, x2, y2 = det["boxes"].unbind(1)
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= SIZE).all() and (y2 <= SIZE).all()
        assert (x1 <= x2).all() and (y1 <= y2).all()
        x, y = det["keypoints"].unbind(-1)  # Keypoint R-CNN decodes each heatmap inside its box
        assert ((x >= x1[:, None] - 1e-3) & (x <= x2[:, None] + 1e-3)).all()
        assert ((y >= y1[:, None] - 1e-3) & (y <= y2[:, None] + 1e-3)).all()
    with torch.no_grad():
        capped = _task(score_thresh=0.0, detections_per_img=5).eval()(_features(2), (SIZE, SIZE))
    assert [len(det["scores"]) for det in capped] == [5, 5]


def test_metric_scores_ground_truth_as_perfect() -> None:
    """Feeding the ground truth back as detections must give AP 1 for boxes, masks and keypoints."""
    inst = _instances()
    perfect = {"boxes": inst.boxes.as_subclass(torch.Tensor), "labels": inst.labels, "scores": torch.ones(2),
               "masks": inst.masks.as_subclass(torch.Tensor).bool(),
               "keypoints": inst.keypoints.as_subclass(torch.Tensor), "keypoint_scores": torch.ones(2, 3)}
    metric = _task().make_metric()
    metric.update([perfect], [inst])
    other = _task().make_metric()
    other.update([perfect], [inst])
    metric.merge(other)
    result = metric.compute()
    for key in ("bbox_ap", "bbox_ap50", "segm_ap", "kpt_ap50"):
        assert result[key] == pytest.approx(1.0), key


def test_metric_counts_a_missed_object() -> None:
    inst = _instances()
    one = {"boxes": inst.boxes.as_subclass(torch.Tensor)[:1], "labels": inst.labels[:1], "scores": torch.ones(1),
           "masks": inst.masks.as_subclass(torch.Tensor)[:1].bool(),
           "keypoints": inst.keypoints.as_subclass(torch.Tensor)[:1], "keypoint_scores": torch.ones(1, 3)}
    metric = _task().make_metric()
    metric.update([one], [inst])
    assert metric.compute()["bbox_ap50"] == pytest.approx(0.5)  # one class perfect, one class missed


def test_json_and_drawing() -> None:
    task = _task()
    inst = _instances()
    output = {"boxes": inst.boxes.numpy(), "labels": np.array([0, 1]), "scores": np.array([0.9, 0.8]),
              "masks": inst.masks.numpy().astype(bool), "keypoints": inst.keypoints.numpy(),
              "keypoint_scores": np.ones((2, 3))}
    items = task.to_json(output)
    assert [i["class"] for i in items] == ["square", "bar"]
    assert items[0]["box"] == [8.0, 8.0, 30.0, 30.0] and items[0]["mask"]["size"] == [SIZE, SIZE]
    assert len(items[1]["keypoints"]) == 3
    picture = task.draw(np.zeros((SIZE, SIZE, 3), np.uint8), output)
    assert picture.shape == (SIZE, SIZE, 3) and picture.any()
    output["image_size"] = np.array([SIZE, SIZE])
    big = task.draw(np.zeros((3 * SIZE, 3 * SIZE, 3), np.uint8), output)  # an enlarged canvas
    assert big.shape == (3 * SIZE, 3 * SIZE, 3)
    assert big[3 * 20, 3 * 20].any() and not big[3 * 40, 3 * 5].any()  # mask of the square scaled by 3


def test_keypoints_need_names() -> None:
    with pytest.raises(ValueError, match="no keypoints"):
        Detection(name="o", info=TaskInfo(kind="instances", classes=["a"]), channels=8, strides=STRIDES,
                  keypoints=True)
