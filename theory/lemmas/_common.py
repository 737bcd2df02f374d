"""Shared pieces of :mod:`theory.lemmas`: rounding constants, :class:`NumericCheck`, generic symbolic
matrices, condition checks and pseudo-inverse utilities."""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import scipy.linalg
import sympy as sp

from theory.derivation import Derivation
from theory.tolerances import EPS, ILL_CONDITIONED
from theory.validation import check_matrix

__all__ = [
    "NumericCheck", "EPS", "ILL_CONDITIONED", "RANK_GAP", "penrose_symbolic", "damped_pseudo_inverse",
    "numerical_pinv", "penrose_residuals"
]

# Numeric checks refuse matrices whose condition number exceeds ILL_CONDITIONED (theory.tolerances):
# ``eps * 1e10 ~ 2e-6`` relative error per operation would leave too few digits for an identity check.

#: A numerical rank is accepted only if the smallest kept singular value exceeds the rank cutoff
#: ``max(shape) * eps * s_max`` by this factor (a clear gap between "zero" and "non-zero").
RANK_GAP = 1e3



# --------------------------------------------------------------------------------------------
# Numeric-check result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericCheck:
    """Outcome of a numeric lemma check on one instance.

    ``error`` is the relative error of the identity, ``tolerance = constant * eps * condition``.
    """

    lemma: str
    error: float
    tolerance: float
    condition: float
    constant: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def to_dict(self) -> dict:
        return {"lemma": self.lemma, "error": self.error, "tolerance": self.tolerance,
                "condition": self.condition, "constant": self.constant, "passed": self.passed}


# --------------------------------------------------------------------------------------------
# Small symbolic helpers
# --------------------------------------------------------------------------------------------
def _generic_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A rows x cols matrix of independent real symbols ``name_ij``."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def _generic_vector(name: str, n: int) -> sp.Matrix:
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}_{i}", real=True))


def _expands_to_zero(expr) -> bool:
    """Polynomial identity check: every entry expands to exactly 0."""
    if isinstance(expr, sp.MatrixBase):
        return all(sp.expand(e) == 0 for e in expr)
    return sp.expand(expr) == 0


def _cancels_to_zero(expr) -> bool:
    """Rational identity check: every entry, brought to one fraction and cancelled, is 0."""
    if isinstance(expr, sp.MatrixBase):
        return all(sp.cancel(sp.together(e)) == 0 for e in expr)
    return sp.cancel(sp.together(expr)) == 0


def _finish(d: Derivation, check: bool) -> Derivation:
    if check:
        d.check()
    return d


def _finite_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}={value!r} is not allowed: expected a finite real number")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number")
    return value


def _condition(M: np.ndarray) -> float:
    """2-norm condition number (``inf`` for an exactly singular matrix)."""
    s = np.linalg.svd(M, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def _require_conditioned(name: str, cond: float, what: str) -> None:
    if not cond <= ILL_CONDITIONED:
        raise ValueError(f"{name} is singular or ill-conditioned (condition number {cond:.3g} > "
                         f"{ILL_CONDITIONED:.0e}): {what}")


def _rel_fro(X: np.ndarray, Y: np.ndarray) -> float:
    """``||X - Y||_F / ||Y||_F``."""
    ref = np.linalg.norm(Y)
    if ref == 0:
        raise ValueError("the reference side of the identity is the zero matrix; a relative error is undefined")
    return float(np.linalg.norm(X - Y) / ref)




def penrose_symbolic(M: sp.Matrix, X: sp.Matrix, denominator=1) -> Tuple[int, int, int, int]:
    """For each Penrose condition of ``X / denominator`` as ``M^+``: 0 if it holds identically, else 1.

    With a ``denominator`` (a scalar polynomial) the conditions are checked with cleared
    denominators, ``M X M = d M``, ``X M X = d X``, ``(MX)^T = MX``, ``(XM)^T = XM``, as polynomial
    identities (fast); without, by rational cancellation.

    >>> penrose_symbolic(sp.Matrix([[1, 1]]), sp.Matrix([[1], [1]]), 2)
    (0, 0, 0, 0)
    """
    den = sp.sympify(denominator)
    MX, XM = M * X, X * M
    conditions = (MX * M - den * M, X * M * X - den * X, MX.T - MX, XM.T - XM)
    zero = _expands_to_zero if den != 1 else _cancels_to_zero
    return tuple(0 if zero(c) else 1 for c in conditions)


def damped_pseudo_inverse(J, rho) -> np.ndarray:
    """``(J^T J + rho I)^{-1} J^T`` in primal form (Cholesky of the P x P SPD matrix; ``rho > 0``).

    >>> damped_pseudo_inverse(np.array([[2.0, 0.0]]), 1e-9).round(6).tolist()
    [[0.5], [0.0]]
    """
    J = check_matrix("J", J)
    rho = _finite_real("rho", rho)
    if rho <= 0:
        raise ValueError(f"rho={rho} is not allowed: the damped inverse needs rho > 0")
    P = J.shape[1]
    return scipy.linalg.solve(J.T @ J + rho * np.eye(P), J.T, assume_a="pos")


def numerical_pinv(M) -> Tuple[np.ndarray, int, float]:
    """Moore-Penrose inverse by SVD with a *certified* numerical rank.

    Returns ``(M^+, rank, kappa)`` with ``kappa = s_max / s_min(kept)``.  Singular values below
    ``max(shape) * eps * s_max`` (the size of rounding in an exactly singular matrix) count as
    zero; if a kept one is within ``RANK_GAP`` of that cutoff the rank is ambiguous and a
    ``ValueError`` is raised instead of guessing.

    >>> X, r, k = numerical_pinv(np.array([[1.0, 1.0], [1.0, 1.0]]))
    >>> X.round(12).tolist(), r, k
    ([[0.25, 0.25], [0.25, 0.25]], 1, 1.0)
    """
    M = check_matrix("M", M)
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    if s[0] == 0:
        return np.zeros(M.T.shape), 0, 1.0
    cutoff = max(M.shape) * EPS * s[0]
    keep = s > cutoff
    rank = int(keep.sum())
    if s[rank - 1] < RANK_GAP * cutoff:
        raise ValueError(f"numerical rank of M is ambiguous: singular value {s[rank - 1]:.3g} is within "
                         f"{RANK_GAP:.0e} of the rounding cutoff {cutoff:.3g} (condition number "
                         f"{s[0] / s[rank - 1]:.3g})")
    X = (Vt[:rank].T / s[:rank]) @ U[:, :rank].T
    return X, rank, float(s[0] / s[rank - 1])


def penrose_residuals(M, X) -> Tuple[float, float, float, float]:
    """Relative residuals of the four Penrose conditions for a candidate ``X = M^+``.

    ``||MXM - M||/||M||``, ``||XMX - X||/||X||``, ``||(MX)^T - MX||/||MX||``, ``||(XM)^T - XM||/||XM||``.

    >>> penrose_residuals(np.array([[1.0, 2.0]]).T, np.array([[0.5, 0.25]]))[2] > 0.1
    True
    """
    M, X = np.asarray(M, float), np.asarray(X, float)
    MX, XM = M @ X, X @ M
    return (_rel_fro(MX @ M, M), _rel_fro(X @ M @ X, X), _rel_fro(MX.T, MX), _rel_fro(XM.T, XM))
