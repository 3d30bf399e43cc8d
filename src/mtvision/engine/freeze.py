"""``model.freeze``: parts of the model that do not train, BatchNorm statistics included.

Freezing the trunk is the cheapest guard against forgetting when a task is added from data
that lacks the old tasks' labels: the old heads read exactly the features they were trained
on. A frozen part gets ``requires_grad=False`` (the optimizer and the balancing layer then
leave it out) and its BatchNorm layers are held in eval mode -- also after ``model.train()``
-- because a BatchNorm in training mode would keep moving its running statistics with the
new data's batches, which changes the frozen features as surely as a gradient step would.

Parts are named as in :mod:`mtvision.engine.parts` (``backbone``, ``backbone.layer1``,
``neck``, ``heads.<task>``, or a module path).

Example:
    >>> from mtvision.models import build_model
    >>> model = build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16)
    >>> frozen = freeze(model, ["backbone"])
    >>> model.train().architecture.backbone.body.bn1.training, model.architecture.neck.training
    (False, True)
"""

from __future__ import annotations

import types
from collections.abc import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mtvision.engine.parts import covers, resolve_parts

__all__ = ["freeze", "frozen_norms"]


def freeze(model: nn.Module, names: Iterable[str], key: str = "model.freeze") -> list[str]:
    """Freeze the parts ``names`` of ``model``; returns the frozen parameter names.

    An unknown part is an error listing the valid ones (naming ``key``, the config field).
    """
    paths = [path for group in resolve_parts(model, names, key).values() for path in group]
    if not paths:
        return []
    frozen = []
    for name, parameter in model.named_parameters():
        if any(covers(path, name) for path in paths):
            parameter.requires_grad_(False)
            frozen.append(name)
    for path, module in model.named_modules():
        if isinstance(module, _BatchNorm) and any(covers(p, path) for p in paths):
            _hold_eval(module)
    return frozen


def frozen_norms(model: nn.Module) -> list[str]:
    """Module paths of the BatchNorm layers :func:`freeze` holds in eval mode."""
    return [path for path, module in model.named_modules() if getattr(module, "_frozen_norm", False)]


def _hold_eval(module: nn.Module) -> None:
    """Eval mode now and after every ``train()`` call: running statistics stay those of the old data."""
    module.eval()
    module._frozen_norm = True
    module.train = types.MethodType(_stay_in_eval, module)


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)
