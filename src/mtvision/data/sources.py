"""Load a dataset from one or several annotation exports, whatever their formats.

Users label different tasks in different tools: boxes in CVAT, image labels in a CSV,
depth from a sensor folder. A :class:`SourceSpec` says where one export is, which format
it is (detected when omitted), the reader options, and task renames (every reader names
its instance task ``"objects"`` and a CSV's task ``"label"``, so two exports would clash
or say nothing without them). :func:`load_sources` reads each and merges them by image
(:mod:`mtvision.data.merge`); this is what a config's list of data sources resolves to.

Example:
    >>> import json, tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "boxes.json").write_text(json.dumps({
    ...     "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
    ...     "categories": [{"id": 1, "name": "cat"}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]}))
    >>> _ = (d / "scene.csv").write_text("file,label\\na.png,indoor\\n")
    >>> result = load_sources([SourceSpec(d / "boxes.json", rename={"objects": "animals"}),
    ...                        SourceSpec(d / "scene.csv", rename={"label": "scene"})])
    >>> result.record.coverage(), result.conflicts
    ({'animals': 1, 'scene': 1}, [])
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Union

from mtvision.data.formats import combined, detect_format, get_format
from mtvision.data.merge import MergeResult, merge_records
from mtvision.data.record import DatasetRecord

COMBINED_NAME = "dataset.json"  # what `mtvision data synth` and `data check --fix` write in a folder


@dataclass
class SourceSpec:
    """One annotation export: where, which format (None = detect), reader options, task renames.

    ``rename`` maps the reader's task names to the names wanted in the merged dataset,
    e.g. ``{"objects": "vehicles"}``; tasks not named keep their name.
    """

    path: Union[str, Path]
    format: Union[str, None] = None
    options: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: SourceSpec | str | Path | Mapping[str, Any]) -> SourceSpec:
        """A spec from a path or from a mapping with the field names (as a YAML config gives it)."""
        if isinstance(value, SourceSpec):
            return value
        if isinstance(value, (str, Path)):
            return cls(value)
        if isinstance(value, Mapping):
            known = [f.name for f in fields(cls)]
            if unknown := sorted(set(value) - set(known)):
                raise ValueError(f"data source {dict(value)!r}: unknown key(s) {unknown}; valid: {known}")
            if "path" not in value:
                raise ValueError(f"data source {dict(value)!r}: missing 'path'")
            return cls(**value)
        raise ValueError(f"a data source is a path or a mapping with 'path', got {type(value).__name__}")


SourceLike = Union[SourceSpec, str, Path, Mapping[str, Any]]


def load_source(path: str | Path, format: str | None = None, **options: Any) -> DatasetRecord:
    """Read one export; ``format=None`` detects it (see :func:`~mtvision.data.formats.detect_format`).

    A folder holding a combined ``dataset.json`` (what ``mtvision data synth`` writes) is
    read as that file, not as its image and map sub-folders. Options go to the format's
    ``read``; an option it does not take fails with the ones it does. The record's root is
    made absolute, so that merged paths do not depend on the working directory.

    Example:
        >>> import tempfile
        >>> csv = Path(tempfile.mkdtemp()) / "labels.csv"
        >>> _ = csv.write_text("a.png,cat\\nb.png,dog\\n")
        >>> load_source(csv, task="species").coverage()
        {'species': 2}
    """
    path = Path(path)
    if format in (None, "combined") and path.is_dir() and combined.detect(path / COMBINED_NAME):
        path, format = path / COMBINED_NAME, "combined"
    module = get_format(format or detect_format(path))
    _check_options(module.read, options, module.__name__.rsplit(".", 1)[-1])
    record = module.read(path, **options)
    return replace(record, root=Path(os.path.abspath(record.root)))


def load_sources(specs: Sequence[SourceLike], by: Literal["name", "id"] = "name") -> MergeResult:
    """Read every source, rename its tasks, and merge them by image file name (or id).

    With one source nothing is merged (paths stay relative to its root) but the result
    type is the same, so callers need not care how many sources a config lists.
    Conflicts between sources are returned, never resolved by guessing.
    """
    if not specs:
        raise ValueError("no data sources given")
    records = []
    for spec in map(SourceSpec.parse, specs):
        record = load_source(spec.path, spec.format, **spec.options)
        records.append(rename_tasks(record, spec.rename, source=str(spec.path)))
    return MergeResult(records[0]) if len(records) == 1 else merge_records(records, by)


def rename_tasks(record: DatasetRecord, rename: Mapping[str, str], source: str = "") -> DatasetRecord:
    """A copy of ``record`` with tasks renamed; renaming a missing task or onto another fails."""
    if missing := sorted(set(rename) - set(record.tasks)):
        raise ValueError(f"{source}: cannot rename task(s) {missing}: the source has {sorted(record.tasks)}")
    names = {task: rename.get(task, task) for task in record.tasks}
    if len(set(names.values())) < len(names):
        raise ValueError(f"{source}: renaming {dict(rename)} gives two tasks the same name")
    images = [replace(im, targets={names[t]: v for t, v in im.targets.items()}) for im in record.images]
    return replace(record, images=images, tasks={names[t]: info for t, info in record.tasks.items()})


def _check_options(read: Any, options: Mapping[str, Any], format: str) -> None:
    """Fail on an option the reader does not take, naming those it does (a TypeError says less)."""
    params = inspect.signature(read).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
             or (p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name != "path")]
    if unknown := sorted(set(options) - set(valid)):
        raise ValueError(f"format {format!r} has no option(s) {unknown}; valid: {valid or 'none'}")


def read_record(source: SourceLike | Sequence[SourceLike]) -> DatasetRecord:
    """A dataset in any supported format, or several merged by image (a config's list of sources).

    Merge conflicts (an image with two sizes, a task labelled twice, unknown classes) are
    reported as warnings; the conflicting labels are left out, never guessed.
    """
    specs = list(source) if isinstance(source, (list, tuple)) else [source]
    result = load_sources(specs)
    if result.conflicts:
        shown = "\n  ".join(str(c) for c in result.conflicts[:10])
        more = f"\n  ... and {len(result.conflicts) - 10} more" if len(result.conflicts) > 10 else ""
        warnings.warn(f"{len(result.conflicts)} merge conflict(s), those labels are left out:\n  {shown}{more}",
                      stacklevel=2)
    return result.record
