"""Data faults: corrupt images left out (never replaced) and listed once, symlinks out of the
dataset refused, a full disk names the file and keeps the previous checkpoint."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from fault_helpers import TINY, assert_clean, invoke
from typer.testing import CliRunner

from mtvision.data.errors import FormatError
from mtvision.data.formats._files import safe_join
from mtvision.engine import checkpoint as ckpt


def _corrupt_first_val_image(runner: CliRunner) -> Path:
    assert invoke(runner, "train", *TINY, "train.epochs=1", "run.name=render")[0] == 0  # renders the cached scenes
    image = sorted(Path(".cache").glob("synthetic/*/val/images/*.png"))[0]
    image.write_bytes(image.read_bytes()[:100])
    return image


def test_a_corrupt_image_stops_the_run_with_its_name(runner: CliRunner) -> None:
    image = _corrupt_first_val_image(runner)
    code, output = invoke(runner, "train", *TINY, "train.epochs=1")
    assert code == 2
    assert_clean(output, image.name, "cannot read image", "data.skip_corrupt=true")
    assert not Path("runs/demo").exists()  # failed before its first checkpoint: no folder


def test_skip_corrupt_leaves_the_image_out_and_lists_it_once(runner: CliRunner,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    image = _corrupt_first_val_image(runner)
    seen: list[int] = []
    from mtvision.engine import trainer as trainer_module

    original = trainer_module.evaluate

    def counting(model, loader, *args, **kwargs):  # noqa: ANN001, ANN202
        seen.append(sum(len(batch.images) for batch in loader))
        return original(model, loader, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", counting)
    code, output = invoke(runner, "train", *TINY, "data.skip_corrupt=true")
    assert code == 0, output
    assert seen == [3, 3]  # 4 validation images, the broken one counted by no epoch (not replaced)
    assert output.count(f"{image.name}: cannot read image") == 1, output


def test_a_symlink_out_of_the_dataset_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "dataset", tmp_path / "secret.png"
    (root / "images").mkdir(parents=True)
    outside.write_bytes(b"not yours")
    (root / "images" / "a.png").symlink_to(outside)
    (root / "images" / "b.png").write_bytes(b"fine")
    with pytest.raises(FormatError, match="leads through a symlink to .*secret.png, outside the dataset root"):
        safe_join(root, "images/a.png", "export.json", "tasks[0]")
    assert safe_join(root, "images/b.png", "export.json", "tasks[1]") == root / "images" / "b.png"


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(runner: CliRunner,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(runner, "train", *TINY, "train.epochs=1")[0] == 0
    last = Path("runs/demo/weights/last.pt")
    before = last.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4096 vs 2048: file write failed")

    monkeypatch.setattr(ckpt.torch, "save", full)
    monkeypatch.setattr(ckpt, "_free_bytes", lambda folder: 0)
    code, output = invoke(runner, "train", "--resume", str(last), "train.epochs=2")
    assert code == 1
    assert_clean(output, f"no space left on device writing {last.resolve()}", "MB", "previous checkpoint is intact")
    assert last.read_bytes() == before and not list(last.parent.glob(".*.tmp"))


def test_a_real_full_disk(tmp_path: Path) -> None:
    """A 64 KiB tmpfs where the machine lets us mount one (root in a privileged container)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        path = mount / "weights" / "last.pt"
        ckpt.save_checkpoint(path, {"w": torch.zeros(1000)})
        with pytest.raises(ckpt.DiskFullError) as caught:
            ckpt.save_checkpoint(path, {"w": torch.zeros(100_000)})
        assert caught.value.errno == errno.ENOSPC and str(path) in str(caught.value)
        torch.testing.assert_close(ckpt.load_checkpoint(path)["w"], torch.zeros(1000))
        assert not list(path.parent.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_task_without_a_validation_loss_reports_none_not_nan() -> None:
    """A detector computes no loss in eval mode: its results have no ``loss``, never NaN."""
    from mtvision.engine.evaluate import _results

    class Constant:
        def compute(self) -> dict[str, float]:
            return {"bbox_ap50": 0.5}

    sums = torch.tensor([[2.0, 0.0], [4.0, 0.0]], dtype=torch.float64)  # depth: 4 images, objects: none
    results = _results({"depth": Constant(), "objects": Constant()}, sums, ["depth", "objects"])
    assert results == {"depth": {"bbox_ap50": 0.5, "loss": 0.5}, "objects": {"bbox_ap50": 0.5}}
