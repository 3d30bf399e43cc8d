"""Procedural 3D scenes with exact ground truth for every task (DESIGN.md §5).

A pinhole camera looks into a room (checkered floor, striped walls) at 1-N spheres, boxes,
cylinders and cones with random size, yaw, colour and texture, lit by a key light with hard
shadows, a weak fill and ambient. Each pixel is ray-cast against the analytic primitives
(:mod:`~mtvision.data.synthetic_geometry`), so depth, normals, masks and keypoints are exact
and agree with each other and with the image. The tasks are related through the geometry,
which is what makes multi-task benefit measurable on them.

A scene is first drawn from its seed as a :class:`SceneSpec` (:func:`sample_scene`: camera,
objects, lights, room), then rendered (:func:`render`); write a ``SceneSpec`` by hand for a
known scene. Everything is vectorised numpy: about 300 images/s at 128x128 with all targets
on one core (``benchmarks/synthetic_speed.py``).

Targets of a rendered :class:`~mtvision.structures.Sample` (the project's default task names):

* ``classes``  - int64 ``[len(SHAPES)]`` 0/1: shapes among the kept ``objects`` instances;
* ``lighting`` - int64 scalar, index into :data:`LIGHTING_CLASSES`: where the key light comes
  from seen from the camera (front / side / back); flip-invariant on purpose;
* ``objects``  - :class:`~mtvision.structures.Instances`: boxes, labels (index into
  :data:`SHAPES`), visible masks, keypoints and visibility (see
  :mod:`~mtvision.data.synthetic_targets` for the keypoint definition); objects with fewer
  than ``MIN_PIXELS`` visible pixels are dropped;
* ``semseg``   - ``Mask [H, W]`` int64, index into :data:`SEMANTIC_CLASSES`;
* ``depth``    - ``DepthMap [1, H, W]`` z-depth in metres, 0 where nothing is hit;
* ``normals``  - ``NormalMap [3, H, W]`` unit, OpenCV camera frame, 0 where nothing is hit;
* ``edges``    - ``Mask [1, H, W]`` uint8: boundaries between surfaces (which include every
  depth discontinuity).

``meta`` holds ``seed``, ``id`` (= seed), ``file_name`` and the camera ``intrinsics`` (3x3).

Example:
    >>> sample = render_scene(3, size=(48, 64))
    >>> sample.size, sorted(sample.targets) == sorted(synthetic_tasks())
    ((48, 64), True)
    >>> SyntheticDataset(2, size=32)[1].meta["seed"]
    1
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from mtvision.data.synthetic.render import cast, shade
from mtvision.data.synthetic.scene import (
    LIGHTING_CLASSES,
    SHAPES,
    Camera,
    Light,
    Plane,
    SceneObject,
    SceneSpec,
    lighting_label,
    sample_scene,
)
from mtvision.data.synthetic.targets import (
    FLIP_IDX,
    KEYPOINT_NAMES,
    MIN_PIXELS,
    SEMANTIC_CLASSES,
    SKELETON,
    edge_map,
    instance_masks,
    keypoints,
    semantic_map,
)
from mtvision.structures import DepthMap, Instances, NormalMap, Sample, TaskInfo, mask_bounds

__all__ = ["SHAPES", "SEMANTIC_CLASSES", "LIGHTING_CLASSES", "KEYPOINT_NAMES", "SKELETON", "FLIP_IDX", "MIN_PIXELS",
           "Camera", "Light", "Plane", "SceneObject", "SceneSpec", "sample_scene", "synthetic_tasks",
           "render", "render_scene", "SyntheticDataset"]


def synthetic_tasks() -> dict[str, TaskInfo]:
    """The label space of each target key a rendered sample carries.

    Example:
        >>> synthetic_tasks()["objects"].flip_idx
        [0, 1, 3, 2, 4, 5]
    """
    return {
        "classes": TaskInfo(kind="label", classes=list(SHAPES), multi_label=True),
        "lighting": TaskInfo(kind="label", classes=list(LIGHTING_CLASSES)),
        "objects": TaskInfo(kind="instances", classes=list(SHAPES), keypoint_names=list(KEYPOINT_NAMES),
                            skeleton=list(SKELETON), flip_idx=list(FLIP_IDX)),
        "semseg": TaskInfo(kind="semantic", classes=list(SEMANTIC_CLASSES)),
        "depth": TaskInfo(kind="depth"),
        "normals": TaskInfo(kind="normals"),
        "edges": TaskInfo(kind="edges", classes=["edge"]),
    }


def render_scene(seed: int, size: int | tuple[int, int] = 128, max_objects: int = 4, walls: bool = True) -> Sample:
    """Sample the scene of ``seed`` and render it at ``size`` (``(height, width)`` or square).

    Example:
        >>> s = render_scene(0, size=32)
        >>> s.image.shape, s.targets["depth"].shape, s.meta["file_name"]
        (torch.Size([3, 32, 32]), torch.Size([1, 32, 32]), '000000.png')
    """
    return render(sample_scene(seed, max_objects=max_objects, walls=walls), size,
                  meta={"seed": seed, "id": seed, "file_name": f"{seed:06d}.png"})


def render(spec: SceneSpec, size: int | tuple[int, int] = 128, meta: dict | None = None) -> Sample:
    """Render a scene (sampled or hand-made) with the targets of every task.

    Example:
        >>> ball = SceneObject("sphere", center=(0.0, 0.0, 0.5), extent=(0.5, 0.5, 0.5))
        >>> spec = SceneSpec(Camera((0.0, -4.0, 2.0), (0.0, 0.0, 0.5)), (ball,), (Light((0.0, -1.0, 1.0)),))
        >>> render(spec, 16).targets["classes"].tolist()
        [1, 0, 0, 0]
    """
    size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    frame = cast(spec, size)
    image = torch.from_numpy(np.round(shade(spec, frame) * 255).astype(np.uint8))
    hit = frame.segment > 0
    normals = (spec.camera.rotation.astype(np.float32) @ frame.normals.reshape(3, -1)).reshape(3, *size)
    targets = {
        "objects": _instances(spec, frame.segment, size),
        "lighting": torch.tensor(lighting_label(spec), dtype=torch.int64),
        "semseg": tv_tensors.Mask(torch.from_numpy(semantic_map(spec, frame.segment))),
        "depth": DepthMap(torch.from_numpy(np.where(hit, frame.depth, np.float32(0))[None])),
        "normals": NormalMap(torch.from_numpy(normals)),  # already 0 where nothing is hit
        "edges": tv_tensors.Mask(torch.from_numpy(edge_map(frame.segment)[None])),
    }
    classes = torch.zeros(len(SHAPES), dtype=torch.int64)
    classes[targets["objects"].labels] = 1
    f, cx, cy = spec.camera.intrinsics(size)
    meta = {**(meta or {}), "intrinsics": [[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]]}
    return Sample(tv_tensors.Image(image), {"classes": classes, **targets}, meta)


def _instances(spec: SceneSpec, segment: np.ndarray, size: tuple[int, int]) -> Instances:
    """Visible instances with their boxes, masks and keypoints (one record per object)."""
    kept, masks = instance_masks(spec, segment)
    uv, visibility = keypoints(spec, kept, size)
    labels = [SHAPES.index(spec.objects[i].shape) for i in kept]
    return Instances(
        boxes=tv_tensors.BoundingBoxes(mask_bounds(torch.from_numpy(masks)), format="XYXY", canvas_size=size),
        labels=torch.tensor(labels, dtype=torch.int64),
        masks=tv_tensors.Mask(torch.from_numpy(masks)),
        keypoints=tv_tensors.KeyPoints(torch.from_numpy(uv), canvas_size=size),
        visibility=torch.from_numpy(visibility),
    )


class SyntheticDataset(Dataset):
    """``num`` scenes rendered on the fly: item ``i`` is :func:`render_scene` of ``seed + i``,
    so two datasets with disjoint seed ranges never share a scene (use them as splits).

    Example:
        >>> ds = SyntheticDataset(4, size=(32, 48), seed=100)
        >>> len(ds), ds[0].size, ds[0].meta["id"]
        (4, (32, 48), 100)
    """

    def __init__(self, num: int, size: int | tuple[int, int] = 128, seed: int = 0,
                 transform: Callable[[Sample], Sample] | None = None, max_objects: int = 4,
                 walls: bool = True) -> None:
        self.num, self.size, self.seed = num, size, seed
        self.transform, self.max_objects, self.walls = transform, max_objects, walls
        self.tasks = synthetic_tasks()

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> Sample:
        if not -self.num <= index < self.num:
            raise IndexError(f"SyntheticDataset index {index} out of range for {self.num} scenes")
        sample = render_scene(self.seed + index % self.num, self.size, self.max_objects, self.walls)
        return self.transform(sample) if self.transform is not None else sample
