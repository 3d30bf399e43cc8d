"""balanced_backward against gradients computed by hand with plain backward passes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor, nn

from mtvision.balancing import available, create
from mtvision.balancing.backward import BackwardResult, TaskParameters, balanced_backward, task_parameters
from mtvision.balancing.base import GradientBalancer

NAMES = ("a", "b", "c")


class Head(nn.Module):
    """A 1x1 conv on one pyramid level, averaged to one number per image."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level, self.conv = level, nn.Conv2d(4, 1, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.conv(features[self.level]).mean((1, 2, 3))


class Tiny(nn.Module):
    """Conv trunk -> two-level "pyramid" (each level its own conv, as in the FPN) -> three
    heads; head c reads only the coarse level."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh())
        self.levels = nn.ModuleList([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 2, stride=2)])
        self.tasks = nn.ModuleDict({"a": Head(0), "b": Head(0), "c": Head(1)})
        self.double()

    def features(self, images: Tensor) -> list[Tensor]:
        x = self.trunk(images)
        return [level(x) for level in self.levels]

    def losses(self, images: Tensor, tasks: Sequence[str] = NAMES) -> tuple[list[Tensor], dict[str, Tensor]]:
        features = self.features(images)
        targets = torch.linspace(-1, 1, len(images), dtype=torch.float64)
        return features, {n: (self.tasks[n](features) - (i + 1) * targets).pow(2).mean()
                          for i, n in enumerate(NAMES) if n in tasks}


class Recorder(GradientBalancer):
    """Keeps the rows it is given and returns ``w @ G`` with fixed weights ``w_t = t + 1``."""

    def _aggregate(self, grads: Tensor, idx: Tensor, losses: Tensor | None) -> Tensor:
        self.grads = grads.clone()
        weights = (idx + 1).to(grads)
        self._record(weights, idx)
        return weights @ grads


def images(seed: int = 1) -> Tensor:
    return torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def plain_grads(model: Tiny, name: str, params: Sequence[Tensor], x: Tensor) -> list[Tensor]:
    """Gradients of one task's loss from its own ordinary backward pass (zero where unused)."""
    model.zero_grad(set_to_none=True)
    model.losses(x)[1][name].backward()
    grads = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    model.zero_grad(set_to_none=True)
    return grads


def flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def grads_of(params: Sequence[Tensor]) -> list[Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


def run(method, model: Tiny, x: Tensor, tasks: Sequence[str] = NAMES, params: TaskParameters | None = None,
        **options) -> BackwardResult:
    model.zero_grad(set_to_none=True)
    features, losses = model.losses(x, tasks)
    params = params or task_parameters(model)
    return balanced_backward(method, losses, params, features=features, **options)


def assert_grads_equal(actual: Sequence[Tensor | None], expected: Sequence[Tensor | None], scale: float = 1.0) -> None:
    for a, e in zip(actual, expected):
        assert (a is None) == (e is None)
        if a is not None:
            torch.testing.assert_close(a / scale, e, rtol=1e-10, atol=1e-12)


def test_task_parameters_split_heads_from_the_shared_trunk() -> None:
    model = Tiny()
    params = task_parameters(model)
    assert list(params.heads) == list(NAMES)
    shared = [*model.trunk.parameters(), *model.levels.parameters()]
    assert [id(p) for p in params.shared] == [id(p) for p in shared]
    assert [id(p) for p in params.heads["c"]] == [id(p) for p in model.tasks["c"].parameters()]


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_parameter_mode_rows_are_the_per_task_gradients(strategy: str) -> None:
    model, x = Tiny(), images()
    params, method = task_parameters(model), Recorder(3)
    expected = {n: plain_grads(model, n, [*params.shared, *params.heads[n]], x) for n in NAMES}
    run(method, model, images(seed=7), params=params, strategy=strategy)  # G's buffer is reused next call
    result = run(method, model, x, params=params, strategy=strategy)
    assert result.path == "parameters" and not result.skipped
    rows = torch.stack([flat(expected[n][:len(params.shared)]) for n in NAMES])
    torch.testing.assert_close(method.grads, rows, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(flat(grads_of(params.shared)), torch.tensor([1.0, 2.0, 3.0]).double() @ rows)
    for w, n in enumerate(NAMES, start=1):  # each head: its own task's gradient times the task weight
        assert_grads_equal(grads_of(params.heads[n]), [w * g for g in expected[n][len(params.shared):]])


def test_batched_falls_back_to_one_call_per_task(break_batched_grad: Callable[[], None]) -> None:
    model, x = Tiny(), images()
    run(Recorder(3), model, x)
    expected = grads_of(list(model.parameters()))
    break_batched_grad()
    with pytest.warns(RuntimeWarning, match="one task at a time"):
        run(Recorder(3), model, x, strategy="batched")
    assert_grads_equal(grads_of(list(model.parameters())), expected)


def test_loss_method_ew_gives_the_gradient_of_the_summed_loss() -> None:
    model, x = Tiny(), images()
    sum(model.losses(x)[1].values()).backward()
    expected = grads_of(list(model.parameters()))
    result = run(create("ew", num_tasks=3), model, x)
    assert result.path == "loss" and result.weights.tolist() == [1.0, 1.0, 1.0]
    assert_grads_equal(grads_of(list(model.parameters())), expected)


def test_pcgrad_two_conflicting_tasks_match_the_hand_projection() -> None:
    theta = nn.Parameter(torch.ones(2, dtype=torch.float64))
    heads = [nn.Parameter(torch.ones((), dtype=torch.float64)) for _ in range(2)]
    g1, g2 = torch.tensor([1.0, 0.0]).double(), torch.tensor([-1.0, 1.0]).double()  # g1·g2 = −1
    losses = {"a": heads[0] * (g1 @ theta), "b": heads[1] * (g2 @ theta)}
    params = TaskParameters([theta], {"a": [heads[0]], "b": [heads[1]]})
    result = balanced_backward(create("pcgrad", num_tasks=2), losses, params)
    # g1' = g1 − (g1·g2/‖g2‖²) g2 = g1 + ½ g2 and g2' = g2 − (g1·g2/‖g1‖²) g1 = g2 + g1: d = 2 g1 + 3/2 g2
    torch.testing.assert_close(theta.grad, torch.tensor([0.5, 1.5]).double())
    assert result.weights.tolist() == [2.0, 1.5]
    # heads: task weight × own gradient (∂L_a/∂h_a = g1·θ = 1, ∂L_b/∂h_b = g2·θ = 0)
    assert heads[0].grad.item() == pytest.approx(2.0) and heads[1].grad.item() == 0.0


def test_representation_mode_backprops_the_aggregated_feature_gradient() -> None:
    model, x = Tiny(), images()
    params = task_parameters(model)
    rows = []
    for n in NAMES:  # per-task gradients w.r.t. the features, from separate backward passes
        features, losses = model.losses(x)
        for f in features:
            f.retain_grad()
        losses[n].backward()
        rows.append(flat([torch.zeros_like(f) if f.grad is None else f.grad for f in features]))
    reference = create("mgda", num_tasks=3)
    d = reference.aggregate(torch.stack(rows))
    model.zero_grad(set_to_none=True)
    features = model.features(x)
    sizes = [f.numel() for f in features]
    torch.autograd.backward(features, [g.view_as(f) for g, f in zip(d.split(sizes), features)])
    expected = grads_of(params.shared)

    result = run(create("mgda_ub", num_tasks=3), model, x)
    assert result.path == "representation"
    torch.testing.assert_close(result.weights, reference.last_weights)
    assert_grads_equal(grads_of(params.shared), expected)
    for w, n in zip(result.weights.tolist(), NAMES):
        own = plain_grads(model, n, params.heads[n], x)
        model.zero_grad(set_to_none=True)
        run(create("mgda_ub", num_tasks=3), model, x)
        assert_grads_equal(grads_of(params.heads[n]), [w * g for g in own])


@pytest.mark.parametrize(("name", "mode"), [("upgrad", "parameters"), ("mgda", "representation")])
def test_reused_weights_give_the_update_just_computed(name: str, mode: str) -> None:
    model, x = Tiny(), images()
    method = create(name, num_tasks=3)
    run(method, model, x, mode=mode)
    full = grads_of(list(model.parameters()))
    weights = method.last_weights.clone()
    result = run(method, model, x, reuse_weights=True)
    assert result.path == "reuse" and torch.equal(method.last_weights, weights)
    assert_grads_equal(grads_of(list(model.parameters())), full)


@pytest.mark.parametrize(("name", "mode"), [("upgrad", "parameters"), ("mgda_ub", "representation"),
                                            ("uw", None), ("imtl_g", "parameters")])
def test_amp_scale_is_undone_before_the_method_and_reapplied_to_grad(name: str, mode: str | None) -> None:
    model, x = Tiny(), images()
    scaled, plain = create(name, num_tasks=3), create(name, num_tasks=3)
    run(plain, model, x, mode=mode)
    expected = grads_of([*model.parameters(), *plain.parameters()])
    run(scaled, model, x, mode=mode, scale=1024.0)
    assert_grads_equal(grads_of([*model.parameters(), *scaled.parameters()]), expected, scale=1024.0)
    torch.testing.assert_close(scaled.last_weights, plain.last_weights)


@pytest.mark.parametrize("mode", ["parameters", "representation"])
def test_an_absent_task_has_no_row_and_its_head_no_gradient(mode: str) -> None:
    model, x = Tiny(), images()
    params, method = task_parameters(model), Recorder(3)
    result = run(method, model, x, tasks=("a", "c"), mode=mode)
    assert result.tasks.tolist() == [0, 2] and method.grads.shape[0] == 2
    assert all(p.grad is None for p in params.heads["b"])
    assert all(p.grad is not None for p in params.heads["c"])
    if mode == "parameters":
        expected = [flat(plain_grads(model, n, params.shared, x)) for n in ("a", "c")]
        torch.testing.assert_close(method.grads, torch.stack(expected))


def test_a_non_finite_row_skips_the_method_and_leaves_non_finite_grads() -> None:
    model, x = Tiny(), images()
    method = create("mgda", num_tasks=3)
    features, losses = model.losses(x)
    losses["b"] = losses["b"] * float("inf")
    result = balanced_backward(method, losses, task_parameters(model))
    assert result.skipped and result.weights is None and method.last_weights is None
    assert not all(torch.isfinite(p.grad).all() for p in model.trunk.parameters())


def test_diagnostics_are_the_norms_and_cosines_of_the_rows() -> None:
    model, x = Tiny(), images()
    method = Recorder(3)
    result = run(method, model, x, tasks=("a", "b"), diagnostics=True)
    g = method.grads
    torch.testing.assert_close(result.grad_norms[:2], g.norm(dim=1))
    assert torch.isnan(result.grad_norms[2]) and torch.isnan(result.cosines[2]).all()
    cosine = torch.nn.functional.cosine_similarity(g[0], g[1], dim=0)
    torch.testing.assert_close(result.cosines[0, 1], cosine)
    torch.testing.assert_close(result.cosines[:2, :2].diagonal(), torch.ones(2, dtype=torch.float64))


def test_mismatched_task_count_and_missing_features_are_explained() -> None:
    model, x = Tiny(), images()
    _, losses = model.losses(x)
    with pytest.raises(ValueError, match="num_tasks=3"):
        balanced_backward(create("mgda", num_tasks=2), losses, task_parameters(model))
    with pytest.raises(ValueError, match="features="):
        balanced_backward(create("mgda_ub", num_tasks=3), losses, task_parameters(model))


@pytest.mark.parametrize("mode", ["parameters", "representation"])
@pytest.mark.parametrize("name", available())
def test_every_method_writes_the_combination_of_task_gradients_its_weights_name(name: str, mode: str) -> None:
    """End to end through ``balanced_backward``, each method in each mode: every trainable
    parameter gets a finite gradient, and whenever the method reports weights (all but GradDrop
    and DB-MTL) the shared gradient is ``Σ w_t ∇L_t`` and each head's is ``w_t ∇L_t``, against
    one plain backward per task."""
    method = create(name, num_tasks=len(NAMES))
    if method.kind == "loss" and mode == "representation":
        pytest.skip("a loss method has one path: one backward of its weighted sum")
    model, x = Tiny(), images()
    params = task_parameters(model)
    result = run(method, model, x, params=params, mode=mode)
    heads = {n: grads_of(params.heads[n]) for n in NAMES}
    shared = grads_of(params.shared)
    assert all(g is not None and torch.isfinite(g).all() for g in [*shared, *(g for h in heads.values() for g in h)])
    if result.weights is None:  # an elementwise rule or past gradients: no weights to check against
        assert name in {"graddrop", "db_mtl", "moco", "trimmed_mean"}
        return
    w = result.weights.double()
    expected = sum(w[i] * flat(plain_grads(model, n, params.shared, x)) for i, n in enumerate(NAMES))
    torch.testing.assert_close(flat(shared), expected, rtol=1e-9, atol=1e-12)
    for i, n in enumerate(NAMES):
        torch.testing.assert_close(flat(heads[n]), w[i] * flat(plain_grads(model, n, params.heads[n], x)),
                                   rtol=1e-9, atol=1e-12)
