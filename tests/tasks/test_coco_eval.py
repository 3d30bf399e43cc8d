"""COCO AP from mtvision's evaluator equals pycocotools' on the same data (to 1e-6)."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mtvision.tasks.coco_eval import coco_metrics, default_sigmas

K = 5
SIZE = 96


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    """A random convex-ish hexagon inside the box."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 6))
    xs = x + w / 2 + np.cos(angles) * w / 2 * rng.uniform(0.6, 1.0, 6)
    ys = y + h / 2 + np.sin(angles) * h / 2 * rng.uniform(0.6, 1.0, 6)
    return np.stack([xs, ys], 1).ravel().round(2).tolist()


def _keypoints(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    kps = []
    for _ in range(K):
        v = int(rng.choice([0, 1, 2], p=[0.2, 0.3, 0.5]))
        kps += [0.0, 0.0, 0] if v == 0 else [float(x + rng.uniform(0, w)), float(y + rng.uniform(0, h)), v]
    return kps


def _dataset(seed: int = 0) -> tuple[dict, list[dict]]:
    """Ground truth with boxes, polygons and keypoints, plus noisy detections and false positives."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for image_id in range(1, 13):
        images.append({"id": image_id, "width": SIZE, "height": SIZE, "file_name": f"{image_id}.png"})
        for _ in range(rng.integers(0, 5)):
            w, h = rng.uniform(6, 60, 2)
            x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
            poly = _polygon(rng, x, y, w, h)
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], SIZE, SIZE))
            kps = _keypoints(rng, x, y, w, h)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 3)),
                         "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)), "iscrowd": 0,
                         "segmentation": [poly], "keypoints": kps, "num_keypoints": sum(v > 0 for v in kps[2::3])})
            results += _detections(rng, anns[-1], image_id)
    categories = [{"id": c, "name": f"c{c}", "keypoints": [f"k{i}" for i in range(K)], "skeleton": [[1, 2]]}
                  for c in (1, 2)]
    return {"images": images, "annotations": anns, "categories": categories}, results


def _detections(rng: np.random.Generator, ann: dict, image_id: int) -> list[dict]:
    out = []
    for jitter in rng.uniform(0, 8, rng.integers(1, 3)):
        x, y, w, h = (np.array(ann["bbox"]) + rng.normal(0, jitter, 4)).tolist()
        w, h = max(w, 1.0), max(h, 1.0)
        shift = np.tile(rng.normal(0, jitter, 2), len(ann["segmentation"][0]) // 2)
        poly = (np.array(ann["segmentation"][0]) + shift).tolist()
        rle = mask_utils.merge(mask_utils.frPyObjects([poly], SIZE, SIZE))
        rle["counts"] = rle["counts"].decode()
        kps = np.array(ann["keypoints"], dtype=float).reshape(K, 3)
        kps[:, :2] += rng.normal(0, jitter, (K, 2))
        kps[:, 2] = 1.0
        category = ann["category_id"] if rng.uniform() < 0.85 else 3 - ann["category_id"]
        out.append({"image_id": image_id, "category_id": category, "bbox": [x, y, w, h],
                    "score": float(rng.uniform(0.05, 1.0)), "segmentation": rle,
                    "keypoints": kps.ravel().tolist()})
    return out


def _pycocotools(gt: dict, results: list[dict], iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_type == "keypoints":
            evaluator.params.kpt_oks_sigmas = np.array(default_sigmas(K))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
def test_ap_equals_pycocotools(iou_type: str) -> None:
    gt, results = _dataset()
    ours = coco_metrics(gt, results, iou_type)
    reference = _pycocotools(gt, results, iou_type)
    assert 0.05 < reference[0] < 0.95  # a non-trivial case: neither empty nor perfect
    assert ours["ap"] == pytest.approx(reference[0], abs=1e-6)
    assert ours["ap50"] == pytest.approx(reference[1], abs=1e-6)
    assert ours["ap75"] == pytest.approx(reference[2], abs=1e-6)
    if iou_type == "keypoints":  # keypoints have no "small" range
        assert ours["ap_medium"] == pytest.approx(reference[3], abs=1e-6)
        assert ours["ap_large"] == pytest.approx(reference[4], abs=1e-6)
    else:
        assert ours["ap_small"] == pytest.approx(reference[3], abs=1e-6)
        assert ours["ap_medium"] == pytest.approx(reference[4], abs=1e-6)
        assert ours["ap_large"] == pytest.approx(reference[5], abs=1e-6)


def test_perfect_detections_score_one_and_none_score_zero() -> None:
    gt, _ = _dataset(1)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    assert coco_metrics(gt, perfect, "bbox")["ap"] == pytest.approx(1.0)
    assert coco_metrics(gt, [], "bbox")["ap"] == 0.0


def test_default_sigmas() -> None:
    assert len(default_sigmas(17)) == 17 and default_sigmas(17)[0] == 0.026
    assert default_sigmas(4) == [0.25] * 4
    assert default_sigmas(2, [0.1, 0.2]) == [0.1, 0.2]


def test_eval_coco_command_prints_pycocotools_numbers(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from mtvision.cli import app

    gt, results = _dataset()
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    run = CliRunner().invoke(app, ["eval-coco", str(tmp_path / "gt.json"), str(tmp_path / "res.json"),
                                   "--iou", "segm", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.output)["ap"] == pytest.approx(_pycocotools(gt, results, "segm")[0], abs=1e-6)
    bad = CliRunner().invoke(app, ["eval-coco", str(tmp_path / "gt.json"), str(tmp_path / "gt.json")])
    assert bad.exit_code != 0 and "JSON list" in bad.output
