"""Krum, TrimmedMean, SDMGrad, ExcessMTL, MoCo, STCH, IMTL and IMTL-L against oracles.

TorchJD 0.18 (a test dependency) is the oracle for Krum, TrimmedMean, SDMGrad and
ExcessMTL; MoCo is checked against LibMTL's update written out in torch; STCH, IMTL and
IMTL-L against closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchjd.aggregation import ExcessMTLWeighting, KrumWeighting, SDMGradWeighting, TrimmedMean

from mtvision.balancing import create
from mtvision.balancing._solvers import project_simplex


def gaussian(k: int, d: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=gen, dtype=torch.float64) * (torch.rand(k, 1, generator=gen) * 3 + 0.5)


def test_krum_picks_the_gradient_closest_to_the_crowd_as_torchjd_does() -> None:
    gen = torch.Generator().manual_seed(1)
    centre = torch.randn(30, generator=gen, dtype=torch.float64)
    crowd = centre + 0.1 * torch.randn(5, 30, generator=gen, dtype=torch.float64)
    outliers = 20 * torch.randn(2, 30, generator=gen, dtype=torch.float64)
    grads = torch.cat([outliers[:1], crowd, outliers[1:]])
    for f, m in ((2, 1), (2, 3), (1, 2)):
        expected = KrumWeighting(n_byzantine=f, n_selected=m)(grads @ grads.T)
        method = create("krum", num_tasks=7, n_byzantine=f, n_selected=m)
        torch.testing.assert_close(method.aggregate(grads), expected @ grads)
        assert method.last_weights[[0, 6]].tolist() == [0.0, 0.0]


def test_krum_by_hand_and_its_two_task_mean() -> None:
    grads = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    # f = 0: two nearest others. Squared distances: 0 -> {1, 1}, 1 -> {1, 2}, 2 -> {1, 2}, 3 -> {181, 181}
    assert create("krum", num_tasks=4).aggregate(grads).tolist() == [0.0, 0.0]
    two = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert create("krum", num_tasks=2).aggregate(two).tolist() == [0.5, 1.5]


@pytest.mark.parametrize(("k", "trim"), [(3, 1), (6, 1), (6, 2), (5, 0)])
def test_trimmed_mean_equals_torchjd(k: int, trim: int) -> None:
    grads = gaussian(k, d=70_000, seed=k)  # several column blocks
    torch.testing.assert_close(create("trimmed_mean", num_tasks=k, trim=trim).aggregate(grads),
                               TrimmedMean(trim_number=trim)(grads))


def test_trimmed_mean_of_two_tasks_is_their_mean() -> None:
    grads = gaussian(2)
    torch.testing.assert_close(create("trimmed_mean", num_tasks=2).aggregate(grads), grads.mean(0))


@pytest.mark.parametrize("k", [2, 3, 6])
def test_sdmgrad_follows_torchjd_over_steps(k: int) -> None:
    ours, theirs = create("sdmgrad", num_tasks=k), SDMGradWeighting()
    for seed in range(4):
        grads = gaussian(k, seed=seed)
        out = ours.aggregate(grads)
        weights = theirs(grads @ grads.T)
        torch.testing.assert_close(ours.last_weights.double(), weights, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(out, weights @ grads, rtol=1e-5, atol=1e-6)


def test_simplex_projection_is_the_closest_point() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.normal(size=5) * 3
        p = project_simplex(y)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-12
        for _ in range(50):  # no other simplex point is closer
            q = rng.dirichlet(np.ones(5))
            assert np.linalg.norm(y - p) <= np.linalg.norm(y - q) + 1e-12


@pytest.mark.parametrize("k", [2, 3, 6])
def test_excess_mtl_follows_torchjd_over_steps(k: int) -> None:
    ours, theirs = create("excess_mtl", num_tasks=k), ExcessMTLWeighting()
    for seed in range(4):
        grads = gaussian(k, seed=seed)
        out = ours.aggregate(grads)
        weights = theirs(grads)
        torch.testing.assert_close(ours.last_weights.double(), weights, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(out, weights @ grads, rtol=1e-5, atol=1e-6)


def libmtl_moco(grads_seq: list[torch.Tensor], losses_seq: list[torch.Tensor]) -> torch.Tensor:
    """LibMTL's MoCo update (``LibMTL/weighting/MoCo.py``), written out: the last step's ``d``."""
    k = grads_seq[0].shape[0]
    y, lambd = torch.zeros_like(grads_seq[0]), torch.ones(k, dtype=torch.float64) / k
    for step, (grads, losses) in enumerate(zip(grads_seq, losses_seq), start=1):
        grads = grads / (grads.norm(dim=1, keepdim=True) + 1e-8) * losses[:, None]
        y = y - (0.5 / step**0.5) * (y - grads)
        lambd = torch.softmax(lambd - (0.1 / step**0.5) * (y @ y.T) @ lambd, -1)
    return y.T @ lambd


@pytest.mark.parametrize("k", [2, 3, 6])
def test_moco_equals_libmtls_update(k: int) -> None:
    grads = [gaussian(k, seed=s) for s in range(3)]
    losses = [torch.rand(k, generator=torch.Generator().manual_seed(s), dtype=torch.float64) + 0.5 for s in range(3)]
    method = create("moco", num_tasks=k)
    for g, loss in zip(grads, losses):
        out = method.aggregate(g, losses=loss)
    torch.testing.assert_close(out, libmtl_moco(grads, losses))
    assert method.last_weights is None


def test_stch_weights_are_the_gradient_of_the_smooth_tchebycheff_loss() -> None:
    m = create("stch", num_tasks=3, mu=0.5, warmup_epochs=1)
    warm = [torch.tensor([1.0, 2.0, 4.0]), torch.tensor([3.0, 2.0, 2.0])]
    for losses in warm:
        torch.testing.assert_close(m.weigh(losses), 1 / losses)  # warm-up: summed log-losses
    m.end_epoch()
    nadir = torch.stack(warm).mean(0)
    losses = torch.tensor([1.5, 2.5, 0.5], requires_grad=True)
    (3 * 0.5 * torch.logsumexp((losses / nadir).log() / 0.5, 0)).backward()
    torch.testing.assert_close(m.weigh(losses.detach()), losses.grad)


def test_imtl_l_weights_drive_every_scaled_loss_to_one() -> None:
    m = create("imtl_l", num_tasks=2)
    optimizer = torch.optim.SGD(m.parameters(), lr=0.1)
    losses = torch.tensor([0.5, 4.0])
    for _ in range(300):
        optimizer.zero_grad()
        m.combine(losses).backward()
        optimizer.step()
    torch.testing.assert_close(m.weigh(losses).detach() * losses, torch.ones(2), rtol=1e-3, atol=1e-3)


def test_imtl_starts_as_imtl_g_then_takes_the_imtl_l_step() -> None:
    grads, losses = gaussian(3), torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    hybrid, plain = create("imtl", num_tasks=3, lr=0.1), create("imtl_g", num_tasks=3)
    torch.testing.assert_close(hybrid.aggregate(grads, losses=losses), plain.aggregate(grads))
    torch.testing.assert_close(hybrid.log_scales, -0.1 * (losses - 1))
    before = hybrid.log_scales.clone()
    d = hybrid.aggregate(grads, losses=losses)  # equal projections on the unit (scaled) gradients
    projections = grads @ d / grads.norm(dim=1)
    torch.testing.assert_close(projections, projections.mean().expand(3), rtol=1e-6, atol=1e-9)
    # the weights on the raw gradients are IMTL-G's affine α (Σ α = 1) times that step's loss scales
    torch.testing.assert_close((hybrid.last_weights.double() / before.exp()).sum(), torch.tensor(1.0).double())
