"""Kronecker pseudo-inverse (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix
from theory.lemmas._common import (
    EPS, NumericCheck, _generic_matrix, _generic_vector, _expands_to_zero, _finish,
    _require_conditioned, _rel_fro, penrose_symbolic, numerical_pinv)

__all__ = ["kronecker_pinv_lemma", "kronecker_pinv_check", "kronecker_quadratic_form_check"]


# --------------------------------------------------------------------------------------------
# 3. Kronecker pseudo-inverse and quadratic form
# --------------------------------------------------------------------------------------------
def kronecker_pinv_lemma(check: bool = True) -> Derivation:
    r"""``(B (x) A)^+ = B^+ (x) A^+`` and ``(u (x) v)^T (B (x) A)(u' (x) v') = (u^T B u')(v^T A v')``.

    Proof: the mixed-product rule ``(P (x) Q)(R (x) S) = PR (x) QS`` and ``(P (x) Q)^T = P^T (x) Q^T``
    (both checked on generic matrices) reduce each Penrose condition of ``B^+ (x) A^+`` to the
    Kronecker product of the factors' conditions.  Checked end to end on *generic rank-deficient*
    factors ``B = b c^T`` (2 x 2, rank 1) and ``A = a e^T`` (3 x 2, rank 1), whose pseudo-inverses
    are ``(x y^T)^+ = y x^T / (|x|^2 |y|^2)``.  Corollary (K-FAC): for rows ``kron(delta_n, z_n)``,
    ``J (B (x) A) J^T = (Delta B Delta^T) o (Z A Z^T)``, checked on generic factors.

    >>> kronecker_pinv_lemma().verified
    True
    """
    kron = sp.kronecker_product
    P, Q, R, S = (_generic_matrix(n, 2, 2) for n in ("p", "q", "r", "s"))
    d = Derivation(
        "Kronecker pseudo-inverse and quadratic form",
        r"(B\otimes A)^+ = B^+\otimes A^+,\qquad (u\otimes v)^T(B\otimes A)(u'\otimes v') = (u^TBu')(v^TAv')",
        [r"any real $A$, $B$ (no rank condition)",
         r"$\otimes$ is numpy's kron: block $(i,j)$ of $B\otimes A$ is $B_{ij}A$"],
    )
    d.add_step("mixed-product rule", r"(P\otimes Q)(R\otimes S)", r"(PR)\otimes(QS)", "generic 2 x 2 factors",
               checker=lambda: _expands_to_zero(kron(P, Q) * kron(R, S) - kron(P * R, Q * S)))
    d.add_step("transpose rule", r"(P\otimes Q)^T", r"P^T\otimes Q^T", "generic 2 x 2 factors",
               checker=lambda: _expands_to_zero(kron(P, Q).T - kron(P.T, Q.T)))

    b, c = _generic_vector("b", 2), _generic_vector("c", 2)
    a, e = _generic_vector("a", 3), _generic_vector("e", 2)
    B, A = b * c.T, a * e.T
    den_b, den_a = (b.T * b)[0] * (c.T * c)[0], (a.T * a)[0] * (e.T * e)[0]
    Bp_num, Ap_num = c * b.T, e * a.T  # (x y^T)^+ = y x^T / (|x|^2 |y|^2), denominators cleared
    d.add_step("factor pseudo-inverses", r"(xy^T)^+", r"\frac{y x^T}{\|x\|^2\|y\|^2}",
               r"Penrose conditions hold for $B = bc^T$ and $A = ae^T$ (generic, rank 1)",
               checker=lambda: max(penrose_symbolic(B, Bp_num, den_b)) == 0
               and max(penrose_symbolic(A, Ap_num, den_a)) == 0)
    d.add_step("Penrose conditions for the Kronecker product of pseudo-inverses", r"(B\otimes A)^+", r"B^+\otimes A^+",
               "all four conditions for the 6 x 4 rank-one Kronecker product, identically in the 9 symbols",
               checker=lambda: max(penrose_symbolic(kron(B, A), kron(Bp_num, Ap_num), den_b * den_a)) == 0)

    Bg, Ag = _generic_matrix("B", 2, 2), _generic_matrix("A", 3, 3)
    u, u2, v, v2 = _generic_vector("u", 2), _generic_vector("w", 2), _generic_vector("v", 3), _generic_vector("z", 3)
    d.add_step("Kronecker quadratic form", r"(u\otimes v)^T(B\otimes A)(u'\otimes v')", r"(u^TBu')(v^TAv')",
               "generic B (2 x 2), A (3 x 3) and vectors",
               checker=lambda: _expands_to_zero(kron(u, v).T * kron(Bg, Ag) * kron(u2, v2)
                                                - (u.T * Bg * u2) * (v.T * Ag * v2)))

    Delta, Z = _generic_matrix("delta", 2, 2), _generic_matrix("zeta", 2, 3)  # rows delta_n, z_n

    def hadamard_corollary() -> bool:
        Jrows = sp.Matrix.vstack(*[kron(Delta[i, :], Z[i, :]) for i in range(2)])
        return _expands_to_zero(Jrows * kron(Bg, Ag) * Jrows.T
                                - (Delta * Bg * Delta.T).multiply_elementwise(Z * Ag * Z.T))

    d.add_step("Hadamard corollary (K-FAC kernel)", r"J(B\otimes A)J^T", r"(\Delta B\Delta^T)\circ(Z A Z^T)",
               r"rows of $J$ are $\delta_n\otimes z_n$; entrywise the quadratic form above", checker=hadamard_corollary)
    return _finish(d, check)


def kronecker_pinv_check(B, A) -> NumericCheck:
    """``pinv(B (x) A)`` (SVD of the big matrix) against ``pinv(B) (x) pinv(A)``.

    Tolerance ``c * eps * kappa_+(B) kappa_+(A)`` (``kappa_+`` over the non-zero singular values;
    the Kronecker product's is their product) with ``c = 6 n``, ``n`` the largest dimension of
    ``B (x) A``: the SVD's backward error is ``<= n u ||M||`` to first order and Wedin's
    rank-preserving perturbation bound for the pseudo-inverse has constant ``<= 2`` (x kappa),
    the smaller errors of the factor side adding at most as much again.

    >>> rng = np.random.default_rng(2)
    >>> kronecker_pinv_check(rng.standard_normal((4, 3)), rng.standard_normal((5, 2))).passed
    True
    """
    B = check_matrix("B", B)
    A = check_matrix("A", A)
    big = np.kron(B, A)
    Xbig, _, kappa_big = numerical_pinv(big)
    XB, _, kappa_b = numerical_pinv(B)
    XA, _, kappa_a = numerical_pinv(A)
    cond = kappa_b * kappa_a
    _require_conditioned("B (x) A", cond, "a factor is nearly rank deficient")
    c = 6.0 * max(big.shape)
    return NumericCheck("Kronecker pseudo-inverse", _rel_fro(Xbig, np.kron(XB, XA)), c * EPS * cond, cond, c)


def kronecker_quadratic_form_check(B, A, u, u2, v, v2) -> NumericCheck:
    """``(u (x) v)^T (B (x) A)(u2 (x) v2)`` vs ``(u^T B u2)(v^T A v2)``.

    Error relative to ``S = (|u|^T |B| |u2|)(|v|^T |A| |v2|)`` (the sum of absolute terms): every
    evaluation is a sum of products of ``k <= (m n)^2 + 2`` terms, so the error is at most
    ``gamma_k S`` (Higham eq. 3.5); we use ``c = 2 (m n)^2`` for both sides, condition = S/|value|.

    >>> rng = np.random.default_rng(3)
    >>> B, A = rng.standard_normal((3, 3)), rng.standard_normal((4, 4))
    >>> kronecker_quadratic_form_check(B, A, *rng.standard_normal((2, 3)), *rng.standard_normal((2, 4))).passed
    True
    """
    B, A = check_matrix("B", B), check_matrix("A", A)
    u, u2, v, v2 = (np.asarray(x, float).ravel() for x in (u, u2, v, v2))
    if B.shape != (u.size, u2.size) or A.shape != (v.size, v2.size):
        raise ValueError(f"shapes do not match: B {B.shape} with u ({u.size}), u2 ({u2.size}); "
                         f"A {A.shape} with v ({v.size}), v2 ({v2.size})")
    big = np.kron(u, v) @ np.kron(B, A) @ np.kron(u2, v2)
    small = (u @ B @ u2) * (v @ A @ v2)
    scale = (np.abs(u) @ np.abs(B) @ np.abs(u2)) * (np.abs(v) @ np.abs(A) @ np.abs(v2))
    c = 2.0 * (B.size * A.size)
    err = abs(big - small) / scale if scale > 0 else 0.0
    cond = scale / abs(small) if small != 0 else float("inf")
    # error is normalised by the absolute-value sum, so the tolerance is c * eps (condition reported)
    return NumericCheck("Kronecker quadratic form", float(err), c * EPS, float(cond), c)
