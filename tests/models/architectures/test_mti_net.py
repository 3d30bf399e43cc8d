"""MTI-Net: deep supervision at every scale (present images only, none for detection), the
pyramid of distilled features each task reads, propagation from coarse to fine, the FPM's
softmax over tasks, a bad ``fpm_reduction``, and a tiny ``mtvision train`` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtvision.models.architectures.mti_net import FeaturePropagation
from mtvision.structures import Batch
from tests.models.architectures.conftest import KINDS, SIZE, make, train_tiny

torch.set_num_threads(1)
SUPERVISED = set(KINDS) - {"objects"}  # detection has no deep supervision (Task.deep_supervision)


def test_training_losses_carry_the_initial_part_of_every_supervised_task(scenes: Batch) -> None:
    model = make("mti_net").train()
    present = {**scenes.present, "semseg": torch.zeros(2, dtype=torch.bool)}
    _, losses = model(scenes.images, Batch(scenes.images, scenes.targets, present, scenes.meta))
    assert "semseg" not in losses, "an absent task has no loss, initial ones included"
    assert {name for name, parts in losses.items() if "initial" in parts} == SUPERVISED - {"semseg"}
    assert all(losses[name]["initial"] > 0 for name in SUPERVISED - {"semseg"})


def test_the_initial_loss_sums_every_scale_on_the_present_images(scenes: Batch) -> None:
    sharing = make("mti_net", ["semseg", "depth"]).architecture.train()
    decoded = sharing.decode(sharing.encode(scenes.images))
    target = scenes.targets["depth"][:1]
    loss = sharing.auxiliary_loss("depth", decoded, SIZE, target, torch.tensor([True, False]))
    heads = sharing.supervision.heads["depth"]
    assert len(heads) == len(decoded.initial["depth"]) == 4
    expected = sum(head.loss(head([x[:1]], SIZE), target)["loss"] for head, x in zip(heads, decoded.initial["depth"]))
    assert loss is not None and torch.allclose(loss, expected)


def test_each_task_reads_its_distilled_features_at_every_scale(scenes: Batch) -> None:
    sharing = make("mti_net", ["semseg", "depth", "objects"]).architecture.eval()
    for distillation in sharing.distillation:  # no message from the other tasks: F_t^o = F_t at every scale
        for sources in distillation.attention.values():
            for block in sources.values():
                torch.nn.init.zeros_(block.message.weight)
    with torch.no_grad():
        shared = sharing.encode(scenes.images)
        decoded = sharing.decode(shared)
    for task, pyramid in decoded.pyramids.items():
        assert [f.shape for f in pyramid] == [f.shape for f in shared], task
        assert all(torch.equal(a, b) for a, b in zip(pyramid, decoded.initial[task])), task


def test_coarse_scales_reach_the_finest_initial_features_only_through_propagation(scenes: Batch) -> None:
    sharing = make("mti_net", ["semseg", "depth"]).architecture.eval()
    shared = [f.detach().requires_grad_() for f in sharing.encode(scenes.images)]
    finest = sharing.decode(shared).initial["semseg"][0]
    grads = torch.autograd.grad(finest.sum(), shared)
    assert all(g.abs().sum() > 0 for g in grads), "every coarser level reaches the finest scale"
    coarsest = sharing.decode(shared).initial["semseg"][-1]
    grads = torch.autograd.grad(coarsest.sum(), shared, allow_unused=True)
    assert [g is not None for g in grads] == [False, False, False, True], "the coarsest scale reads P_3 alone"


def test_the_propagation_attention_spreads_each_channel_over_the_tasks() -> None:
    torch.manual_seed(0)
    fpm = FeaturePropagation(["a"], channels=4, reduction=2)
    features = {"a": torch.randn(1, 4, 3, 3)}
    # One task: the softmax over tasks is 1, so f's output drops out and only the reduction counts.
    expected = fpm.excite["a"](fpm.reduce(features["a"])) + features["a"]
    assert torch.allclose(fpm(features)["a"], expected, atol=1e-6)


@pytest.mark.parametrize("reduction", [0, -2, 2.5])
def test_a_bad_fpm_reduction_is_a_clear_error(reduction: object) -> None:
    with pytest.raises(ValueError, match=r"mti_net.*fpm_reduction=.*positive integer"):
        make("mti_net", ["semseg"], options={"fpm_reduction": reduction})


def test_train_end_to_end(tmp_path: Path) -> None:
    _, card = train_tiny(tmp_path, "mti_net")
    assert card["architecture"] == "mti_net" and card["representation"].startswith("none: ")
    assert card["parameters"]["propagation"] > 0 and card["parameters"]["supervision"] > 0

