"""The sample every layer speaks: an image, its per-task targets, and meta.

Targets are torchvision ``tv_tensors`` so that ``torchvision.transforms.v2`` moves every
annotation together with the image. Dense float maps get their own tv_tensor classes
(:class:`~mtvision.structures.dense_maps.DepthMap`, ``NormalMap``) defined with their
kernels in :mod:`mtvision.structures.dense_maps`, because the stock kernels would either
blend values across depth discontinuities or move normal *vectors* without turning them.

Instance annotations are one :class:`Instances` record holding every per-instance field,
so whatever drops an instance (a crop, a sanitiser) drops its box, mask, keypoints and
attributes together.

A task with no label for an image is simply *absent* from ``Sample.targets``: partial labels
are normal, and nothing is ever zero-filled to look present.

Coordinate conventions (used by every reader, renderer and head):

* boxes are ``XYXY`` in pixels of the current image, pixel ``j`` spanning ``[j, j + 1)``
  (:func:`mask_bounds` gives the box of a mask);
* keypoints are ``[N, K, 2]`` pixel coordinates plus a ``[N, K]`` visibility in COCO's
  code (0 = not labelled, 1 = labelled but occluded, 2 = visible);
* normals are unit vectors in the OpenCV camera frame: x right, y down, z forward
  (into the scene), so a surface facing the camera has ``z < 0``;
* depth is metric (metres) along the optical axis; 0 marks an invalid pixel.

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> s = Sample(tv_tensors.Image(torch.zeros(3, 4, 4)), {"scene": torch.tensor(1)})
    >>> s.size
    (4, 4)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

__all__ = ["Instances", "Sample", "Batch", "mask_bounds"]


@dataclass
class Instances:
    """All instances of one image, one row per instance in every field.

    ``masks``, ``keypoints`` and ``visibility`` are ``None`` when the source has no such
    annotation (a box-only dataset), never empty placeholders.
    """

    boxes: tv_tensors.BoundingBoxes  # [N, 4] XYXY pixels
    labels: Tensor  # [N] int64 class index (contiguous, 0-based)
    masks: tv_tensors.Mask | None = None  # [N, H, W] uint8 {0, 1}
    keypoints: tv_tensors.KeyPoints | None = None  # [N, K, 2] pixels
    visibility: Tensor | None = None  # [N, K] int64 in {0, 1, 2}
    iscrowd: Tensor | None = None  # [N] bool
    attributes: list[dict[str, Any]] = field(default_factory=list)  # one dict per instance

    def __post_init__(self) -> None:
        if self.iscrowd is None:
            self.iscrowd = torch.zeros(len(self.labels), dtype=torch.bool)
        if not self.attributes:
            self.attributes = [{} for _ in range(len(self.labels))]
        self._check_lengths()

    def _check_lengths(self) -> None:
        n = len(self.labels)
        for name in ("boxes", "masks", "keypoints", "visibility", "iscrowd"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"Instances.{name} has {len(value)} rows but labels has {n}")
        if len(self.attributes) != n:
            raise ValueError(f"Instances.attributes has {len(self.attributes)} rows but labels has {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, keep: Tensor) -> Instances:
        """The instances where ``keep`` (bool [N]) is true, every field at once."""
        index = keep.nonzero().flatten()
        picked = {name: _take(getattr(self, name), index) for name in _TENSOR_FIELDS}
        picked["attributes"] = [self.attributes[int(i)] for i in index]
        return Instances(**picked)

    @classmethod
    def empty(cls, canvas_size: tuple[int, int], num_keypoints: int | None = None,
              with_masks: bool = False) -> Instances:
        """An image labelled for instances that contains none (a true negative)."""
        h, w = canvas_size
        keypoints = visibility = None
        if num_keypoints is not None:
            keypoints = tv_tensors.KeyPoints(torch.zeros(0, num_keypoints, 2), canvas_size=canvas_size)
            visibility = torch.zeros(0, num_keypoints, dtype=torch.int64)
        return cls(
            boxes=tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=canvas_size),
            labels=torch.zeros(0, dtype=torch.int64),
            masks=tv_tensors.Mask(torch.zeros(0, h, w, dtype=torch.uint8)) if with_masks else None,
            keypoints=keypoints,
            visibility=visibility,
        )


_TENSOR_FIELDS = ("boxes", "labels", "masks", "keypoints", "visibility", "iscrowd")


def _take(value: Tensor | None, index: Tensor) -> Tensor | None:
    """Index rows of a (tv_)tensor keeping its tv_tensor type and metadata."""
    if value is None:
        return None
    picked = value[index]
    if isinstance(value, tv_tensors.TVTensor):
        return tv_tensors.wrap(picked, like=value)
    return picked


@dataclass
class Sample:
    """One image and whatever it is labelled with.

    ``targets`` maps a task name (as named in the config, e.g. ``"semseg"``) to its target:
    ``Instances`` for detection, a ``Mask`` ``[H, W]`` for semantic segmentation, a
    ``DepthMap``/``NormalMap`` for dense regression, a ``Mask`` ``[1, H, W]`` for edges, and
    an int64 tensor for image-level labels (scalar class index, or a ``[C]`` 0/1 vector for
    multi-label).
    """

    image: tv_tensors.Image  # [3, H, W] uint8 or float in [0, 1]
    targets: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # file name, id, original size...

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def with_targets(self, **targets: Any) -> Sample:
        return replace(self, targets={**self.targets, **targets})


@dataclass
class Batch:
    """A collated batch: images stacked, each task's targets batched *separately*.

    ``present[task]`` is a bool ``[B]`` marking which images carry a label for ``task``;
    ``targets[task]`` holds only those images' targets, in batch order (a stacked tensor
    for dense and image-level tasks, a list of ``Instances`` for detection). A head's
    prediction for the whole batch is therefore compared with ``prediction[present]``.
    """

    images: Tensor  # [B, 3, H, W] float, normalised
    targets: dict[str, Any]
    present: dict[str, Tensor]
    meta: list[dict[str, Any]]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(
            images=self.images.to(device, non_blocking=non_blocking),
            targets={k: _move(v, device, non_blocking) for k, v in self.targets.items()},
            present={k: v.to(device, non_blocking=non_blocking) for k, v in self.present.items()},
            meta=self.meta,
        )


def _move(value: Any, device: torch.device | str, non_blocking: bool) -> Any:
    """Move tensors inside lists / Instances to ``device``, keeping tv_tensor types."""
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=non_blocking)
    if isinstance(value, list):
        return [_move(v, device, non_blocking) for v in value]
    if isinstance(value, Instances):
        moved = {name: _move(getattr(value, name), device, non_blocking) for name in _TENSOR_FIELDS}
        return Instances(**moved, attributes=value.attributes)
    return value


# --- pytree registration -------------------------------------------------------------
# torchvision.transforms.v2 flattens its input with torch's pytree utilities and transforms
# every tv_tensor leaf. Registering Sample and Instances as pytree nodes lets a v2 transform
# take a whole Sample and return a Sample, with meta and attributes carried as context.

def _flatten_instances(inst: Instances) -> tuple[list[Any], Any]:
    return [getattr(inst, name) for name in _TENSOR_FIELDS], inst.attributes


def _unflatten_instances(values: list[Any], attributes: Any) -> Instances:
    return Instances(**dict(zip(_TENSOR_FIELDS, values)), attributes=attributes)


def _flatten_sample(sample: Sample) -> tuple[list[Any], Any]:
    return [sample.image, sample.targets], sample.meta


def _unflatten_sample(values: list[Any], meta: Any) -> Sample:
    return Sample(image=values[0], targets=values[1], meta=meta)


pytree.register_pytree_node(
    Instances, _flatten_instances, _unflatten_instances, serialized_type_name="mtvision.Instances"
)
pytree.register_pytree_node(Sample, _flatten_sample, _unflatten_sample, serialized_type_name="mtvision.Sample")


def mask_bounds(masks: Tensor) -> Tensor:
    """``[N, 4]`` float XYXY boxes tight around ``[N, H, W]`` non-empty masks, in the box
    convention: the far edges are the last pixel index + 1, where torchvision's
    ``masks_to_boxes`` gives the index itself."""
    return masks_to_boxes(masks.bool()) + torch.tensor([0.0, 0.0, 1.0, 1.0], device=masks.device)
