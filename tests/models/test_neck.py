"""FPN: one width at every level, strides kept, coarse semantics flowing down to fine levels."""

from __future__ import annotations

import pytest
import torch

from mtvision.models import FPN

IN_CHANNELS, STRIDES = [8, 16, 32], [4, 8, 16]


def pyramid(batch: int = 2, size: int = 32) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(IN_CHANNELS, STRIDES)]


def test_outputs_have_one_width_and_the_input_resolutions() -> None:
    fpn = FPN(IN_CHANNELS, STRIDES, channels=12)
    out = fpn(pyramid())
    assert fpn.channels == 12 and fpn.strides == STRIDES
    assert [tuple(f.shape) for f in out] == [(2, 12, 8, 8), (2, 12, 4, 4), (2, 12, 2, 2)]


def test_top_down_path_reaches_fine_levels_only() -> None:
    fpn = FPN(IN_CHANNELS, STRIDES, channels=12).eval()
    features = pyramid()
    before = fpn(features)
    features[-1] = features[-1] + 1.0  # change only the coarsest input
    after = fpn(features)
    assert not torch.allclose(before[0], after[0])  # the finest level sees coarse semantics
    features_fine = pyramid()
    features_fine[0] = features_fine[0] + 1.0  # change only the finest input
    assert torch.equal(fpn(features_fine)[-1], before[-1])  # nothing flows upwards


@pytest.mark.parametrize(("channels", "strides", "match"), [
    ([8, 16], [4, 8, 16], "one stride per input level"),
    ([8, 16], [8, 4], "finest first"),
    ([], [], "one stride per input level"),
])
def test_inconsistent_levels_are_rejected(channels: list[int], strides: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FPN(channels, strides)


def test_wrong_number_of_maps_is_rejected() -> None:
    with pytest.raises(ValueError, match="built for 3 levels got 2"):
        FPN(IN_CHANNELS, STRIDES)(pyramid()[:2])
