"""What an architecture is: how the tasks of one model share computation (DESIGN §2).

An :class:`Architecture` turns images into **one feature pyramid per task**, every pyramid
with the same width (``channels``) and strides, so that every task head
(:mod:`mtvision.tasks`, detection included) reads its pyramid the same way whatever the
sharing. Its forward is split in two, like the model's: :meth:`Architecture.encode` is the
computation every task shares, :meth:`Architecture.decode` the rest. Representation-mode
balancing needs the first as a tensor of its own; an architecture where no such tensor
exists says why in ``no_representation`` and the trainer balances parameters instead.

Decoder-based architectures (PAD-Net, MTI-Net) also make *initial* per-task features that
are supervised (deep supervision); :class:`Decoded` carries them and
:meth:`Architecture.auxiliary_loss` turns them into a loss that the model adds to that
task's own loss, so a task keeps one loss and one balancing weight.

Example:
    >>> from mtvision.models.architectures import available_architectures
    >>> "hard" in available_architectures()
    True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from torch import Tensor, nn

from mtvision.models.backbone import Backbone
from mtvision.models.neck import FPN
from mtvision.models.specs import TaskSpec
from mtvision.structures.registry import closest_hint, registrar

__all__ = ["ARCHITECTURES", "Architecture", "Decoded", "Trunk", "available_architectures", "create_architecture",
           "register"]

ARCHITECTURES: dict[str, type[Architecture]] = {}
_add = registrar(ARCHITECTURES, "architecture")


def register(name: str) -> Callable[[type[Architecture]], type[Architecture]]:
    """Class decorator adding an architecture under ``name`` (its ``model.architecture`` value)."""

    def add(cls: type[Architecture]) -> type[Architecture]:
        cls.name = name
        return _add(name)(cls)

    return add


@dataclass(frozen=True)
class Trunk:
    """What every architecture is built from: a timm trunk, the neck width, the tasks."""

    backbone: Backbone
    neck_channels: int
    tasks: Mapping[str, TaskSpec] = field(default_factory=dict)

    def neck(self) -> FPN:
        """A fresh FPN over the trunk's levels (an architecture may need one per task group)."""
        return FPN(self.backbone.channels, self.backbone.strides, channels=self.neck_channels)


class Decoded(NamedTuple):
    """Each task's pyramid and, for deep supervision, its initial features per scale."""

    pyramids: dict[str, list[Tensor]]
    initial: dict[str, list[Tensor]] = {}


class Architecture(nn.Module):
    """Images -> one pyramid per task (``channels`` wide at ``strides``); subclasses register a name."""

    name: ClassVar[str] = ""
    #: what :meth:`encode` returns when representation-mode balancing may treat it as the
    #: shared representation: every task reads it and no part of it is computed from another.
    representation: ClassVar[str | None] = None
    #: why representation mode falls back to parameter mode, when ``representation`` is None.
    no_representation: ClassVar[str] = ""

    def __init__(self, trunk: Trunk) -> None:
        super().__init__()
        self.task_names = list(trunk.tasks)
        self.channels = trunk.neck_channels
        self.strides = list(trunk.backbone.strides)
        self.options: dict[str, Any] = {}  # the constructor's keyword options, for model.json

    def encode(self, images: Tensor) -> list[Tensor]:
        """The computation all tasks share (the shared representation where there is one)."""
        raise NotImplementedError

    def decode(self, encoded: list[Tensor]) -> Decoded:
        """Every task's pyramid from what :meth:`encode` returned."""
        raise NotImplementedError

    def owned_modules(self, task: str) -> list[nn.Module]:
        """The modules only ``task`` uses (its attention, its deep supervision heads): what
        balancing counts with the task's head rather than with the shared parameters."""
        return []

    def own_parameters(self, task: str) -> Iterator[nn.Parameter]:
        for module in self.owned_modules(task):
            yield from module.parameters()

    def auxiliary_loss(self, task: str, decoded: Decoded, image_size: tuple[int, int], target: Any,
                       present: Tensor) -> Tensor | None:
        """The deep supervision loss of ``task`` (None: the architecture has none)."""
        return None

    def parameter_parts(self) -> dict[str, int]:
        """Parameters per named part (its direct children), for ``parameter_counts`` and model.json."""
        return {name: sum(p.numel() for p in child.parameters()) for name, child in self.named_children()}


def available_architectures() -> list[str]:
    return sorted(ARCHITECTURES)


def create_architecture(name: str, trunk: Trunk, options: Mapping[str, Any] | None = None) -> Architecture:
    """Build the architecture ``name``; an unknown name or option names the valid ones."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; {closest_hint(name, available_architectures())}"
                         f"available: {', '.join(available_architectures())}")
    cls = ARCHITECTURES[name]
    options = dict(options or {})
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "trunk")]
    for key in options:
        if key not in valid:
            raise ValueError(f"architecture {name!r} has no option {key!r}; {closest_hint(key, valid)}"
                             f"its options: {', '.join(valid) or 'none'}")
    architecture = cls(trunk, **options)
    architecture.options = options
    return architecture
