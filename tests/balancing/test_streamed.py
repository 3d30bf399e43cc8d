"""The streamed Gramian path gives the stored path's update, for every Gramian method.

``parameters_streamed`` never holds ``G``: it sums ``G Gᵀ`` one parameter tensor at a time
from a task-batched backward, then runs one backward of ``Σ w_t L_t``. Every trainable
parameter's ``.grad`` and the weights must equal ``parameters_stored``'s, in float64, under
bf16 autocast, and with a task absent (DDP: ``test_streamed_ddp.py``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from mtvision.balancing import METHODS, _stream, create
from mtvision.balancing import backward as backward_module
from mtvision.balancing._graph import Graph, convolution_nodes, cuts_at, stems
from mtvision.balancing._ranks import Tasks
from mtvision.balancing.backward import task_parameters
from mtvision.balancing.base import GramianBalancer


def _sibling(name: str):
    """A module of this folder (pytest's importlib mode puts no test folder on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(f"balancing_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_backward = _sibling("test_backward")  # the Tiny model and the helpers its tests use
NAMES, Tiny, grads_of, images, run = _backward.NAMES, _backward.Tiny, _backward.grads_of, _backward.images, _backward.run

GRAMIAN = sorted(n for n, cls in METHODS.items() if issubclass(cls, GramianBalancer) and cls.gradients_of == "parameters")
NEEDS_G = sorted(n for n, cls in METHODS.items() if cls.kind == "gradient" and not issubclass(cls, GramianBalancer))


def both_paths(name: str, model_factory, x: torch.Tensor, tasks: Sequence[str] = NAMES, steps: int = 2,
               autocast: bool = False) -> dict[str, tuple[list, torch.Tensor, str]]:
    """Each path from a fresh model and method, ``steps`` steps (stateful methods carry state),
    the same seed before each step (PCGrad's and GradVac's shuffles)."""
    out = {}
    for mode in ("parameters_stored", "parameters_streamed"):
        model, method = model_factory(), create(name, num_tasks=len(NAMES))
        params = task_parameters(model)
        for step in range(steps):
            torch.manual_seed(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                result = run(method, model, x, tasks=tasks, params=params, mode=mode)
        out[mode] = (grads_of(list(model.parameters())), result.weights, result.path)
    return out


def assert_same(out: dict, rtol: float, atol: float) -> None:
    """Elementwise in float64. The solvers stop at their own tolerances, and the two paths sum
    ``G Gᵀ`` in different orders, so the weights agree to ~1e-6 relative, not to round-off."""
    (stored, w_stored, path_stored), (streamed, w_streamed, path_streamed) = out.values()
    assert (path_stored, path_streamed) == ("parameters", "parameters_streamed")
    torch.testing.assert_close(w_streamed, w_stored, rtol=rtol, atol=atol)
    for a, b in zip(streamed, stored):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def assert_same_in_bf16(out: dict) -> None:
    """Under bf16 autocast the stored path backpropagates each task in bf16 and combines in
    float32, the streamed one backpropagates the combination in bf16: they agree to bf16's
    precision (8 bits of mantissa), so the whole update is compared by its relative error."""
    (stored, w_stored, _), (streamed, w_streamed, path) = out.values()
    assert path == "parameters_streamed"
    torch.testing.assert_close(w_streamed, w_stored, rtol=1e-2, atol=1e-3)
    a, b = (torch.cat([g.flatten() for g in grads]) for grads in (streamed, stored))
    assert (a - b).norm() <= 2e-2 * b.norm(), ((a - b).norm() / b.norm()).item()


def test_the_gramian_methods_are_the_ones_that_stream() -> None:
    assert len(GRAMIAN) >= 15 and {"upgrad", "mgda", "nash_mtl", "krum", "sdmgrad", "imtl"} <= set(GRAMIAN)
    assert set(NEEDS_G) == {"auto_lambda", "db_mtl", "excess_mtl", "graddrop", "moco", "trimmed_mean"}


@pytest.mark.parametrize("name", GRAMIAN)
def test_streamed_equals_stored(name: str) -> None:
    assert_same(both_paths(name, Tiny, images()), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", GRAMIAN)
def test_streamed_equals_stored_with_a_task_absent(name: str) -> None:
    out = both_paths(name, Tiny, images(), tasks=("a", "c"))
    assert out["parameters_streamed"][1][1] == 0  # the absent task has weight 0
    assert_same(out, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", GRAMIAN)
def test_streamed_equals_stored_under_bf16_autocast(name: str) -> None:
    out = both_paths(name, lambda: Tiny().float(), images().float(), autocast=True)
    assert_same_in_bf16(out)


@pytest.mark.parametrize("name", NEEDS_G)
def test_methods_that_need_g_hold_it_and_say_so_when_streaming_is_forced(name: str) -> None:
    model, x = Tiny(), images()
    with pytest.warns(RuntimeWarning, match="parameters_stored"):
        result = run(create(name, num_tasks=3), model, x, mode="parameters_streamed")
    assert result.path == "parameters"


def test_parameters_streams_only_when_g_would_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = Tiny(), images()
    assert run(create("upgrad", num_tasks=3), model, x, mode="parameters").path == "parameters"
    monkeypatch.setattr(backward_module, "available_bytes", lambda device: 1024)  # G is 3 × ~150 float64
    assert run(create("upgrad", num_tasks=3), model, x, mode="parameters").path == "parameters_streamed"


def test_a_failed_batched_pass_falls_back_to_the_stored_path(break_batched_grad: Callable[[], None]) -> None:
    model, x = Tiny(), images()
    break_batched_grad()
    with pytest.warns(RuntimeWarning, match="holding G instead"):
        result = run(create("mgda", num_tasks=3), model, x, mode="parameters_streamed")
    assert result.path == "parameters" and all(p.grad is not None for p in model.parameters())


def test_scale_and_non_finite_rows_on_the_streamed_path() -> None:
    model, x = Tiny(), images()
    plain = create("upgrad", num_tasks=3)
    run(plain, model, x, mode="parameters_streamed")
    expected = grads_of(list(model.parameters()))
    run(create("upgrad", num_tasks=3), model, x, mode="parameters_streamed", scale=1024.0)
    for a, e in zip(grads_of(list(model.parameters())), expected):
        torch.testing.assert_close(a / 1024.0, e, rtol=1e-10, atol=1e-12)
    features, losses = model.losses(x)
    losses["b"] = losses["b"] * float("inf")
    model.zero_grad(set_to_none=True)
    result = backward_module.balanced_backward(create("mgda", num_tasks=3), losses, task_parameters(model),
                                               mode="parameters_streamed")
    assert result.skipped and result.weights is None
    assert not all(torch.isfinite(p.grad).all() for p in model.trunk.parameters())


def test_streamed_diagnostics_match_the_stored_ones() -> None:
    results = [run(create("mgda", num_tasks=3), Tiny(), images(), mode=mode, diagnostics=True)
               for mode in ("parameters_stored", "parameters_streamed")]
    torch.testing.assert_close(results[1].grad_norms, results[0].grad_norms)
    torch.testing.assert_close(results[1].cosines, results[0].cosines)


def _exact_gramian(losses: list[torch.Tensor], shared: list[torch.Tensor]) -> torch.Tensor:
    rows = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(loss, shared, retain_graph=True)])
                        for loss in losses])
    return rows @ rows.T


def _streamed(losses: list[torch.Tensor], shared: list[torch.Tensor],
              features: list[torch.Tensor] | None = None) -> torch.Tensor:
    tasks = Tasks(["a", "b", "c"][:len(losses)], torch.arange(len(losses)), losses, torch.stack(losses).detach(),
                  [1.0] * len(losses), None)
    return _stream.streamed_gramian(tasks, shared, 1.0, features)


def test_stems_and_convolutions_stream_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stem (a convolution on the image and the chain above it) runs once per task from its
    top edge; a later convolution's weight gradient is computed by its node's pre-hook a few
    output channels at a time; a grouped convolution and a weight used twice keep the tensor
    hook. Whichever way, the Gramian is ``G Gᵀ`` of plain ``autograd.grad`` rows."""
    torch.manual_seed(0)
    stem, norm, middle, grouped, twice = (nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8),
                                          nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.Conv2d(12, 12, 1, groups=3),
                                          nn.Conv2d(12, 12, 1))
    modules = nn.ModuleList([stem, norm, middle, grouped, twice]).double()
    x = norm(stem(torch.randn(2, 3, 8, 8, dtype=torch.float64))).tanh()
    y = twice(twice(grouped(middle(x)).tanh()).tanh())
    shared = list(modules.parameters())
    losses = [y[:, i].pow(2).mean() * (i + 1) for i in range(3)]
    graph = Graph.of(torch.stack(losses))
    assert [[id(p) for p in s.parameters] for s in stems(graph, shared)] == [[id(p) for p in (*stem.parameters(),
                                                                                            *norm.parameters())]]
    below = {id(p) for p in (*stem.parameters(), *norm.parameters())}
    assert set(convolution_nodes(graph, shared, below)) == {id(middle.weight)}
    monkeypatch.setattr(_stream, "CHUNK_BYTES", 3 * 5 * 8 * 9 * 8)  # 5 of middle's 12 output channels a chunk
    torch.testing.assert_close(_streamed(losses, shared), _exact_gramian(losses, shared), rtol=1e-12, atol=1e-12)


def test_a_stem_whose_weight_is_used_again_higher_up_is_not_cut() -> None:
    """The stem's weight also convolves a later feature map: the gradient at the stem's top is
    not all it receives, so the stem is not run apart (and the weight keeps the tensor hook)."""
    torch.manual_seed(0)
    stem, middle = nn.Conv2d(3, 3, 3, padding=1).double(), nn.Conv2d(3, 3, 1).double()
    x = stem(torch.randn(2, 3, 6, 6, dtype=torch.float64)).tanh()
    y = stem(middle(x).tanh())
    shared = [*stem.parameters(), *middle.parameters()]
    losses = [y[:, i].pow(2).mean() for i in range(2)]
    assert stems(Graph.of(torch.stack(losses)), shared) == []
    torch.testing.assert_close(_streamed(losses, shared), _exact_gramian(losses, shared), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["pyramid", "chained", "shared_above"])
def test_the_batched_pass_starts_at_the_features_only_where_they_cut_the_graph(case: str) -> None:
    """Heads run once per task to the features when every path to a shared parameter passes
    through them and none is computed from another; otherwise the pass starts at the losses.
    Either way the Gramian is exact."""
    torch.manual_seed(0)
    trunk, fine, coarse, above = (nn.Conv2d(3, 4, 3, padding=1).double(), nn.Conv2d(4, 4, 1).double(),
                                  nn.Conv2d(4, 4, 2, stride=2).double(), nn.Conv2d(4, 4, 1).double())
    x = trunk(torch.randn(2, 3, 6, 6, dtype=torch.float64)).tanh()
    levels = [fine(x), coarse(x)]
    if case == "chained":
        levels[1] = levels[1] + nn.functional.avg_pool2d(levels[0], 2)
    shared = [p for m in (trunk, fine, coarse) for p in m.parameters()]
    read = levels
    if case == "shared_above":
        shared += list(above.parameters())
        read = [above(levels[0]), levels[1]]
    losses = [(read[0].mean() * (i + 1) - read[1].pow(2).mean() * i) ** 2 for i in range(3)]
    assert cuts_at(torch.stack(losses), levels, shared) == (case == "pyramid")
    torch.testing.assert_close(_streamed(losses, shared, levels), _exact_gramian(losses, shared), rtol=1e-12,
                               atol=1e-12)
