"""DB-MTL — dual-balancing multi-task learning (Lin, Ye, Xu, Shi & Kwok 2023,
"Dual-balancing for multi-task learning", Alg. 1).

Two balances, one for each kind of imbalance:

* loss scale — each task descends ``log L_t``: its gradient is ``g_t / L_t``;
* gradient magnitude — an EMA of those gradients (per task),
  ``ĝ_t ← β_k ĝ_t + (1 − β_k) g_t / L_t`` with ``β_k = β / k^σ`` (``k`` the task's step
  count), is rescaled so every task has the largest EMA norm:

      d = Σ_t (max_i ‖ĝ_i‖ / ‖ĝ_t‖) ĝ_t.

Needs ``losses=``. The EMA starts at the first gradient (no zero-start bias). Because ``d``
mixes past gradients, it is not a combination of the current ones: ``last_weights`` is
None. State: the EMA ``Tensor[T, D]`` and per-task step counts (only present tasks update;
``d`` combines the present tasks). The EMA rows are updated in place, one row at a time,
and ``d`` is one matrix-vector product over the whole EMA (zero coefficients for absent
tasks): no ``[T, D]`` temporary. Parameter mode (the default, as in the paper) is the
meaningful one: in representation mode the rows are the current batch's per-image feature
gradients, so the EMA would average gradients of different images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtvision.balancing.base import GradientBalancer, register


@register("db_mtl")
class DBMTL(GradientBalancer):
    """Equal-magnitude sum of EMA'd log-loss gradients."""

    needs_losses = True

    def __init__(self, num_tasks: int, *, beta: float = 0.9, sigma: float = 0.5, eps: float = 1e-8) -> None:
        super().__init__(num_tasks)
        self.beta, self.sigma, self.eps = beta, sigma, eps
        self.register_buffer("ema", torch.zeros(num_tasks, 0))
        self.register_buffer("steps", torch.zeros(num_tasks))

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        assert losses is not None  # aggregate() enforces it (needs_losses)
        self._follow(grads.device)
        if self.ema.shape[1] == 0:
            self.ema = grads.new_zeros(self.num_tasks, grads.shape[1])
        if self.ema.shape[1] != grads.shape[1]:
            raise ValueError(f"DB-MTL was fed gradients of size {self.ema.shape[1]}, now {grads.shape[1]}")
        i = idx.to(grads.device)
        self.steps[i] += 1
        steps = self.steps[i]
        beta = torch.where(steps > 1, self.beta / steps**self.sigma, torch.zeros_like(steps))
        scales = (1 - beta) / (losses + self.eps)
        for row, task in enumerate(idx.tolist()):  # 0-dim factors stay on the device: no host sync
            self.ema[task].mul_(beta[row]).addcmul_(grads[row], scales[row])
        norms = torch.stack([torch.linalg.vector_norm(self.ema[task]) for task in idx.tolist()]).clamp_min(self.eps)
        coefficients = self.ema.new_zeros(self.num_tasks).index_put_((i,), norms.max() / norms)
        self.last_weights = None
        return torch.mv(self.ema.T, coefficients)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """The EMA's width is the gradient size, known only once seen: take the saved one's."""
        saved = state_dict.get(prefix + "ema")
        if saved is not None:
            self.ema = self.ema.new_zeros(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args)
