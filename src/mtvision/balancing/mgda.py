"""MGDA and MGDA-UB (Sener & Koltun 2018, "Multi-task learning as multi-objective
optimization", NeurIPS; after Désidéri 2012).

The update is the min-norm point of the convex hull of the task gradients,

    α* = argmin_{α ∈ Δ} ‖Σ_t α_t g_t‖²,   d = Σ_t α*_t g_t,

a common descent direction: ``d·g_t ≥ ‖d‖² ≥ 0`` for every task (Pareto-stationary when
``d = 0``). Scale as in the paper: ``α`` sums to 1 (a convex combination, ~1/T of EW's).
For two tasks ``α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1)``. The paper solves the
problem by Frank–Wolfe; we solve the same problem exactly by non-negative least squares
on the Gramian (see :func:`~mtvision.balancing._solvers.min_norm_weights`).

``normalize`` rescales each gradient before solving, as in the paper's code:
``"l2"`` by ``‖g_t‖``, ``"loss"`` by ``L_t``, ``"loss+"`` by ``L_t ‖g_t‖`` (the last two need
``losses=``). The update is then the min-norm point of the *rescaled* gradients, so it
keeps the non-conflict guarantee; ``last_weights`` are the weights on the raw gradients.

MGDA-UB (``"mgda_ub"``) is the same solver applied to the gradients w.r.t. the shared
representation (the paper's upper bound, Thm. 1): one backward through the encoder instead
of T. It differs only by ``gradients_of = "representation"``, which tells the backward
engine which gradients to compute.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from mtvision.balancing._solvers import TINY, Array, min_norm_weights
from mtvision.balancing.base import GramianBalancer, register

Normalization = Literal["none", "l2", "loss", "loss+"]


@register("mgda")
class MGDA(GramianBalancer):
    """Min-norm convex combination of the (optionally rescaled) task gradients."""

    def __init__(self, num_tasks: int, *, normalize: Normalization = "none") -> None:
        super().__init__(num_tasks)
        if normalize not in ("none", "l2", "loss", "loss+"):
            raise ValueError(f"normalize must be 'none', 'l2', 'loss' or 'loss+', got {normalize!r}")
        self.normalize = normalize
        self.needs_losses = normalize in ("loss", "loss+")

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        scale = self._scales(gramian, losses)
        alpha = min_norm_weights(gramian / np.outer(scale, scale))
        return alpha / scale

    def _scales(self, gramian: Array, losses: Array | None) -> Array:
        """Per-task divisor ``ν_t`` of the gradients (1, ``‖g_t‖``, ``L_t`` or ``L_t ‖g_t‖``)."""
        norms = np.sqrt(np.clip(np.diag(gramian), 0.0, None))
        if self.normalize == "none":
            return np.ones_like(norms)
        if self.normalize == "l2":
            return np.clip(norms, TINY, None)
        assert losses is not None  # aggregate() enforces losses= when needs_losses
        return np.clip(losses * (norms if self.normalize == "loss+" else 1.0), TINY, None)


@register("mgda_ub")
class MGDAUB(MGDA):
    """MGDA on the shared representation's gradients (MGDA-UB)."""

    gradients_of = "representation"
