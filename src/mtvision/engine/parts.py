"""The user-facing names of a model's parts: ``backbone``, ``backbone.<stage>``, ``neck``, ``heads.<task>``.

``model.freeze``, ``train.lr_mult`` and the ``model.init`` report speak of parts, not of
state-dict keys, because the keys depend on the architecture (hard sharing keeps its trunk at
``architecture.backbone.body``, MTAN at ``architecture.trunk.stages``, cross-stitch has one
trunk per task). The names are found by module *type*, so they mean the same thing under
every architecture:

* ``backbone``: every timm trunk (:class:`~mtvision.models.backbone.Backbone` or its
  :class:`~mtvision.models.stages.Stages`), all copies of it (cross-stitch, branched, MMoE);
* ``backbone.<stage>``: one of timm's top-level modules of that trunk (``conv1``, ``layer1``...
  for a ResNet: the names of ``timm.create_model(name).feature_info``), in every copy;
* ``neck``: every FPN;
* ``heads.<task>``: the task's head, ``model.tasks[task]``.

Any other module path of the model (``architecture.attention``) is accepted as it is, so
that a part no alias covers can still be named.

Example:
    >>> from mtvision.models import build_model
    >>> model = build_model("test_resnet.r160_in1k", tasks={}, neck_channels=16)
    >>> sorted(model_parts(model))[:3]
    ['backbone', 'backbone.act1', 'backbone.bn1']
    >>> model_parts(model)["neck"]
    ['architecture.neck']
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from mtvision.models.backbone import Backbone
from mtvision.models.neck import FPN
from mtvision.models.stages import Stages
from mtvision.structures.registry import closest_hint

__all__ = ["model_parts", "resolve_parts", "part_of", "covers"]


def model_parts(model: nn.Module) -> dict[str, list[str]]:
    """Every alias of ``model`` -> the module paths it stands for (outermost modules only)."""
    modules = dict(model.named_modules())
    trunks = _outermost([path for path, m in modules.items() if isinstance(m, (Backbone, Stages))])
    parts: dict[str, list[str]] = {"backbone": trunks}
    for path in trunks:
        for stage, sub in _stage_children(path, modules[path]):
            parts.setdefault(f"backbone.{stage}", []).append(sub)
    parts["neck"] = _outermost([path for path, m in modules.items() if isinstance(m, FPN)])
    for task in getattr(model, "tasks", {}):
        parts[f"heads.{task}"] = [f"tasks.{task}"]
    return {name: paths for name, paths in parts.items() if paths}


def resolve_parts(model: nn.Module, names: Iterable[str], key: str) -> dict[str, list[str]]:
    """``names`` (aliases or module paths) -> module paths; an unknown name is an error naming ``key``."""
    parts, modules = model_parts(model), dict(model.named_modules())
    resolved = {}
    for name in names:
        if name in parts:
            resolved[name] = parts[name]
        elif name and name in modules:
            resolved[name] = [name]
        else:
            raise ValueError(f"{key}: unknown part {name!r}; {closest_hint(name, list(parts))}"
                             f"valid: {', '.join(parts)} "
                             f"(or any module path of the model, e.g. architecture.neck)")
    return resolved


def covers(prefix: str, key: str) -> bool:
    """Whether the parameter / state key ``key`` lies in the module at path ``prefix``."""
    return key == prefix or key.startswith(prefix + ".")


def part_of(key: str, parts: dict[str, list[str]]) -> str:
    """The coarsest alias a state key belongs to (``backbone``, ``neck``, ``heads.<task>``); keys of a
    task the model lacks go to ``heads.<task>`` too, other keys to their first two path components."""
    for name in ("backbone", "neck"):
        if any(covers(path, key) for path in parts.get(name, [])):
            return name
    if key.startswith("tasks."):
        return f"heads.{key.split('.')[1]}"
    return ".".join(key.split(".")[:2])


def _outermost(paths: list[str]) -> list[str]:
    """Drop the paths that lie inside another one of the list (a Backbone's Stages, say)."""
    return [p for p in paths if not any(covers(q, p) and q != p for q in paths)]


def _stage_children(path: str, trunk: nn.Module) -> list[tuple[str, str]]:
    """``(timm module name, its module path)`` of one trunk."""
    if isinstance(trunk, Backbone):
        return [(name, f"{path}.body.{name}") for name, _ in trunk.body.named_children()]
    return [(name, f"{path}.stages.{i}.{name}") for i, stage in enumerate(trunk.stages)
            for name, _ in stage.named_children()]
