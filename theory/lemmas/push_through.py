"""Push-through identity (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix, check_positive_int

from theory.lemmas._common import (
    EPS, NumericCheck, _generic_matrix, _expands_to_zero, _finish, _finite_real, _condition,
    _require_conditioned, _rel_fro)

__all__ = ["push_through_lemma", "push_through_check"]


# --------------------------------------------------------------------------------------------
# 1. Push-through identity
# --------------------------------------------------------------------------------------------
def push_through_lemma(p: int = 3, n: int = 2, check: bool = True) -> Derivation:
    r"""``(rho I_p + A B)^{-1} A = A (rho I_n + B A)^{-1}`` for ``A`` (p x n), ``B`` (n x p).

    Proof on generic ``A``, ``B`` (independent symbols) and symbolic ``rho``:

    1. the polynomial identity ``A (rho I + B A) = (rho I + A B) A``;
    2. Sylvester's determinant identity ``det(rho I_p + A B) = rho^{p-n} det(rho I_n + B A)``, so
       for ``rho != 0`` the two inverses exist together (the condition: ``-rho`` is not an
       eigenvalue of ``B A``; for ``B = A^T / N`` and ``rho > 0`` always true);
    3. multiplying step 1 by both inverses gives the lemma; as a cleared-denominator polynomial
       identity: ``adj(rho I_p + A B) A = rho^{p-n} A adj(rho I_n + B A)``.

    >>> push_through_lemma().verified
    True
    """
    p = check_positive_int("p", p)
    n = check_positive_int("n", n)
    if p < n:
        raise ValueError(f"p={p} is not allowed: the symbolic check takes p >= n (swap A and B otherwise)")
    rho = sp.Symbol("rho")
    A, B = _generic_matrix("a", p, n), _generic_matrix("b", n, p)
    Ip, In = sp.eye(p), sp.eye(n)
    big, small = rho * Ip + A * B, rho * In + B * A
    d = Derivation(
        "Push-through identity",
        r"(\rho I_p + AB)^{-1} A = A(\rho I_n + BA)^{-1}",
        [rf"$A \in \mathbb{{R}}^{{{p}\times {n}}}$, $B \in \mathbb{{R}}^{{{n}\times {p}}}$ generic (independent symbols)",
         r"$\rho \ne 0$ and $-\rho \notin \operatorname{spec}(BA)$ (then both inverses exist); "
         r"for $B = A^T/N$ any $\rho > 0$ qualifies"],
    )
    d.add_step("intertwining (polynomial identity)", r"A(\rho I_n + BA)", r"(\rho I_p + AB)A",
               "both sides expand to rho A + A B A",
               checker=lambda: _expands_to_zero(A * small - big * A))
    d.add_step("Sylvester determinant identity", r"\det(\rho I_p + AB)", rf"\rho^{{{p - n}}}\det(\rho I_n + BA)",
               "so for rho != 0 one inverse exists iff the other does",
               checker=lambda: _expands_to_zero(big.det(method="berkowitz") - rho ** (p - n) * small.det(method="berkowitz")))
    d.add_step("inverses (cleared denominators)", r"\operatorname{adj}(\rho I_p + AB)\,A",
               rf"\rho^{{{p - n}}} A\,\operatorname{{adj}}(\rho I_n + BA)",
               r"divide by $\det(\rho I_p + AB) = \rho^{p-n}\det(\rho I_n + BA)$ (previous step) to get the lemma",
               checker=lambda: _expands_to_zero(big.adjugate(method="berkowitz") * A
                                                - rho ** (p - n) * A * small.adjugate(method="berkowitz")))
    d.conclusion = sp.Eq(sp.Symbol(r"(\rho I + AB)^{-1}A"), sp.Symbol(r"A(\rho I + BA)^{-1}"))
    return _finish(d, check)


def push_through_check(A, B, rho) -> NumericCheck:
    """Numeric push-through on one (large) instance.

    Both sides are LU solves: ``solve(rho I_p + A B, A)`` and ``solve((rho I_n + B A)^T, A^T)^T``.
    Tolerance ``c * eps * kappa`` with ``kappa`` the larger condition number of the two system
    matrices and ``c = 6 max(p, n)``: Gaussian elimination with partial pivoting has backward error
    ``<= 3 n u`` (first order, modest growth factor; Higham, *Accuracy and Stability*, Thm 9.4), the
    forward error is kappa times that, and the two independently computed sides add (factor 2).

    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((40, 10)); res = push_through_check(A, A.T / 40, 0.5)
    >>> res.passed, res.error < 1e-13
    (True, True)
    """
    A = check_matrix("A", A)
    B = check_matrix("B", B)
    p, n = A.shape
    if B.shape != (n, p):
        raise ValueError(f"B has shape {B.shape}; push-through needs B of shape {(n, p)} (the transpose shape of A)")
    rho = _finite_real("rho", rho)
    big = rho * np.eye(p) + A @ B
    small = rho * np.eye(n) + B @ A
    cond = max(_condition(big), _condition(small))
    _require_conditioned("rho I + A B", cond, f"rho={rho} is (close to) minus an eigenvalue of B A")
    lhs = np.linalg.solve(big, A)
    rhs = np.linalg.solve(small.T, A.T).T
    c = 6.0 * max(p, n)
    return NumericCheck("push-through", _rel_fro(lhs, rhs), c * EPS * cond, cond, c)
