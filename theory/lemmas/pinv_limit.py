"""Pseudo-inverse as the damping limit (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.linalg
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix, check_positive_int

from theory.lemmas._common import (
    EPS, NumericCheck, _generic_matrix, _generic_vector, _expands_to_zero, _cancels_to_zero,
    _finish, _require_conditioned, _rel_fro, penrose_symbolic, damped_pseudo_inverse, numerical_pinv)

__all__ = ["pinv_limit_lemma", "pinv_limit_errors", "pinv_limit_first_order", "right_inverse_check"]


# --------------------------------------------------------------------------------------------
# 2. Pseudo-inverse limit
# --------------------------------------------------------------------------------------------
def pinv_limit_lemma(rows: int = 2, cols: int = 3, check: bool = True) -> Derivation:
    r"""``lim_{rho->0+} (J^T J + rho I)^{-1} J^T = J^+``.

    Full row rank (generic ``J`` of size rows x cols, rows < cols), with ``K = J J^T``:

    1. ``det(J^T J + rho I_P) = rho^{P-N} det(K + rho I_N)`` (Sylvester), so the primal form is a
       rational function of rho with denominator ``rho^{P-N} det(K + rho I)``;
    2. its numerator ``adj(J^T J + rho I) J^T`` is divisible by ``rho^{P-N}`` and the quotient at
       ``rho = 0`` equals ``J^T adj(K)`` -- hence the limit is ``J^T adj(K)/det K = J^T K^{-1}``
       whenever ``det K != 0`` (full row rank);
    3. ``J^T K^{-1}`` satisfies the four Penrose conditions, so it *is* ``J^+``;
    4. first-order term: ``(J^T J + rho I)^{-1} J^T - J^+ = -rho J^T K^{-2} + O(rho^2)`` (error ~ rho).

    Any rank (SVD ``J = U S V^T``): the limit acts on each singular value as ``s/(s^2 + rho)``,
    whose limit is ``1/s`` for ``s > 0`` and ``0`` for ``s = 0``: exactly ``J^+``.  Checked with
    ``sympy.limit`` and on a generic rank-one ``J = x y^T``.

    >>> pinv_limit_lemma().verified
    True
    """
    rows = check_positive_int("rows", rows)
    cols = check_positive_int("cols", cols)
    if rows >= cols:
        raise ValueError(f"rows={rows} must be < cols={cols}: the lemma is about wide (full row rank) J")
    rho = sp.Symbol("rho", positive=True)
    J = _generic_matrix("j", rows, cols)
    K = J * J.T
    gap = cols - rows
    primal = J.T * J + rho * sp.eye(cols)
    d = Derivation(
        "Pseudo-inverse as the damping limit",
        r"\lim_{\rho\to 0^+} (J^TJ + \rho I)^{-1} J^T = J^+ = J^T (JJ^T)^{-1}",
        [rf"$J \in \mathbb{{R}}^{{{rows}\times {cols}}}$ generic; the closed form $J^T(JJ^T)^{{-1}}$ needs full row rank "
         r"($\det JJ^T \ne 0$)",
         r"for rank-deficient $J$ the limit is the Moore-Penrose $J^+$ (SVD argument)"],
    )
    d.add_step("Sylvester determinant identity", r"\det(J^TJ + \rho I_P)", rf"\rho^{{{gap}}}\det(JJ^T + \rho I_N)",
               "denominator of the primal form",
               checker=lambda: _expands_to_zero(primal.det(method="berkowitz")
                                                - rho ** gap * (K + rho * sp.eye(rows)).det(method="berkowitz")))

    numerator = primal.adjugate(method="berkowitz") * J.T

    def rho_coefficient(entry, power):
        """Coefficient of rho**power in a polynomial entry (0 beyond its degree)."""
        return sp.expand(entry).coeff(rho, power) if power > 0 else sp.expand(entry).subs(rho, 0)

    def numerator_divisible() -> bool:
        # every entry, as a polynomial in rho, has zero coefficients of rho^0 .. rho^(gap-1)
        return all(sp.expand(rho_coefficient(e, pw)) == 0 for e in numerator for pw in range(gap))

    def limit_numerator() -> bool:
        # after dividing by rho^gap, the value at rho = 0 is the coefficient of rho^gap
        quotient_at_zero = numerator.applyfunc(lambda e: rho_coefficient(e, gap))
        return _expands_to_zero(quotient_at_zero - J.T * K.adjugate(method="berkowitz"))

    d.add_step("numerator vanishes to order rho to the P-N", rf"\operatorname{{adj}}(J^TJ + \rho I)J^T", rf"O(\rho^{{{gap}}})",
               r"coefficients of $\rho^0, \dots, \rho^{P-N-1}$ are identically zero", checker=numerator_divisible)
    d.add_step("limit of the quotient", rf"\left[\rho^{{-{gap}}}\operatorname{{adj}}(J^TJ + \rho I)J^T\right]_{{\rho=0}}",
               r"J^T \operatorname{adj}(JJ^T)",
               r"so the limit is $J^T\operatorname{adj}(K)/\det K = J^TK^{-1}$ when $\det K \ne 0$", checker=limit_numerator)

    right_inverse = J.T * K.adjugate(method="berkowitz") / K.det(method="berkowitz")
    d.add_step("Penrose conditions for the right inverse", r"J X J,\ X J X,\ (JX)^T,\ (XJ)^T", r"J,\ X,\ JX,\ XJ",
               r"$JX = I_N$ (so 1 and 3 hold); $XJ = J^TK^{-1}J$ is symmetric; $XJX = X$",
               checker=lambda: (_cancels_to_zero(J * right_inverse - sp.eye(rows))
                                and _cancels_to_zero((right_inverse * J).T - right_inverse * J)))

    def first_order() -> bool:
        # via the push-through form J^T (K + rho I)^{-1}: derivative at rho = 0 is -J^T K^{-2}
        damped = J.T * (K + rho * sp.eye(rows)).adjugate() / (K + rho * sp.eye(rows)).det()
        derivative = damped.diff(rho).subs(rho, 0)
        return _cancels_to_zero(derivative + right_inverse * (K.adjugate() / K.det()))

    d.add_step("first-order term", r"\frac{d}{d\rho}(J^TJ + \rho I)^{-1}J^T\big|_{\rho=0}", r"-J^T (JJ^T)^{-2}",
               r"the error to $J^+$ is linear in $\rho$ (slope 1 on log-log axes)", checker=first_order)

    s = sp.Symbol("s", positive=True)
    d.add_step("singular-value limit, s > 0", r"\lim_{\rho\to0^+} \frac{s}{s^2 + \rho}", r"\frac{1}{s}",
               r"with $J = USV^T$, $(J^TJ + \rho I)^{-1}J^T = V\operatorname{diag}(s/(s^2+\rho))U^T$",
               checker=lambda: sp.limit(s / (s ** 2 + rho), rho, 0, "+") == 1 / s)
    d.add_step("singular-value limit, s = 0", r"\lim_{\rho\to0^+} \frac{0}{0 + \rho}", "0",
               r"zero singular values stay zero: the limit is $VS^+U^T = J^+$ for any rank",
               checker=lambda: sp.limit(sp.Integer(0) / (0 + rho), rho, 0, "+") == 0)

    x, y = _generic_vector("x", rows), _generic_vector("y", cols)
    rank_one = x * y.T
    rank_one_den = (x.T * x)[0] * (y.T * y)[0]
    rank_one_pinv = y * x.T / rank_one_den

    def rank_one_limit() -> bool:
        # push-through form: only an N x N inverse; the singular K gives a 1/rho pole that cancels
        Kr = rank_one * rank_one.T + rho * sp.eye(rows)
        damped = rank_one.T * Kr.adjugate() / Kr.det()
        limit = damped.applyfunc(lambda e: sp.limit(sp.cancel(e), rho, 0, "+"))
        return _cancels_to_zero(limit - rank_one_pinv)

    d.add_step("rank-deficient rank-one instance", r"\lim_{\rho\to0^+}(J^TJ + \rho I)^{-1}J^T",
               r"\frac{y x^T}{\|x\|^2\|y\|^2} = (xy^T)^+", r"$J = xy^T$ with generic $x$, $y$; $JJ^T$ is singular here",
               checker=rank_one_limit)
    d.add_step("Penrose conditions for the rank-one limit", r"J X J,\ X J X,\ (JX)^T,\ (XJ)^T", r"J,\ X,\ JX,\ XJ",
               "the claimed limit is the Moore-Penrose inverse",
               checker=lambda: max(penrose_symbolic(rank_one, y * x.T, rank_one_den)) == 0)
    d.conclusion = sp.Eq(sp.Symbol("J^+"), sp.Symbol(r"J^T(JJ^T)^{-1}"))
    return _finish(d, check)


def pinv_limit_errors(J, rhos: Sequence[float]) -> np.ndarray:
    """Relative errors ``||(J^T J + rho I)^{-1} J^T - J^+||_F / ||J^+||_F`` for each rho.

    ``J^+`` from :func:`numerical_pinv` (any rank).  The lemma predicts ``error ~ rho *
    pinv_limit_first_order(J)`` as rho -> 0 (slope 1), until rounding ``~ eps ||J||^2 / rho``
    takes over for tiny rho.

    >>> J = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    >>> e = pinv_limit_errors(J, [1e-4, 1e-5]); bool(abs(e[0] / e[1] - 10) < 1e-3)
    True
    """
    J = check_matrix("J", J)
    Jp, _, _ = numerical_pinv(J)
    return np.array([_rel_fro(damped_pseudo_inverse(J, r), Jp) for r in rhos])


def pinv_limit_first_order(J) -> float:
    """Predicted ``lim error(rho)/rho = ||V S^{-3} U^T||_F / ||V S^{-1} U^T||_F`` (non-zero s only).

    From ``s/(s^2 + rho) - 1/s = -rho / (s (s^2 + rho))``.

    >>> round(pinv_limit_first_order(np.array([[2.0, 0.0]])), 12)
    0.25
    """
    J = check_matrix("J", J)
    _, rank, _ = numerical_pinv(J)
    s = np.linalg.svd(J, compute_uv=False)[:rank]
    return float(np.sqrt(np.sum(s ** -6.0)) / np.sqrt(np.sum(s ** -2.0)))


def right_inverse_check(J) -> NumericCheck:
    """``J^+ = J^T (J J^T)^{-1}`` for full row rank ``J`` (Cholesky of ``J J^T`` vs SVD pinv).

    Tolerance ``c * eps * kappa(J)^2`` (the normal-equation Gram squares the condition number)
    with ``c = 6 max(N, P)``: Cholesky and SVD are backward stable with first-order constants
    ``<= 3 n`` each (Higham Thm 10.3; LAPACK SVD), and the two sides add.

    >>> rng = np.random.default_rng(1)
    >>> right_inverse_check(rng.standard_normal((20, 60))).passed
    True
    """
    J = check_matrix("J", J)
    N, P = J.shape
    if N > P:
        raise ValueError(f"J has shape {J.shape}: full row rank needs rows <= columns")
    Jp, rank, kappa = numerical_pinv(J)
    if rank < N:
        raise ValueError(f"J (shape {J.shape}) has rank {rank} < {N} rows: J J^T is singular, "
                         f"J^T (J J^T)^(-1) does not exist (use the Moore-Penrose limit instead)")
    _require_conditioned("J J^T", kappa ** 2, "J is nearly rank deficient")
    right = scipy.linalg.solve(J @ J.T, J, assume_a="pos").T
    c = 6.0 * max(N, P)
    return NumericCheck("right inverse", _rel_fro(right, Jp), c * EPS * kappa ** 2, kappa ** 2, c)
