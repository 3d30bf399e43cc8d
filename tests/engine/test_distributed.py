"""Two CPU processes under torchrun (Gloo): identical weights, and exact merged metrics, with a
loss method (one backward) and a gradient method (per-task gradients reduced over the ranks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mtvision.data.dataset import collate
from mtvision.engine.distributed import ShardSampler
from mtvision.engine.evaluate import evaluate

WORKER = Path(__file__).with_name("ddp_worker.py")


# A tree whose branch has one task: parameters only that task trains, reduced over the ranks too;
# PAD-Net: deep-supervision losses and task-owned distillation modules.
BRANCHED = {"branches": [["lighting", "semseg"], ["depth"], ["normals"]], "branch_at": 3}


@pytest.mark.parametrize(("method", "architecture", "options"), [
    ("ew", "hard", {}), ("upgrad", "hard", {}), ("upgrad", "branched", BRANCHED), ("ew", "padnet", {})])
def test_ddp_ranks_agree_and_metrics_merge_exactly(synthetic_paths, records, make_model, make_dataset,
                                                   tmp_path: Path, method: str, architecture: str,
                                                   options: dict) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), *map(str, synthetic_paths), str(tmp_path), method, architecture, json.dumps(options)]
    returncode, output = _run_group(command, timeout=180)
    assert returncode == 0, output[-3000:]

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in rank0:
        torch.testing.assert_close(rank1[key], rank0[key], rtol=0, atol=0, msg=key)
    merged = [json.loads((tmp_path / f"results{r}.json").read_text()) for r in (0, 1)]
    assert merged[0] == merged[1]
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()  # written by rank 0 only

    model = make_model(records[0], architecture=architecture, options=options)
    model.load_state_dict(rank0)
    val_set = make_dataset(records[1], train=False)
    single = evaluate(model, DataLoader(val_set, batch_size=4, collate_fn=collate), torch.device("cpu"))
    for task, metrics in single.items():
        for name, value in metrics.items():
            assert merged[0][task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), f"{task}/{name}"


def _run_group(command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in its own process group, killing the whole group (workers too) on timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{output[-3000:]}")
    return process.returncode, output


def test_shard_sampler_covers_every_index_once() -> None:
    shards = [list(ShardSampler(7, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(7))
