"""Pascal VOC annotation XML, both ways: ``<annotation>`` <-> objects with boxes and attributes.

Coordinates: VOC's devkit writes 1-based *inclusive pixel indices* (a box covering a
whole W-pixel-wide image is xmin=1, xmax=W). The record uses continuous 0-based XYXY, so
a 1-based box becomes ``(xmin - 1, ymin - 1, xmax, ymax)`` (detectron2's convention).
Tools such as labelme and CVAT write continuous 0-based floats instead; a dataset is
taken as 0-based when any coordinate is fractional or any ``xmin``/``ymin`` is 0 (neither
can happen in 1-based files), else as 1-based. :func:`to_xml` mirrors the rule: integral
boxes are written 1-based, anything else 0-based, so a written file reads back the same.

Object fields: ``difficult``/``truncated``/``occluded`` become boolean attributes,
``pose`` and any other simple child a string/number attribute, ``<actions>`` a
``{"actions": {name: bool}}`` attribute, ``<attributes><attribute>`` (CVAT/Datumaro)
plain attributes, and ``<part>`` (person head/hand/foot layout parts) a ``"parts"``
attribute: a list of ``{"name": str, "box": XYXY}`` in the same coordinates.

Example:
    >>> xml = b"<annotation><size><width>9</width><height>5</height></size><object><name>cat</name>"
    >>> xml += b"<difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>4</xmax><ymax>5</ymax></bndbox>"
    >>> xml += b"</object></annotation>"
    >>> raw = parse(xml, "a.xml")
    >>> raw.objects[0].name, raw.objects[0].box, raw.objects[0].attributes
    ('cat', (1.0, 2.0, 4.0, 5.0), {'difficult': True})
    >>> to_record_box(raw.objects[0].box, one_based=True)
    (0.0, 1.0, 4.0, 5.0)
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtvision.data.errors import FormatError

__all__ = ["RawImage", "RawObject", "parse", "is_one_based", "to_record_box", "to_xml"]

Box = tuple[float, float, float, float]
_FLAGS = ("difficult", "truncated", "occluded")
_BOOLS = {"0": False, "1": True, "false": False, "true": True}
_STRUCTURED = frozenset({"name", "bndbox", "part", "actions", "attributes"})


@dataclass
class RawObject:
    """One ``<object>`` with its box exactly as written in the file (convention not applied)."""

    name: str
    box: Box
    attributes: dict[str, Any] = field(default_factory=dict)
    parts: list[tuple[str, Box]] = field(default_factory=list)


@dataclass
class RawImage:
    filename: str | None
    width: int  # 0 when the file has no usable <size>
    height: int
    objects: list[RawObject] = field(default_factory=list)


def parse(source: bytes | str | Path, file: str | Path) -> RawImage:
    """Parse one annotation XML (bytes or a path); malformed -> FormatError naming ``file``."""
    try:
        root = ET.fromstring(source) if isinstance(source, bytes) else ET.parse(source).getroot()
    except (ET.ParseError, OSError, ValueError) as exc:
        raise FormatError(file, "", f"invalid XML: {exc}") from exc
    if root.tag != "annotation":
        raise FormatError(file, "", f"root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    width, height = (_size(size, key, file) for key in ("width", "height")) if size is not None else (0, 0)
    objects = [_object(el, file, f"object[{i}]") for i, el in enumerate(root.findall("object"))]
    return RawImage(_text(root, "filename"), width, height, objects)


def is_one_based(images: Sequence[RawImage]) -> bool:
    """The dataset-wide convention rule (see the module docstring)."""
    boxes = [b for im in images for o in im.objects for b in (o.box, *(p for _, p in o.parts))]
    fractional = any(v != int(v) for b in boxes for v in b)
    return not fractional and not any(b[0] == 0 or b[1] == 0 for b in boxes)


def to_record_box(box: Box, one_based: bool) -> Box:
    x0, y0, x1, y1 = box
    return (x0 - 1, y0 - 1, x1, y1) if one_based else (x0, y0, x1, y1)


def _text(el: ET.Element, tag: str) -> str | None:
    child = el.find(tag)
    return child.text.strip() if child is not None and child.text and child.text.strip() else None


def _size(size: ET.Element, key: str, file: str | Path) -> int:
    text = _text(size, key) or "0"
    try:
        value = float(text)
    except ValueError:
        raise FormatError(file, f"size/{key}", f"not a number: {text!r:.40}") from None
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise FormatError(file, f"size/{key}", f"must be a non-negative integer, got {text!r:.40}")
    return int(value)


def _box(el: ET.Element | None, file: str | Path, entry: str) -> Box:
    if el is None:
        raise FormatError(file, entry, "missing <bndbox>")
    values = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(el, key)
        try:
            values.append(float(text))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise FormatError(file, f"{entry}/bndbox/{key}", f"missing or not a number: {text!r:.40}") from None
    if not all(map(math.isfinite, values)) or values[2] < values[0] or values[3] < values[1]:
        raise FormatError(file, f"{entry}/bndbox", f"invalid box {values}: need finite xmin <= xmax, ymin <= ymax")
    return (values[0], values[1], values[2], values[3])


def _object(el: ET.Element, file: str | Path, entry: str) -> RawObject:
    name = _text(el, "name")
    if name is None:
        raise FormatError(file, entry, "missing <name>")
    obj = RawObject(name, _box(el.find("bndbox"), file, entry))
    for child in el:
        text = child.text.strip() if child.text and child.text.strip() else None
        if child.tag in _FLAGS and text is not None:
            if text.lower() not in _BOOLS:
                raise FormatError(file, f"{entry}/{child.tag}", f"expected 0 or 1, got {text!r:.40}")
            obj.attributes[child.tag] = _BOOLS[text.lower()]
        elif child.tag not in _STRUCTURED and text is not None and len(child) == 0:
            obj.attributes[child.tag] = _value(text)
    actions = el.find("actions")
    if actions is not None:
        obj.attributes["actions"] = {a.tag: _value(a.text or "0") == 1 for a in actions}
    for i, attr in enumerate(el.findall("attributes/attribute")):
        key = _text(attr, "name")
        if key is None:
            raise FormatError(file, f"{entry}/attributes[{i}]", "missing <name>")
        obj.attributes[key] = _value(_text(attr, "value") or "")
    obj.parts = [(_text(p, "name") or "", _box(p.find("bndbox"), file, f"{entry}/part[{i}]"))
                 for i, p in enumerate(el.findall("part"))]
    return obj


def _value(text: str) -> Any:
    """Attribute text as int, float or str, so ``1`` reads back as the number it was."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text) if math.isfinite(float(text)) else text
    except ValueError:
        return text


def to_xml(filename: str, width: int, height: int, objects: Sequence[tuple[str, Box, dict[str, Any]]],
           one_based: bool, segmented: bool) -> bytes:
    """An ``<annotation>`` document; boxes are record XYXY, written per ``one_based``."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = str(int(segmented))
    for name, box, attributes in objects:
        _object_xml(ET.SubElement(root, "object"), name, box, attributes, one_based)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _object_xml(el: ET.Element, name: str, box: Box, attributes: dict[str, Any], one_based: bool) -> None:
    ET.SubElement(el, "name").text = name
    _box_xml(ET.SubElement(el, "bndbox"), box, one_based)
    custom = ET.Element("attributes")
    for key, value in attributes.items():
        if key == "parts":
            for part in value:
                part_el = ET.SubElement(el, "part")
                ET.SubElement(part_el, "name").text = str(part["name"])
                _box_xml(ET.SubElement(part_el, "bndbox"), part["box"], one_based)
        elif key == "actions":
            actions = ET.SubElement(el, "actions")
            for action, on in value.items():
                ET.SubElement(actions, action).text = str(int(bool(on)))
        elif key in _FLAGS and isinstance(value, int):
            ET.SubElement(el, key).text = str(int(value))
        elif key == "pose":
            ET.SubElement(el, key).text = str(value)
        else:
            attribute = ET.SubElement(custom, "attribute")
            ET.SubElement(attribute, "name").text = str(key)
            ET.SubElement(attribute, "value").text = str(value)
    if len(custom):
        el.append(custom)


def _box_xml(el: ET.Element, box: Sequence[float], one_based: bool) -> None:
    x0, y0, x1, y1 = box
    values = (x0 + 1, y0 + 1, x1, y1) if one_based else (x0, y0, x1, y1)
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), values):
        ET.SubElement(el, key).text = str(int(value)) if value == int(value) else repr(float(value))
