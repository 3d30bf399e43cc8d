"""``mtvision data`` on the real exports of ../shared/fixtures, as their tools write them."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.formats import coco, combined

runner = CliRunner()
CVAT = "cvat/cvat-ai__datumaro/tests/assets/cvat_dataset/for_images/train.xml"
VOC_RGB_MASKS = "voc/openvinotoolkit__datumaro/tests/assets/voc_dataset/voc_dataset1"
LABELME = "wkentaro__labelme/examples"


def _invoke(*args: str | Path) -> object:
    return runner.invoke(app, ["data", *map(str, args)])


def test_convert_cvat_to_coco_then_check_finds_every_image(fixtures_dir: Path, tmp_path: Path) -> None:
    linked = _invoke("convert", fixtures_dir / CVAT, "--to", "coco", "--out", tmp_path / "linked" / "ann.json")
    assert linked.exit_code == 0, linked.output
    check = _invoke("check", tmp_path / "linked" / "ann.json")
    assert check.exit_code == 0 and "no problems found" in check.stdout, check.output
    assert (tmp_path / "linked" / "images" / "img0.jpg").is_symlink()
    copied = _invoke("convert", fixtures_dir / CVAT, "--to", "coco", "--out", tmp_path / "copied" / "ann.json",
                     "--copy-images")
    assert copied.exit_code == 0, copied.output
    image = tmp_path / "copied" / "images" / "img0.jpg"
    assert image.is_file() and not image.is_symlink()
    assert image.read_bytes() == (fixtures_dir / CVAT).parent.joinpath("images", "img0.jpg").read_bytes()
    back = coco.read(tmp_path / "copied" / "ann.json")
    assert all(back.image_path(im).is_file() for im in back.images)
    both = _invoke("convert", fixtures_dir / CVAT, "--to", "coco", "--out", tmp_path / "x.json", "--copy-images",
                   "--link-images")
    assert both.exit_code == 1 and "exclude each other" in both.stderr


def test_merge_coco_voc_labelme_exports_in_different_folders(fixtures_dir: Path, tmp_path: Path) -> None:
    sources = [fixtures_dir / "coco" / LABELME / "instance_segmentation/data_dataset_coco/annotations.json",
               fixtures_dir / "voc" / LABELME / "bbox_detection/data_dataset_voc",
               fixtures_dir / "labelme" / LABELME / "instance_segmentation/data_annotated"]
    out = tmp_path / "merged" / "dataset.json"
    result = _invoke("merge", *sources, "--out", out, "--rename", f"{sources[1]}:objects=voc_boxes",
                     "--rename", f"{sources[2]}:objects=labelme_objects")
    assert result.exit_code == 0, result.output
    assert "no conflicts" in result.stdout
    merged = combined.read(out)
    assert merged.coverage() == {"objects": 3, "voc_boxes": 3, "labelme_objects": 3}
    assert sorted(im.file_name for im in merged.images) == ["2011_000003.jpg", "2011_000006.jpg", "2011_000025.jpg"]
    check = _invoke("check", out)
    assert check.exit_code == 0, check.output


def test_reader_options_reach_the_reader(fixtures_dir: Path) -> None:
    refused = _invoke("check", fixtures_dir / VOC_RGB_MASKS, "--no-images")
    assert refused.exit_code == 1 and "colour-coded (RGB) mask" in refused.stderr
    read = _invoke("check", fixtures_dir / VOC_RGB_MASKS, "--no-images", "--option", "semseg=false")
    assert read.exit_code == 0, read.output
    stats = _invoke("stats", fixtures_dir / VOC_RGB_MASKS, "--json", "--option", "semseg=false")
    assert stats.exit_code == 0 and '"semseg"' not in stats.stdout
    unknown = _invoke("check", fixtures_dir / VOC_RGB_MASKS, "--option", "masks=false")
    assert unknown.exit_code == 1 and "format 'voc' has no option(s) ['masks']; valid:" in unknown.stderr
