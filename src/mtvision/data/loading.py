"""Decode one :class:`ImageRecord` into a tensor :class:`Sample` (the lazy half of a record).

Readers only parse annotation files; pixels and dense maps are decoded here, one image at
a time, so a dataset of any size opens instantly and a ``DataLoader`` worker decodes only
what it serves. Every target type of :mod:`mtvision.data.record` maps to the
:mod:`mtvision.structures` convention:

* instances -> :class:`Instances` (masks rasterised with pycocotools, only when some
  annotation has a segmentation; an annotation without one gets its box as mask);
* labels -> int64 scalar, or a ``[C]`` 0/1 vector for multi-label;
* semantic -> ``Mask [H, W]`` int64; edges -> ``Mask [1, H, W]`` uint8 (any value > 0 is edge);
* depth -> ``DepthMap`` in metres (stored value / ``DenseRef.scale``; 0 stays invalid);
* normals -> ``NormalMap``: ``.npy`` as is; PNG ``[0, max]`` mapped to ``[-1, 1]`` and
  renormalised, an all-zero pixel meaning "no normal". Pillow decodes 16-bit RGB PNGs at
  8-bit precision, so store precise normals as ``.npy``.

Example:
    >>> from mtvision.data.formats import combined
    >>> record = combined.read("data/synth/dataset.json")  # doctest: +SKIP
    >>> load_sample(record, record.images[0], tasks=["depth"]).targets["depth"].shape  # doctest: +SKIP
    torch.Size([1, 128, 128])
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Collection
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from torch import Tensor
from torchvision import tv_tensors

from mtvision.data.errors import FormatError
from mtvision.data.formats._common import check_rle, decode_mask
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, TaskInfo, resolve
from mtvision.structures import DepthMap, Instances, NormalMap, Sample
from mtvision.vectors import unit_vectors

__all__ = ["CorruptImageError", "load_sample", "load_image", "instances_from_annotations", "label_tensor"]


class CorruptImageError(FormatError):
    """An image file that is missing, truncated or not an image; names the file.

    A :class:`FormatError`, so code that reports bad datasets catches it too, while
    :class:`~mtvision.data.dataset.MultiTaskDataset` can skip exactly these.
    """

    def __init__(self, file: str | Path, problem: str) -> None:
        super().__init__(file, "", f"cannot read image: {problem}")


def load_sample(record: DatasetRecord, image: ImageRecord, tasks: Collection[str] | None = None) -> Sample:
    """The image and its targets for ``tasks`` (default: every task of the record).

    Tasks the image is not labelled for are absent from ``Sample.targets``.
    """
    names = _select_tasks(record, tasks)
    path = record.image_path(image)
    pixels = load_image(path, embedded=image.meta.get("image_data"))
    size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
    if image.width > 0 and image.height > 0 and (image.height, image.width) != size:
        raise FormatError(path, "", f"decoded size {size[1]}x{size[0]} differs from the record's "
                                    f"{image.width}x{image.height} (EXIF rotation or a stale annotation?)")
    targets = {task: _target(record, image, task, size) for task in names if task in image.targets}
    meta = {"file_name": image.file_name, "id": image.id, "path": str(path), "orig_size": size,
            **{k: v for k, v in image.meta.items() if k != "image_data"}}
    return Sample(image=pixels, targets=targets, meta=meta)


def _select_tasks(record: DatasetRecord, tasks: Collection[str] | None) -> list[str]:
    if tasks is None:
        return list(record.tasks)
    if unknown := [t for t in tasks if t not in record.tasks]:
        raise ValueError(f"unknown task(s) {unknown}; the dataset has: {', '.join(record.tasks)}")
    return list(tasks)


def load_image(path: str | Path, embedded: str | None = None) -> tv_tensors.Image:
    """Decode ``path`` to ``uint8 [3, H, W]`` RGB; a missing or broken file raises :class:`CorruptImageError`.

    ``embedded`` is a base64 image carried inside the annotation (LabelMe's ``imageData``);
    it is decoded instead of ``path`` when the export holds the only copy of the pixels.
    """
    try:
        source = io.BytesIO(base64.b64decode(embedded, validate=True)) if embedded else path
        with PILImage.open(source) as im:
            rgb = np.array(im.convert("RGB"))  # convert() decodes fully, so truncation surfaces here
    except (OSError, SyntaxError, ValueError, binascii.Error, PILImage.DecompressionBombError) as err:
        raise CorruptImageError(path, str(err)) from err
    return tv_tensors.Image(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())


def _target(record: DatasetRecord, image: ImageRecord, task: str, size: tuple[int, int]) -> Any:
    info, value = record.tasks[task], image.targets[task]
    if info.kind == "instances":
        try:
            return instances_from_annotations(value, info, size)
        except ValueError as err:
            raise FormatError(record.image_path(image), f"task {task!r}", str(err)) from err
    if info.kind == "label":
        return label_tensor(value, info)
    return _load_dense(resolve(record.root, value.path), value, info.kind, size)


# --- instances -----------------------------------------------------------------------


def instances_from_annotations(annotations: list[Annotation], info: TaskInfo, size: tuple[int, int]) -> Instances:
    """One image's annotations as :class:`Instances` on a canvas of ``size`` (h, w)."""
    n = len(annotations)
    boxes = torch.tensor([a.box for a in annotations], dtype=torch.float32).reshape(n, 4)
    masks = None
    if any(a.segmentation is not None for a in annotations):
        masks = tv_tensors.Mask(torch.from_numpy(np.stack([_rasterise(a, size) for a in annotations])))
    keypoints, visibility = _keypoints(annotations, info, size)
    return Instances(
        boxes=tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
        labels=torch.tensor([a.category for a in annotations], dtype=torch.int64),
        masks=masks,
        keypoints=keypoints,
        visibility=visibility,
        iscrowd=torch.tensor([a.iscrowd for a in annotations], dtype=torch.bool),
        attributes=[dict(a.attributes) for a in annotations],
    )


def _rasterise(annotation: Annotation, size: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` uint8 mask; the box when the annotation has no segmentation."""
    h, w = size
    segmentation = annotation.segmentation
    if segmentation is None:
        x1, y1, x2, y2 = annotation.box
        box = np.array([[x1, y1, x2 - x1, y2 - y1]], dtype=np.float64)
        return mask_utils.decode(mask_utils.frPyObjects(box, h, w)[0])
    if isinstance(segmentation, dict):  # pycocotools trusts RLE sizes; a wrong one reads garbage
        segmentation = check_rle(segmentation, h, w)
    return decode_mask(segmentation, h, w)


def _keypoints(annotations: list[Annotation], info: TaskInfo,
               size: tuple[int, int]) -> tuple[tv_tensors.KeyPoints | None, Tensor | None]:
    """``[N, K, 2]`` points + ``[N, K]`` visibility; an annotation without points gets v = 0."""
    k = len(info.keypoint_names) or max((len(a.keypoints) // 3 for a in annotations if a.keypoints), default=0)
    if k == 0:
        return None, None
    unlabelled = [0.0] * (3 * k)
    rows = [a.keypoints or unlabelled for a in annotations]
    wrong = next((len(row) for row in rows if len(row) != 3 * k), None)
    if wrong is not None:
        raise ValueError(f"an annotation has {wrong} keypoint values, expected {3 * k} ({k} x, y, v triplets)")
    table = torch.tensor(rows, dtype=torch.float32).view(len(rows), k, 3)
    return tv_tensors.KeyPoints(table[..., :2], canvas_size=size), table[..., 2].to(torch.int64)


def label_tensor(value: int | list[int], info: TaskInfo) -> Tensor:
    """Single-label -> int64 scalar; multi-label -> ``[C]`` int64 0/1 vector."""
    if not info.multi_label:
        return torch.tensor(int(value), dtype=torch.int64)
    vector = torch.zeros(len(info.classes), dtype=torch.int64)
    vector[list(value)] = 1
    return vector


# --- dense maps ----------------------------------------------------------------------


def _load_dense(path: Path, ref: DenseRef, kind: str, size: tuple[int, int]) -> Tensor:
    array = _read_array(path)
    hw = array.shape[1:] if array.ndim == 3 and array.shape[0] in (1, 3) else array.shape[:2]
    if tuple(hw) != size:
        raise FormatError(path, "", f"{kind} map is {hw[1]}x{hw[0]} but its image is {size[1]}x{size[0]}")
    try:
        return _DENSE[kind](array, ref)
    except ValueError as err:
        raise FormatError(path, "", str(err)) from err


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path)
        with PILImage.open(path) as im:
            return np.array(im)
    except (OSError, ValueError, SyntaxError) as err:
        raise FormatError(path, "", f"cannot read dense map: {err}") from err


def _single_channel(array: np.ndarray, kind: str) -> np.ndarray:
    squeezed = array.squeeze(axis=0) if array.ndim == 3 and array.shape[0] == 1 else array
    squeezed = squeezed.squeeze(axis=-1) if squeezed.ndim == 3 and squeezed.shape[-1] == 1 else squeezed
    if squeezed.ndim != 2:
        raise ValueError(f"{kind} map must have one channel (an index / grey PNG), got shape {array.shape}")
    return squeezed


def _semantic(array: np.ndarray, ref: DenseRef) -> tv_tensors.Mask:
    return tv_tensors.Mask(torch.from_numpy(_single_channel(array, "semantic").astype(np.int64)))


def _edges(array: np.ndarray, ref: DenseRef) -> tv_tensors.Mask:
    return tv_tensors.Mask(torch.from_numpy((_single_channel(array, "edges") > 0).astype(np.uint8))[None])


def _depth(array: np.ndarray, ref: DenseRef) -> DepthMap:
    metres = _single_channel(array, "depth").astype(np.float32) / np.float32(ref.scale)
    return DepthMap(torch.from_numpy(metres))


def _normals(array: np.ndarray, ref: DenseRef) -> NormalMap:
    chw = array if array.shape[0] == 3 and array.ndim == 3 else np.moveaxis(array, -1, 0)
    if chw.ndim != 3 or chw.shape[0] != 3:
        raise ValueError(f"normal map must have 3 channels, got shape {array.shape}")
    if np.issubdtype(chw.dtype, np.floating):
        return NormalMap(torch.from_numpy(chw.astype(np.float32)))
    vectors = torch.from_numpy(chw.astype(np.float32) / np.iinfo(chw.dtype).max * 2 - 1)
    return NormalMap(unit_vectors(vectors, dim=0) * torch.from_numpy(np.any(chw != 0, axis=0))[None])


_DENSE: dict[str, Callable[[np.ndarray, DenseRef], Tensor]] = {
    "semantic": _semantic, "depth": _depth, "normals": _normals, "edges": _edges,
}
