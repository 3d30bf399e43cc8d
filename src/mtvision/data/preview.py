"""Draw samples with every annotation they carry: the first look at a dataset (or an augmentation).

One PNG per sample, a grid of panels titled above (small images enlarged first): the image
titled with its image-level labels, then one panel per dense or instance task (boxes + class names, masks, keypoints + skeleton;
semantic colours over the image; depth colormap; normals as RGB; edges in grey). What is
drawn follows the *target type* (the :mod:`mtvision.structures` convention), so a sample
whose task is missing from ``task_infos`` is still drawn, with class indices as names.

Example:
    >>> import tempfile
    >>> from mtvision.data.synthetic import render_scene, synthetic_tasks
    >>> paths = preview([render_scene(0, 64)], synthetic_tasks(), Path(tempfile.mkdtemp()))
    >>> [p.name for p in paths]
    ['0000_000000.png']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors

from mtvision.draw import (
    blend,
    colorize_depth,
    colorize_labels,
    draw_instances,
    gray_to_rgb,
    normals_to_rgb,
    save_png,
    tile,
)
from mtvision.structures import DepthMap, Instances, NormalMap, Sample, TaskInfo

__all__ = ["preview", "render_panels", "image_to_rgb"]

MIN_SIDE = 128  # px: smaller pictures are enlarged for the preview


def preview(samples: Iterable[Sample], task_infos: Mapping[str, TaskInfo], out_dir: Path,
            transform: Callable[[Sample], Sample] | None = None, columns: int = 4) -> list[Path]:
    """Write one PNG per sample into ``out_dir``; returns their paths.

    ``transform`` (e.g. an augmentation preset) is applied to each sample first, which is
    how one checks that an augmentation moves every annotation with the image.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, sample in enumerate(samples):
        if transform is not None:
            sample = transform(sample)
        scale = -(-MIN_SIDE // min(sample.image.shape[-2:]))  # small images enlarged, by a whole factor
        panels, titles = render_panels(sample, task_infos, scale=max(scale, 1))
        path = out_dir / f"{index:04d}_{_stem(sample)}.png"
        save_png(tile(panels, titles, columns=min(columns, len(panels))), str(path))
        paths.append(path)
    return paths


def render_panels(sample: Sample, task_infos: Mapping[str, TaskInfo],
                  scale: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """The pictures of one sample and their titles (the image first, titled with its labels).

    ``scale`` enlarges every picture by that whole factor (nearest) *before* boxes and labels
    are drawn, so that on a 32-pixel scene the class names do not cover the objects.
    """
    image = _repeat(image_to_rgb(sample.image), scale)
    labels = [f"{task}: {_label_text(target, task_infos.get(task))}"
              for task, target in sample.targets.items() if _is_label(target)]
    panels, titles = [image], ["\n".join(labels) or "image"]
    for task, target in sample.targets.items():
        if not _is_label(target):
            panels.append(_draw_target(image, target, task_infos.get(task), scale))
            titles.append(task)
    return panels, titles


def image_to_rgb(image: Tensor) -> np.ndarray:
    """``[3, H, W]`` uint8, or float in [0, 1] -> ``[H, W, 3]`` uint8.

    A float image outside [0, 1] (normalised by a transform) is min-max rescaled, so a
    preview after a full training pipeline is still readable.
    """
    pixels = image.as_subclass(Tensor).detach().cpu()
    if pixels.dtype != torch.uint8:
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0 or high > 1:
            pixels = (pixels - low) / max(high - low, 1e-12)
        pixels = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).numpy()


def _is_label(target: object) -> bool:
    return isinstance(target, Tensor) and not isinstance(target, tv_tensors.TVTensor)


def _label_text(target: Tensor, info: TaskInfo | None) -> str:
    names = _class_names(info, int(target.max()) + 1 if target.numel() else 0)
    if target.ndim == 0:
        return names[int(target)]
    return ", ".join(names[i] for i in target.nonzero().flatten().tolist()) or "-"


def _class_names(info: TaskInfo | None, at_least: int) -> list[str]:
    """The task's class names, or indices as names where the task (or a class) is unknown."""
    names = list(info.classes) if info is not None else []
    return names + [str(i) for i in range(len(names), at_least)]


def _draw_target(image: np.ndarray, target: object, info: TaskInfo | None, scale: int = 1) -> np.ndarray:
    if isinstance(target, Instances):
        return _draw_instances(image, target, info, scale)
    if isinstance(target, DepthMap):
        return _repeat(colorize_depth(target[0].cpu().numpy()), scale)
    if isinstance(target, NormalMap):
        return _repeat(normals_to_rgb(target.cpu().numpy()), scale)
    values = target.as_subclass(Tensor).cpu().numpy()
    if values.ndim == 3:  # edges [1, H, W]
        return _repeat(gray_to_rgb(values[0].astype(np.float32)), scale)
    classes = len(info.classes) if info is not None and info.classes else int(values.max(initial=0)) + 1
    return blend(image, _repeat(colorize_labels(values, classes), scale), alpha=0.6)


def _draw_instances(image: np.ndarray, instances: Instances, info: TaskInfo | None, scale: int = 1) -> np.ndarray:
    labels = instances.labels.tolist()
    names = _class_names(info, max(labels, default=-1) + 1)
    keypoints = instances.keypoints
    masks = instances.masks.cpu().numpy().astype(bool) if instances.masks is not None else None
    return draw_instances(
        image,
        instances.boxes.as_subclass(Tensor).cpu().numpy() * scale,
        labels,
        names,
        masks=np.repeat(np.repeat(masks, scale, axis=1), scale, axis=2) if masks is not None else None,
        keypoints=keypoints.as_subclass(Tensor).cpu().numpy() * scale if keypoints is not None else None,
        visibility=instances.visibility.cpu().numpy() if instances.visibility is not None else None,
        skeleton=list(info.skeleton) if info is not None else (),
    )


def _repeat(picture: np.ndarray, scale: int) -> np.ndarray:
    """``[H, W, ...]`` enlarged ``scale`` times by repeating pixels (class colours stay exact)."""
    return np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1) if scale > 1 else picture


def _stem(sample: Sample) -> str:
    """A file-system-safe name from the sample's file name (or id)."""
    name = Path(str(sample.meta.get("file_name", sample.meta.get("id", "sample")))).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "sample"
