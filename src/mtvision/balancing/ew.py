"""Equal weighting (EW): every task loss has weight 1.

``L = Σ_t L_t`` — the *sum*, not the mean, so the update is the sum of the task gradients
(the library's scale convention, see :mod:`mtvision.balancing.base`). It is the baseline
every multi-task paper compares against (e.g. Xin et al. 2022, "Do current multi-task
optimization methods in deep learning even help?").

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> create("ew", num_tasks=3).weigh(torch.tensor([0.5, 2.0, 1.0]))
    tensor([1., 1., 1.])
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("ew")
class EqualWeighting(LossBalancer):
    """``w_t = 1``."""

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return torch.ones_like(losses)
