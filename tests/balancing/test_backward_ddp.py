"""balanced_backward across two Gloo processes equals one process on the concatenated batch.

Each rank holds half of an 8-sample batch. What is compared, for every trainable parameter:
both ranks' ``.grad`` bit for bit, and each against ``balanced_backward`` run in one process
on the concatenated batch, where a task's loss is the mean over the samples of the ranks
that carry it (so when task ``c`` is absent on rank 1, its reference loss is the mean over
rank 0's half only). The model has no batch coupling (no batch norm), so these are the
exact same gradients up to summation order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from mtvision.balancing import create
from mtvision.balancing.backward import balanced_backward, task_parameters

WORLD = 2
NAMES = ("a", "b", "c")
# (method, mode, reuse the weights on a second step, task absent on rank 1)
CASES = [("mgda", "parameters", False, None), ("mgda_ub", "representation", False, None), ("ew", None, False, "c"),
         ("upgrad", "parameters", True, "c"), ("mgda", "representation", False, "c"), ("uw", None, False, "b")]


class Tiny(nn.Module):
    """MLP trunk -> two independent feature vectors -> three linear heads."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(3, 5), nn.Tanh())
        self.levels = nn.ModuleList([nn.Linear(5, 4), nn.Linear(5, 2)])
        self.tasks = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 1), "c": nn.Linear(2, 1)})
        self.double()

    def features(self, x: Tensor) -> list[Tensor]:
        h = self.trunk(x)
        return [level(h) for level in self.levels]

    def losses(self, x: Tensor, y: Tensor, rows: dict[str, slice]) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Mean squared errors, task ``n`` over the samples ``rows[n]`` (absent when not listed)."""
        features = self.features(x)
        inputs = {"a": features[0], "b": features[0], "c": features[1]}
        return features, {n: (self.tasks[n](inputs[n])[rows[n], 0] - y[rows[n], i]).pow(2).mean()
                          for i, n in enumerate(NAMES) if n in rows}


def batch() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(5)
    return torch.randn(8, 3, generator=gen, dtype=torch.float64), torch.randn(8, 3, generator=gen, dtype=torch.float64)


def run_case(case: tuple, x: Tensor, y: Tensor, rows: dict[str, slice], group: dist.ProcessGroup | None
             ) -> dict[str, Tensor]:
    """Two steps' backward (the second reusing the weights when asked); the last ``.grad``s."""
    name, mode, reuse, _ = case
    model = Tiny()
    method = create(name, num_tasks=3)
    params = task_parameters(model)
    for step in range(2 if reuse else 1):
        model.zero_grad(set_to_none=True)
        features, losses = model.losses(x, y, rows)
        balanced_backward(method, losses, params, features=features, mode=mode, reuse_weights=step > 0,
                          process_group=group)
    named = [*model.named_parameters(), *(("method." + n, p) for n, p in method.named_parameters())]
    return {n: p.grad.clone() for n, p in named if p.grad is not None}


def rank_rows(rank: int, absent: str | None) -> dict[str, slice]:
    return {n: slice(None) for n in NAMES if not (n == absent and rank == 1)}


def worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    x, y = batch()
    half = slice(4 * rank, 4 * rank + 4)
    grads = [run_case(case, x[half], y[half], rank_rows(rank, case[3]), dist.group.WORLD) for case in CASES]
    torch.save(grads, Path(folder) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_agree_with_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    x, y = batch()
    for case, grads0, grads1 in zip(CASES, *ranks):
        rows = {n: slice(0, 4) if n == case[3] else slice(None) for n in NAMES}
        expected = run_case(case, x, y, rows, group=None)
        assert sorted(grads0) == sorted(grads1) == sorted(expected), case
        for key, value in expected.items():
            torch.testing.assert_close(grads1[key], grads0[key], rtol=0, atol=0, msg=f"{case} {key}")
            torch.testing.assert_close(grads0[key], value, rtol=1e-9, atol=1e-12, msg=f"{case} {key}")


@pytest.mark.parametrize("absent", [None, "c"])
def test_reference_rows_are_what_the_ranks_average(absent: str | None) -> None:
    """The single-process reference itself: a task's loss over both halves is the mean of the halves'."""
    model, (x, y) = Tiny(), batch()
    whole = model.losses(x, y, {n: slice(None) for n in NAMES})[1]
    halves = [model.losses(x[h], y[h], {n: slice(None) for n in NAMES})[1] for h in (slice(0, 4), slice(4, 8))]
    for n in NAMES:
        torch.testing.assert_close(whole[n], (halves[0][n] + halves[1][n]) / 2)
