"""Pseudo-inverses of products (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix
from theory.lemmas._common import (
    EPS, NumericCheck, _generic_matrix, _generic_vector, _cancels_to_zero, _finish,
    _require_conditioned, _rel_fro, penrose_symbolic, numerical_pinv)

__all__ = [
    "pinv_product_lemma", "pinv_product_check", "triple_product_pinv_gap",
    "orthonormal_conjugation_pinv_check", "COUNTEREXAMPLE"
]


# --------------------------------------------------------------------------------------------
# 5. Pseudo-inverse of a product; counterexample; orthonormal conjugation
# --------------------------------------------------------------------------------------------
#: The counterexample to ``(A B C)^+ = C^+ B^+ A^+``: A full column rank, C full row rank,
#: B (2 x 1) not invertible.
COUNTEREXAMPLE = {
    "A": sp.Matrix([[1, 0], [0, 2]]),
    "B": sp.Matrix([[1], [1]]),
    "C": sp.Matrix([[1]]),
}


def _cayley_orthogonal(params: Sequence[sp.Symbol]) -> sp.Matrix:
    """Rational orthogonal 3 x 3 matrix ``(I - S)(I + S)^{-1}`` from a generic skew ``S``."""
    a, b, c = params
    S = sp.Matrix([[0, a, b], [-a, 0, c], [-b, -c, 0]])
    I3 = sp.eye(3)
    return ((I3 - S) * (I3 + S).adjugate() / (I3 + S).det()).applyfunc(sp.cancel)


def pinv_product_lemma(check: bool = True) -> Derivation:
    r"""``(A B)^+ = B^+ A^+`` for full column rank ``A`` and full row rank ``B``; counterexample; conjugation.

    1. Generic ``A`` (3 x 2) and ``B`` (2 x 3): ``A^+ = (A^TA)^{-1}A^T`` is a left inverse with
       ``A A^+`` symmetric; ``B^+ = B^T(BB^T)^{-1}`` a right inverse with ``B^+ B`` symmetric.
    2. With ``A^+ A = I = B B^+`` (non-commutative algebra, checked by substitution) the Penrose
       conditions of ``X = B^+ A^+`` for ``M = A B`` reduce to ``MXM = M``, ``XMX = X``,
       ``MX = A A^+``, ``XM = B^+ B`` -- symmetric by step 1.  The same reduction proves
       ``(ABC)^+ = C^+ B^{-1} A^+`` when the middle factor is invertible.
    3. Counterexample (exact rationals): ``A = diag(1, 2)``, ``B = [1, 1]^T``, ``C = [1]``: then
       ``(ABC)^+ = [1, 2]/5`` but ``C^+ B^+ A^+ = [1/2, 1/4]``, although ``A`` has full column rank and
       ``C`` full row rank -- the middle factor is not invertible.  Penrose condition 3 fails.
    4. Correct statement for the block-pattern algebra: ``(U^T M U)^+ = U^T M^+ U`` whenever ``U``
       has orthonormal rows (``U U^T = I``): proved for any ``M`` by non-commutative reduction
       (``U U^T -> I`` and the Penrose rules of ``M^+``, transposes handled factor by factor), then
       checked on an exact rational ``U`` (2 rows of a Cayley orthogonal matrix) with a generic
       rank-one ``M``.

    >>> pinv_product_lemma().verified
    True
    """
    A, B = _generic_matrix("a", 3, 2), _generic_matrix("b", 2, 3)
    AtA, BBt = A.T * A, B * B.T
    Ap = AtA.adjugate() * A.T / AtA.det()
    Bp = B.T * BBt.adjugate() / BBt.det()
    d = Derivation(
        "Pseudo-inverse of a product",
        r"(AB)^+ = B^+A^+ \text{ (A full column rank, B full row rank)};\quad (U^TMU)^+ = U^TM^+U \text{ if } UU^T = I",
        [r"$A \in \mathbb{R}^{m\times r}$ rank $r$, $B \in \mathbb{R}^{r\times n}$ rank $r$",
         r"false in general for three factors with a non-invertible middle factor (counterexample below)"],
    )
    d.add_step("left inverse", r"A^+A", r"I_r", r"$A^+ = (A^TA)^{-1}A^T$, generic $3\times 2$ $A$",
               checker=lambda: _cancels_to_zero(Ap * A - sp.eye(2)))
    d.add_step("right inverse", r"BB^+", r"I_r", r"$B^+ = B^T(BB^T)^{-1}$, generic $2\times 3$ $B$",
               checker=lambda: _cancels_to_zero(B * Bp - sp.eye(2)))
    d.add_step("symmetric projectors", r"(AA^+)^T,\ (B^+B)^T", r"AA^+,\ B^+B",
               r"orthogonal projectors onto $\operatorname{range}(A)$, $\operatorname{range}(B^T)$",
               checker=lambda: _cancels_to_zero((A * Ap).T - A * Ap) and _cancels_to_zero((Bp * B).T - Bp * B))

    a_, b_, ap_, bp_ = sp.symbols("A B A^+ B^+", commutative=False)

    def reduce(expr):
        expr = sp.expand(expr)
        for _ in range(4):
            expr = sp.expand(expr.subs({ap_ * a_: 1, b_ * bp_: 1}))
        return expr

    M_, X_ = a_ * b_, bp_ * ap_
    d.add_step("Penrose 1 (non-commutative reduction)", r"(AB)(B^+A^+)(AB)", r"AB", r"uses $A^+A = I$ and $BB^+ = I$",
               checker=lambda: reduce(M_ * X_ * M_) - M_ == 0)
    d.add_step("Penrose 2 (non-commutative reduction)", r"(B^+A^+)(AB)(B^+A^+)", r"B^+A^+", r"uses $A^+A = I$ and $BB^+ = I$",
               checker=lambda: reduce(X_ * M_ * X_) - X_ == 0)
    d.add_step("Penrose 3 and 4", r"(AB)(B^+A^+),\ (B^+A^+)(AB)", r"AA^+,\ B^+B",
               r"symmetric by the projector step, so $X = B^+A^+ = (AB)^+$ by uniqueness",
               checker=lambda: reduce(M_ * X_) - a_ * ap_ == 0 and reduce(X_ * M_) - bp_ * b_ == 0)

    # three factors: with an invertible middle factor the same reduction goes through
    c_, cp_, binv_ = sp.symbols("C C^+ B^{-1}", commutative=False)
    triple_rules = {ap_ * a_: 1, b_ * binv_: 1, binv_ * b_: 1, c_ * cp_: 1}

    def triple_reduce(expr):
        expr = sp.expand(expr)
        for _ in range(6):
            expr = sp.expand(expr.subs(triple_rules))
        return expr

    M3, X3 = a_ * b_ * c_, cp_ * binv_ * ap_
    d.add_step("three factors, invertible middle", r"(ABC)^+", r"C^+B^{-1}A^+",
               r"Penrose 1, 2 reduce to identities and $MX = AA^+$, $XM = C^+C$ (symmetric projectors) when "
               r"$A^+A = I$, $CC^+ = I$ and $B$ is invertible",
               checker=lambda: triple_reduce(M3 * X3 * M3) - M3 == 0 and triple_reduce(X3 * M3 * X3) - X3 == 0
               and triple_reduce(M3 * X3) - a_ * ap_ == 0 and triple_reduce(X3 * M3) - cp_ * c_ == 0)

    Ac, Bc, Cc = COUNTEREXAMPLE["A"], COUNTEREXAMPLE["B"], COUNTEREXAMPLE["C"]
    true_pinv = (Ac * Bc * Cc).pinv()
    naive = Cc.pinv() * Bc.pinv() * Ac.pinv()
    d.add_step("counterexample: hypotheses", r"\operatorname{rank}A,\ \operatorname{rank}C,\ B\ \text{square?}",
               r"2 = \#\text{cols}(A),\ 1 = \#\text{rows}(C),\ B \in \mathbb{R}^{2\times 1}\ \text{not invertible}",
               "A full column rank, C full row rank, middle factor singular (not square)",
               checker=lambda: Ac.rank() == Ac.cols and Cc.rank() == Cc.rows and not Bc.is_square)
    d.add_step("counterexample: the true pseudo-inverse", r"(ABC)^+", sp.latex(true_pinv), "exact rational pseudo-inverse",
               checker=lambda: max(penrose_symbolic(Ac * Bc * Cc, true_pinv)) == 0
               and true_pinv == sp.Matrix([[sp.Rational(1, 5), sp.Rational(2, 5)]]))
    d.add_step("counterexample: the reversed product differs", r"C^+B^+A^+ - (ABC)^+", sp.latex(naive - true_pinv),
               r"non-zero, and Penrose condition 3 fails for $C^+B^+A^+$: the product rule is false here",
               checker=lambda: (naive - true_pinv) != sp.zeros(1, 2)
               and penrose_symbolic(Ac * Bc * Cc, naive)[2] == 1)

    # abstract proof: non-commutative symbols with U U^T = I and the Penrose conditions of M^+
    u_, ut_, m_, mp_, mt_, mpt_ = sp.symbols("U U^T M M^+ M^T M^{+T}", commutative=False)
    rules = {u_ * ut_: 1, m_ * mp_ * m_: m_, mp_ * m_ * mp_: mp_, mpt_ * mt_: m_ * mp_, mt_ * mpt_: mp_ * m_}
    swap = {u_: ut_, ut_: u_, m_: mt_, mt_: m_, mp_: mpt_, mpt_: mp_}

    def nc_reduce(expr):
        expr = sp.expand(expr)
        for _ in range(6):
            expr = sp.expand(expr.subs(rules))
        return expr

    def nc_transpose(expr):
        # transpose of a product of matrix symbols: reverse the factors, transpose each
        factors = sp.Mul.make_args(expr)
        return sp.Mul(*[swap[f] for f in reversed(factors)])

    Mc_, Xc_ = ut_ * m_ * u_, ut_ * mp_ * u_

    def conjugation_abstract() -> bool:
        p1 = nc_reduce(Mc_ * Xc_ * Mc_) - Mc_ == 0
        p2 = nc_reduce(Xc_ * Mc_ * Xc_) - Xc_ == 0
        mx, xm = nc_reduce(Mc_ * Xc_), nc_reduce(Xc_ * Mc_)
        p3 = nc_reduce(nc_transpose(mx)) - mx == 0
        p4 = nc_reduce(nc_transpose(xm)) - xm == 0
        return p1 and p2 and p3 and p4

    d.add_step("conjugation rule (non-commutative reduction)", r"(U^TMU)^+", r"U^TM^+U",
               r"$UU^T = I$ collapses every product to the Penrose conditions of $M^+$ (any $M$, any $k \le n$)",
               checker=conjugation_abstract)
    Q = _cayley_orthogonal((sp.Rational(1, 2), sp.Rational(1, 3), sp.Rational(-2, 5)))
    U = Q[:2, :]
    x, y = _generic_vector("x", 2), _generic_vector("y", 2)
    Mr = x * y.T
    Mp_num, Mp_den = y * x.T, (x.T * x)[0] * (y.T * y)[0]
    d.add_step("orthonormal rows (instance)", r"UU^T", r"I_2",
               "U = first two rows of the (exact rational) Cayley transform of a skew matrix",
               checker=lambda: _cancels_to_zero(U * U.T - sp.eye(2)))
    d.add_step("conjugation rule (instance)", r"(U^TMU)^+", r"U^TM^+U",
               r"all four Penrose conditions, identically in the entries of a generic rank-one $M = xy^T$",
               checker=lambda: max(penrose_symbolic(U.T * Mr * U, U.T * Mp_num * U, Mp_den)) == 0)
    d.conclusion = {"counterexample_true": true_pinv, "counterexample_naive": naive}
    return _finish(d, check)


def _full_rank(name: str, M: np.ndarray, kind: str) -> float:
    _, rank, kappa = numerical_pinv(M)
    need = M.shape[1] if kind == "column" else M.shape[0]
    if rank < need:
        raise ValueError(f"{name} (shape {M.shape}) has rank {rank}: full {kind} rank {need} is required")
    return kappa


def pinv_product_check(A, B) -> NumericCheck:
    """``pinv(A B)`` against ``pinv(B) pinv(A)`` for full column rank ``A`` and full row rank ``B``.

    Tolerance ``c * eps * kappa(A) kappa(B)`` (``>= kappa(A B)``), ``c = 6 n`` with ``n`` the largest
    dimension, for the same reasons as :func:`kronecker_pinv_check` (SVD backward error ``<= n u``,
    Wedin constant ``<= 2``, two sides).

    >>> rng = np.random.default_rng(5)
    >>> pinv_product_check(rng.standard_normal((8, 3)), rng.standard_normal((3, 6))).passed
    True
    """
    A, B = check_matrix("A", A), check_matrix("B", B)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A {A.shape} and B {B.shape} cannot be multiplied")
    cond = _full_rank("A", A, "column") * _full_rank("B", B, "row")
    _require_conditioned("A B", cond, "a factor is nearly rank deficient")
    XAB, _, _ = numerical_pinv(A @ B)
    XA, _, _ = numerical_pinv(A)
    XB, _, _ = numerical_pinv(B)
    c = 6.0 * max(A.shape[0], A.shape[1], B.shape[1])
    return NumericCheck("pseudo-inverse of a product", _rel_fro(XAB, XB @ XA), c * EPS * cond, cond, c)


def triple_product_pinv_gap(A, B, C) -> float:
    """``||(ABC)^+ - C^+ B^+ A^+||_F / ||(ABC)^+||_F`` (zero when B is invertible and the outer factors
    have full column / row rank; generically O(1) when B is not invertible).

    >>> M = {k: np.array(v, dtype=float) for k, v in COUNTEREXAMPLE.items()}
    >>> round(triple_product_pinv_gap(M["A"], M["B"], M["C"]), 6)   # |[1/2, 1/4] - [1/5, 2/5]| / |[1/5, 2/5]|
    0.75
    """
    A, B, C = check_matrix("A", A), check_matrix("B", B), check_matrix("C", C)
    if A.shape[1] != B.shape[0] or B.shape[1] != C.shape[0]:
        raise ValueError(f"A {A.shape}, B {B.shape}, C {C.shape} cannot be multiplied")
    X, _, _ = numerical_pinv(A @ B @ C)
    naive = numerical_pinv(C)[0] @ numerical_pinv(B)[0] @ numerical_pinv(A)[0]
    return _rel_fro(naive, X)


def orthonormal_conjugation_pinv_check(U, M) -> NumericCheck:
    """``pinv(U^T M U)`` against ``U^T pinv(M) U`` for ``U`` (k x n) with orthonormal rows.

    ``U U^T = I`` is itself checked to ``100 k eps``.  Tolerance ``c * eps * kappa_+(M)`` with
    ``c = 6 n`` (``U^T M U`` has the non-zero singular values of ``M``; SVD backward error and Wedin
    constant as in :func:`kronecker_pinv_check`).

    >>> rng = np.random.default_rng(6)
    >>> U = np.linalg.qr(rng.standard_normal((7, 3)))[0].T
    >>> orthonormal_conjugation_pinv_check(U, rng.standard_normal((3, 3))).passed
    True
    """
    U, M = check_matrix("U", U), check_matrix("M", M)
    k, n = U.shape
    if M.shape != (k, k):
        raise ValueError(f"M has shape {M.shape}; it must be {k} x {k} to match U {U.shape}")
    dev = float(np.max(np.abs(U @ U.T - np.eye(k))))
    if dev > 100 * k * EPS:
        raise ValueError(f"U does not have orthonormal rows: max |U U^T - I| = {dev:.3g}")
    X, _, _ = numerical_pinv(U.T @ M @ U)
    XM, _, kappa = numerical_pinv(M)
    _require_conditioned("M", kappa, "M is nearly rank deficient")
    c = 6.0 * n
    return NumericCheck("orthonormal conjugation pseudo-inverse", _rel_fro(X, U.T @ XM @ U), c * EPS * kappa, kappa, c)
