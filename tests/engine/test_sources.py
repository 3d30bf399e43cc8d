"""One dataset per task: sources with their own images in one run, sampled in the shares asked for."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from mtvision.data.sampling import SourceSampler, read_sources, source_of, source_weights

torch.set_num_threads(1)


def _shares(sampler: SourceSampler, sources: list[int], epoch: int = 0) -> Counter:
    sampler.set_epoch(epoch)
    return Counter(sources[i] for i in sampler)


def test_weights_give_the_requested_proportions_over_an_epoch() -> None:
    sources = [0] * 300 + [1] * 100
    sampler = SourceSampler(sources, weights=[1.0, 3.0], batch_size=8, seed=0)
    assert len(sampler) == 400 and sampler.source_shares() == pytest.approx([0.25, 0.75])
    for epoch in range(3):  # binomial(400, 0.75): sd 8.7 draws; 4 sd of slack
        assert abs(_shares(sampler, sources, epoch)[1] - 300) < 35


def test_without_weights_every_image_is_drawn_once_per_epoch() -> None:
    sources = [0] * 30 + [1] * 10
    sampler = SourceSampler(sources, weights=None, batch_size=8, seed=0)
    assert sorted(sampler) == list(range(40))
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(2)
    assert first != list(sampler)  # reshuffled every epoch


def test_mix_source_gives_one_source_per_batch_in_the_shares() -> None:
    sources = [0] * 300 + [1] * 100
    sampler = SourceSampler(sources, weights=[1.0, 1.0], batch_size=8, mix="source", seed=0)
    order = list(sampler)
    assert len(order) == len(sampler) == 400
    batches = [order[i:i + 8] for i in range(0, 400, 8)]
    assert all(len({sources[i] for i in batch}) == 1 for batch in batches)
    ones = sum(sources[batch[0]] for batch in batches)  # binomial(50, 0.5): sd 3.5 batches
    assert abs(ones - 25) < 14


def test_ranks_split_the_draws() -> None:
    sources = [0] * 30 + [1] * 10
    whole = list(SourceSampler(sources, [1.0, 1.0], batch_size=4, seed=3))
    ranks = [list(SourceSampler(sources, [1.0, 1.0], batch_size=4, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert ranks[0] == whole[0::2] and ranks[1] == whole[1::2]


def test_weights_are_given_for_all_sources_or_none() -> None:
    assert source_weights(["a", {"path": "b"}]) is None
    assert source_weights([{"path": "a", "weight": 1}, {"path": "b", "weight": 3}]) == [1.0, 3.0]
    with pytest.raises(ValueError, match="every entry a weight or none"):
        source_weights([{"path": "a", "weight": 1}, "b"])


def test_sources_with_their_own_images_stay_apart(synthetic_paths: tuple[Path, Path]) -> None:
    """Two synthetic folders both hold images/000000.png...: merge=none keeps them two images each."""
    a, b = synthetic_paths
    entries = [{"path": str(a), "tasks": ["semseg", "depth"]}, {"path": str(b), "tasks": ["normals"]}]
    record = read_sources(entries, merge="none")
    assert len(record.images) == 12 + 6 and source_of(record) == [0] * 12 + [1] * 6
    assert record.coverage() == {"semseg": 12, "depth": 12, "normals": 6}
    assert all(set(im.targets) == ({"semseg", "depth"} if s == 0 else {"normals"})
               for im, s in zip(record.images, source_of(record)))
    assert len(read_sources(entries, merge="name").images) == 12  # matched by file name: the same 12 names
    with pytest.raises(ValueError, match=r"tasks \['depht'\] are not in it"):
        read_sources([{"path": str(a), "tasks": ["depht"]}])


def test_two_sources_with_disjoint_images_and_tasks_train(synthetic_paths: tuple[Path, Path],
                                                          train_from_config) -> None:
    a, b = synthetic_paths
    entries = [{"path": str(a), "tasks": ["semseg", "depth"], "weight": 1},
               {"path": str(b), "tasks": ["normals"], "weight": 1}]
    (row,) = train_from_config({
        "data": {"source": entries, "val": entries, "merge": "none", "mix": "source", "image_size": 32,
                 "batch_size": 4},
        "tasks": {"semseg": {"type": "semantic_segmentation"}, "depth": {"type": "depth"},
                  "normals": {"type": "normals"}},
        "train": {"best_metric": "val/normals/mean_angle"},
    })
    for task in ("semseg", "depth", "normals"):
        assert row[f"train/{task}/loss"] >= 0
    assert 0 <= row["val/semseg/miou"] <= 1 and row["val/depth/abs_rel"] > 0 and row["val/normals/mean_angle"] > 0
