"""Khatri-Rao Gram identity (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix, check_positive_int

from theory.lemmas._common import (
    EPS, NumericCheck, _generic_matrix, _generic_vector, _expands_to_zero, _finish)

__all__ = ["khatri_rao_gram_lemma", "khatri_rao_gram", "khatri_rao_gram_check", "explicit_layer_jacobian"]


# --------------------------------------------------------------------------------------------
# 4. Khatri-Rao Gram identity
# --------------------------------------------------------------------------------------------
def khatri_rao_gram_lemma(n_samples: int = 2, n_outputs: int = 2, width: int = 3, fan_in: int = 2,
                          check: bool = True) -> Derivation:
    r"""``J_l J_l^T = (Delta Delta^T) o (Z Z^T (x) 1_C 1_C^T)`` for rows ``kron(delta_{n,c}, z_n)``.

    Rows ordered sample-major ``(n, c)``; ``Delta`` is the ``(N C) x M`` matrix of backward signals,
    ``Z`` the ``N x M_in`` layer inputs.  Checked as a polynomial identity on generic ``Delta``
    (N x C x M symbols) and ``Z``.

    >>> khatri_rao_gram_lemma().verified
    True
    """
    N = check_positive_int("n_samples", n_samples)
    C = check_positive_int("n_outputs", n_outputs)
    M = check_positive_int("width", width)
    Mi = check_positive_int("fan_in", fan_in)
    deltas = [[_generic_vector(f"delta{n}{c}", M).T for c in range(C)] for n in range(N)]
    Z = _generic_matrix("z", N, Mi)
    J = sp.Matrix.vstack(*[sp.kronecker_product(deltas[n][c], Z[n, :]) for n in range(N) for c in range(C)])
    Delta = sp.Matrix.vstack(*[deltas[n][c] for n in range(N) for c in range(C)])
    ones = sp.ones(C, C)
    d = Derivation(
        "Khatri-Rao Gram identity",
        r"J_l J_l^T = (\Delta_l\Delta_l^T)\circ(Z_lZ_l^T\otimes 1_C1_C^T)",
        [r"row $(n,c)$ of $J_l$ is $\delta_{n,c}\otimes z_n$ (sample-major), $\delta_{n,c} = \partial f_c(x_n)/\partial u_l$",
         rf"checked generically for N={N}, C={C}, M={M}, fan-in {Mi}"],
    )
    d.add_step("row inner products", r"(\delta\otimes z)^T(\delta'\otimes z')", r"(\delta^T\delta')(z^Tz')",
               "mixed-product rule for 1-row Kronecker products",
               checker=lambda: _expands_to_zero(
                   sp.kronecker_product(deltas[0][0], Z[0, :]) * sp.kronecker_product(deltas[-1][-1], Z[-1, :]).T
                   - (deltas[0][0] * deltas[-1][-1].T) * (Z[0, :] * Z[-1, :].T)))
    d.add_step("Gram as a Hadamard product", r"J_lJ_l^T", r"(\Delta\Delta^T)\circ(ZZ^T\otimes 1_C1_C^T)",
               r"entry $((n,c),(m,c'))$ is $(\delta_{n,c}\cdot\delta_{m,c'})(z_n\cdot z_m)$; "
               r"the Kronecker factor $1_C1_C^T$ repeats $z_n\cdot z_m$ over $(c,c')$",
               checker=lambda: _expands_to_zero(
                   J * J.T - (Delta * Delta.T).multiply_elementwise(sp.kronecker_product(Z * Z.T, ones))))
    return _finish(d, check)


def explicit_layer_jacobian(Delta, Z) -> np.ndarray:
    """Dense ``J_l`` with row ``(n, c) = kron(Delta[n, c, :], Z[n, :])`` (reference path; small sizes).

    >>> explicit_layer_jacobian(np.ones((1, 2, 1)), np.array([[1.0, 2.0]])).tolist()
    [[1.0, 2.0], [1.0, 2.0]]
    """
    Delta, Z = _check_factors(Delta, Z)
    N, C, M = Delta.shape
    return np.einsum("ncm,nk->ncmk", Delta, Z).reshape(N * C, M * Z.shape[1])


def khatri_rao_gram(Delta, Z) -> np.ndarray:
    """``J_l J_l^T`` without forming ``J_l``: ``(Delta Delta^T) o (Z Z^T (x) 1_C 1_C^T)`` by two GEMMs.

    >>> khatri_rao_gram(np.ones((1, 2, 1)), np.array([[1.0, 2.0]])).tolist()
    [[5.0, 5.0], [5.0, 5.0]]
    """
    Delta, Z = _check_factors(Delta, Z)
    N, C, M = Delta.shape
    D2 = Delta.reshape(N * C, M)
    ZZ = Z @ Z.T
    return (D2 @ D2.T) * np.repeat(np.repeat(ZZ, C, axis=0), C, axis=1)


def _check_factors(Delta, Z) -> Tuple[np.ndarray, np.ndarray]:
    Delta = np.asarray(Delta, dtype=np.float64)
    if Delta.ndim != 3:
        raise ValueError(f"Delta must have shape (N, C, M), got shape {Delta.shape}")
    Z = check_matrix("Z", Z)
    if Z.shape[0] != Delta.shape[0]:
        raise ValueError(f"Z has {Z.shape[0]} rows but Delta has N={Delta.shape[0]} samples")
    if not np.all(np.isfinite(Delta)):
        raise ValueError("Delta contains a non-finite value")
    return Delta, Z


def khatri_rao_gram_check(Delta, Z) -> NumericCheck:
    """Explicit ``J J^T`` against :func:`khatri_rao_gram`, entrywise.

    Entry ``(i, j)`` error is normalised by ``||J_i|| ||J_j|| = |delta_i||delta_j||z_i||z_j|``.  By the
    rigorous dot-product bound ``|fl(x.y) - x.y| <= gamma_k |x|.|y| <= gamma_k ||x|| ||y||`` (Higham
    eq. 3.5, any summation order), the explicit side errs by ``gamma_{M M_in}``, the Khatri-Rao side
    by ``gamma_M + gamma_{M_in} + 2u``; so ``c = M M_in + M + M_in + 2`` is a worst-case bound, and
    the reported condition is the largest ``||J_i|| ||J_j|| / |(J J^T)_ij|`` (cancellation).

    >>> rng = np.random.default_rng(4)
    >>> khatri_rao_gram_check(rng.standard_normal((3, 2, 5)), rng.standard_normal((3, 4))).passed
    True
    """
    Delta, Z = _check_factors(Delta, Z)
    N, C, M = Delta.shape
    J = explicit_layer_jacobian(Delta, Z)
    explicit = J @ J.T
    fast = khatri_rao_gram(Delta, Z)
    norms = np.linalg.norm(J, axis=1)
    scale = np.outer(norms, norms)
    if np.any(scale == 0):
        scale = np.where(scale == 0, 1.0, scale)
    err = float(np.max(np.abs(explicit - fast) / scale))
    with np.errstate(divide="ignore"):
        cond = float(np.max(scale / np.abs(explicit)))
    c = float(M * Z.shape[1] + M + Z.shape[1] + 2)
    return NumericCheck("Khatri-Rao Gram", err, c * EPS, cond, c)
