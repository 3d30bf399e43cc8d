"""Which tasks to train together: the K groups with the most affinity inside them.

The network selection of Fifty et al. (NeurIPS 2021, §3.3) on Standley et al. (ICML 2020):
a task ``i`` in a group ``g`` is credited with the mean affinity onto it from its group-mates,
``a(i, g) = mean_{j ∈ g, j ≠ i} Z_{j→i}`` (0 alone: a task trained alone is the reference),
and a grouping scores ``Σ_i a(i, g(i))``, where ``g(i)`` is the group that serves ``i``.

Two variants:

* ``"partition"`` (default) — every task in exactly one group, ``g(i)`` its group. This is what
  ``model.architecture: branched`` can build (one branch per group, each task in one branch),
  so ``mtvision affinity`` writes ``groups.yaml`` from it.
* ``"cover"`` — the papers' own: a task may be in several groups, each task served by its best
  one, ``Σ_i max_{g ∋ i} a(i, g)`` (a group may carry a task only to help the others; that
  task's predictions would come from another group's network). It needs one network per group.

Exact for up to :data:`EXACT_MAX` tasks: a dynamic programme over task subsets
(``K · 3^T`` steps; a cover reduces to a partition of the *served* tasks, each block credited
with the best superset group, ``3^T`` more). Beyond, an approximation: greedy merging of
singletons (the merge that gains most first) to ``K`` groups, then moves of one task and swaps
of two while the score rises (``--overlap``: then adding tasks to groups while it rises).

Ties: scores within 1e-9 are equal, and the first grouping found wins; the exact search tries
the block holding the first unplaced task in increasing order of its bit mask (task ``t`` is
bit ``t`` of the given order), so among equals the first task keeps the lowest-indexed
company. The same matrix and order always give the same groups. An unmeasured pair (NaN)
counts as 0: no evidence either way.

Example:
    >>> import numpy as np
    >>> z = np.array([[0, .3, -.2], [.2, 0, -.1], [-.3, -.2, 0]])
    >>> g = group_tasks(z, ["depth", "normals", "noise"], 2)
    >>> g.groups, round(g.score, 2)
    ([['depth', 'normals'], ['noise']], 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["EXACT_MAX", "Grouping", "group_tasks", "group_every_k", "score_of"]

Variant = Literal["partition", "cover"]
EXACT_MAX = 10  # exact search up to this many tasks (K · 3^10 ≈ 0.6M steps per K)
TIE = 1e-9


@dataclass(frozen=True)
class Grouping:
    """K groups of task names (each in the given task order, groups by their first task), their score."""

    groups: list[list[str]]
    score: float
    exact: bool
    variant: Variant = "partition"


def score_of(affinity: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """``Σ_i max_{g ∋ i} a(i, g)`` over the tasks in ``groups`` (a partition: ``Σ_i a(i, g(i))``)."""
    z = _clean(affinity)
    best: dict[int, float] = {}
    for group in groups:
        for i in group:
            best[i] = max(best.get(i, -np.inf), _onto(z, group, i))
    return float(sum(best.values()))


def group_tasks(affinity: np.ndarray, tasks: Sequence[str], k: int, variant: Variant = "partition") -> Grouping:
    """The ``k`` groups of ``tasks`` with the highest score (``affinity[i, j] = Z_{i→j}``)."""
    return group_every_k(affinity, tasks, [k], variant)[k]


def group_every_k(affinity: np.ndarray, tasks: Sequence[str], ks: Sequence[int] | None = None,
                  variant: Variant = "partition") -> dict[int, Grouping]:
    """The best grouping for every ``k`` in ``ks`` (default 1 to T)."""
    z, count = _clean(affinity), len(tasks)
    if z.shape != (count, count):
        raise ValueError(f"affinity is {z.shape}, expected ({count}, {count}) for tasks {list(tasks)}")
    ks = list(range(1, count + 1)) if ks is None else list(ks)
    wrong = [k for k in ks if not 1 <= k <= count]
    if wrong:
        raise ValueError(f"cannot make {wrong[0]} groups of {count} tasks: choose 1 to {count}")
    if variant not in ("partition", "cover"):
        raise ValueError(f"unknown grouping variant {variant!r}; use partition or cover")
    if count <= EXACT_MAX:
        found = _exact(z, max(ks), variant)
        return {k: _named(found[k], tasks, z, True, variant) for k in ks}
    return {k: _named(_approximate(z, k, variant), tasks, z, False, variant) for k in ks}


# --- exact ---------------------------------------------------------------------------
def _exact(z: np.ndarray, k_max: int, variant: Variant) -> dict[int, list[list[int]]]:
    """Best groups for every k ≤ ``k_max``: a DP over subsets, blocks holding the lowest unplaced task."""
    count = len(z)
    full = (1 << count) - 1
    value, server = _block_values(z, variant)
    best = {0: 0.0}  # the previous layer: best[mask] with (k - 1) blocks
    choices: list[dict[int, int]] = []
    out: dict[int, list[list[int]]] = {}
    for k in range(1, k_max + 1):
        layer, choice = {}, {}
        for mask in range(1, full + 1):
            low = mask & -mask
            top, picked = -np.inf, -1
            for extra in _submasks_increasing(mask ^ low):
                block = low | extra
                previous = best.get(mask ^ block)
                if previous is not None and value[block] + previous > top + TIE:
                    top, picked = value[block] + previous, block
            if picked >= 0:
                layer[mask], choice[mask] = top, picked
        best = layer
        choices.append(choice)
        if full in layer:
            out[k] = [_bits(server[block]) for block in _unwind(choices, full)]
    return out


def _block_values(z: np.ndarray, variant: Variant) -> tuple[list[float], list[int]]:
    """Per subset: its credit as a block, and the group that serves it (itself, or the best
    superset for a cover)."""
    count = len(z)
    own = [sum(_onto(z, _bits(mask), i) for i in _bits(mask)) if mask else 0.0 for mask in range(1 << count)]
    if variant == "partition":
        return own, list(range(1 << count))
    value, server = list(own), list(range(1 << count))
    for group in range(1, 1 << count):
        credit = {i: _onto(z, _bits(group), i) for i in _bits(group)}
        for sub in _submasks_increasing(group):
            if sub and sub != group:
                total = sum(credit[i] for i in _bits(sub))
                if total > value[sub] + TIE:
                    value[sub], server[sub] = total, group
    return value, server


def _submasks_increasing(mask: int) -> list[int]:
    """Every submask of ``mask`` (0 included), in increasing order."""
    subs, sub = [], mask
    while True:
        subs.append(sub)
        if sub == 0:
            break
        sub = (sub - 1) & mask
    return subs[::-1]


def _unwind(choices: list[dict[int, int]], mask: int) -> list[int]:
    blocks = []
    for layer in reversed(choices):
        block = layer[mask]
        blocks.append(block)
        mask ^= block
    return blocks


# --- approximate ---------------------------------------------------------------------
def _approximate(z: np.ndarray, k: int, variant: Variant) -> list[list[int]]:
    """Greedy merges to ``k`` groups, then single moves and swaps while the score rises."""
    groups = [[i] for i in range(len(z))]
    while len(groups) > k:
        pairs = [(x, y) for x in range(len(groups)) for y in range(x + 1, len(groups))]
        gains = [score_of(z, [groups[x] + groups[y]]) - score_of(z, [groups[x]]) - score_of(z, [groups[y]])
                 for x, y in pairs]
        x, y = pairs[max(range(len(pairs)), key=lambda n: (gains[n], -n))]  # ties: the first pair
        groups[x] = sorted(groups[x] + groups[y])
        del groups[y]
    labels = [next(g for g, group in enumerate(groups) if i in group) for i in range(len(z))]
    labels = _local_search(z, labels, k)
    groups = [[i for i, label in enumerate(labels) if label == g] for g in range(k)]
    return _add_overlaps(z, groups) if variant == "cover" else groups


def _local_search(z: np.ndarray, labels: list[int], k: int) -> list[int]:
    def score(candidate: list[int]) -> float:
        return score_of(z, [[i for i, label in enumerate(candidate) if label == g] for g in range(k)])

    current, improved = score(labels), True
    while improved:
        improved = False
        for candidate in _neighbours(labels, k):
            value = score(candidate)
            if value > current + TIE:
                labels, current, improved = candidate, value, True
                break
    return labels


def _neighbours(labels: list[int], k: int) -> list[list[int]]:
    """One task moved to another non-emptied group, or two tasks of different groups swapped."""
    out = []
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            out += [labels[:i] + [g] + labels[i + 1:] for g in range(k) if g != label]
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] != labels[j]:
                swapped = list(labels)
                swapped[i], swapped[j] = labels[j], labels[i]
                out.append(swapped)
    return out


def _add_overlaps(z: np.ndarray, groups: list[list[int]]) -> list[list[int]]:
    """Cover variant beyond the exact size: add a task to another group while the score rises."""
    improved = True
    while improved:
        improved = False
        current = score_of(z, groups)
        for g, group in enumerate(groups):
            for i in range(len(z)):
                if i not in group:
                    trial = [sorted(group + [i]) if h == g else other for h, other in enumerate(groups)]
                    if score_of(z, trial) > current + TIE:
                        groups, improved = trial, True
                        break
            if improved:
                break
    return groups


# --- helpers ---------------------------------------------------------------------------
def _onto(z: np.ndarray, group: Sequence[int], i: int) -> float:
    """Mean affinity onto ``i`` from the rest of ``group`` (0 when alone)."""
    others = [j for j in group if j != i]
    return float(np.mean([z[j, i] for j in others])) if others else 0.0


def _clean(affinity: np.ndarray) -> np.ndarray:
    z = np.asarray(affinity, dtype=np.float64)
    return np.where(np.isnan(z), 0.0, z)


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _named(groups: list[list[int]], tasks: Sequence[str], z: np.ndarray, exact: bool, variant: Variant) -> Grouping:
    ordered = sorted({tuple(sorted(g)) for g in groups}, key=lambda g: g)
    return Grouping([[tasks[i] for i in g] for g in ordered], score_of(z, ordered), exact, variant)
