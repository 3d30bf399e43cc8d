"""Joint augmentation (DESIGN §2): every annotation of a sample moves with its image.

* :mod:`~mtvision.data.transforms.presets` — the presets (``none``, ``light``, ``default``, ``strong``);
* :mod:`~mtvision.data.transforms.geometry` — letterbox resize, scale jitter, void padding of semantic masks;
* :mod:`~mtvision.data.transforms.instances` — steps that need whole instances (flip with ``flip_idx``, sanitising).
"""

from mtvision.data.transforms import presets as _presets
from mtvision.data.transforms.presets import *  # noqa: F403  (the public API of the room is presets's)

__all__ = _presets.__all__
