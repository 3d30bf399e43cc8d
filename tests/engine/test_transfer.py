"""``model.init``: exactly the tensors whose name and shape match are loaded, the rest is reported,
and files that are not mtvision checkpoints are refused with the reason."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import torch

from mtvision.engine.checkpoint import save_checkpoint
from mtvision.engine.parts import model_parts
from mtvision.engine.transfer import TransferError, initialise
from mtvision.models import TaskSpec, build_model

torch.set_num_threads(1)

OLD = {"lighting": "classification", "semseg": "semantic_segmentation", "depth": "depth"}
NEW = {"semseg": "semantic_segmentation", "depth": "depth", "normals": "normals"}


def _save(model: torch.nn.Module, path: Path, backbone: str = "test_resnet.r160_in1k") -> Path:
    save_checkpoint(path, {"model": model.state_dict(), "config": {"model": {"backbone": backbone,
                                                                             "architecture": "hard"}}})
    return path


def test_init_loads_exactly_the_matching_tensors(records, make_model, tmp_path: Path) -> None:
    train, _ = records
    old = make_model(train, seed=0, tasks=OLD)
    path = _save(old, tmp_path / "old.pt")
    # The new model: semseg loses a class (its classifier changes shape), lighting is gone, normals is new.
    infos = dict(train.tasks)
    infos["semseg"] = dataclasses.replace(infos["semseg"], classes=list(infos["semseg"].classes)[:-1])
    torch.manual_seed(1)
    new = build_model("test_resnet.r160_in1k", {n: TaskSpec(k, infos[n]) for n, k in NEW.items()}, neck_channels=16)
    fresh = {k: v.clone() for k, v in new.state_dict().items()}
    report = initialise(new, path, backbone="test_resnet.r160_in1k")

    source, after = old.state_dict(), new.state_dict()
    for key, value in after.items():  # key by key against the checkpoint and the fresh init
        loadable = key in source and source[key].shape == value.shape
        assert key in report.loaded if loadable else key not in report.loaded
        assert torch.equal(value, source[key] if loadable else fresh[key]), key
    assert set(report.loaded) | set(report.created) | {s["key"] for s in report.skipped} == set(after)
    assert report.dropped == [k for k in source if k.startswith("tasks.lighting.")]
    assert {s["key"] for s in report.skipped} == {"tasks.semseg.head.predict.weight", "tasks.semseg.head.predict.bias"}
    assert all(k.startswith("tasks.normals.") for k in report.created) and report.created
    # A changed class list keeps the rest of that head: its per-level convs and norms came from the checkpoint.
    assert [k for k in report.loaded if k.startswith("tasks.semseg.")] == \
        [k for k in after if k.startswith("tasks.semseg.head.levels.")]
    assert report.tasks == {"semseg": "partly loaded", "depth": "loaded", "normals": "created", "lighting": "dropped"}

    counts = report.counts(model_parts(new))
    assert counts["heads.lighting"]["dropped"] == 2 and counts["heads.semseg"]["skipped (shape)"] == 2
    assert counts["backbone"]["loaded"] == sum(k.startswith("architecture.backbone.") for k in after)
    report.write(tmp_path / "init.json", model_parts(new))
    written = json.loads((tmp_path / "init.json").read_text())
    assert written["tasks"]["normals"] == "created" and len(written["loaded"]) == len(report.loaded)


def test_old_checkpoint_names_load_into_the_architecture(records, make_model, tmp_path: Path) -> None:
    """Checkpoints from before architectures held the trunk at ``backbone.*``; they still match."""
    train, _ = records
    old = make_model(train, tasks={"depth": "depth"})
    legacy = {k.removeprefix("architecture."): v for k, v in old.state_dict().items()}
    save_checkpoint(tmp_path / "legacy.pt", {"model": legacy, "config": {"model": {}}})
    report = initialise(make_model(train, seed=3, tasks={"depth": "depth"}), tmp_path / "legacy.pt")
    assert not report.created and not report.dropped and len(report.loaded) == len(legacy)


def test_a_pickle_is_refused_with_the_reason(records, make_model, tmp_path: Path) -> None:
    train, _ = records
    model = make_model(train, tasks={"depth": "depth"})
    torch.save(model, tmp_path / "module.pt")  # a whole pickled nn.Module: weights-only refuses it
    with pytest.raises(TransferError, match="refused .*module.pt.*(weights-only|would run Python code)"):
        initialise(model, tmp_path / "module.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"model": {"a": 1}}))
    with pytest.raises(TransferError, match="plain.pkl"):
        initialise(model, tmp_path / "plain.pkl")


@pytest.mark.parametrize("content", ["text", "weights only"])
def test_a_non_mtvision_file_is_refused(records, make_model, tmp_path: Path, content: str) -> None:
    train, _ = records
    model = make_model(train, tasks={"depth": "depth"})
    path = tmp_path / "file.pt"
    if content == "text":
        path.write_text("not a checkpoint")
    else:
        torch.save(model.state_dict(), path)  # a bare state dict: no config, so no way to check the backbone
    with pytest.raises(TransferError, match="file.pt.*(give an mtvision checkpoint|not an mtvision checkpoint)"):
        initialise(model, path)


def test_a_backbone_mismatch_names_both(records, make_model, tmp_path: Path) -> None:
    train, _ = records
    model = make_model(train, tasks={"depth": "depth"})
    path = _save(model, tmp_path / "r18.pt", backbone="resnet18")
    with pytest.raises(TransferError, match=r"'resnet18'.*'test_resnet.r160_in1k'"):
        initialise(model, path, backbone="test_resnet.r160_in1k")
