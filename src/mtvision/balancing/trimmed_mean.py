"""Coordinate-wise trimmed mean (Yin, Chen, Ramchandran & Bartlett 2018, "Byzantine-robust
distributed learning: towards optimal statistical rates", ICML; in TorchJD as ``TrimmedMean``).

Per coordinate, the ``b`` largest and ``b`` smallest task values are dropped and the rest
averaged:

    d_j = 1/(k − 2b) Σ_{t = b+1}^{k−b} g_(t)j,   g_(1)j ≤ … ≤ g_(k)j the sorted column j.

Robust to ``b`` arbitrarily wrong task gradients per coordinate. Scale as in the paper: a
mean, one task gradient's. With fewer than ``2b + 1`` tasks, ``b`` shrinks to ``(k − 1) // 2``
(two tasks: their mean). Elementwise, so not a combination of the task gradients
(``last_weights`` is None) and it needs ``G`` itself: parameter mode holds ``G`` (the stored
path). The sort runs on cache-sized column blocks: no ``[k, D]`` sorted copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import GradientBalancer, register

BLOCK = 1 << 14  # columns at a time: a [k, BLOCK] slab and its sorted copy stay in cache


@register("trimmed_mean")
class TrimmedMean(GradientBalancer):
    """Per-coordinate mean of the task gradients without the ``trim`` extremes on each side."""

    def __init__(self, num_tasks: int, *, trim: int = 1) -> None:
        super().__init__(num_tasks)
        if trim < 0:
            raise ValueError(f"trim must be ≥ 0, got {trim}")
        self.trim = trim

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        k = len(grads)
        b = min(self.trim, (k - 1) // 2)
        out = torch.empty_like(grads[0])
        for block, target in zip(grads.split(BLOCK, dim=1), out.split(BLOCK)):
            torch.mean(block.sort(dim=0).values[b:k - b], dim=0, out=target)
        self.last_weights = None
        return out
