"""YOLO datasets (Ultralytics detect / segment / pose, and Darknet): read, write, detect.

One instance task, ``"objects"``. Each label line is ``class`` followed by normalised
numbers, converted to pixels with the image size read from the image header (PIL reads
no pixels for that):

* 4 numbers: a box ``cx cy w h`` -> XYXY;
* an even number >= 6: a polygon (segment, and oriented boxes ``x1 y1 .. x4 y4``) -> one
  polygon + its enclosing box;
* with ``kpt_shape: [K, D]`` in data.yaml, every line is a pose line: box + K keypoints;
  for D == 3 the visibility is read (0, 1, 2), for D == 2 a point at (0, 0) is "not
  labelled" (v = 0) and any other is visible (v = 2). Keypoint names are "0".."K-1"
  (YOLO has none), ``flip_idx`` comes from data.yaml.

A label file that exists but is empty marks a labelled negative (``[]``); an image with no
label file at all is *unlabelled* (the task is absent), not a negative.

Layouts: a ``data.yaml`` (``names`` as list or ``{index: name}``; ``path`` is resolved
against the YAML's folder, ``root=`` overrides it; ``train``/``val``/``test`` are image
folders, list files or lists of those, stored as ``meta["subset"]``); a Darknet
``obj.data`` (``names``/``train``/``valid`` files, CVAT's ``data/`` prefix understood); or a
folder with ``classes.txt``/``obj.names`` and images whose labels sit in a sibling
``labels/`` folder or next to them. Labels of ``.../images/.../x.jpg`` are looked up in
``.../labels/.../x.txt`` (Ultralytics' rule), else in ``x.txt`` beside the image.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "labels"): (d / sub).mkdir()
    >>> Image.new("RGB", (100, 50)).save(d / "images" / "a.png")
    >>> _ = (d / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\\n")
    >>> _ = (d / "classes.txt").write_text("cat\\n")
    >>> read(d).images[0].targets["objects"][0].box
    (40.0, 15.0, 60.0, 35.0)
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtvision.data.errors import PARSE_ERRORS, FormatError, describe
from mtvision.data.formats._annotations import box_from_points
from mtvision.data.formats._files import IMAGE_SUFFIXES, image_size, read_text, safe_relpath
from mtvision.data.formats.registry import register_format
from mtvision.data.formats.yolo_write import write
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord, Keypoints
from mtvision.structures import TaskInfo

__all__ = ["TASK", "detect", "read", "write"]

TASK = "objects"
_NAME_FILES = ("classes.txt", "obj.names", "classes.names")
_SUBSETS = {"train": "train", "val": "val", "valid": "val", "test": "test"}


@dataclass
class _Layout:
    """Where a YOLO dataset's pieces are, whatever layout it came in."""

    source: Path  # the file that described the layout (named in errors)
    root: Path
    names: list[str]
    images: list[tuple[str, str | None]] = field(default_factory=list)  # (path under root, subset)
    kpt_shape: tuple[int, int] | None = None
    flip_idx: list[int] = field(default_factory=list)


def detect(path: str | Path) -> bool:
    """Whether ``path`` is a data.yaml / obj.data, or a folder holding one or a class-names file."""
    path = Path(path)
    if path.is_dir():
        return any((path / n).is_file() for n in ("data.yaml", "obj.data", *_NAME_FILES))
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return "names" in path.read_text(encoding="utf-8", errors="ignore")
    return path.name.endswith(".data") and path.is_file()


@register_format("yolo")
def read(path: str | Path, *, root: str | Path | None = None) -> DatasetRecord:
    """Read a YOLO dataset (data.yaml, obj.data, or a folder) into a :class:`DatasetRecord`."""
    layout = _layout(Path(path), root)
    k = layout.kpt_shape[0] if layout.kpt_shape else 0
    task = TaskInfo(kind="instances", classes=layout.names, keypoint_names=[str(i) for i in range(k)],
                    flip_idx=layout.flip_idx)
    images = [_image(layout, rel, subset) for rel, subset in layout.images]
    return DatasetRecord(root=layout.root, images=images, tasks={TASK: task})


def _layout(path: Path, root: str | Path | None) -> _Layout:
    if path.is_dir():
        config = next((path / n for n in ("data.yaml", "dataset.yaml", "obj.data") if (path / n).is_file()), None)
        if config is None:
            return _folder_layout(path)
        path = config
    if path.suffix in (".yaml", ".yml"):
        return _yaml_layout(path, root)
    if path.suffix == ".data":
        return _darknet_layout(path)
    raise FormatError(path, "", "not a YOLO dataset: expected a data.yaml, an obj.data or a dataset folder")


def _yaml_layout(path: Path, root: str | Path | None) -> _Layout:
    try:
        cfg = yaml.safe_load(read_text(path))
    except (yaml.YAMLError, RecursionError) as exc:
        raise FormatError(path, "", f"invalid YAML: {exc}") from exc
    if not isinstance(cfg, dict):
        raise FormatError(path, "", "expected a mapping with 'names' and 'train'/'val'")
    given = cfg.get("path") or "."
    if not isinstance(given, str) or "\0" in given:
        raise FormatError(path, "path", f"must be a folder path, got {given!r:.60}")
    base = Path(root) if root is not None else path.parent / given
    if not base.is_dir():
        raise FormatError(path, "path", f"dataset root {base} is not a folder (pass root=... to read())")
    layout = _Layout(path, base, _names(cfg.get("names"), cfg.get("nc"), path))
    layout.kpt_shape = _kpt_shape(cfg.get("kpt_shape"), path)
    layout.flip_idx = _flip_idx(cfg.get("flip_idx"), layout.kpt_shape, path)
    for key, subset in _SUBSETS.items():
        sources = cfg.get(key) or []
        for source in sources if isinstance(sources, list) else [sources]:
            layout.images += [(rel, subset) for rel in _subset_images(base, source, path, key)]
    if not any(cfg.get(key) for key in _SUBSETS):
        layout.images = [(rel, None) for rel in _scan(base, base)]
    return layout


def _darknet_layout(path: Path) -> _Layout:
    """Darknet's ``obj.data``: ``key = value`` lines naming the names file and image lists."""
    entries = {}
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise FormatError(path, f"line {lineno}", f"expected 'key = value', got {line!r:.60}")
            entries[key.strip()] = value.strip()
    root = path.parent
    names_file = root / _darknet_path(root, entries.get("names", "obj.names"), path, "names")
    layout = _Layout(path, root, _names_file(names_file))
    for key, subset in _SUBSETS.items():
        if entries.get(key):
            listed = root / _darknet_path(root, entries[key], path, key)
            layout.images += [(rel, subset) for rel in _list_file(root, listed, path, key)]
    if not layout.images:
        layout.images = [(rel, None) for rel in _scan(root, root)]
    return layout


def _folder_layout(root: Path) -> _Layout:
    names_file = next((root / n for n in _NAME_FILES if (root / n).is_file()), None)
    if names_file is None:
        raise FormatError(root, "", f"no data.yaml, obj.data or class names file ({', '.join(_NAME_FILES)})")
    return _Layout(names_file, root, _names_file(names_file), [(rel, None) for rel in _scan(root, root)])


def _names(names: Any, nc: Any, path: Path) -> list[str]:
    """``names`` as a list or a ``{0: a, 1: b}`` mapping with keys exactly 0..n-1."""
    if isinstance(names, dict):
        if set(names) != set(range(len(names))) or not all(type(k) is int for k in names):
            raise FormatError(path, "names", f"keys must be 0..{len(names) - 1}, got {list(names)!r:.80}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise FormatError(path, "names", "must be a non-empty list or {index: name} mapping of class names")
    if nc is not None and nc != len(names):
        raise FormatError(path, "nc", f"nc = {nc!r} but {len(names)} names are given")
    return [str(n) for n in names]


def _names_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FormatError(path, "", "class names file not found")
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not names:
        raise FormatError(path, "", "no class names")
    return names


def _kpt_shape(value: Any, path: Path) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(type(v) is int for v in value)
            or value[0] < 1 or value[1] not in (2, 3)):
        raise FormatError(path, "kpt_shape", f"must be [K, 2] or [K, 3] with K >= 1, got {value!r:.40}")
    return (value[0], value[1])


def _flip_idx(value: Any, kpt_shape: tuple[int, int] | None, path: Path) -> list[int]:
    if value is None:
        return []
    k = kpt_shape[0] if kpt_shape else -1
    if not isinstance(value, list) or not all(type(v) is int for v in value) or sorted(value) != list(range(k)):
        raise FormatError(path, "flip_idx", f"must be a permutation of 0..K-1 for kpt_shape {kpt_shape}")
    return value


def _subset_images(root: Path, source: Any, path: Path, entry: str) -> list[str]:
    """Images of one ``train``/``val``/``test`` entry: a folder (searched recursively) or a list file."""
    target = root / safe_relpath(source, path, entry)
    if target.is_dir():
        return _scan(root, target)
    if target.is_file():
        return _list_file(root, target, path, entry)
    raise FormatError(path, entry, f"{source!r} is neither an image folder nor a list file under {root}")


def _scan(root: Path, folder: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _list_file(root: Path, listed: Path, path: Path, entry: str) -> list[str]:
    """Image paths, one per line; ``./x`` is relative to the list file, others to the root."""
    if not listed.is_file():
        raise FormatError(path, entry, f"image list {listed} not found")
    here = listed.parent.relative_to(root).as_posix() if listed.parent != root else ""
    lines = [line.strip() for line in read_text(listed).splitlines() if line.strip()]
    return [_darknet_path(root, posixpath.join(here, line[2:]) if line.startswith("./") else line, listed, f"line {i}")
            for i, line in enumerate(lines, 1)]


def _darknet_path(root: Path, rel: str, file: Path, entry: str) -> str:
    """A path under ``root``; CVAT writes Darknet paths as ``data/<path>`` (the darknet cwd view)."""
    rel = safe_relpath(rel, file, entry)
    if rel.startswith("data/") and not (root / rel).exists() and (root / rel[5:]).exists():
        return rel[5:]
    return rel


def _label_path(root: Path, rel: str) -> Path:
    parts = rel.split("/")
    if "images" in parts[:-1]:
        i = len(parts) - 2 - parts[:-1][::-1].index("images")
        parts[i] = "labels"
    return (root / "/".join(parts)).with_suffix(".txt")


def _image(layout: _Layout, rel: str, subset: str | None) -> ImageRecord:
    width, height = image_size(layout.root / rel, layout.source, rel)
    label = _label_path(layout.root, rel)
    targets: dict[str, Any] = {}
    if label.is_file():
        targets[TASK] = _labels(label, width, height, len(layout.names), layout.kpt_shape)
    return ImageRecord(file_name=rel, width=width, height=height, id=rel, targets=targets,
                       meta={"subset": subset} if subset else {})


def _labels(path: Path, width: int, height: int, n: int, kpt: tuple[int, int] | None) -> list[Annotation]:
    anns = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                anns.append(_line(line.split(), width, height, n, kpt))
            except PARSE_ERRORS as exc:
                raise FormatError(path, f"line {lineno}", describe(exc)) from exc
    return anns


def _line(values: list[str], width: int, height: int, n: int, kpt: tuple[int, int] | None) -> Annotation:
    nums = [float(v) for v in values]
    if not all(map(math.isfinite, nums)):
        raise ValueError("non-finite number")
    cls, rest = nums[0], nums[1:]
    if cls != int(cls) or not 0 <= cls < n:
        raise ValueError(f"class {values[0]!r} is not an index in 0..{n - 1}")
    if kpt is not None:
        if len(rest) != 4 + kpt[0] * kpt[1]:
            raise ValueError(f"pose line needs {5 + kpt[0] * kpt[1]} values for kpt_shape {list(kpt)}, got {len(nums)}")
        keypoints = _keypoints(rest[4:], kpt[1], width, height)
        return Annotation(int(cls), _box(rest[:4], width, height), keypoints=keypoints)
    if len(rest) == 4:
        return Annotation(int(cls), _box(rest, width, height))
    if len(rest) >= 6 and len(rest) % 2 == 0:
        poly = [v * (width if i % 2 == 0 else height) for i, v in enumerate(rest)]
        return Annotation(int(cls), box_from_points(poly[0::2], poly[1::2]), [poly])
    raise ValueError(f"{len(nums)} values: expected 5 (class + box) or class + at least 3 (x, y) points")


def _box(values: list[float], width: int, height: int) -> tuple[float, float, float, float]:
    cx, cy, w, h = values
    if w < 0 or h < 0:
        raise ValueError("box width and height must be >= 0")
    return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)


def _keypoints(values: list[float], dims: int, width: int, height: int) -> Keypoints:
    points: Keypoints = []
    for i in range(0, len(values), dims):
        x, y = values[i], values[i + 1]
        v = values[i + 2] if dims == 3 else (0 if x == y == 0 else 2)
        if v not in (0, 1, 2):
            raise ValueError(f"keypoint visibility must be 0, 1 or 2, got {v}")
        points += (x * width, y * height, int(v))
    return points
