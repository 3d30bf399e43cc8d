"""Synthetic scenes: rendered ground truth against closed forms computed here, independently.

The pinhole model is re-derived in this file (focal length from the field of view across
the shorter side, principal point at the image centre, pixel centres at +0.5) and the
ray-surface hits are solved in float64, so a renderer bug cannot cancel itself out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtvision.data.synthetic import (
    FLIP_IDX,
    KEYPOINT_NAMES,
    LIGHTING_CLASSES,
    MIN_PIXELS,
    SEMANTIC_CLASSES,
    SHAPES,
    SKELETON,
    Camera,
    Light,
    Plane,
    SceneObject,
    SceneSpec,
    SyntheticDataset,
    render,
    render_scene,
    sample_scene,
    synthetic_tasks,
)
from mtvision.data.synthetic.render import cast
from mtvision.data.synthetic.targets import instance_masks, keypoints_3d
from mtvision.structures import DepthMap, Instances, NormalMap

CAMERA = Camera(position=(0.0, -5.0, 3.0), target=(0.0, 0.0, 0.5), fov_deg=60.0)  # sees above the horizon
BALL = SceneObject("sphere", center=(0.3, 0.2, 0.6), extent=(0.6, 0.6, 0.6))
SIZE = (48, 64)


def scene(*objects: SceneObject, light: tuple[float, float, float] = (0.3, -0.5, 1.0)) -> SceneSpec:
    return SceneSpec(CAMERA, objects, (Light(tuple(np.divide(light, np.linalg.norm(light)))),))


def pinhole(camera: Camera, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Camera centre, world-to-camera rotation, world rays ``(H, W, 3)`` with camera z = 1, focal."""
    eye = np.array(camera.position)
    forward = np.subtract(camera.target, eye) / np.linalg.norm(np.subtract(camera.target, eye))
    right = np.cross(forward, [0, 0, 1]) / np.linalg.norm(np.cross(forward, [0, 0, 1]))
    rotation = np.stack([right, np.cross(forward, right), forward])
    h, w = size
    f = 0.5 * min(h, w) / math.tan(math.radians(camera.fov_deg) / 2)
    u, v = np.meshgrid((np.arange(w) + 0.5 - w / 2) / f, (np.arange(h) + 0.5 - h / 2) / f)
    return eye, rotation, np.stack([u, v, np.ones_like(u)], -1) @ rotation, f


def project(point: np.ndarray, camera: Camera, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Pixel position and z-depth of a world point."""
    eye, rotation, _, f = pinhole(camera, size)
    x, y, z = rotation @ (np.asarray(point) - eye)
    return np.array([f * x / z + size[1] / 2, f * y / z + size[0] / 2]), z


def sphere_t(eye: np.ndarray, rays: np.ndarray, center: tuple, r: float) -> np.ndarray:
    """Nearest ray parameter of ``|eye + t d - c| = r``, inf on a miss."""
    oc = eye - np.array(center)
    a, b, c = (rays * rays).sum(-1), rays @ oc, oc @ oc - r * r
    disc = b * b - a * c
    return np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)


def floor_t(eye: np.ndarray, rays: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        t = -eye[2] / rays[..., 2]
    return np.where(t > 0, t, np.inf)


# --- depth and normals -------------------------------------------------------------------

def test_depth_is_the_analytic_z_depth_of_sphere_and_floor() -> None:
    eye, _, rays, _ = pinhole(CAMERA, SIZE)
    t = np.minimum(sphere_t(eye, rays, BALL.center, 0.6), floor_t(eye, rays))  # camera z is 1: t is z-depth
    depth = render(scene(BALL), SIZE).targets["depth"][0].numpy()
    np.testing.assert_allclose(depth, np.where(np.isfinite(t), t, 0), rtol=2e-5, atol=1e-6)
    (col, row), z_center = project(BALL.center, CAMERA, SIZE)
    row, col = int(row), int(col)
    assert depth[row, col] == pytest.approx(float(sphere_t(eye, rays[row, col], BALL.center, 0.6)), rel=1e-5)
    assert z_center - 0.6 < depth[row, col] < z_center  # on the front of the ball
    assert depth[-1, 0] == pytest.approx(3.0 / -rays[-1, 0, 2], rel=1e-5)  # floor: z = 0 at the camera height 3


def test_normals_are_unit_and_analytic() -> None:
    eye, rotation, rays, _ = pinhole(CAMERA, SIZE)
    t_ball, t_floor = sphere_t(eye, rays, BALL.center, 0.6), floor_t(eye, rays)
    sample = render(scene(BALL), SIZE)
    normals = sample.targets["normals"].numpy().transpose(1, 2, 0)
    on_ball, on_floor = np.isfinite(t_ball), np.isfinite(t_floor) & ~np.isfinite(t_ball)
    hits = eye + t_ball[on_ball][:, None] * rays[on_ball]
    np.testing.assert_allclose(normals[on_ball], (hits - BALL.center) / 0.6 @ rotation.T, atol=1e-4)
    np.testing.assert_allclose(normals[on_floor], np.broadcast_to(rotation[:, 2], (on_floor.sum(), 3)), atol=1e-6)
    valid = sample.targets["depth"][0].numpy() > 0
    np.testing.assert_allclose(np.linalg.norm(normals[valid], axis=-1), 1, atol=1e-5)
    assert (~valid).any() and (normals[~valid] == 0).all()  # the sky above the horizon
    assert (normals[valid][:, 2] < 0).all()  # every visible surface faces the camera


def implicit(shape: str, p: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance-like residual (0 on the surface) and outward gradient at local points."""
    if shape == "sphere":
        return np.linalg.norm(p, axis=1) - e[0], p
    if shape == "box":
        ratio = np.abs(p) / e
        return ratio.max(1) - 1, np.eye(3)[ratio.argmax(1)] * np.sign(p)
    radial, z = np.hypot(p[:, 0], p[:, 1]), p[:, 2]
    k = e[0] / (2 * e[2]) if shape == "cone" else 0.0
    side = radial - e[0] + k * (z + e[2])  # the cone's radius shrinks linearly to 0 at z = h
    cap = np.abs(z) - e[2] if shape == "cylinder" else -z - e[2]
    residual = np.where(np.abs(side) < np.abs(cap), side, cap)
    on_side = np.abs(side) < np.abs(cap)
    side_normal = np.stack([p[:, 0] / radial, p[:, 1] / radial, np.full_like(z, k)], 1)
    cap_normal = np.stack([0 * z, 0 * z, np.sign(z) if shape == "cylinder" else -np.ones_like(z)], 1)
    inside = (side < 1e-4) & (cap < 1e-4)
    return np.where(inside, residual, np.inf), np.where(on_side[:, None], side_normal, cap_normal)


@pytest.mark.parametrize("yaw", [0.0, 0.7])
def test_hits_lie_on_each_shape_and_normals_are_its_gradient(yaw: float) -> None:
    """Each object pixel, back-projected with the depth map, lies on its analytic surface."""
    objects = (SceneObject("box", (-1.6, 0.0, 0.4), (0.5, 0.3, 0.4), yaw),
               SceneObject("cylinder", (-0.3, 0.6, 0.7), (0.4, 0.4, 0.7), yaw),
               SceneObject("cone", (0.9, 0.0, 0.6), (0.5, 0.5, 0.6), yaw),
               SceneObject("sphere", (2.0, 0.5, 0.5), (0.5, 0.5, 0.5), yaw))
    eye, rotation, rays, _ = pinhole(CAMERA, SIZE)
    sample = render(scene(*objects), SIZE)
    depth, normals = sample.targets["depth"][0].numpy(), sample.targets["normals"].numpy().transpose(1, 2, 0)
    c, s = math.cos(yaw), math.sin(yaw)
    to_local = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    for obj in objects:
        pick = sample.targets["semseg"].numpy() == SEMANTIC_CLASSES.index(obj.shape)
        local = (eye + depth[pick][:, None] * rays[pick] - obj.center) @ to_local.T
        residual, gradient = implicit(obj.shape, local, np.array(obj.extent))
        assert pick.sum() > 20 and np.abs(residual).max() < 1e-4, obj.shape
        expected = gradient @ to_local @ rotation.T  # local -> world -> camera
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(normals[pick], expected, atol=2e-3, err_msg=obj.shape)


# --- keypoints ---------------------------------------------------------------------------

def test_keypoints_are_the_documented_points() -> None:
    """Closed forms for a camera looking along +y (near = smallest y, right = larger x)."""
    box = SceneObject("box", (0.0, 0.0, 0.4), (0.5, 0.3, 0.4), yaw=0.3)
    cylinder = SceneObject("cylinder", (1.4, 0.3, 0.5), (0.4, 0.4, 0.5))
    ball = SceneObject("sphere", (-1.5, 0.2, 0.6), (0.6, 0.6, 0.6))
    objects = render(scene(box, cylinder, ball), SIZE).targets["objects"]
    c, s = math.cos(0.3), math.sin(0.3)
    corners = [np.array([c * x - s * y, s * x + c * y, 0.0]) for x in (-0.5, 0.5) for y in (-0.3, 0.3)]
    near, far = min(corners, key=lambda p: p[1]), max(corners, key=lambda p: p[1])
    left, right = sorted([p for p in corners if p is not near and p is not far], key=lambda p: p[0])
    # the rim points where a horizontal line of sight from the camera (0, -5) touches the circle
    base = np.array([1.4, 0.3, 0.0])
    d = math.dist((0.0, -5.0), base[:2])
    towards = np.array([-1.4, -5.3, 0.0]) / d
    side = np.array([-towards[1], towards[0], 0.0])
    rim = [base + 0.4 * (0.4 / d * towards + sign * math.sqrt(1 - (0.4 / d) ** 2) * side) for sign in (-1, 1)]
    expected = {0: [(0.0, 0.0, 0.8), (0.0, 0.0, 0.0), left, right, near, far],
                1: [(1.4, 0.3, 1.0), base, *rim, base + 0.4 * towards, base - 0.4 * towards],
                2: [(-1.5, 0.2, 1.2), (-1.5, 0.2, 0.0)]}
    assert objects.labels.tolist() == [1, 2, 0]
    for i, points in expected.items():
        for k, point in enumerate(points):
            np.testing.assert_allclose(objects.keypoints[i, k].numpy(), project(point, CAMERA, SIZE)[0], atol=1e-3)
    assert objects.visibility.tolist() == [[2, 1, 2, 2, 2, 1], [2, 1, 2, 2, 2, 1], [2, 1, 0, 0, 0, 0]]


def test_a_keypoint_behind_another_object_is_occluded_by_it() -> None:
    wall = SceneObject("box", (0.0, -1.0, 1.0), (0.15, 0.2, 1.0))  # a pillar in front of the ball's middle
    ball = SceneObject("sphere", (0.0, 0.5, 0.4), (0.4, 0.4, 0.4))
    sample = render(scene(wall, ball), SIZE)
    objects = sample.targets["objects"]
    assert objects.labels.tolist() == [1, 0] and objects.visibility[1, :2].tolist() == [1, 1]
    (col, row), z_top = project((0.0, 0.5, 0.8), CAMERA, SIZE)
    np.testing.assert_allclose(objects.keypoints[1, 0].numpy(), (col, row), atol=1e-3)
    eye, _, rays, _ = pinhole(CAMERA, SIZE)
    front = (-1.2 - eye[1]) / rays[int(row), int(col), 1]  # the box's front face y = -1.2
    assert sample.targets["depth"][0, int(row), int(col)] == pytest.approx(front, rel=1e-5) and front < z_top


def around(depth: np.ndarray, xy: torch.Tensor) -> np.ndarray:
    col, row = int(xy[0]), int(xy[1])
    return depth[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]


@pytest.mark.parametrize("seed", range(6))
def test_keypoint_visibility_agrees_with_the_depth_buffer(seed: int) -> None:
    """v=2: not all of the keypoint's 3x3 neighbourhood is nearer than it; v=1: some of it is
    (a neighbourhood, as keypoints are not at pixel centres and a cone apex is sub-pixel thin)."""
    spec, size = sample_scene(seed), (64, 64)
    sample = render(spec, size)
    depth, objects = sample.targets["depth"][0].numpy(), sample.targets["objects"]
    kept, _ = instance_masks(spec, cast(spec, size).segment)
    for i, xys, visibility in zip(kept, objects.keypoints, objects.visibility.tolist()):
        points, _ = keypoints_3d(spec.objects[i], spec.camera)
        for xy, v, point in zip(xys, visibility, points.T):
            window, z = around(depth, xy), project(point, spec.camera, size)[1]
            if v == 0:
                assert xy.tolist() == [0.0, 0.0]
            elif v == 2:
                assert window.max() > 0.98 * z
            else:
                assert window.min() < 0.98 * z


def test_mirrored_scene_permutes_keypoints_by_flip_idx() -> None:
    """Mirroring the scene about the camera's vertical plane = flipping the image."""
    objects = [SceneObject("box", (0.8, 0.3, 0.4), (0.5, 0.3, 0.4), 0.4),
               SceneObject("cone", (-0.9, -0.2, 0.6), (0.5, 0.5, 0.6), 1.1),
               SceneObject("cylinder", (0.1, 1.5, 0.7), (0.4, 0.4, 0.7), 0.2)]
    mirrored = [SceneObject(o.shape, (-o.center[0], *o.center[1:]), o.extent, -o.yaw) for o in objects]
    a, b = (render(scene(*objs), SIZE).targets["objects"] for objs in (objects, mirrored))
    flipped = a.keypoints.clone()
    flipped[..., 0] = SIZE[1] - flipped[..., 0]
    shown = a.visibility > 0
    torch.testing.assert_close(b.keypoints[:, FLIP_IDX][shown], flipped[shown], atol=1e-3, rtol=0)
    assert torch.equal(b.visibility[:, FLIP_IDX], a.visibility)


# --- instances, semantics, edges -----------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_boxes_masks_and_semseg_agree(seed: int) -> None:
    sample = render_scene(seed, size=64)
    objects, semseg = sample.targets["objects"], sample.targets["semseg"]
    assert len(objects) >= 1 and int(objects.masks.sum(0).max()) == 1  # disjoint
    for box, mask, label in zip(objects.boxes, objects.masks.bool(), objects.labels):
        rows, cols = mask.nonzero(as_tuple=True)
        assert len(rows) >= MIN_PIXELS
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        assert (semseg[mask] == SEMANTIC_CLASSES.index(SHAPES[label])).all()
    uncovered = (semseg >= SEMANTIC_CLASSES.index(SHAPES[0])) & (objects.masks.sum(0) == 0)
    assert int(uncovered.sum()) < MIN_PIXELS * len(sample_scene(seed).objects)  # only dropped tiny instances
    assert sample.targets["classes"].tolist() == [int(k in objects.labels) for k in range(len(SHAPES))]


def test_edges_mark_the_silhouette_depth_jump_and_nothing_inside_surfaces() -> None:
    sample = render(scene(BALL), SIZE)
    depth, edges = sample.targets["depth"][0].numpy(), sample.targets["edges"][0].numpy()
    row = int(project(BALL.center, CAMERA, SIZE)[0][1])
    jump = np.abs(np.diff(depth[row])) / depth[row, 1:]
    silhouette = np.flatnonzero(jump > 0.1)
    assert len(silhouette) == 2  # left and right rim of the ball
    assert (edges[row, silhouette] == 1).all() and (edges[row, silhouette + 1] == 1).all()
    semseg = sample.targets["semseg"].numpy()
    inner = (semseg == np.roll(semseg, 1, 0)) & (semseg == np.roll(semseg, -1, 0))
    inner &= (semseg == np.roll(semseg, 1, 1)) & (semseg == np.roll(semseg, -1, 1))
    assert edges[1:-1, 1:-1][inner[1:-1, 1:-1]].sum() == 0


def test_shading_is_lambert_plus_ambient_and_the_shadow_ray_finds_the_ball() -> None:
    """A uniform floor (one texture cell of 1 km) lit at n.l = l_z, except where the ball
    hides the light: there only the ambient term is left."""
    light = np.array([-1.5, 0.0, 1.0]) / np.linalg.norm([-1.5, 0.0, 1.0])  # from the left: the shadow is seen
    ball = SceneObject("sphere", (2.0, 2.0, 0.5), (0.5, 0.5, 0.5))
    floor = Plane((0.0, 0.0, 1.0), 0.0, color=(0.6, 0.5, 0.4), tile=1000.0)
    spec = SceneSpec(CAMERA, (ball,), (Light(tuple(light), intensity=0.8),), floor=floor, ambient=0.3)
    image = render(spec, SIZE).image.numpy()
    (col, row), _ = project(np.array(ball.center) - ball.center[2] / light[2] * light, CAMERA, SIZE)
    (lit_col, lit_row), _ = project((3.5, 0.5, 0.0), CAMERA, SIZE)
    albedo = np.array(floor.color)
    np.testing.assert_allclose(image[:, int(row), int(col)], np.round(255 * albedo * 0.3), atol=1)
    np.testing.assert_allclose(image[:, int(lit_row), int(lit_col)], np.round(255 * albedo * (0.3 + 0.8 * light[2])), atol=1)


def test_lighting_label_is_the_key_light_side() -> None:
    for light, label in [((0, -1, 1), "front_lit"), ((1, 0.1, 1), "side_lit"), ((-1, 0, 2), "side_lit"),
                         ((0.2, 1, 1), "back_lit")]:
        assert LIGHTING_CLASSES[int(render(scene(BALL, light=light), 8).targets["lighting"])] == label


# --- the sample as a whole -------------------------------------------------------------------

def test_sample_types_shapes_and_task_infos() -> None:
    sample = render_scene(5, size=(37, 53))
    t, (h, w) = sample.targets, (37, 53)
    assert sample.size == (h, w) and sample.image.dtype == torch.uint8 and sample.image.shape == (3, h, w)
    assert set(t) == set(synthetic_tasks())
    assert t["classes"].dtype == torch.int64 and t["classes"].shape == (len(SHAPES),)
    assert t["lighting"].dtype == torch.int64 and t["lighting"].ndim == 0
    assert isinstance(t["semseg"], tv_tensors.Mask) and t["semseg"].dtype == torch.int64
    assert t["semseg"].shape == (h, w) and int(t["semseg"].max()) < len(SEMANTIC_CLASSES)
    assert isinstance(t["depth"], DepthMap) and t["depth"].shape == (1, h, w) and t["depth"].dtype == torch.float32
    assert isinstance(t["normals"], NormalMap) and t["normals"].shape == (3, h, w)
    assert isinstance(t["edges"], tv_tensors.Mask) and t["edges"].shape == (1, h, w) and t["edges"].dtype == torch.uint8
    assert set(t["edges"].unique().tolist()) == {0, 1}
    objects: Instances = t["objects"]
    n, k = len(objects), len(KEYPOINT_NAMES)
    assert n > 0 and objects.keypoints.shape == (n, k, 2) and objects.visibility.shape == (n, k)
    assert objects.boxes.canvas_size == (h, w) and objects.masks.shape == (n, h, w) and objects.masks.dtype == torch.uint8
    assert (objects.boxes[:, 2] <= w).all() and (objects.boxes[:, 3] <= h).all()
    info = synthetic_tasks()["objects"]
    assert info.flip_idx == FLIP_IDX and [FLIP_IDX[i] for i in FLIP_IDX] == list(range(len(KEYPOINT_NAMES)))
    assert all(KEYPOINT_NAMES[FLIP_IDX[k]] == name.replace("left", "#").replace("right", "left").replace("#", "right")
               for k, name in enumerate(KEYPOINT_NAMES))
    assert info.skeleton == SKELETON and synthetic_tasks()["classes"].multi_label


def test_same_seed_same_sample_other_seed_differs() -> None:
    a, b, c = render_scene(11, size=32), render_scene(11, size=32), render_scene(12, size=32)
    assert torch.equal(a.image, b.image) and a.meta == b.meta and not torch.equal(a.image, c.image)
    for key in ("depth", "normals", "semseg", "edges", "classes", "lighting"):
        assert torch.equal(a.targets[key], b.targets[key]), key
    assert torch.equal(a.targets["objects"].keypoints, b.targets["objects"].keypoints)


def test_dataset_renders_seed_plus_index_and_applies_the_transform() -> None:
    dataset = SyntheticDataset(3, size=(24, 32), seed=40, transform=v2.RandomHorizontalFlip(p=1.0))
    item, plain = dataset[1], render_scene(41, size=(24, 32))
    assert len(dataset) == 3 and item.meta["seed"] == 41 and item.meta["file_name"] == "000041.png"
    assert torch.equal(item.image, plain.image.flip(-1))
    assert torch.equal(item.targets["depth"], plain.targets["depth"].flip(-1))
    with pytest.raises(IndexError):
        dataset[3]
