"""Where a run's train / validation records come from: the cached synthetic scenes or user files.

The synthetic data is written once per distinct setting to ``<cache>/<hash>/{train,val}``
(in the combined format) and read back like any user dataset, so the demo exercises the
same loading path as real data. Generation goes to a temporary folder renamed into place,
so an interrupted run never leaves a half-written cache; under ``torchrun`` rank 0 renders
while the other ranks wait.

Example:
    >>> import tempfile
    >>> train, val = cached_synthetic(Path(tempfile.mkdtemp()), num_train=3, num_val=2, size=32, max_objects=2, seed=0)
    >>> len(read_record(train).images), len(read_record(val).images)
    (3, 2)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mtvision.data.record import DatasetRecord
from mtvision.data.sources import SourceLike, load_sources
from mtvision.data.synthetic_export import export_synthetic
from mtvision.engine.distributed import DistInfo, barrier

CACHE_VERSION = 1  # bump when the renderer changes, so stale caches are not reused


def cached_synthetic(cache: Path, num_train: int, num_val: int, size: int, max_objects: int, seed: int,
                     dist_info: DistInfo | None = None) -> tuple[Path, Path]:
    """Dataset JSONs of the train and validation scenes, rendering them on first use.

    Validation scenes use the seeds right after the training ones, so the splits never
    share a scene.
    """
    settings = {"num_train": num_train, "num_val": num_val, "size": size, "max_objects": max_objects,
                "seed": seed, "version": CACHE_VERSION}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache) / key
    if (dist_info is None or dist_info.is_main) and not folder.is_dir():
        _render(folder, settings)
    barrier()
    return folder / "train" / "dataset.json", folder / "val" / "dataset.json"


def _render(folder: Path, settings: dict[str, int]) -> None:
    temp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    common = {"size": settings["size"], "max_objects": settings["max_objects"]}
    export_synthetic(temp / "train", num=settings["num_train"], seed=settings["seed"], **common)
    export_synthetic(temp / "val", num=settings["num_val"], seed=settings["seed"] + settings["num_train"], **common)
    (temp / "settings.json").write_text(json.dumps(settings, indent=1))
    try:
        os.replace(temp, folder)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(temp, ignore_errors=True)


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


def split_record(record: DatasetRecord, val_fraction: float, seed: int) -> tuple[DatasetRecord, DatasetRecord]:
    """A seeded random hold-out: ``(train, val)`` with at least one image in each."""
    if len(record.images) < 2:
        raise ValueError(f"{record.root}: {len(record.images)} image(s); a validation split needs at least 2")
    order = list(range(len(record.images)))
    random.Random(seed).shuffle(order)
    count = min(len(order) - 1, max(1, round(val_fraction * len(order))))
    return _subset(record, order[count:]), _subset(record, order[:count])


def _subset(record: DatasetRecord, indices: list[int]) -> DatasetRecord:
    return replace(record, images=[record.images[i] for i in sorted(indices)])
