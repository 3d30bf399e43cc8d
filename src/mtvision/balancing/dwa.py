"""Dynamic weight average (DWA; Liu, Johns & Davison 2019, "End-to-end multi-task learning
with attention", CVPR, Eq. 7).

A task whose loss falls slowly gets more weight:

    w_t(e) = K · exp(r_t(e−1) / τ) / Σ_i exp(r_i(e−1) / τ),   r_t(e−1) = L̄_t(e−1) / L̄_t(e−2)

where ``L̄_t(e)`` is task t's mean loss over epoch ``e``, ``τ`` the temperature (2 in the
paper) and ``K`` the number of tasks (here: present tasks, so weights sum to ``k``).
``weigh`` accumulates the current epoch's losses; the trainer calls ``end_epoch()`` to
close an epoch (call it every step for a step-level DWA). A task with fewer than two
closed epochs has ``r_t = 1``, so the first two epochs are equal weighting, as in the paper.
Absent tasks neither accumulate nor advance their history.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("dwa", num_tasks=2)
    >>> for epoch_losses in ([1.0, 1.0], [0.5, 1.0]):
    ...     _ = m.weigh(torch.tensor(epoch_losses)); m.end_epoch()
    >>> m.weigh(torch.tensor([0.4, 0.9]))  # ratios 0.5 and 1.0
    tensor([0.8756, 1.1244])
"""

from __future__ import annotations

import torch
from torch import Tensor

from mtvision.balancing.base import LossBalancer, register


@register("dwa")
class DynamicWeightAverage(LossBalancer):
    """Softmax of the per-task loss ratios of the last two epochs, scaled to sum to ``k``."""

    def __init__(self, num_tasks: int, *, temperature: float = 2.0) -> None:
        super().__init__(num_tasks)
        self.temperature = temperature
        for name in ("epoch_sum", "epoch_count", "last", "before_last", "epochs_seen"):
            self.register_buffer(name, torch.zeros(num_tasks))

    def _weigh(self, losses: Tensor, idx: Tensor) -> Tensor:
        i = idx.to(losses.device)
        self.epoch_sum[i] += losses
        self.epoch_count[i] += 1
        ready = self.epochs_seen[i] >= 2
        ratio = torch.where(ready, self.last[i] / self.before_last[i].clamp_min(1e-12), torch.ones_like(losses))
        return len(losses) * (ratio / self.temperature).softmax(0)

    def end_epoch(self) -> None:
        seen = self.epoch_count > 0
        mean = self.epoch_sum / self.epoch_count.clamp_min(1)
        self.before_last = torch.where(seen, self.last, self.before_last)
        self.last = torch.where(seen, mean, self.last)
        self.epochs_seen += seen
        self.epoch_sum.zero_()
        self.epoch_count.zero_()
