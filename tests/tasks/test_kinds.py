"""Target kinds and task types: one registry style, a name taken twice is an error, every
built-in kind decodes what the record stores into the structures convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from mtvision.structures import MAP_FILE_KINDS, DepthMap, NormalMap, TaskInfo
from mtvision.tasks import TARGET_KINDS, TASKS, Task, dense_kinds, get_target_kind, register, target_kind


def test_every_task_type_consumes_a_declared_kind() -> None:
    assert TASKS, "the registry is filled on import"
    for kind, cls in TASKS.items():
        assert cls.target_kind in TARGET_KINDS, f"{kind} consumes an undeclared kind {cls.target_kind!r}"


def test_dense_kinds_are_the_map_kinds() -> None:
    assert dense_kinds() == ("depth", "edges", "normals", "semantic")


def test_declaring_a_kind_or_a_task_type_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="target kind 'depth' is registered twice"):
        target_kind("depth", dense=True, decode=lambda *args: None)
    with pytest.raises(ValueError, match="task type 'depth' is registered twice"):
        register("depth")(type("Other", (Task,), {}))


def test_a_new_kind_declares_its_storage_and_a_builtin_keeps_its_own() -> None:
    try:
        target_kind("flow", dense=True, decode=lambda *args: None)
        assert "flow" in dense_kinds() and MAP_FILE_KINDS["flow"] is True
    finally:
        TARGET_KINDS.pop("flow", None), MAP_FILE_KINDS.pop("flow", None)
    builtin = TARGET_KINDS.pop("depth")  # as if a user module declared depth before the built-in one
    try:
        with pytest.raises(ValueError, match="'depth' is stored as map files; declared with dense=False"):
            target_kind("depth", dense=False, decode=lambda *args: None)
        assert "depth" not in TARGET_KINDS
    finally:
        TARGET_KINDS["depth"] = builtin


def test_unknown_kind_lists_the_declared_ones() -> None:
    with pytest.raises(ValueError, match="unknown target kind 'flow'; declared kinds: depth, edges, instances"):
        get_target_kind("flow")


def test_dense_decoders_give_the_structures_types_and_units() -> None:
    size = (2, 2)
    depth = get_target_kind("depth").decode(np.array([[1000, 0], [2500, 500]], np.uint16), TaskInfo("depth"), size, 1000.0)
    assert isinstance(depth, DepthMap) and depth.flatten().tolist() == [1.0, 0.0, 2.5, 0.5]
    png = np.zeros((2, 2, 3), np.uint8)
    png[0, 0] = (255, 128, 0)  # x = +1, y ~ 0, z = -1 before renormalising
    normals = get_target_kind("normals").decode(png, TaskInfo("normals"), size, 1.0)
    assert isinstance(normals, NormalMap)
    assert torch.allclose(normals[:, 0, 0], torch.tensor([1.0, 1 / 255, -1.0]) / np.sqrt(2 + 1 / 255**2), atol=1e-6)
    assert normals[:, 1, 1].tolist() == [0.0, 0.0, 0.0]  # all-zero pixel: no normal
    semantic = get_target_kind("semantic").decode(np.array([[[3], [255]], [[0], [1]]], np.uint8), TaskInfo("semantic"),
                                                  size, 1.0)
    assert isinstance(semantic, tv_tensors.Mask) and semantic.dtype == torch.int64
    assert semantic.tolist() == [[3, 255], [0, 1]]
    edges = get_target_kind("edges").decode(np.array([[0, 7], [255, 0]], np.uint8), TaskInfo("edges"), size, 1.0)
    assert edges.shape == (1, 2, 2) and edges.flatten().tolist() == [0, 1, 1, 0]


def test_label_decoder_single_and_multi_label() -> None:
    decode = get_target_kind("label").decode
    assert decode(2, TaskInfo("label", classes=list("abc")), (1, 1), 1.0).item() == 2
    multi = TaskInfo("label", classes=list("abcd"), multi_label=True)
    assert decode([0, 3], multi, (1, 1), 1.0).tolist() == [1, 0, 0, 1]
