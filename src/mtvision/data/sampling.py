"""One dataset per task: several sources with their own images in one run, sampled in proportion.

Teams rarely have every label on every image: a detection set here, a depth set there. A list
``data.source`` whose entries hold *different* images trains one model on all of them: every
image keeps the labels of its own source and the other tasks are absent (partial labels), so
each task is trained -- and validated -- on its own source's images only.

Per entry, besides :class:`~mtvision.data.sources.SourceSpec`'s keys:

* ``weight``: the share of training draws that come from this source (relative to the other
  entries' weights). Without weights every image is drawn once per epoch (by size); with
  them an epoch is still ``N`` draws (``N`` = training images), each from source ``s`` with
  probability ``w_s / Σw`` and uniform within it, with replacement -- so a small source
  given a large weight repeats its images within an epoch.
* ``tasks``: keep only these tasks of the source (an export often labels more than you want
  from it, e.g. a synthetic set used for its normals only).

``data.merge`` says how images of different entries are matched: by file ``name`` (the same
images labelled in several tools: the default), by ``id``, or ``none`` (each entry brings its
own images, even where two folders use the same file names: one dataset per task).
``data.mix`` says what a batch holds: images of every source (``batch``) or of one source at a
time (``source``: every batch then runs only that source's heads).

Example:
    >>> SourceSampler([0, 0, 0, 1], weights=[1.0, 1.0], batch_size=2, seed=0).source_shares()
    [0.5, 0.5]
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import Sampler

from mtvision.data.merge import match_key, merge_records
from mtvision.data.record import DatasetRecord
from mtvision.data.sources import SourceSpec, load_source, rename_tasks

__all__ = ["SourceSampler", "read_sources", "source_of", "source_weights"]

OWN_KEYS = ("weight", "tasks")  # the keys a data.source entry has besides SourceSpec's


def read_sources(entries: Sequence[Any], merge: Literal["name", "id", "none"] = "name") -> DatasetRecord:
    """Every entry read, renamed, cut to its ``tasks``, tagged with its index (``meta["source"]``), merged.

    With ``merge="none"`` no image of one entry is matched with another's: two synthetic folders
    both holding ``images/000000.png`` stay two images.
    """
    records = []
    for index, entry in enumerate(entries):
        spec, own = _split(entry)
        record = load_source(spec.path, spec.format, **spec.options)
        record = rename_tasks(record, spec.rename, source=str(spec.path))
        record = keep_tasks(record, own.get("tasks"), str(spec.path))
        records.append(_tag(record, index, separate=merge == "none"))
    result = merge_records(records, "id" if merge == "id" else "name")
    if result.conflicts:
        warnings.warn(f"{len(result.conflicts)} merge conflict(s), those labels are left out: "
                      f"{'; '.join(map(str, result.conflicts[:5]))}", stacklevel=2)
    return result.record


def source_weights(entries: Sequence[Any]) -> list[float] | None:
    """The ``weight`` of every entry, or None when none has one (sample by size); some but not all is an error."""
    weights = [entry.get("weight") if isinstance(entry, Mapping) else None for entry in entries]
    if all(w is None for w in weights):
        return None
    if any(w is None for w in weights):
        raise ValueError(f"data.source: give every entry a weight or none (got {weights}); without weights "
                         f"sources are drawn by size")
    if any(not isinstance(w, (int, float)) or w < 0 for w in weights) or not any(weights):
        raise ValueError(f"data.source weights must be numbers >= 0, not all 0 (got {weights})")
    return [float(w) for w in weights]


def source_of(record: DatasetRecord) -> list[int]:
    """The entry index of every image (0 for images read without :func:`read_sources`)."""
    return [int(image.meta.get("source", 0)) for image in record.images]


def keep_tasks(record: DatasetRecord, tasks: Sequence[str] | None, where: str) -> DatasetRecord:
    """``record`` with only ``tasks`` (None: all); a task the source lacks is an error naming those it has."""
    if tasks is None:
        return record
    if missing := [t for t in tasks if t not in record.tasks]:
        raise ValueError(f"data.source {where}: tasks {missing} are not in it; it has {list(record.tasks)}")
    images = [replace(im, targets={t: v for t, v in im.targets.items() if t in tasks}) for im in record.images]
    return replace(record, images=images, tasks={t: info for t, info in record.tasks.items() if t in tasks})


class SourceSampler(Sampler[int]):
    """Draws an epoch of image indices with each source's share of ``weights`` (None: by size).

    ``mix="source"`` orders the draws so that every ``batch_size`` consecutive indices (one
    batch of a loader with that batch size) come from one source. Under DDP each rank takes
    every ``world_size``-th draw (``batch``) or batch (``source``). Seeded by ``(seed, epoch)``.
    """

    def __init__(self, sources: Sequence[int], weights: Sequence[float] | None, batch_size: int,
                 mix: Literal["batch", "source"] = "batch", seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.sources, self.batch_size, self.mix = torch.tensor(list(sources)), batch_size, mix
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        counts = Counter(self.sources.tolist())
        self.by_size = weights is None
        share = {s: float(counts[s]) if weights is None else float(weights[s]) for s in counts}
        self.image_weight = torch.tensor([share[s] / counts[s] for s in self.sources.tolist()], dtype=torch.float64)
        self.draws = len(self.sources) if mix == "batch" else max(1, len(self.sources) // batch_size) * batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def source_shares(self) -> list[float]:
        """The expected share of draws per source index."""
        total = self.image_weight.sum()
        return [float(self.image_weight[self.sources == s].sum() / total) for s in sorted(set(self.sources.tolist()))]

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.mix == "batch":
            order = self._draw(self.image_weight, self.draws, generator)
            return iter(order[self.rank::self.world_size].tolist())
        batches = self._source_batches(generator)
        return iter([i for batch in batches[self.rank::self.world_size] for i in batch])

    def __len__(self) -> int:
        if self.mix == "batch":
            return len(range(self.rank, self.draws, self.world_size))
        return len(range(self.rank, self.draws // self.batch_size, self.world_size)) * self.batch_size

    def _draw(self, weights: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` indices: a permutation when sampling by size (every image once), else weighted draws."""
        if self.by_size and count <= len(weights):
            candidates = weights.nonzero().flatten()
            return candidates[torch.randperm(len(candidates), generator=generator)][:count]
        return torch.multinomial(weights, count, replacement=True, generator=generator)

    def _source_batches(self, generator: torch.Generator) -> list[list[int]]:
        """``draws / batch_size`` batches, each of one source (drawn with its share), uniform within it."""
        per_source = {s: self.image_weight * (self.sources == s) for s in sorted(set(self.sources.tolist()))}
        shares = torch.tensor([float(w.sum()) for w in per_source.values()], dtype=torch.float64)
        picks = torch.multinomial(shares, self.draws // self.batch_size, replacement=True, generator=generator)
        keys = list(per_source)
        return [torch.multinomial(per_source[keys[p]], self.batch_size, replacement=True, generator=generator).tolist()
                for p in picks.tolist()]

def _split(entry: Any) -> tuple[SourceSpec, dict[str, Any]]:
    """A config entry as a :class:`SourceSpec` and its own keys (``weight``, ``tasks``)."""
    if isinstance(entry, Mapping):
        own = {k: entry[k] for k in OWN_KEYS if k in entry}
        return SourceSpec.parse({k: v for k, v in entry.items() if k not in OWN_KEYS}), own
    return SourceSpec.parse(entry), {}


def _tag(record: DatasetRecord, index: int, separate: bool) -> DatasetRecord:
    """Images marked with their entry; with ``separate`` their match key is made unique to the entry."""
    images = []
    for image in record.images:
        meta = {**image.meta, "source": index}
        if separate:
            meta["match_name"] = f"{index}:{match_key(image)}"
        images.append(replace(image, meta=meta))
    return replace(record, images=images, root=Path(record.root))
