"""Per-task state as wide as the gradients (``[T, D]``), for the methods that keep one (DB-MTL's
EMA, MoCo's tracked gradients, ExcessMTL's squared-gradient sums).

``D`` is known only once the first gradients arrive, so the buffer starts ``[T, 0]``, is
sized then, and a saved one is read back at its saved width. Such a method needs ``G``
itself: parameter mode holds ``G`` (the stored path).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class WideState(nn.Module):
    """Mixin for a balancer with ``[num_tasks, D]`` buffers named in ``WIDE``."""

    WIDE: tuple[str, ...] = ()

    def _widen(self, grads: Tensor) -> None:
        """Size the wide buffers on the first call; a later change of ``D`` is an error."""
        for name in self.WIDE:
            buffer = getattr(self, name)
            if buffer.shape[1] == 0:
                setattr(self, name, grads.new_zeros(buffer.shape[0], grads.shape[1]))
            elif buffer.shape[1] != grads.shape[1]:
                raise ValueError(f"{type(self).__name__} was fed gradients of size {buffer.shape[1]}, now "
                                 f"{grads.shape[1]}: one method instance serves one model")

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """A wide buffer's width is the gradient size, known only once seen: take the saved one's."""
        for name in self.WIDE:
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, getattr(self, name).new_zeros(saved.shape))
        super()._load_from_state_dict(state_dict, prefix, *args)
