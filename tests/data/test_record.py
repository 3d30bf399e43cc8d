"""Record operations: label thinning (scarce-label studies) and the validation hold-out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtvision.data.record import DatasetRecord, ImageRecord, split_record, thin_labels
from mtvision.structures import TaskInfo


def _record(n: int = 40) -> DatasetRecord:
    tasks = {"depth": TaskInfo(kind="label", classes=["a"]), "scene": TaskInfo(kind="label", classes=["a"])}
    images = [ImageRecord(f"{i}.png", 4, 4, targets={"scene": 0, **({"depth": 0} if i % 4 else {})}) for i in range(n)]
    return DatasetRecord(root=Path("."), images=images, tasks=tasks)


@pytest.mark.parametrize(("fraction", "kept"), [(0.05, 2), (0.1, 3), (0.5, 15), (1.0, 30), (0.001, 1)])
def test_label_fraction_keeps_exactly_round_fraction_of_the_labelled_images(fraction: float, kept: int) -> None:
    record = _record()  # 30 of 40 images carry depth
    thinned = thin_labels(record, {"depth": fraction}, seed=3)
    assert thinned.coverage() == {"depth": kept, "scene": 40}  # the other task keeps every label
    assert record.coverage() == {"depth": 30, "scene": 40}  # the input is not modified
    assert all("depth" in record.images[i].targets for i, im in enumerate(thinned.images) if "depth" in im.targets)


def test_label_fraction_is_deterministic_per_seed() -> None:
    def kept(seed: int) -> list[str]:
        return [im.file_name for im in thin_labels(_record(), {"depth": 0.2}, seed).images if "depth" in im.targets]

    assert kept(0) == kept(0) and len(kept(0)) == 6
    assert kept(0) != kept(1)


def test_label_fraction_of_an_unknown_task_is_named() -> None:
    with pytest.raises(ValueError, match="label_fraction names flow, not tasks of the dataset: depth, scene"):
        thin_labels(_record(), {"flow": 0.5}, seed=0)


def test_validation_hold_out_is_seeded_and_disjoint() -> None:
    train, val = split_record(_record(), 0.1, seed=0)
    assert len(val.images) == 4 and len(train.images) == 36
    assert not {im.file_name for im in train.images} & {im.file_name for im in val.images}
