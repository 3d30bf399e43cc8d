"""One model, many tasks: an architecture makes each task's pyramid, one head per task reads it.

The forward is split in two (:meth:`MultiTaskModel.features` and
:meth:`MultiTaskModel.heads`) because representation-level gradient balancing needs the
shared features as a tensor of their own; the plain :meth:`forward` chains them.

Example:
    >>> import torch
    >>> from mtvision.models import build_model
    >>> model = build_model("test_resnet.r160_in1k", tasks={})
    >>> model(torch.zeros(1, 3, 64, 64))
    {}
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from torch import Tensor, nn

from mtvision.models.architectures import Architecture
from mtvision.structures import Batch
from mtvision.tasks import Task

__all__ = ["MultiTaskModel"]


class MultiTaskModel(nn.Module):
    """``architecture`` (how tasks share) and ``tasks`` (one head each), in one forward pass."""

    def __init__(self, architecture: Architecture, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.architecture = architecture
        self.tasks = nn.ModuleDict(tasks)
        self.register_load_state_dict_pre_hook(_name_hard_sharing)

    def features(self, images: Tensor) -> list[Tensor]:
        """What every task shares (for hard sharing: the neck's pyramid, finest level first)."""
        return self.architecture.encode(images)

    def heads(self, features: list[Tensor], image_size: tuple[int, int],
              batch: Batch | None = None) -> Any:
        """Run every head; with a batch, also the losses of the tasks present in it.

        Returns ``{task: prediction}`` without a batch, and
        ``({task: prediction}, {task: {part: loss}})`` with one. A task with no labelled
        image in the batch has no prediction and no loss entry (partial labels). In training,
        a deep supervision loss is part ``"initial"`` of its task, added into its ``"loss"``
        (one task, one balancing weight); validation reports the final prediction's loss.
        """
        decoded = self.architecture.decode(features)
        if batch is None:
            return {name: task(decoded.pyramids[name], image_size) for name, task in self.tasks.items()}
        predictions, losses = {}, {}
        for name, task in self.tasks.items():
            present = batch.present.get(name)
            if present is None or not bool(present.any()):
                continue
            target = batch.targets[name]
            predictions[name], losses[name] = task.forward_train(decoded.pyramids[name], image_size, target, present)
            initial = (self.architecture.auxiliary_loss(name, decoded, image_size, target, present)
                       if self.training and "loss" in losses[name] else None)  # validation: the final loss
            if initial is not None:
                losses[name] = {**losses[name], "initial": initial, "loss": losses[name]["loss"] + initial}
        return predictions, losses

    def forward(self, images: Tensor, batch: Batch | None = None) -> Any:
        return self.heads(self.features(images), (int(images.shape[-2]), int(images.shape[-1])), batch)

    def own_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """The parameters only ``task`` trains: its head and its modules in the architecture."""
        return chain(self.tasks[task].parameters(), self.architecture.own_parameters(task))

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part, then ``shared`` vs each ``task/<name>`` (head included) and
        ``total``: what sharing saves, in numbers."""
        counts = dict(self.architecture.parameter_parts())
        counts.update({f"head/{name}": _count(task) for name, task in self.tasks.items()})
        own = {f"task/{name}": sum(p.numel() for p in self.own_parameters(name)) for name in self.tasks}
        counts["total"] = _count(self)
        counts["shared"] = counts["total"] - sum(own.values())
        return {**counts, **own}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _name_hard_sharing(module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
    """Checkpoints written before architectures existed held the hard-sharing trunk at the
    top (``backbone.*``, ``neck.*``); they load into ``architecture.*`` unchanged."""
    for key in [k for k in state if k.startswith((f"{prefix}backbone.", f"{prefix}neck."))]:
        state[f"{prefix}architecture.{key.removeprefix(prefix)}"] = state.pop(key)
