"""build_model: heads sized by the neck, parameter counts, any device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from mtvision.models import Backbone, MultiTaskModel, TaskSpec, build_model
from mtvision.structures import TaskInfo
from mtvision.tasks import TASKS, Task

RESNET = "test_resnet.r160_in1k"


class Probe(Task):
    """A minimal task recording what the builder gave it: one 1x1 conv on the finest level."""

    target_kind = "depth"

    def __init__(self, name: str, info: TaskInfo, channels: int, strides: list[int], out: int = 1) -> None:
        super().__init__(name, info, channels, strides)
        self.head = nn.Conv2d(channels, out, 1)

    def forward(self, features: list[Tensor], image_size: tuple[int, int]) -> Tensor:
        return self.head(features[0])


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(TASKS, "probe", Probe)
    return "probe"


def test_empty_task_dict_builds_the_shared_trunk() -> None:
    model = build_model(RESNET, tasks={}, neck_channels=16)
    assert isinstance(model, MultiTaskModel)
    assert model(torch.zeros(1, 3, 64, 64)) == {}
    assert [tuple(f.shape) for f in model.features(torch.zeros(1, 3, 64, 64))] == [
        (1, 16, 16, 16), (1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2)]


def test_heads_get_the_neck_width_strides_and_options(probe: str) -> None:
    info = TaskInfo(kind="depth")
    model = build_model(RESNET, tasks={"a": TaskSpec(probe, info, {"out": 3}), "b": (probe, info)},
                        neck_channels=8)
    a, b = model.tasks["a"], model.tasks["b"]
    assert (a.channels, a.strides, a.head.out_channels) == (8, [4, 8, 16, 32], 3)
    assert b.head.out_channels == 1 and b.name == "b"
    assert model(torch.zeros(2, 3, 64, 64))["a"].shape == (2, 3, 16, 16)


def test_parameter_counts_add_up(probe: str) -> None:
    model = build_model(RESNET, tasks={"a": (probe, TaskInfo(kind="depth"))}, neck_channels=8)
    counts = model.parameter_counts()
    assert counts["head/a"] == 8 * 1 + 1
    assert counts["total"] == counts["backbone"] + counts["neck"] + counts["head/a"] > 0


def test_unknown_task_type_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown task type 'nope'; available"):
        build_model(RESNET, tasks={"x": ("nope", TaskInfo(kind="depth"))})


def test_local_pretrained_weights_reach_the_backbone(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    reference = Backbone(RESNET)
    # a resnet's features_only keys are its classifier model's keys minus the classifier
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in reference.body.state_dict().items()}, path)
    model = build_model(RESNET, tasks={}, pretrained=path)
    assert torch.equal(model.architecture.backbone.body.conv1[0].weight, reference.body.conv1[0].weight + 1)


def test_builtin_dense_tasks_fit_the_neck() -> None:
    """Integration with the task types that ship with mtvision (skipped while absent)."""
    specs = {kind: (kind, TaskInfo(kind=target, classes=["a", "b", "c"]))
             for kind, target in [("depth", "depth"), ("normals", "normals"),
                                  ("semantic_segmentation", "semantic"), ("edges", "edges")] if kind in TASKS}
    if not specs:
        pytest.skip("no built-in dense task registered yet")
    model = build_model(RESNET, tasks=specs, neck_channels=8).eval()
    outputs = model(torch.zeros(1, 3, 64, 64))
    assert set(outputs) == set(specs)


def devices() -> list[Any]:
    cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    return ["meta", pytest.param("cuda", marks=cuda)]


@pytest.mark.parametrize("device", devices())
def test_model_runs_wherever_it_is_moved(device: str, probe: str) -> None:
    """Nothing in backbone, neck or builder pins a tensor to the CPU (meta checks it for free)."""
    model = build_model(RESNET, tasks={"a": (probe, TaskInfo(kind="depth"))}, neck_channels=8).to(device)
    out = model(torch.zeros(2, 3, 64, 64, device=device))["a"]
    assert out.device.type == device and out.shape == (2, 1, 16, 16)


def test_a_task_type_on_targets_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="type 'depth' trains on 'depth' targets but the dataset labels 'seg' as 'semantic'"):
        build_model(RESNET, tasks={"seg": ("depth", TaskInfo(kind="semantic", classes=["a"]))}, neck_channels=8)


def test_a_task_type_by_import_path_is_built_and_bad_paths_say_why() -> None:
    model = build_model(RESNET, tasks={"a": (f"{__name__}:Probe", TaskInfo(kind="depth"))}, neck_channels=8)
    assert type(model.tasks["a"]) is Probe
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        build_model(RESNET, tasks={"a": ("no_such_module:Probe", TaskInfo(kind="depth"))})
    with pytest.raises(ValueError, match="has no Task subclass named 'RESNET'"):
        build_model(RESNET, tasks={"a": (f"{__name__}:RESNET", TaskInfo(kind="depth"))})
