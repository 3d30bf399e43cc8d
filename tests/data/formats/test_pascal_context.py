"""PASCAL-Context multi-task in Vandenhende's ``PASCAL_MT`` layout, written here at a tiny size with
the real ``.mat`` structures (``LabelMap``; PASCAL-Part ``anno.objects[].parts[]``), read, checked
by ``mtvision data check`` and trained on for one epoch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from scipy.ndimage import convolve
from skimage.morphology import thin
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.errors import FormatError
from mtvision.data.formats import detect_format, pascal_context
from mtvision.data.loading import load_sample

H, W = 24, 32
IDS = {"train": ["2008_000002", "2008_000003"], "val": ["2008_000007"]}
# raw LabelMap id -> (VOC21 name, Context59 name), by hand from labels.txt / the papers' tables
HAND = {0: ("background", None), 1: ("background", None), 2: ("aeroplane", "aeroplane"), 284: ("person", "person"),
        397: ("diningtable", "table"), 427: ("tvmonitor", "tvmonitor"), 440: ("background", "wall"),
        458: ("background", "wood")}


def _struct(fields: list[str], rows: list[tuple]) -> np.ndarray:
    """A 1 x N MATLAB struct array for savemat."""
    array = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        array[0, i] = row
    return array


def _anno(objects: list[tuple[int, dict[str, np.ndarray]]]) -> dict:
    """``human_parts/<id>.mat``: anno.imname, anno.objects(class, class_ind, mask, parts(part_name, mask))."""
    rows = []
    for class_ind, parts in objects:
        mask = np.zeros((H, W), np.uint8)
        for part in parts.values():
            mask |= part.astype(np.uint8)
        part_rows = _struct(["part_name", "mask"], [(name, m.astype(np.uint8)) for name, m in parts.items()]) \
            if parts else np.zeros((0, 0))
        rows.append(("person" if class_ind == 15 else "chair", class_ind, mask, part_rows))
    return {"anno": {"imname": "x", "objects": _struct(["class", "class_ind", "mask", "parts"], rows)}}


def _pascal(root: Path) -> Path:
    """Three images: the first with a person's parts, the second with a chair (no parts), the third
    (val) without human_parts and saliency files."""
    rng = np.random.default_rng(0)
    (root / "ImageSets" / "Context").mkdir(parents=True)
    for split, ids in IDS.items():
        (root / "ImageSets" / "Context" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    for sub in ("JPEGImages", "pascal-context/trainval", "human_parts", "sal_distill", "normals_distill"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for n, image_id in enumerate(IDS["train"] + IDS["val"]):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        labels = np.zeros((H, W), np.uint16)
        for column, raw in enumerate(HAND):
            labels[:, 3 * column: 3 * column + 3] = raw
        savemat(root / "pascal-context" / "trainval" / f"{image_id}.mat", {"LabelMap": labels})
        normals = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(normals).save(root / "normals_distill" / f"{image_id}.png")
        if n < 2:
            ramp = np.tile(np.arange(W, dtype=np.uint8) * 8, (H, 1))
            Image.fromarray(ramp).save(root / "sal_distill" / f"{image_id}.png")
    head, arm, foot = (np.zeros((H, W), bool) for _ in range(3))
    head[0:4, 0:4], arm[5:8, 0:4], foot[10:12, 0:4] = True, True, True
    savemat(root / "human_parts" / f"{IDS['train'][0]}.mat", _anno([(15, {"head": head, "llarm": arm, "rfoot": foot}),
                                                                    (9, {})]))
    savemat(root / "human_parts" / f"{IDS['train'][1]}.mat", _anno([(9, {})]))
    return root


def test_layout_is_detected_and_each_modality_read(tmp_path: Path) -> None:
    root = _pascal(tmp_path / "PASCAL_MT")
    assert detect_format(root) == "pascal_context"
    record = pascal_context.read(root)
    assert [(im.id, im.meta["subset"]) for im in record.images] == [("2008_000002", "train"), ("2008_000003", "train"),
                                                                     ("2008_000007", "val")]
    assert record.coverage() == {"semseg": 3, "parts": 1, "sal": 2, "normals": 3, "edges": 3}
    sample = load_sample(record, record.images[0])
    parts = sample.targets["parts"].numpy()
    assert record.tasks["parts"].classes[parts[0, 0]] == "head" and parts[6, 1] == 4 and parts[11, 2] == 6
    assert int((parts > 0).sum()) == 16 + 12 + 8
    sal = sample.targets["sal"].numpy()[0]
    assert np.array_equal(sal[0], (np.arange(W) * 8 / 255 > 0.5).astype(np.uint8))
    stored = np.asarray(Image.open(root / "normals_distill" / "2008_000002.png")).astype(np.float32)
    normals = sample.targets["normals"].numpy()
    kept = np.zeros((H, W), bool)  # NYU-like classes: person (284), table (397), tvmonitor (427), wall (440)
    for column, raw in enumerate(HAND):
        kept[:, 3 * column: 3 * column + 3] = raw in (284, 397, 427, 440)
    assert np.allclose(normals[:, kept], np.moveaxis(2 * stored / 255 - 1, -1, 0)[:, kept])
    assert not normals[:, ~kept].any()


@pytest.mark.parametrize("semantic", ["voc21", "context59"])
def test_semantic_class_sets_against_a_hand_table(tmp_path: Path, semantic: str) -> None:
    record = pascal_context.read(_pascal(tmp_path), split="val", semantic=semantic)
    names = record.tasks["semseg"].classes
    assert len(names) == (21 if semantic == "voc21" else 59)
    row = load_sample(record, record.images[0]).targets["semseg"].numpy()[0]
    got = [None if row[3 * c] == 255 else names[row[3 * c]] for c in range(len(HAND))]
    assert got == [pair[0 if semantic == "voc21" else 1] for pair in HAND.values()]


def test_edges_are_the_thinned_laplacian_of_the_label_map(tmp_path: Path) -> None:
    """Oracle: scipy's convolution with mirrored borders (OpenCV's REFLECT_101) and skimage's thin."""
    labels = np.random.default_rng(3).integers(0, 4, (H, W)) * 100
    labels[8:16, 8:20] = 7
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    expected = thin(convolve(labels.astype(float), kernel, mode="mirror") != 0)
    assert np.array_equal(pascal_context.label_edges(labels), expected)
    record = pascal_context.read(_pascal(tmp_path), split="val")
    edges = load_sample(record, record.images[0]).targets["edges"].numpy()[0]
    stripes = np.zeros((H, W), int)
    for column, raw in enumerate(HAND):
        stripes[:, 3 * column: 3 * column + 3] = raw
    assert np.array_equal(edges.astype(bool), thin(convolve(stripes.astype(float), kernel, mode="mirror") != 0))


def test_bad_annotations_are_named(tmp_path: Path) -> None:
    root = _pascal(tmp_path)
    bad = np.zeros((H, W), np.uint16)
    bad[3, 4] = 460
    savemat(root / "pascal-context" / "trainval" / "2008_000007.mat", {"LabelMap": bad})
    with pytest.raises(FormatError, match=r"2008_000007\.mat: LabelMap: label value\(s\) 460 outside the 460"):
        pascal_context.read(root, split="val")
    (root / "pascal-context" / "trainval" / "2008_000007.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(FormatError, match=r"2008_000007\.mat: cannot read MATLAB file"):
        pascal_context.read(root, split="val")
    arm = np.zeros((H, W), bool)
    arm[0, 0] = True
    savemat(root / "human_parts" / "2008_000003.mat", _anno([(15, {"tail": arm})]))
    with pytest.raises(FormatError, match=r"2008_000003\.mat: anno\.objects\[0\]: unknown person part 'tail'"):
        pascal_context.read(root, split="train")
    (root / "ImageSets" / "Context" / "train.txt").write_text("2008_000002\n2008_999999\n")
    with pytest.raises(FormatError, match=r"train\.txt: line 2: image .*2008_999999\.jpg not found"):
        pascal_context.read(root, split="train")
    with pytest.raises(FormatError, match=r"semantic: must be one of"):
        pascal_context.read(root, semantic="context60")


@pytest.mark.slow
def test_data_check_and_one_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pascal(tmp_path / "PASCAL_MT")
    tasks = {"semseg": {"type": "semantic_segmentation"}, "parts": {"type": "semantic_segmentation"},
             "sal": {"type": "edges"}, "normals": {"type": "normals"},
             "edges": {"type": "edges", "options": {"bsds_max_dist": 0.0075}}}
    source = {"path": "PASCAL_MT", "options": {"split": "train"}}
    config = {"run": {"name": "pc"}, "data": {"source": [source], "val": [{**source, "options": {"split": "val"}}],
                                              "image_size": 32, "batch_size": 2},
              "tasks": tasks, "model": {"backbone": "test_resnet.r160_in1k", "pretrained": False, "neck_channels": 16},
              "train": {"epochs": 1, "warmup_epochs": 0, "predict_images": 0}}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    check = CliRunner().invoke(app, ["data", "check", "run.yaml"])
    assert check.exit_code == 0 and "no problems found" in check.stdout, check.output
    result = CliRunner().invoke(app, ["train", "run.yaml"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from mtvision.engine.loggers import read_results
    (row,) = read_results(tmp_path / "runs" / "pc" / "results.csv")
    assert {"val/parts/miou", "val/sal/ods_f", "val/edges/ods_f", "val/normals/mean_angle"} <= set(row)
