"""Task grouping: a hand-made optimum, brute force agreement, deterministic ties, the cover
variant, the approximation beyond the exact size and its time at 16 tasks, bad input."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from mtvision.analysis.grouping import EXACT_MAX, group_every_k, group_tasks, score_of

TASKS = ["depth", "normals", "edges", "semseg", "noise"]
# Two cliques, {depth, normals, edges} and {semseg}, and noise that hurts everyone (row = from).
Z = np.array([
    [0.0, 0.30, 0.20, -0.05, 0.00],
    [0.25, 0.0, 0.15, -0.05, 0.00],
    [0.25, 0.30, 0.0, 0.05, 0.00],
    [-0.10, -0.10, 0.02, 0.0, 0.00],
    [-0.20, -0.20, -0.20, -0.20, 0.0],
])


def test_hand_made_matrix_known_optimum() -> None:
    # K=2: geometry together, semseg + noise apart (noise alone cannot be: 2 groups for 5 tasks).
    # Score by hand: depth (0.25 + 0.25)/2 + normals (0.30 + 0.30)/2 + edges (0.20 + 0.15)/2 = 0.725,
    # semseg from noise -0.20, noise from semseg 0.00 -> 0.525 (depth + normals alone with edges,
    # semseg, noise in the other group: 0.55 - 0.09 - 0.075 = 0.385).
    two = group_tasks(Z, TASKS, 2)
    assert two.groups == [["depth", "normals", "edges"], ["semseg", "noise"]] and two.exact
    assert two.score == pytest.approx(0.725 - 0.20)
    three = group_tasks(Z, TASKS, 3)
    assert three.groups == [["depth", "normals", "edges"], ["semseg"], ["noise"]]
    assert three.score == pytest.approx(0.725)
    every = group_every_k(Z, TASKS)
    assert list(every) == [1, 2, 3, 4, 5] and every[5].score == 0.0


def _brute_force(z: np.ndarray, k: int) -> float:
    """The best partition score over every assignment of tasks to k labelled groups."""
    best = -np.inf
    for labels in itertools.product(range(k), repeat=len(z)):
        if len(set(labels)) == k:
            best = max(best, score_of(z, [[i for i, lab in enumerate(labels) if lab == g] for g in range(k)]))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_search_equals_brute_force(seed: int) -> None:
    z = np.random.default_rng(seed).normal(size=(6, 6))
    for k in (2, 3, 4):
        assert group_tasks(z, [str(i) for i in range(6)], k).score == pytest.approx(_brute_force(z, k))


def test_ties_are_broken_deterministically() -> None:
    # Every pair equally related: ab|cd, ac|bd and ad|bc tie at 0.4 (a task alone scores 0, so
    # 3 + 1 gives 0.3); the rule keeps the first task with the lowest-indexed company: ab|cd.
    z = np.full((4, 4), 0.1)
    tasks = ["a", "b", "c", "d"]
    first = group_tasks(z, tasks, 2)
    assert first.groups == [["a", "b"], ["c", "d"]] and first.score == pytest.approx(0.4)
    assert all(group_tasks(z, tasks, 2).groups == first.groups for _ in range(3))
    assert group_tasks(np.zeros((4, 4)), tasks, 2).groups == [["a"], ["b", "c", "d"]]
    # Names do not change the choice, only the order of the tasks does.
    assert group_tasks(z, ["w", "x", "y", "z"], 2).groups == [[{"a": "w", "b": "x", "c": "y", "d": "z"}[t] for t in g]
                                                             for g in first.groups]


def test_cover_lets_a_task_serve_two_groups() -> None:
    # a helps b and c, which hurt each other: the cover puts a in both groups.
    z = np.array([[0, .4, .4], [.0, 0, -.5], [.0, -.5, 0]])
    cover = group_tasks(z, ["a", "b", "c"], 2, variant="cover")
    assert cover.groups == [["a", "b"], ["a", "c"]]
    assert cover.score == pytest.approx(0.8)
    partition = group_tasks(z, ["a", "b", "c"], 2)
    assert partition.score == pytest.approx(0.4) and partition.score < cover.score


def test_beyond_the_exact_size_an_approximation_in_seconds_at_16_tasks() -> None:
    rng = np.random.default_rng(0)
    # Planted: four blocks of four related tasks in noise -> the approximation finds them.
    labels = np.repeat(np.arange(4), 4)
    z = np.where(labels[:, None] == labels[None, :], 0.3, -0.1) + rng.normal(scale=0.05, size=(16, 16))
    tasks = [f"t{i:02d}" for i in range(16)]
    start = time.perf_counter()
    found = group_tasks(z, tasks, 4)
    seconds = time.perf_counter() - start
    assert not found.exact and seconds < 10, seconds
    assert sorted(found.groups) == [tasks[i:i + 4] for i in range(0, 16, 4)]
    print(f"approximate grouping of 16 tasks into 4: {seconds:.2f} s")  # recorded in docs/affinity.md


def test_the_approximation_against_the_exact_optimum_at_the_exact_size() -> None:
    from mtvision.analysis import grouping

    rng = np.random.default_rng(1)
    found = []
    for _ in range(20):
        z = rng.normal(scale=0.1, size=(9, 9))
        exact = group_tasks(z, [str(i) for i in range(9)], 3).score
        approx = score_of(z, grouping._approximate(grouping._clean(z), 3, "partition"))
        assert approx <= exact + 1e-9
        found.append((approx / exact) if exact > 0 else 1.0)
    print(f"approximation / exact optimum on 20 random 9-task matrices, K=3: mean {np.mean(found):.3f}, "
          f"optimal in {np.mean(np.isclose(found, 1.0)):.0%}")
    assert np.mean(found) > 0.9


@pytest.mark.parametrize("k", [0, 6])
def test_bad_number_of_groups(k: int) -> None:
    with pytest.raises(ValueError, match="choose 1 to 5"):
        group_tasks(Z, TASKS, k)


def test_exact_size_is_ten() -> None:
    assert EXACT_MAX == 10
    start = time.perf_counter()
    group_every_k(np.random.default_rng(0).normal(size=(10, 10)), [str(i) for i in range(10)])
    assert time.perf_counter() - start < 20
