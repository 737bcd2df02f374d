"""The linear-algebra lemmas behind approximate-Fisher NGD, machine-checked two ways.

Each lemma is a function returning a :class:`theory.derivation.Derivation` whose named steps are
checked *symbolically on generic matrices* (every entry an independent SymPy symbol, small sizes
such as 3 x 2), so a step holds as a polynomial / rational identity in all entries at once, not
for one lucky instance.  Each lemma also has a *numeric* check for large float64 instances
(hundreds of rows) that returns a :class:`NumericCheck`: the relative error of the identity and
a tolerance ``c * eps * condition`` whose constant ``c`` is justified in that function's docstring
from a standard rounding-error bound.

Lemmas (paper section 5 of ``shared/paper.md``):

* :func:`push_through_lemma` -- ``(rho I + A B)^{-1} A = A (rho I + B A)^{-1}``;
* :func:`pinv_limit_lemma` -- ``lim_{rho->0+} (J^T J + rho I)^{-1} J^T = J^+`` (``= J^T (J J^T)^{-1}``
  for full row rank, the Moore-Penrose inverse in general);
* :func:`kronecker_pinv_lemma` -- ``(B (x) A)^+ = B^+ (x) A^+`` and the Kronecker quadratic form;
* :func:`khatri_rao_gram_lemma` -- ``J J^T = (Delta Delta^T) o (Z Z^T (x) 1 1^T)``;
* :func:`pinv_product_lemma` -- ``(A B)^+ = B^+ A^+`` (full column rank A, full row rank B), the
  counterexample for ``(A B C)^+`` with a singular middle factor, and ``(U^T M U)^+ = U^T M^+ U``;
* :func:`ntk_telescoping_lemma` -- ``Theta^(L) = sum_l Sigma^(l) prod_{k>l} dotSigma^(k)``.

:func:`all_lemmas` returns the whole catalogue (checked) for ``proofs/`` and the reports.

>>> d = push_through_lemma()
>>> d.verified, [s.status for s in d.steps][:2]
(True, ['checked', 'checked'])
"""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np
import scipy.linalg
import sympy as sp
from sympy.simplify.simplify import product_simplify, sum_simplify

from theory.derivation import Derivation
from theory.validation import check_matrix, check_positive_int

EPS = float(np.finfo(np.float64).eps)

#: Numeric checks refuse matrices whose condition number exceeds this: ``eps * 1e10 ~ 2e-6``
#: relative error per operation would leave too few digits for a 1e-9-level identity check.
MAX_CONDITION = 1e10

#: A numerical rank is accepted only if the smallest kept singular value exceeds the rank cutoff
#: ``max(shape) * eps * s_max`` by this factor (a clear gap between "zero" and "non-zero").
RANK_GAP = 1e3

__all__ = [
    "NumericCheck", "EPS", "MAX_CONDITION",
    "push_through_lemma", "pinv_limit_lemma", "kronecker_pinv_lemma", "khatri_rao_gram_lemma",
    "pinv_product_lemma", "ntk_telescoping_lemma", "all_lemmas",
    "push_through_check", "damped_pseudo_inverse", "pinv_limit_errors", "pinv_limit_first_order",
    "right_inverse_check", "numerical_pinv", "penrose_residuals", "kronecker_pinv_check",
    "kronecker_quadratic_form_check", "explicit_layer_jacobian", "khatri_rao_gram",
    "khatri_rao_gram_check", "pinv_product_check", "triple_product_pinv_gap",
    "orthonormal_conjugation_pinv_check", "ntk_by_recursion", "ntk_by_layer_sum",
    "ntk_telescoping_check", "COUNTEREXAMPLE", "numeric_lemma_checks", "NUMERIC_CHECK_NAMES",
]


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
    if not cond <= MAX_CONDITION:
        raise ValueError(f"{name} is singular or ill-conditioned (condition number {cond:.3g} > "
                         f"{MAX_CONDITION:.0e}): {what}")


def _rel_fro(X: np.ndarray, Y: np.ndarray) -> float:
    """``||X - Y||_F / ||Y||_F``."""
    ref = np.linalg.norm(Y)
    if ref == 0:
        raise ValueError("the reference side of the identity is the zero matrix; a relative error is undefined")
    return float(np.linalg.norm(X - Y) / ref)


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


# --------------------------------------------------------------------------------------------
# 6. Layer-wise NTK telescoping
# --------------------------------------------------------------------------------------------
def _telescoped(S, D, l, k, n):
    """``sum_{l=1}^{n} S_l prod_{k=l+1}^{n} D_k`` as an unevaluated SymPy Sum/Product."""
    return sp.Sum(S[l] * sp.Product(D[k], (k, l + 1, n)), (l, 1, n))


def ntk_telescoping_lemma(max_depth: int = 8, check: bool = True) -> Derivation:
    r"""``Theta^(L) = sum_{l=1}^L Sigma^(l) prod_{k=l+1}^L dotSigma^(k)`` from the NTK recursion.

    Recursion (entrywise, so Hadamard products are products of commuting scalars):
    ``Theta^(1) = Sigma^(1)``, ``Theta^(l+1) = Theta^(l) dotSigma^(l+1) + Sigma^(l+1)``.
    Proof for symbolic depth ``L`` by induction, every manipulation done by SymPy's own rules for
    sums/products with symbolic limits (Karr convention, empty product = 1): split the last term
    of the sum, peel the last factor of each product, pull ``dotSigma^(L+1)`` out of the sum.
    Then an explicit check of the unrolled recursion for ``L = 1 .. max_depth``.

    >>> ntk_telescoping_lemma(max_depth=3).verified
    True
    """
    max_depth = check_positive_int("max_depth", max_depth)
    S, D = sp.IndexedBase(r"\Sigma"), sp.IndexedBase(r"\dot\Sigma")
    l, k = sp.symbols("l k", integer=True, positive=True)
    L = sp.Symbol("L", integer=True, positive=True)
    T = functools.partial(_telescoped, S, D, l, k)
    d = Derivation(
        "Layer-wise NTK telescoping",
        r"\Theta^{(L)} = \sum_{l=1}^{L} \Sigma^{(l)} \prod_{k=l+1}^{L} \dot\Sigma^{(k)}",
        [r"$\Theta^{(1)} = \Sigma^{(1)}$, $\Theta^{(l+1)} = \Theta^{(l)}\dot\Sigma^{(l+1)} + \Sigma^{(l+1)}$ entrywise",
         r"products are Hadamard (entrywise), so each kernel entry is a commuting scalar"],
    )
    d.add_step("base case", T(1), S[1], "empty product = 1", checker=lambda: sp.simplify(T(1).doit() - S[1]) == 0)

    summand_next = S[l] * sp.Product(D[k], (k, l + 1, L + 1))
    split = sp.Sum(summand_next, (l, 1, L)) + sp.Sum(summand_next, (l, L + 1, L + 1))
    d.add_step("split off the last term", T(L + 1), split, r"adjacent ranges $1..L$ and $L+1..L+1$ merge (SymPy sum\_simplify)",
               checker=lambda: sum_simplify(split) == T(L + 1))
    d.add_step("last term", sp.Sum(summand_next, (l, L + 1, L + 1)), S[L + 1], "one term with an empty product",
               checker=lambda: sp.Sum(summand_next, (l, L + 1, L + 1)).doit() == S[L + 1])
    peeled = sp.Product(D[k], (k, l + 1, L)) * sp.Product(D[k], (k, L + 1, L + 1))
    d.add_step("peel the last factor", sp.Product(D[k], (k, l + 1, L + 1)), sp.Product(D[k], (k, l + 1, L)) * D[L + 1],
               r"adjacent ranges merge (SymPy product\_simplify); the one-factor product is $\dot\Sigma^{(L+1)}$",
               checker=lambda: product_simplify(peeled) == sp.Product(D[k], (k, l + 1, L + 1))
               and sp.Product(D[k], (k, L + 1, L + 1)).doit() == D[L + 1])
    pulled = sp.Sum(S[l] * sp.Product(D[k], (k, l + 1, L)) * D[L + 1], (l, 1, L))
    d.add_step("pull the constant out", pulled, D[L + 1] * T(L), r"$\dot\Sigma^{(L+1)}$ does not depend on $l$",
               checker=lambda: sp.simplify(pulled - D[L + 1] * T(L)) == 0)

    def induction_step() -> bool:
        # rebuild T(L+1) from the recursion's right-hand side D_{L+1} T(L) + S_{L+1}, using only
        # the rules of the steps above (each verified there)
        rhs = D[L + 1] * T(L) + S[L + 1]
        if sp.simplify(rhs - S[L + 1] - pulled) != 0:                  # pull the constant in
            return False
        one_factor = sp.Product(D[k], (k, L + 1, L + 1))
        merged = sp.Sum(product_simplify(pulled.function.subs(D[L + 1], one_factor)), *pulled.limits)
        last = sp.Sum(summand_next, (l, L + 1, L + 1))
        if last.doit() != S[L + 1]:                                     # S_{L+1} is the last term
            return False
        return sum_simplify(merged + last) == T(L + 1)

    d.add_step("induction step", T(L + 1), D[L + 1] * T(L) + S[L + 1],
               "the closed form obeys the NTK recursion for symbolic L", checker=induction_step)

    def unrolled() -> bool:
        theta = S[1]
        for depth in range(1, max_depth + 1):
            if depth > 1:
                theta = theta * D[depth] + S[depth]
            if sp.expand(theta - T(depth).doit()) != 0:
                return False
        return True

    d.add_step(f"explicit depths 1..{max_depth}", r"\Theta^{(L)}\ \text{(unrolled recursion)}",
               r"\sum_{l}\Sigma^{(l)}\prod_{k>l}\dot\Sigma^{(k)}", "expanded polynomial identity at each depth",
               checker=unrolled)
    d.conclusion = T(L)
    return _finish(d, check)


def _check_kernel_lists(sigmas, dot_sigmas) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    sigmas = [np.asarray(s, dtype=np.float64) for s in sigmas]
    dot_sigmas = [np.asarray(s, dtype=np.float64) for s in dot_sigmas]
    if not sigmas:
        raise ValueError("sigmas must hold Sigma^(1..L), L >= 1; got an empty list")
    if len(dot_sigmas) != len(sigmas) - 1:
        raise ValueError(f"dot_sigmas must hold dotSigma^(2..L): {len(sigmas) - 1} arrays for L={len(sigmas)}, "
                         f"got {len(dot_sigmas)}")
    shape = sigmas[0].shape
    for name, arrs in (("sigmas", sigmas), ("dot_sigmas", dot_sigmas)):
        for i, a in enumerate(arrs):
            if a.shape != shape:
                raise ValueError(f"{name}[{i}] has shape {a.shape}, expected {shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}[{i}] contains a non-finite value")
    return sigmas, dot_sigmas


def ntk_by_recursion(sigmas, dot_sigmas) -> np.ndarray:
    """``Theta^(L)`` from ``Theta^(1) = Sigma^(1)``, ``Theta^(l+1) = Theta^(l) * dotSigma^(l+1) + Sigma^(l+1)``.

    >>> ntk_by_recursion([np.array([1.0]), np.array([2.0])], [np.array([3.0])]).tolist()
    [5.0]
    """
    sigmas, dot_sigmas = _check_kernel_lists(sigmas, dot_sigmas)
    theta = sigmas[0].copy()
    for sigma, dot in zip(sigmas[1:], dot_sigmas):
        theta = theta * dot + sigma
    return theta


def ntk_by_layer_sum(sigmas, dot_sigmas) -> np.ndarray:
    """``sum_l Sigma^(l) * prod_{k>l} dotSigma^(k)`` (the layer-wise NTKs ``Theta_l`` summed).

    >>> ntk_by_layer_sum([np.array([1.0]), np.array([2.0])], [np.array([3.0])]).tolist()
    [5.0]
    """
    sigmas, dot_sigmas = _check_kernel_lists(sigmas, dot_sigmas)
    total = np.zeros_like(sigmas[0])
    backward = np.ones_like(sigmas[0])  # prod_{k > l} dotSigma^(k), built from the top layer down
    for l in range(len(sigmas) - 1, -1, -1):
        total += sigmas[l] * backward
        if l > 0:
            backward = backward * dot_sigmas[l - 1]
    return total


def ntk_telescoping_check(sigmas, dot_sigmas) -> NumericCheck:
    """Recursion against the layer sum, entrywise.

    Errors are normalised by the same evaluation on absolute values ``sum_l |Sigma_l| prod |dot|``:
    each term passes through at most ``L`` multiplications and ``L`` additions per side, so
    ``|err| <= gamma_{2L}`` times that sum per side (Higham eq. 3.5): ``c = 4 L`` is rigorous.

    >>> rng = np.random.default_rng(7)
    >>> ntk_telescoping_check(rng.standard_normal((3, 4, 4)), rng.standard_normal((2, 4, 4))).passed
    True
    """
    sigmas, dot_sigmas = _check_kernel_lists(sigmas, dot_sigmas)
    a = ntk_by_recursion(sigmas, dot_sigmas)
    b = ntk_by_layer_sum(sigmas, dot_sigmas)
    scale = ntk_by_layer_sum([np.abs(s) for s in sigmas], [np.abs(s) for s in dot_sigmas])
    safe = np.where(scale == 0, 1.0, scale)
    err = float(np.max(np.abs(a - b) / safe))
    with np.errstate(divide="ignore"):
        cond = float(np.max(safe / np.abs(b)))
    c = 4.0 * len(sigmas)
    return NumericCheck("NTK telescoping", err, c * EPS, cond, c)


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------
LEMMAS: Tuple[Callable[..., Derivation], ...] = (
    push_through_lemma, pinv_limit_lemma, kronecker_pinv_lemma, khatri_rao_gram_lemma,
    pinv_product_lemma, ntk_telescoping_lemma,
)


def all_lemmas(check: bool = True) -> List[Derivation]:
    """Every lemma's derivation (checked unless ``check=False``), in catalogue order.

    The checked catalogue is computed once per process (about 10 s of SymPy) and shared: treat the
    returned derivations as read-only.

    >>> [d.title for d in all_lemmas(check=False)][:2]
    ['Push-through identity', 'Pseudo-inverse as the damping limit']
    """
    if check:
        return list(_checked_catalogue())
    return [lemma(check=False) for lemma in LEMMAS]


@functools.lru_cache(maxsize=1)
def _checked_catalogue() -> Tuple[Derivation, ...]:
    return tuple(lemma(check=True) for lemma in LEMMAS)


def numeric_lemma_checks(seed: int = 0, size: int = 200) -> dict:
    """Every lemma's numeric check on one seeded random instance with ``size`` rows (default 200).

    Rank-deficient factors are used where the lemma allows them (Kronecker, conjugation), so the
    pseudo-inverse statements are exercised beyond the invertible case.  Returns
    ``{lemma name: NumericCheck}``; a report can print error, tolerance and condition per lemma.

    >>> checks = numeric_lemma_checks(seed=0, size=60)
    >>> sorted(checks) == sorted(NUMERIC_CHECK_NAMES), all(c.passed for c in checks.values())
    (True, True)
    """
    size = check_positive_int("size", size, minimum=40)
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))
    n = size // 4

    def low_rank(m, k, r):
        return rng.standard_normal((m, r)) @ rng.standard_normal((r, k))

    A = rng.standard_normal((size, n))
    kb, ka = max(4, size // 20), max(5, size // 16)          # Kronecker product of about size x size
    U = np.linalg.qr(rng.standard_normal((size, n)))[0].T
    L = 8
    return {
        "push-through": push_through_check(A, A.T / size, 0.1),
        "right inverse": right_inverse_check(rng.standard_normal((n, size))),
        "Kronecker pseudo-inverse": kronecker_pinv_check(low_rank(kb, kb + 2, kb - 2), low_rank(ka, ka + 3, ka - 3)),
        "Kronecker quadratic form": kronecker_quadratic_form_check(
            rng.standard_normal((kb, kb)), rng.standard_normal((ka, ka)),
            *rng.standard_normal((2, kb)), *rng.standard_normal((2, ka))),
        "Khatri-Rao Gram": khatri_rao_gram_check(rng.standard_normal((n, 2, n)), rng.standard_normal((n, n))),
        "pseudo-inverse of a product": pinv_product_check(A, rng.standard_normal((n, size // 2))),
        "orthonormal conjugation pseudo-inverse": orthonormal_conjugation_pinv_check(U, low_rank(n, n, n - n // 4)),
        "NTK telescoping": ntk_telescoping_check(rng.uniform(0.1, 2.0, (L, n, n)), rng.uniform(0.1, 2.0, (L - 1, n, n))),
    }


NUMERIC_CHECK_NAMES = ("push-through", "right inverse", "Kronecker pseudo-inverse", "Kronecker quadratic form",
                       "Khatri-Rao Gram", "pseudo-inverse of a product", "orthonormal conjugation pseudo-inverse",
                       "NTK telescoping")
