"""Forster transform: put inputs in radial isotropic position.

Points ``x_1..x_N`` in ``R^{M_0}`` (``N >= M_0``) are in *radial isotropic position* when

    ||x_n|| = 1 for every n   and   sum_n x_n x_n^T = X^T X = (N / M_0) I_{M_0}.

Then every leverage score ``x_n^T (X^T X)^{-1} x_n = M_0 / N`` is the same, which is what K-FAC
needs when ``M_0 < N``: the first layer's input projection ``X (X^T X)^{-1} X^T`` has a constant
diagonal, so that layer contributes ``N * (M_0/N) = M_0`` times the identity to
``Theta_G`` (derived here; the authors' code github.com/kazukiosawa/ngd_in_wide_nn applies a Forster
transform to K-FAC's inputs when ``M_0 < N``).  Forster's theorem: points in general position
(every ``M_0`` of them linearly independent) can be brought into this position by one linear map
``T`` followed by normalising each row.  We find ``T`` by the fixed-point iteration

    Z <- rownormalise(Z (Z^T Z)^{-1/2})        (starting from the row-normalised inputs),

accumulating ``T = prod_k (Z_k^T Z_k)^{-1/2}`` (row scalings commute with nothing we need: they only
rescale rows, so ``rownormalise(X T)`` reproduces the iterate), until the relative isotropy error

    ||Z^T Z - (N/M_0) I||_F / ||(N/M_0) I||_F < tol.

The same ``T`` can be applied to new points (:meth:`ForsterResult.transform`); note this changes the
function the network computes on them, exactly as applying the transform to a data set does.

>>> import numpy as np
>>> X = np.random.default_rng(0).standard_normal((40, 5))
>>> res = forster_transform(X, tol=1e-12)
>>> res.isotropy_error < 1e-12, res.inputs.shape
(True, (40, 5))
>>> bool(np.allclose(leverage_scores(res.inputs), 5 / 40, atol=1e-10))
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.validation import check_matrix, check_nonnegative, check_positive_int
from theory.tolerances import RANK_RTOL

#: Default convergence tolerance on the relative isotropy error.  The iteration converges
#: linearly for points in general position; 1e-10 leaves leverage scores constant to ~1e-10,
#: below the 1e-9 at which the verifier asserts exact identities.
DEFAULT_TOL = 1e-10

#: Default iteration cap.
DEFAULT_MAX_ITER = 2000

# ``rank(X) < M_0`` when the smallest singular value of the row-normalised inputs is below RANK_RTOL
# (theory.tolerances) times the largest (rounding leaves exact rank deficiency at ~ N eps ~ 1e-13).


class ForsterError(ValueError):
    """The Forster iteration cannot reach radial isotropic position.

    Attributes ``iterations`` and ``isotropy_error`` record how far it got; ``assumption`` names the
    failed assumption (inputs in general position).
    """

    def __init__(self, message: str, iterations: int, isotropy_error: float, assumption: str):
        super().__init__(f"{message}; failed assumption: {assumption}")
        self.iterations = int(iterations)
        self.isotropy_error = float(isotropy_error)
        self.assumption = assumption


@dataclass(frozen=True)
class ForsterResult:
    """Outcome of :func:`forster_transform`.

    Attributes
    ----------
    inputs:
        ``(N, M_0)`` transformed points, unit rows, ``inputs^T inputs ~ (N/M_0) I``.
    linear_map:
        ``(M_0, M_0)`` matrix ``T`` (Frobenius norm 1) with ``inputs = rownormalise(X @ T)``.
    iterations:
        Number of fixed-point iterations used.
    isotropy_error:
        Achieved relative error ``||inputs^T inputs - (N/M_0) I||_F / ||(N/M_0) I||_F``.
    initial_isotropy_error:
        The same error for the row-normalised raw inputs (how far from isotropic they were).
    """

    inputs: np.ndarray
    linear_map: np.ndarray
    iterations: int
    isotropy_error: float
    initial_isotropy_error: float

    def transform(self, X2) -> np.ndarray:
        """Apply the same map to new points: ``rownormalise(X2 @ T)`` (rows must be non-zero after ``T``)."""
        X2 = check_matrix("X2", X2, ncols=self.linear_map.shape[0])
        return _normalise_rows(X2 @ self.linear_map, "X2 @ T")

    def to_dict(self) -> dict:
        return {"iterations": self.iterations, "isotropy_error": self.isotropy_error,
                "initial_isotropy_error": self.initial_isotropy_error}


def _normalise_rows(Z: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(Z, axis=1)
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(f"{name} has zero rows (indices {zero[:5].tolist()}): a zero input has no direction "
                         "and cannot be put in radial isotropic position")
    return Z / norms[:, None]


def radial_isotropy_error(Z) -> float:
    """Relative distance ``||Z^T Z - (N/M_0) I||_F / ||(N/M_0) I||_F`` of the rows of ``Z`` from
    radial isotropic position (rows are used as given; normalise them first for the radial notion).

    >>> radial_isotropy_error(np.eye(3))
    0.0
    >>> round(radial_isotropy_error(np.array([[1.0, 0.0], [1.0, 0.0]])), 6)
    1.0
    """
    Z = check_matrix("Z", Z)
    n, m = Z.shape
    target = n / m
    return float(np.linalg.norm(Z.T @ Z - target * np.eye(m)) / (target * np.sqrt(m)))


def in_radial_isotropic_position(X, tol: float = 2 * DEFAULT_TOL) -> bool:
    """Whether the rows of ``X`` (``(N, M_0)``) are in radial isotropic position: unit norms and
    ``X^T X = (N/M_0) I``, both to relative error ``tol`` (default twice the Forster iteration's stopping
    tolerance).  This is a property of the data, so callers ask it of the inputs they were given
    (e.g. after :func:`forster_transform`) instead of being told by an option.

    >>> in_radial_isotropic_position(forster_transform(np.random.default_rng(0).standard_normal((8, 3))).inputs)
    True
    >>> in_radial_isotropic_position(np.random.default_rng(0).standard_normal((8, 3)))
    False
    """
    X = check_matrix("X", X)
    norms = np.linalg.norm(X, axis=1)
    return bool(np.all(np.abs(norms - 1.0) <= tol) and radial_isotropy_error(X) <= tol)


def leverage_scores(X) -> np.ndarray:
    """Diagonal of the projection ``X (X^T X)^+ X^T`` (``X`` of full column rank: ``x_n^T (X^T X)^{-1} x_n``).

    Their sum is ``rank(X)``; they are all equal (``= M_0 / N``) iff the rows are in isotropic position
    up to row scaling of a certain kind -- for unit rows, iff radial isotropic.

    >>> leverage_scores(np.eye(2)).tolist()
    [1.0, 1.0]
    """
    X = check_matrix("X", X)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s > RANK_RTOL * (s.max() if s.size else 0.0)
    return np.einsum("ij,ij->i", U[:, keep], U[:, keep])


def forster_transform(X, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER) -> ForsterResult:
    """Bring the rows of ``X`` (``N x M_0``, ``N >= M_0``) into radial isotropic position.

    Iterates ``Z <- rownormalise(Z (Z^T Z)^{-1/2})``; each step costs one ``M_0 x M_0`` Gram, one
    ``eigh`` and one ``N x M_0 x M_0`` GEMM.  Raises :class:`ForsterError` if ``X`` has rank
    ``< M_0`` (not in general position), if ``N < M_0`` (isotropy ``Z^T Z = (N/M_0) I`` would need
    rank ``M_0 > N``), or if ``max_iter`` iterations do not reach ``tol`` (the points are too close to
    violating Forster's condition, e.g. more than ``k N / M_0`` of them in a ``k``-dim subspace).

    >>> forster_transform(np.ones((4, 2)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    numerics.forster.ForsterError: X has rank 1 < M_0 = 2 (singular values ratio ...); failed assumption: the inputs are in general position (every M_0 of them linearly independent)
    """
    X = check_matrix("X", X)
    tol = check_nonnegative("tol", tol, allow_zero=False)
    max_iter = check_positive_int("max_iter", max_iter)
    n, m = X.shape
    general = "the inputs are in general position (every M_0 of them linearly independent)"
    if n < m:
        raise ForsterError(f"X has N = {n} rows < M_0 = {m} columns: Z^T Z = (N/M_0) I needs rank M_0 > N",
                           0, float("inf"), "N >= M_0 (more inputs than input dimensions)")
    Z = _normalise_rows(X, "X")
    s = np.linalg.svd(Z, compute_uv=False)
    if s[-1] <= RANK_RTOL * s[0]:
        rank = int(np.sum(s > RANK_RTOL * s[0]))
        raise ForsterError(f"X has rank {rank} < M_0 = {m} (singular values ratio {s[-1] / s[0]:.3g})",
                           0, float("inf"), general)
    T = np.eye(m) / np.sqrt(m)
    error = initial = radial_isotropy_error(Z)
    iterations = 0
    while error >= tol:
        if iterations >= max_iter:
            raise ForsterError(f"Forster iteration did not converge in {max_iter} iterations "
                               f"(isotropy error {error:.3g} >= tol {tol:.3g}, started at {initial:.3g})",
                               iterations, error, general)
        lam, V = np.linalg.eigh(Z.T @ Z)
        if lam[0] <= RANK_RTOL * lam[-1]:
            raise ForsterError(f"the iterate became rank deficient at iteration {iterations} "
                               f"(eigenvalue ratio {lam[0] / lam[-1]:.3g})", iterations, error, general)
        inv_sqrt = (V / np.sqrt(lam)) @ V.T
        T = T @ inv_sqrt
        T /= np.linalg.norm(T)  # the scale of T is irrelevant (rows are normalised); keep it O(1)
        Z = _normalise_rows(X @ T, "X @ T")
        error = radial_isotropy_error(Z)
        iterations += 1
    return ForsterResult(inputs=Z, linear_map=T, iterations=iterations, isotropy_error=error,
                         initial_isotropy_error=initial)


__all__ = ["DEFAULT_MAX_ITER", "DEFAULT_TOL", "ForsterError", "ForsterResult", "forster_transform",
           "radial_isotropy_error", "in_radial_isotropic_position", "leverage_scores"]
