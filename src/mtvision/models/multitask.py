"""One model, many tasks: backbone -> neck -> one head per task, one forward pass.

The forward is split in two (:meth:`MultiTaskModel.features` and
:meth:`MultiTaskModel.heads`) because representation-level gradient balancing needs the
shared features as a tensor of their own; the plain :meth:`forward` chains them.

Example:
    >>> import torch
    >>> from mtvision.models import build_model
    >>> model = build_model("test_resnet.r160_in1k", tasks={})  # doctest: +SKIP
    >>> model(torch.zeros(1, 3, 64, 64))  # doctest: +SKIP
    {}
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mtvision.structures import Batch
from mtvision.tasks import Task


class MultiTaskModel(nn.Module):
    """Hard parameter sharing: every task head reads the same feature pyramid."""

    def __init__(self, backbone: nn.Module, neck: nn.Module, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.tasks = nn.ModuleDict(tasks)

    def features(self, images: Tensor) -> list[Tensor]:
        """The shared representation: the neck's feature pyramid, finest level first."""
        return self.neck(self.backbone(images))

    def heads(self, features: list[Tensor], image_size: tuple[int, int],
              batch: Batch | None = None) -> Any:
        """Run every head; with a batch, also the losses of the tasks present in it.

        Returns ``{task: prediction}`` without a batch, and
        ``({task: prediction}, {task: {part: loss}})`` with one. A task with no labelled
        image in the batch has no prediction and no loss entry (partial labels).
        """
        if batch is None:
            return {name: task(features, image_size) for name, task in self.tasks.items()}
        predictions, losses = {}, {}
        for name, task in self.tasks.items():
            present = batch.present.get(name)
            if present is None or not bool(present.any()):
                continue
            predictions[name], losses[name] = task.forward_train(features, image_size, batch.targets[name], present)
        return predictions, losses

    def forward(self, images: Tensor, batch: Batch | None = None) -> Any:
        return self.heads(self.features(images), (int(images.shape[-2]), int(images.shape[-1])), batch)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part (backbone, neck, each head): what sharing saves, in numbers."""
        counts = {"backbone": _count(self.backbone), "neck": _count(self.neck)}
        counts.update({f"head/{name}": _count(task) for name, task in self.tasks.items()})
        counts["total"] = _count(self)
        return counts


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
