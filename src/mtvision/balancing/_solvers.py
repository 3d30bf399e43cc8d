"""Small T×T solvers shared by the gradient methods.

Every Gramian method reduces to a problem on ``M = G Gᵀ`` (T ≤ ~10), so the work here is
independent of the gradient size D. The Gramian is copied once to the host in float64:
for problems this small the CPU is faster than a chain of tiny GPU kernels, and float64
keeps the projections exact enough for the non-conflict guarantees (``g·g_t ≥ 0``).

Solvers used:

* dual-cone projections (UPGrad, DualProj) and the min-norm point (MGDA) are non-negative
  least-squares problems on a square factor ``A`` of the cosine matrix (``AᵀA = C``),
  solved exactly by Lawson–Hanson's active set (``scipy.optimize.nnls``);
* the α-fair system ``M w = w^(-1/α)`` (Nash-MTL, FairGrad) is the stationarity condition
  of a strictly convex function, minimised by damped Newton;
* pseudo-inverses (ConFIG, IMTL-G, Aligned-MTL) cut values below ``RANK_RTOL``;
* CAGrad's non-smooth simplex problem uses SLSQP;
* PCGrad / GradVac surgery is tracked as coefficients over the task gradients.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.optimize import minimize, nnls
from torch import Tensor

Array = NDArray[np.float64]
TINY = 1e-30
#: relative size below which an eigen/singular value of a float32 Gramian is round-off.
RANK_RTOL = 1e-5


def to_numpy(tensor: Tensor) -> Array:
    """A detached float64 host copy (the one host sync of a Gramian method)."""
    return tensor.detach().to("cpu", torch.float64).numpy().copy()


def normalized(gramian: Array) -> Array:
    """``M`` divided by its mean diagonal: the weights of a scale-free method do not change,
    and the solvers see numbers of order one whatever the gradient scale."""
    scale = np.trace(gramian) / len(gramian)
    return gramian / scale if scale > TINY else gramian


def unit_gramian(gramian: Array) -> tuple[Array, Array, Array]:
    """``(C, n, live)``: the cosine matrix and norms of the nonzero gradients (mask ``live``).

    The cone and min-norm problems below are solved on ``C`` and mapped back through ``n``:
    ``C`` is well conditioned even when the gradient norms differ by orders of magnitude,
    where a factor of ``M`` itself would lose the small tasks to round-off.
    """
    diagonal = np.diag(gramian)
    live = diagonal > 0
    norms = np.sqrt(diagonal[live])
    return gramian[np.ix_(live, live)] / np.outer(norms, norms), norms, live


def factor(gramian: Array) -> Array:
    """A square ``A`` with ``AᵀA = M`` (eigen-decomposition; tiny negative eigenvalues from
    round-off are clipped), i.e. task gradients in a T-dimensional isometric basis."""
    eigenvalues, vectors = np.linalg.eigh(gramian)
    return np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * vectors.T


def _nnls(matrix: Array, target: Array) -> Array:
    if matrix.shape[1] == 0:  # scipy's nnls aborts the process on an empty problem
        return np.zeros(0)
    return nnls(matrix, target, maxiter=100 * matrix.shape[1])[0]


def min_norm_weights(gramian: Array) -> Array:
    """Weights ``α`` on the simplex of the min-norm point of the convex hull of the gradients.

    ``min_{α ∈ Δ} ‖αᵀG‖²`` (Sener & Koltun 2018, Eq. 3) is, up to scale, the least-distance
    problem ``min ‖x‖ s.t. g_t·x ≥ 1`` (then ``x ∝ αᵀG``). In unit-gradient coordinates
    (``A`` a factor of the cosine matrix, ``h_t ∝ 1/‖g_t‖``) Lawson & Hanson (1974, ch. 23)
    solve it exactly by the NNLS ``u = argmin_{u ≥ 0} ‖Au‖² + (hᵀu − 1)²``; its dual
    variables are ``∝ u`` so ``α ∝ u_t / ‖g_t‖``. Unlike Frank–Wolfe this terminates at the
    optimum, which keeps ``d·g_t ≥ ‖d‖² ≥ 0``. A zero gradient is itself the min-norm point.
    """
    cosines, norms, live = unit_gramian(gramian)
    alpha = np.zeros(len(gramian))
    if not live.all():
        alpha[np.argmin(live)] = 1.0
        return alpha
    k = len(norms)
    stacked = np.vstack([factor(cosines), norms.min() / norms])
    target = np.zeros(k + 1)
    target[-1] = 1.0
    alpha = _nnls(stacked, target) / norms
    return alpha / alpha.sum()


def dual_cone_weights(gramian: Array, start: Array) -> Array:
    """Weights ``w`` of the projection of ``startᵀG`` onto the dual cone ``{x : Gx ≥ 0}``.

    The projection of ``g = cᵀG`` is ``(c + λ)ᵀG`` with ``λ = argmin_{λ ≥ 0} ‖Gᵀ(λ + c)‖²``
    (the dual of ``min ‖x − g‖² s.t. Gx ≥ 0``; Quinton & Rey 2024, Prop. 1). With unit
    gradients ``μ = n ⊙ λ`` solves the NNLS ``min_{μ ≥ 0} ‖A(μ + n ⊙ c)‖²``, ``A`` a factor
    of the cosine matrix. Zero gradients constrain nothing.
    """
    cosines, norms, live = unit_gramian(gramian)
    a = factor(cosines)
    weights = start.astype(np.float64).copy()
    weights[live] += _nnls(a, -a @ (norms * start[live])) / norms
    return weights


def alpha_fair_weights(gramian: Array, alpha: float, start: Array, tol: float = 1e-10, max_iter: int = 100) -> Array:
    """Positive ``w`` with ``M w = w^(-1/α)`` (elementwise), by damped Newton.

    With ``M = N C N`` (``N`` the gradient norms, ``C`` the cosines) and ``β = N w`` the system
    reads ``C β = c ⊙ β^(-p)``, ``p = 1/α``, ``c_t = n_t^(p−1)``: the stationarity condition of
    the strictly convex ``f(β) = ½ βᵀCβ − Σ c_t h(β_t)``, ``h' = β^(-p)`` (``h = log`` for
    α = 1). Newton steps are cut to stay in ``β > 0`` and backtracked on ``f``; quadratic
    convergence near the solution. A 1e-8 ridge on ``C`` keeps the system solvable when
    gradients are linearly dependent; zero gradients get weight 0.
    """
    cosines, norms, live = unit_gramian(gramian)
    weights = np.zeros(len(gramian))
    if not live.any():
        return weights
    p = 1.0 / alpha
    cosines = cosines + 1e-8 * np.eye(len(norms))
    coefficients = norms ** (p - 1.0)
    beta = np.clip(start[live] * norms, 1e-12, None)

    def f(x: Array) -> float:
        h = np.log(x) if p == 1.0 else x ** (1.0 - p) / (1.0 - p)
        return 0.5 * x @ cosines @ x - coefficients @ h

    for _ in range(max_iter):
        grad = cosines @ beta - coefficients * beta**-p
        if np.max(np.abs(grad * beta)) < tol:
            break
        step = -np.linalg.solve(cosines + np.diag(p * coefficients * beta ** (-p - 1.0)), grad)
        shrinking = step < 0
        t = min(1.0, 0.99 * np.min(-beta[shrinking] / step[shrinking])) if shrinking.any() else 1.0
        while f(beta + t * step) > f(beta) + 1e-4 * t * (grad @ step) and t > 1e-12:
            t *= 0.5
        beta = beta + t * step
    weights[live] = beta / norms
    return weights


def minimize_on_simplex(objective: Callable[[Array], float], gradient: Callable[[Array], Array], k: int) -> Array:
    """``argmin`` of a convex function over the probability simplex (SLSQP, from uniform)."""
    result = minimize(
        objective,
        np.full(k, 1.0 / k),
        jac=gradient,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints={"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones_like(x)},
        options={"ftol": 1e-12, "maxiter": 200},
    )
    weights = np.clip(result.x, 0.0, None)
    return weights / weights.sum()


def sequential_surgery(k: int, adjust: Callable[[int, int, Array], float]) -> Array:
    """Weights of ``Σ_i g_i'`` where each ``g_i'`` starts as ``g_i`` and is altered by every
    other task ``j`` in a fresh random order (PCGrad, GradVac).

    ``g_i'`` is tracked as coefficients ``c`` over the task gradients (``g_i' = cᵀG``), so
    the surgery costs O(T³) on the Gramian instead of O(T²D); ``adjust(i, j, c)`` returns
    how much of ``g_j`` to add to ``g_i'``.
    """
    total = np.zeros(k)
    for i in range(k):
        coefficients = np.zeros(k)
        coefficients[i] = 1.0
        for j in torch.randperm(k).tolist():
            if j != i:
                coefficients[j] += adjust(i, j, coefficients)
        total += coefficients
    return total


def project_simplex(y: Array) -> Array:
    """Euclidean projection onto the probability simplex (Held, Wolfe & Crowder 1974; the
    sort-based form of Duchi et al. 2008): ``max(y − τ, 0)`` with ``τ`` making it sum to 1."""
    s = np.sort(y)[::-1]
    partial = (np.cumsum(s) - 1.0) / np.arange(1, len(y) + 1)
    tau = partial[np.nonzero(s > partial)[0][-1]]
    return np.clip(y - tau, 0.0, None)
