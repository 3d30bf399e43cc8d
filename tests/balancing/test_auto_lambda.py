"""Auto-Lambda's weight update against the derivative of the lookahead validation loss, written
out on two linear-regression tasks (Liu et al. 2022, Eq. 3)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mtvision.balancing import create

torch.set_num_threads(1)


def _lookahead_validation(theta: Tensor, lr: float, x_val: Tensor, y_val: Tensor):
    """``d ↦ ∂L_val(θ − lr·d)/∂d`` for ``L_val(θ) = mean (X_val θ − y_val)²``, plain SGD, by hand:
    ``−lr · (2/N) X_valᵀ (X_val θ' − y_val)``."""
    def gradient(d: Tensor) -> Tensor:
        ahead = theta - lr * d
        return -lr * 2 / len(x_val) * x_val.T @ (x_val @ ahead - y_val)
    return gradient


def test_the_task_that_agrees_with_validation_gains_weight_by_hand() -> None:
    # θ = 0; task a pulls θ to (1, 0), b to (0, 1): g_a = θ − (1, 0) = (−1, 0), g_b = (0, −1) (L = ½‖θ − t‖²).
    # λ = (1, 1): d = (−1, −1), SGD lr 0.5: θ' = (0.5, 0.5). Validation agrees with a: L_val = ½‖θ − (1, 0)‖²,
    # ∇L_val(θ') = (−0.5, 0.5), u = −lr ∇L_val(θ') = (0.25, −0.25); ∂L_val/∂λ = G u = (−0.25, +0.25).
    grads = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])
    m = create("auto_lambda", num_tasks=2, lr=0.01)
    m.lookahead_gradient = lambda d: -0.5 * ((torch.zeros(2) - 0.5 * d) - torch.tensor([1.0, 0.0]))
    out = m.aggregate(grads)
    # Adam's first step moves each weight by lr against the sign of its meta-gradient.
    torch.testing.assert_close(m.last_weights, torch.tensor([1.01, 0.99]))
    torch.testing.assert_close(m.exp_avg / (1 - 0.9), torch.tensor([-0.25, 0.25]))
    torch.testing.assert_close(out, m.last_weights @ grads)  # the real step uses the new weights


def test_the_meta_gradient_is_the_derivative_of_the_lookahead_validation_loss() -> None:
    """Two regression tasks on a shared linear model θ ∈ R³: the weights move along
    −∂/∂λ L_val(θ − lr Σ λ_i g_i), computed here by autograd through the closed form."""
    gen = torch.Generator().manual_seed(0)
    x, theta = torch.randn(8, 3, generator=gen), torch.randn(3, generator=gen)
    targets = torch.randn(2, 8, generator=gen)
    x_val, y_val = torch.randn(6, 3, generator=gen), torch.randn(6, generator=gen)
    grads = torch.stack([2 / len(x) * x.T @ (x @ theta - y) for y in targets])  # ∇ mean (xθ − y_i)²
    lr, weights = 0.1, torch.tensor([1.0, 1.0], requires_grad=True)
    ahead = theta - lr * weights @ grads
    (x_val @ ahead - y_val).pow(2).mean().backward()
    m = create("auto_lambda", num_tasks=2, lr=1e-3)
    m.lookahead_gradient = _lookahead_validation(theta, lr, x_val, y_val)
    m.aggregate(grads)
    meta = m.exp_avg / (1 - m.betas[0])
    torch.testing.assert_close(meta, weights.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m.last_weights, 1 - 1e-3 * weights.grad.sign(), rtol=0, atol=1e-6)


def test_without_a_validation_gradient_the_weights_stay_and_a_nan_one_is_ignored() -> None:
    grads = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    m = create("auto_lambda", num_tasks=2, init=0.5)
    torch.testing.assert_close(m.aggregate(grads), torch.tensor([0.5, 1.0]))
    m.lookahead_gradient = lambda d: torch.full_like(d, float("nan"))
    m.aggregate(grads)
    assert torch.equal(m.weights, torch.tensor([0.5, 0.5])) and torch.equal(m.steps, torch.zeros(2))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="betas"):
        create("auto_lambda", num_tasks=2, betas=(1.0, 0.999))
