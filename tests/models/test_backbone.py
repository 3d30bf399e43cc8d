"""Backbone: timm features with channels/strides, and local pretrained weights that really load."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from torch import Tensor

from mtvision.models import Backbone, load_pretrained

RESNET = "test_resnet.r160_in1k"
CONVNEXT = "test_convnext.r160_in1k"  # timm renames its stages (stages.0 -> stages_0) in features_only


def source_weights(name: str, **kwargs: object) -> dict[str, Tensor]:
    """A classification checkpoint whose every tensor is distinct (so a tensor left at its
    init value, e.g. a BatchNorm weight of 1, cannot pass for a loaded one)."""
    torch.manual_seed(0)
    state = timm.create_model(name, pretrained=False, **kwargs).state_dict()
    return {k: v + torch.rand_like(v) if v.is_floating_point() else v for k, v in state.items()}


def assert_loaded(backbone: Backbone, source: dict[str, Tensor]) -> None:
    """Every float tensor of the backbone is one of the checkpoint's tensors."""
    for key, value in backbone.body.state_dict().items():
        if value.is_floating_point():
            assert any(s.shape == value.shape and torch.equal(s, value) for s in source.values()), key


def test_channels_and_strides_describe_the_outputs() -> None:
    backbone = Backbone(RESNET)
    assert backbone.channels == [32, 48, 192, 96]
    assert backbone.strides == [4, 8, 16, 32]
    features = backbone(torch.zeros(2, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(2, c, 64 // s, 64 // s) for c, s in
                                                  zip(backbone.channels, backbone.strides)]


def test_out_indices_select_the_levels() -> None:
    backbone = Backbone(RESNET, out_indices=(3, 4))
    assert backbone.strides == [16, 32]
    assert len(backbone(torch.zeros(1, 3, 64, 64))) == 2


@pytest.mark.parametrize("name", [RESNET, CONVNEXT])
def test_local_safetensors_load(tmp_path: Path, name: str) -> None:
    source = source_weights(name)
    path = tmp_path / "weights.safetensors"
    safetensors.torch.save_file(source, str(path))
    assert_loaded(Backbone(name, pretrained=path), source)


@pytest.mark.parametrize("nest", [None, "state_dict", "model"])
def test_local_torch_file_loads_raw_or_nested(tmp_path: Path, nest: str | None) -> None:
    source = source_weights(RESNET)
    path = tmp_path / "weights.pth"
    torch.save(source if nest is None else {nest: source, "epoch": 3}, path)
    backbone = Backbone(RESNET, pretrained=str(path))
    assert torch.equal(backbone.body.conv1[0].weight, source["conv1.0.weight"])
    assert_loaded(backbone, source)


def test_ddp_prefix_and_other_classifier_are_accepted(tmp_path: Path) -> None:
    source = source_weights(RESNET, num_classes=7)  # a fine-tuned checkpoint
    path = tmp_path / "finetuned.pt"
    torch.save({f"module.{k}": v for k, v in source.items()}, path)
    state = load_pretrained(RESNET, path)
    assert "fc.weight" not in state and "conv1.0.weight" in state
    assert_loaded(Backbone(RESNET, pretrained=path), source)


def test_three_channel_weights_are_adapted_to_one_channel(tmp_path: Path) -> None:
    source = source_weights(RESNET)
    path = tmp_path / "w.pt"
    torch.save(source, path)
    backbone = Backbone(RESNET, pretrained=path, in_chans=1)
    torch.testing.assert_close(backbone.body.conv1[0].weight, source["conv1.0.weight"].sum(1, keepdim=True))
    assert backbone(torch.zeros(1, 1, 64, 64))[0].shape == (1, 32, 16, 16)


def test_weights_are_not_kept_in_the_timm_config(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(source_weights(RESNET), path)
    backbone = Backbone(RESNET, pretrained=path)
    assert all("state_dict" not in getattr(m, "pretrained_cfg", {}) for m in backbone.modules())


def test_weights_of_another_architecture_fail_naming_keys(tmp_path: Path) -> None:
    path = tmp_path / "convnext.safetensors"
    safetensors.torch.save_file(source_weights(CONVNEXT), str(path))
    with pytest.raises(ValueError, match=r"convnext\.safetensors.*missing keys \(conv1\.0\.weight.*unexpected keys"):
        Backbone(RESNET, pretrained=path)


def test_wrong_shape_fails_naming_the_key(tmp_path: Path) -> None:
    source = source_weights(RESNET)
    source["layer1.0.conv1.weight"] = torch.zeros(5, 5, 1, 1)
    path = tmp_path / "w.pt"
    torch.save(source, path)
    with pytest.raises(ValueError, match=r"1 shape mismatches.*layer1\.0\.conv1\.weight \(5, 5, 1, 1\)"):
        load_pretrained(RESNET, path)


def test_partial_checkpoint_fails(tmp_path: Path) -> None:
    source = source_weights(RESNET)
    del source["layer4.0.conv2.weight"]
    path = tmp_path / "w.pt"
    torch.save(source, path)
    with pytest.raises(ValueError, match=r"1 missing keys \(layer4\.0\.conv2\.weight\)"):
        load_pretrained(RESNET, path)


@pytest.mark.parametrize(("file_name", "content", "error", "match"), [
    ("w.npz", None, ValueError, "unknown weights format '.npz'"),
    ("w.pt", [1, 2], ValueError, "expected a state dict"),
    ("absent.pt", None, FileNotFoundError, "not found"),
])
def test_unreadable_files_fail_clearly(tmp_path: Path, file_name: str, content: object, error: type,
                                       match: str) -> None:
    path = tmp_path / file_name
    if file_name != "absent.pt":
        path.write_bytes(b"") if content is None else torch.save(content, path)
    with pytest.raises(error, match=match):
        load_pretrained(RESNET, path)
