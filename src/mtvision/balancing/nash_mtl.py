"""Nash-MTL (Navon et al. 2022, "Multi-task learning as a bargaining game", ICML).

The update is the Nash bargaining solution among tasks, ``d = Σ_t α_t g_t`` with

    G Gᵀ α = 1 / α   (elementwise, α > 0),

so ``g_t·d = 1/α_t > 0`` for every task: each task improves, and a task with a small
gradient gets a large weight. The paper approximates the solution with a sequence of
cvxpy problems; here it is the α = 1 case of FairGrad's system, solved by damped Newton
on the strictly convex ``½ αᵀMα − Σ log α_t``, warm-started from the previous step's α
(state: ``start``). Like the official code we normalise the Gramian by its Frobenius norm
(so ``d`` scales with the gradients). Reusing weights for a few steps (the paper's
``update_weights_every``) and gradient-norm clipping are the trainer's business
(``last_weights``).
"""

from __future__ import annotations

from mtvision.balancing.base import register
from mtvision.balancing.fairgrad import FairGrad


@register("nash_mtl")
class NashMTL(FairGrad):
    """Nash bargaining weights: FairGrad with α = 1."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__(num_tasks, alpha=1.0)
