"""The two augmentation steps that need whole instances, not single tensors.

torchvision v2 transforms one tensor at a time, which is right for moving pixels and
coordinates but cannot know that keypoint 3 is a *left* eye (a mirror image makes it the
right one) nor that a box, its mask and its keypoints are one object to keep or drop
together. These steps therefore work on the :class:`~mtvision.structures.Instances` of a
:class:`~mtvision.structures.Sample`:

* :class:`RandomHorizontalFlip` mirrors everything, then swaps left/right keypoints (and
  their visibility) with each task's ``flip_idx``;
* :class:`SanitizeInstances` drops instances whose box became degenerate or whose mask
  became empty, all fields at once, and marks keypoints outside the image as not labelled
  (visibility 0) without moving them;
* :class:`BoxesFromMasks` refits boxes to their masks after a rotation, which turns a box
  into the (loose) box around its rotated corners.

Keypoint coordinates are continuous, like box coordinates: the image spans ``[0, W] x [0, H]``
and pixel ``(i, j)`` is the unit square whose centre is ``(i + 0.5, j + 0.5)``. torchvision
resizes, crops, pads and rotates keypoints in that convention, and never clamps them (only
``ClampKeyPoints`` / ``SanitizeKeyPoints`` would, and no preset uses them), which is what lets
a keypoint that leaves the image keep its true position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from mtvision.structures import Instances, Sample, mask_bounds

__all__ = ["BoxesFromMasks", "RandomHorizontalFlip", "SanitizeInstances", "boxes_from_masks", "flip_keypoints",
           "sanitize_instances"]


class RandomHorizontalFlip(v2.RandomHorizontalFlip):
    """Mirror a whole ``Sample`` with probability ``p`` and swap left/right keypoints.

    Every target moves (image, boxes, masks, keypoints, semantic and edge masks, depth, and
    normals with their x component negated). ``flip_idx[task][k]`` is the keypoint that
    keypoint ``k`` of ``task`` becomes once mirrored (YOLO's ``flip_idx``). A task with
    keypoints and no ``flip_idx`` is an error: mirroring it would silently teach the model
    that left is right.

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> points = tv_tensors.KeyPoints(torch.tensor([[[1.0, 2.0], [6.0, 2.0]]]), canvas_size=(4, 8))
        >>> boxes = tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0, 8, 4]]), format="XYXY", canvas_size=(4, 8))
        >>> people = Instances(boxes, torch.tensor([0]), keypoints=points, visibility=torch.tensor([[2, 1]]))
        >>> sample = Sample(tv_tensors.Image(torch.zeros(3, 4, 8)), {"pose": people})
        >>> flipped = RandomHorizontalFlip(p=1.0, flip_idx={"pose": [1, 0]})(sample)
        >>> flipped.targets["pose"].keypoints.tolist(), flipped.targets["pose"].visibility.tolist()
        ([[[2.0, 2.0], [7.0, 2.0]]], [[1, 2]])
    """

    def __init__(self, p: float = 0.5, flip_idx: Mapping[str, Sequence[int]] | None = None) -> None:
        super().__init__(p=p)
        self.flip_idx = {task: _checked_flip_idx(task, idx) for task, idx in (flip_idx or {}).items()}

    def forward(self, sample: Sample) -> Sample:
        _check_keypoint_tasks(sample, self.flip_idx)  # every call, not only when the coin says flip
        if torch.rand(1) >= self.p:
            return sample
        mirrored = v2.Transform.forward(self, sample)  # transform() on every tv_tensor leaf
        return mirrored.with_targets(**{task: _swap_sides(mirrored.targets[task], idx)
                                        for task, idx in self.flip_idx.items() if task in mirrored.targets})

    def extra_repr(self) -> str:
        return f"p={self.p}, flip_idx={ {task: idx.tolist() for task, idx in self.flip_idx.items()} }"

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.KeyPoints):
            return flip_keypoints(inpt)
        return super().transform(inpt, params)


def flip_keypoints(points: tv_tensors.KeyPoints) -> tv_tensors.KeyPoints:
    """Mirror keypoints as ``x -> W - x``, the convention of boxes.

    torchvision's keypoint kernel uses ``x -> W - 1 - x`` (pixel-index convention), which
    disagrees with its own box flip and keypoint resize/rotate by one pixel, so a flipped
    keypoint would drift off the object it marks.
    """
    mirrored = points.as_subclass(Tensor).clone()
    mirrored[..., 0] = points.canvas_size[1] - mirrored[..., 0]
    return tv_tensors.wrap(mirrored, like=points)


def _checked_flip_idx(task: str, flip_idx: Sequence[int]) -> Tensor:
    idx = [int(i) for i in flip_idx]
    if sorted(idx) != list(range(len(idx))) or any(idx[i] != k for k, i in enumerate(idx)):
        raise ValueError(f"flip_idx of task {task!r} must list, for each keypoint, the keypoint it becomes "
                         f"when mirrored (a permutation of 0..K-1 that is its own inverse); got {idx}")
    return torch.tensor(idx, dtype=torch.long)


def _check_keypoint_tasks(sample: Sample, flip_idx: Mapping[str, Tensor]) -> None:
    for task, target in sample.targets.items():
        if not (isinstance(target, Instances) and target.keypoints is not None):
            continue
        if task not in flip_idx:
            raise ValueError(f"task {task!r} has keypoints but RandomHorizontalFlip got no flip_idx for it; "
                             f"pass flip_idx={{{task!r}: [...]}} (the identity if no keypoint has a side)")
        if target.keypoints.shape[1] != len(flip_idx[task]):
            raise ValueError(f"flip_idx of task {task!r} has {len(flip_idx[task])} entries but its instances "
                             f"have {target.keypoints.shape[1]} keypoints")


def _swap_sides(target: Any, idx: Tensor) -> Any:
    if not (isinstance(target, Instances) and target.keypoints is not None):
        return target
    points = tv_tensors.wrap(target.keypoints[:, idx], like=target.keypoints)
    visibility = None if target.visibility is None else target.visibility[:, idx]
    return replace(target, keypoints=points, visibility=visibility)


class SanitizeInstances(v2.Transform):
    """Drop instances that geometric augmentation destroyed; hide keypoints it pushed out.

    Run it after the geometric transforms. See :func:`sanitize_instances`.
    """

    def __init__(self, min_size: float = 1.0, min_area: float = 1.0) -> None:
        super().__init__()
        self.min_size = min_size
        self.min_area = min_area

    def forward(self, sample: Sample) -> Sample:
        return sample.with_targets(**{task: sanitize_instances(t, self.min_size, self.min_area)
                                      for task, t in sample.targets.items() if isinstance(t, Instances)})


def sanitize_instances(instances: Instances, min_size: float = 1.0, min_area: float = 1.0) -> Instances:
    """Clamp boxes to the image, keep the instances that are still there, hide outside keypoints.

    An instance is kept when its clamped box is at least ``min_size`` pixels wide and high and
    ``min_area`` in area, and, if it has a mask, the mask is not empty. Boxes are clamped to
    the image because that is where the (cropped) mask lives. Keypoints outside the image get
    visibility 0 and keep their coordinates (never clamped: a clamped point would claim a
    false position on the border).
    """
    boxes = F.clamp_bounding_boxes(instances.boxes, clamping_mode="hard")
    xyxy = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    width, height = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    keep = (width >= min_size) & (height >= min_size) & (width * height >= min_area)
    if instances.masks is not None:
        keep &= instances.masks.flatten(1).ne(0).any(dim=1)
    visibility = instances.visibility
    if visibility is not None and instances.keypoints is not None:
        visibility = torch.where(_outside(instances.keypoints), 0, visibility)
    return replace(instances, boxes=boxes, visibility=visibility).select(keep)


class BoxesFromMasks(v2.Transform):
    """Refit every instance box to its mask; run it after a rotation. See :func:`boxes_from_masks`."""

    def forward(self, sample: Sample) -> Sample:
        return sample.with_targets(**{task: boxes_from_masks(t) for task, t in sample.targets.items()
                                      if isinstance(t, Instances) and t.masks is not None})


def boxes_from_masks(instances: Instances) -> Instances:
    """Boxes around the masks' pixels (:func:`~mtvision.structures.mask_bounds`).

    A rotation moves a box to the box around its rotated corners: for a disc turned by 45°
    that is 41 % wider and higher than the disc. The rotated mask still outlines the object
    exactly. An empty mask keeps its box, for the sanitiser to drop the instance.
    """
    masks = instances.masks.as_subclass(Tensor).bool()
    filled = masks.flatten(1).any(dim=1)
    xyxy = instances.boxes.as_subclass(Tensor).clone()
    xyxy[filled] = mask_bounds(masks[filled]).to(xyxy.dtype)
    return replace(instances, boxes=tv_tensors.wrap(xyxy, like=instances.boxes))


def _outside(points: tv_tensors.KeyPoints) -> Tensor:
    """[N, K] true where the keypoint is off the image ``[0, W) x [0, H)``."""
    h, w = points.canvas_size
    x, y = points[..., 0].as_subclass(Tensor), points[..., 1].as_subclass(Tensor)
    return (x < 0) | (x >= w) | (y < 0) | (y >= h)
