"""MTAN: with every attention mask at 1 it is hard sharing with per-task feature copies; the
masks are each task's own; the option check; a tiny ``mtvision train`` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.models import MultiTaskModel
from mtvision.models.architectures.mtan import MTAN, StageAttention
from mtvision.models.stages import Stages
from mtvision.structures import Batch
from tests.models.architectures.conftest import make, train_tiny

torch.set_num_threads(1)
TASKS = ["semseg", "depth", "classes", "objects"]


def _open_every_mask(model: MultiTaskModel) -> None:
    """Masks of exactly 1 in eval mode: the last BatchNorm outputs its bias (weight 0), and
    sigmoid(100) is 1.0 in float32."""
    for module in model.architecture.modules():
        if isinstance(module, StageAttention):
            last = module.mask[-2]
            torch.nn.init.zeros_(last.weight)
            torch.nn.init.constant_(last.bias, 100.0)


def test_masks_at_one_equal_hard_sharing_with_per_task_copies(scenes: Batch) -> None:
    hard, mtan = make("hard", TASKS, seed=0), make("mtan", TASKS, seed=1)
    mtan.architecture.trunk.load_state_dict(Stages.of(hard.architecture.backbone).state_dict())
    mtan.architecture.neck.load_state_dict(hard.architecture.neck.state_dict())
    mtan.tasks.load_state_dict(hard.tasks.state_dict())
    _open_every_mask(mtan)
    with torch.no_grad():
        hard.eval(), mtan.eval()
        shared = hard.features(scenes.images)
        pyramids = mtan.architecture.decode(mtan.features(scenes.images)).pyramids
        a, b = hard(scenes.images), mtan(scenes.images)
    for task in TASKS:
        assert all(torch.equal(x, y) for x, y in zip(shared, pyramids[task], strict=True)), task
    for task in ("semseg", "depth", "classes"):
        assert torch.equal(a[task], b[task]), task
    assert torch.equal(a["objects"][0]["boxes"], b["objects"][0]["boxes"])


def test_masks_change_the_features_and_are_each_tasks_own(scenes: Batch) -> None:
    model = make("mtan", ["semseg", "depth"])
    sharing: MTAN = model.architecture  # type: ignore[assignment]
    with torch.no_grad():
        pyramids = sharing.decode(sharing.encode(scenes.images)).pyramids
    assert not torch.equal(pyramids["semseg"][0], pyramids["depth"][0])  # each task sees its own attended features
    own = {id(p) for p in model.own_parameters("semseg")}
    assert all(id(p) in own for p in sharing.attention["semseg"].parameters())
    assert not any(id(p) in own for p in sharing.attention["depth"].parameters())
    assert [len(a.mask[0].weight[0]) for a in sharing.attention["depth"]] == [32, 48 + 32, 192 + 48, 96 + 192]
    assert sharing.representation is None and "twice" in sharing.no_representation


def test_an_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="architecture 'mtan' has no option 'experts'; its options: none"):
        make("mtan", ["depth"], options={"experts": 2})


def test_trains_end_to_end(tmp_path: Path) -> None:
    _, card = train_tiny(tmp_path, "mtan")
    assert card["architecture"] == "mtan" and card["representation"].startswith("none: ")
    assert card["parameters"]["attention"] == sum(card["parameters"][f"task/{t}"] - card["parameters"][f"head/{t}"]
                                                  for t in ("semseg", "depth", "objects"))

