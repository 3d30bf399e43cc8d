"""Folder layouts (classification, semantic masks, depth, normals) and the Cityscapes layout.

The NYU-style ``depth/openvinotoolkit__datumaro/.../*.h5`` fixtures are not read: HDF5 needs
h5py, which the pinned environment does not install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtvision.data.errors import FormatError
from mtvision.data.formats import cityscapes, folders
from mtvision.data.record import DenseRef
from mtvision.structures import segmentation_area

ESANET = "depth/TUI-NICR__ESANet/samples"
CITYSCAPES = "cityscapes/openvinotoolkit__datumaro/tests/assets/cityscapes_dataset"


def png(path: Path, array: np.ndarray, mode: str | None = None, palette: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette:
        im = im.convert("P")
    im.save(path)
    return path


def rgb(h: int = 4, w: int = 6) -> np.ndarray:
    return np.zeros((h, w, 3), dtype=np.uint8)


def test_esanet_depth_pair(fixtures_dir: Path) -> None:
    rec = folders.read_paired(fixtures_dir / ESANET, images=".", depth=".",
                              suffixes={"images": "_rgb", "depth": "_depth"})
    (image,) = rec.images
    assert (image.file_name, image.width, image.height) == ("sample_rgb.png", 512, 424)
    assert image.targets["depth"] == DenseRef("sample_depth.png", 1000.0)  # 16-bit millimetres
    assert rec.tasks["depth"].kind == "depth"


def test_cityscapes_instances_and_trainids(fixtures_dir: Path) -> None:
    rec = cityscapes.read(fixtures_dir / CITYSCAPES / "train_dataset")
    assert cityscapes.detect(fixtures_dir / CITYSCAPES / "train_dataset")
    assert len(rec.images) == 4 and len(rec.tasks["semseg"].classes) == 19
    assert [im.meta["subset"] for im in rec.images] == ["test", "test", "train", "val"]
    by_id = {im.id: im for im in rec.images}
    # instanceIds of _000031 (5x1 px): values 3 (x2, stuff), 27001 (x1), 27002 (x2) -> two trucks
    trucks = by_id["defaultcity_000001_000031"].targets["objects"]
    assert [(a.category, a.attributes["instance_id"], a.iscrowd) for a in trucks] == [(27, 27001, False),
                                                                                    (27, 27002, False)]
    assert [segmentation_area(a.segmentation, 1, 5) for a in trucks] == [1, 2]
    assert rec.tasks["objects"].classes[27] == "truck"
    assert sum(len(im.targets["objects"]) for im in rec.images) == 5  # 2 + 1 (train 31001) + 1 + 1 (id 1024)
    assert by_id["defaultcity_000001_000019"].targets["semseg"].path.endswith("_gtFine_labelTrainIds.png")


def test_cityscapes_crowd_regions(fixtures_dir: Path) -> None:
    rec = cityscapes.read(fixtures_dir / CITYSCAPES / "dataset", split="test")
    # uint8 instanceIds: 27 (truck, 3 px) and 31 (train, 2 px) are crowd regions; 3 and 12 are stuff
    crowds = [a for im in rec.images for a in im.targets["objects"]]
    assert [(a.category, a.iscrowd, segmentation_area(a.segmentation, 1, 5)) for a in crowds] == [(27, True, 3),
                                                                                                (31, True, 2)]
    assert "semseg" not in rec.tasks  # this variant ships no label masks


def test_image_folder_classification(tmp_path: Path) -> None:
    for name in ("cat/a.png", "cat/b.png", "dog/sub/c.png"):
        png(tmp_path / name, rgb())
    (tmp_path / "notes.txt").write_text("ignored")
    assert folders.detect(tmp_path)
    rec = folders.read(tmp_path)
    assert rec.tasks["label"].classes == ["cat", "dog"] and not rec.tasks["label"].multi_label
    assert [(im.file_name, im.targets["label"], im.width) for im in rec.images] == [
        ("cat/a.png", 0, 6), ("cat/b.png", 0, 6), ("dog/sub/c.png", 1, 6)]
    png(tmp_path / "stray.png", rgb())
    with pytest.raises(FormatError, match="outside a class folder"):
        folders.read(tmp_path)


def test_csv_single_and_multi_label(tmp_path: Path) -> None:
    png(tmp_path / "img" / "a.png", rgb(3, 5))
    (tmp_path / "labels.csv").write_text("file,label\nimg/a.png,cat\nimg/b.png,dog\n")
    rec = folders.read(tmp_path / "labels.csv")
    assert [im.targets["label"] for im in rec.images] == [0, 1] and rec.tasks["label"].classes == ["cat", "dog"]
    assert (rec.images[0].width, rec.images[1].width) == (5, 0)  # b.png missing: size unknown
    (tmp_path / "multi.csv").write_text("img/a.png,cat;outdoor\nimg/b.png,\n")
    rec = folders.read(tmp_path / "multi.csv")
    assert rec.tasks["label"].multi_label and [im.targets["label"] for im in rec.images] == [[0, 1], []]


def test_paired_semseg_depth_normals(tmp_path: Path) -> None:
    png(tmp_path / "images" / "x.jpg", rgb())
    png(tmp_path / "images" / "y.jpg", rgb())
    mask = np.array([[0, 1, 2, 255, 0, 0]] * 4, dtype=np.uint8)
    png(tmp_path / "masks" / "x.png", mask, palette=False)
    png(tmp_path / "depth" / "x.png", np.full((4, 6), 1500, dtype=np.uint16))
    np.save(tmp_path / "depth" / "y.npy", np.ones((4, 6), dtype=np.float32))
    (tmp_path / "normals").mkdir()
    np.save(tmp_path / "normals" / "x.npy", np.zeros((3, 4, 6), dtype=np.float32))
    assert folders.detect(tmp_path)
    rec = folders.read(tmp_path)
    x, y = rec.images
    assert rec.tasks["semseg"].classes == ["0", "1", "2"]  # scanned: largest non-void index is 2
    assert x.targets["semseg"] == DenseRef("masks/x.png") and "semseg" not in y.targets
    assert x.targets["depth"] == DenseRef("depth/x.png", 1000.0) and y.targets["depth"] == DenseRef("depth/y.npy")
    assert x.targets["normals"] == DenseRef("normals/x.npy") and set(rec.coverage().values()) == {1, 2}


@pytest.mark.parametrize("setup, problem", [
    (lambda p: png(p / "masks" / "z.png", np.zeros((4, 6), np.uint8)), "no image with the same name"),
    (lambda p: png(p / "masks" / "x.png", np.zeros((5, 6), np.uint8)), "is 6x5, image is 6x4"),
    (lambda p: png(p / "masks" / "x.png", rgb()), "not colour"),
    (lambda p: (p / "masks").mkdir() or np.save(p / "masks" / "x.npy", np.zeros((2, 4, 6))), "expected 1 channel"),
])
def test_paired_maps_are_checked(tmp_path: Path, setup: Callable[[Path], object], problem: str) -> None:
    png(tmp_path / "images" / "x.jpg", rgb())
    setup(tmp_path)
    with pytest.raises(FormatError, match=problem):
        folders.read_paired(tmp_path, semseg="masks", classes=["a"])


def test_csv_refuses_escaping_paths(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("../secret.png,cat\n")
    with pytest.raises(FormatError, match="outside"):
        folders.read_csv(tmp_path / "l.csv")
