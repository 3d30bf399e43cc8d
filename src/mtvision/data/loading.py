"""Decode one :class:`ImageRecord` into a tensor :class:`Sample` (the lazy half of a record).

Readers only parse annotation files; pixels and dense maps are decoded here, one image at
a time, so a dataset of any size opens instantly and a ``DataLoader`` worker decodes only
what it serves. This module reads files (images, map files) and checks their sizes; what a
stored target *means* is the business of the task module that declares its kind
(:mod:`mtvision.tasks.kinds`): e.g. :mod:`mtvision.tasks.depth` turns a 16-bit PNG into a
``DepthMap`` in metres, :mod:`mtvision.tasks.instances` annotations into ``Instances``.

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
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from torchvision import tv_tensors

from mtvision.data.errors import FormatError
from mtvision.data.record import DatasetRecord, ImageRecord, resolve
from mtvision.structures import Sample
from mtvision.tasks.kinds import get_target_kind

__all__ = ["CorruptImageError", "load_sample", "load_image"]


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
    """The task's stored value decoded by its kind (declared by the task module, see
    :mod:`mtvision.tasks.kinds`); a map file is read and its size checked first."""
    info, value = record.tasks[task], image.targets[task]
    kind = get_target_kind(info.kind)
    if not kind.dense:
        try:
            return kind.decode(value, info, size, 1.0)
        except ValueError as err:
            raise FormatError(record.image_path(image), f"task {task!r}", str(err)) from err
    path = resolve(record.root, value.path)
    array = _read_array(path)
    hw = array.shape[1:] if array.ndim == 3 and array.shape[0] in (1, 3) else array.shape[:2]
    if tuple(hw) != size:
        raise FormatError(path, "", f"{info.kind} map is {hw[1]}x{hw[0]} but its image is {size[1]}x{size[0]}")
    try:
        return kind.decode(array, info, size, value.scale)
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
