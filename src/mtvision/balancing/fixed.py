"""Fixed, user-given task weights: ``L = Σ_t w_t L_t``.

The hand-tuned baseline (a grid search over weights is what most applied multi-task work
does, cf. Kendall et al. 2018, Fig. 1). The default is all ones, i.e. equal weighting.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> create("fixed", num_tasks=2, weights=[1.0, 0.1]).weigh(torch.tensor([3.0, 4.0]))
    tensor([1.0000, 0.1000])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("fixed")
class FixedWeighting(LossBalancer):
    """``w_t`` given per task index (rows of a partial batch get the weight of their task)."""

    def __init__(self, num_tasks: int, *, weights: Sequence[float] | None = None) -> None:
        super().__init__(num_tasks)
        values = torch.ones(num_tasks) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if values.shape != (num_tasks,):
            raise ValueError(f"weights must have one value per task ({num_tasks}), got {list(values.shape)}")
        self.register_buffer("weights", values, persistent=False)

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        return self.weights[idx.to(losses.device)].to(losses.dtype)
