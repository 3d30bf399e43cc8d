"""Dense float maps as tv_tensors, with the torchvision.transforms.v2 kernels that move them.

:class:`DepthMap` and :class:`NormalMap` are defined here together with their kernels, so
that whoever holds the class holds its behaviour under transforms (no import circle).
Without registered kernels a custom tv_tensor silently passes through geometric transforms
untouched (torchvision's ``allow_passthrough``), which would misalign depth and normals
from the image. Here every geometric functional is registered:

* spatially both maps are resampled exactly like a ``Mask``: nearest neighbour, fill 0
  (0 = invalid depth / no normal), so no value is ever blended across a depth edge;
* normals are *vectors*, so after moving the pixels their ``(x, y)`` components are turned
  by the same image-plane map: a horizontal flip negates x, a vertical flip negates y, a
  rotation by θ rotates (x, y) by θ. For a general affine map ``A`` the in-plane part is
  multiplied by ``A^-T`` (how normals transform) and the vector renormalised.
  Perspective and elastic warps only move pixels (they have no single in-plane map).

Colour transforms are not registered on purpose: they pass the maps through, which is
what they must do.

Importing :mod:`mtvision.structures` imports this module, so the kernels are always there.

Example:
    >>> import torch
    >>> from torchvision.transforms.v2 import functional as F
    >>> F.horizontal_flip(NormalMap(torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, -1.0]]])))[0].tolist() == [[0.0, -1.0]]
    True
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from mtvision.structures.vectors import unit_vectors

__all__ = ["DepthMap", "NormalMap"]


class _DenseMap(tv_tensors.TVTensor):
    """A float ``[channels, H, W]`` map; subclasses set ``channels``."""

    channels: ClassVar[int]

    @classmethod
    def _wrap(cls, tensor: Tensor) -> _DenseMap:
        return tensor.as_subclass(cls)

    def __new__(cls, data: Any, *, dtype: torch.dtype | None = None, device: Any = None,
                requires_grad: bool | None = None) -> _DenseMap:
        tensor = cls._to_tensor(data, dtype=dtype or torch.float32, device=device, requires_grad=requires_grad)
        if tensor.ndim == 2 and cls.channels == 1:
            tensor = tensor.unsqueeze(0)
        if tensor.ndim != 3 or tensor.shape[0] != cls.channels:
            raise ValueError(f"{cls.__name__} must have shape [{cls.channels}, H, W], got {tuple(tensor.shape)}")
        return cls._wrap(tensor)


class DepthMap(_DenseMap):
    """Metric depth, shape ``[1, H, W]`` float (an ``[H, W]`` input gains the axis); 0 marks invalid pixels.

    Geometric transforms resample it with nearest neighbour (no blending across object
    boundaries); colour transforms leave it untouched.
    """

    channels = 1


class NormalMap(_DenseMap):
    """Unit surface normals in the camera frame, shape ``[3, H, W]`` float.

    Pixels without a normal (sky, invalid) hold the zero vector. Flips negate the flipped
    component and in-plane rotations rotate the ``(x, y)`` components, so the vectors stay
    consistent with the transformed image.
    """

    channels = 3


_SPATIAL = (
    F.resize, F.crop, F.center_crop, F.resized_crop, F.pad, F.perspective, F.elastic,
    F.horizontal_flip, F.vertical_flip, F.rotate, F.affine,
)


def _resample(functional: Callable, inpt: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """Run ``functional`` with the Mask kernel (nearest, fill 0) and keep ``inpt``'s type."""
    out = functional(tv_tensors.Mask(inpt.as_subclass(Tensor)), *args, **kwargs)
    return tv_tensors.wrap(out.as_subclass(Tensor), like=inpt)


def _turn_normals(normals: Tensor, linear: Tensor) -> Tensor:
    """Apply the in-plane map to normal vectors: (x, y) <- A^-T (x, y), then renormalise."""
    turn = torch.linalg.inv(linear).T.to(normals.dtype)
    xy = torch.einsum("ij,jhw->ihw", turn, normals[:2])
    turned = torch.cat([xy, normals[2:]], dim=0)
    return unit_vectors(turned, dim=0)


def _affine_linear(angle: float, scale: float, shear: list[float]) -> Tensor:
    """The 2x2 forward matrix torchvision uses for an affine warp (pixel coordinates).

    Written out because torchvision keeps it in a private helper: rotation-scale-shear as in
    ``torchvision.transforms.v2.functional.affine``'s documentation (angles in degrees).
    """
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    return torch.tensor([[a, b], [c, d]], dtype=torch.float64) * scale


def _register_spatial(cls: type) -> None:
    for functional in _SPATIAL:
        if cls is NormalMap and functional in _NORMAL_SPECIFIC:
            continue
        F.register_kernel(functional, cls)(
            lambda inpt, *args, _f=functional, **kwargs: _resample(_f, inpt, *args, **kwargs)
        )


def _flip_normals_h(inpt: Tensor) -> Tensor:
    out = _resample(F.horizontal_flip, inpt)
    return tv_tensors.wrap(out * _axis_sign(0, out), like=inpt)


def _flip_normals_v(inpt: Tensor) -> Tensor:
    out = _resample(F.vertical_flip, inpt)
    return tv_tensors.wrap(out * _axis_sign(1, out), like=inpt)


def _axis_sign(axis: int, like: Tensor) -> Tensor:
    sign = torch.ones(3, 1, 1, dtype=like.dtype, device=like.device)
    sign[axis] = -1
    return sign


def _rotate_normals(inpt: Tensor, angle: float, *args: Any, **kwargs: Any) -> Tensor:
    out = _resample(F.rotate, inpt, angle, *args, **kwargs)
    # F.rotate turns counter-clockwise on screen; F.affine's angle (and its matrix) clockwise.
    turned = _turn_normals(out.as_subclass(Tensor), _affine_linear(-angle, 1.0, [0.0, 0.0]))
    return tv_tensors.wrap(turned, like=inpt)


def _affine_normals(inpt: Tensor, angle: float, translate: list[float], scale: float, shear: list[float],
                    *args: Any, **kwargs: Any) -> Tensor:
    out = _resample(F.affine, inpt, angle, translate, scale, shear, *args, **kwargs)
    turned = _turn_normals(out.as_subclass(Tensor), _affine_linear(angle, scale, list(shear)))
    return tv_tensors.wrap(turned, like=inpt)


_NORMAL_SPECIFIC = {
    F.horizontal_flip: _flip_normals_h,
    F.vertical_flip: _flip_normals_v,
    F.rotate: _rotate_normals,
    F.affine: _affine_normals,
}

_register_spatial(DepthMap)
_register_spatial(NormalMap)
for _functional, _kernel in _NORMAL_SPECIFIC.items():
    F.register_kernel(_functional, NormalMap)(_kernel)
