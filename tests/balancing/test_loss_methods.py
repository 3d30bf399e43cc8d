"""Closed-form checks of the loss-weighting methods."""

from __future__ import annotations

import math

import pytest
import torch

from mtvision.balancing import create

LOSSES = torch.tensor([0.5, 2.0, 1.25])


def test_ew_weights_are_one_and_the_total_is_the_sum() -> None:
    m = create("ew", num_tasks=3)
    losses = LOSSES.clone().requires_grad_(True)
    assert torch.equal(m.weigh(losses), torch.ones(3))
    total = m.combine(losses)
    total.backward()
    assert total.item() == pytest.approx(3.75) and torch.equal(losses.grad, torch.ones(3))


def test_fixed_weights_follow_the_task_index() -> None:
    m = create("fixed", num_tasks=3, weights=[1.0, 0.5, 0.1])
    torch.testing.assert_close(m.weigh(LOSSES), torch.tensor([1.0, 0.5, 0.1]))
    torch.testing.assert_close(m.weigh(LOSSES[[2, 1]], tasks=[2, 1]), torch.tensor([0.1, 0.5]))
    with pytest.raises(ValueError, match="one value per task"):
        create("fixed", num_tasks=3, weights=[1.0, 2.0])


def test_si_descends_the_sum_of_log_losses() -> None:
    losses = LOSSES.clone().requires_grad_(True)
    create("si", num_tasks=3).combine(losses).backward()
    torch.testing.assert_close(losses.grad, 1 / LOSSES)


def test_gls_has_the_value_and_gradient_of_the_geometric_mean() -> None:
    reference = LOSSES.clone().requires_grad_(True)
    geometric_mean = reference.prod() ** (1 / 3)
    geometric_mean.backward()
    losses = LOSSES.clone().requires_grad_(True)
    total = create("gls", num_tasks=3).combine(losses)
    total.backward()
    torch.testing.assert_close(total, geometric_mean.detach())
    torch.testing.assert_close(losses.grad, reference.grad)  # ∂(ΠL)^(1/T)/∂L_t = GM / (T L_t)


def test_uw_gradient_wrt_log_variances_matches_the_hand_derivative() -> None:
    m = create("uw", num_tasks=3)
    with torch.no_grad():
        m.log_vars.copy_(torch.tensor([0.3, -0.7, 1.1]))
    assert [p is m.log_vars for p in m.parameters()] == [True]
    present = torch.tensor([2, 0])
    m.combine(LOSSES[present], tasks=present).backward()
    s = m.log_vars.detach()
    expected = torch.zeros(3)
    expected[present] = 1 - torch.exp(-s[present]) * LOSSES[present]  # ∂(e^{-s}L + s)/∂s
    torch.testing.assert_close(m.log_vars.grad, expected)
    torch.testing.assert_close(m.last_weights, torch.tensor([math.exp(-0.3), 0.0, math.exp(-1.1)]))


def test_uw_starts_as_equal_weighting() -> None:
    losses = LOSSES.clone().requires_grad_(True)
    create("uw", num_tasks=3).combine(losses).backward()
    torch.testing.assert_close(losses.grad, torch.ones(3))


def test_dwa_weights_from_a_hand_computed_history() -> None:
    m = create("dwa", num_tasks=3, temperature=2.0)
    epochs = [  # (losses, present tasks) per step, grouped by epoch
        [(torch.tensor([1.0, 4.0, 2.0]), None), (torch.tensor([3.0, 2.0, 2.0]), None)],  # means 2, 3, 2
        [(torch.tensor([1.0, 3.0]), [0, 1]), (torch.tensor([1.0, 2.0]), [0, 1])],  # means 1, 2.5; task 2 absent
        [(torch.tensor([1.0]), [2])],  # only task 2: its history becomes 2 -> 1
    ]
    for epoch in epochs:
        for losses, tasks in epoch:
            assert torch.equal(m.weigh(losses, tasks), torch.ones(len(losses)))  # < 2 closed epochs: EW
        m.end_epoch()
    ratios = torch.tensor([1 / 2, 2.5 / 3, 1 / 2])
    expected = 3 * torch.exp(ratios / 2) / torch.exp(ratios / 2).sum()
    torch.testing.assert_close(m.weigh(torch.ones(3)), expected)


def test_dwa_ratio_is_one_until_two_epochs_are_closed() -> None:
    m = create("dwa", num_tasks=2)
    m.weigh(torch.tensor([1.0, 5.0]))
    m.end_epoch()
    assert torch.equal(m.weigh(torch.tensor([0.1, 5.0])), torch.ones(2))


def test_rlw_weights_are_random_positive_and_sum_to_the_task_count() -> None:
    m = create("rlw", num_tasks=4)
    torch.manual_seed(0)
    first = m.weigh(torch.ones(4))
    torch.manual_seed(0)
    again = m.weigh(torch.ones(4))
    assert (first > 0).all() and first.sum().item() == pytest.approx(4.0)
    assert torch.equal(first, again) and not torch.equal(first, m.weigh(torch.ones(4)))


def test_famo_weights_and_logit_update() -> None:
    m = create("famo", num_tasks=2, lr=0.5, weight_decay=0.0, eps=0.0)
    losses = torch.tensor([1.0, 4.0])
    w = m.weigh(losses)
    torch.testing.assert_close(w, torch.tensor([1.6, 0.4]))  # 2 · (z/L) / Σ z/L with z = (½, ½)
    torch.testing.assert_close(w * losses, torch.full((2,), 1.6))  # w_t L_t ∝ z_t: it descends Σ z_t log L_t
    m.update(torch.tensor([0.5, 4.0]))  # task 0 fell by log 2, task 1 not at all
    delta = torch.tensor([math.log(2.0), 0.0])
    z = torch.tensor([0.5, 0.5])
    torch.testing.assert_close(m.logits, -0.5 * z * (delta - (z * delta).sum()))
    assert m.logits[0] < 0 < m.logits[1]  # the task that improved gets less weight
