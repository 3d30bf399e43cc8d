"""The streamed path across two Gloo processes: the same ``.grad`` as the stored path.

Each rank holds half of the batch (the model and batch of ``test_backward_ddp.py``). With
every task present on both ranks the streamed path sums each parameter tensor's ``[k, D_b]``
block over the ranks before its Gramian; with a task absent on rank 1 it falls back to the
stored path (the ranks' batched passes would not pair up). Both must equal the stored path
bit for bit across ranks and to float64 round-off against each other.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mtvision.balancing import create
from mtvision.balancing.backward import balanced_backward, task_parameters

WORLD = 2
METHODS = ["upgrad", "mgda", "nash_mtl", "cagrad", "krum", "sdmgrad", "imtl", "aligned_mtl"]
ABSENT = [None, "c"]


def _ddp_module():
    path = Path(__file__).with_name("test_backward_ddp.py")
    spec = importlib.util.spec_from_file_location("balancing_test_backward_ddp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grads(name: str, mode: str, absent: str | None, rank: int, group: dist.ProcessGroup) -> tuple[dict, str]:
    ddp = _ddp_module()
    x, y = ddp.batch()
    half = slice(4 * rank, 4 * rank + 4)
    model, method = ddp.Tiny(), create(name, num_tasks=3)
    params = task_parameters(model)
    for step in range(2):  # stateful methods: the second step sees the first's state
        model.zero_grad(set_to_none=True)
        features, losses = model.losses(x[half], y[half], ddp.rank_rows(rank, absent))
        result = balanced_backward(method, losses, params, features=features, mode=mode, process_group=group)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, result.path


def worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    out = {(name, absent, mode): grads(name, mode, absent, rank, dist.group.WORLD)
           for name in METHODS for absent in ABSENT for mode in ("parameters_stored", "parameters_streamed")}
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_gloo_ranks_stream_the_stored_update(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name in METHODS:
        for absent in ABSENT:
            (stored, stored_path), (streamed, streamed_path) = (ranks[0][(name, absent, mode)]
                                                                for mode in ("parameters_stored", "parameters_streamed"))
            assert stored_path == "parameters"
            assert streamed_path == ("parameters_streamed" if absent is None else "parameters"), (name, absent)
            assert sorted(stored) == sorted(streamed)
            for key in stored:
                for mode in ("parameters_stored", "parameters_streamed"):
                    other = ranks[1][(name, absent, mode)][0][key]
                    torch.testing.assert_close(other, ranks[0][(name, absent, mode)][0][key], rtol=0, atol=0)
                torch.testing.assert_close(streamed[key], stored[key], rtol=1e-5, atol=1e-8, msg=f"{name} {key}")
