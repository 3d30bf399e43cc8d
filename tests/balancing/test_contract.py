"""One contract, checked over every registered method (DESIGN §6: the torchjd pattern)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from mtvision.balancing import METHODS, Balancer, available, create

ALL = available()
LOSS = [n for n in ALL if METHODS[n].kind == "loss"]
GRADIENT = [n for n in ALL if METHODS[n].kind == "gradient"]
STATEFUL = [n for n in ALL if create(n, num_tasks=3).state_dict()]
STATELESS = [n for n in ALL if n not in STATEFUL]
SIZES = [2, 3, 6]
# Methods that draw random numbers: compared only under equal seeds, never across permutations.
RANDOM = {
    "rlw": "samples its weights",
    "graddrop": "samples a sign per coordinate",
    "pcgrad": "shuffles the projection order when T > 2",
    "gradvac": "shuffles the alignment order when T > 2",
}
# Stateful methods whose state may legitimately not move on a step: the present tasks' state
# is already the step's fixed point (checked: the absent task's state still must not move).
STILL_STATE = {"sdmgrad": "its simplex weights may sit at a vertex, which projected SGD keeps"}
# Methods whose update provably conflicts with no task: d·g_t ≥ 0 for all t.
NON_CONFLICTING = ["config", "dualproj", "fairgrad", "mgda", "mgda_ub", "nash_mtl", "upgrad"]


def deterministic(name: str, num_tasks: int) -> bool:
    return name not in RANDOM or (name in ("pcgrad", "gradvac") and num_tasks == 2)


def seeded(seed: int, fn: Callable[[], Tensor]) -> Tensor:
    torch.manual_seed(seed)
    return fn()


def test_registry_has_thirty_two_lower_case_methods_of_both_kinds() -> None:
    assert len(ALL) >= 32 and ALL == sorted(ALL)
    assert all(n == n.lower() and " " not in n for n in ALL)
    assert {"ew", "uw", "famo"} <= set(LOSS) and {"pcgrad", "mgda", "upgrad", "nash_mtl"} <= set(GRADIENT)


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match="available: .*pcgrad"):
        create("pcgard", num_tasks=2)


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match="'temprature'.*temperature"):
        create("dwa", num_tasks=2, temprature=1.0)


def test_names_are_case_and_dash_insensitive() -> None:
    assert type(create("Nash-MTL", num_tasks=2)) is METHODS["nash_mtl"]


@pytest.mark.parametrize("name", ALL)
def test_kind_and_entry_point(name: str) -> None:
    m = create(name, num_tasks=3)
    assert isinstance(m, Balancer) and m.kind in ("loss", "gradient") and m.last_weights is None
    assert hasattr(m, "weigh" if m.kind == "loss" else "aggregate")


@pytest.mark.parametrize("num_tasks", SIZES)
@pytest.mark.parametrize("name", ALL)
def test_shape_finite_and_last_weights(name: str, num_tasks: int, make_inputs, step) -> None:
    m = create(name, num_tasks=num_tasks)
    for seed in range(3):
        losses, grads = make_inputs(num_tasks, seed)
        out = step(m, (losses, grads))
        assert out.shape == ((num_tasks,) if m.kind == "loss" else (grads.shape[1],))
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    if m.kind == "loss":
        assert torch.equal(m.last_weights, out)
    elif m.last_weights is not None:  # the update is exactly the recorded combination
        torch.testing.assert_close(m.last_weights @ grads, out, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("num_tasks", SIZES)
@pytest.mark.parametrize("name", GRADIENT)
def test_identical_gradients_give_a_positive_multiple(name: str, num_tasks: int, make_inputs) -> None:
    losses, grads = make_inputs(num_tasks, seed=7)
    g = grads[0]
    out = create(name, num_tasks=num_tasks).aggregate(g.expand(num_tasks, -1).clone(), losses=losses)
    assert out @ g > 0
    assert torch.nn.functional.cosine_similarity(out, g, dim=0) > 1 - 1e-5


@pytest.mark.parametrize("zero_rows", [[1], [0, 1, 2]])
@pytest.mark.parametrize("name", GRADIENT)
def test_zero_gradients_keep_everything_finite(name: str, zero_rows: list[int], make_inputs) -> None:
    losses, grads = make_inputs(3, seed=3)
    grads[zero_rows] = 0
    for present in (torch.arange(3), torch.tensor(zero_rows[:1])):
        m = create(name, num_tasks=3)
        out = m.aggregate(grads[present], tasks=present, losses=losses[present])
        assert torch.isfinite(out).all()
        assert m.last_weights is None or torch.isfinite(m.last_weights).all()


@pytest.mark.parametrize("num_tasks", SIZES)
@pytest.mark.parametrize("name", ALL)
def test_permuting_tasks_permutes_weights_and_keeps_the_update(name: str, num_tasks: int, make_inputs, step) -> None:
    if not deterministic(name, num_tasks):
        pytest.skip(RANDOM[name])
    perm = torch.roll(torch.arange(num_tasks), 1)
    first, second = make_inputs(num_tasks, 0), make_inputs(num_tasks, 1)
    plain, permuted = create(name, num_tasks=num_tasks), create(name, num_tasks=num_tasks)
    for losses, grads in (first, second):
        expected = step(plain, (losses, grads))
        out = step(permuted, (losses[perm], grads[perm]), tasks=perm)
        torch.testing.assert_close(out, expected[perm] if plain.kind == "loss" else expected, rtol=1e-4, atol=1e-5)
        if plain.last_weights is not None:
            torch.testing.assert_close(permuted.last_weights, plain.last_weights, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num_tasks", SIZES)
@pytest.mark.parametrize("name", NON_CONFLICTING + ["pcgrad"])
def test_update_conflicts_with_no_task(name: str, num_tasks: int, make_conflicting) -> None:
    if name == "pcgrad" and num_tasks > 2:
        pytest.skip("PCGrad only guarantees it for two tasks")
    for seed, spread in enumerate([1.0, 1.0, 1.0, 1e3, 1e3, 1e6]):
        grads = make_conflicting(num_tasks, seed, spread=spread)
        out = create(name, num_tasks=num_tasks).aggregate(grads, losses=torch.ones(num_tasks))
        tolerance = 1e-5 * out.norm() * grads.norm(dim=1)
        assert (grads @ out >= -tolerance).all(), (grads @ out).tolist()


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip_reproduces_the_next_output(name: str, make_inputs, step) -> None:
    m = create(name, num_tasks=3)
    for seed in range(3):
        step(m, make_inputs(3, seed))
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    restored = create(name, num_tasks=3)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    nxt = make_inputs(3, seed=10)
    expected = seeded(5, lambda: step(m, nxt))
    torch.testing.assert_close(seeded(5, lambda: step(restored, nxt)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_partial_labels_equal_the_method_on_the_present_tasks(name: str, make_inputs, step) -> None:
    present = torch.tensor([2, 0])
    full, only = create(name, num_tasks=3), create(name, num_tasks=2)
    for seed in range(3):
        losses, grads = make_inputs(3, seed)
        inputs = (losses[present], grads[present])
        out = seeded(seed, lambda: step(full, inputs, tasks=present))
        torch.testing.assert_close(out, seeded(seed, lambda: step(only, inputs)), rtol=1e-5, atol=1e-6)
        if full.last_weights is not None:
            assert full.last_weights[1] == 0
            torch.testing.assert_close(full.last_weights[present], only.last_weights, rtol=1e-5, atol=1e-6)


def test_the_methods_that_learn_or_remember_keep_state() -> None:
    assert set(STATEFUL) >= {"db_mtl", "dwa", "famo", "gradnorm", "gradvac", "uw",  # EMAs, histories, learnt weights
                             "excess_mtl", "imtl", "imtl_l", "moco", "sdmgrad", "stch", "auto_lambda"}
    assert {"ew", "pcgrad", "mgda", "upgrad", "krum", "trimmed_mean"} <= set(STATELESS)


@pytest.mark.parametrize("name", STATEFUL)
def test_absent_tasks_keep_their_state(name: str, make_inputs, step) -> None:
    """A step without task 1 updates the present tasks' entries and leaves task 1's as they were."""
    m = create(name, num_tasks=3)
    step(m, make_inputs(3, 0))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    losses, grads = make_inputs(3, 1)
    present = torch.tensor([0, 2])
    step(m, (losses[present], grads[present]), tasks=present)
    per_task = [(key, value, axis) for key, value in m.state_dict().items()
                for axis, size in enumerate(value.shape) if size == 3]
    assert per_task, "no state entry has a per-task axis"
    for key, value, axis in per_task:
        absent = torch.tensor([1])
        assert torch.equal(value.index_select(axis, absent), before[key].index_select(axis, absent)), key
    assert name in STILL_STATE or any(
        not torch.equal(value.index_select(axis, present), before[key].index_select(axis, present))
        for key, value, axis in per_task), "the step updated no present task's state"


@pytest.mark.parametrize("name", STATELESS)
def test_stateless_methods_ignore_the_history(name: str, make_inputs, step) -> None:
    """No state to keep for an absent task: the output is the same whatever steps came before."""
    used = create(name, num_tasks=3)
    for seed in range(3):
        step(used, make_inputs(3, seed))
    losses, grads = make_inputs(3, 10)
    present = torch.tensor([0, 2])
    inputs = (losses[present], grads[present])
    out = seeded(1, lambda: step(used, inputs, tasks=present))
    fresh = seeded(1, lambda: step(create(name, num_tasks=3), inputs, tasks=present))
    torch.testing.assert_close(out, fresh, rtol=0, atol=0)
    assert used.state_dict() == {}


@pytest.mark.parametrize("name", ALL)
def test_bad_task_indices_are_rejected(name: str, make_inputs) -> None:
    m = create(name, num_tasks=3)
    losses, grads = make_inputs(2, 0)
    call = m.weigh if m.kind == "loss" else m.aggregate
    first = losses if m.kind == "loss" else grads
    for tasks, message in ((None, "pass tasks="), ([0, 3], r"\[0, 3\)"), ([1, 1], "each once"), ([0], "2 rows")):
        with pytest.raises(ValueError, match=message):
            call(first, tasks) if m.kind == "loss" else call(first, tasks, losses=losses)


@pytest.mark.parametrize("name", [n for n in GRADIENT if METHODS[n].needs_losses])
def test_methods_that_need_losses_say_so(name: str, make_inputs) -> None:
    with pytest.raises(ValueError, match="losses="):
        create(name, num_tasks=2).aggregate(make_inputs(2, 0)[1])


@pytest.mark.parametrize("name", [n for n in ALL if getattr(METHODS[n], "needs_lookahead", False)])
def test_methods_that_need_a_lookahead_say_so_and_hold_no_function_between_steps(name: str, make_inputs, step) -> None:
    """The trainer hands the validation gradient for one step (engine/step.py); without it the
    weights stay where they are, with it they move, and nothing of it is saved."""
    assert name == "auto_lambda"  # the only one so far: a new one must be added here knowingly
    losses, grads = make_inputs(3, 0)
    m = create(name, num_tasks=3)
    m.aggregate(grads, losses=losses)
    before = m.last_weights.clone()
    step(m, (losses, grads))
    assert m.lookahead_gradient is None and not torch.equal(m.last_weights, before)
    assert all(isinstance(v, Tensor) for v in m.state_dict().values())


@pytest.mark.parametrize("name", GRADIENT)
def test_half_precision_gradients_are_promoted(name: str, make_inputs) -> None:
    losses, grads = make_inputs(3, 0)
    out = create(name, num_tasks=3).aggregate(grads.bfloat16(), losses=losses)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name: str, make_inputs, step) -> None:
    cpu, cuda = create(name, num_tasks=3), create(name, num_tasks=3)
    for seed in range(3):
        losses, grads = make_inputs(3, seed)
        expected = seeded(seed, lambda: step(cpu, (losses, grads)))
        out = seeded(seed, lambda: step(cuda.cuda(), (losses.cuda(), grads.cuda())))
        assert out.is_cuda and torch.isfinite(out).all()
        if deterministic(name, 3):
            torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-4)
