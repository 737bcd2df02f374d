"""Dense linear algebra with the checks the verifier needs: never a silent NaN or garbage solve.

Every solver either succeeds on a system whose condition number is below ``MAX_CONDITION`` or
raises :class:`SingularSystemError` carrying the condition number and a sentence naming the
assumption that failed (the caller knows which assumption; e.g. "width < N").

>>> import numpy as np
>>> A = np.array([[2.0, 1.0], [1.0, 2.0]])
>>> cholesky_solve(A, np.array([3.0, 3.0])).round(12).tolist()
[1.0, 1.0]
>>> try:
...     cholesky_solve(np.ones((2, 2)), np.ones(2), assumption="the 2 inputs are distinct")
... except SingularSystemError as err:
...     print(err.assumption, err.condition_number > 1e12)
the 2 inputs are distinct True
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from theory.tolerances import MAX_CONDITION, RANK_RTOL

__all__ = [
    "SingularSystemError", "condition_number_symmetric", "cholesky_factor", "cholesky_apply",
    "cholesky_solve", "lu_factor_checked", "lu_solve_checked", "psd_sqrt_and_inverse_sqrt",
    "symmetric_pinv", "MAX_CONDITION", "PINV_RTOL"
]

# MAX_CONDITION (theory.tolerances, 1e12): the checked solvers refuse larger condition numbers.

#: Relative eigenvalue tolerance of :func:`symmetric_pinv`: eigenvalues with
#: ``|lambda| <= PINV_RTOL * max |lambda|`` are treated as zero.  Rounding leaves the zero
#: eigenvalues of an exactly singular, well-scaled n x n matrix at about n * eps ~ 1e-13 relative,
#: so 1e-10 separates them with three decades of margin; it also discards genuine eigenvalues below
#: 1e-10 relative, so callers that know the exact rank (e.g. from a block pattern) pass ``rank``.
PINV_RTOL = RANK_RTOL


class SingularSystemError(ValueError):
    """A linear system is singular or too ill-conditioned to solve reliably.

    Attributes
    ----------
    condition_number:
        2-norm (or estimated 1-norm) condition number, ``inf`` if exactly singular.
    assumption:
        One sentence naming the assumption that fails (e.g. ``"layer 3 Gram singular: ..."``).
    flags:
        The typed :class:`~theory.assumptions.Flag` s of the failure (empty unless the raiser diagnosed it:
        the approximations put their :mod:`numerics.diagnosis` flag here, its code the named cause).
    """

    def __init__(self, message: str, condition_number: float, assumption: str):
        super().__init__(f"{message} (condition number {condition_number:.3g}); failed assumption: {assumption}")
        self.condition_number = float(condition_number)
        self.assumption = assumption
        #: typed flags (theory.assumptions.Flag) of the failure; approximations set them from their diagnosis
        self.flags: list = []


def _square_matrix(name: str, A) -> np.ndarray:
    """``A`` as a finite, non-empty square float64 array, else a ValueError/TypeError naming ``name``.

    Without this check a NaN reaches LAPACK, which either fails with an anonymous
    "did not converge" or (depending on the build) returns NaN factors silently.

    >>> _square_matrix("K", [[1.0, float("nan")], [0.0, 1.0]])
    Traceback (most recent call last):
    ...
    ValueError: K contains a non-finite value nan at index (0, 1)
    """
    try:
        A = np.asarray(A, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a square matrix of real numbers, got {type(A).__name__}") from None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.size == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
        raise ValueError(f"{name} contains a non-finite value {float(A[bad])!r} at index {bad}")
    return A


def _condition_from_rcond(rcond: float) -> float:
    """``1 / rcond`` of a LAPACK reciprocal condition estimate (``inf`` for an exactly singular factor)."""
    return float("inf") if rcond == 0 else 1.0 / float(rcond)


def condition_number_symmetric(A: np.ndarray, name: str = "matrix") -> float:
    """``max |lambda| / min |lambda|`` of a symmetric matrix (``inf`` when singular).

    >>> condition_number_symmetric(np.diag([1.0, 4.0]))
    4.0
    """
    lam = np.abs(np.linalg.eigvalsh(_square_matrix(name, A)))
    lo, hi = float(lam.min()), float(lam.max())
    if hi == 0.0:
        return float("inf")
    return hi / lo if lo > 0 else float("inf")


def cholesky_factor(A: np.ndarray, *, name: str = "matrix",
                    assumption: str = "the matrix is positive definite",
                    max_condition: float = MAX_CONDITION) -> Tuple[tuple, float]:
    """Cholesky factor of a symmetric positive definite ``A`` and its condition number.

    The condition number is LAPACK's 1-norm estimate (``dpocon``), O(n^2) after the factorisation.
    A failed factorisation or ``cond > max_condition`` raises :class:`SingularSystemError`.
    Returns ``(factor, cond)``; solve with :func:`cholesky_apply`.
    """
    A = _square_matrix(name, A)
    try:
        c, lower = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise SingularSystemError(f"{name} is not positive definite", condition_number_symmetric(A),
                                  assumption) from None
    rcond, info = lapack.dpocon(c, _one_norm(A), uplo="L")
    return (c, lower), _checked_condition(name, rcond, info, max_condition, assumption)


def _one_norm(A: np.ndarray) -> float:
    """``||A||_1`` (largest absolute column sum), the norm LAPACK's condition estimators take."""
    return float(np.abs(A).sum(axis=0).max())


def _checked_condition(name: str, rcond: float, info: int, max_condition: float, assumption: str) -> float:
    """Condition number from LAPACK's reciprocal estimate; raise when it exceeds ``max_condition``."""
    cond = _condition_from_rcond(rcond)
    if info != 0 or not cond <= max_condition:
        raise SingularSystemError(f"{name} is numerically singular", cond, assumption)
    return cond


def cholesky_apply(factor: tuple, B: np.ndarray) -> np.ndarray:
    """``A^{-1} B`` from a :func:`cholesky_factor` factor."""
    return scipy.linalg.cho_solve(factor, B, check_finite=False)


def cholesky_solve(A: np.ndarray, B: np.ndarray, *, name: str = "matrix",
                   assumption: str = "the matrix is positive definite",
                   max_condition: float = MAX_CONDITION) -> np.ndarray:
    """Solve ``A X = B`` for symmetric positive definite ``A`` (Cholesky, then a condition check)."""
    factor, _ = cholesky_factor(A, name=name, assumption=assumption, max_condition=max_condition)
    return cholesky_apply(factor, B)


def lu_factor_checked(A: np.ndarray, *, name: str = "matrix", assumption: str = "the matrix is invertible",
                      max_condition: float = MAX_CONDITION) -> Tuple[tuple, float]:
    """LU factors of a general square ``A`` and LAPACK's 1-norm condition estimate (``dgecon``).

    Raises :class:`SingularSystemError` when ``cond > max_condition``.  Solve with
    ``scipy.linalg.lu_solve(factor, B)``.
    """
    A = _square_matrix(name, A)
    with warnings.catch_warnings():  # an exactly singular U is reported below, with its condition number
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        lu, piv = scipy.linalg.lu_factor(A, check_finite=False)
    rcond, info = lapack.dgecon(lu, _one_norm(A), norm="1")
    return (lu, piv), _checked_condition(name, rcond, info, max_condition, assumption)


def lu_solve_checked(A: np.ndarray, B: np.ndarray, *, name: str = "matrix",
                     assumption: str = "the matrix is invertible",
                     max_condition: float = MAX_CONDITION) -> np.ndarray:
    """Solve a general square system ``A X = B`` by LU with LAPACK's condition estimate (``dgecon``)."""
    factor, _ = lu_factor_checked(A, name=name, assumption=assumption, max_condition=max_condition)
    return scipy.linalg.lu_solve(factor, B, check_finite=False)


def psd_sqrt_and_inverse_sqrt(A: np.ndarray, *, name: str = "matrix",
                              assumption: str = "the matrix is positive definite",
                              max_condition: float = MAX_CONDITION) -> Tuple[np.ndarray, np.ndarray, float]:
    """``(A^{1/2}, A^{-1/2}, cond(A))`` of a symmetric positive definite matrix via ``eigh``.

    >>> S, Si, cond = psd_sqrt_and_inverse_sqrt(np.diag([4.0, 9.0]))
    >>> np.diag(S).tolist(), np.diag(Si).round(12).tolist(), cond
    ([2.0, 3.0], [0.5, 0.333333333333], 2.25)
    """
    A = _square_matrix(name, A)
    lam, V = np.linalg.eigh((A + A.T) / 2)
    hi = float(np.abs(lam).max()) if lam.size else 0.0
    lo = float(lam.min()) if lam.size else 0.0
    cond = float("inf") if lo <= 0 or hi == 0 else hi / lo
    if not cond <= max_condition:
        raise SingularSystemError(f"{name} is singular or not positive definite", cond, assumption)
    root = np.sqrt(lam)
    return (V * root) @ V.T, (V / root) @ V.T, cond


def symmetric_pinv(A: np.ndarray, rtol: Optional[float] = None, rank: Optional[int] = None,
                   name: str = "matrix") -> Tuple[np.ndarray, int]:
    """Moore-Penrose pseudo-inverse of a symmetric (possibly indefinite) matrix via ``eigh``.

    Eigenvalues with ``|lambda| <= rtol * max |lambda|`` (default :data:`PINV_RTOL`) are dropped;
    if the caller knows the exact ``rank`` it keeps the ``rank`` largest ``|lambda|`` instead.
    Returns ``(A^+, rank)``.

    >>> P, r = symmetric_pinv(np.array([[1.0, 1.0], [1.0, 1.0]]))
    >>> P.round(12).tolist(), r
    ([[0.25, 0.25], [0.25, 0.25]], 1)
    """
    A = _square_matrix(name, A)
    if rank is not None and not 0 <= rank <= A.shape[0]:
        raise ValueError(f"rank={rank!r} is not allowed: expected an integer in [0, {A.shape[0]}] for {name}")
    lam, V = np.linalg.eigh((A + A.T) / 2)
    mag = np.abs(lam)
    if rank is None:
        tol = (PINV_RTOL if rtol is None else float(rtol)) * (mag.max() if mag.size else 0.0)
        keep = mag > tol
    else:
        keep = np.zeros(lam.shape, dtype=bool)
        keep[np.argsort(mag)[::-1][:rank]] = True
    Vk = V[:, keep]
    return (Vk / lam[keep]) @ Vk.T, int(keep.sum())
