"""ONNX export: one graph for every task (detection in a per-image Loop), parity with PyTorch,
batches, metadata, float16 weights, every architecture, and bad input that writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mtvision.data.dataset import collate
from mtvision.data.synthetic import render_scene
from mtvision.engine import export as export_module
from mtvision.engine.export import ExportSettings, ParityError, export_onnx
from mtvision.engine.onnx_graph import ExportError
from mtvision.engine.onnx_metadata import ExportMetadata
from mtvision.engine.onnx_parity import HALF, Tolerance
from mtvision.engine.onnx_runtime import OnnxModel
from mtvision.models.architectures import available_architectures
from tests.models.architectures.conftest import INFOS, make, specs

torch.set_num_threads(1)
ANY = ExportSettings(batch=None, threads=1)
DETECTION_OUTPUTS = ["batch_index", "boxes", "labels", "scores", "mask_probs", "keypoints", "keypoint_scores"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Three rendered 64-px scenes, normalised like the evaluation pipeline."""
    return collate([render_scene(seed, size=(64, 64)) for seed in (0, 1, 2)]).images


@pytest.fixture(scope="module")
def joint(images: torch.Tensor, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """All seven synthetic tasks (detection with masks and keypoints), exported for any batch size."""
    model = make("hard").eval()
    path = tmp_path_factory.mktemp("onnx") / "joint.onnx"
    result = export_onnx(model, specs(), path, images, ANY, {"backbone": "test_resnet.r160_in1k"})
    return path, result


def test_joint_export_has_one_output_per_task_and_passes_parity(joint: tuple[Path, object]) -> None:
    path, result = joint
    names = [o.name for o in onnx.load(str(path)).graph.output]
    assert names[:6] == ["classes", "lighting", "semseg", "depth", "normals", "edges"]
    assert names[6:] == [f"objects.{k}" for k in DETECTION_OUTPUTS]
    checks = {(c.task, c.name): c.value for c in result.checks}
    assert all(c.ok for c in result.checks)
    assert checks[("semseg", "labels")] >= 0.999 and checks[("depth", "max_abs")] < 1e-4
    assert checks[("objects", "boxes_matched")] == 1.0 and checks[("objects", "mask_iou")] > 0.99
    assert not list(path.parent.glob("*.tmp"))


def test_dense_only_model_exports_at_a_fixed_batch(images: torch.Tensor, tmp_path: Path) -> None:
    model = make("hard", ["lighting", "semseg", "depth"]).eval()
    result = export_onnx(model, specs(["lighting", "semseg", "depth"]), tmp_path / "dense.onnx", images,
                         ExportSettings(batch=1, threads=1))
    graph = onnx.load(str(result.path)).graph
    assert [o.name for o in graph.output] == ["lighting", "semseg", "depth"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert all(c.ok for c in result.checks)
    runtime = OnnxModel(result.path, threads=1)  # a fixed batch is fed in chunks: 3 images through batch 1
    assert runtime.run(images.numpy())["depth"].shape == (3, 1, 64, 64)


def test_batch_of_two_equals_each_image_alone(joint: tuple[Path, object], images: torch.Tensor) -> None:
    """The classic detection-export bug (vision#2311): batch > 1 must not change any image's answer."""
    runtime = OnnxModel(joint[0], threads=1)
    both = runtime.run(images[:2].numpy())
    for i in range(2):
        alone = runtime.run(images[i:i + 1].numpy())
        for name in ["classes", "semseg", "depth", "normals"]:
            np.testing.assert_allclose(both[name][i], alone[name][0], atol=1e-5)
        rows = both["objects.batch_index"] == i
        assert rows.sum() == len(alone["objects.boxes"]) > 0
        for key in ["boxes", "scores", "labels", "keypoints", "mask_probs"]:
            np.testing.assert_allclose(both[f"objects.{key}"][rows], alone[f"objects.{key}"], atol=1e-4)


def test_images_without_detections_alone_and_in_a_batch(images: torch.Tensor, tmp_path: Path) -> None:
    """torchvision's exported R-CNN once failed on an image with no detection (vision#2251, #2309)."""
    model = make("hard", ["depth", "objects"]).eval()
    scenes = collate([render_scene(seed, size=(64, 64)) for seed in range(6)]).images
    heads = model.tasks["objects"].roi_heads
    heads.score_thresh = 0.2
    with torch.no_grad():
        best = [float(d["scores"].max()) for d in model(scenes)["objects"]]
    heads.score_thresh = float(np.median(best))  # about half the scenes keep a detection
    with torch.no_grad():
        counts = [len(d["boxes"]) for d in model(scenes)["objects"]]
    assert 0 in counts and max(counts) > 0
    result = export_onnx(model, specs(["depth", "objects"]), tmp_path / "m.onnx", scenes, ANY)
    assert all(c.ok for c in result.checks)
    runtime = OnnxModel(result.path, threads=1)
    assert np.bincount(runtime.run(scenes.numpy())["objects.batch_index"], minlength=6).tolist() == counts
    assert [len(runtime.run(scenes[i:i + 1].numpy())["objects.boxes"]) for i in range(6)] == counts


def test_metadata_round_trips(joint: tuple[Path, object]) -> None:
    props = {p.key: p.value for p in onnx.load(str(joint[0])).metadata_props}
    meta = ExportMetadata.from_props(props)
    assert meta.image_size == (64, 64) and meta.batch is None and meta.model["backbone"] == "test_resnet.r160_in1k"
    assert list(meta.tasks) == ["classes", "lighting", "semseg", "depth", "normals", "edges", "objects"]
    objects = meta.tasks["objects"]
    assert objects.info == INFOS["objects"] and objects.kind == "detection" and objects.options["masks"]
    assert objects.info.keypoint_names and objects.info.flip_idx == INFOS["objects"].flip_idx
    assert objects.outputs == DETECTION_OUTPUTS
    assert "metres" in props["mtvision.tasks"] and "letterbox" in props["mtvision.input"]
    assert meta.mean == (0.485, 0.456, 0.406) and meta.version


def test_half_weights_halve_the_file_within_the_documented_error(joint: tuple[Path, object], images: torch.Tensor,
                                                                tmp_path: Path) -> None:
    model = make("hard").eval()
    result = export_onnx(model, specs(), tmp_path / "half.onnx", images, ExportSettings(batch=None, half=True,
                                                                                         threads=1))
    assert all(c.ok for c in result.checks) and result.checks[0].bound == HALF.max_abs
    assert result.size_mb < 0.65 * joint[0].stat().st_size / 1e6
    depth = next(c for c in result.checks if (c.task, c.name) == ("depth", "max_abs"))
    assert 0 < depth.value < 0.01  # measured ~5e-4 m: the rounding of float16 weights


@pytest.mark.parametrize("architecture", available_architectures())
def test_every_architecture_exports_or_names_the_blocking_operator(architecture: str, images: torch.Tensor,
                                                                   tmp_path: Path) -> None:
    tasks = ["classes", "depth", "objects"]
    model = make(architecture, tasks).eval()
    try:
        result = export_onnx(model, specs(tasks), tmp_path / "m.onnx", images[:2], ANY)
    except ExportError as err:
        assert "aten::" in str(err) or "operator" in str(err), str(err)
        assert not list(tmp_path.iterdir())
        return
    assert all(c.ok for c in result.checks), "\n".join(map(str, result.checks))


def test_bad_input_writes_nothing(images: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make("hard", ["depth"]).eval()
    with pytest.raises(ValueError, match="--opset 9: mtvision exports opsets 11 to 20"):
        export_onnx(model, specs(["depth"]), tmp_path / "m.onnx", images, ExportSettings(opset=9))
    with pytest.raises(FileNotFoundError, match="missing does not exist"):
        export_onnx(model, specs(["depth"]), tmp_path / "missing" / "m.onnx", images, ANY)
    monkeypatch.setattr(export_module, "FLOAT32", Tolerance(max_abs=-1.0))  # nothing can pass
    with pytest.raises(ParityError, match="depth +max_abs .* FAIL"):
        export_onnx(model, specs(["depth"]), tmp_path / "m.onnx", images, ANY)
    assert not list(tmp_path.iterdir())
