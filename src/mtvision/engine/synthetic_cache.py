"""The synthetic scenes of a run, rendered once per setting and cached on disk.

The synthetic data is written once per distinct setting to ``<cache>/<hash>/{train,val}``
(in the combined format) and read back like any user dataset, so the demo exercises the
same loading path as real data. Generation goes to a temporary folder renamed into place,
so an interrupted run never leaves a half-written cache; under ``torchrun`` rank 0 renders
while the other ranks wait. Rendering the demo's 1,400 scenes takes a while on a CPU (about
20 s), so with a ``console`` it says what it does and shows a progress bar.

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
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mtvision.data.synthetic import SyntheticDataset, synthetic_tasks
from mtvision.data.synthetic.combined_writer import write_samples
from mtvision.engine.distributed import DistInfo, barrier
from mtvision.structures import Sample

CACHE_VERSION = 1  # bump when the renderer changes, so stale caches are not reused


def cached_synthetic(cache: Path, num_train: int, num_val: int, size: int, max_objects: int, seed: int,
                     dist_info: DistInfo | None = None, console: Console | None = None) -> tuple[Path, Path]:
    """Dataset JSONs of the train and validation scenes, rendering them on first use.

    Validation scenes use the seeds right after the training ones, so the splits never
    share a scene.
    """
    settings = {"num_train": num_train, "num_val": num_val, "size": size, "max_objects": max_objects,
                "seed": seed, "version": CACHE_VERSION}
    splits = {"train": (num_train, seed), "val": (num_val, seed + num_train)}
    folder = _cached(Path(cache), settings, splits, dist_info, console)
    return folder / "train" / "dataset.json", folder / "val" / "dataset.json"


def cached_synthetic_test(cache: Path, num_train: int, num_val: int, num_test: int, size: int, max_objects: int,
                          seed: int, dist_info: DistInfo | None = None, console: Console | None = None) -> Path:
    """Dataset JSON of the test scenes (``mtvision compare``), rendered on first use.

    They use the seeds right after the validation ones: a scene is in one split only, and
    the training and validation caches (the demo's) stay as they are.
    """
    settings = {"num_train": num_train, "num_val": num_val, "num_test": num_test, "size": size,
                "max_objects": max_objects, "seed": seed, "version": CACHE_VERSION}
    folder = _cached(Path(cache), settings, {"test": (num_test, seed + num_train + num_val)}, dist_info, console)
    return folder / "test" / "dataset.json"


def _cached(cache: Path, settings: dict[str, int], splits: dict[str, tuple[int, int]],
            dist_info: DistInfo | None, console: Console | None = None) -> Path:
    """The folder of ``settings`` (a hash of them), rendered by the main process when missing."""
    folder = cache / hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    if (dist_info is None or dist_info.is_main) and not folder.is_dir():
        _render(folder, settings, splits, console)
    barrier()
    return folder


def _render(folder: Path, settings: dict[str, int], splits: dict[str, tuple[int, int]],
            console: Console | None = None) -> None:
    """Each split's ``(count, first seed)`` scenes, written to a temporary folder renamed into place."""
    temp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    if console is not None:
        total = sum(count for count, _ in splits.values())
        console.print(f"rendering {total} synthetic scenes of {settings['size']} px once, cached in {folder}")
    columns = [TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True,
                  disable=console is None or not console.is_terminal) as progress:
        for name, (count, first_seed) in splits.items():
            scenes = SyntheticDataset(count, size=settings["size"], seed=first_seed,
                                      max_objects=settings["max_objects"])
            task = progress.add_task(f"rendering {name}", total=count)
            write_samples(_advancing(scenes, progress, task), synthetic_tasks(), temp / name)
    (temp / "settings.json").write_text(json.dumps(settings, indent=1))
    try:
        os.replace(temp, folder)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(temp, ignore_errors=True)


def _advancing(scenes: SyntheticDataset, progress: Progress, task: int) -> Iterator[Sample]:
    """The scenes in order, advancing the bar as each is rendered (the writer consumes them one by one)."""
    for index in range(len(scenes)):
        yield scenes[index]
        progress.advance(task)
