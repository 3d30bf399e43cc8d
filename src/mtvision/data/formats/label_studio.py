"""Label Studio JSON exports ("JSON" and "JSON-MIN") -> :class:`DatasetRecord`.

Conventions (Label Studio leaves these open, so they are decided here once):

* **Tasks.** Regions (rectangle, polygon, ellipse, brush) -> ``"objects"``; image-level
  ``choices`` -> one ``label`` task per Choices control, named by its ``from_name``; other
  image-level controls -> ``meta["ls_fields"]``; per-region ones -> ``attributes[from_name]``.
  Percent -> pixels via ``original_width/height``; results sharing an ``id`` are one region.
* **Annotators.** One annotation per task, never a mix: ``annotator="latest"`` (default,
  the most recently updated non-cancelled one), ``"first"``, ``"ground_truth"`` (falls
  back to latest) or a user id / e-mail. A task with none is kept, unlabelled.
* **Keypoints** (standalone points in LS) join the region named by ``parentID`` or a
  relation, else the single region whose box contains them; otherwise (or if that slot is
  taken) each becomes a point-only instance whose class is the keypoint's label.
* **Rotated rectangles** keep their corners as a polygon segmentation, the enclosing box
  as ``box`` and the angle in ``attributes["rotation"]``. Brush RLE -> a COCO RLE mask.
* **Images.** ``file_name``: the URL's file name under ``image_dir`` (the un-prefixed one
  if only that exists); ``meta["ls_image"]``: the full URL; ``meta["match_name"]``: the name
  without the upload prefix (``/data/upload/1/3f2a9b1c-a.jpg`` -> ``a.jpg``) for merging.
  Width/height 0 = unknown (no region to tell it and no image on disk).
* **JSON-MIN** has no types: a region's kind is read from its keys; image-level choices
  are recognised as ``{"choices": [...]}`` or, with ``label_config``, as plain strings.

Example:
    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "export.json"
    >>> box = {"id": "a", "type": "rectanglelabels", "original_width": 200, "original_height": 100,
    ...        "value": {"x": 10, "y": 20, "width": 50, "height": 50, "rectanglelabels": ["car"]}}
    >>> task = {"id": 1, "data": {"image": "/data/upload/1/3f2a9b1c-a.jpg"}, "annotations": [{"result": [box]}]}
    >>> _ = path.write_text(json.dumps([task]))
    >>> image = read(path).images[0]
    >>> image.targets["objects"][0].box, image.file_name, image.meta["match_name"]
    ((20.0, 20.0, 120.0, 70.0), '3f2a9b1c-a.jpg', 'a.jpg')
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats._files import image_size, load_json, safe_join
from mtvision.data.formats._shapes import (
    Draft,
    bounds,
    decode_ls_brush,
    ellipse_polygon,
    finish_instances,
    finish_labels,
    flatten,
    mask_region,
    rotate,
)
from mtvision.data.formats.registry import register_format
from mtvision.data.record import DatasetRecord, ImageRecord

KINDS = ("rectangle", "polygon", "keypoint", "brush", "ellipse")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GEOMETRY_KEYS = {"x", "points", "rle"}  # a value holding one of these is a region
MIN_RESERVED = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "history"}


@register_format("label_studio")
def read(path: str | Path, *, annotator: str | int = "latest", label_config: str | Path | None = None,
         image_key: str | None = None, image_dir: str = "", root: str | Path | None = None) -> DatasetRecord:
    """Read a Label Studio export (a list of tasks); ``root`` defaults to the file's folder."""
    file, entry = str(path), ""
    config = _parse_config(label_config) if label_config else {}
    record = DatasetRecord(root=Path(root) if root is not None else Path(path).parent)
    try:
        tasks = _normalise(load_json(path), file, set(config.get("choices", {})))
        drafts: list[list[Draft] | None] = []
        tags: dict[str, list[list[str] | None]] = defaultdict(lambda: [None] * len(tasks))
        for i, task in enumerate(tasks):
            entry = f"tasks[{i}] (id={task.get('id')!r:.40})" if isinstance(task, dict) else f"tasks[{i}]"
            image, regions, choices = _read_task(task, annotator, image_key or config.get("image"), image_dir,
                                                 record.root, file, entry)
            record.images.append(image)
            drafts.append(regions)
            for name, values in choices.items():
                tags[name][i] = values
    except FormatError:
        raise
    except PARSE_ERRORS as exc:
        raise FormatError(file, entry, describe(exc)) from None
    _finish(record, drafts, tags, config, file)
    return record


def detect(path: str | Path) -> bool:
    """A ``.json`` whose head looks like LS tasks (results with ``from_name``/``to_name``)."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    with open(p, "rb") as f:
        head = f.read(65536).decode("utf-8", "ignore")
    return head.lstrip().startswith("[") and ('"from_name"' in head or '"annotation_id"' in head
                                              or ('"annotations"' in head and '"data"' in head))


def _finish(record: DatasetRecord, drafts: list[list[Draft] | None], tags: dict[str, list[list[str] | None]],
            config: dict[str, Any], file: str) -> None:
    """Fix label spaces: config order when given, then sorted names seen."""
    declared, keypoints = config.get("regions", []), config.get("keypoints", [])
    labels = {d.label for ds in drafts if ds for d in ds}
    kp_seen = {k for ds in drafts if ds for d in ds for k in d.keypoints}
    if labels or declared or keypoints:
        classes = declared + sorted(labels - set(declared))
        finish_instances(record, drafts, file, classes, keypoints + sorted(kp_seen - set(keypoints)))
    for name, values in tags.items():
        if name in record.tasks:
            raise FormatError(file, name, f"a Choices control named {name!r} clashes with the task of that name")
        declared, multiple = config.get("choices", {}).get(name, (None, None))
        finish_labels(record, values, name, declared, multiple, file)


def _normalise(data: Any, file: str, choice_controls: set[str]) -> list[dict[str, Any]]:
    """Full export as is; JSON-MIN rows (one per annotation) regrouped into full-style tasks."""
    if isinstance(data, dict) and "data" in data:
        data = [data]
    if not isinstance(data, list):
        raise FormatError(file, "", f"expected a list of tasks, got {type(data).__name__}")
    if all(not isinstance(t, dict) or "annotations" in t or "data" in t for t in data):
        return data
    grouped: dict[Any, dict[str, Any]] = {}
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise FormatError(file, f"tasks[{i}]", "a JSON-MIN row must be an object")
        key = row.get("id", f"row{i}")
        task = grouped.setdefault(key, {"id": row.get("id"), "data": {}, "annotations": []})
        results = _min_results(row, choice_controls)
        task["data"].update({k: v for k, v in row.items() if k not in MIN_RESERVED and k not in results[1]})
        task["annotations"].append({"id": row.get("annotation_id"), "completed_by": row.get("annotator"),
                                    "created_at": row.get("created_at"), "updated_at": row.get("updated_at"),
                                    "result": results[0]})
    return list(grouped.values())


def _min_results(row: dict[str, Any], choice_controls: set[str]) -> tuple[list[dict[str, Any]], set[str]]:
    """JSON-MIN control fields -> full-export results, and which keys were controls."""
    results, used = [], set()
    for key, val in row.items():
        if isinstance(val, list) and val and all(isinstance(r, dict) and GEOMETRY_KEYS & r.keys() for r in val):
            results += [{**r, "id": f"{key}#{j}", "from_name": key, "type": _kind_of(r), "value": r}
                        for j, r in enumerate(val)]
        elif isinstance(val, dict) and "choices" in val or isinstance(val, str) and key in choice_controls:
            results.append({"from_name": key, "type": "choices",
                            "value": {"choices": [val]} if isinstance(val, str) else val})
        else:
            continue
        used.add(key)
    return results, used


def _kind_of(value: dict[str, Any]) -> str:
    """Region kind from a JSON-MIN region's keys (JSON-MIN drops the ``type`` field)."""
    keys = [("rle", "brush"), ("points", "polygon"), ("radiusX", "ellipse"), ("height", "rectangle")]
    return next((kind for key, kind in keys if key in value), "keypoint") + "labels"


def _read_task(task: dict[str, Any], how: str | int, image_key: str | None, image_dir: str, root: Path,
               file: str, entry: str) -> tuple[ImageRecord, list[Draft] | None, dict[str, list[str]]]:
    data = task["data"]
    url = _image_url(data, image_key, file, entry)
    name, match = _file_name(url, image_dir, root, file, entry)
    ann = _pick(task.get("annotations") or [], how)
    regions, choices, fields, size = (None, {}, {}, None) if ann is None else _parse_results(ann["result"], file, entry)
    if size is None and (root / name).is_file():
        size = image_size(root / name, file, entry)
    width, height = size or (0, 0)
    meta = {"ls_image": url, "match_name": match, "ls_annotation_id": ann.get("id") if ann else None}
    meta.update({"ls_fields": fields} if fields else {})
    return ImageRecord(name, width, height, id=task.get("id"), meta=meta), regions, choices


def _image_url(data: dict[str, Any], key: str | None, file: str, entry: str) -> str:
    """The task's image reference: ``key``, else ``data["image"]``, else the only image-like value."""
    if key is None:
        images = [k for k, v in data.items() if isinstance(v, str) and v.lower().split("?")[0].endswith(IMAGE_EXTS)]
        key = "image" if "image" in data else images[0] if len(images) == 1 else None
    if key is None or not isinstance(data.get(key), str):
        raise FormatError(file, entry, f"no image in task data (keys {sorted(data)}); pass image_key=")
    return data[key]


def _file_name(url: str, image_dir: str, root: Path, file: str, entry: str) -> tuple[str, str]:
    """(file name under ``image_dir``, name for merging without LS's 8-hex upload prefix)."""
    parsed = urlparse(url)
    local = parse_qs(parsed.query).get("d") if parsed.path.endswith("/data/local-files/") else None
    rel = unquote(local[0]) if local else PurePosixPath(unquote(parsed.path)).name
    match = PurePosixPath(rel).name
    match = re.sub(r"^[0-9a-f]{8}-", "", match) if "/data/upload/" in parsed.path else match
    name = str(safe_join(image_dir or ".", rel, file, entry).as_posix()).removeprefix("./")
    plain = str(PurePosixPath(name).with_name(match))
    return (plain if not (root / name).exists() and (root / plain).exists() else name), match


def _pick(annotations: list[dict[str, Any]], how: str | int) -> dict[str, Any] | None:
    """The one annotation to use; cancelled ones never count."""
    done = [a for a in annotations if not a.get("was_cancelled")]
    ranked = sorted(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id"))))
    if how == "first":
        ranked = sorted(done, key=lambda a: (str(a.get("created_at") or ""), str(a.get("id"))), reverse=True)
    elif how == "ground_truth":
        ranked = [a for a in ranked if a.get("ground_truth")] or ranked
    elif how != "latest":
        ranked = [a for a in ranked if how in _user_keys(a.get("completed_by"))]
    return ranked[-1] if ranked else None


def _user_keys(user: Any) -> set[Any]:
    """``completed_by`` is an id, or a dict with id and e-mail (full export)."""
    return {user.get("id"), user.get("email")} if isinstance(user, dict) else {user}


def _parse_results(results: list[dict[str, Any]], file: str, entry: str
                   ) -> tuple[list[Draft], dict[str, list[str]], dict[str, Any], tuple[int, int] | None]:
    """Results of one annotation -> region drafts, image-level choices and other fields, image size."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    links: dict[str, set[str]] = defaultdict(set)
    for j, r in enumerate(results):
        if r["type"] == "relation":
            links[str(r["from_id"])].add(str(r["to_id"]))
            links[str(r["to_id"])].add(str(r["from_id"]))
        else:
            groups[str(r.get("id", f"#{j}"))].append(r)
    regions: dict[str, Draft] = {}
    points: list[tuple[str, str, float, float]] = []
    choices: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    sizes = set()
    for rid, group in groups.items():
        geo = next((r for r in group if _geometry(r)), None)
        if geo is None:  # image-level: choices make tasks, other controls (text, rating...) go to meta
            for r in group:
                if r["type"] == "choices":
                    choices[str(r["from_name"])] = _strings(r["value"]["choices"], file, entry)
                else:
                    fields[str(r["from_name"])] = _payload(r)
            continue
        w, h = int(geo["original_width"]), int(geo["original_height"])
        if w <= 0 or h <= 0:
            raise FormatError(file, f"{entry} result {rid}", f"original size {w}x{h} must be positive")
        sizes.add((w, h))
        draft = _region(geo, _label(group, file, f"{entry} result {rid}"), w, h, file, f"{entry} result {rid}")
        if not all(math.isfinite(c) for c in draft.box):
            raise FormatError(file, f"{entry} result {rid}", "coordinates must be finite numbers")
        draft.attributes.update({str(r["from_name"]): _payload(r) for r in group
                                 if not str(r["type"]).endswith("labels") and not _geometry(r)})
        if _geometry(geo) == "keypoint":
            points.append((rid, draft.label, draft.box[0], draft.box[1]))
            links[rid] |= {str(geo["parentID"])} if geo.get("parentID") else set()
        else:
            regions[rid] = draft
    if len(sizes) > 1:
        raise FormatError(file, entry, f"results disagree on the image size: {sorted(sizes)}")
    return _attach(regions, points, links), choices, fields, sizes.pop() if sizes else None


def _geometry(result: dict[str, Any]) -> str | None:
    """Region kind of a result: from its type (``rectanglelabels`` -> ``rectangle``), or from
    the value's keys for a generic ``labels`` result; per-region choices/text give ``None``."""
    kind = str(result.get("type", "")).removesuffix("labels")
    value = result.get("value")
    if kind in KINDS:
        return kind
    if kind == "" and isinstance(value, dict) and GEOMETRY_KEYS & value.keys():
        return _kind_of(value).removesuffix("labels")
    return None


def _label(group: list[dict[str, Any]], file: str, entry: str) -> str:
    """The region's class: the first label of the group's ``...labels`` result (LS allows several)."""
    for r in group:
        labels = r["value"].get(r["type"]) if str(r["type"]).endswith("labels") else None
        labels = labels if labels is not None else r["value"].get("labels")
        if labels:
            return _strings(labels, file, entry)[0]
    raise FormatError(file, entry, "region has no label")


def _payload(result: dict[str, Any]) -> Any:
    """What a non-region control answered: ``value[type]`` (``text`` for TextArea)."""
    return result["value"].get(result["type"], result["value"].get("text"))


def _strings(values: Any, file: str, entry: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise FormatError(file, entry, f"expected a list of strings, got {values!r:.60}")
    return values


def _region(r: dict[str, Any], label: str, w: int, h: int, file: str, entry: str) -> Draft:
    """One geometry result in percent -> a pixel-space draft."""
    v, kind = r["value"], _geometry(r)
    if kind == "brush":
        region = mask_region(decode_ls_brush(v["rle"], w, h, file, entry))
        if region is None:
            raise FormatError(file, entry, "brush mask is empty")
        return Draft(label, region[1], region[0])
    if kind == "polygon":
        pts = [(float(x) * w / 100, float(y) * h / 100) for x, y in v["points"]]
        if len(pts) < 3:
            raise FormatError(file, entry, f"polygon has {len(pts)} points, needs 3")
        return Draft(label, bounds(pts), [flatten(pts)])
    x, y = float(v["x"]) * w / 100, float(v["y"]) * h / 100
    if kind == "keypoint":
        return Draft(label, (x, y, x, y))
    if kind == "ellipse":
        rx, ry = float(v["radiusX"]) * w / 100, float(v["radiusY"]) * h / 100
        pts = ellipse_polygon(x, y, rx, ry, float(v.get("rotation") or 0))
        return Draft(label, bounds(pts), [flatten(pts)])
    bw, bh, angle = float(v["width"]) * w / 100, float(v["height"]) * h / 100, float(v.get("rotation") or 0)
    corners = rotate([(x, y), (x + bw, y), (x + bw, y + bh), (x, y + bh)], (x, y), angle)
    if angle % 360 == 0:
        return Draft(label, bounds(corners))
    return Draft(label, bounds(corners), [flatten(corners)], attributes={"rotation": angle})


def _attach(regions: dict[str, Draft], points: list[tuple[str, str, float, float]],
            links: dict[str, set[str]]) -> list[Draft]:
    """Keypoints join a linked region, else the one region containing them, else stand alone."""
    loose = []
    for rid, label, x, y in points:
        linked = [regions[o] for o in links[rid] if o in regions]
        inside = [d for d in regions.values() if d.box[0] <= x <= d.box[2] and d.box[1] <= y <= d.box[3]]
        owners = linked or inside
        if len(owners) == 1 and label not in owners[0].keypoints:
            owners[0].keypoints[label] = (x, y, 2)
        else:
            loose.append(Draft(label, (x, y, x, y), keypoints={label: (x, y, 2)}, attributes={"shape": "point"}))
    return list(regions.values()) + loose


def _parse_config(path: str | Path) -> dict[str, Any]:
    """Label config XML -> label orders, Choices controls (values, multiple?) and the image key."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise FormatError(path, "", f"cannot parse label config: {exc}") from None
    out: dict[str, Any] = {"regions": [], "keypoints": [], "choices": {}}
    for tag in root.iter():
        kind, values = tag.tag.lower(), [c.get("value", "") for c in tag if c.tag in ("Label", "Choice")]
        if kind == "image" and "image" not in out and tag.get("value", "").startswith("$"):
            out["image"] = tag.get("value", "")[1:]
        elif kind == "keypointlabels":
            out["keypoints"] += [v for v in values if v not in out["keypoints"]]
        elif kind.endswith("labels"):
            out["regions"] += [v for v in values if v not in out["regions"]]
        elif kind == "choices" and tag.get("name"):
            out["choices"][tag.get("name")] = (values, tag.get("choice") == "multiple")
    return out
