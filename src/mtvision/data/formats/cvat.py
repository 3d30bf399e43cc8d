"""CVAT for images 1.1 XML (task, job and project exports) -> :class:`DatasetRecord`.

Conventions:

* Shapes -> task ``"objects"``; classes are the top-level labels of ``<meta>`` in their
  declared order (not those of type ``tag``). ``<tag>`` -> multi-label task ``"tags"``
  (present on every image once the file has any tag; an image without tags is ``[]``).
  A tag whose label ``<meta>`` does not declare (CVAT's own documentation example does
  this) becomes a class of ``"tags"`` after the declared ones, with a warning: the export
  is read as CVAT wrote it, and the user learns the label space grew.
* ``box`` (rotation about its centre: corners kept as a polygon segmentation, the
  enclosing box as ``box``), ``polygon``, ``ellipse`` (-> polygon), ``mask`` (its RLE runs
  over its own box, row-major, starting with background -> full-image COCO RLE).
* ``skeleton`` -> keypoints named by its sub-labels (``skeleton.sub`` when several skeleton
  labels exist), edges from the label's SVG. A point ``outside="1"`` is out of view:
  ``(0, 0, 0)``; ``occluded="1"`` -> v=1; otherwise v=2.
* ``group_id``: shapes of one group are one instance. Its class/box come from the group's
  box, else polygon/mask, else skeleton; polygons and masks are united; each ``points``
  shape in the group adds keypoints named by its label (``label.i`` if it has several).
* Ungrouped ``points`` and ``polyline`` have no area: an instance with their bounds as box
  and the coordinates in ``attributes["points"]`` / ``attributes["polyline"]``.
* Attributes are typed by the label spec (checkbox -> bool, number -> float) and
  ``occluded`` is kept. Shapes with an empty label carry no class: skipped, counted in
  ``meta["unlabeled_shapes"]``.
* Project exports: ``meta["subset"]`` per image, images under ``images/<subset>/``;
  ``subset=`` keeps one subset.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "annotations.xml"
    >>> _ = path.write_text('<annotations><version>1.1</version><image id="0" name="a.jpg" width="8" '
    ...                     'height="6"><box label="car" xtl="1" ytl="2" xbr="5" ybr="6"/></image></annotations>')
    >>> rec = read(path)
    >>> rec.tasks["objects"].classes, rec.images[0].targets["objects"][0].box
    (['car'], (1.0, 2.0, 5.0, 6.0))
"""

from __future__ import annotations

import math
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats._files import safe_relpath
from mtvision.data.formats._shapes import (
    Box,
    Draft,
    bounds,
    check_canvas,
    decode_cvat_rle,
    ellipse_polygon,
    finish_instances,
    finish_labels,
    flatten,
    mask_region,
    merge_group,
    paste,
    rotate,
)
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, ImageRecord
from mtvision.structures import Rle

SHAPES = ("box", "polygon", "ellipse", "mask", "skeleton", "points", "polyline")
KIND = {"ellipse": "polygon"}  # element -> the shape kind merge_group knows


@register_format("cvat")
def read(path: str | Path, *, subset: str | None = None, image_dir: str | None = None,
         root: str | Path | None = None) -> DatasetRecord:
    """Read ``annotations.xml`` (or a folder holding it); ``root`` defaults to its folder."""
    file = _xml_file(Path(path))
    try:
        doc = ET.parse(file).getroot()
    except (ET.ParseError, OSError) as exc:
        raise FormatError(file, "", f"invalid XML: {exc}") from None
    if doc.tag != "annotations" or doc.find("track") is not None:
        raise FormatError(file, "", "not CVAT for images 1.1 (<annotations> with <image> elements expected)")
    spec = _Spec(doc.find("meta"), str(file))
    record = DatasetRecord(root=Path(root) if root is not None else file.parent)
    drafts: list[list[Draft]] = []
    tags: list[list[str]] = []
    for i, el in enumerate(doc.findall("image")):
        entry = f"image[{i}] (name={el.get('name')!r:.60})"
        try:
            image, shapes, labels = _read_image(el, spec, image_dir, record.root, str(file), entry)
        except FormatError:
            raise
        except PARSE_ERRORS as exc:
            raise FormatError(file, entry, describe(exc)) from None
        if subset is None or image.meta.get("subset") == subset:
            record.images.append(image)
            drafts.append(shapes)
            tags.append(labels)
    names = spec.keypoint_names + sorted({k for ds in drafts for d in ds for k in d.keypoints}
                                         - set(spec.keypoint_names))
    edges = [(names.index(a), names.index(b)) for a, b in spec.edges]
    classes, tag_classes = spec.label_spaces({t for ts in tags for t in ts}, {d.label for ds in drafts for d in ds})
    tag_classes = _with_undeclared_tags(tag_classes, tags, str(file))
    if classes or any(drafts):
        finish_instances(record, drafts, str(file), classes, names, edges)
    if any(tags):
        finish_labels(record, tags, "tags", tag_classes, multi_label=True, file=str(file))
    return record


def detect(path: str | Path) -> bool:
    """An ``.xml`` (or a folder with ``annotations.xml``) starting like a CVAT 1.1 export."""
    p = Path(path) / "annotations.xml" if Path(path).is_dir() else Path(path)
    if p.suffix.lower() != ".xml" or not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(4096).decode("utf-8", "ignore")
    return "<annotations>" in head and "<version>1.1</version>" in head


def _xml_file(path: Path) -> Path:
    """The XML itself, or the folder's ``annotations.xml`` / single ``*.xml``."""
    if not path.is_dir():
        return path
    found = [path / "annotations.xml"] if (path / "annotations.xml").is_file() else sorted(path.glob("*.xml"))
    if len(found) != 1:
        raise FormatError(path, "", f"expected one annotations.xml in the folder, found {len(found)} XML files")
    return found[0]


class _Spec:
    """What ``<meta>`` declares: classes, tag classes, attribute types, skeletons."""

    def __init__(self, meta: ET.Element | None, file: str) -> None:
        labels = list(meta.iter("label")) if meta is not None else []
        top = [lb for lb in labels if not lb.findtext("parent")]
        self.top = {lb.findtext("name", ""): lb.findtext("type") or "any" for lb in top if lb.findtext("name")}
        self.types = {lb.findtext("name", ""): {a.findtext("name", ""): a.findtext("input_type", "text")
                                                for a in lb.iter("attribute")} for lb in labels}
        skeletons = [lb for lb in top if lb.findtext("type") == "skeleton"]
        self.slots: dict[tuple[str, str], str] = {}
        self.edges: list[tuple[str, str]] = []
        for sk in skeletons:
            name = sk.findtext("name", "")
            subs = [lb.findtext("name", "") for lb in labels if lb.findtext("parent") == name]
            self.slots.update({(name, s): s if len(skeletons) == 1 else f"{name}.{s}" for s in subs})
            self.edges += _svg_edges(sk.findtext("svg", ""), name, self.slots, file)
        self.keypoint_names = list(self.slots.values())

    def label_spaces(self, tagged: set[str], shaped: set[str]) -> tuple[list[str] | None, list[str] | None]:
        """(object classes, tag classes) in <meta> order. A label typed ``tag`` is only a tag;
        an untyped (``any``) one is an object class unless the file uses it only in tags."""
        if not self.top:
            return None, None
        tag_only = {n for n, t in self.top.items() if t == "tag" or (t == "any" and n in tagged and n not in shaped)}
        return ([n for n in self.top if n not in tag_only],
                [n for n, t in self.top.items() if t == "tag" or (t == "any" and n in tagged)])


def _with_undeclared_tags(declared: list[str] | None, tags: list[list[str]], file: str) -> list[str] | None:
    """The tag classes plus every tag label ``<meta>`` does not declare (in order of first use),
    with one warning naming them: CVAT writes such tags, so refusing them would refuse its exports."""
    if declared is None:
        return None  # no <meta> labels at all: the classes are the tags seen
    extra = list(dict.fromkeys(t for ts in tags for t in ts if t not in declared))
    if extra:
        warnings.warn(f"{file}: <tag> label(s) {extra} are not declared under <meta><labels>; read as classes of "
                      f"task 'tags' after the declared {declared}", UserWarning, stacklevel=3)
    return declared + extra


def _svg_edges(svg: str, skeleton: str, slots: dict[tuple[str, str], str], file: str) -> list[tuple[str, str]]:
    """Skeleton edges from CVAT's SVG: ``<line data-node-from=.. data-node-to=..>`` between
    ``<circle data-node-id=.. data-label-name=..>`` nodes."""
    elements = re.findall(r"<(line|circle)\b([^>]*)>", svg)
    tags = [(t, dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))) for t, attrs in elements]
    nodes = {a.get("data-node-id"): a.get("data-label-name", "") for t, a in tags if t == "circle"}
    edges = []
    for a in (a for t, a in tags if t == "line"):
        ends = [(skeleton, nodes.get(a.get(f"data-node-{side}"))) for side in ("from", "to")]
        if not all(end in slots for end in ends):
            raise FormatError(file, f"label {skeleton!r} svg", f"edge {[e[1] for e in ends]} joins unknown nodes")
        edges.append((slots[ends[0]], slots[ends[1]]))
    return edges


def _read_image(el: ET.Element, spec: _Spec, image_dir: str | None, root: Path, file: str,
                entry: str) -> tuple[ImageRecord, list[Draft], list[str]]:
    width, height = int(el.attrib["width"]), int(el.attrib["height"])
    if width <= 0 or height <= 0:
        raise FormatError(file, entry, f"image size {width}x{height} must be positive")
    subset = el.get("subset")
    image_id = el.get("id", "")
    name = _image_path(el.attrib["name"], subset, image_dir, root, file, entry)
    image = ImageRecord(name, width, height, id=int(image_id) if image_id.isdigit() else image_id,
                        meta={"subset": subset} if subset else {})
    groups: dict[str, list[tuple[ET.Element, Draft]]] = {}
    tags, unlabeled = [], 0
    for j, shape in enumerate(el):
        where = f"{entry} <{shape.tag}> #{j}"
        if shape.tag not in (*SHAPES, "tag"):
            raise FormatError(file, where, f"unsupported element <{shape.tag}>")
        if not shape.get("label"):
            unlabeled += 1
        elif shape.tag == "tag":
            tags.append(shape.attrib["label"])
        else:
            draft = _shape(shape, spec, width, height, file, where)
            groups.setdefault(shape.get("group_id") or f"#{j}", []).append((shape, draft))
    if unlabeled:
        image.meta["unlabeled_shapes"] = unlabeled
    return image, [merge_group([(KIND.get(s.tag, s.tag), d) for s, d in members], width, height)
                   for members in groups.values()], tags


def _image_path(name: str, subset: str | None, image_dir: str | None, root: Path, file: str, entry: str) -> str:
    """``image_dir/name`` if given, else the first existing of CVAT's export layouts."""
    name = safe_relpath(name, file, entry)
    if image_dir is not None:
        return safe_relpath(f"{image_dir}/{name}", file, entry)
    layouts = ([f"images/{subset}/{name}"] if subset else []) + [f"images/{name}", name]
    return safe_relpath(next((p for p in layouts if (root / p).is_file()), layouts[0]), file, entry)


def _points(text: str, file: str, where: str) -> list[tuple[float, float]]:
    """CVAT's ``"x1,y1;x2,y2;..."``."""
    try:
        pts = [(float(x), float(y)) for x, y in (p.split(",") for p in text.split(";"))]
    except ValueError:
        raise FormatError(file, where, f"points must be 'x,y;x,y;...', got {text!r:.60}") from None
    if not all(math.isfinite(c) for p in pts for c in p):
        raise FormatError(file, where, "coordinates must be finite")
    return pts


def _shape(el: ET.Element, spec: _Spec, width: int, height: int, file: str, where: str) -> Draft:
    """One shape element -> a draft of its own (groups are merged afterwards)."""
    label, kind = el.attrib["label"], el.tag
    attrs = _attributes(el, spec.types.get(label, {}), file, where)
    if kind == "box":
        x0, y0, x1, y1 = (_number(el, k, file, where) for k in ("xtl", "ytl", "xbr", "ybr"))
        angle = _number(el, "rotation", file, where, 0.0)
        if x1 < x0 or y1 < y0:
            raise FormatError(file, where, f"box corners ({x0}, {y0}) - ({x1}, {y1}) are not top-left/bottom-right")
        corners = rotate([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], ((x0 + x1) / 2, (y0 + y1) / 2), angle)
        if angle % 360 == 0:
            return Draft(label, (x0, y0, x1, y1), attributes=attrs)
        return Draft(label, bounds(corners), [flatten(corners)], attributes={**attrs, "rotation": angle})
    if kind == "ellipse":
        cx, cy, rx, ry = (_number(el, k, file, where) for k in ("cx", "cy", "rx", "ry"))
        pts = ellipse_polygon(cx, cy, rx, ry, _number(el, "rotation", file, where, 0.0))
        return Draft(label, bounds(pts), [flatten(pts)], attributes=attrs)
    if kind == "mask":
        rle, box = _mask(el, width, height, file, where)
        return Draft(label, box, rle, attributes=attrs)
    if kind == "skeleton":
        return _skeleton(el, spec, attrs, file, where)
    pts = _points(el.attrib["points"], file, where)
    if kind == "polygon":
        if len(pts) < 3:
            raise FormatError(file, where, f"polygon has {len(pts)} points, needs 3")
        return Draft(label, bounds(pts), [flatten(pts)], attributes=attrs)
    return Draft(label, bounds(pts), attributes={**attrs, kind: flatten(pts)})  # "points" / "polyline"


def _mask(el: ET.Element, width: int, height: int, file: str, where: str) -> tuple[Rle, Box]:
    """CVAT mask -> (full-image RLE, box); the canvas is checked before it is allocated."""
    left, top, w, h = (int(_number(el, k, file, where)) for k in ("left", "top", "width", "height"))
    check_canvas(w, h, file, where)
    check_canvas(width, height, file, where)
    counts = [int(c) for c in el.attrib["rle"].split(",")]
    region = mask_region(paste(decode_cvat_rle(counts, w, h, file, where), left, top, width, height))
    if region is None:
        raise FormatError(file, where, "mask is empty inside the image")
    return region


def _skeleton(el: ET.Element, spec: _Spec, attrs: dict[str, Any], file: str, where: str) -> Draft:
    """Skeleton -> keypoints in meta's node order; its box bounds the points in view."""
    label, kps = el.attrib["label"], {}
    for p in el.iter("points"):
        slot = spec.slots.get((label, p.get("label", "")))
        if slot is None:
            raise FormatError(file, where, f"skeleton {label!r} has no node {p.get('label')!r} in <meta>")
        (x, y), = _points(p.attrib["points"], file, where)
        kps[slot] = (0.0, 0.0, 0) if p.get("outside") == "1" else (x, y, 1 if p.get("occluded") == "1" else 2)
    seen = [(x, y) for x, y, v in kps.values() if v] or [(0.0, 0.0)]
    return Draft(label, bounds(seen), keypoints=kps, attributes=attrs)


def _number(el: ET.Element, key: str, file: str, where: str, default: float | None = None) -> float:
    """A finite float attribute (XML gives text; NaN/inf would poison boxes downstream)."""
    raw = el.get(key)
    if raw is None and default is not None:
        return default
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FormatError(file, where, f"attribute {key!r} must be a number, got {raw!r:.40}") from None
    if not math.isfinite(value):
        raise FormatError(file, where, f"attribute {key!r} must be finite")
    return value


def _attributes(el: ET.Element, types: dict[str, str], file: str, where: str) -> dict[str, Any]:
    """``<attribute name=..>value</attribute>`` typed by the label spec, plus ``occluded``."""
    out: dict[str, Any] = {"occluded": el.get("occluded") == "1"} if "occluded" in el.attrib else {}
    for a in el.findall("attribute"):
        name, text, kind = a.attrib["name"], a.text or "", types.get(a.get("name", ""), "text")
        if kind == "checkbox":
            out[name] = text.strip().lower() == "true"
        elif kind == "number":
            try:
                out[name] = float(text)
            except ValueError:
                raise FormatError(file, where, f"attribute {name!r} must be a number, got {text!r:.40}") from None
        else:
            out[name] = text
    return out
