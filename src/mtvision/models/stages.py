"""A timm trunk cut into its stages, so that an architecture can act between them.

MTAN attends to every stage's output, cross-stitch mixes the task trunks after a stage,
a branched tree copies the stages after the branch point: all need the trunk as a list of
stages rather than one call. timm's ``features_only`` wrapper for CNNs
(``FeatureListNet``) is an ordered dict of modules run one after the other, returning the
output of a few of them; a stage here is the run of modules up to and including the next
returned one. The modules are the trunk's own (pretrained weights included), renamed by
position: ``stages.1.layer2.0.conv1.weight``.

Example:
    >>> import torch
    >>> from mtvision.models.backbone import Backbone
    >>> stages = Stages.of(Backbone("test_resnet.r160_in1k"))
    >>> len(stages), stages.strides
    (4, [4, 8, 16, 32])
    >>> [tuple(f.shape[1:]) for f in stages(torch.zeros(1, 3, 64, 64))]
    [(32, 16, 16), (48, 8, 8), (192, 4, 4), (96, 2, 2)]
"""

from __future__ import annotations

from collections import OrderedDict

from timm.models import FeatureListNet
from torch import Tensor, nn

from mtvision.models.backbone import Backbone

__all__ = ["Stages"]


class Stages(nn.Module):
    """The trunk as ``len(channels)`` sequential stages; stage ``i`` returns pyramid level ``i``."""

    def __init__(self, stages: list[nn.Sequential], channels: list[int], strides: list[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)
        self.strides = list(strides)

    @classmethod
    def of(cls, backbone: Backbone) -> Stages:
        """The stages of ``backbone``; an error for trunks timm does not expose as a module list."""
        body = backbone.body
        if not isinstance(body, FeatureListNet) or body.output_fmt.name != "NCHW":
            raise ValueError(f"backbone {backbone.name!r} is a {type(body).__name__} in timm, not a list of stages "
                             "(FeatureListNet, NCHW); architectures that act between stages need one. "
                             "Use a CNN such as resnet18 or convnext_tiny, or model.architecture=hard")
        stages, current = [], OrderedDict()
        for name, module in body.items():
            current[name] = module
            if name in body.return_layers:
                stages.append(nn.Sequential(current))
                current = OrderedDict()
        return cls(stages, backbone.channels, backbone.strides)

    def __len__(self) -> int:
        return len(self.stages)

    def forward(self, images: Tensor) -> list[Tensor]:
        """Every stage's output, finest first (what :class:`~mtvision.models.Backbone` returns)."""
        return self.run(images, 0, len(self))

    def run(self, x: Tensor, start: int, stop: int) -> list[Tensor]:
        """The outputs of stages ``start .. stop - 1`` fed with ``x`` (the input of ``start``)."""
        outputs = []
        for stage in self.stages[start:stop]:
            x = stage(x)
            outputs.append(x)
        return outputs
