"""Write a :class:`DatasetRecord` as a Pascal VOC folder (annotations only, no images).

Written: ``Annotations/<id>.xml`` for each image labelled for the instance task (boxes
1-based when every coordinate is integral, else 0-based floats: see :mod:`.voc_xml`),
``SegmentationObject/<id>.png`` when objects have masks (pixel value i = i-th object;
where masks overlap the later object wins), ``SegmentationClass/<id>.png`` palette PNGs
from the semantic task's maps, ``ImageSets/{Main,Segmentation}/<subset>.txt`` from
``meta["subset"]`` (images without one are in no list), and ``labelmap.txt``
(CVAT/Datumaro format) so that class indices read back identically. ``<id>`` is the
image file's stem. Attributes are kept (``parts``, ``actions``, flags, others in an
``<attributes>`` block); ``iscrowd`` is written as an ``iscrowd`` attribute; keypoints
have no place in VOC and are not written.

Example:
    >>> import tempfile, pathlib
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> im = ImageRecord("x/a.jpg", 10, 10, targets={"objects": [Annotation(0, (0, 0, 5, 5))]})
    >>> rec = DatasetRecord(pathlib.Path("."), [im], {"objects": TaskInfo("instances", ["cat"])})
    >>> out = pathlib.Path(tempfile.mkdtemp()); write(rec, out)
    >>> b"<xmin>1</xmin>" in (out / "Annotations" / "a.xml").read_bytes()
    True
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from mtvision.data.errors import FormatError
from mtvision.data.formats import voc_xml
from mtvision.data.formats._files import load_png
from mtvision.data.formats.voc_masks import colormap, save_palette_png
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord, resolve
from mtvision.structures import TaskInfo, decode_mask

__all__ = ["write"]


def write(record: DatasetRecord, path: str | Path, *, task: str = "objects", semseg_task: str = "semseg",
          one_based: bool | None = None) -> None:
    """Write the instance task ``task`` and the semantic task ``semseg_task`` (either may be absent)."""
    objects = _task(record, task, "instances")
    semseg = _task(record, semseg_task, "semantic")
    if objects is None and semseg is None:
        raise ValueError(f"the record has neither an instance task {task!r} nor a semantic task {semseg_task!r}")
    out = Path(path)
    if one_based is None:
        one_based = all(v == int(v) for b in _boxes(record, task) for v in b)
    subsets: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    seen: set[str] = set()
    for im in record.images:
        anns = im.targets.get(task) if objects else None
        ref = im.targets.get(semseg_task) if semseg else None
        if anns is None and ref is None:
            continue
        stem = PurePosixPath(im.file_name.replace("\\", "/")).stem
        if stem in seen:
            raise FormatError(out, im.file_name, f"two images share the id {stem!r} (VOC names files by stem)")
        seen.add(stem)
        subset = im.meta.get("subset")
        if anns is not None and objects is not None:
            _write_objects(out, stem, im, anns, objects, one_based, segmented=isinstance(ref, DenseRef))
            if subset:
                subsets["Main"][str(subset)].append(stem)
        if isinstance(ref, DenseRef):
            _write_semseg(record, out, stem, ref)
            if subset:
                subsets["Segmentation"][str(subset)].append(stem)
    _write_lists(out, subsets)
    _write_labelmap(out, objects, semseg)


def _task(record: DatasetRecord, name: str, kind: str) -> TaskInfo | None:
    info = record.tasks.get(name)
    return info if info is not None and info.kind == kind else None


def _boxes(record: DatasetRecord, task: str) -> list[Any]:
    anns = [a for im in record.images for a in im.targets.get(task, [])]  # type: ignore[union-attr]
    return [a.box for a in anns] + [p["box"] for a in anns for p in a.attributes.get("parts", [])]


def _write_objects(out: Path, stem: str, im: ImageRecord, anns: list[Annotation], info: TaskInfo,
                   one_based: bool, segmented: bool) -> None:
    entries = []
    for a in anns:
        attributes = {**a.attributes, "iscrowd": 1} if a.iscrowd else a.attributes
        entries.append((info.classes[a.category], a.box, attributes))
    has_masks = any(a.segmentation for a in anns)
    xml = voc_xml.to_xml(PurePosixPath(im.file_name).name, im.width, im.height, entries, one_based,
                         segmented or has_masks)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    (out / "Annotations" / f"{stem}.xml").write_bytes(xml)
    if has_masks:
        if len(anns) > 254:
            raise FormatError(out, im.file_name, f"{len(anns)} objects: a VOC instance PNG holds at most 254")
        ids = np.zeros((im.height, im.width), np.uint8)
        for i, a in enumerate(anns, start=1):
            if a.segmentation:
                ids[decode_mask(a.segmentation, im.height, im.width) > 0] = i
        save_palette_png(ids, out / "SegmentationObject" / f"{stem}.png")


def _write_semseg(record: DatasetRecord, out: Path, stem: str, ref: DenseRef) -> None:
    source = resolve(record.root, ref.path)
    indices = load_png(source, source, "", modes=("P", "L"))
    save_palette_png(indices, out / "SegmentationClass" / f"{stem}.png")


def _write_lists(out: Path, subsets: dict[str, dict[str, list[str]]]) -> None:
    for folder, lists in subsets.items():
        for subset, stems in lists.items():
            path = out / "ImageSets" / folder / f"{subset}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(s + "\n" for s in stems), encoding="utf-8")


def _write_labelmap(out: Path, objects: TaskInfo | None, semseg: TaskInfo | None) -> None:
    """Mask index order = semantic classes (else background + object classes), objects appended."""
    names = list(semseg.classes) if semseg else ["background"]
    names += [n for n in (objects.classes if objects else []) if n not in names]
    if any(":" in n for n in names):
        raise ValueError(f"class names cannot contain ':' in a VOC labelmap: {names}")
    colors = colormap(max(len(names), 1))
    lines = [f"{n}:{','.join(str(int(c)) for c in colors[i])}::" for i, n in enumerate(names)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "\n".join(lines) + "\n", encoding="utf-8")
