"""preview() draws every annotation; the `mtvision data synth|preview` commands write their files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO
from torchvision import tv_tensors
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.preview import image_to_rgb, preview, render_panels
from mtvision.data.synthetic import render_scene, synthetic_tasks
from mtvision.structures import Sample


def test_panels_cover_every_task_and_labels_become_the_title() -> None:
    sample = render_scene(2, 32)
    panels, titles = render_panels(sample, synthetic_tasks())
    assert titles[1:] == ["objects", "semseg", "depth", "normals", "edges"]
    assert titles[0].startswith("classes: ") and "\nlighting: " in titles[0]
    assert all(p.shape == (32, 32, 3) and p.dtype == np.uint8 for p in panels)
    assert not np.array_equal(panels[1], panels[0])  # the instances are drawn over the image
    assert np.array_equal(panels[0], sample.image.permute(1, 2, 0).numpy())


def test_preview_writes_one_tile_per_sample_and_applies_the_transform(tmp_path: Path) -> None:
    seen: list[int] = []

    def transform(sample: Sample) -> Sample:
        seen.append(sample.meta["seed"])
        return sample

    paths = preview([render_scene(0, 32), render_scene(1, 32)], synthetic_tasks(), tmp_path, transform=transform)
    assert [p.name for p in paths] == ["0000_000000.png", "0001_000001.png"] and seen == [0, 1]
    width, height = Image.open(paths[0]).size  # 6 panels of 32 px enlarged to 128, 4 columns, titles above
    assert width == 8 + 4 * (128 + 8) and 2 * 128 < height < 2 * 128 + 120


def test_unknown_tasks_and_normalised_images_are_still_drawn(tmp_path: Path) -> None:
    image = tv_tensors.Image(torch.linspace(-2, 2, 3 * 8 * 8).reshape(3, 8, 8))
    sample = Sample(image, {"seg": tv_tensors.Mask(torch.eye(8, dtype=torch.int64) * 3), "kind": torch.tensor(1)})
    panels, titles = render_panels(sample, {})
    assert titles == ["kind: 1", "seg"] and image_to_rgb(image).min() == 0 and image_to_rgb(image).max() == 255
    assert len(preview([sample], {}, tmp_path)) == 1


def test_cli_synth_then_preview(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "ds"), "--num", "3", "--size", "32"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "ds" / "dataset.json"
    data = json.loads(path.read_text())
    assert len(data["images"]) == 3 and set(data["tasks"]) == set(synthetic_tasks())
    assert len(COCO(str(path)).imgs) == 3 and len(list((tmp_path / "ds" / "images").glob("*.png"))) == 3
    result = runner.invoke(app, ["data", "preview", str(path), "--out", str(tmp_path / "p"), "--num", "2"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").glob("*.png"))) == 2
    result = runner.invoke(app, ["data", "preview", "synthetic", "--out", str(tmp_path / "q"), "--num", "2",
                                 "--size", "32"])
    assert result.exit_code == 0 and len(list((tmp_path / "q").glob("*.png"))) == 2


def test_cli_preview_of_an_unknown_file_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "coco.json").write_text("{}")
    result = CliRunner().invoke(app, ["data", "preview", str(tmp_path / "coco.json"), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "not a dataset of any known format" in result.output


def test_cli_preview_of_a_missing_file_says_file_not_found(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "preview", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    assert result.exit_code == 1 and f"file not found: {tmp_path / 'missing.json'}" in result.stderr
    assert "combined-format" not in result.output and "Traceback" not in result.output


def test_cli_preview_reads_any_supported_export(tmp_path: Path, fixtures_dir: Path) -> None:
    labelme = fixtures_dir / "labelme/wkentaro__labelme/examples/instance_segmentation/data_annotated"
    result = CliRunner().invoke(app, ["data", "preview", str(labelme), "--out", str(tmp_path), "--num", "1"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.glob("*.png")] == ["0000_2011_000003.png"]


def test_cli_preview_with_augmentation(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["data", "preview", "synthetic", "--out", str(tmp_path / "a"), "--num", "2",
                                  "--size", "32", "--augment", "strong"])
    assert ok.exit_code == 0, ok.output
    assert len(list((tmp_path / "a").glob("*.png"))) == 2
    bad = CliRunner().invoke(app, ["data", "preview", "synthetic", "--out", str(tmp_path / "b"), "--augment", "wild"])
    assert bad.exit_code == 1 and "unknown augmentation preset 'wild'" in bad.output
