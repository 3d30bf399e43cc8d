"""MMoE: one expert is hard sharing; the gates are softmaxes each task owns; the experts'
pyramids are a representation every task reads; option errors; a tiny ``mtvision train``
balanced in representation mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.models.architectures.mmoe import MMoE
from mtvision.models.stages import Stages
from mtvision.structures import Batch
from tests.models.architectures.conftest import make, train_tiny

torch.set_num_threads(1)
TASKS = ["semseg", "depth", "classes", "objects"]


@pytest.mark.parametrize(("shared_stages", "gate"), [(0, "image"), (2, "position")])
def test_one_expert_is_hard_sharing(scenes: Batch, shared_stages: int, gate: str) -> None:
    hard = make("hard", TASKS, seed=0).eval()
    mmoe = make("mmoe", TASKS, seed=1, options={"experts": 1, "shared_stages": shared_stages, "gate": gate}).eval()
    sharing: MMoE = mmoe.architecture  # type: ignore[assignment]
    stages = Stages.of(hard.architecture.backbone).stages
    for j, stage in enumerate([*sharing.stem.stages, *sharing.experts[0].stages.stages]):
        stage.load_state_dict(stages[j].state_dict())
    sharing.experts[0].neck.load_state_dict(hard.architecture.neck.state_dict())
    mmoe.tasks.load_state_dict(hard.tasks.state_dict())
    with torch.no_grad():
        a, b = hard(scenes.images), mmoe(scenes.images)
    for task in ("semseg", "depth", "classes"):
        assert torch.equal(a[task], b[task]), task
    assert torch.equal(a["objects"][0]["boxes"], b["objects"][0]["boxes"])


@pytest.mark.parametrize(("gate", "shape"), [("image", (2, 3, 1, 1)), ("position", (2, 3, 16, 16))])
def test_gates_are_softmaxes_each_task_owns(scenes: Batch, gate: str, shape: tuple[int, ...]) -> None:
    model = make("mmoe", ["semseg", "depth"], options={"gate": gate})
    sharing: MMoE = model.architecture  # type: ignore[assignment]
    with torch.no_grad():
        encoded = sharing.encode(scenes.images)
        weights = sharing.gates["depth"]([encoded[e * 4:(e + 1) * 4] for e in range(3)])
        pyramids = sharing.decode(encoded).pyramids
    assert weights[0].shape == shape and torch.allclose(weights[0].sum(dim=1), torch.ones(()))
    assert not torch.equal(pyramids["semseg"][0], pyramids["depth"][0])  # each task its own mixture
    assert {id(p) for p in model.own_parameters("depth")} >= {id(p) for p in sharing.gates["depth"].parameters()}
    assert not {id(p) for p in model.own_parameters("depth")} & {id(p) for p in sharing.experts.parameters()}


def test_every_task_reads_every_expert_pyramid(scenes: Batch) -> None:
    """What representation mode needs: each task's loss has a gradient on every encoded map."""
    model = make("mmoe", ["semseg", "depth"]).train()
    features = model.features(scenes.images)
    _, losses = model.heads(features, (64, 64), scenes)
    for task, parts in losses.items():
        grads = torch.autograd.grad(parts["loss"], features, retain_graph=True, allow_unused=True)
        assert all(g is not None and g.abs().sum() > 0 for g in grads), task
    assert model.architecture.representation is not None


@pytest.mark.parametrize(("options", "problem"), [
    ({"experts": 0}, "mmoe option experts=0: give a whole number of experts, at least 1"),
    ({"shared_stages": 4}, "shared_stages=4: test_resnet.r160_in1k has 4 stages .* must be 0 to 3"),
    ({"gate": "pixel"}, "gate='pixel': one of image, position"),
])
def test_bad_options_say_what_is_wrong(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make("mmoe", ["depth"], options=options)


def test_trains_end_to_end_in_representation_mode(tmp_path: Path) -> None:
    output, card = train_tiny(tmp_path, "mmoe", "model.architecture_options={experts: 2, gate: position}",
                              "balancing.method=mgda", "balancing.gradients=representation")
    assert "no shared representation" not in output
    assert card["architecture"] == "mmoe" and card["options"] == {"experts": 2, "gate": "position"}
    assert card["representation"].startswith("the experts' pyramids") and card["parameters"]["gates"] > 0

