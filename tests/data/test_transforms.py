"""Joint augmentation: every annotation type moves with the image, instances live or die whole.

The hand-built sample encodes positions: image channels 0 and 1 hold each pixel's original
x and y (channel 2 is 200 on real pixels, 0 on padding), and depth, edges and the semantic
mask are functions of that position, so alignment is checked pixel by pixel.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtvision.data.synthetic import render_scene, synthetic_tasks
from mtvision.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Letterbox,
    RandomFitScale,
    RandomHorizontalFlip,
    SanitizeInstances,
    SemanticVoidFill,
    build_transforms,
    check_sample,
    sanitize_instances,
)
from mtvision.data.transforms.instances import BoxesFromMasks, boxes_from_masks
from mtvision.structures import DepthMap, Instances, NormalMap, Sample

H, W = 32, 48
FLIP_IDX = {"objects": [1, 0]}  # keypoint 0 is a left point, 1 the right one
REAL = 200  # image channel 2 on real pixels


def depth_code(x: Tensor, y: Tensor) -> Tensor:
    return 1.0 + x + 64.0 * y


def semantic_code(x: Tensor, y: Tensor) -> Tensor:
    return torch.where(y < 2, 255, x // 12)  # classes 0..3 by column, void on the top rows


def normal_field(x: Tensor, y: Tensor) -> Tensor:
    angle = 0.1 * x + 0.2 * y
    n = torch.stack([torch.cos(angle), torch.sin(angle), -torch.ones_like(angle)])
    return n / n.norm(dim=0, keepdim=True)


def box_mask(boxes: list[list[float]], h: int, w: int) -> tv_tensors.Mask:
    masks = torch.zeros(len(boxes), h, w, dtype=torch.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes):
        mask[int(y1):int(y2), int(x1):int(x2)] = 1
    return tv_tensors.Mask(masks)


def make_sample(h: int = H, w: int = W, points: list[list[list[float]]] | None = None) -> Sample:
    """Every target type: instances with all fields, box-only instances, semantic, edges,
    depth, normals, a class label and a multi-label vector."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    image = tv_tensors.Image(torch.stack([x, y, torch.full_like(x, REAL)]).to(torch.uint8))
    boxes = [[2.0, 4.0, 10.0, 12.0], [20.0, 8.0, 30.0, 20.0], [30.0, 18.0, 44.0, 30.0]]
    points = points or [[[3.5, 5.5], [8.5, 5.5]], [[21.5, 9.5], [28.5, 18.5]], [[31.5, 19.5], [42.5, 28.5]]]
    objects = Instances(
        boxes=tv_tensors.BoundingBoxes(torch.tensor(boxes), format="XYXY", canvas_size=(h, w)),
        labels=torch.tensor([0, 1, 2]),
        masks=box_mask(boxes, h, w),
        keypoints=tv_tensors.KeyPoints(torch.tensor(points), canvas_size=(h, w)),
        visibility=torch.tensor([[2, 1], [2, 2], [0, 2]]),
        iscrowd=torch.tensor([False, True, False]),
        attributes=[{"id": "a"}, {"id": "b"}, {"id": "c"}],
    )
    targets = {
        "objects": objects,
        "boxes": Instances(tv_tensors.BoundingBoxes([[5.0, 5.0, 15.0, 15.0]], format="XYXY", canvas_size=(h, w)),
                           labels=torch.tensor([4])),
        "semseg": tv_tensors.Mask(semantic_code(x, y).to(torch.uint8)),
        "edges": tv_tensors.Mask((x % 5 == 0).to(torch.uint8)[None]),
        "depth": DepthMap(depth_code(x, y).float()),
        "normals": NormalMap(normal_field(x, y)),
        "scene": torch.tensor(2),
        "tags": torch.tensor([1, 0, 1]),
    }
    return Sample(image, targets, {"file_name": "a.png"})


def origin(sample: Sample) -> tuple[Tensor, Tensor, Tensor]:
    """Original (x, y) of every output pixel, and where the pixel is real (not padding)."""
    image = sample.image.as_subclass(Tensor)
    return image[0].long(), image[1].long(), image[2] == REAL


def check_transform(transform: Callable[[Sample], Sample], sample: Sample) -> Sample:
    """Assertions every transform must pass on every target type (torchvision v2 test style)."""
    out = transform(sample)
    assert isinstance(out, Sample) and out.meta == sample.meta
    assert isinstance(out.image, tv_tensors.Image) and out.image.shape[0] == 3
    size = out.size
    assert out.targets.keys() == sample.targets.keys()
    for task, before in sample.targets.items():
        after = out.targets[task]
        assert type(after) is type(before), task
        if isinstance(before, Instances):
            check_instances(after, before, size)
        elif isinstance(before, tv_tensors.TVTensor):
            assert after.shape[:-2] == before.shape[:-2] and tuple(after.shape[-2:]) == size, task
            check_dense_values(after, before)
        else:
            assert torch.equal(after, before), f"image-level label of {task} changed"
    return out


def check_dense_values(after: Tensor, before: Tensor) -> None:
    """Dense maps are resampled, never blended: values are old ones or the fill (0 / void)."""
    if isinstance(before, NormalMap):
        norms = after.norm(dim=0)
        assert ((norms - 1).abs() < 1e-5).logical_or(norms == 0).all()
    else:
        fills = torch.tensor([0, 255] if before.ndim == 2 else [0], dtype=before.dtype)
        assert torch.isin(after, torch.cat([before.unique(), fills])).all()


def check_instances(after: Instances, before: Instances, size: tuple[int, int]) -> None:
    n = len(after)
    for name in ("boxes", "labels", "masks", "keypoints", "visibility", "iscrowd", "attributes"):
        value = getattr(after, name)
        assert (value is None) == (getattr(before, name) is None) and (value is None or len(value) == n), name
    assert after.boxes.canvas_size == size
    ids = [a for a in before.attributes if a in after.attributes]
    assert ids == after.attributes  # a subset, in order: instances are only ever dropped
    if after.keypoints is not None:
        assert after.keypoints.canvas_size == size and set(after.visibility.unique().tolist()) <= {0, 1, 2}
    if after.masks is not None:
        assert tuple(after.masks.shape[-2:]) == size
        for mask, (x1, y1, x2, y2) in zip(after.masks, after.boxes.tolist()):
            ys, xs = mask.nonzero(as_tuple=True)
            if len(xs):  # every mask pixel lies in its box (1 px of resampling slack)
                assert xs.min() >= x1 - 1 and xs.max() < x2 + 1 and ys.min() >= y1 - 1 and ys.max() < y2 + 1


def with_sanitize(transform: Callable[[Sample], Sample]) -> v2.Compose:
    return v2.Compose([SemanticVoidFill(transform), SanitizeInstances()])


TRANSFORMS: dict[str, Callable[[], Callable[[Sample], Sample]]] = {
    "flip": lambda: RandomHorizontalFlip(p=1.0, flip_idx=FLIP_IDX),
    "center_crop": lambda: with_sanitize(v2.CenterCrop((24, 24))),
    "random_crop_pad": lambda: with_sanitize(v2.RandomCrop((40, 40), pad_if_needed=True)),
    "rotation": lambda: with_sanitize(v2.RandomRotation(30)),
    "affine": lambda: with_sanitize(v2.RandomAffine(10, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=5)),
    "colour": lambda: v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
    "resize": lambda: v2.Resize((20, 30)),
    "letterbox": lambda: SemanticVoidFill(Letterbox((40, 40))),
    "fit_scale": lambda: RandomFitScale((40, 40), (0.5, 1.5)),
    "sanitize": lambda: SanitizeInstances(),
    **{f"{p}-{'train' if t else 'eval'}": (lambda p=p, t=t: build_transforms(p, (40, 56), FLIP_IDX, train=t))
       for p in ("none", "light", "default", "strong") for t in (True, False)},
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_target_type_is_transformed_consistently(name: str) -> None:
    torch.manual_seed(0)
    check_transform(TRANSFORMS[name](), make_sample())


def test_flip_twice_is_identity_for_every_target_type() -> None:
    sample = make_sample()
    flip = RandomHorizontalFlip(p=1.0, flip_idx=FLIP_IDX)
    twice = flip(flip(sample))
    for before, after in zip(tree_flatten(sample)[0], tree_flatten(twice)[0]):
        assert (before is None and after is None) or torch.equal(before, after)
    assert twice.targets["objects"].attributes == sample.targets["objects"].attributes


def test_flip_mirrors_x_and_swaps_left_and_right_keypoints() -> None:
    out = check_transform(RandomHorizontalFlip(p=1.0, flip_idx=FLIP_IDX), make_sample())
    objects = out.targets["objects"]
    # instance 0: left (3.5, 5.5) visible, right (8.5, 5.5) occluded; x' = W - x (continuous)
    assert objects.keypoints[0].tolist() == [[W - 8.5, 5.5], [W - 3.5, 5.5]]
    assert objects.visibility[0].tolist() == [1, 2]
    x0, _, _ = origin(out)
    assert x0[5, int(W - 8.5)] == 8  # the new left point sits on the pixel the right one marked
    assert objects.boxes[0].tolist() == [W - 10.0, 4.0, W - 2.0, 12.0]


def test_flip_mirrors_dense_maps_and_negates_normal_x() -> None:
    sample = make_sample()
    out = RandomHorizontalFlip(p=1.0, flip_idx=FLIP_IDX)(sample)
    for task in ("depth", "semseg", "edges"):
        assert torch.equal(out.targets[task], sample.targets[task].flip(-1))
    expected = sample.targets["normals"].flip(-1) * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
    assert torch.equal(out.targets["normals"], expected)


@pytest.mark.parametrize("clamping_mode", ["soft", None])  # None: torchvision leaves boxes unclamped
def test_crop_drops_whole_instances_and_clamps_the_cut_ones(clamping_mode: str | None) -> None:
    sample = make_sample()
    sample.targets["objects"].boxes.clamping_mode = clamping_mode
    out = check_transform(with_sanitize(v2.CenterCrop((24, 24))), sample)  # keeps x 12..35, y 4..27
    objects = out.targets["objects"]
    assert objects.labels.tolist() == [1, 2] and [a["id"] for a in objects.attributes] == ["b", "c"]
    assert objects.iscrowd.tolist() == [True, False] and len(objects.masks) == len(objects.visibility) == 2
    assert objects.boxes.tolist() == [[8.0, 4.0, 18.0, 16.0], [18.0, 14.0, 24.0, 24.0]]
    ys, xs = objects.masks[1].nonzero(as_tuple=True)  # the clamped box is exactly its cropped mask's box
    assert [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1] == [18, 14, 24, 24]


def test_keypoints_pushed_outside_become_invisible_and_keep_their_coordinates() -> None:
    out = with_sanitize(v2.CenterCrop((24, 24)))(make_sample())
    objects = out.targets["objects"]
    assert objects.keypoints[1].tolist() == [[31.5 - 12, 19.5 - 4], [42.5 - 12, 28.5 - 4]]  # not clamped to 24
    assert objects.visibility.tolist() == [[2, 2], [0, 0]]  # "c": first was unlabelled, second left the image


def square_sample() -> Sample:
    """32 x 32 (so a 90° turn maps the pixel grid onto itself), with keypoints p, p + x, p + y."""
    return make_sample(32, 32, points=[[[10.5, 12.5], [11.5, 12.5]], [[10.5, 12.5], [10.5, 13.5]],
                                       [[20.5, 20.5], [21.5, 21.5]]])


ALIGNMENT = {
    "flip": lambda: RandomHorizontalFlip(p=1.0, flip_idx={"objects": [0, 1]}),
    "crop_with_padding": lambda: SemanticVoidFill(v2.RandomCrop((40, 40), pad_if_needed=True)),
    "rotate_90": lambda: SemanticVoidFill(v2.RandomRotation((90, 90))),
    "rotate_30": lambda: SemanticVoidFill(v2.RandomRotation((30, 30))),
}


@pytest.mark.parametrize("name", ALIGNMENT)
def test_dense_maps_stay_aligned_with_the_image(name: str) -> None:
    torch.manual_seed(0)
    out = check_transform(ALIGNMENT[name](), square_sample())
    x0, y0, real = origin(out)
    depth, semseg = out.targets["depth"][0], out.targets["semseg"]
    edges, normals = out.targets["edges"][0], out.targets["normals"]
    assert real.any() and bool((~real).any()) == (name in ("crop_with_padding", "rotate_30"))  # padding made
    assert torch.equal(depth[real], depth_code(x0, y0)[real].float())
    assert torch.equal(semseg[real], semantic_code(x0, y0)[real].to(torch.uint8))
    assert torch.equal(edges[real], (x0 % 5 == 0)[real].to(torch.uint8))
    assert (depth[~real] == 0).all() and (normals[:, ~real] == 0).all() and (semseg[~real] == 255).all()


@pytest.mark.parametrize("angle", [90.0, 30.0])
def test_rotation_turns_normals_like_image_vectors(angle: float) -> None:
    out = SemanticVoidFill(v2.RandomRotation((angle, angle)))(square_sample())
    points = out.targets["objects"].keypoints
    # columns: where the image's unit x and unit y displacements went
    turn = torch.stack([points[0, 1] - points[0, 0], points[1, 1] - points[1, 0]], dim=1)
    if angle == 90.0:  # counter-clockwise on screen, y down: right -> up, down -> right
        torch.testing.assert_close(turn, torch.tensor([[0.0, 1.0], [-1.0, 0.0]]), atol=1e-5, rtol=0)
    x0, y0, real = origin(out)
    source = normal_field(x0, y0)[:, real]
    turned = out.targets["normals"][:, real]
    torch.testing.assert_close(turned[:2], turn @ source[:2], atol=1e-5, rtol=0)
    torch.testing.assert_close(turned[2], source[2])


def test_colour_jitter_changes_only_the_image() -> None:
    sample = make_sample()
    out = v2.ColorJitter(0.5, 0.5, 0.5, 0.1)(sample)
    assert not torch.equal(out.image, sample.image)
    for before, after in zip(tree_flatten(sample.targets)[0], tree_flatten(out.targets)[0]):
        assert (before is None and after is None) or torch.equal(before, after)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("preset", ["none", "light", "default", "strong"])
def test_presets_give_normalised_float_images_of_the_requested_size(preset: Any, train: bool) -> None:
    out = check_transform(build_transforms(preset, (40, 56), FLIP_IDX, train=train), make_sample())
    assert out.image.dtype == torch.float32 and out.size == (40, 56)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    pixels = out.image * std + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5 and out.image.min() < 0
    assert out.targets["depth"].dtype == torch.float32 and out.targets["semseg"].dtype == torch.uint8


@pytest.mark.parametrize("preset", ["none", "light", "default", "strong"])
def test_presets_run_on_negative_float_images(preset: Any) -> None:
    sample = Sample(tv_tensors.Image(torch.rand(3, 31, 45)),
                    {"objects": Instances.empty((31, 45), num_keypoints=2, with_masks=True)})
    out = check_transform(build_transforms(preset, (40, 56), FLIP_IDX), sample)
    assert out.image.dtype == torch.float32 and out.targets["objects"].keypoints.shape == (0, 2, 2)


@pytest.fixture(scope="module")
def scene() -> tuple[Sample, dict[str, list[int]]]:
    tasks = synthetic_tasks()
    return render_scene(0, size=64), {name: info.flip_idx for name, info in tasks.items() if info.flip_idx}


@pytest.mark.parametrize("preset", ["none", "light", "default", "strong"])
def test_presets_run_on_a_synthetic_scene(preset: Any, scene: tuple[Sample, dict[str, list[int]]]) -> None:
    sample, flip_idx = scene
    torch.manual_seed(0)
    assert check_transform(build_transforms(preset, (48, 64), flip_idx), sample).size == (48, 64)


def test_evaluation_is_never_augmented() -> None:
    sample = make_sample()
    reference = build_transforms("none", (40, 56))(sample)
    for seed in range(3):
        torch.manual_seed(seed)
        out = build_transforms("strong", (40, 56), FLIP_IDX, train=False)(sample)
        for a, b in zip(tree_flatten(out)[0], tree_flatten(reference)[0]):
            assert (a is None and b is None) or torch.equal(a, b)


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_void() -> None:
    out = SemanticVoidFill(Letterbox((64, 64)))(make_sample())  # 32 x 48 -> 43 x 64, rows 10..52
    _, _, real = origin(out)
    assert real[10:53].all() and not real[:10].any() and not real[53:].any()
    assert (out.targets["semseg"][:10] == 255).all() and (out.targets["depth"][0, 53:] == 0).all()
    expected = torch.tensor([3.5 * 64 / 48, 5.5 * 43 / 32 + 10])  # scaled per axis, shifted by the top pad
    torch.testing.assert_close(out.targets["objects"].keypoints[0, 0], expected)


def test_semantic_padding_is_void_and_class_zero_stays() -> None:
    sample = make_sample()
    out = SemanticVoidFill(v2.Pad(3))(sample)
    semseg = out.targets["semseg"]
    assert semseg.dtype == torch.uint8 and (semseg[:3] == 255).all() and (semseg[:, :3] == 255).all()
    assert torch.equal(semseg[3:-3, 3:-3], sample.targets["semseg"])  # class 0 and void both kept


def test_sanitize_drops_instances_with_an_empty_mask_or_a_thin_box() -> None:
    boxes = tv_tensors.BoundingBoxes([[0.0, 0, 4, 4], [0, 0, 4, 4], [1, 1, 1.5, 4]], format="XYXY", canvas_size=(8, 8))
    masks = box_mask([[0, 0, 4, 4], [0, 0, 0, 0], [1, 1, 2, 4]], 8, 8)
    kept = sanitize_instances(Instances(boxes, torch.tensor([0, 1, 2]), masks=masks))
    assert kept.labels.tolist() == [0]


@pytest.mark.parametrize(("flip_idx", "match"), [
    ({"objects": [0, 0]}, "permutation"),
    ({"objects": [1, 2, 0]}, "its own inverse"),
])
def test_bad_flip_idx_is_rejected(flip_idx: dict[str, list[int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomHorizontalFlip(flip_idx=flip_idx)


@pytest.mark.parametrize(("flip_idx", "match"), [
    (None, "task 'objects' has keypoints but .* no flip_idx"),
    ({"objects": [2, 1, 0]}, "has 3 entries but its instances have 2 keypoints"),
])
def test_keypoint_task_without_a_fitting_flip_idx_fails_even_unflipped(flip_idx: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomHorizontalFlip(p=0.0, flip_idx=flip_idx)(make_sample())


@pytest.mark.parametrize(("field", "value", "match"), [
    ("image", torch.zeros(3, H, W), "Sample.image is a Tensor"),
    ("depth", torch.zeros(1, H, W), "task 'depth' is a plain tensor"),
    ("masks", torch.zeros(3, H, W), "Instances.masks of task 'objects' is a Tensor"),
])
def test_plain_tensors_are_rejected_not_passed_through(field: str, value: Tensor, match: str) -> None:
    sample = make_sample()
    if field == "image":
        sample.image = value
    elif field == "masks":
        sample.targets["objects"].masks = value
    else:
        sample.targets[field] = value
    with pytest.raises(TypeError, match=match):
        check_sample(sample)


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="choose one of none, light, default, strong"):
        build_transforms("heavy", (32, 32))  # type: ignore[arg-type]


def test_boxes_are_refitted_to_the_masks_after_a_rotation() -> None:
    """A disc of radius 8 turned by 45°: torchvision's box is the box around the turned corners
    of its 16x16 box, 16·√2 ≈ 22.6 px wide; the refitted box hugs the disc (16 px) again.
    Box-only instances keep their rotated boxes."""
    y, x = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    disc = ((x - 32) ** 2 + (y - 32) ** 2 <= 64).to(torch.uint8)[None]
    box = tv_tensors.BoundingBoxes([[24.0, 24.0, 40.0, 40.0]], format="XYXY", canvas_size=(64, 64))
    sample = Sample(tv_tensors.Image(torch.zeros(3, 64, 64, dtype=torch.uint8)), targets={
        "objects": Instances(box, labels=torch.tensor([0]), masks=tv_tensors.Mask(disc)),
        "boxes": Instances(box.clone(), labels=torch.tensor([0])),
    })
    rotated = v2.RandomRotation((45, 45))(sample)
    refitted = BoxesFromMasks()(rotated)
    mask = refitted.targets["objects"].masks[0].bool()
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    expected = [float(cols.min()), float(rows.min()), float(cols.max()) + 1, float(rows.max()) + 1]
    assert refitted.targets["objects"].boxes[0].tolist() == expected
    loose = rotated.targets["objects"].boxes[0]
    assert expected[2] - expected[0] == 16 and float(loose[2] - loose[0]) == pytest.approx(16 * 2**0.5, abs=0.01)
    assert torch.equal(refitted.targets["boxes"].boxes, rotated.targets["boxes"].boxes)


def test_an_empty_mask_keeps_its_box_for_the_sanitiser_to_drop() -> None:
    instances = Instances(tv_tensors.BoundingBoxes([[1.0, 1.0, 5.0, 5.0], [2.0, 2.0, 6.0, 6.0]], format="XYXY",
                                                   canvas_size=(8, 8)),
                          labels=torch.tensor([0, 1]), masks=box_mask([[0, 0, 0, 0], [3, 2, 5, 7]], 8, 8))
    assert boxes_from_masks(instances).boxes.tolist() == [[1.0, 1.0, 5.0, 5.0], [3.0, 2.0, 5.0, 7.0]]
    assert len(sanitize_instances(boxes_from_masks(instances))) == 1
