"""IMTL — impartial multi-task learning, the hybrid of IMTL-L and IMTL-G (Liu et al. 2021,
"Towards impartial multi-task learning", ICLR, Sec. 3.3; LibMTL's ``IMTL``).

IMTL-L scales each loss by ``e^{s_t}`` (``s`` driven to ``e^{s_t} L_t = 1``, see
:mod:`~mtvision.balancing.imtl_l`); IMTL-G (:mod:`~mtvision.balancing.imtl_g`) then finds the
affine combination of the *scaled* gradients ``ĝ_t = e^{s_t} g_t`` with equal projections on
every unit gradient:

    α = IMTL-G(Ŝ M Ŝ),  Ŝ = diag(e^s),   d = Σ_t α_t e^{s_t} g_t,   Σ_t α_t = 1,

so the weights on the raw gradients are ``w_t = α_t e^{s_t}``. The paper and LibMTL train
``s`` with the model's optimiser on ``Σ e^{s_t} L_t − s_t``; to stay a function of tensors,
``s`` here is a buffer that takes one SGD step of rate ``lr`` per call after the weights are
computed: ``s_t ← s_t − lr (e^{s_t} L_t − 1)`` (needs ``losses=``; absent tasks keep theirs).
A Gramian method: parameter mode may stream ``G Gᵀ``. Scale as IMTL-G's (``Σ α = 1``) times
the loss scales.
"""

from __future__ import annotations

import numpy as np
import torch

from mtvision.balancing._solvers import Array, to_numpy
from mtvision.balancing.base import register
from mtvision.balancing.imtl_g import IMTLG


@register("imtl")
class IMTL(IMTLG):
    """IMTL-G on the gradients of the IMTL-L-scaled losses."""

    needs_losses = True

    def __init__(self, num_tasks: int, *, lr: float = 0.01) -> None:
        super().__init__(num_tasks)
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.lr = lr
        self.register_buffer("log_scales", torch.zeros(num_tasks, dtype=torch.float64))

    def _weights(self, gramian: Array, idx: torch.Tensor, losses: Array | None) -> Array:
        assert losses is not None  # aggregate() enforces it (needs_losses)
        i = idx.to(self.log_scales.device)
        s = to_numpy(self.log_scales[i])
        scales = np.exp(s)
        alpha = super()._weights(gramian * np.outer(scales, scales), idx, None)
        self.log_scales[i] = torch.from_numpy(s - self.lr * (scales * losses - 1.0)).to(self.log_scales)
        return alpha * scales
