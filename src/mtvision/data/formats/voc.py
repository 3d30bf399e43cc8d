"""Pascal VOC folders: ``Annotations/*.xml``, ``SegmentationClass``/``SegmentationObject`` PNGs.

Tasks of the returned record:

* ``"objects"`` (instances) from the XML files, coordinates per :mod:`.voc_xml` (1-based
  pixel indices -> 0-based XYXY, auto-detected, ``one_based=`` forces it); each object's
  mask is cut from ``SegmentationObject/<id>.png``, where pixel value i is the i-th
  ``<object>`` of the XML. An image with a SegmentationObject PNG but no XML (labelme's
  instance export) gets one object per instance value, its class being the majority
  ``SegmentationClass`` value under it. An XML without objects is a labelled negative;
* ``"semseg"`` (semantic, void = 255): a :class:`DenseRef` to ``SegmentationClass/<id>.png``;
* ``"image_labels"`` (multi-label): from ``ImageSets/Main/<class>_<subset>.txt`` lists,
  ``1`` and ``0`` ("difficult": the class is there but hard) present, ``-1`` absent.

Class names come from ``classes=``, else ``labelmap.txt`` (CVAT/Datumaro, with colours)
or ``class_names.txt`` (labelme), whose index is the mask value; ``"objects"`` uses them
without the background entry, and an XML name missing from them is an error. Without a
list, masks use VOC's 21 classes and objects VOC's 20 when every name is one of them,
else the sorted names found. ``ImageSets/{Main,Segmentation}/{train,val,test}.txt`` give
``meta["subset"]``. Colour-coded (RGB) SegmentationClass PNGs cannot be referenced as
``semseg`` (the loader needs index PNGs): read them with ``semseg=False`` (on the command
line ``--option semseg=false``) or convert them.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "Annotations").mkdir()
    >>> _ = (d / "Annotations" / "a.xml").write_text("<annotation><size><width>9</width><height>5</height></size>"
    ...     "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>5</ymax></bndbox>"
    ...     "</object></annotation>")
    >>> rec = read(d)
    >>> obj = rec.images[0].targets["objects"][0]
    >>> rec.tasks["objects"].classes[obj.category], obj.box
    ('dog', (0.0, 0.0, 9.0, 5.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtvision.data.errors import FormatError
from mtvision.data.formats import voc_xml
from mtvision.data.formats._files import IMAGE_SUFFIXES, image_size, read_text, safe_relpath
from mtvision.data.formats.registry import register_format
from mtvision.data.formats.voc_masks import colormap, index_png, instance_masks, png_header
from mtvision.data.formats.voc_write import write
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import TaskInfo, mask_to_rle, rle_box

__all__ = ["VOC_CLASSES", "detect", "read", "write"]

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
_BACKGROUND = ("background", "_background_")
_SUBSETS = ("train", "val", "test")


@dataclass
class _Context:
    """What every image of one dataset is read against."""

    root: Path
    xml: dict[str, voc_xml.RawImage]
    labels: list[str]  # mask index -> class name
    colors: np.ndarray  # [256, 3] colour of each mask index (for RGB masks)
    objects: list[str]  # "objects" classes
    one_based: bool
    semseg: bool
    jpeg: dict[str, str]  # image id -> file name found in JPEGImages/


def detect(path: str | Path) -> bool:
    """Whether ``path`` is a folder with VOC ``Annotations`` or ``Segmentation*`` sub-folders."""
    path = Path(path)
    return any((path / sub).is_dir() for sub in ("Annotations", "SegmentationClass", "SegmentationObject"))


@register_format("voc")
def read(path: str | Path, *, one_based: bool | None = None, classes: Sequence[str] | None = None,
         semseg: bool = True) -> DatasetRecord:
    """Read a VOC folder into a :class:`DatasetRecord` (tasks listed in the module docstring)."""
    root = Path(path)
    if not detect(root):
        raise FormatError(root, "", "not a VOC folder: no Annotations/, SegmentationClass/ or SegmentationObject/")
    xml = {p.stem: voc_xml.parse(p, p) for p in sorted((root / "Annotations").glob("*.xml"))}
    labels, colors = _label_space(root, classes)
    ctx = _Context(root, xml, labels, colors, _object_classes(xml, labels, classes is not None or
                                                              _label_file(root) is not None, root),
                   voc_xml.is_one_based(list(xml.values())) if one_based is None else one_based, semseg,
                   _jpeg_images(root))
    subsets = _subsets(root)
    image_classes, image_labels = _image_labels(root, ctx.objects)
    stems = sorted(set(xml) | _stems(root / "SegmentationClass") | _stems(root / "SegmentationObject")
                   | set(subsets) | set(image_labels))
    images = [_image(ctx, stem, subsets.get(stem), image_labels.get(stem)) for stem in stems]
    tasks = {"objects": TaskInfo("instances", classes=ctx.objects),
             "semseg": TaskInfo("semantic", classes=labels, ignore_index=255),
             "image_labels": TaskInfo("label", classes=image_classes, multi_label=True)}
    used = {task for im in images for task in im.targets}
    return DatasetRecord(root=root, images=images, tasks={k: v for k, v in tasks.items() if k in used})


def _label_file(root: Path) -> Path | None:
    return next((root / n for n in ("labelmap.txt", "class_names.txt") if (root / n).is_file()), None)


def _label_space(root: Path, classes: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """Mask index -> name, and the colour of each index (labelmap colours over VOC's map)."""
    colors = colormap()
    file = _label_file(root)
    if classes is not None:
        return list(classes), colors
    if file is None:
        return ["background", *VOC_CLASSES], colors
    lines = [ln.strip() for ln in read_text(file).splitlines() if ln.strip() and not ln.startswith("#")]
    if file.name == "class_names.txt":
        return lines, colors
    names = []
    for i, line in enumerate(lines):
        name, _, rest = line.partition(":")
        rgb = rest.partition(":")[0]
        if rgb:
            try:
                colors[i] = [int(c) for c in rgb.split(",")]
            except (ValueError, IndexError, OverflowError):
                raise FormatError(file, f"line {i + 1}", f"colour must be 'r,g,b' in 0..255, got {rgb!r:.30}") from None
        names.append(name)
    return names, colors


def _object_classes(xml: dict[str, voc_xml.RawImage], labels: list[str], explicit: bool, root: Path) -> list[str]:
    known = [n for n in labels if n not in _BACKGROUND]
    found = sorted({o.name for im in xml.values() for o in im.objects})
    unknown = [n for n in found if n not in known]
    if explicit and unknown:
        raise FormatError(root / "Annotations", "", f"object class {unknown[0]!r} is not in the class list {known}")
    return known if not unknown else found


def _jpeg_images(root: Path) -> dict[str, str]:
    folder = root / "JPEGImages"
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return {p.stem: p.name for p in reversed(files) if p.suffix.lower() in IMAGE_SUFFIXES}


def _stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.png")} if folder.is_dir() else set()


def _ids(path: Path) -> list[str]:
    return [line.split()[0] for line in read_text(path).splitlines() if line.strip()]


def _subsets(root: Path) -> dict[str, str]:
    subsets: dict[str, str] = {}
    for folder in ("Main", "Segmentation"):
        for subset in _SUBSETS:
            path = root / "ImageSets" / folder / f"{subset}.txt"
            for stem in _ids(path) if path.is_file() else []:
                subsets.setdefault(stem, subset)
    return subsets


def _image_labels(root: Path, objects: list[str]) -> tuple[list[str], dict[str, list[int]]]:
    """Per-class image lists ``<class>_<subset>.txt`` -> multi-label class indices per image."""
    lists = [p for p in sorted((root / "ImageSets" / "Main").glob("*_*.txt"))
             if p.stem.rsplit("_", 1)[1] in (*_SUBSETS, "trainval")]
    names = sorted({p.stem.rsplit("_", 1)[0] for p in lists})
    classes = [n for n in objects if n in names] + [n for n in names if n not in objects]
    labels: dict[str, set[int]] = {}
    for path in lists:
        index = classes.index(path.stem.rsplit("_", 1)[0])
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("-1", "0", "1"):
                raise FormatError(path, f"line {lineno}", f"expected '<image id> -1|0|1', got {line!r:.60}")
            present = labels.setdefault(fields[0], set())
            if fields[1] != "-1":
                present.add(index)
    return classes, {stem: sorted(v) for stem, v in labels.items()}


def _image(ctx: _Context, stem: str, subset: str | None, labels: list[int] | None) -> ImageRecord:
    raw = ctx.xml.get(stem)
    file_name = _image_file(ctx, stem, raw)
    width, height = _size(ctx, stem, raw, file_name)
    targets: dict[str, Any] = {}
    class_png = ctx.root / "SegmentationClass" / f"{stem}.png"
    object_png = ctx.root / "SegmentationObject" / f"{stem}.png"
    if raw is not None:
        targets["objects"] = _xml_objects(ctx, raw, object_png, (height, width))
    elif object_png.is_file():
        targets["objects"] = _mask_objects(ctx, object_png, class_png, (height, width))
    if ctx.semseg and class_png.is_file():
        targets["semseg"] = _semseg(ctx, class_png, (height, width))
    if labels is not None:
        targets["image_labels"] = labels
    return ImageRecord(file_name=file_name, width=width, height=height, id=stem, targets=targets,
                       meta={"subset": subset} if subset else {})


def _image_file(ctx: _Context, stem: str, raw: voc_xml.RawImage | None) -> str:
    """``JPEGImages/<filename in the XML>`` if it exists, else the ``JPEGImages/<id>.*`` that does."""
    named = None
    if raw is not None and raw.filename:
        named = safe_relpath(raw.filename, ctx.root / "Annotations" / f"{stem}.xml", "filename")
    if named is not None and (ctx.root / "JPEGImages" / named).is_file():
        return f"JPEGImages/{named}"
    return f"JPEGImages/{ctx.jpeg.get(stem) or named or stem + '.jpg'}"


def _size(ctx: _Context, stem: str, raw: voc_xml.RawImage | None, file_name: str) -> tuple[int, int]:
    """``(width, height)`` from the XML, else the image header, else a mask PNG header."""
    if raw is not None and raw.width and raw.height:
        return raw.width, raw.height
    candidates = [ctx.root / file_name, *(ctx.root / sub / f"{stem}.png" for sub in
                                           ("SegmentationClass", "SegmentationObject"))]
    source = next((p for p in candidates if p.is_file()), None)
    if source is None:
        raise FormatError(ctx.root / "Annotations" / f"{stem}.xml", "size", "no <size> and no image to read it from")
    return image_size(source, source, "")


def _xml_objects(ctx: _Context, raw: voc_xml.RawImage, object_png: Path, size: tuple[int, int]) -> list[Annotation]:
    xml_file = ctx.root / "Annotations" / f"{object_png.stem}.xml"
    masks = (instance_masks(index_png(object_png, colormap(), size, xml_file, "SegmentationObject"),
                            len(raw.objects), xml_file, "SegmentationObject")
             if object_png.is_file() else [None] * len(raw.objects))
    anns = []
    for obj, mask in zip(raw.objects, masks):
        attributes = dict(obj.attributes)
        crowd = bool(attributes.pop("iscrowd", False))
        if obj.parts:
            attributes["parts"] = [{"name": name, "box": voc_xml.to_record_box(box, ctx.one_based)}
                                   for name, box in obj.parts]
        anns.append(Annotation(ctx.objects.index(obj.name), voc_xml.to_record_box(obj.box, ctx.one_based),
                               mask, iscrowd=crowd, attributes=attributes))
    return anns


def _mask_objects(ctx: _Context, object_png: Path, class_png: Path, size: tuple[int, int]) -> list[Annotation]:
    """Objects of an image with instance/class PNGs but no XML: majority class per instance."""
    if not class_png.is_file():
        raise FormatError(object_png, "", "no XML and no SegmentationClass PNG to tell the objects' classes")
    ids = index_png(object_png, colormap(), size, object_png, "")
    classes = index_png(class_png, ctx.colors, size, class_png, "")
    anns = []
    for value in (int(v) for v in np.unique(ids) if v not in (0, 255)):
        under = classes[(ids == value) & (classes != 0) & (classes != 255)]
        if under.size == 0 or int(under.max()) >= len(ctx.labels):
            raise FormatError(class_png, "", f"instance {value} has no known class pixels under it")
        name = ctx.labels[int(np.bincount(under).argmax())]
        if name not in ctx.objects:
            raise FormatError(class_png, "", f"instance {value} has class {name!r}, not an object class {ctx.objects}")
        rle = mask_to_rle(ids == value)
        anns.append(Annotation(ctx.objects.index(name), rle_box(rle), rle))
    return anns


def _semseg(ctx: _Context, class_png: Path, size: tuple[int, int]) -> DenseRef:
    """A reference to the class PNG after checking its header: index/palette mode, right size."""
    width, height, mode = png_header(class_png)
    if (height, width) != size:
        raise FormatError(class_png, "", f"mask is {width}x{height}, the image is {size[1]}x{size[0]}")
    if mode not in ("P", "L"):
        raise FormatError(class_png, "", f"colour-coded ({mode}) mask: semseg needs an index or palette "
                                         "PNG; read with semseg=False (--option semseg=false) or convert the masks")
    return DenseRef(path=class_png.relative_to(ctx.root).as_posix())
