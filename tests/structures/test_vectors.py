import pytest
import torch
from torch.nn import functional as F

from mtvision.structures import unit_vectors, vector_length


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_unit_vectors_and_lengths_match_torch_norms(dim: int) -> None:
    torch.manual_seed(0)
    vectors = torch.randn(3, 4, 5)
    vectors.select(dim, 0).zero_()  # some zero vectors: they must stay zero, not NaN
    torch.testing.assert_close(unit_vectors(vectors, dim), F.normalize(vectors, dim=dim))
    torch.testing.assert_close(vector_length(vectors, dim), torch.linalg.vector_norm(vectors, dim=dim))
    assert vector_length(vectors, dim, keepdim=True).shape[dim] == 1


def test_half_precision_vectors_are_summed_wide_enough_not_to_underflow() -> None:
    tiny = torch.full((3, 2), 1e-4, dtype=torch.float16)  # squares (1e-8) underflow in float16
    unit = unit_vectors(tiny, dim=0)
    assert unit.dtype == torch.float16
    torch.testing.assert_close(unit.float(), torch.full((3, 2), 3**-0.5), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(vector_length(tiny, 0), torch.full((2,), 3**0.5 * 1e-4), rtol=1e-3, atol=0)


def test_gradients_flow_through_unit_vectors_as_through_normalize() -> None:
    torch.manual_seed(1)
    a = torch.randn(2, 3, 4, 4, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    weights = torch.randn(2, 3, 4, 4)
    (unit_vectors(a, 1) * weights).sum().backward()
    (F.normalize(b, dim=1) * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
