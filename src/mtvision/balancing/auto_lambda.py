"""Auto-Lambda — task weights meta-learned on a lookahead validation loss (Liu, Johns & Davison,
"Auto-Lambda: Disentangling Dynamic Task Relationships", TMLR 2022, Eq. 2–3).

The weights ``λ`` are trained so that one training step taken with them lowers the loss on
*validation* data::

    θ'(λ) = θ − α ∇_θ Σ_i λ_i L_i(θ)                      (the lookahead, one step)
    λ    ← λ − β ∇_λ L_val(θ'(λ))                          (meta step, then the real step with the new λ)

With the per-task gradients ``g_i = ∇_θ L_i`` on the shared parameters and the step direction
``d = Σ_i λ_i g_i = λᵀG``, the chain rule gives the meta-gradient exactly as ``k`` dot products::

    ∂L_val(θ'(d)) / ∂λ_i = ⟨u, g_i⟩,   u = ∂L_val(θ'(d)) / ∂d    (= −α ∇L_val(θ') under plain SGD)

which the paper estimates by finite differences of the training losses along ``∇L_val(θ')``.
So a task whose gradient points where the validation loss falls gains weight, one that pulls
against it loses weight. ``β`` is the paper's meta-optimiser, Adam (``lr``, ``betas``, ``eps``).

**What the method sees: tensors.** It declares ``needs_lookahead``; for each step the trainer
sets :attr:`lookahead_gradient`, a function ``d ↦ u`` (``engine/lookahead.py``'s
``ValidationLookahead``: the optimizer's own step along ``-d`` taken functionally, the summed
task losses of the next validation batch there, one backward to ``d``). The method calls it
once with ``λᵀG``, takes the Adam step on ``λ`` from ``G u``, and returns ``λᵀG`` with the new
weights: the paper's order. Without it (``aggregate`` called by hand) ``λ`` stays where it is.
It needs ``G`` itself (for ``G u``), so parameter mode holds ``G`` (the stored path).

**Scale.** ``λ`` starts at ``init = 1``: equal weighting, the sum scale. The paper starts at 0.1
with meta learning rate 1e-4; 1 with 1e-3 is the same relative step. As in the paper the
weights are neither normalised nor clipped. Partial labels: only the present tasks' ``λ`` and
Adam moments move, each with its own step count for the bias corrections.

Example:
    >>> import torch
    >>> from mtvision.balancing import create
    >>> m = create("auto_lambda", num_tasks=2, lr=0.1)
    >>> m.lookahead_gradient = lambda d: torch.tensor([-1.0, 1.0])  # validation loss: falls along x, rises along y
    >>> m.aggregate(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([1.1000, 0.9000])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from mtvision.balancing.base import GradientBalancer, register


@register("auto_lambda")
class AutoLambda(GradientBalancer):
    """``d = λᵀG`` with ``λ`` moved each step by Adam on ``∂L_val(θ'(λᵀG))/∂λ = G u``."""

    #: the trainer must set ``lookahead_gradient`` before each step (engine/step.py).
    needs_lookahead: ClassVar[bool] = True

    def __init__(self, num_tasks: int, *, lr: float = 1e-3, init: float = 1.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(num_tasks)
        if lr < 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"auto_lambda needs lr >= 0 and betas in [0, 1), got lr={lr}, betas={betas}")
        self.lr, self.betas, self.eps = lr, (float(betas[0]), float(betas[1])), eps
        self.register_buffer("weights", torch.full((num_tasks,), float(init)))
        self.register_buffer("exp_avg", torch.zeros(num_tasks))
        self.register_buffer("exp_avg_sq", torch.zeros(num_tasks))
        self.register_buffer("steps", torch.zeros(num_tasks))
        #: ``d ↦ ∂L_val(θ'(d))/∂d`` for this step, set by the trainer; never saved, never the model itself.
        self.lookahead_gradient: Callable[[Tensor], Tensor] | None = None

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        self._follow(grads.device)
        i = idx.to(grads.device)
        if self.lookahead_gradient is not None:
            u = self.lookahead_gradient(self.weights[i].to(grads) @ grads).to(grads)
            if bool(torch.isfinite(u).all()):  # a non-finite validation loss teaches nothing: λ stays
                self._meta_step(grads @ u, i)
        weights = self.weights[i].to(grads)
        self._record(weights, idx)
        return weights @ grads

    def _meta_step(self, gradient: Tensor, i: Tensor) -> None:
        """One Adam step on the present tasks' ``λ`` (``torch.optim.Adam``'s update, per task)."""
        beta1, beta2 = self.betas
        gradient = gradient.to(self.weights.dtype)
        self.steps[i] += 1
        self.exp_avg[i] = beta1 * self.exp_avg[i] + (1 - beta1) * gradient
        self.exp_avg_sq[i] = beta2 * self.exp_avg_sq[i] + (1 - beta2) * gradient * gradient
        steps = self.steps[i]
        denom = (self.exp_avg_sq[i] / (1 - beta2**steps)).sqrt() + self.eps
        self.weights[i] -= self.lr * self.exp_avg[i] / (1 - beta1**steps) / denom
