"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer 2017, "Machine learning with
adversaries: Byzantine tolerant gradient descent", NeurIPS; in TorchJD as ``Krum``).

A robust aggregator: with at most ``f`` adversarial rows among ``k``, each gradient is scored
by its squared distances to its ``k − f − 2`` nearest others,

    s_i = Σ_{j ∈ N_i} ‖g_i − g_j‖²,   ‖g_i − g_j‖² = M_ii + M_jj − 2 M_ij,

and the update is the mean of the ``m`` lowest-scored gradients (``m = 1``: Krum itself),
so one far-off task gradient (a broken label source) cannot drag the update. All from the
Gramian. Scale as in the paper: one task gradient's, not EW's sum. With fewer than
``f + 3`` tasks ``N_i`` keeps at least one neighbour, and gradients tied for the lowest
score share the weight (two tasks: their mean), so the update never depends on task order.
TorchJD sums the distances themselves, the paper their squares; we follow the paper.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import Array
from mtvision.balancing.base import GramianBalancer, register

TIE_RTOL = 1e-9  # scores this close (relative) to the lowest count as tied with it


@register("krum")
class Krum(GramianBalancer):
    """Mean of the ``n_selected`` gradients closest to their neighbours."""

    def __init__(self, num_tasks: int, *, n_byzantine: int = 0, n_selected: int = 1) -> None:
        super().__init__(num_tasks)
        if n_byzantine < 0 or n_selected < 1:
            raise ValueError(f"n_byzantine must be ≥ 0 and n_selected ≥ 1, got {n_byzantine}, {n_selected}")
        self.n_byzantine, self.n_selected = n_byzantine, n_selected

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        k = len(gramian)
        m = (gramian + gramian.T) / 2
        squared = np.clip(np.diag(m)[:, None] + np.diag(m)[None, :] - 2 * m, 0.0, None)
        np.fill_diagonal(squared, np.inf)
        neighbours = min(max(k - self.n_byzantine - 2, 1), k - 1)
        scores = np.sort(squared, axis=1)[:, :neighbours].sum(axis=1) if k > 1 else np.zeros(1)
        order = np.argsort(scores, kind="stable")
        cut = scores[order[min(self.n_selected, k) - 1]]
        chosen = scores <= cut + TIE_RTOL * max(abs(cut), 1e-300)
        return chosen / chosen.sum()
