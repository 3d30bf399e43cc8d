"""The branched tree: one group is hard sharing exactly; bad trees are refused clearly; it trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mtvision.config import ConfigError, load_config
from mtvision.models.architectures import create_architecture
from mtvision.models.stages import Stages
from tests.models.architectures.conftest import make, train_tiny

torch.set_num_threads(1)
TASKS = ["semseg", "depth", "classes"]


def test_one_group_is_hard_sharing(scenes) -> None:
    hard = make("hard", TASKS)
    tree = make("branched", TASKS, seed=1, options={"branches": [TASKS], "branch_at": 2})
    sharing = hard.architecture
    # The same trunk, split at stage 2, and the same neck and heads.
    trunk = [*tree.architecture.trunk.stages, *tree.architecture.branches[0].stages.stages]
    for mine, theirs in zip(trunk, Stages.of(sharing.backbone).stages):
        mine.load_state_dict(theirs.state_dict())
    tree.architecture.branches[0].neck.load_state_dict(sharing.neck.state_dict())
    tree.tasks.load_state_dict(hard.tasks.state_dict())
    with torch.no_grad():
        a, b = hard.eval()(scenes.images), tree.eval()(scenes.images)
    assert all(torch.equal(a[t], b[t]) for t in TASKS)


def test_groups_get_their_own_pyramid(scenes) -> None:
    tree = make("branched", TASKS, options={"branches": [["semseg", "classes"], ["depth"]], "branch_at": 3})
    pyramids = tree.architecture.decode(tree.features(scenes.images)).pyramids
    assert pyramids["semseg"] is pyramids["classes"] and pyramids["depth"] is not pyramids["semseg"]
    counts = tree.parameter_counts()
    assert counts["task/depth"] == counts["head/depth"] + counts["branch/depth"]  # a one-task branch is its own
    assert counts["task/semseg"] == counts["head/semseg"]


@pytest.mark.parametrize(("branches", "problem"), [
    ([["semseg", "depth"]], "task 'classes' is in no branch"),
    ([["semseg", "depth"], ["classes", "fog"]], "'fog' is not a task of the model"),
    ([["semseg", "depth"], ["classes", "depth"]], "'depth' is listed 2 times"),
    ([["semseg", "depth", "classes"], []], "a branch is empty"),
])
def test_bad_branches_name_the_problem(branches: list[list[str]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make("branched", TASKS, options={"branches": branches, "branch_at": 2})
    overrides = ["model.architecture=branched", f"model.branches={json.dumps(branches)}", "model.branch_at=2",
                 "tasks.lighting=null", "tasks.normals=null", "tasks.edges=null", "tasks.objects=null"]
    with pytest.raises(ConfigError, match=problem):  # the config says so before any data is read
        load_config(None, overrides)


def test_branch_at_past_the_last_stage_is_refused() -> None:
    problem = "model.branch_at=5: test_resnet.r160_in1k has 4 stages; branch_at must be 1 to 4"
    with pytest.raises(ValueError, match=problem):
        make("branched", TASKS, options={"branches": [TASKS], "branch_at": 5})


def test_unknown_architecture_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="unknown architecture 'branchd'; did you mean 'branched'"):
        load_config(None, ["model.architecture=branchd"])
    with pytest.raises(ValueError, match="has no option 'branch'; did you mean 'branches'"):
        create_architecture("branched", None, {"branch": []})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model.branches is for model.architecture=branched"):
        load_config(None, ["model.branches=[[depth]]"])


def test_trains_end_to_end(tmp_path: Path) -> None:
    _, card = train_tiny(tmp_path, "branched", "model.branches=[[semseg, objects], [depth]]", "model.branch_at=3")
    assert card["architecture"] == "branched" and card["options"]["branch_at"] == 3
    assert card["parameters"]["branch/depth"] > 0 and card["representation"].startswith("none: ")

