"""Inputs and one training-step driver shared by the balancing tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from mtvision.balancing import Balancer

Inputs = tuple[Tensor, Tensor]  # (losses[T], grads[T, D])


def make_inputs(num_tasks: int, seed: int, dim: int = 50) -> Inputs:
    """Positive losses of different scales and Gaussian gradients of different norms."""
    gen = torch.Generator().manual_seed(seed)
    losses = torch.rand(num_tasks, generator=gen) * 3 + 0.1
    scales = torch.rand(num_tasks, 1, generator=gen) * 4 + 0.25
    return losses, torch.randn(num_tasks, dim, generator=gen) * scales


def make_conflicting(num_tasks: int, seed: int, dim: int = 50, spread: float = 1.0) -> Tensor:
    """Full-rank gradients that pull both ways along one axis (the sum conflicts with a task),
    their norms then scaled over ``[1/spread, spread]`` (tasks of very different loss scales)."""
    gen = torch.Generator().manual_seed(seed)
    axis = torch.randn(dim, generator=gen)
    signs = torch.tensor([(-1.0) ** t for t in range(num_tasks)])
    magnitudes = torch.rand(num_tasks, generator=gen) * 4 + 0.5
    grads = (signs * magnitudes)[:, None] * axis + 0.3 * torch.randn(num_tasks, dim, generator=gen)
    assert ((grads @ grads.sum(0)) < 0).any() or num_tasks == 1
    scales = torch.logspace(-1, 1, num_tasks)[torch.randperm(num_tasks, generator=gen)] ** math.log10(spread)
    return grads * scales[:, None]


def step(method: Balancer, inputs: Inputs, tasks: Tensor | None = None) -> Tensor:
    """One training step as the trainer drives it: weigh (plus an SGD step on learnable
    weights and FAMO's post-step update) or aggregate, then close the "epoch"."""
    losses, grads = inputs
    if method.kind == "loss":
        params = list(method.parameters())
        for p in params:
            p.grad = None
        weights = method.weigh(losses, tasks)
        if params:
            ((weights * losses).sum() + method.regularizer(tasks)).backward()
            with torch.no_grad():
                for p in params:
                    p -= 0.1 * p.grad
        out = weights.detach()
        method.update(losses * 0.8, tasks)
    else:
        if getattr(method, "needs_lookahead", False):  # what the trainer hands Auto-Lambda for one step
            method.lookahead_gradient = quadratic_validation(grads.shape[1], grads.device)
        out = method.aggregate(grads, tasks, losses=losses)
        method.lookahead_gradient = None
    method.end_epoch()
    return out


def quadratic_validation(dim: int, device: torch.device, lr: float = 0.1) -> Callable[[Tensor], Tensor]:
    """``d ↦ ∂L_val(θ − lr·d)/∂d`` for ``L_val(θ) = ½‖θ − θ*‖²`` with a fixed ``θ − θ*``:
    a validation gradient of tensors only, the same whatever the task order."""
    offset = torch.randn(dim, generator=torch.Generator().manual_seed(99)).to(device)
    return lambda d: -lr * (offset - lr * d)


@pytest.fixture(name="make_inputs")
def make_inputs_fixture() -> Callable[..., Inputs]:
    return make_inputs


@pytest.fixture(name="make_conflicting")
def make_conflicting_fixture() -> Callable[..., Tensor]:
    return make_conflicting


@pytest.fixture(name="step")
def step_fixture() -> Callable[..., Tensor]:
    return step


@pytest.fixture(name="break_batched_grad")
def break_batched_grad_fixture(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make ``torch.autograd.grad`` refuse ``is_grads_batched=True``, as it does for
    an operator without a batching rule; plain calls still work."""
    grad = torch.autograd.grad

    def no_batching_rule(*args, is_grads_batched: bool = False, **kwargs):
        if is_grads_batched:
            raise RuntimeError("Batching rule not implemented for aten::something")
        return grad(*args, **kwargs)

    return lambda: monkeypatch.setattr(torch.autograd, "grad", no_batching_rule)
