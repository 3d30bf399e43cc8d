"""NYUv2: the MTAN / LibMTL ``.npy`` folders and the official labelled ``.mat`` (HDF5), written
here in their exact layouts at a tiny size, read, checked by ``mtvision data check`` and trained
on for one epoch."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from mtvision.cli import app
from mtvision.data.errors import FormatError
from mtvision.data.formats import detect_format, nyuv2, nyuv2_mat
from mtvision.data.loading import load_sample

H, W = 24, 32  # MTAN's files are 288 x 384; the layout, not the size, is under test
# Hand-written from class13Mapping.mat (ankurhanda/nyuv2-meta-data): NYU40 class -> NYU13 class.
HAND_40_TO_13 = {"wall": "wall", "floor": "floor", "cabinet": "furniture", "bed": "bed", "chair": "chair",
                 "sofa": "sofa", "table": "table", "door": "wall", "window": "window", "bookshelf": "furniture",
                 "picture": "picture", "blinds": "window", "desk": "table", "curtain": "window",
                 "floor mat": "floor", "ceiling": "ceiling", "books": "books", "television": "tv",
                 "night stand": "furniture", "otherfurniture": "furniture", "otherprop": "objects",
                 "pillow": "objects", "person": "objects"}


def _mtan(root: Path, split: str, count: int, skip: dict[str, int] | None = None) -> Path:
    """``root/split/{image,label,depth,normal}/<i>.npy`` as MTAN's create_dataset.py reads them."""
    rng = np.random.default_rng(len(split))
    for i in range(count):
        arrays = {"image": rng.random((H, W, 3), dtype=np.float32),
                  "label": rng.integers(-1, 13, (H, W)).astype(np.float32),
                  "depth": rng.uniform(0.5, 8, (H, W, 1)).astype(np.float32),
                  "normal": _unit(rng.normal(size=(H, W, 3))).astype(np.float32)}
        for sub, array in arrays.items():
            if (skip or {}).get(sub) != i:
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                np.save(root / split / sub / f"{i}.npy", array)
    return root / split


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_mtan_split_folder_reads_every_modality_exactly(tmp_path: Path) -> None:
    folder = _mtan(tmp_path / "nyuv2", "train", 3)
    assert detect_format(folder) == "nyuv2" and detect_format(tmp_path / "nyuv2") == "nyuv2"
    record = nyuv2.read(folder)
    assert [im.id for im in record.images] == [0, 1, 2]
    assert record.coverage() == {"semseg": 3, "depth": 3, "normals": 3}
    assert record.tasks["semseg"].classes[0] == "bed" and record.tasks["semseg"].ignore_index == 255
    sample = load_sample(record, record.images[1])
    stored = {sub: np.load(folder / sub / "1.npy") for sub in ("image", "label", "depth", "normal")}
    image = sample.image.permute(1, 2, 0).numpy() / 255.0
    assert np.abs(image - stored["image"]).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG of the float image
    label = sample.targets["semseg"].numpy()
    assert np.array_equal(label, np.where(stored["label"] < 0, 255, stored["label"]).astype(np.int64))
    assert np.array_equal(sample.targets["depth"].numpy()[0], stored["depth"][..., 0])
    assert np.allclose(sample.targets["normals"].numpy(), np.moveaxis(stored["normal"], -1, 0))


def test_the_root_reads_both_splits_and_a_missing_map_is_a_partial_label(tmp_path: Path) -> None:
    _mtan(tmp_path, "train", 2, skip={"depth": 1})
    _mtan(tmp_path, "val", 12)
    record = nyuv2.read(tmp_path)
    assert [im.id for im in record.images][:4] == ["train/0", "train/1", "val/0", "val/1"]
    assert [im.id for im in record.images][-1] == "val/11"  # numeric order, not "val/2" after "val/11"
    assert "depth" not in record.images[1].targets and record.coverage() == {"semseg": 14, "depth": 13, "normals": 14}
    assert [im.id for im in nyuv2.read(tmp_path, split="train").images] == ["train/0", "train/1"]


def test_bad_mtan_files_are_named(tmp_path: Path) -> None:
    folder = _mtan(tmp_path, "train", 2)
    np.save(folder / "label" / "1.npy", np.full((H, W), 13.0, np.float32))
    with pytest.raises(FormatError, match=r"label/1\.npy: label value\(s\) 13 outside the 13 classes"):
        nyuv2.read(folder)
    np.save(folder / "label" / "1.npy", np.zeros((H, W), np.float32))
    np.save(folder / "depth" / "7.npy", np.zeros((H, W, 1), np.float32))
    with pytest.raises(FormatError, match=r"depth/7\.npy: depth map without an image"):
        nyuv2.read(folder)
    (folder / "depth" / "7.npy").unlink()
    np.save(folder / "normal" / "0.npy", np.zeros((H, W, 2), np.float32))
    with pytest.raises(FormatError, match=r"normal/0\.npy: shape \(24, 32, 2\), expected 3 channel"):
        nyuv2.read(folder)


def _labelled_mat(folder: Path, labels: np.ndarray) -> Path:
    """``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 writes it (512-byte header, HDF5, transposed arrays),
    plus ``classMapping40.mat`` and ``splits.mat``."""
    count = len(labels)
    rng = np.random.default_rng(0)
    path = folder / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["images"] = rng.integers(0, 256, (count, 3, W, H), dtype=np.uint8)  # [N, C, W, H]
        f["depths"] = rng.uniform(0.7, 9.9, (count, W, H)).astype(np.float32)
        f["labels"] = labels.transpose(0, 2, 1).astype(np.uint16)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    map_class = np.arange(894) % 40 + 1  # raw k -> NYU40 class (k - 1) mod 40 + 1: checkable by hand
    savemat(folder / "classMapping40.mat", {"mapClass": map_class[None].astype(np.float64),
                                            "className": np.array(nyuv2_mat.CLASSES_40, dtype=object)[None]})
    savemat(folder / "splits.mat", {"trainNdxs": np.array([[1], [3]], np.float64),
                                    "testNdxs": np.array([[2]], np.float64)})
    return path


def test_labelled_mat_split_and_class_mappings(tmp_path: Path) -> None:
    labels = np.zeros((3, H, W), np.int64)
    raw = {1: "wall", 2: "floor", 22: "ceiling", 25: "television", 40: "otherprop", 41: "wall", 894: "desk"}
    for n, k in enumerate(raw):  # raw k sits in column n of image 2 (index 3); column 10 stays unlabelled
        labels[2, :, n] = k
    path = _labelled_mat(tmp_path, labels)
    assert detect_format(path) == "nyuv2_mat"
    train = nyuv2_mat.read(path, split="train")
    assert [im.id for im in train.images] == [1, 3] and [im.meta["subset"] for im in train.images] == ["train"] * 2
    assert [im.id for im in nyuv2_mat.read(path, split="val").images] == [2]
    for classes in (40, 13):
        record = nyuv2_mat.read(path, split="train", classes=classes)
        names = record.tasks["semseg"].classes
        row = load_sample(record, record.images[1]).targets["semseg"].numpy()[0]
        got = [names[int(v)] for v in row[: len(raw)]]
        want = [(name if classes == 40 else HAND_40_TO_13[name]) for name in raw.values()]
        assert got == want and row[10] == 255, classes
    sample = load_sample(train, train.images[0])
    with h5py.File(path) as f:
        assert np.array_equal(sample.image.numpy(), f["images"][0].transpose(0, 2, 1))
        assert np.array_equal(sample.targets["depth"].numpy()[0], f["depths"][0].T)


def test_labelled_mat_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    labels = np.zeros((2, H, W), np.int64)
    labels[1, 0, 0] = 895
    path = _labelled_mat(tmp_path, labels)
    with pytest.raises(FormatError, match=r"labels\[1\]: label value\(s\) 895 outside the 895 classes"):
        nyuv2_mat.read(path)
    with pytest.raises(FormatError, match=r"classes: must be 13 or 40"):
        nyuv2_mat.read(path, classes=894)
    (tmp_path / "classMapping40.mat").unlink()
    with pytest.raises(FormatError, match="put classMapping40.mat .* or pass mapping=<file>"):
        nyuv2_mat.read(path)
    broken = tmp_path / "broken" / "nyu_depth_v2_labeled.mat"
    broken.parent.mkdir()
    broken.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5" + bytes(200))
    savemat(broken.with_name("classMapping40.mat"), {"mapClass": np.ones((1, 894))})
    assert not nyuv2_mat.detect(broken)
    with pytest.raises(FormatError, match=r"cannot read as HDF5 / MATLAB v7\.3"):
        nyuv2_mat.read(broken)


def _train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: object, val: object, tasks: dict) -> list[dict]:
    """``mtvision data check`` then a one-epoch ``mtvision train`` on the tiny backbone."""
    config = {"run": {"name": "bench"}, "data": {"source": source, "val": val, "image_size": 32, "batch_size": 2},
              "tasks": tasks, "model": {"backbone": "test_resnet.r160_in1k", "pretrained": False, "neck_channels": 16},
              "train": {"epochs": 1, "warmup_epochs": 0, "predict_images": 0, "best_metric": None}}
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    check = CliRunner().invoke(app, ["data", "check", str(path)])
    assert check.exit_code == 0 and "no problems found" in check.stdout, check.output
    result = CliRunner().invoke(app, ["train", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from mtvision.engine.loggers import read_results
    return read_results(tmp_path / "runs" / "bench" / "results.csv")


@pytest.mark.slow
def test_data_check_and_one_epoch_on_the_mtan_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _mtan(tmp_path / "nyuv2", "train", 4, skip={"normal": 2})
    _mtan(tmp_path / "nyuv2", "val", 2)
    tasks = {"semseg": {"type": "semantic_segmentation"}, "depth": {"type": "depth"}, "normals": {"type": "normals"}}
    (row,) = _train(tmp_path, monkeypatch, "nyuv2/train", "nyuv2/val", tasks)
    assert {"val/semseg/miou", "val/depth/abs_rel", "val/normals/within_11_25"} <= set(row)


@pytest.mark.slow
def test_data_check_and_one_epoch_on_the_labelled_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _labelled_mat(tmp_path, np.random.default_rng(1).integers(0, 895, (3, H, W)))
    source = {"path": str(path), "options": {"split": "train"}}
    val = {"path": str(path), "options": {"split": "val"}}
    tasks = {"semseg": {"type": "semantic_segmentation"}, "depth": {"type": "depth"}}
    (row,) = _train(tmp_path, monkeypatch, [source], [val], tasks)
    assert np.isfinite(float(row["val/depth/abs_err"]))


def test_a_labelled_image_png_is_what_the_loader_decodes(tmp_path: Path) -> None:
    """The cache is plain files: a second read reuses them and the loader sees an ordinary PNG."""
    folder = _mtan(tmp_path, "val", 1)
    first = nyuv2.read(folder)
    png = folder / first.images[0].file_name
    stamp = png.stat().st_mtime_ns
    second = nyuv2.read(folder)
    assert png.stat().st_mtime_ns == stamp and second.images[0].file_name == first.images[0].file_name
    assert Image.open(png).mode == "RGB" and Image.open(png).size == (W, H)
