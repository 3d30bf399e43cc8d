"""Write a record in another format or folder: what the target holds, and where its paths point.

Two things every writer leaves to its caller:

* **What the target cannot hold.** COCO and YOLO hold one instance task, VOC one instance
  and one semantic task and no keypoints; :func:`write_as` picks the tasks to write
  (``"objects"`` / ``"semseg"`` when present, else the first of their kind) and returns
  one warning per thing left out, so nothing is dropped silently.
* **Where the files are.** A JSON's image and map paths are relative to some folder; the
  readers refuse paths that leave the JSON's folder (a downloaded file must not make the
  loader read elsewhere on the disk). :func:`rebase` rewrites paths relative to a folder
  and fails, naming the files' common ancestor, when one lies outside it;
  :func:`materialise` links (or copies) the files into a new folder instead. So that what
  is written can be read back (and ``data check`` finds every image), :func:`write_as`
  keeps paths relative when the files already lie under the output's folder and links
  (or copies) them in otherwise; :func:`files_outside` says beforehand how many will be.

Example:
    >>> import tempfile
    >>> from mtvision.data.record import DenseRef, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> d = Path(tempfile.mkdtemp())
    >>> rec = DatasetRecord(d, [ImageRecord("img/a.png", 4, 4, targets={"depth": DenseRef("depth/a.png")})],
    ...                     {"depth": TaskInfo("depth")})
    >>> rebase(rec, d.parent).images[0].file_name == f"{d.name}/img/a.png"
    True
    >>> write_as(rec, "yolo", d / "yolo")
    Traceback (most recent call last):
    ...
    ValueError: yolo holds instances tasks; this dataset has none (tasks: depth (depth))
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from mtvision.data.formats import get_writer
from mtvision.data.record import DatasetRecord, DenseRef, ImageTarget, resolve
from mtvision.data.sources import COMBINED_NAME

Placement = Literal["link", "copy"]
# Task kinds each writer holds (one task of each); "combined" holds everything.
HOLDS: dict[str, tuple[str, ...]] = {"coco": ("instances",), "yolo": ("instances",),
                                     "voc": ("instances", "semantic")}
_PREFERRED = {"instances": "objects", "semantic": "semseg"}
_KWARG = {"instances": "task", "semantic": "semseg_task"}  # the writer argument naming the task
DEFAULT_JSON = {"combined": COMBINED_NAME, "coco": "annotations.json"}


def referenced_files(record: DatasetRecord) -> list[str]:
    """Absolute paths of every image and dense map, once each, in record order."""
    paths = (p for im in record.images for p in (im.file_name, *_dense_paths(im.targets.values())))
    return list(dict.fromkeys(os.path.abspath(resolve(record.root, p)) for p in paths))


def rebase(record: DatasetRecord, folder: str | Path) -> DatasetRecord:
    """The same files with paths relative to ``folder``; fails when one lies outside it."""
    folder, files = os.path.abspath(folder), referenced_files(record)
    outside = [f for f in files if not _is_under(f, folder)]
    if outside:
        raise ValueError(f"{len(outside)} image/map file(s) lie outside {folder} (first: {outside[0]}); the "
                         f"output must sit in a folder that contains them all, such as their common ancestor "
                         f"{_common_folder(files)}")
    return _with_paths(record, Path(folder), lambda p: _relative(p, folder))


def materialise(record: DatasetRecord, folder: str | Path, how: Placement = "link") -> DatasetRecord:
    """The record with every file linked (or copied) under ``folder``, keeping their layout.

    When every file is already under ``folder`` only the paths change. Otherwise each goes to
    ``folder/<path relative to the record root>`` (or to the files' common folder when
    some lie outside the root, as after a merge); a source file is never overwritten.
    """
    files = referenced_files(record)
    folder = os.path.abspath(folder)
    if all(_is_under(f, folder) for f in files):
        return rebase(record, folder)
    root = os.path.abspath(record.root)
    within_root = root != os.path.abspath(os.sep) and all(_is_under(f, root) for f in files)
    base = root if within_root else _common_folder(files)  # a merge's root is "/": its files' folder instead
    protected = set(files)
    for file in files:
        _place(file, os.path.join(folder, os.path.relpath(file, base)), how, protected)
    return _with_paths(record, Path(folder), lambda p: _relative(p, base))


def write_as(record: DatasetRecord, format: str, out: str | Path, images: Placement = "link") -> list[str]:
    """Write ``record`` with the writer of ``format``; returns warnings on what it could not hold.

    ``out`` is the JSON file for combined / COCO (a path without ``.json`` is taken as a
    folder and gets ``dataset.json`` / ``annotations.json``), the folder for YOLO / VOC.
    Every path written resolves from the output: files under the JSON's folder keep a
    relative path, the others are linked (or copied, ``images="copy"``) in, so the output
    reads back and checks clean wherever it is.
    """
    writer = get_writer(format)
    kwargs, warnings = _plan(record, format)
    out = output_path(format, out)
    if format == "combined":
        writer.write(materialise(record, out.parent, images), out)
    elif format == "coco":
        written = _only_task(record, kwargs["task"])
        writer.write(materialise(written, out.parent, images), out, **kwargs)
    elif format == "yolo":
        writer.write(record, out, images=images, **kwargs)
    else:  # voc
        writer.write(record, out, **kwargs)
        _link_voc_images(record, out, kwargs, images)
    return warnings


def output_path(format: str, out: str | Path) -> Path:
    """Where :func:`write_as` writes: the JSON file for combined / COCO, else the folder ``out``."""
    out = Path(out)
    return out / DEFAULT_JSON[format] if format in DEFAULT_JSON and out.suffix.lower() != ".json" else out


def _plan(record: DatasetRecord, format: str) -> tuple[dict[str, Any], list[str]]:
    """The writer's task arguments, and a warning for each task or field the target drops."""
    if format not in HOLDS:
        return {}, []
    chosen = {kind: _pick(record, kind) for kind in HOLDS[format]}
    if not any(chosen.values()):
        tasks = ", ".join(f"{n} ({i.kind})" for n, i in record.tasks.items()) or "none"
        raise ValueError(f"{format} holds {' and '.join(HOLDS[format])} tasks; this dataset has none (tasks: {tasks})")
    kwargs = {_KWARG[kind]: task for kind, task in chosen.items() if task}
    dropped = [f"{n} ({i.kind})" for n, i in record.tasks.items() if n not in chosen.values()]
    warnings = [f"{format} cannot hold task(s) {', '.join(dropped)}: not written"] if dropped else []
    if chosen["instances"]:
        warnings += _dropped_fields(record, format, chosen["instances"])
    return kwargs, warnings


def _pick(record: DatasetRecord, kind: str) -> str | None:
    names = [name for name, info in record.tasks.items() if info.kind == kind]
    return _PREFERRED[kind] if _PREFERRED[kind] in names else next(iter(names), None)


def _dropped_fields(record: DatasetRecord, format: str, task: str) -> list[str]:
    """Parts of the written instance task's objects that the format has no place for."""
    anns = [a for im in record.images for a in im.targets.get(task, [])]  # type: ignore[union-attr]
    pose = bool(record.tasks[task].keypoint_names)
    counts = {"keypoints": sum(a.keypoints is not None for a in anns) if format == "voc" else 0,
              "masks": sum(a.segmentation is not None for a in anns) if format == "yolo" and pose else 0,
              "crowd objects": sum(a.iscrowd for a in anns) if format == "yolo" else 0}
    return [f"{format} cannot hold the {what} of {n} object(s) of task {task!r}: not written"
            for what, n in counts.items() if n]


def files_outside(record: DatasetRecord, format: str, out: str | Path) -> int:
    """How many image / map files :func:`write_as` will link or copy under ``out`` (the CLI says so)."""
    if format not in DEFAULT_JSON:
        return 0
    written = _only_task(record, _plan(record, format)[0]["task"]) if format == "coco" else record
    folder = os.path.abspath(output_path(format, out).parent)
    return sum(not _is_under(f, folder) for f in referenced_files(written))


def _only_task(record: DatasetRecord, task: str) -> DatasetRecord:
    """The images labelled for ``task``, with that target only: what a COCO file holds (and links)."""
    images = [replace(im, targets={task: im.targets[task]}) for im in record.images if task in im.targets]
    return replace(record, images=images)


def _link_voc_images(record: DatasetRecord, out: Path, kwargs: dict[str, Any], how: Placement) -> None:
    """VOC looks for ``JPEGImages/<file name>``; the writer writes annotations only."""
    tasks, protected = set(kwargs.values()), set(referenced_files(record))
    for im in record.images:
        if tasks & set(im.targets):
            _place(os.path.abspath(record.image_path(im)), str(out / "JPEGImages" / Path(im.file_name).name), how,
                   protected)


def _place(source: str, dest: str, how: Placement, protected: set[str]) -> None:
    if os.path.abspath(dest) in protected:
        raise ValueError(f"writing {dest} would overwrite a source file; choose another output folder")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        if not (os.path.islink(dest) or filecmp.cmp(source, dest, shallow=False)):
            raise ValueError(f"{dest} exists and is not a copy of {source}; remove it or choose another output folder")
        os.unlink(dest)  # a link or copy from an earlier run: replaced
    if how == "copy":
        shutil.copy2(source, dest)
    else:
        os.symlink(os.path.realpath(source), dest)


def _with_paths(record: DatasetRecord, root: Path, new_path: Callable[[str], str]) -> DatasetRecord:
    """A copy with root ``root`` and each image / map path ``new_path(its absolute path)``."""
    def path(p: str) -> str:
        return new_path(os.path.abspath(resolve(record.root, p)))

    def target(t: ImageTarget) -> ImageTarget:
        return replace(t, path=path(t.path)) if isinstance(t, DenseRef) else t

    images = [replace(im, file_name=path(im.file_name), targets={k: target(v) for k, v in im.targets.items()})
              for im in record.images]
    return replace(record, root=root, images=images)


def _dense_paths(targets: Any) -> list[str]:
    return [t.path for t in targets if isinstance(t, DenseRef)]


def _is_under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _relative(path: str, folder: str) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def _common_folder(files: list[str]) -> str:
    return os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()
