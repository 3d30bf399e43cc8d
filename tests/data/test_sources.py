"""The format registry detects every export type, and sources load, rename and merge by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import DETECTION_ORDER, FORMATS, WRITERS, coco, combined, detect_format, get_format, yolo
from mtvision.data.record import Annotation, DatasetRecord, ImageRecord
from mtvision.data.sources import SourceSpec, load_source, load_sources, rename_tasks
from mtvision.structures import TaskInfo

# One of each export type in ../shared/fixtures, with the format it must be detected as.
FIXTURES = {
    "coco/openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_instances/annotations/instances_train.json": "coco",
    "coco/openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_panoptic/annotations/panoptic_val.json": "coco",
    "coco/openvinotoolkit__datumaro/tests/assets/segment_anything_dataset/a.json": "coco",
    "coco/wkentaro__labelme/examples/instance_segmentation/data_dataset_coco/annotations.json": "coco",
    "label_studio/HumanSignal__label-studio-sdk/tests/custom/converter/data/test_export_coco/data.json":
        "label_studio",
    "label_studio/HumanSignal__label-studio-sdk/tests/custom/converter/data/test_export_json_min/data.json":
        "label_studio",
    "cvat/cvat-ai__datumaro/tests/assets/cvat_dataset/for_images/train.xml": "cvat",
    "cvat/openvinotoolkit__datumaro/tests/assets/cvat_dataset/for_images/export_project": "cvat",
    "labelme/wkentaro__labelme/examples/primitives/primitives.json": "labelme",
    "labelme/wkentaro__labelme/examples/bbox_detection/data_annotated": "labelme",
    "yolo/cvat-ai__datumaro/tests/assets/yolo_dataset/yolov8_pose/data.yaml": "yolo",
    "yolo/cvat-ai__datumaro/tests/assets/yolo_dataset/yolov8_segmentation": "yolo",
    "yolo/cvat-ai__datumaro/tests/assets/yolo_dataset/yolo/obj.data": "yolo",
    "yolo/HumanSignal__label-studio-sdk/tests/custom/converter/data/test_import_yolo_data": "yolo",
    "yolo/ultralytics__ultralytics/ultralytics/cfg/datasets/coco8-pose.yaml": "yolo",
    "voc/wkentaro__labelme/examples/bbox_detection/data_dataset_voc": "voc",
    # masks only: every sub-folder holds images, so `folders` would accept it too
    "voc/wkentaro__labelme/examples/instance_segmentation/data_dataset_voc": "voc",
    "voc/openvinotoolkit__datumaro/tests/assets/voc_dataset/voc_dataset1": "voc",
    # leftImg8bit/ and gtFine/ hold images, so `folders` would accept it too
    "cityscapes/openvinotoolkit__datumaro/tests/assets/cityscapes_dataset/dataset": "cityscapes",
    "coco/openvinotoolkit__datumaro/tests/assets/coco_dataset/coco_instances/images": "folders",
}


def _images(folder: Path, names: list[str], size: tuple[int, int] = (32, 24)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)).save(folder / name)


def _coco_source(tmp_path: Path) -> Path:
    """``coco/ann.json`` boxes on a.png (2 objects) and b.png (a labelled negative); c.png unlabelled."""
    _images(tmp_path / "coco", ["a.png", "b.png", "c.png"])
    images = [ImageRecord("a.png", 32, 24, id=1, targets={"objects": [Annotation(0, (1.0, 1.0, 9.0, 9.0)),
                                                                      Annotation(1, (10.0, 2.0, 20.0, 12.0))]}),
              ImageRecord("b.png", 32, 24, id=2, targets={"objects": []})]
    record = DatasetRecord(tmp_path / "coco", images, {"objects": TaskInfo("instances", ["car", "bike"])})
    coco.write(record, tmp_path / "coco" / "ann.json")
    return tmp_path / "coco" / "ann.json"


def _depth_source(tmp_path: Path, names: list[str]) -> Path:
    """``depth_src/images`` + ``depth_src/depth`` 16-bit PNGs (read by `folders`)."""
    root = tmp_path / "depth_src"
    _images(root / "images", names)
    (root / "depth").mkdir()
    for name in names:
        Image.fromarray(np.full((24, 32), 1500, np.uint16)).save(root / "depth" / name)
    return root


@pytest.mark.parametrize(("relpath", "expected"), sorted(FIXTURES.items()))
def test_every_fixture_export_is_detected_as_its_format(fixtures_dir: Path, relpath: str, expected: str) -> None:
    assert detect_format(fixtures_dir / relpath) == expected


def test_registry_holds_every_format_and_the_writers() -> None:
    assert set(FORMATS) == {"combined", "coco", "yolo", "voc", "label_studio", "cvat", "labelme", "cityscapes",
                            "folders", "nyuv2", "nyuv2_mat", "pascal_context"}
    assert set(WRITERS) == {"combined", "coco", "yolo", "voc"}
    order = DETECTION_ORDER.index
    assert order("combined") < order("coco")
    assert DETECTION_ORDER[-1] == "folders"  # after cityscapes and voc, whose roots it also accepts


def test_generated_files_are_detected(tmp_path: Path) -> None:
    ann = _coco_source(tmp_path)
    assert detect_format(ann) == "coco"
    record = coco.read(ann)
    combined.write(record, tmp_path / "coco" / "dataset.json")
    assert coco.detect(tmp_path / "coco" / "dataset.json")  # a combined file is also COCO: order decides
    assert detect_format(tmp_path / "coco" / "dataset.json") == "combined"
    yolo.write(record, tmp_path / "yolo", images="none")
    assert detect_format(tmp_path / "yolo") == "yolo"
    assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"
    (tmp_path / "labels.csv").write_text("file,label\na.png,x\n")
    assert detect_format(tmp_path / "labels.csv") == "folders"
    assert detect_format(_depth_source(tmp_path, ["a.png"])) == "folders"


def test_unknown_names_and_undetectable_paths_fail_with_the_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'kitti'; valid formats: cityscapes, coco, combined"):
        get_format("kitti")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match=r"notes.txt: not a dataset of any known format \(combined, coco"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(FormatError, match="no such file or folder"):
        detect_format(tmp_path / "missing.json")


def test_a_folder_with_a_combined_dataset_json_is_read_as_that_file(tmp_path: Path) -> None:
    record = coco.read(_coco_source(tmp_path))
    combined.write(record, tmp_path / "coco" / "dataset.json")
    loaded = load_source(tmp_path / "coco")
    assert loaded.root == tmp_path / "coco" and loaded.coverage() == {"objects": 2}


def test_reader_options_are_checked_against_the_reader(tmp_path: Path) -> None:
    ann = _coco_source(tmp_path)
    with pytest.raises(ValueError, match=r"format 'coco' has no option\(s\) \['scale'\]; valid: \['images_dir'"):
        load_source(ann, scale=2)
    assert load_source(ann, "coco", images_dir=tmp_path / "coco").root == tmp_path / "coco"


def test_three_sources_with_renames_merge_into_one_coverage(tmp_path: Path) -> None:
    ann = _coco_source(tmp_path)
    (tmp_path / "scene.csv").write_text("file,label\ncoco/a.png,indoor\ncoco/b.png,outdoor\ncoco/c.png,indoor\n")
    depth = _depth_source(tmp_path, ["a.png", "c.png"])
    result = load_sources([SourceSpec(ann, rename={"objects": "vehicles"}),
                           {"path": str(tmp_path / "scene.csv"), "format": "folders", "rename": {"label": "scene"}},
                           depth])
    record = result.record
    assert result.conflicts == []
    assert len(record.images) == 3
    assert record.coverage() == {"vehicles": 2, "scene": 3, "depth": 2}
    a, b, c = record.images
    assert [x.category for x in a.targets["vehicles"]] == [0, 1] and b.targets["vehicles"] == []
    assert record.tasks["scene"].classes == ["indoor", "outdoor"]
    assert (a.targets["scene"], b.targets["scene"], c.targets["scene"]) == (0, 1, 0)
    assert set(c.targets) == {"scene", "depth"} and a.file_name == str(tmp_path / "coco" / "a.png")


def test_relative_source_paths_resolve_against_the_working_directory(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _coco_source(tmp_path)
    (tmp_path / "scene.csv").write_text("coco/a.png,indoor\n")
    monkeypatch.chdir(tmp_path)
    record = load_sources(["coco/ann.json", "scene.csv"]).record
    assert record.images[0].file_name == str(tmp_path / "coco" / "a.png")
    assert load_source("coco/ann.json").root == tmp_path / "coco"


def test_a_task_labelled_twice_is_a_conflict_not_a_guess(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("a.png,cat\nb.png,dog\n")
    (tmp_path / "two.csv").write_text("b.png,cat\n")
    result = load_sources([tmp_path / "one.csv", str(tmp_path / "two.csv")])
    assert [str(c) for c in result.conflicts] == ["b.png (source 1): task 'label' is already labelled by an "
                                                  "earlier source"]
    assert result.record.images[1].targets["label"] == 1  # dog, from the first source


def test_one_source_is_returned_unmerged(tmp_path: Path) -> None:
    ann = _coco_source(tmp_path)
    result = load_sources([ann])
    assert result.conflicts == [] and result.record.root == tmp_path / "coco"
    assert [im.file_name for im in result.record.images] == ["a.png", "b.png"]


def test_bad_renames_and_specs_fail_with_what_is_there() -> None:
    record = DatasetRecord(Path("."), [ImageRecord("a.png", 4, 4, targets={"x": 0, "y": 1})],
                           {"x": TaskInfo("label", ["p", "q"]), "y": TaskInfo("label", ["p", "q"])})
    assert rename_tasks(record, {"x": "y", "y": "x"}).images[0].targets == {"y": 0, "x": 1}
    with pytest.raises(ValueError, match=r"cannot rename task\(s\) \['z'\]: the source has \['x', 'y'\]"):
        rename_tasks(record, {"z": "w"})
    with pytest.raises(ValueError, match="gives two tasks the same name"):
        rename_tasks(record, {"x": "y"})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['renames'\]"):
        SourceSpec.parse({"path": "a.json", "renames": {}})
    with pytest.raises(ValueError, match="no data sources given"):
        load_sources([])
