"""PAD-Net: deep supervision of the initial features (present images only, none for detection),
the distillation formula on a tiny case, the pyramid each task reads, a bad ``level``, and a
tiny ``mtvision train model.architecture=padnet`` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from mtvision.models.architectures.distillation import Distillation
from mtvision.structures import Batch
from tests.models.architectures.conftest import KINDS, SIZE, make, train_tiny

torch.set_num_threads(1)
SUPERVISED = set(KINDS) - {"objects"}  # detection has no deep supervision (Task.deep_supervision)


def _zero_messages(distillation: Distillation) -> None:
    for sources in distillation.attention.values():
        for block in sources.values():
            torch.nn.init.zeros_(block.message.weight)


def test_training_losses_carry_the_initial_part_of_every_supervised_task(scenes: Batch) -> None:
    model = make("padnet").train()
    present = {**scenes.present, "depth": torch.tensor([False, True])}
    targets = {**scenes.targets, "depth": scenes.targets["depth"][1:]}
    _, losses = model(scenes.images, Batch(scenes.images, targets, present, scenes.meta))
    assert {name for name, parts in losses.items() if "initial" in parts} == SUPERVISED
    for name in SUPERVISED:
        assert losses[name]["initial"] > 0
    _, losses = model.eval()(scenes.images, scenes)
    assert not [name for name, parts in losses.items() if "initial" in parts], "validation reports the final loss"


def test_an_absent_task_has_no_initial_loss(scenes: Batch) -> None:
    model = make("padnet", ["semseg", "depth", "objects"]).train()
    present = {**scenes.present, "semseg": torch.zeros(2, dtype=torch.bool)}
    _, losses = model(scenes.images, Batch(scenes.images, scenes.targets, present, scenes.meta))
    assert set(losses) == {"depth", "objects"} and "initial" in losses["depth"]


def test_the_initial_loss_reads_the_present_images_only(scenes: Batch) -> None:
    sharing = make("padnet", ["semseg", "depth"]).architecture.train()
    decoded = sharing.decode(sharing.encode(scenes.images))
    target = scenes.targets["depth"][1:]
    loss = sharing.auxiliary_loss("depth", decoded, SIZE, target, torch.tensor([False, True]))
    head = sharing.supervision.heads["depth"][0]
    expected = head.loss(head([decoded.initial["depth"][0][1:]], SIZE), target)["loss"]
    assert loss is not None and torch.allclose(loss, expected)


def test_distillation_follows_the_formula_on_a_tiny_case() -> None:
    torch.manual_seed(0)
    distill = Distillation(["a", "b", "c"], channels=2)
    features = {t: torch.randn(1, 2, 5, 5) for t in "abc"}
    out = distill(features)
    for t in "abc":
        expected = features[t].clone()
        for s in "abc".replace(t, ""):
            block = distill.attention[t][s]
            gate = torch.sigmoid(F.conv2d(features[s], block.gate.weight, padding=1))
            expected += gate * F.conv2d(features[s], block.message.weight, padding=1)
        assert torch.allclose(out[t], expected, atol=1e-6), t
    _zero_messages(distill)
    assert all(torch.equal(distill(features)[t], features[t]) for t in "abc"), "no message: F_t^o = F_t"


def test_each_pyramid_is_the_shared_one_with_the_distilled_level(scenes: Batch) -> None:
    sharing = make("padnet", ["semseg", "depth", "objects"], options={"level": 1}).architecture.eval()
    _zero_messages(sharing.distillation[0])
    with torch.no_grad():
        shared = sharing.encode(scenes.images)
        decoded = sharing.decode(shared)
    for task, pyramid in decoded.pyramids.items():
        assert [pyramid[i] is shared[i] for i in range(len(shared))] == [True, False, True, True], task
        assert torch.equal(pyramid[1], decoded.initial[task][0]), task


@pytest.mark.parametrize("level", [4, -1, 1.5])
def test_a_level_past_the_pyramid_is_a_clear_error(level: object) -> None:
    with pytest.raises(ValueError, match=r"padnet.*level=.*pick 0 \(finest\) to 3"):
        make("padnet", ["semseg"], options={"level": level})


def test_train_end_to_end(tmp_path: Path) -> None:
    _, card = train_tiny(tmp_path, "padnet")
    assert card["architecture"] == "padnet" and card["representation"].startswith("none: ")
    assert card["parameters"]["distillation"] > 0 and card["parameters"]["supervision"] > 0

