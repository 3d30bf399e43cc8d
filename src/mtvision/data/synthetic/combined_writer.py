"""Write tensor samples (e.g. the synthetic scenes) to disk as a combined-format dataset.

Layout under ``out``: ``images/<n>.png`` and one folder per dense task named after it,
plus ``dataset.json`` (:mod:`mtvision.data.formats.combined`). File encodings and what
they cost in precision:

* images: RGB PNG, lossless;
* semantic maps: palette PNG (the class colours of :mod:`mtvision.draw`, so the file
  can be looked at), exact indices (16-bit grey PNG above 256 classes);
* depth: 16-bit PNG in millimetres, ``scale`` 1000: quantised to 1 mm (error <= 0.5 mm),
  range up to 65.535 m (beyond is clipped); a valid depth below 0.5 mm is stored as 1 mm
  so it never turns into the invalid value 0;
* normals: ``.npy`` float16, because Pillow cannot write 16-bit RGB PNG and 8-bit would
  cost ~0.008 per component: error <= 2^-12 ~ 2.4e-4 per component, exact zeros;
* edges: grey PNG holding 0/1, exact;
* instances: masks as COCO compressed RLE (exact), boxes and keypoints as float32 values
  written exactly; image-level labels exact.

Example:
    >>> import tempfile
    >>> path = export_synthetic(Path(tempfile.mkdtemp()), num=2, size=32, seed=0)
    >>> path.name
    'dataset.json'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image as PILImage
from torch import Tensor

from mtvision.data.formats import combined
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, ImageTarget
from mtvision.data.synthetic.scenes import SyntheticDataset, synthetic_tasks
from mtvision.draw import palette
from mtvision.structures import Instances, Sample, TaskInfo, mask_to_rle

__all__ = ["export_synthetic", "write_samples", "DEPTH_SCALE"]

DEPTH_SCALE = 1000.0  # stored units per metre: millimetres
_SKIPPED_META = ("file_name", "path", "id")  # rewritten by the export / the loader


def export_synthetic(out: Path, num: int, size: int | tuple[int, int], seed: int, max_objects: int = 4) -> Path:
    """Write the scenes of ``SyntheticDataset(num, size, seed, max_objects=...)`` into ``out``; returns the JSON path.

    Reading it back gives those samples again, within the quantisation stated above.
    """
    scenes = SyntheticDataset(num, size=size, seed=seed, max_objects=max_objects)
    return write_samples((scenes[i] for i in range(num)), synthetic_tasks(), out)


def write_samples(samples: Iterable[Sample], tasks: Mapping[str, TaskInfo], out: Path,
                  name: str = "dataset.json") -> Path:
    """Write every sample's image and targets under ``out`` and index them in ``out / name``.

    Targets are encoded by their task's kind (see the module docstring); meta values JSON
    cannot hold (tensors) are left out.
    """
    out = Path(out)
    record = DatasetRecord(root=out, tasks=dict(tasks))
    for index, sample in enumerate(samples):
        record.images.append(_write_sample(sample, record.tasks, out, index))
    return combined.write(record, out / name)


def _write_sample(sample: Sample, tasks: dict[str, TaskInfo], out: Path, index: int) -> ImageRecord:
    stem = f"{index:06d}"
    height, width = sample.size
    file_name = f"images/{stem}.png"
    _save(_to_uint8(sample.image).permute(1, 2, 0).numpy(), out / file_name)
    targets: dict[str, ImageTarget] = {}
    for task, target in sample.targets.items():
        kind = tasks[task].kind
        if kind == "instances":
            targets[task] = _annotations(target)
        elif kind == "label":
            targets[task] = target.nonzero().flatten().tolist() if tasks[task].multi_label else int(target)
        else:
            targets[task] = _DENSE_WRITERS[kind](target, out, f"{task}/{stem}", tasks[task])
    meta = {k: v for k, v in sample.meta.items() if k not in _SKIPPED_META and _jsonable(v)}
    return ImageRecord(file_name=file_name, width=width, height=height, id=sample.meta.get("id", index),
                       targets=targets, meta=meta)


def _annotations(instances: Instances) -> list[Annotation]:
    n = len(instances)
    masks = instances.masks.numpy() if instances.masks is not None else [None] * n
    points = None
    if instances.keypoints is not None:
        points = torch.cat([instances.keypoints.as_subclass(Tensor), instances.visibility[..., None].float()], -1)
    return [
        Annotation(
            category=int(instances.labels[i]),
            box=tuple(instances.boxes[i].tolist()),
            segmentation=mask_to_rle(masks[i]) if masks[i] is not None else None,
            keypoints=[c for x, y, v in points[i].tolist() for c in (x, y, int(v))] if points is not None else None,
            iscrowd=bool(instances.iscrowd[i]),
            attributes=dict(instances.attributes[i]),
        )
        for i in range(n)
    ]


def _write_semantic(target: Tensor, out: Path, stem: str, info: TaskInfo) -> DenseRef:
    values = target.numpy()
    if values.max(initial=0) > 255:
        _save(values.astype(np.uint16), out / f"{stem}.png")
    else:
        picture = PILImage.fromarray(values.astype(np.uint8), "P")
        picture.putpalette(palette(256).flatten().tolist())
        _save_image(picture, out / f"{stem}.png")
    return DenseRef(f"{stem}.png")


def _write_depth(target: Tensor, out: Path, stem: str, info: TaskInfo) -> DenseRef:
    metres = target[0].numpy()
    stored = np.clip(np.round(metres * DEPTH_SCALE), 0, 65535)
    stored[(metres > 0) & (stored == 0)] = 1
    _save(stored.astype(np.uint16), out / f"{stem}.png")
    return DenseRef(f"{stem}.png", scale=DEPTH_SCALE)


def _write_normals(target: Tensor, out: Path, stem: str, info: TaskInfo) -> DenseRef:
    (out / stem).parent.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{stem}.npy", target.numpy().astype(np.float16))
    return DenseRef(f"{stem}.npy")


def _write_edges(target: Tensor, out: Path, stem: str, info: TaskInfo) -> DenseRef:
    _save((target[0].numpy() > 0).astype(np.uint8), out / f"{stem}.png")
    return DenseRef(f"{stem}.png")


_DENSE_WRITERS: dict[str, Callable[[Tensor, Path, str, TaskInfo], DenseRef]] = {
    "semantic": _write_semantic, "depth": _write_depth, "normals": _write_normals, "edges": _write_edges,
}


def _to_uint8(image: Tensor) -> Tensor:
    if image.dtype == torch.uint8:
        return image.as_subclass(Tensor)
    return (image.as_subclass(Tensor).clamp(0, 1) * 255).round().to(torch.uint8)


def _save(array: np.ndarray, path: Path) -> None:
    _save_image(PILImage.fromarray(array), path)


def _save_image(picture: PILImage.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, compress_level=1)  # 3-4x faster than the default for a few % more bytes


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
