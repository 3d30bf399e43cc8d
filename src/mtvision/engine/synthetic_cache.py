"""The synthetic scenes of a run, rendered once per setting and cached on disk.

The synthetic data is written once per distinct setting to ``<cache>/<hash>/{train,val}``
(in the combined format) and read back like any user dataset, so the demo exercises the
same loading path as real data. Generation goes to a temporary folder renamed into place,
so an interrupted run never leaves a half-written cache; under ``torchrun`` rank 0 renders
while the other ranks wait.

Example:
    >>> import tempfile
    >>> train, val = cached_synthetic(Path(tempfile.mkdtemp()), num_train=3, num_val=2, size=32, max_objects=2, seed=0)
    >>> from mtvision.data.formats import combined
    >>> len(combined.read(train).images), len(combined.read(val).images)
    (3, 2)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from mtvision.data.synthetic.combined_writer import export_synthetic
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
