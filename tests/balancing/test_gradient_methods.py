"""Closed-form checks of the gradient-balancing methods."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
from torch import Tensor
from torch.nn.functional import cosine_similarity, normalize

from mtvision.balancing import create

PAIR = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # g1·g2 = −1: a conflicting pair


def gaussian(num_tasks: int, seed: int, dim: int = 50) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_tasks, dim, generator=gen, dtype=torch.float64) * torch.arange(1, num_tasks + 1)[:, None]


@pytest.mark.parametrize("seed", range(6))
def test_mgda_two_task_weights_match_the_closed_form(seed: int) -> None:
    g1, g2 = gaussian(2, seed)
    if seed % 2:  # also cover the clipped case: g2 nearly parallel to a longer g1
        g2 = 0.3 * g1 + 0.01 * g2
    m = create("mgda", num_tasks=2)
    m.aggregate(torch.stack([g1, g2]).float())
    alpha = torch.clamp((g2 - g1) @ g2 / (g1 - g2).square().sum(), 0, 1).item()
    torch.testing.assert_close(m.last_weights, torch.tensor([alpha, 1 - alpha]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_tasks", [3, 6])
def test_mgda_satisfies_the_min_norm_optimality_conditions(num_tasks: int) -> None:
    grads = gaussian(num_tasks, num_tasks).float()
    m = create("mgda", num_tasks=num_tasks)
    d = m.aggregate(grads)
    alpha = m.last_weights
    assert alpha.min() >= 0 and alpha.sum().item() == pytest.approx(1.0)
    slack = grads @ d - d @ d  # ≥ 0 everywhere, = 0 where α_t > 0
    assert (slack > -1e-3).all() and (slack[alpha > 1e-6].abs() < 1e-3).all()


def test_mgda_l2_normalisation_balances_unit_gradients() -> None:
    grads = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    m = create("mgda", num_tasks=2, normalize="l2")
    torch.testing.assert_close(m.aggregate(grads), torch.tensor([0.5, 0.5]))  # midpoint of the unit vectors
    torch.testing.assert_close(m.last_weights, torch.tensor([0.5 / 3.0, 0.5 / 0.5]))
    with pytest.raises(ValueError, match="losses="):
        create("mgda", num_tasks=2, normalize="loss").aggregate(grads)


def test_mgda_ub_is_mgda_on_representation_gradients() -> None:
    ub, plain = create("mgda_ub", num_tasks=2), create("mgda", num_tasks=2)
    assert ub.gradients_of == "representation" and plain.gradients_of == "parameters"
    torch.testing.assert_close(ub.aggregate(PAIR), plain.aggregate(PAIR))


def test_pcgrad_projects_a_hand_made_conflicting_pair() -> None:
    m = create("pcgrad", num_tasks=2)
    # g1' = g1 − (−1/2) g2 = (½, ½);  g2' = g2 − (−1/1) g1 = (0, 1)
    torch.testing.assert_close(m.aggregate(PAIR), torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(m.last_weights, torch.tensor([2.0, 1.5]))


@pytest.mark.parametrize("name", ["pcgrad", "upgrad", "dualproj", "aligned_mtl", "config", "gradvac"])
def test_orthogonal_equal_gradients_give_equal_weighting(name: str) -> None:
    grads = 2.0 * torch.eye(3, 5)
    torch.testing.assert_close(create(name, num_tasks=3).aggregate(grads), grads.sum(0))


@pytest.mark.parametrize("seed", range(4))
def test_upgrad_equals_pcgrad_for_two_tasks(seed: int) -> None:
    grads = gaussian(2, seed).float()
    grads[1] -= 1.5 * grads[0]  # make them conflict
    expected = create("pcgrad", num_tasks=2).aggregate(grads)
    torch.testing.assert_close(create("upgrad", num_tasks=2).aggregate(grads), expected, rtol=1e-4, atol=1e-4)


def project_onto_dual_cone(g: Tensor, grads: Tensor) -> Tensor:
    """Exact projection of g onto {x : grads @ x ≥ 0} by enumerating the active sets: the
    projection is the closest feasible one of the projections onto {x : g_s·x = 0, s ∈ S}."""
    candidates = [g] if (grads @ g >= 0).all() else []
    for size in range(1, len(grads) + 1):
        for subset in combinations(range(len(grads)), size):
            a = grads[list(subset)]
            x = g - a.T @ torch.linalg.lstsq(a @ a.T, a @ g).solution
            if (grads @ x >= -1e-9).all():
                candidates.append(x)
    return min(candidates, key=lambda x: float((x - g).norm()))


def test_upgrad_and_dualproj_match_exact_dual_cone_projections() -> None:
    grads = gaussian(4, 11)
    grads[1:] -= 0.8 * grads[0]
    upgrad = create("upgrad", num_tasks=4).aggregate(grads.float()).double()
    expected = sum(project_onto_dual_cone(g, grads) for g in grads)
    assert not torch.allclose(expected, grads.sum(0), atol=1e-2)  # the projections do act
    torch.testing.assert_close(upgrad, expected, rtol=1e-4, atol=1e-4)
    dualproj = create("dualproj", num_tasks=4).aggregate(grads.float()).double()
    torch.testing.assert_close(dualproj, project_onto_dual_cone(grads.sum(0), grads), rtol=1e-4, atol=1e-4)


def test_dualproj_projects_the_summed_gradient() -> None:
    grads = torch.tensor([[1.0, 0.0], [-2.0, 0.5]])  # sum (−1, ½) conflicts with g1
    m = create("dualproj", num_tasks=2)
    torch.testing.assert_close(m.aggregate(grads), torch.tensor([0.0, 0.5]))  # closest point with x1 ≥ 0
    torch.testing.assert_close(m.last_weights, torch.tensor([2.0, 1.0]))


@pytest.mark.parametrize("num_tasks", [2, 3, 6])
def test_imtl_g_has_equal_projections_on_the_unit_gradients(num_tasks: int) -> None:
    grads = gaussian(num_tasks, 3).float()
    m = create("imtl_g", num_tasks=num_tasks)
    projections = normalize(grads, dim=1) @ m.aggregate(grads)
    torch.testing.assert_close(projections, projections.mean().expand(num_tasks), rtol=1e-4, atol=1e-4)
    assert m.last_weights.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("num_tasks", [2, 3, 6])
def test_config_matches_the_pseudo_inverse_formula(num_tasks: int) -> None:
    grads = gaussian(num_tasks, 5)
    grads[1] -= 2 * grads[0]
    unit = normalize(grads, dim=1)
    direction = normalize(torch.linalg.pinv(unit) @ torch.ones(num_tasks, dtype=torch.float64), dim=0)
    expected = (grads @ direction).sum() * direction
    out = create("config", num_tasks=num_tasks).aggregate(grads.float())
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)
    cosines = cosine_similarity(out[None], grads.float(), dim=1)
    assert (cosines > 0).all() and torch.allclose(cosines, cosines[0].expand(num_tasks), atol=1e-4)


@pytest.mark.parametrize("name, alpha", [("nash_mtl", 1.0), ("fairgrad", 2.0), ("fairgrad", 0.5)])
def test_alpha_fair_weights_solve_their_system(name: str, alpha: float) -> None:
    grads = gaussian(4, 2)
    grads[2] -= grads[0]
    m = create(name, num_tasks=4) if name == "nash_mtl" else create(name, num_tasks=4, alpha=alpha)
    m.aggregate(grads.float())
    w = m.last_weights.double()
    gramian = grads @ grads.T / torch.linalg.matrix_norm(grads @ grads.T)  # Frobenius-normalised
    ridge = 1e-8 * gramian.diagonal() * w  # the solver's ridge on the cosine matrix
    torch.testing.assert_close(gramian @ w + ridge, w ** (-1 / alpha), rtol=1e-4, atol=1e-6)


def test_fairgrad_with_alpha_one_is_nash_mtl_and_both_scale_with_the_gradients() -> None:
    grads = gaussian(3, 8).float()
    nash = create("nash_mtl", num_tasks=3).aggregate(grads)
    torch.testing.assert_close(create("fairgrad", num_tasks=3, alpha=1.0).aggregate(grads), nash)
    torch.testing.assert_close(create("nash_mtl", num_tasks=3).aggregate(10 * grads), 10 * nash, rtol=1e-4, atol=1e-4)


def test_aligned_mtl_equalises_the_singular_values() -> None:
    grads = gaussian(3, 4)
    u, s, vh = torch.linalg.svd(grads, full_matrices=False)
    expected = (s.min() * u @ vh).sum(0)  # closest G with equal singular values, rows summed
    out = create("aligned_mtl", num_tasks=3).aggregate(grads.float())
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


def test_aligned_mtl_on_orthogonal_gradients_rescales_to_the_smallest() -> None:
    grads = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
    m = create("aligned_mtl", num_tasks=3)
    torch.testing.assert_close(m.aggregate(grads), torch.ones(3))
    torch.testing.assert_close(m.last_weights, torch.tensor([1.0, 0.5, 0.25]))


def test_cagrad_with_c_zero_is_the_mean_gradient() -> None:
    grads = gaussian(3, 1).float()
    torch.testing.assert_close(create("cagrad", num_tasks=3, c=0.0).aggregate(grads), grads.mean(0))


def test_cagrad_maximises_the_worst_improvement_in_its_ball() -> None:
    grads = gaussian(3, 6)
    grads[1] -= 1.2 * grads[0]
    c = 0.5
    d = create("cagrad", num_tasks=3, c=c, rescale=False).aggregate(grads.float()).double()
    mean = grads.mean(0)
    radius = c * mean.norm()
    assert (d - mean).norm().item() == pytest.approx(radius.item(), rel=1e-4)
    candidates = mean + radius * normalize(torch.randn(4000, grads.shape[1], dtype=torch.float64), dim=1)
    best_random = (candidates @ grads.T).min(dim=1).values.max()
    assert (grads @ d).min() >= best_random - 1e-4
    rescaled = create("cagrad", num_tasks=3, c=c).aggregate(grads.float()).double()
    torch.testing.assert_close(rescaled, d / (1 + c**2), rtol=1e-4, atol=1e-5)


def test_gradvac_raises_each_cosine_to_its_target() -> None:
    grads = gaussian(2, 9).float()
    grads[1] -= 0.5 * grads[0]
    m = create("gradvac", num_tasks=2, beta=0.01)
    torch.testing.assert_close(m.aggregate(grads), create("pcgrad", num_tasks=2).aggregate(grads))  # target 0
    cosine = cosine_similarity(grads[0], grads[1], dim=0).double()
    torch.testing.assert_close(m.targets, torch.tensor([[0.0, 0.01], [0.01, 0.0]], dtype=torch.float64) * cosine)
    m.load_state_dict({"targets": torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=torch.float64)})
    m.aggregate(grads)
    w = m.last_weights  # g1' = g1 + (w2 − 1) g2,  g2' = g2 + (w1 − 1) g1
    altered = torch.stack([grads[0] + (w[1] - 1) * grads[1], grads[1] + (w[0] - 1) * grads[0]])
    torch.testing.assert_close(cosine_similarity(altered, grads.flip(0), dim=1), torch.tensor([0.5, 0.5]))


def test_graddrop_keeps_one_sign_per_coordinate_with_probability_the_purity() -> None:
    dim = 20000
    grads = torch.stack([torch.full((dim,), 3.0), torch.full((dim,), -1.0)])  # purity P = ½(1 + 2/4) = ¾
    grads[:, :10] = grads[:, :10].abs()  # agreeing coordinates pass through summed
    torch.manual_seed(0)
    out = create("graddrop", num_tasks=2).aggregate(grads)
    assert torch.equal(out[:10], torch.full((10,), 4.0))
    assert set(out[10:].unique().tolist()) == {3.0, -1.0}
    assert (out[10:] > 0).float().mean().item() == pytest.approx(0.75, abs=0.02)


def test_gradnorm_moves_weights_towards_balanced_gradient_norms() -> None:
    grads = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # norms 1 and 3
    m = create("gradnorm", num_tasks=2, alpha=1.5, lr=0.025)
    torch.testing.assert_close(m.aggregate(grads, losses=torch.ones(2)), grads.sum(0))  # w starts at 1
    # equal loss ratios -> target = mean(w‖g‖) = 2; step = sign(w‖g‖ − 2) ‖g‖ / 2 = (−½, 3/2)
    updated = torch.tensor([1 + 0.025 * 0.5, 1 - 0.025 * 1.5])
    expected = updated * 2 / updated.sum()
    torch.testing.assert_close(m.weights.float(), expected)
    m.aggregate(grads, losses=torch.ones(2))
    torch.testing.assert_close(m.last_weights, expected)


def test_db_mtl_balances_log_loss_gradients_with_an_ema() -> None:
    grads = torch.tensor([[2.0, 0.0], [0.0, 6.0]])
    losses = torch.tensor([2.0, 3.0])  # log-loss gradients (1, 0) and (0, 2)
    m = create("db_mtl", num_tasks=2, beta=0.9, sigma=0.5, eps=0.0)
    torch.testing.assert_close(m.aggregate(grads, losses=losses), torch.tensor([2.0, 2.0]))  # both scaled to norm 2
    beta = 0.9 / 2**0.5
    new = torch.tensor([[0.0, 1.0], [3.0, 0.0]])  # second step: log-loss gradients (0, 1) and (3, 0)
    ema = beta * torch.tensor([[1.0, 0.0], [0.0, 2.0]]) + (1 - beta) * new
    norms = ema.norm(dim=1)
    expected = (norms.max() / norms) @ ema
    torch.testing.assert_close(m.aggregate(new * losses[:, None], losses=losses), expected)
    assert m.last_weights is None
