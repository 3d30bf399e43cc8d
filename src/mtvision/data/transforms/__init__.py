"""Joint augmentation (DESIGN §2): every annotation of a sample moves with its image.

* :mod:`~mtvision.data.transforms.presets` — the presets (``none``, ``light``, ``default``, ``strong``);
* :mod:`~mtvision.data.transforms.geometry` — letterbox resize, scale jitter, void padding of semantic masks;
* :mod:`~mtvision.data.transforms.instances` — steps that need whole instances (flip with ``flip_idx``, sanitising).
"""

from mtvision.data.transforms.presets import (
                                              IMAGENET_MEAN,
                                              IMAGENET_STD,
                                              BoxesFromMasks,
                                              Letterbox,
                                              Preset,
                                              RandomFitScale,
                                              RandomHorizontalFlip,
                                              SanitizeInstances,
                                              SemanticVoidFill,
                                              build_transforms,
                                              check_sample,
                                              flip_keypoints,
                                              sanitize_instances,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "BoxesFromMasks", "Letterbox", "Preset", "RandomFitScale",
           "RandomHorizontalFlip", "SanitizeInstances", "SemanticVoidFill", "build_transforms", "check_sample",
           "flip_keypoints", "sanitize_instances"]
