"""Closed forms in the depth L for banded block patterns (block tri-diagonal is half-bandwidth 1).

Theorem (derived and machine-checked below).  For the banded pattern ``S_b`` (``|l-l'| <= b``)
of any depth ``L``, ``alpha(S_b) = 1^T S_b^+ 1 = ceiling(L / (2b + 1))``.

Proof.  A *perfect code* is a 0/1 vector with ones at ``a, a + (2b+1), a + 2(2b+1), ...`` (inside
``[1, L]``).  Every row window ``[l-b, l+b] cap [1, L]`` holds exactly one of its ones when
``1 <= a <= b+1`` and the last one is ``>= L - b``; such an ``a`` always exists (see
:func:`perfect_code_offset`).  So ``S_b c = 1``, hence ``1 in range(S_b)`` and
``alpha = 1^T S^+ 1 = c^T S S^+ S c = c^T S c = 1^T c`` = number of ones = ``ceiling(L/(2b+1))``.
When two offsets ``a`` work, ``S_b`` is singular (two different solutions) and ``S_b^+ 1`` is
the min-norm solution; for ``b = 1`` this happens iff ``L = 2 (mod 3)``, where ``T^+ 1`` is the
average of the two codes ``(1/2, 1/2, 0, ..., 1/2, 1/2)``.

General b (:func:`banded_weights_closed_form`): ``S_b^+ 1`` is the average of the ``m`` admissible codes
and ``dim null(S_b) = m - 1``, so ``S_b`` is singular iff ``L mod (2b+1)`` is not 0 or 1 (L >= 2).
Proved: the codes solve ``S c = 1`` and their differences (independent: disjoint supports) lie in
the null space; that they span it is checked by exact enumeration for L <= 30, b <= 4 (tests).

>>> banded_alpha_closed_form(sp.Symbol("L", positive=True, integer=True), 1)
ceiling(L/3)
>>> tridiagonal_closed_form_derivation().verified
True
"""
from __future__ import annotations

from typing import List

import sympy as sp

from theory.derivation import Derivation
from theory.non_isotropic import cached_derivation
from theory.patterns import analyze_pattern, banded_pattern, tridiagonal_pattern

__all__ = [
    "banded_alpha_closed_form", "banded_weights_closed_form", "banded_nullity_closed_form",
    "banded_closed_form_derivation", "perfect_code_offset", "admissible_offsets", "enumerate_banded_alpha",
    "tridiagonal_determinant_closed_form", "tridiagonal_closed_form_derivation", "tridiagonal_weights",
    "s_sym", "j_sym", "L_sym"
]

s_sym = sp.Symbol("s", integer=True, nonnegative=True)
j_sym = sp.Symbol("j", integer=True)
L_sym = sp.Symbol("L", integer=True, positive=True)


def banded_alpha_closed_form(depth, bandwidth) -> sp.Expr:
    """``ceiling(L / (2b + 1))`` (numbers or SymPy symbols)."""
    return sp.ceiling(sp.sympify(depth) / (2 * sp.sympify(bandwidth) + 1))


def perfect_code_offset(remainder: int, bandwidth: int) -> List[int]:
    """Offsets ``a`` for which the code ``a, a+(2b+1), ...`` solves ``S_b c = 1`` at
    ``L = (2b+1) s + remainder`` (any ``s`` large enough that the code has a first and last one).

    Need ``1 <= a <= b+1`` (row 1 sees a one) and ``last >= L - b`` (row L sees one).  With
    ``r' = L - (k-1)(2b+1)`` in ``[1, 2b+1]`` (``k`` = number of ones) the second reads
    ``a >= r' - b``, and ``a <= r'`` keeps the last one inside ``[1, L]``.

    >>> perfect_code_offset(2, 1), perfect_code_offset(0, 1), perfect_code_offset(1, 1)
    ([1, 2], [2], [1])
    """
    period = 2 * bandwidth + 1
    r_prime = remainder if remainder > 0 else period
    return [a for a in range(1, bandwidth + 2) if r_prime - bandwidth <= a <= r_prime]


def admissible_offsets(depth: int, bandwidth: int) -> List[int]:
    """Offsets of the perfect codes solving ``S_b c = 1`` at this depth (any ``L >= 1``).

    >>> admissible_offsets(5, 1), admissible_offsets(8, 2)
    ([1, 2], [1, 2, 3])
    """
    period = 2 * bandwidth + 1
    out = []
    for a in range(1, bandwidth + 2):
        if a > depth:
            break
        last = a + ((depth - a) // period) * period
        if last >= depth - bandwidth:
            out.append(a)
    return out


def banded_weights_closed_form(depth: int, bandwidth: int) -> sp.Matrix:
    """``c = S_b^+ 1`` in closed form: the average of the ``m`` admissible perfect codes,
    ``c_l = 1/m`` if ``l = a (mod 2b+1)`` for an admissible offset ``a``, else 0.

    Why: every code solves ``S c = 1`` and the codes have disjoint supports and equal counts, so the
    average is orthogonal to their differences; the differences span ``null(S_b)`` (nullity = m - 1:
    ``>=`` proved since disjoint supports make them independent, ``=`` checked by exact enumeration,
    L <= 30, b <= 4) -- hence the average is the min-norm solution.  For b = 1 this is
    ``(0,1,0,...)``, ``(1,0,0,...,1)`` or ``(1/2,1/2,0,...,1/2,1/2)``.

    >>> list(banded_weights_closed_form(5, 1))
    [1/2, 1/2, 0, 1/2, 1/2]
    """
    period = 2 * bandwidth + 1
    offsets = admissible_offsets(depth, bandwidth)
    m = len(offsets)
    return sp.Matrix([sp.Rational(1, m) if any((l - a) % period == 0 for a in offsets) else 0
                      for l in range(1, depth + 1)])


def banded_nullity_closed_form(depth: int, bandwidth: int) -> int:
    """``dim null(S_b) = (number of admissible offsets) - 1``: S_b is singular iff ``L mod (2b+1)``
    is not 0 or 1 (for ``L >= 2``)."""
    return len(admissible_offsets(depth, bandwidth)) - 1


def _code(l, a: int, period: int) -> sp.Expr:
    """Entry ``l`` of the perfect code with offset ``a`` (valid for ``1 <= l <= L``)."""
    return sp.Piecewise((1, sp.Eq(sp.Mod(l - a, period), 0)), (0, True))


def _window_sum(center, lo_offset: int, hi_offset: int, a: int, period: int) -> sp.Expr:
    return sum((_code(center + m, a, period) for m in range(lo_offset, hi_offset + 1)), sp.Integer(0))


@cached_derivation
def banded_closed_form_derivation(bandwidth: int) -> Derivation:
    """Machine-checked proof, symbolic in ``s``, that ``alpha(S_b) = ceiling(L/(2b+1))`` for
    ``L = (2b+1)s + r`` and every residue ``r`` (``b`` a given integer).

    Rows are checked as identities in the symbolic period index ``j`` (interior rows
    ``l = (2b+1)j + k``) and in ``s`` (the last ``b`` rows); the first ``b`` rows do not depend on
    ``s``.  ``alpha`` is the number of ones of the code, a symbolic count in ``s``.
    """
    b = int(bandwidth)
    period = 2 * b + 1
    d = Derivation(
        f"Banded pattern, half-bandwidth b = {b}: alpha = ceiling(L/{period}) for every depth L",
        rf"\alpha(S_{{{b}}}) = \mathbf 1^T S_{{{b}}}^+ \mathbf 1 = \lceil L/{period} \rceil",
        [f"S_ll' = 1 iff |l-l'| <= {b}", "L = (2b+1) s + r with s >= 1 symbolic (first b, interior and "
         "last b rows are then disjoint); s = 0 by exact enumeration"],
    )
    for r in range(period):
        a = perfect_code_offset(r, b)[0]
        L = period * s_sym + r
        for k in range(period):  # interior rows: a full window of 2b+1 consecutive indices
            row = period * j_sym + k
            d.add_step(f"r={r}: interior row l = {period}j+{k}", _window_sum(row, -b, b, a, period), 1,
                       f"code offset a={a}; the full window holds exactly one index = a mod {period}")
        for l in range(1, b + 1):  # first rows: window [1, l+b]
            d.add_step(f"r={r}: top row {l}", _window_sum(sp.Integer(0), 1, l + b, a, period), 1,
                       f"window [1, {l}+{b}] contains the first one a={a} <= b+1 and no other")
        for t in range(b):  # last rows l = L - t: window [L-t-b, L]
            d.add_step(f"r={r}: bottom row L-{t}", _window_sum(L, -t - b, 0, a, period), 1,
                       "window [L-t-b, L] contains the last one (>= L-b) and no other")
        count = s_sym + sp.floor(sp.Rational(r - a, period)) + 1  # #{m in [1,L]: m = a mod period}
        d.add_step(f"r={r}: alpha = number of ones = ceiling(L/{period})", count,
                   banded_alpha_closed_form(L, b),
                   "alpha = 1^T c for any solution of S c = 1 (S S^+ S = S)")
    small = list(range(1, period))  # s = 0 (L <= 2b): rows overlap both ends, so check these directly
    d.add_step(f"s = 0 (L = 1..{2 * b}): exact rational pinv", sp.Matrix(enumerate_banded_alpha(2 * b, b))
               if b else sp.zeros(0, 1), sp.Matrix([banded_alpha_closed_form(x, b) for x in small]) if b else
               sp.zeros(0, 1), "the symbolic rows above assume s >= 1 (first b and last b rows disjoint)")
    d.conclusion = banded_alpha_closed_form(L_sym, b)
    d.check()
    return d


def tridiagonal_determinant_closed_form(depth) -> sp.Expr:
    """``det T_L = (2/sqrt 3) sin((L+1) pi / 3)``: the solution of ``D_L = D_{L-1} - D_{L-2}``,
    ``D_0 = D_1 = 1``; period 6 (1, 0, -1, -1, 0, 1), zero iff ``L = 2 (mod 3)``."""
    return 2 / sp.sqrt(3) * sp.sin((sp.sympify(depth) + 1) * sp.pi / 3)


@cached_derivation
def tridiagonal_closed_form_derivation() -> Derivation:
    """Block tri-diagonal: determinant recurrence, the 3-periodic ``c = T^+ 1`` for
    ``L = 3s, 3s+1, 3s+2`` and ``alpha = ceiling(L/3)``, all symbolic in ``s``."""
    L = L_sym
    d = Derivation(
        "Block tri-diagonal pattern T: alpha = 1^T T^+ 1 = ceiling(L/3) for every depth",
        r"\alpha_{BTD}(L) = \lceil L/3 \rceil;\ \det T_L = \tfrac{2}{\sqrt3}\sin\tfrac{(L+1)\pi}{3}",
        ["T_ll' = 1 iff |l - l'| <= 1", "rho -> 0+ (minimum-norm) limit"],
    )
    # determinant: cofactor expansion of a generic continuant along the last row, checked on instances
    for n in range(3, 7):
        a = sp.symbols(f"a1:{n + 1}")
        e = sp.symbols(f"e1:{n}")
        Tn = sp.Matrix(n, n, lambda i, k: a[i] if i == k else (e[min(i, k)] if abs(i - k) == 1 else 0))
        d.add_step(f"continuant recurrence, generic {n}x{n}", Tn.det(),
                   a[-1] * Tn[:n - 1, :n - 1].det() - e[-1] ** 2 * Tn[:n - 2, :n - 2].det(),
                   "Laplace expansion along the last row; with all entries 1: D_L = D_{L-1} - D_{L-2}")
    DL = tridiagonal_determinant_closed_form
    d.add_step("closed form solves the recurrence", sp.expand_trig(DL(L) - DL(L - 1) + DL(L - 2)), 0,
               "sin(x + pi/3) + sin(x - pi/3) = sin x")
    d.add_step("initial values D_0 = D_1 = 1", sp.Matrix([DL(0), DL(1)]), sp.Matrix([1, 1]), "")
    d.add_step("period 6", sp.expand_trig(DL(L + 6) - DL(L)), 0, "sin has period 2 pi")
    for r, val in ((0, (-1) ** s_sym), (1, (-1) ** s_sym), (2, 0)):
        d.add_step(f"det T at L = 3s+{r}", sp.expand_trig(DL(3 * s_sym + r)), val,
                   "zero iff L = 2 mod 3: T is singular exactly there")
    # 3-periodic c and alpha via the banded machinery (b = 1)
    for step in banded_closed_form_derivation(1).steps:
        d.steps.append(step)
    # L = 3s+2: c = T^+ 1 is the average of the two perfect codes, null vector their difference
    L2 = 3 * s_sym + 2
    half = sp.Rational(1, 2)

    def avg(l):
        return half * (_code(l, 1, 3) + _code(l, 2, 3))

    def nvec(l):
        return _code(l, 1, 3) - _code(l, 2, 3)

    d.add_step("L=3s+2: c = (1/2,1/2,0,...): interior rows", sp.Matrix(
        [sum(avg(3 * j_sym + k + m) for m in (-1, 0, 1)) for k in range(3)]), sp.ones(3, 1),
        "each window of three holds 1/2, 1/2, 0")
    d.add_step("L=3s+2: boundary rows", sp.Matrix([avg(1) + avg(2), avg(L2 - 1) + avg(L2)]), sp.ones(2, 1), "")
    d.add_step("L=3s+2: null vector (1,-1,0,...,1,-1): T n = 0, interior rows", sp.Matrix(
        [sum(nvec(3 * j_sym + k + m) for m in (-1, 0, 1)) for k in range(3)]), sp.zeros(3, 1),
        "difference of the two codes, each solving T c = 1")
    d.add_step("L=3s+2: T n = 0, boundary rows", sp.Matrix([nvec(1) + nvec(2), nvec(L2 - 1) + nvec(L2)]),
               sp.zeros(2, 1), "")
    d.add_step("L=3s+2: nullity 1", sp.expand_trig(DL(L2 - 1)), (-1) ** s_sym,
               "the leading (L-1) minor is D_{3s+1} != 0, so rank T = L-1")
    per_period = sum(avg(3 * j_sym + k) * nvec(3 * j_sym + k) for k in (1, 2, 3))
    d.add_step("L=3s+2: c orthogonal to n (so c = T^+ 1)",
               sp.summation(per_period, (j_sym, 0, s_sym - 1)) + avg(L2 - 1) * nvec(L2 - 1) + avg(L2) * nvec(L2),
               0, "c in range(T) = null(T)^perp and T c = 1 characterise T^+ 1")
    d.add_step("L=3s+2: alpha = sum c = (L+1)/3",
               sp.summation(sum(avg(3 * j_sym + k) for k in (1, 2, 3)), (j_sym, 0, s_sym - 1)) + 1,
               (L2 + 1) / 3, "")
    d.conclusion = sp.ceiling(L / 3)
    d.check()
    return d


def enumerate_banded_alpha(max_depth: int, bandwidth: int) -> List[sp.Rational]:
    """``1^T S_b^+ 1`` by exact rational pseudo-inverse for ``L = 1..max_depth`` (for cross-checks)."""
    return [analyze_pattern(banded_pattern(L, bandwidth)).alpha for L in range(1, max_depth + 1)]


def tridiagonal_weights(depth: int) -> sp.Matrix:
    """``c = T^+ 1`` exactly for a given depth (the 3-periodic pattern)."""
    return analyze_pattern(tridiagonal_pattern(depth)).weights
