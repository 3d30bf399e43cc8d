"""Run by ``torchrun`` from test_distributed.py: a short DDP training on the CPU with Gloo.

Each rank saves its final weights and the merged validation results, so the test can check
that the ranks agree and that the merge equals a single-process evaluation.

Usage: torchrun --nproc_per_node 2 ddp_worker.py TRAIN_JSON VAL_JSON OUT_DIR BALANCING_METHOD ARCHITECTURE OPTIONS_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from mtvision.balancing import create
from mtvision.data.dataset import MultiTaskDataset
from mtvision.data.sources import read_record
from mtvision.data.transforms import build_transforms
from mtvision.engine.distributed import cleanup, init_distributed, unwrap
from mtvision.engine.trainer import Trainer, TrainSettings
from mtvision.models import TaskSpec, build_model

TASKS = {"lighting": "classification", "semseg": "semantic_segmentation", "depth": "depth", "normals": "normals"}


def main(train_json: str, val_json: str, out: str, method: str, architecture: str, options: str) -> None:
    torch.set_num_threads(1)
    info, device = init_distributed("cpu")
    train_record, val_record = read_record(train_json), read_record(val_json)
    torch.manual_seed(info.rank)  # different init per rank: DDP must broadcast rank 0's weights
    model = build_model("test_resnet.r160_in1k", {n: TaskSpec(k, train_record.tasks[n]) for n, k in TASKS.items()},
                        neck_channels=16, architecture=architecture, options=json.loads(options))
    datasets = [MultiTaskDataset(r, tasks=list(TASKS), transform=build_transforms("light", (32, 32), train=t))
                for r, t in ((train_record, True), (val_record, False))]
    settings = TrainSettings(epochs=2, batch_size=2, predict_images=0, seed=3)
    summary = Trainer(model, *datasets, settings, Path(out) / "run", device, info,
                      method=create(method, num_tasks=len(TASKS))).fit()
    torch.save(unwrap(model).state_dict(), Path(out) / f"rank{info.rank}.pt")
    (Path(out) / f"results{info.rank}.json").write_text(json.dumps(summary.results))
    cleanup()


if __name__ == "__main__":
    main(*sys.argv[1:7])
