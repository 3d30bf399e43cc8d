"""load_sample: every target type decoded to the structures convention, with real values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from mtvision.data.errors import FormatError
from mtvision.data.loading import CorruptImageError, load_sample
from mtvision.data.record import Annotation, DatasetRecord, DenseRef, ImageRecord
from mtvision.structures import DepthMap, Instances, NormalMap, TaskInfo

H, W = 24, 32


def _save(array: np.ndarray, path: Path, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        Image.fromarray(array, mode).save(path)


@pytest.fixture()
def record(tmp_path: Path) -> DatasetRecord:
    rng = np.random.default_rng(0)
    _save(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), tmp_path / "a.png")
    _save(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), tmp_path / "b.jpg")
    semseg = np.zeros((H, W), np.uint8); semseg[:, 16:] = 1; semseg[0, 0] = 255
    palette = Image.fromarray(semseg, "P"); palette.putpalette([0, 0, 0, 255, 0, 0] * 128); palette.save(tmp_path / "s.png")
    depth = np.zeros((H, W), np.uint16); depth[4:, :] = 2500
    Image.fromarray(depth).save(tmp_path / "d.png")
    normals = np.zeros((3, H, W), np.float32); normals[2] = -1.0
    _save(normals, tmp_path / "n.npy")
    rgb = np.zeros((H, W, 3), np.uint8); rgb[:12] = (255, 128, 128)  # +x, ~0, ~0 ; bottom half: no normal
    _save(rgb, tmp_path / "n.png")
    edges = np.zeros((H, W), np.uint8); edges[10, :] = 255
    _save(edges, tmp_path / "e.png")
    tasks = {
        "objects": TaskInfo(kind="instances", classes=["ball", "cube"], keypoint_names=["top", "bottom"]),
        "classes": TaskInfo(kind="label", classes=["a", "b", "c"], multi_label=True),
        "lighting": TaskInfo(kind="label", classes=["day", "night"]),
        "semseg": TaskInfo(kind="semantic", classes=["floor", "wall"]),
        "depth": TaskInfo(kind="depth"), "normals": TaskInfo(kind="normals"),
        "normals_png": TaskInfo(kind="normals"), "edges": TaskInfo(kind="edges"),
    }
    objects = [
        Annotation(1, (2.0, 2.0, 12.0, 10.0), segmentation=[[2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0]],
                   keypoints=[7.0, 2.0, 2, 7.0, 10.0, 1], attributes={"occluded": False}),
        Annotation(0, (20.0, 5.0, 24.0, 9.0), iscrowd=True),  # box only: the box becomes its mask
    ]
    a = ImageRecord("a.png", W, H, id=1, targets={
        "objects": objects, "classes": [0, 2], "lighting": 1, "semseg": DenseRef("s.png"),
        "depth": DenseRef("d.png", scale=1000.0), "normals": DenseRef("n.npy"),
        "normals_png": DenseRef("n.png"), "edges": DenseRef("e.png")})
    b = ImageRecord("b.jpg", W, H, id=2, targets={"lighting": 0})
    return DatasetRecord(root=tmp_path, images=[a, b], tasks=tasks)


def test_every_target_type_is_decoded(record: DatasetRecord) -> None:
    sample = load_sample(record, record.images[0])
    assert isinstance(sample.image, tv_tensors.Image) and sample.image.dtype == torch.uint8
    assert sample.size == (H, W) and sample.meta["file_name"] == "a.png" and sample.meta["id"] == 1
    t = sample.targets
    assert t["classes"].tolist() == [1, 0, 1] and t["lighting"].item() == 1 and t["lighting"].dtype == torch.int64
    assert t["semseg"].shape == (H, W) and t["semseg"].dtype == torch.int64
    assert t["semseg"][0, 0] == 255 and t["semseg"][5, 20] == 1 and t["semseg"][5, 5] == 0
    assert isinstance(t["depth"], DepthMap) and t["depth"][0, 0, 0] == 0 and t["depth"][0, 5, 5] == 2.5
    assert isinstance(t["normals"], NormalMap) and t["normals"][2].eq(-1).all()
    assert t["normals_png"][:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    assert t["normals_png"][:, 20, 0].tolist() == [0.0, 0.0, 0.0]
    assert t["edges"].shape == (1, H, W) and t["edges"].dtype == torch.uint8 and t["edges"].sum() == W


def test_instances(record: DatasetRecord) -> None:
    inst = load_sample(record, record.images[0], tasks=["objects"]).targets["objects"]
    assert isinstance(inst, Instances) and inst.labels.tolist() == [1, 0]
    assert inst.boxes.tolist() == [[2.0, 2.0, 12.0, 10.0], [20.0, 5.0, 24.0, 9.0]]
    assert inst.masks.shape == (2, H, W) and inst.masks.dtype == torch.uint8
    assert inst.masks[0, 3:10, 3:12].all() and inst.masks[0, 12:].sum() == 0
    assert inst.masks[1].sum() == 16 and inst.masks[1, 5:9, 20:24].all()
    assert inst.keypoints.shape == (2, 2, 2) and inst.keypoints[0].tolist() == [[7.0, 2.0], [7.0, 10.0]]
    assert inst.visibility.tolist() == [[2, 1], [0, 0]]
    assert inst.iscrowd.tolist() == [False, True] and inst.attributes == [{"occluded": False}, {}]


def test_absent_tasks_are_absent_and_filter_applies(record: DatasetRecord) -> None:
    assert set(load_sample(record, record.images[1]).targets) == {"lighting"}
    assert set(load_sample(record, record.images[0], tasks=["depth", "lighting"]).targets) == {"depth", "lighting"}
    with pytest.raises(ValueError, match="unknown task"):
        load_sample(record, record.images[0], tasks=["nope"])


def test_corrupt_and_missing_images_name_the_file(record: DatasetRecord, tmp_path: Path) -> None:
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=str(tmp_path / "a.png")):
        load_sample(record, record.images[0])
    (tmp_path / "b.jpg").unlink()
    with pytest.raises(CorruptImageError, match="b.jpg"):
        load_sample(record, record.images[1])


def test_dense_map_of_the_wrong_size_is_a_format_error(record: DatasetRecord, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(tmp_path / "e.png")
    with pytest.raises(FormatError, match=r"e\.png.*edges map is 33x24 but its image is 32x24"):
        load_sample(record, record.images[0], tasks=["edges"])


def test_synthetic_export_reads_back_as_rendered(tmp_path: Path) -> None:
    from mtvision.data.formats import combined
    from mtvision.data.synthetic import render_scene
    from mtvision.data.synthetic.combined_writer import export_synthetic

    record = combined.read(export_synthetic(tmp_path, num=3, size=40, seed=5))
    assert len(record.images) == 3 and (tmp_path / "images" / "000002.png").is_file()
    for offset, image in enumerate(record.images):
        loaded, rendered = load_sample(record, image), render_scene(5 + offset, 40)
        assert loaded.meta["seed"] == 5 + offset and image.id == 5 + offset
        assert torch.equal(loaded.image, rendered.image)
        for task in ("classes", "lighting", "semseg", "edges"):
            assert torch.equal(loaded.targets[task], rendered.targets[task]), task
        a, b = loaded.targets["objects"], rendered.targets["objects"]
        for field in ("boxes", "labels", "masks", "keypoints", "visibility", "iscrowd"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        depth, true_depth = loaded.targets["depth"], rendered.targets["depth"]
        assert torch.equal(depth == 0, true_depth == 0) and (depth - true_depth).abs().max() <= 0.0005 + 1e-6
        assert (loaded.targets["normals"] - rendered.targets["normals"]).abs().max() <= 2.5e-4


def test_labelme_embedded_image_is_decoded(fixtures_dir) -> None:
    """apc2016_obj3.json carries its only usable copy of the pixels in imageData."""
    from mtvision.data.formats import labelme

    path = fixtures_dir / "labelme/wkentaro__labelme/examples/tutorial/apc2016_obj3.json"
    record = labelme.read(path)
    (image,) = record.images
    sample = load_sample(record, image)
    assert sample.size == (image.height, image.width)
    assert "image_data" not in sample.meta
    reference = np.array(Image.open(path.with_suffix(".jpg")).convert("RGB"))
    assert np.abs(sample.image.permute(1, 2, 0).numpy().astype(int) - reference.astype(int)).mean() < 3
