"""COCO object detection / instance segmentation / keypoints JSON: read, write, detect.

Everything goes to one instance task, ``"objects"`` (kind ``"instances"``):

* classes are the category names ordered by category id, so COCO's 80 non-contiguous ids
  (1..90) become the usual contiguous 0..79; the original ids and supercategories stay on
  the :class:`CocoTaskInfo` (a :class:`TaskInfo`) so that :func:`write` restores them;
* boxes are converted from XYWH to XYXY; a missing ``bbox`` is derived from the mask or
  the labelled keypoints;
* ``segmentation`` is kept as given: polygons (several parts per object), uncompressed
  RLE (``counts`` list) or compressed RLE (``counts`` string); ``[]`` means "no mask";
* ``iscrowd`` may be 0/1, a JSON boolean or the strings "true"/"false";
* keypoints stay the flat ``[x1, y1, v1, ...]`` list of the file (a visibility written
  as ``2.0`` becomes ``2``); a skeleton is 0-based in the record. COCO writes it 1-based
  and some tools (Datumaro) 0-based. Rule: any index 0 -> 0-based, otherwise 1-based
  (COCO's convention); ``skeleton_base=0|1`` forces it. ``flip_idx`` is derived from
  ``left_*``/``right_*`` keypoint names when there are any;
* non-standard annotation fields and the ``attributes`` dict (Datumaro, CVAT) go to
  ``Annotation.attributes``; non-standard image fields go to ``ImageRecord.meta``.

Images listed without annotations are labelled negatives (empty list); a file with no
``annotations`` key at all (COCO ``image_info`` files) leaves every image unlabelled.
Also read: panoptic files (see :mod:`.coco_panoptic`), Segment Anything (SA-1B) per-image
files (one class ``"object"``), and results files (a list of detections, ``score`` in the
attributes) given ``images_from=<ground-truth json>``.

Image paths are relative to an image folder found next to the JSON (``images_dir``
overrides it): the JSON's folder, its parent, ``../images/<subset>``, ``../<subset>``...
whichever holds the first images.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.json").write_text(json.dumps({
    ...     "images": [{"id": 7, "file_name": "x.jpg", "width": 8, "height": 6}],
    ...     "categories": [{"id": 3, "name": "cat"}],
    ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4]}]}))
    >>> rec = read(d / "a.json")
    >>> rec.images[0].targets["objects"][0].box
    (1, 2, 4, 6)
    >>> write(rec, d / "b.json"); json.loads((d / "b.json").read_text())["categories"][0]["id"]
    3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats import coco_panoptic
from mtvision.data.formats._annotations import CROWD, box_from_points
from mtvision.data.formats._files import gc_paused, load_json, safe_relpath
from mtvision.data.formats.coco_categories import CocoTaskInfo, parse_categories
from mtvision.data.formats.coco_write import write
from mtvision.data.formats.registry import register_format
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord, Keypoints, keypoint_triplets
from mtvision.structures import check_rle, rle_box

__all__ = ["CocoTaskInfo", "TASK", "detect", "read", "write"]

TASK = "objects"
_ANN_KEYS = frozenset({"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd",
                       "keypoints", "num_keypoints", "attributes"})
_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_VISIBILITY = frozenset({0, 1, 2})
_INF = float("inf")


def detect(path: str | Path) -> bool:
    """Whether ``path`` looks like a COCO JSON: an object with an ``images``/``image`` key near the top."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(1 << 16).decode("utf-8", "ignore").lstrip("\ufeff \t\r\n")
    return head.startswith("{") and ('"images"' in head or ('"image"' in head and '"annotations"' in head))


@register_format("coco")
def read(path: str | Path, *, images_dir: str | Path | None = None, skeleton_base: int | None = None,
         images_from: str | Path | None = None, panoptic_dir: str | Path | None = None) -> DatasetRecord:
    """Read a COCO JSON file into a :class:`DatasetRecord` with the ``"objects"`` task.

    ``images_dir``: folder the image file names are relative to (default: found next to the
    file); ``skeleton_base``: force a 0- or 1-based skeleton; ``images_from``: ground truth
    for a results file; ``panoptic_dir``: folder of panoptic PNGs (default: the JSON path
    without ``.json``, as in COCO's ``panoptic_val2017.json`` + ``panoptic_val2017/``).
    """
    path = Path(path)
    with gc_paused():  # the raw JSON is freed inside, so no collection ever walks it
        images, task = _parse(path, skeleton_base, images_from, panoptic_dir)
    return DatasetRecord(root=_image_root(path, images, images_dir), images=images, tasks={TASK: task})


def _parse(path: Path, skeleton_base: int | None, images_from: str | Path | None,
           panoptic_dir: str | Path | None) -> tuple[list[ImageRecord], CocoTaskInfo]:
    data = _normalise_layout(load_json(path), path, images_from)
    anns = data.get("annotations")
    if anns is not None and not isinstance(anns, list):
        raise FormatError(path, "annotations", "must be a list")
    task = parse_categories(data.get("categories", []), anns or [], path, skeleton_base)
    images = _images(data["images"], path, labelled=anns is not None)
    if anns and coco_panoptic.is_panoptic(anns):
        coco_panoptic.add_segments(anns, images, task, path, panoptic_dir or path.with_suffix(""))
    elif anns:
        _add_annotations(anns, images, task, path)
    return images, task


def _normalise_layout(data: Any, path: Path, images_from: str | Path | None) -> dict:
    """Turn the results-list and SA-1B variants into the plain COCO dict layout."""
    if isinstance(data, list):
        if images_from is None:
            raise FormatError(path, "", "a COCO results file (a list of detections) needs its ground truth: "
                                        "read(path, images_from='instances.json')")
        truth = load_json(images_from)
        if not isinstance(truth, dict):
            raise FormatError(images_from, "", "expected a COCO object with 'images' and 'categories'")
        return {"images": truth.get("images"), "categories": truth.get("categories", []), "annotations": data}
    if not isinstance(data, dict):
        raise FormatError(path, "", f"expected a JSON object, got {type(data).__name__}")
    if "images" not in data and isinstance(data.get("image"), dict) and isinstance(data.get("annotations"), list):
        image = {"id": data["image"].get("image_id", data["image"].get("id")), **data["image"]}
        anns = [{"image_id": image["id"], "category_id": 1, **a} if isinstance(a, dict) else a
                for a in data["annotations"]]
        return {"images": [image], "categories": [{"id": 1, "name": "object"}], "annotations": anns}
    if "images" not in data:
        raise FormatError(path, "", "missing field 'images'")
    return data


def _images(entries: Any, path: Path, labelled: bool) -> list[ImageRecord]:
    if not isinstance(entries, list):
        raise FormatError(path, "images", "must be a list")
    images, seen = [], set()
    for i, im in enumerate(entries):
        try:
            record = _image(im, path, i)
        except FormatError:
            raise
        except PARSE_ERRORS as exc:
            raise FormatError(path, f"images[{i}]", describe(exc)) from exc
        if record.id in seen:
            raise FormatError(path, f"images[{i}]", f"duplicate image id {record.id!r}")
        seen.add(record.id)
        if labelled:
            record.targets[TASK] = []
        images.append(record)
    return images


def _image(im: dict, path: Path, i: int) -> ImageRecord:
    image_id, width, height = im["id"], im["width"], im["height"]
    if type(image_id) not in (int, str):
        raise ValueError(f"image id must be an integer or a string, got {image_id!r:.40}")
    for name, value in (("width", width), ("height", height)):
        if type(value) not in (int, float) or value != int(value) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r:.40}")
    file_name = safe_relpath(im["file_name"], path, f"images[{i}]")
    meta = {k: v for k, v in im.items() if k not in _IMAGE_KEYS}
    return ImageRecord(file_name=file_name, width=int(width), height=int(height), id=image_id, meta=meta)


def _add_annotations(anns: list, images: list[ImageRecord], task: CocoTaskInfo, path: Path) -> None:
    """The hot loop: one :class:`Annotation` per entry, validated without per-field calls.

    Annotations come in file order, rarely grouped by image, so each one lands on a random
    image: holding that image's target list next to it (rather than looking it up through
    ``image.targets``) saves cache misses that cost ~15% of the loop on large files.
    """
    by_id = {im.id: (im, im.targets[TASK]) for im in images}
    index = {cid: i for i, cid in enumerate(task.category_ids)}
    k = len(task.keypoint_names)
    for i, ann in enumerate(anns):
        try:
            target = by_id.get(ann["image_id"])
            if target is None:
                raise ValueError(f"unknown image_id {ann['image_id']!r:.40}")
            image, annotations = target
            annotations.append(_annotation(ann, image, index, k))
        except FormatError:
            raise
        except PARSE_ERRORS as exc:
            entry = f"annotations[{i}]" + (f" (id={ann.get('id')!r:.40})" if isinstance(ann, dict) else "")
            raise FormatError(path, entry, describe(exc)) from exc


def _annotation(ann: dict, image: ImageRecord, index: dict[Any, int], k: int) -> Annotation:
    category = index.get(ann["category_id"])
    if category is None:
        raise ValueError(f"unknown category_id {ann['category_id']!r:.40}")
    seg = ann.get("segmentation")
    seg = None if seg is None or seg == [] else _segmentation(seg, image)
    kps = ann.get("keypoints")
    kps = None if kps is None or kps == [] else _keypoints(kps, k)
    crowd = CROWD.get(ann.get("iscrowd", 0))
    if crowd is None:
        raise ValueError(f"iscrowd must be 0, 1 or a boolean, got {ann['iscrowd']!r:.40}")
    attributes = {} if ann.keys() <= _ANN_KEYS else {key: ann[key] for key in ann.keys() - _ANN_KEYS}
    nested = ann.get("attributes")
    if nested is not None:
        if type(nested) is not dict:
            raise ValueError(f"attributes must be an object, got {type(nested).__name__}")
        attributes.update(nested)
    bbox = ann.get("bbox")
    if bbox is None:
        return Annotation(category, _derived_box(seg, kps), seg, kps, crowd, attributes)
    x, y, w, h = bbox
    if not (-_INF < x < _INF and -_INF < y < _INF and 0 <= w < _INF and 0 <= h < _INF):
        raise ValueError(f"bbox {bbox!r:.60} must be finite [x, y, w, h] with w, h >= 0")
    return Annotation(category, (x, y, x + w, y + h), seg, kps, crowd, attributes)


def _segmentation(seg: Any, image: ImageRecord) -> Any:
    """Polygons as parsed, or a checked RLE (the only form that needs the image size)."""
    if type(seg) is dict:
        return check_rle(seg, image.height, image.width)
    if type(seg) is not list:
        raise ValueError(f"segmentation must be polygons or an RLE object, got {type(seg).__name__}")
    for poly in seg:
        if type(poly) is not list or len(poly) < 6 or len(poly) % 2:
            raise ValueError("each polygon must be a flat list of at least 3 (x, y) points")
        if not -_INF < sum(poly) < _INF:  # TypeError unless numbers; NaN/inf fail the comparison
            raise ValueError("polygon coordinates must be finite numbers")
    return seg


def _keypoints(kps: Any, k: int) -> Keypoints:
    """The parsed list itself, validated: it already has the record's layout, so no copy."""
    if type(kps) is not list or len(kps) != 3 * k:
        raise ValueError(f"keypoints must be a list of {3 * k} numbers (K={k} triplets x, y, v)")
    vs = kps[2::3]
    if not _VISIBILITY.issuperset(vs):
        raise ValueError("keypoint visibility must be 0, 1 or 2")
    if not -_INF < sum(kps) < _INF:  # TypeError unless numbers; NaN/inf fail the comparison
        raise ValueError("keypoint coordinates must be finite numbers")
    if type(sum(vs)) is not int:  # the sum is an int iff every v is; some exporters write 2.0
        kps[2::3] = [int(v) for v in vs]
    return kps


def _derived_box(seg: Any, kps: Keypoints | None) -> tuple[float, float, float, float]:
    """A box for annotations without ``bbox``: from the mask, else the labelled keypoints."""
    if isinstance(seg, dict):
        return rle_box(seg)
    if seg:
        return box_from_points([x for p in seg for x in p[0::2]], [y for p in seg for y in p[1::2]])
    labelled = [(x, y) for x, y, v in keypoint_triplets(kps or []) if v > 0]
    if not labelled:
        raise KeyError("bbox")
    return box_from_points(*zip(*labelled))


def _image_root(path: Path, images: list[ImageRecord], images_dir: str | Path | None) -> Path:
    """The folder image ``file_name``s are relative to: the first candidate holding them."""
    if images_dir is not None:
        return Path(images_dir)
    here, subset = path.parent, path.stem.rsplit("_", 1)[-1]
    candidates = [here, here.parent, here.parent / "images" / subset, here.parent / subset,
                  here / "images" / subset, here / subset, here.parent / "images", here / "images"]
    probe = [im.file_name for im in images[:3]]
    for folder in candidates:
        if probe and all((folder / name).is_file() for name in probe):
            return folder
    return here
