"""MultiTaskDataset (lazy, corrupt-image skipping) and collate (per-task presence)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision import tv_tensors

from mtvision.data.dataset import MultiTaskDataset, collate
from mtvision.data.formats import combined
from mtvision.data.loading import CorruptImageError
from mtvision.data.record import DatasetRecord, ImageRecord
from mtvision.data.synthetic import SyntheticDataset
from mtvision.data.synthetic.combined_writer import export_synthetic
from mtvision.structures import DepthMap, Instances, Sample


def _sample(value: int, **targets: object) -> Sample:
    image = tv_tensors.Image(torch.full((3, 8, 8), value, dtype=torch.uint8))
    return Sample(image, dict(targets), {"id": value})


def test_collate_mixed_batch_keeps_only_present_targets() -> None:
    empty = Instances.empty((8, 8))
    samples = [
        _sample(0, lighting=torch.tensor(2), semseg=tv_tensors.Mask(torch.ones(8, 8, dtype=torch.int64)),
                depth=DepthMap(torch.full((1, 8, 8), 3.0)), objects=empty),
        _sample(255, lighting=torch.tensor(0), classes=torch.tensor([1, 0, 1])),
        _sample(51, depth=DepthMap(torch.full((1, 8, 8), 5.0)), objects=empty),
    ]
    batch = collate(samples)
    assert batch.images.shape == (3, 3, 8, 8) and batch.images.dtype == torch.float32
    assert batch.images[:, 0, 0, 0].tolist() == pytest.approx([0.0, 1.0, 0.2])
    assert {t: p.tolist() for t, p in batch.present.items()} == {
        "lighting": [True, True, False], "semseg": [True, False, False], "depth": [True, False, True],
        "objects": [True, False, True], "classes": [False, True, False]}
    assert batch.targets["lighting"].tolist() == [2, 0]
    assert batch.targets["semseg"].shape == (1, 8, 8) and batch.targets["semseg"].dtype == torch.int64
    assert batch.targets["depth"].shape == (2, 1, 8, 8) and batch.targets["depth"][:, 0, 0, 0].tolist() == [3.0, 5.0]
    assert type(batch.targets["depth"]) is torch.Tensor  # plain tensors, not tv_tensors
    assert batch.targets["classes"].tolist() == [[1, 0, 1]]
    assert batch.targets["objects"] == [empty, empty] and [m["id"] for m in batch.meta] == [0, 255, 51]


def test_collate_refuses_images_of_different_sizes() -> None:
    small = Sample(tv_tensors.Image(torch.zeros(3, 4, 4)))
    with pytest.raises(ValueError, match="resize"):
        collate([_sample(0), small])


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> DatasetRecord:
    return combined.read(export_synthetic(tmp_path_factory.mktemp("synth"), num=4, size=32, seed=0))


def test_dataset_loads_lazily_and_batches(record: DatasetRecord) -> None:
    dataset = MultiTaskDataset(record, tasks=["depth", "objects"], transform=lambda s: s.with_targets(tag=torch.tensor(1)))
    assert len(dataset) == 4 and list(dataset.tasks) == ["depth", "objects"]
    batch = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate)))
    assert batch.images.shape == (4, 3, 32, 32) and batch.targets["depth"].shape == (4, 1, 32, 32)
    assert len(batch.targets["objects"]) == 4 and batch.present["tag"].all() and "semseg" not in batch.targets
    with pytest.raises(ValueError, match="unknown task"):
        MultiTaskDataset(record, tasks=["nope"])


def test_corrupt_image_raises_or_is_skipped_with_one_warning(record: DatasetRecord, tmp_path: Path) -> None:
    broken = DatasetRecord(root=record.root, images=list(record.images), tasks=record.tasks)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    broken.images[1] = ImageRecord(file_name=str(bad), width=32, height=32)
    with pytest.raises(CorruptImageError, match="bad.png"):
        MultiTaskDataset(broken)[1]
    skipping = MultiTaskDataset(broken, skip_corrupt=True)
    with pytest.warns(RuntimeWarning, match="bad.png"):
        assert skipping[1] is None  # left out, never replaced by a neighbour (that would count it twice)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # reported once: a second warning would raise here
        assert skipping[1] is None
    assert list(skipping.skipped) == [str(bad)]
    batch = collate([skipping[i] for i in range(3)])
    assert [m["file_name"] for m in batch.meta] == [record.images[0].file_name, record.images[2].file_name]
    assert collate([skipping[1]]) is None


def test_collate_works_with_the_synthetic_dataset() -> None:
    dataset = SyntheticDataset(2, size=32)
    batch = collate([dataset[0], dataset[1]])
    assert batch.targets["normals"].shape == (2, 3, 32, 32) and batch.targets["classes"].shape == (2, 4)
    assert batch.targets["lighting"].shape == (2,) and batch.targets["edges"].shape == (2, 1, 32, 32)
