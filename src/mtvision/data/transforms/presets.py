"""Joint augmentation: every annotation of a ``Sample`` moves with its image (DESIGN §2).

Built on ``torchvision.transforms.v2``: ``Sample`` and ``Instances`` are pytree nodes, so a
v2 transform takes a whole sample and returns one, moving every tv_tensor inside it (boxes,
masks, keypoints, semantic and edge masks, ``DepthMap``, ``NormalMap``) with one set of
random parameters. Colour transforms touch only the image. The steps that need whole
instances (left/right keypoint swap, dropping destroyed instances) live in
:mod:`mtvision.data.transforms_instances`, the aspect-keeping resizes in
:mod:`mtvision.data.transforms_geometry`.

Presets (``train=False`` always means ``"none"``: evaluation is never augmented):

* ``none``    — letterbox (or stretch) to ``size``, float image, ImageNet normalisation;
* ``light``   — + horizontal flip;
* ``default`` — scale jitter and random crop instead of the letterbox, + flip, + colour jitter;
* ``strong``  — wider scale jitter, + rotation up to 15° (boxes refitted to their masks
  where there are masks), + stronger colour jitter.

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mtvision.structures import DepthMap, Sample
    >>> sample = Sample(tv_tensors.Image(torch.zeros(3, 32, 48, dtype=torch.uint8)),
    ...                 {"depth": DepthMap(torch.ones(1, 32, 48))})
    >>> out = build_transforms("default", size=(64, 64))(sample)
    >>> out.image.dtype, tuple(out.image.shape), tuple(out.targets["depth"].shape)
    (torch.float32, (3, 64, 64), (1, 64, 64))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtvision.data.transforms.geometry import Letterbox, RandomFitScale, SemanticVoidFill
from mtvision.data.transforms.instances import (
    BoxesFromMasks,
    RandomHorizontalFlip,
    SanitizeInstances,
    flip_keypoints,
    sanitize_instances,
)
from mtvision.structures import Instances, LetterboxGeometry, Sample, letterbox_geometry

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "Letterbox", "LetterboxGeometry", "Preset", "RandomFitScale",
    "RandomHorizontalFlip", "SanitizeInstances", "SemanticVoidFill", "build_transforms", "check_sample",
    "flip_keypoints", "letterbox_geometry", "sanitize_instances",
]

Preset = Literal["none", "light", "default", "strong"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # what ImageNet-pretrained timm backbones expect
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class _Strength:
    scale_range: tuple[float, float]  # scale jitter around "fits the target size"
    colour: tuple[float, float, float, float]  # brightness, contrast, saturation, hue
    degrees: float  # rotation range (±); 0 = none


_STRENGTH: dict[str, _Strength] = {
    "default": _Strength(scale_range=(0.75, 1.33), colour=(0.2, 0.2, 0.2, 0.02), degrees=0.0),
    "strong": _Strength(scale_range=(0.5, 2.0), colour=(0.4, 0.4, 0.4, 0.05), degrees=15.0),
}


def build_transforms(preset: Preset, size: tuple[int, int], flip_idx: Mapping[str, Sequence[int]] | None = None,
                     train: bool = True, keep_aspect: bool = True,
                     ignore_index: Mapping[str, int] | None = None) -> Callable[[Sample], Sample]:
    """The augmentation pipeline of ``preset``, producing images of ``size`` (h, w).

    Args:
        preset: ``"none"``, ``"light"``, ``"default"`` or ``"strong"`` (see the module doc).
        size: output (height, width) of every image and dense map.
        flip_idx: per keypoint task, the keypoint each one becomes when mirrored; required
            for every task with keypoints unless the preset is ``"none"``.
        train: ``False`` for validation / prediction: no augmentation, no instance dropped.
        keep_aspect: letterbox (fit + pad) rather than stretch to ``size``.
        ignore_index: per task, the void value (its ``TaskInfo.ignore_index``) that padding and
            rotation write into semantic masks; a task not listed gets the label-space default.
    """
    if preset not in get_args(Preset):
        raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(get_args(Preset))}")
    if not train:
        preset = "none"
    steps: list[Callable[[Sample], Sample]] = [
        check_sample,
        SemanticVoidFill(v2.Compose(_geometry(preset, tuple(size), flip_idx, keep_aspect)), ignore_index),
    ]
    if preset in _STRENGTH:
        steps.append(v2.ColorJitter(*_STRENGTH[preset].colour))
    if train:
        steps.append(SanitizeInstances())
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
              v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(steps)


def _geometry(preset: str, size: tuple[int, int], flip_idx: Mapping[str, Sequence[int]] | None,
              keep_aspect: bool) -> list[Callable[[Sample], Sample]]:
    fit = Letterbox(size) if keep_aspect else v2.Resize(size, antialias=True)
    if preset == "none":
        return [fit]
    flip = RandomHorizontalFlip(p=0.5, flip_idx=flip_idx)
    if preset == "light":
        return [fit, flip]
    strength = _STRENGTH[preset]
    # Stretching first makes "fits the target" mean "fills it" when the aspect may change.
    steps: list[Callable[[Sample], Sample]] = [] if keep_aspect else [v2.Resize(size, antialias=True)]
    steps += [RandomFitScale(size, strength.scale_range), v2.RandomCrop(size, pad_if_needed=True), flip]
    if strength.degrees:
        steps += [v2.RandomRotation(strength.degrees, interpolation=v2.InterpolationMode.BILINEAR), BoxesFromMasks()]
    return steps


_INSTANCE_FIELD_TYPES = {"boxes": tv_tensors.BoundingBoxes, "masks": tv_tensors.Mask, "keypoints": tv_tensors.KeyPoints}


def check_sample(sample: Sample) -> Sample:
    """Fail on what v2 transforms would silently leave unmoved: plain tensors where a
    tv_tensor is expected (a dense map that is not moved is misaligned, not an error)."""
    if not isinstance(sample, Sample):
        raise TypeError(f"transforms take a mtvision Sample, got {type(sample).__name__}")
    if not isinstance(sample.image, tv_tensors.Image):
        raise TypeError(f"Sample.image is a {type(sample.image).__name__}; wrap it as tv_tensors.Image")
    for task, target in sample.targets.items():
        if type(target) is Tensor and target.ndim >= 2:
            raise TypeError(f"target of task {task!r} is a plain tensor of shape {tuple(target.shape)}; wrap it "
                            f"as tv_tensors.Mask, DepthMap or NormalMap so that transforms move it")
        if isinstance(target, Instances):
            _check_instances(task, target)
    return sample


def _check_instances(task: str, instances: Instances) -> None:
    for name, expected in _INSTANCE_FIELD_TYPES.items():
        value = getattr(instances, name)
        if value is not None and not isinstance(value, expected):
            raise TypeError(f"Instances.{name} of task {task!r} is a {type(value).__name__}; "
                            f"wrap it as tv_tensors.{expected.__name__}")
