"""``mtvision data merge | check | stats | convert`` end to end on small generated datasets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.formats import coco, combined
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
from mtvision.structures import TaskInfo

runner = CliRunner()
BAD_BOX = (20.0, 20.0, 90.0, 90.0)  # leaves the 32x24 image


def _coco(tmp_path: Path, bad: bool = False) -> Path:
    """``coco/ann.json``: a.png car + bike, b.png car (+ a box outside the image if ``bad``), c.png negative."""
    folder = tmp_path / "coco"
    folder.mkdir()
    for i, name in enumerate(["a.png", "b.png", "c.png"]):
        Image.fromarray(np.full((24, 32, 3), 60 * i, np.uint8)).save(folder / name)
    b_boxes = [Annotation(0, (2.0, 3.0, 12.0, 15.0))] + ([Annotation(1, BAD_BOX)] if bad else [])
    images = [ImageRecord("a.png", 32, 24, id=1, targets={"objects": [Annotation(0, (1.0, 1.0, 9.0, 9.0)),
                                                                      Annotation(1, (10.0, 2.0, 20.0, 12.0))]}),
              ImageRecord("b.png", 32, 24, id=2, targets={"objects": b_boxes}),
              ImageRecord("c.png", 32, 24, id=3, targets={"objects": []})]
    coco.write(DatasetRecord(folder, images, {"objects": TaskInfo("instances", ["car", "bike"])}), folder / "ann.json")
    return folder / "ann.json"


def _invoke(*args: str | Path) -> object:
    return runner.invoke(app, ["data", *map(str, args)])


def _row(output: str, *cells: str) -> bool:
    """Whether a rich table row holds ``cells`` in this order."""
    return re.search(r"\s*│\s*".join(map(re.escape, cells)), output) is not None


def test_merge_prints_coverage_and_conflicts_and_writes_a_coco_readable_file(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    (tmp_path / "scene.csv").write_text("file,label\ncoco/a.png,indoor\ncoco/b.png,outdoor\n")
    (tmp_path / "again.csv").write_text("file,label\ncoco/a.png,outdoor\n")
    out = tmp_path / "combined.json"
    result = _invoke("merge", ann, tmp_path / "scene.csv", tmp_path / "again.csv", "--out", out)
    assert result.exit_code == 0, result.output
    assert "coverage (3 images in total)" in result.stdout
    assert _row(result.stdout, "objects", "instances", "3", "100%")
    assert _row(result.stdout, "label", "label", "2", "67%")
    assert "1 conflict(s)" in result.stdout
    assert "a.png (source 2): task 'label' is already labelled by an earlier source" in result.stdout
    back = combined.read(out)
    assert back.coverage() == {"objects": 3, "label": 2}
    assert [im.file_name for im in back.images] == ["coco/a.png", "coco/b.png", "coco/c.png"]
    gt = COCO(str(out))
    assert len(gt.getAnnIds()) == 3 and len(gt.getImgIds()) == 3
    assert sorted(c["name"] for c in gt.loadCats(gt.getCatIds())) == ["bike", "car"]


def test_merge_links_the_images_into_an_output_outside_their_folders(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    result = _invoke("merge", ann, "--out", tmp_path / "elsewhere" / "combined.json")
    assert result.exit_code == 0, result.output
    assert "3 image/map file(s) lie outside" in result.stdout
    assert (tmp_path / "elsewhere" / "a.png").resolve() == ann.parent / "a.png"
    assert _invoke("check", tmp_path / "elsewhere" / "combined.json").exit_code == 0
    bad = _invoke("merge", ann, "--out", tmp_path / "c.json", "--format-of", f"{ann}=kitti")
    assert bad.exit_code == 1 and "unknown format 'kitti'; valid formats: cityscapes" in bad.stderr


def test_merge_rename_keeps_two_sources_objects_apart(tmp_path: Path) -> None:
    first = _coco(tmp_path)
    (tmp_path / "second").mkdir()
    second = _coco(tmp_path / "second")
    clash = _invoke("merge", first, second, "--out", tmp_path / "clash.json")
    assert clash.exit_code == 0 and "3 conflict(s)" in clash.stdout  # both name their task "objects"
    result = _invoke("merge", first, second, "--out", tmp_path / "all.json", "--rename", f"{second}:objects=second")
    assert result.exit_code == 0, result.output
    assert "no conflicts" in result.stdout and _row(result.stdout, "second", "instances", "3", "100%")
    assert combined.read(tmp_path / "all.json").coverage() == {"objects": 3, "second": 3}
    for item, problem in [("objects=x", "name the source, as SRC:TASK=NEW (there are 2 sources)"),
                          (f"{tmp_path}/no.json:objects=x", "is not among the sources"),
                          (f"{second}:boxes=x", "cannot rename task(s) ['boxes']: the source has ['objects']"),
                          ("objects", "expected [SRC:]TASK=NEW")]:
        bad = _invoke("merge", first, second, "--out", tmp_path / "bad.json", "--rename", item)
        assert bad.exit_code == 1 and problem in bad.stderr, (item, bad.output)


def test_a_missing_file_says_file_not_found(tmp_path: Path) -> None:
    for command in (["stats"], ["check"], ["convert", "--to", "coco", "--out", str(tmp_path / "o.json")]):
        result = _invoke(command[0], tmp_path / "missing.json", *command[1:])
        assert result.exit_code == 1 and f"error: file not found: {tmp_path / 'missing.json'}" in result.stderr
    merged = _invoke("merge", _coco(tmp_path), tmp_path / "gone", "--out", tmp_path / "m.json")
    assert merged.exit_code == 1 and f"file not found: {tmp_path / 'gone'}" in merged.stderr


def test_stats_writes_a_chart_only_where_out_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = _coco(tmp_path)
    monkeypatch.chdir(tmp_path)
    table = _invoke("stats", ann)
    assert table.exit_code == 0 and "--out stats.png to save" in table.stdout
    assert not (tmp_path / "stats.png").exists()  # nothing written in the working folder unasked
    (tmp_path / "charts").mkdir()
    for out, written in [(tmp_path / "charts", tmp_path / "charts" / "stats.png"),
                         (tmp_path / "plots" / "coco.png", tmp_path / "plots" / "coco.png")]:
        result = _invoke("stats", ann, "--out", out)
        assert result.exit_code == 0 and f"wrote {written}" in result.stdout.replace("\n", "")
        assert written.read_bytes()[:4] == b"\x89PNG"


def test_check_exit_status_follows_errors(tmp_path: Path) -> None:
    clean = _invoke("check", _coco(tmp_path))
    assert clean.exit_code == 0, clean.output
    assert "no problems found" in clean.stdout
    (tmp_path / "bad").mkdir()
    result = _invoke("check", _coco(tmp_path / "bad", bad=True), "--no-images")
    assert result.exit_code == 1
    assert "1 finding(s)" in result.stdout and _row(result.stdout, "error", "box_out_of_bounds", "1")
    assert "error: b.png [objects#1]: box [20.0, 20.0, 90.0, 90.0] leaves the 32x24 image" in result.stdout


def test_check_fix_writes_a_clean_copy_and_leaves_the_source_alone(tmp_path: Path) -> None:
    ann = _coco(tmp_path, bad=True)
    before = {p: p.read_bytes() for p in ann.parent.iterdir()}
    result = _invoke("check", ann, "--fix", "--out", tmp_path / "clean")
    assert result.exit_code == 1  # the source has an error, even though the copy is clean
    assert "dropped 0 images, 1 annotations, 0 task labels" in result.stdout
    cleaned = combined.read(tmp_path / "clean" / "dataset.json")
    assert [len(im.targets["objects"]) for im in cleaned.images] == [2, 1, 0]
    assert all(box.box != BAD_BOX for im in cleaned.images for box in im.targets["objects"])
    assert cleaned.image_path(cleaned.images[0]).resolve() == ann.parent / "a.png"
    assert {p: p.read_bytes() for p in ann.parent.iterdir()} == before
    again = _invoke("check", ann, "--fix", "--out", ann.parent)
    assert again.exit_code == 1 and "is the source's own file or folder" in again.stderr
    assert {p: p.read_bytes() for p in ann.parent.iterdir()} == before


def test_check_reads_the_datasets_of_a_config(tmp_path: Path) -> None:
    ann = _coco(tmp_path, bad=True)
    (tmp_path / "run.yaml").write_text(f"data:\n  source: {ann}\ntrain:\n  epochs: 1\n")
    result = _invoke("check", tmp_path / "run.yaml", "--no-images")
    assert result.exit_code == 1 and _row(result.stdout, "error", "box_out_of_bounds", "1")
    (tmp_path / "demo.yaml").write_text("train:\n  epochs: 1\n")
    synthetic = _invoke("check", tmp_path / "demo.yaml")
    assert synthetic.exit_code == 1 and "data.source is 'synthetic'" in synthetic.stderr


def test_stats_json_is_the_only_stdout_and_matches_hand_counts(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    result = _invoke("stats", ann, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"images": 3, "tasks": {"objects": {
        "kind": "instances", "images": 3, "instances": 3, "per_class": {"car": 2, "bike": 1},
        "with_mask": 0, "crowd": 0, "keypoints_labelled": 0}}}
    table = _invoke("stats", ann, "--plot", tmp_path / "plots" / "stats.png")
    assert table.exit_code == 0 and _row(table.stdout, "objects", "instances", "3", "3")
    assert _row(table.stdout, "car", "2") and _row(table.stdout, "bike", "1")
    assert (tmp_path / "plots" / "stats.png").read_bytes()[:4] == b"\x89PNG"


def test_convert_coco_to_yolo_and_back_keeps_boxes_and_classes(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    assert _invoke("convert", ann, "--to", "yolo", "--out", tmp_path / "yolo").exit_code == 0
    result = _invoke("convert", tmp_path / "yolo", "--to", "coco", "--out", tmp_path / "back.json")
    assert result.exit_code == 0, result.output
    first, back = coco.read(ann), coco.read(tmp_path / "back.json", images_dir=tmp_path / "yolo")
    assert back.tasks["objects"].classes == ["car", "bike"]

    def boxes(record: DatasetRecord) -> dict[str, list[tuple[int, tuple[float, ...]]]]:
        return {Path(im.file_name).name: [(a.category, a.box) for a in im.targets["objects"]] for im in record.images}

    expected, got = boxes(first), boxes(back)
    assert got.keys() == expected.keys() and got["c.png"] == []
    for name, objects in expected.items():
        assert [c for c, _ in got[name]] == [c for c, _ in objects]
        assert np.allclose([b for _, b in got[name]], [b for _, b in objects], atol=1e-3) or not objects


def test_convert_warns_about_the_tasks_the_target_drops(tmp_path: Path) -> None:
    ann = _coco(tmp_path)
    (tmp_path / "scene.csv").write_text("coco/a.png,indoor\n")
    assert _invoke("merge", ann, tmp_path / "scene.csv", "--out", tmp_path / "all.json").exit_code == 0
    result = _invoke("convert", tmp_path / "all.json", "--to", "yolo", "--out", tmp_path / "yolo")
    assert result.exit_code == 0, result.output
    assert "warning: yolo cannot hold task(s) label (label): not written" in result.stderr
    labels = tmp_path / "yolo" / "labels" / "train" / "coco"
    assert sorted(p.name for p in labels.iterdir()) == ["a.txt", "b.txt", "c.txt"]


@pytest.mark.parametrize("command", ["stats", "check", "convert"])
def test_a_malformed_file_exits_with_its_format_error_and_no_traceback(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": []}))
    extra = ["--to", "voc", "--out", str(tmp_path / "voc")] if command == "convert" else []
    result = _invoke(command, bad, *extra)
    assert result.exit_code == 1
    assert f"error: {bad}: images[0]: missing field 'width'" in result.stderr
    assert "Traceback" not in result.output


def test_data_commands_work_without_importing_torch(tmp_path: Path) -> None:
    """Before: `mtvision.structures` and `mtvision.tasks.kinds` pulled in torch and torchvision,
    6-8 s before a data command did anything. Reading, checking and converting annotation files
    needs neither; the absence of torch is the measure that does not depend on the machine's load."""
    ann = _coco(tmp_path)
    code = ("import sys; from typer.testing import CliRunner; from mtvision.cli import app; "
            f"r = CliRunner().invoke(app, ['data', 'stats', {str(ann)!r}, '--json']); "
            "assert r.exit_code == 0, r.output; "
            f"r = CliRunner().invoke(app, ['data', 'convert', {str(ann)!r}, '--to', 'combined', "
            f"'--out', {str(tmp_path / 'out' / 'dataset.json')!r}]); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
