"""Random loss weighting (RLW; Lin et al. 2022, "Reasonable effectiveness of random
weighting", TMLR).

Each step draws ``λ̃ ~ N(0, I)`` and weighs the losses by ``λ = softmax(λ̃)``. We multiply by
the number of present tasks ``k`` so that ``E[w_t] = 1`` matches equal weighting's sum
scale (the paper's weights sum to 1). Randomness comes from torch's global generator on
the losses' device: seed it for reproducible runs.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> round(float(create("rlw", num_tasks=3).weigh(torch.ones(3)).sum()), 4)
    3.0
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("rlw")
class RandomLossWeighting(LossBalancer):
    """``w = k · softmax(z)``, ``z ~ N(0, I_k)`` drawn afresh at every call."""

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return len(losses) * torch.randn_like(losses).softmax(0)
