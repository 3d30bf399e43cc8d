"""Sample structures and the v2 kernels of DepthMap / NormalMap (mtvision.structures.dense_maps)."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mtvision.structures import Batch, DepthMap, Instances, NormalMap, Sample


def _one_vector(row: int, col: int, vector: tuple[float, float, float], size: int = 5) -> NormalMap:
    """A map that is zero (no normal) everywhere except one pixel."""
    normals = torch.zeros(3, size, size)
    normals[:, row, col] = torch.tensor(vector)
    return NormalMap(normals)


def _where(tensor: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(p) for p in tensor.abs().sum(0).nonzero().tolist()]


def test_horizontal_flip_moves_normals_and_negates_x() -> None:
    flipped = F.horizontal_flip(_one_vector(1, 4, (0.6, 0.0, -0.8)))
    assert isinstance(flipped, NormalMap) and _where(flipped) == [(1, 0)]
    assert flipped[:, 1, 0].tolist() == pytest.approx([-0.6, 0.0, -0.8])


def test_vertical_flip_negates_y() -> None:
    flipped = F.vertical_flip(_one_vector(0, 2, (0.0, 0.6, -0.8)))
    assert _where(flipped) == [(4, 2)] and flipped[:, 4, 2].tolist() == pytest.approx([0.0, -0.6, -0.8])


def test_rotation_turns_vectors_with_the_pixels() -> None:
    # A normal pointing right, right of the centre. Rotated 90 degrees counter-clockwise on
    # screen, the pixel moves above the centre and the vector points up (y is down: y = -1).
    image = tv_tensors.Image(torch.zeros(3, 5, 5, dtype=torch.uint8))
    image[:, 2, 4] = 255
    sample = Sample(image, {"normals": _one_vector(2, 4, (1.0, 0.0, 0.0))})
    out = v2.RandomRotation(degrees=(90, 90))(sample)
    assert isinstance(out, Sample) and isinstance(out.targets["normals"], NormalMap)
    assert _where(out.image) == _where(out.targets["normals"]) == [(0, 2)]
    assert out.targets["normals"][:, 0, 2].tolist() == pytest.approx([0.0, -1.0, 0.0], abs=1e-6)


def test_depth_resize_is_nearest() -> None:
    depth = DepthMap(torch.tensor([[0.0, 1.0, 2.0, 7.5]]).repeat(4, 1))
    resized = F.resize(depth, [7, 7])
    assert isinstance(resized, DepthMap) and resized.shape == (1, 7, 7)
    assert set(resized.unique().tolist()) <= {0.0, 1.0, 2.0, 7.5}


def test_colour_jitter_leaves_depth_and_normals_alone() -> None:
    torch.manual_seed(0)
    depth, normals = DepthMap(torch.rand(1, 6, 6) + 1), NormalMap(torch.nn.functional.normalize(torch.randn(3, 6, 6), dim=0))
    sample = Sample(tv_tensors.Image(torch.rand(3, 6, 6)), {"depth": depth, "normals": normals})
    out = v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2)(sample)
    assert not torch.equal(out.image, sample.image)
    assert torch.equal(out.targets["depth"], depth) and torch.equal(out.targets["normals"], normals)


def _instances() -> Instances:
    n = 3
    masks = torch.zeros(n, 4, 4, dtype=torch.uint8)
    for i in range(n):
        masks[i, i, i] = 1
    return Instances(
        boxes=tv_tensors.BoundingBoxes(torch.arange(12.0).reshape(n, 4), format="XYXY", canvas_size=(4, 4)),
        labels=torch.tensor([7, 8, 9]),
        masks=tv_tensors.Mask(masks),
        keypoints=tv_tensors.KeyPoints(torch.arange(12.0).reshape(n, 2, 2), canvas_size=(4, 4)),
        visibility=torch.tensor([[2, 2], [1, 0], [0, 2]]),
        iscrowd=torch.tensor([False, True, False]),
        attributes=[{"i": 0}, {"i": 1}, {"i": 2}],
    )


def test_select_keeps_every_field_aligned() -> None:
    kept = _instances().select(torch.tensor([True, False, True]))
    assert kept.labels.tolist() == [7, 9] and kept.attributes == [{"i": 0}, {"i": 2}]
    assert kept.boxes.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]] and kept.boxes.canvas_size == (4, 4)
    assert isinstance(kept.boxes, tv_tensors.BoundingBoxes) and isinstance(kept.keypoints, tv_tensors.KeyPoints)
    assert [m.nonzero().tolist() for m in kept.masks] == [[[0, 0]], [[2, 2]]]
    assert kept.keypoints.tolist() == [[[0, 1], [2, 3]], [[8, 9], [10, 11]]]
    assert kept.visibility.tolist() == [[2, 2], [0, 2]] and kept.iscrowd.tolist() == [False, False]


def test_instances_refuse_misaligned_fields() -> None:
    with pytest.raises(ValueError, match="masks has 2 rows but labels has 1"):
        Instances(boxes=tv_tensors.BoundingBoxes(torch.zeros(1, 4), format="XYXY", canvas_size=(2, 2)),
                  labels=torch.tensor([0]), masks=tv_tensors.Mask(torch.zeros(2, 2, 2, dtype=torch.uint8)))


def test_horizontal_flip_moves_every_instance_field_together() -> None:
    sample = Sample(tv_tensors.Image(torch.zeros(3, 4, 4)), {"objects": _instances()})
    out = v2.RandomHorizontalFlip(p=1.0)(sample).targets["objects"]
    assert out.boxes[0].tolist() == [2.0, 1.0, 4.0, 3.0]  # x1, x2 mirrored: 4 - 2, 4 - 0
    assert out.masks[0, 0, 3] == 1 and out.keypoints[0, 1].tolist() != [2.0, 3.0]
    assert out.attributes == [{"i": 0}, {"i": 1}, {"i": 2}] and out.visibility.tolist() == [[2, 2], [1, 0], [0, 2]]


def test_batch_to_keeps_instances() -> None:
    batch = Batch(images=torch.zeros(1, 3, 4, 4), targets={"objects": [_instances()]},
                  present={"objects": torch.tensor([True])}, meta=[{}])
    moved = batch.to("cpu")
    assert len(moved) == 1 and isinstance(moved.targets["objects"][0], Instances)
    assert moved.targets["objects"][0].attributes == [{"i": 0}, {"i": 1}, {"i": 2}]
