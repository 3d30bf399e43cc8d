"""The shared trunk: any timm model as a list of feature maps with known channels and strides.

timm's ``features_only`` mode gives one interface over hundreds of architectures (CNNs and
ViTs alike), so the neck and every head only need ``channels`` and ``strides``.

Pretrained weights come either from timm (``pretrained=True``: its hub, online machines) or
from a local file (``pretrained=PATH``: offline machines, fine-tuned trunks). A local file is
a checkpoint of the *classification* model of the same timm name; it is checked key by key
against that model before it is handed to timm, because timm's own feature-extraction load
is lenient (it silently leaves unmatched layers randomly initialised) and a backbone that is
half random trains, badly, without any error.

Example:
    >>> import torch
    >>> backbone = Backbone("test_resnet.r160_in1k")
    >>> backbone.channels, backbone.strides
    ([32, 48, 192, 96], [4, 8, 16, 32])
    >>> [tuple(f.shape) for f in backbone(torch.zeros(1, 3, 64, 64))][0]
    (1, 32, 16, 16)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch
from torch import Tensor, nn

__all__ = ["Backbone", "load_pretrained"]

# Containers under which training scripts commonly nest the weights in a .pt/.pth file.
_NESTED_KEYS = ("state_dict", "model")
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
_SHOWN_KEYS = 5  # how many offending keys an error message names


class Backbone(nn.Module):
    """A timm ``features_only`` model exposing ``channels`` and ``strides`` of its outputs.

    Args:
        name: timm model name, e.g. ``"resnet50.a1_in1k"`` (see ``timm.list_models``).
        pretrained: ``False`` for random init, ``True`` for timm's hub weights, or the path of
            a local ``.safetensors`` / ``.pt`` / ``.pth`` checkpoint of the same timm model.
        out_indices: which stages to return. The default, the last four, is strides 4..32 on
            CNNs whatever their stage numbering (ResNets count the stem as stage 0, ConvNeXts
            do not); a plain ViT gives four stride-16 maps.
        in_chans: input channels; timm adapts the first convolution of 3-channel weights.
    """

    def __init__(self, name: str, pretrained: bool | str | Path = False,
                 out_indices: Sequence[int] = (-4, -3, -2, -1), in_chans: int = 3) -> None:
        super().__init__()
        self.name = name
        self.body = _create(name, pretrained, tuple(out_indices), in_chans)
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.strides: list[int] = list(self.body.feature_info.reduction())

    def forward(self, images: Tensor) -> list[Tensor]:
        """Feature maps, finest first: ``[B, channels[i], H / strides[i], W / strides[i]]``."""
        return list(self.body(images))


def _create(name: str, pretrained: bool | str | Path, out_indices: tuple[int, ...], in_chans: int) -> nn.Module:
    common: dict[str, Any] = {"features_only": True, "out_indices": out_indices, "in_chans": in_chans}
    if isinstance(pretrained, bool):
        return timm.create_model(name, pretrained=pretrained, **common)
    state = load_pretrained(name, pretrained)
    # timm loads a state dict given this way into the full model *before* wrapping it for
    # feature extraction, so its own renaming (stages.0 -> stages_0, model.*) and its
    # input-conv adaptation for in_chans != 3 apply unchanged.
    body = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **common)
    _forget_state_dict(body)
    return body


def _forget_state_dict(body: nn.Module) -> None:
    """Drop the copies of the weights timm keeps in ``pretrained_cfg`` (memory, pickling)."""
    for module in body.modules():
        for attr in ("pretrained_cfg", "default_cfg"):
            cfg = getattr(module, attr, None)
            if isinstance(cfg, dict):
                cfg.pop("state_dict", None)


def load_pretrained(name: str, path: str | Path) -> dict[str, Tensor]:
    """Read a local checkpoint and check it fits the timm model ``name``, key by key.

    Accepts ``.safetensors`` and torch files (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) holding
    a state dict, possibly nested under ``"state_dict"`` or ``"model"``, possibly with the
    ``"module."`` prefix DDP adds. The classifier is dropped (a backbone has none, and a
    fine-tuned checkpoint's classifier has another number of classes). Every other key must
    match the model exactly: a missing, unexpected or wrongly shaped key raises a
    ``ValueError`` naming the file and a few of the keys.

    Example:
        >>> import tempfile, timm, torch
        >>> path = Path(tempfile.mkdtemp()) / "w.pt"
        >>> torch.save(timm.create_model("test_resnet.r160_in1k").state_dict(), path)
        >>> "fc.weight" in load_pretrained("test_resnet.r160_in1k", path)
        False
    """
    path = Path(path)
    state = _read_state_dict(path)
    reference, classifier_keys = _reference(name)
    state = {k: v for k, v in state.items() if k not in classifier_keys}
    problems = _mismatches(state, reference)
    if problems:
        raise ValueError(f"{path}: weights do not fit timm model {name!r}: {'; '.join(problems)}. "
                         f"Was the file saved from another architecture? Pass the timm name it was trained as.")
    return state


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    if path.suffix == ".safetensors":
        loaded: Any = safetensors.torch.load_file(str(path))
    elif path.suffix in _TORCH_SUFFIXES:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"{path}: unknown weights format {path.suffix!r}; "
                         f"use .safetensors or one of {', '.join(_TORCH_SUFFIXES)}")
    return _unwrap(loaded, path)


def _unwrap(loaded: Any, path: Path) -> dict[str, Tensor]:
    """The tensor dict inside a checkpoint, without a DDP ``module.`` prefix."""
    for key in _NESTED_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), optionally under "
                         f"{' or '.join(map(repr, _NESTED_KEYS))}; got {type(loaded).__name__}")
    if loaded and all(k.startswith("module.") for k in loaded):
        return {k.removeprefix("module."): v for k, v in loaded.items()}
    return dict(loaded)


def _reference(name: str) -> tuple[dict[str, torch.Size], set[str]]:
    """Parameter shapes of the full timm model (built on the meta device: no memory, no init
    cost) and the keys of its classifier."""
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    classifiers = model.pretrained_cfg.get("classifier") or ()
    if isinstance(classifiers, str):
        classifiers = (classifiers,)
    classifier_keys = {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}
    shapes = {k: v.shape for k, v in model.state_dict().items() if k not in classifier_keys}
    return shapes, classifier_keys


def _mismatches(state: Mapping[str, Tensor], reference: Mapping[str, torch.Size]) -> list[str]:
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(s)}" for k, s in reference.items()
              if k in state and state[k].shape != s]
    return [f"{len(keys)} {what} ({_few(keys)})" for what, keys in
            (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches, file vs model", shapes))
            if keys]


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (", ..." if len(keys) > _SHOWN_KEYS else "")
