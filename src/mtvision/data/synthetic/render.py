"""Render a :class:`~mtvision.data.synthetic_scene.SceneSpec`: one ray per pixel, exact.

Every pixel gets the nearest hit among the analytic primitives, so depth, normals and the
id of the surface hit come out exact and agree with each other by construction; the
colour image is then shaded from them (textured albedo, Lambertian key light with hard
shadows from shadow rays, a weak shadowless fill light, ambient). Nothing is antialiased:
a pixel's colour and its labels always describe the same surface.

Surface ids (``Frame.segment``): 0 nothing hit, 1 floor, 2... walls in ``spec.walls``
order, then the objects in ``spec.objects`` order from :func:`first_object_id`.

Example:
    >>> from mtvision.data.synthetic.scene import sample_scene
    >>> frame = cast(sample_scene(0), (32, 48))
    >>> frame.depth.shape, shade(sample_scene(0), frame).shape
    ((32, 48), (3, 32, 48))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtvision.data.synthetic.geometry import intersect_object, intersect_plane, object_normals, to_local
from mtvision.data.synthetic.scene import Camera, Light, Plane, SceneObject, SceneSpec, cross

__all__ = ["Frame", "cast", "shade", "first_object_id", "surfaces", "camera_rays", "screen_window"]

_DARK = np.float32(0.6)  # albedo factor of the dark texture cells
_SHADOW_BIAS = np.float32(1e-3)  # metres a shadow ray starts off its surface, against self-hits

Window = tuple[slice, slice]


@dataclass
class Frame:
    """What the primary rays saw, per pixel; vectors are channel-first in the world frame."""

    origin: np.ndarray  # (3,) camera centre
    rays: np.ndarray  # (3, H, W) ray directions whose camera-frame z is 1
    depth: np.ndarray  # (H, W) z-depth, +inf where nothing is hit
    segment: np.ndarray  # (H, W) int16 surface id (module docstring)
    points: np.ndarray  # (3, H, W) world points hit (the camera centre where nothing is hit)
    normals: np.ndarray  # (3, H, W) unit normals, 0 where nothing is hit
    albedo: np.ndarray  # (3, H, W) textured surface colour


def first_object_id(spec: SceneSpec) -> int:
    """Surface id of ``spec.objects[0]``."""
    return 2 + len(spec.walls)


def surfaces(spec: SceneSpec) -> tuple[Plane | SceneObject, ...]:
    """Every surface in id order: ``surfaces(spec)[i - 1]`` has surface id ``i``."""
    return (spec.floor, *spec.walls, *spec.objects)


def camera_rays(camera: Camera, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre ``(3,)`` and world ray directions ``(3, H, W)`` through pixel centres."""
    f, cx, cy = camera.intrinsics(size)
    u = (np.arange(size[1], dtype=np.float32) + 0.5 - cx) / f
    v = (np.arange(size[0], dtype=np.float32) + 0.5 - cy) / f
    grid = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1), np.float32)))
    rays = (camera.rotation.T.astype(np.float32) @ grid.reshape(3, -1)).reshape(grid.shape)
    return np.asarray(camera.position, np.float32), rays


def screen_window(camera: Camera, obj: SceneObject, size: tuple[int, int]) -> Window:
    """Pixel rows/columns that may see ``obj``: the projected corners of a cube around its
    bounding sphere. Casting rays only there is what makes the renderer fast."""
    cam = (np.asarray(obj.center) + obj.radius * _CUBE - camera.position) @ camera.rotation.T
    if cam[:, 2].min() < 1e-3:
        return slice(None), slice(None)
    f, cx, cy = camera.intrinsics(size)
    u, v = f * cam[:, 0] / cam[:, 2] + cx, f * cam[:, 1] / cam[:, 2] + cy
    return _span(v.min(), v.max(), size[0]), _span(u.min(), u.max(), size[1])


def _span(low: float, high: float, length: int) -> slice:
    """The pixels ``[floor(low), ceil(high)]`` clipped to ``[0, length)``."""
    return slice(min(max(math.floor(low), 0), length), min(max(math.ceil(high) + 1, 0), length))


def cast(spec: SceneSpec, size: tuple[int, int]) -> Frame:
    """Cast one ray per pixel and keep the nearest hit with its normal and albedo."""
    origin, rays = camera_rays(spec.camera, size)
    depth = np.full(size, np.inf, dtype=np.float32)
    segment = np.zeros(size, dtype=np.int16)
    for sid, surface in enumerate(surfaces(spec), start=1):
        if isinstance(surface, Plane):
            _keep_nearer(depth, segment, intersect_plane(surface, origin, rays), sid)
        else:
            rows, cols = screen_window(spec.camera, surface, size)
            t = intersect_object(surface, origin, rays[:, rows, cols])
            _keep_nearer(depth[rows, cols], segment[rows, cols], t, sid)
    points = origin[:, None, None] + np.where(segment > 0, depth, np.float32(0)) * rays
    frame = Frame(origin, rays, depth, segment, points, np.zeros_like(rays), np.zeros_like(rays))
    _fill_surfaces(spec, frame)
    return frame


def shade(spec: SceneSpec, frame: Frame) -> np.ndarray:
    """``(3, H, W)`` colour in ``[0, 1]``: albedo x (ambient + sum of lit Lambert terms)."""
    irradiance = np.full(frame.depth.size, spec.ambient, dtype=np.float32)
    for light in spec.lights:
        lambert = np.maximum(np.asarray(light.direction, np.float32) @ frame.normals.reshape(3, -1), 0)
        if light.shadows:
            lambert[_shadowed(spec, frame, light, np.flatnonzero(lambert))] = 0
        irradiance += np.float32(light.intensity) * lambert
    sky = np.asarray(spec.sky, np.float32)[:, None, None]
    color = frame.albedo * irradiance.reshape(frame.depth.shape)
    return np.clip(np.where(frame.segment > 0, color, sky), 0, 1)


def _keep_nearer(depth: np.ndarray, segment: np.ndarray, t: np.ndarray, sid: int) -> None:
    """Z-buffer update in place (``depth`` and ``segment`` may be views of a window)."""
    nearer = t < depth
    np.copyto(depth, t, where=nearer)
    segment[nearer] = sid


def _fill_surfaces(spec: SceneSpec, frame: Frame) -> None:
    """Normals and textured albedo of every pixel, from the surface it hit (flat indices:
    numpy gathers and scatters them far faster than boolean masks)."""
    points, segment = frame.points.reshape(3, -1), frame.segment.ravel()
    normals, albedo = frame.normals.reshape(3, -1), frame.albedo.reshape(3, -1)
    for sid, surface in enumerate(surfaces(spec), start=1):
        pixels = np.flatnonzero(segment == sid)
        hit = np.take(points, pixels, axis=1)
        if isinstance(surface, Plane):
            normal = np.asarray(surface.normal, np.float32)
            normal = normal if normal @ frame.origin >= surface.offset else -normal  # the side the camera sees
            normal, texture = np.broadcast_to(normal[:, None], hit.shape), _plane_texture(surface, hit)
        else:
            local = to_local(surface, hit)
            normal, texture = object_normals(surface, local), _object_texture(surface, local)
        _scatter(normals, pixels, normal)
        _scatter(albedo, pixels, np.asarray(surface.color, np.float32)[:, None] * texture)


def _scatter(target: np.ndarray, pixels: np.ndarray, values: np.ndarray) -> None:
    """``target[:, pixels] = values``, one channel at a time (3x faster in numpy)."""
    for channel, value in zip(target, values):
        channel[pixels] = value


def _plane_texture(plane: Plane, points: np.ndarray) -> np.ndarray:
    """Checker in the plane, or vertical stripes along its horizontal direction."""
    n = np.asarray(plane.normal, np.float32)
    across = np.array([n[1], -n[0], 0.0], np.float32)  # horizontal in the plane (n x z)
    across = across / np.linalg.norm(across) if across.any() else np.array([1, 0, 0], np.float32)
    cells = _cells(across @ points, plane.tile)
    if plane.texture == "checker":
        cells += _cells(cross(n, across) @ points, plane.tile)
    return np.where(cells & 1, _DARK, np.float32(1))


def _object_texture(obj: SceneObject, local: np.ndarray) -> np.ndarray:
    """A solid texture in the object's frame (3D checker or horizontal bands), which needs
    no surface parametrisation and so works the same on every shape."""
    if obj.texture == "plain":
        return np.ones(local.shape[1], np.float32)
    cells = _cells(local + np.float32(max(obj.extent) / 8), max(obj.extent) / 2)  # shifted: no face on a cell border
    parity = cells.sum(axis=0) if obj.texture == "checker" else cells[2]
    return np.where(parity & 1, _DARK, np.float32(1))


def _cells(coordinate: np.ndarray, period: float) -> np.ndarray:
    """Integer texture cell index (float ``%`` is 30x slower than integer ``&`` in numpy)."""
    return np.floor(coordinate / np.float32(period)).astype(np.int32)


def _shadowed(spec: SceneSpec, frame: Frame, light: Light, pixels: np.ndarray) -> np.ndarray:
    """The flat indices among ``pixels`` that see an object between them and ``light``.

    A pixel is only tested against an object whose bounding sphere its shadow ray passes,
    found in the light's own 2D frame; an object never shadows itself (all are convex, so
    a face turned to the light cannot be hidden from it by its own object).
    """
    direction = np.asarray(light.direction, np.float32)
    starts = np.take(frame.points.reshape(3, -1), pixels, axis=1)
    starts += _SHADOW_BIAS * np.take(frame.normals.reshape(3, -1), pixels, axis=1)
    surface = frame.segment.ravel()[pixels]
    across = np.linalg.svd(direction[None, :])[2][1:].astype(np.float32)  # two unit vectors normal to the light
    flat, along = across @ starts, direction @ starts
    blocked = np.zeros(pixels.shape, dtype=bool)
    for sid, obj in enumerate(spec.objects, start=first_object_id(spec)):
        center = np.asarray(obj.center, np.float32)
        offset = flat - (across @ center)[:, None]
        maybe = (offset[0] ** 2 + offset[1] ** 2 <= obj.radius ** 2) & (along <= direction @ center + obj.radius)
        maybe = np.flatnonzero(maybe & (surface != sid) & ~blocked)
        blocked[maybe] = np.isfinite(intersect_object(obj, np.take(starts, maybe, axis=1), direction[:, None]))
    return pixels[blocked]


_CUBE = np.array(np.meshgrid(*[(-1.0, 1.0)] * 3)).reshape(3, -1).T  # (8, 3) corners of [-1, 1]^3
