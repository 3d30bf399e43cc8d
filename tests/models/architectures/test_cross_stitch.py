"""Cross-stitch: at identity init it is independent single-task models; Misra's init
normalised over the tasks; what a task owns; option errors; a tiny ``mtvision train``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.models import MultiTaskModel
from mtvision.models.architectures.cross_stitch import CrossStitchUnit
from mtvision.models.stages import Stages
from mtvision.structures import Batch
from tests.models.architectures.conftest import make, train_tiny

torch.set_num_threads(1)
TASKS = ["semseg", "depth", "objects"]


def _stitch(singles: dict[str, MultiTaskModel], init: tuple[float, float]) -> MultiTaskModel:
    """A cross-stitch model whose task ``t`` has the trunk, neck and head of ``singles[t]``."""
    model = make("cross_stitch", list(singles), seed=7, options={"init": init})
    for task, single in singles.items():
        model.architecture.trunks[task].load_state_dict(Stages.of(single.architecture.backbone).state_dict())
        model.architecture.necks[task].load_state_dict(single.architecture.neck.state_dict())
        model.tasks[task].load_state_dict(single.tasks[task].state_dict())
    return model.eval()


def test_identity_init_equals_independent_single_task_models(scenes: Batch) -> None:
    singles = {task: make("hard", [task], seed=i).eval() for i, task in enumerate(TASKS)}
    with torch.no_grad():
        stitched = _stitch(singles, (1.0, 0.0))(scenes.images)
        mixed = _stitch(singles, (0.9, 0.1))(scenes.images)
        alone = {task: single(scenes.images)[task] for task, single in singles.items()}
    for task in ("semseg", "depth"):
        assert torch.equal(stitched[task], alone[task]), task
        assert not torch.allclose(mixed[task], alone[task]), task  # the default units do mix
    assert torch.equal(stitched["objects"][0]["boxes"], alone["objects"][0]["boxes"])


def test_misra_init_normalised_over_the_tasks() -> None:
    unit = CrossStitchUnit(tasks=5, channels=8)
    alpha = unit.alpha.detach()
    assert alpha.shape == (5, 5, 8)  # per channel by default
    assert torch.allclose(alpha.diagonal().T, torch.full((5, 8), 0.9))
    assert torch.allclose(alpha[0, 1:], torch.full((4, 8), 0.025)) and torch.allclose(alpha.sum(1), torch.ones(5, 8))
    assert CrossStitchUnit(tasks=2, channels=8, per_channel=False, init=(0.8, 0.2)).alpha.shape == (2, 2, 1)


def test_a_task_owns_its_neck_and_its_stages_after_the_last_unit() -> None:
    model = make("cross_stitch", ["semseg", "depth"], options={"stages": [0, 1]})
    sharing = model.architecture
    own = {id(p) for p in model.own_parameters("depth")}
    assert all(id(p) in own for p in sharing.necks["depth"].parameters())
    assert all(id(p) in own for stage in sharing.trunks["depth"].stages[2:] for p in stage.parameters())
    assert not any(id(p) in own for stage in sharing.trunks["depth"].stages[:2] for p in stage.parameters())
    assert not any(id(p) in own for p in sharing.trunks["semseg"].parameters())
    assert sorted(sharing.units) == ["0", "1"]
    # T trunks: T times the parameters of one.
    one = sum(p.numel() for p in Stages.of(make("hard", ["depth"]).architecture.backbone).parameters())
    assert sum(p.numel() for p in sharing.trunks.parameters()) == 2 * one


@pytest.mark.parametrize(("options", "problem"), [
    ({"stages": [4]}, r"stages=\[4\]: \[4\] not a stage index; test_resnet.r160_in1k has 4 stages, so a unit may "
                      r"follow stages 0 to 3"),
    ({"stages": [1, 1]}, "a stage listed twice"),
    ({"init": [0.9]}, r"init=\[0.9\]: give \(α_S, α_D\)"),
])
def test_bad_options_say_what_is_wrong(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make("cross_stitch", ["depth", "semseg"], options=options)


def test_trains_end_to_end(tmp_path: Path) -> None:
    _, card = train_tiny(tmp_path, "cross_stitch", "model.architecture_options={stages: [1, 2], per_channel: false}")
    assert card["architecture"] == "cross_stitch" and card["options"] == {"stages": [1, 2], "per_channel": False}
    assert card["parameters"]["units"] == 2 * 3 * 3 and card["representation"].startswith("none: ")

