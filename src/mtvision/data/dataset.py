"""A torch ``Dataset`` over a :class:`DatasetRecord`, and the collate that keeps tasks apart.

Images in a multi-task batch are often labelled for different tasks (one source has
boxes, another depth). :func:`collate` therefore batches each task *separately*: a bool
``present[task]`` over the batch, and ``targets[task]`` holding only the present images'
targets, so a loss never sees a zero-filled placeholder.

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from mtvision.structures import Sample
    >>> a = Sample(tv_tensors.Image(torch.zeros(3, 4, 4, dtype=torch.uint8)), {"scene": torch.tensor(1)})
    >>> b = Sample(tv_tensors.Image(torch.zeros(3, 4, 4, dtype=torch.uint8)))
    >>> batch = collate([a, b])
    >>> batch.present["scene"].tolist(), batch.targets["scene"].tolist()
    ([True, False], [1])
"""

from __future__ import annotations

import warnings
from collections.abc import Collection
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mtvision.data.loading import CorruptImageError, load_sample
from mtvision.data.record import DatasetRecord
from mtvision.structures import Batch, Sample, TaskInfo

__all__ = ["MultiTaskDataset", "SkippingLoader", "collate"]


class MultiTaskDataset(Dataset[Sample]):
    """Samples of ``record`` decoded lazily in ``__getitem__``, then passed through ``transform``.

    ``tasks`` restricts the targets loaded (default: all of the record's tasks).
    With ``skip_corrupt=True`` an unreadable image (missing, truncated, not an image) is
    warned about once per process, recorded in :attr:`skipped` and returned as ``None``,
    which :func:`collate` leaves out of its batch: the image is dropped from the epoch and
    from validation, never replaced by a neighbour (which would count that one twice), and
    no up-front scan of every file is needed. With ``False`` (the default) it raises
    :class:`~mtvision.data.loading.CorruptImageError` naming the file.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from mtvision.data.formats import combined
        >>> ds = MultiTaskDataset(combined.read("data/synth/dataset.json"))  # doctest: +SKIP
        >>> batch = next(iter(DataLoader(ds, batch_size=8, collate_fn=collate)))  # doctest: +SKIP
    """

    def __init__(self, record: DatasetRecord, tasks: Collection[str] | None = None,
                 transform: Callable[[Sample], Sample] | None = None, skip_corrupt: bool = False) -> None:
        unknown = [t for t in tasks or () if t not in record.tasks]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; the dataset has: {', '.join(record.tasks)}")
        self.record = record
        self.task_names = list(record.tasks) if tasks is None else list(tasks)
        self.transform = transform
        self.skip_corrupt = skip_corrupt
        self.skipped: dict[str, str] = {}  # path -> why, of the images left out (in this process)

    @property
    def tasks(self) -> dict[str, TaskInfo]:
        """Label spaces of the loaded tasks (what heads are built from)."""
        return {name: self.record.tasks[name] for name in self.task_names}

    def __len__(self) -> int:
        return len(self.record.images)

    def __getitem__(self, index: int) -> Sample | None:
        sample = self._load(index) if not self.skip_corrupt else self._load_skipping(index)
        if sample is None:
            return None
        return self.transform(sample) if self.transform is not None else sample

    def _load(self, index: int) -> Sample:
        return load_sample(self.record, self.record.images[index], self.task_names)

    def _load_skipping(self, index: int) -> Sample | None:
        try:
            return self._load(index)
        except CorruptImageError as err:
            if err.file not in self.skipped:
                self.skipped[err.file] = err.problem
                warnings.warn(f"skipping corrupt image: {err}", RuntimeWarning, stacklevel=3)
            return None


class SkippingLoader(DataLoader):
    """A ``DataLoader`` that leaves out batches whose every image was skipped as corrupt."""

    def __iter__(self) -> Any:
        return (batch for batch in super().__iter__() if batch is not None)


def collate(samples: list[Sample | None]) -> Batch | None:
    """Stack images and batch each task over the samples that carry it.

    ``None`` samples (corrupt images skipped by :class:`MultiTaskDataset`) are left out;
    a batch of nothing but those is ``None`` (:class:`SkippingLoader` drops it).

    Images are expected float (normalised by the transform pipeline); ``uint8`` images
    (no transform) are scaled to ``[0, 1]`` so a raw dataset still trains. Dense and
    image-level targets are stacked into plain tensors (``[B', ...]``), ``Instances`` are
    kept as a list, anything else (e.g. strings) as a list.
    """
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    images = _stack_images([s.image for s in samples])
    tasks = list(dict.fromkeys(task for s in samples for task in s.targets))
    present = {t: torch.tensor([t in s.targets for s in samples], dtype=torch.bool) for t in tasks}
    targets = {t: _batch_task(t, [s.targets[t] for s in samples if t in s.targets]) for t in tasks}
    return Batch(images=images, targets=targets, present=present, meta=[s.meta for s in samples])


def _stack_images(images: list[Tensor]) -> Tensor:
    sizes = {tuple(im.shape) for im in images}
    if len(sizes) > 1:
        raise ValueError(f"images in a batch differ in size {sorted(sizes)}; add a resize/crop to the transform")
    stacked = torch.stack([im.as_subclass(Tensor) for im in images])
    return stacked.float() / 255 if stacked.dtype == torch.uint8 else stacked


def _batch_task(task: str, values: list[Any]) -> Any:
    if not all(isinstance(v, Tensor) for v in values):
        return list(values)
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) > 1:
        raise ValueError(f"targets of task {task!r} differ in shape {sorted(shapes)}; resize them with the image")
    return torch.stack([v.as_subclass(Tensor) for v in values])
