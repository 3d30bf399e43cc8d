"""The optimizer's next step, computed without taking it: the lookahead of TAG.

Task affinity (Fifty et al., NeurIPS 2021, eq. 3) asks how task ``j``'s loss would change if
the shared parameters took one step on task ``i``'s gradient *with the optimizer's own
rule*. :func:`lookahead` returns those parameters as new tensors: it reads the optimizer's
state (momentum buffers, Adam's moments and step count, the scheduled learning rate) and
writes nothing back, so the real training run is unchanged by the question.

Adam / AdamW: the moments are advanced by ``g_i`` exactly as ``step()`` would
(``m' = β₁m + (1-β₁)g``, ``v' = β₂v + (1-β₂)g²``, step ``t+1`` for the bias corrections,
AdamW's decoupled decay ``θ(1 - lr·wd)``), used once and dropped; a parameter without state
yet (the first step) starts from zero moments, as ``step()`` does. SGD: the momentum buffer
likewise (``g`` itself on the first step), dampening, Nesterov and L2 decay included.
Written for this module rather than taken from ``balancing/``: no lookahead mechanism
(Auto-Lambda's) existed there when it was written.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> opt = torch.optim.SGD([w], lr=0.5)
    >>> [t.tolist() for t in lookahead(opt, [w], [torch.tensor([1.0, -1.0])])], w.tolist()
    ([[0.5, 2.5]], [1.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import SGD, Adam, AdamW, Optimizer

__all__ = ["lookahead"]


def lookahead(optimizer: Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """The values ``params`` would take after ``optimizer.step()`` with ``grads`` as their
    gradients; the optimizer, its state and the parameters are left as they were.

    Every parameter must belong to one of ``optimizer``'s groups (SGD, Adam or AdamW).
    """
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    missing = [i for i, p in enumerate(params) if id(p) not in groups]
    if missing:
        raise ValueError(f"parameters {missing[:5]} are not in the optimizer's groups: the lookahead needs "
                         "the optimizer that trains them")
    rule = _RULES.get(type(optimizer))
    if rule is None:
        raise TypeError(f"no lookahead rule for {type(optimizer).__name__}; supported: "
                        f"{', '.join(t.__name__ for t in _RULES)}")
    with torch.no_grad():
        return [rule(p.detach(), g.to(p.dtype), groups[id(p)], optimizer.state.get(p, {}))
                for p, g in zip(params, grads)]


def _sgd(p: Tensor, g: Tensor, group: dict[str, Any], state: dict[str, Any]) -> Tensor:
    """``torch.optim.SGD``'s update of one parameter, momentum buffer not written back."""
    g = -g if group.get("maximize") else g
    if group["weight_decay"]:
        g = g + group["weight_decay"] * p
    momentum = group["momentum"]
    if momentum:
        buffer = state.get("momentum_buffer")
        buffer = g if buffer is None else momentum * buffer + (1 - group["dampening"]) * g
        g = g + momentum * buffer if group["nesterov"] else buffer
    return p - float(group["lr"]) * g


def _adam(p: Tensor, g: Tensor, group: dict[str, Any], state: dict[str, Any], decoupled: bool) -> Tensor:
    """Adam's (``decoupled``: AdamW's) update of one parameter from its current moments."""
    g = -g if group.get("maximize") else g
    lr, wd, (beta1, beta2), eps = float(group["lr"]), group["weight_decay"], group["betas"], group["eps"]
    if wd and not decoupled:
        g = g + wd * p
    if wd and decoupled:
        p = p * (1 - lr * wd)
    step = float(state["step"]) + 1 if "step" in state else 1.0
    m = beta1 * state["exp_avg"] + (1 - beta1) * g if "exp_avg" in state else (1 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g if "exp_avg_sq" in state else (1 - beta2) * g * g
    if group.get("amsgrad"):
        v = torch.maximum(state["max_exp_avg_sq"], v) if "max_exp_avg_sq" in state else v
    denom = (v.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    return p - (lr / (1 - beta1**step)) * m / denom


_RULES = {SGD: _sgd, Adam: lambda p, g, group, state: _adam(p, g, group, state, decoupled=False),
          AdamW: lambda p, g, group, state: _adam(p, g, group, state, decoupled=True)}
