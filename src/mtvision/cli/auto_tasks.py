"""``tasks: auto``: the tasks a dataset brings, each with the task type its annotations imply.

A new user's export already says what it holds (COCO instances, VOC masks, class labels...);
making them name every task again in a config, with the right type and the right detector
options, is the first hour's worst trial and error. So when a config names no tasks and its
``data.source`` is a dataset, every task of that dataset is trained:

* the task type is the registered type that consumes the task's target kind
  (``instances`` -> ``detection``, ``semantic`` -> ``semantic_segmentation``,
  ``label`` -> ``classification``, ``depth`` / ``normals`` / ``edges`` -> themselves);
* a detection task gets ``masks: true`` when its annotations carry masks or polygons, and
  ``keypoints: true`` when its label space names keypoints and some annotation has them.

The dataset read here is kept (:func:`read_source`), so that building the run reads it once.

Example:
    >>> from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
    >>> from mtvision.structures import TaskInfo
    >>> record = DatasetRecord(root=Path("."), tasks={"cars": TaskInfo(kind="instances", classes=["car"]),
    ...                                               "weather": TaskInfo(kind="label", classes=["sun", "rain"])})
    >>> record.images.append(ImageRecord("a.jpg", 8, 8, targets={"cars": [Annotation(0, (0, 0, 4, 4))]}))
    >>> {name: (task.type, task.options) for name, task in record_tasks(record).items()}
    {'cars': ('detection', {}), 'weather': ('classification', {})}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtvision.config import Config, DataConfig, TaskConfig
from mtvision.data.record import DatasetRecord
from mtvision.data.sampling import read_sources
from mtvision.data.sources import read_record
from mtvision.tasks import TASKS

#: The type chosen when several registered task types consume one kind (a user's module may add one).
PREFERRED = {"instances": "detection", "semantic": "semantic_segmentation", "label": "classification"}

_RECORDS: dict[str, DatasetRecord] = {}  # data.source (as JSON) -> its record, read once per process


def tasks_of(cfg: Config) -> dict[str, TaskConfig]:
    """The tasks of ``cfg.data.source`` (the ``auto_tasks`` of :func:`mtvision.config.load_config`).

    A source that does not exist gives no tasks: :func:`mtvision.cli.validate.validate`
    then reports the missing path, as for any config.
    """
    if any(not Path(path).exists() for path in _source_paths(cfg.data.source)):
        return {}
    return record_tasks(read_source(cfg.data))


def record_tasks(record: DatasetRecord) -> dict[str, TaskConfig]:
    """One :class:`TaskConfig` per task of ``record``, in the record's order."""
    return {name: TaskConfig(type=type_for_kind(info.kind), options=_options(name, record))
            for name, info in record.tasks.items()}


def type_for_kind(kind: str) -> str:
    """The registered task type that trains targets of ``kind``."""
    types = [name for name, cls in TASKS.items() if getattr(cls, "target_kind", None) == kind]
    if PREFERRED.get(kind) in types:
        return PREFERRED[kind]
    if not types:
        raise ValueError(f"no task type trains targets of kind {kind!r}; name the task's type in the config "
                         f"(tasks.<name>.type)")
    return types[0]


def read_source(data: DataConfig) -> DatasetRecord:
    """The record of ``data.source`` (a path or a list of sources), read once per process."""
    key = json.dumps([data.source, data.merge], sort_keys=True, default=str)
    if key not in _RECORDS:
        source = data.source
        _RECORDS[key] = read_sources(source, data.merge) if isinstance(source, list) else read_record(source)
    return _RECORDS[key]


def _options(name: str, record: DatasetRecord) -> dict[str, Any]:
    """A detection task's branches: masks and keypoints when its annotations have them."""
    info = record.tasks[name]
    if type_for_kind(info.kind) != "detection":
        return {}
    annotations = [a for image in record.images for a in image.targets.get(name, []) or []]
    options = {}
    if any(a.segmentation is not None for a in annotations):
        options["masks"] = True
    if info.keypoint_names and any(a.keypoints for a in annotations):
        options["keypoints"] = True
    return options


def _source_paths(source: Any) -> list[str]:
    items = source if isinstance(source, list) else [source]
    return [str(item["path"]) if isinstance(item, dict) else str(item) for item in items
            if isinstance(item, str) or (isinstance(item, dict) and "path" in item)]
