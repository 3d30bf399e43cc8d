"""Hard parameter sharing (Caruana 1997): one trunk and one neck, every head reads the same pyramid.

The cheapest way to share and the baseline every other architecture is compared with: the
whole trunk and neck are shared, each task owns only its head. The FPN pyramid is the
shared representation of representation-mode balancing (MGDA-UB, Sener & Koltun 2018):
every head reads all of it and its levels are outputs side by side.

Example:
    >>> import torch
    >>> from mtvision.models.architectures import Trunk, create_architecture
    >>> from mtvision.models.backbone import Backbone
    >>> hard = create_architecture("hard", Trunk(Backbone("test_resnet.r160_in1k"), 16, {"a": None, "b": None}))
    >>> decoded = hard.decode(hard.encode(torch.zeros(1, 3, 64, 64)))
    >>> decoded.pyramids["a"] is decoded.pyramids["b"]
    True
"""

from __future__ import annotations

from torch import Tensor

from mtvision.models.architectures.base import Architecture, Decoded, Trunk, register

__all__ = ["HardSharing"]


@register("hard")
class HardSharing(Architecture):
    """Backbone -> FPN, shared by every task."""

    representation = "the FPN pyramid every head reads"

    def __init__(self, trunk: Trunk) -> None:
        super().__init__(trunk)
        self.backbone = trunk.backbone
        self.neck = trunk.neck()

    def encode(self, images: Tensor) -> list[Tensor]:
        return self.neck(self.backbone(images))

    def decode(self, encoded: list[Tensor]) -> Decoded:
        return Decoded({task: encoded for task in self.task_names})
