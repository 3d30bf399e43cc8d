"""The optimizer's next step, computed without taking it: one lookahead for TAG and Auto-Lambda.

Two questions need the parameters one step ahead, ``θ' = θ − Δ(g)`` with ``Δ`` the
optimizer's own update for a gradient ``g``:

* **task affinity** (TAG, Fifty et al. 2021, :mod:`mtvision.analysis.affinity`): how task
  ``j``'s loss changes after a step on task ``i``'s gradient alone;
* **Auto-Lambda** (Liu et al. 2022, :mod:`mtvision.balancing.auto_lambda`): how the
  validation loss at ``θ'(d)``, ``d = Σ_i λ_i g_i``, changes with the task weights ``λ``.

:func:`lookahead` returns ``θ'`` as new tensors: it reads the optimizer's state (momentum
buffers, Adam's moments and step count, the scheduled learning rate) and writes nothing back,
so the real run is unchanged by the question. It is differentiable in ``g`` (the state and
``θ`` are constants), which is how :class:`ValidationLookahead` gets ``∂L_val(θ'(d))/∂d``
through the optimizer's own rule by one backward.

Adam / AdamW: the moments are advanced by ``g`` exactly as ``step()`` would
(``m' = β₁m + (1-β₁)g``, ``v' = β₂v + (1-β₂)g²``, step ``t+1`` for the bias corrections,
AdamW's decoupled decay ``θ(1 - lr·wd)``), used once and dropped; a parameter without state
yet (the first step) starts from zero moments, as ``step()`` does. SGD: the momentum buffer
likewise (``g`` itself on the first step), dampening, Nesterov and L2 decay included.
:func:`plain_step` is the rule-free ``θ − lr·g`` (the group's scheduled ``lr``), for questions
about the gradient alone.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> opt = torch.optim.SGD([w], lr=0.5)
    >>> [t.tolist() for t in lookahead(opt, [w], [torch.tensor([1.0, -1.0])])], w.tolist()
    ([[0.5, 2.5]], [1.0, 2.0])
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.optim import SGD, Adam, AdamW, Optimizer

from mtvision.engine.distributed import all_reduce_sum
from mtvision.engine.step import autocast
from mtvision.structures import Batch

__all__ = ["PROBE_SEED", "CyclingBatches", "ValidationLookahead", "clip_factor", "forked_rng", "functional_losses",
           "lookahead", "plain_step"]

PROBE_SEED = 20211206  # a lookahead's before and after forwards draw the same random numbers (TAG's first day)
_TINY = 1e-30  # Adam's √v' is taken of max(v', tiny): √ has no derivative at 0, and the value moves < 1e-15


def lookahead(optimizer: Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """The values ``params`` would take after ``optimizer.step()`` with ``grads`` as their
    gradients; the optimizer, its state and the parameters are left as they were.

    Every parameter must belong to one of ``optimizer``'s groups (SGD, Adam or AdamW). The
    result carries autograd history to ``grads`` when they require grad, to nothing else.
    """
    groups = _groups(optimizer, params)
    rule = _RULES.get(type(optimizer))
    if rule is None:
        raise TypeError(f"no lookahead rule for {type(optimizer).__name__}; supported: "
                        f"{', '.join(t.__name__ for t in _RULES)}")
    return [rule(p.detach(), g.to(p.dtype), group, optimizer.state.get(p, {})) for p, g, group in
            zip(params, grads, groups)]


def plain_step(optimizer: Optimizer, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
    """``θ − lr·g`` with each parameter's scheduled ``lr``: no momentum, moments or decay."""
    return [p.detach() - float(group["lr"]) * g.to(p.dtype) for p, g, group in
            zip(params, grads, _groups(optimizer, params))]


def clip_factor(norm: float, max_norm: float | None) -> float:
    """The factor ``clip_grad_norm_`` applies to a gradient of norm ``norm`` (1 when it fits)."""
    return 1.0 if max_norm is None or norm <= max_norm else max_norm / (norm + 1e-6)


def functional_losses(net: nn.Module, batch: Batch, params: Mapping[str, Tensor] | None = None,
                      amp_dtype: torch.dtype | None = None, grad: bool = False) -> dict[str, Tensor]:
    """Every present task's loss with ``params`` (name -> tensor) in place of the model's own,
    in training mode on copies of the buffers (BatchNorm's running statistics stay as they
    were), with the random draws of :data:`PROBE_SEED` (detection's RoI sampling is the same
    before and after a step). Call it under :func:`forked_rng` to leave the run's RNG alone."""
    torch.manual_seed(PROBE_SEED)
    overrides: dict[str, Tensor] = {name: b.clone() for name, b in net.named_buffers()}
    overrides.update(params or {})
    context = contextlib.nullcontext() if grad else torch.no_grad()
    with context, autocast(batch.images.device, amp_dtype):
        _, parts = functional_call(net, overrides, (batch.images, batch), strict=False)
    return {name: parts[name]["loss"].float() for name in net.tasks if name in parts}


@contextlib.contextmanager
def forked_rng(device: torch.device) -> Iterator[None]:
    """Random draws inside leave the training run's generators (CPU, and ``device``'s) where they were."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


class CyclingBatches:
    """The next validation batch, round and round the loader: Auto-Lambda's validation draws.

    Each draw runs under :func:`forked_rng` (starting a pass over a ``DataLoader`` draws its
    base seed from torch's global generator), so the training shuffle and augmentations are
    those of the same run without Auto-Lambda. ``drawn`` counts the draws; it goes into the
    checkpoint, and a resumed run skips to the same place in the loader's pass.
    """

    def __init__(self, loader: Iterable[Batch], device: torch.device) -> None:
        self.loader, self.device = loader, device
        self._batches: Iterator[Batch] | None = None
        self.drawn = 0
        self._skip = 0  # batches of the current pass a resume has already used

    def __call__(self) -> Batch:
        with forked_rng(self.device):
            for _ in range(2):  # at most one restart: an empty pass after a restart means an empty loader
                if self._batches is None:
                    self._batches = itertools.islice(iter(self.loader), self._skip, None)
                    self._skip = 0
                batch = next(self._batches, None)
                if batch is not None:
                    self.drawn += 1
                    return batch.to(self.device, non_blocking=True)
                self._batches = None
        raise ValueError("Auto-Lambda draws validation batches, and the validation split is empty on this rank: "
                         "give data.synthetic.num_val (or the val split) at least one image per process")

    def resume_at(self, drawn: int) -> None:
        """Continue after ``drawn`` draws of an earlier run (the loader's passes are in a fixed order)."""
        self.drawn, self._batches = drawn, None
        self._skip = drawn % max(len(self.loader), 1)  # type: ignore[arg-type]


class ValidationLookahead:
    """``d ↦ ∂L_val(θ'(d))/∂d``: the gradient of the validation loss at the shared parameters
    one optimizer step along ``-d`` ahead, with respect to the step direction ``d``.

    ``θ'(d)`` is :func:`lookahead` of the shared parameters (heads at their current values),
    ``d`` clipped as the run's ``grad_clip`` would clip it alone (the factor is a constant);
    ``L_val`` is the sum of the present tasks' losses on the next validation batch, in
    training mode as the step's own forward, the BatchNorm statistics untouched. One forward
    and one backward; averaged over the DDP ranks (each draws its own shard's batch), so every
    rank's Auto-Lambda weights stay equal. Under plain SGD it is ``-lr · ∇L_val(θ')``; under
    Adam the moments' preconditioning is differentiated through, as ``step()`` would apply it.
    """

    def __init__(self, net: nn.Module, shared: Sequence[Tensor], optimizer: Optimizer,
                 batches: CyclingBatches, amp_dtype: torch.dtype | None = None, grad_clip: float | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        by_id = {id(p): name for name, p in net.named_parameters()}
        self.net, self.shared, self.names = net, list(shared), [by_id[id(p)] for p in shared]
        self.optimizer, self.batches, self.amp_dtype, self.grad_clip = optimizer, batches, amp_dtype, grad_clip
        self.scaler = scaler

    def __call__(self, d: Tensor) -> Tensor:
        sizes = [p.numel() for p in self.shared]
        if d.ndim != 1 or d.numel() != sum(sizes):
            raise ValueError(f"the lookahead takes a step over the {sum(sizes)} shared parameters, got shape "
                             f"{tuple(d.shape)}: Auto-Lambda needs balancing.gradients=parameters")
        batch = self.batches()
        scale = float(self.scaler.get_scale()) if self.scaler is not None and self.scaler.is_enabled() else 1.0
        with forked_rng(batch.images.device), torch.enable_grad():
            step = d.detach().to(self.shared[0].dtype).requires_grad_(True)
            factor = clip_factor(float(step.detach().norm()), self.grad_clip)
            grads = [g.view_as(p) * factor for g, p in zip(step.split(sizes), self.shared)]
            ahead = dict(zip(self.names, lookahead(self.optimizer, self.shared, grads)))
            losses = functional_losses(self.net, batch, ahead, self.amp_dtype, grad=True)
            total = torch.stack(list(losses.values())).sum() if losses else step.sum() * 0
            (gradient,) = torch.autograd.grad(total * scale, step, allow_unused=True)
        gradient = torch.zeros_like(step) if gradient is None else gradient / scale
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        return (all_reduce_sum(gradient.detach()) / world).to(d)


def _groups(optimizer: Optimizer, params: Sequence[Tensor]) -> list[dict[str, Any]]:
    """Each parameter's group; an error naming the ones the optimizer does not train."""
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    missing = [i for i, p in enumerate(params) if id(p) not in groups]
    if missing:
        raise ValueError(f"parameters {missing[:5]} are not in the optimizer's groups: the lookahead needs "
                         "the optimizer that trains them")
    return [groups[id(p)] for p in params]


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
    denom = v.clamp_min(_TINY).sqrt() / (1 - beta2**step) ** 0.5 + eps
    return p - (lr / (1 - beta1**step)) * m / denom


_RULES = {SGD: _sgd, Adam: lambda p, g, group, state: _adam(p, g, group, state, decoupled=False),
          AdamW: lambda p, g, group, state: _adam(p, g, group, state, decoupled=True)}
