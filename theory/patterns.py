"""Block-pattern algebra of layer-wise approximate Fisher matrices (exact rational arithmetic).

A layer-wise approximation keeps the Fisher blocks ``F_ll'`` where a symmetric 0/1 pattern
``S`` (L x L) has a one:  ``G_S = D^T (S (x) I) D / N`` with ``D = blockdiag(J_1..J_L)`` and
``J = (1^T (x) I) D``.  Exact NGD is ``S = 11^T``, block-diagonal ``S = I``, block tri-diagonal
``S = T`` (``|l-l'| <= 1``), banded ``|l-l'| <= b``.

Derived here (see :func:`analyze_pattern` and :mod:`theory.pattern_kernels` for the numerics):

* the layer weights ``c = S^+ 1`` (exact rationals), characterised for symmetric ``S`` by
  ``S c = P_range(S) 1`` and ``c`` orthogonal to ``null(S)``;
* ``alpha(S) = 1^T S^+ 1``; when ``1`` is in ``range(S)`` this equals ``1^T c'`` for *any*
  solution ``c'`` of ``S c' = 1`` (because ``1^T S^+ 1 = c'^T S S^+ S c' = c'^T S c' = 1^T c'``);
* isotropy on the training set holds iff ``1 in range(S)`` (for generic layer kernels; if all
  layer kernels are equal, ``M = S (x) K`` and the operator is ``(1^T S^+ 1) I`` for every ``S``);
* which layers move: layer ``l`` moves iff ``c_l != 0`` or a null vector of ``S`` is nonzero at
  ``l`` (the null-space correction of the singular case, generic layer kernels).

>>> a = analyze_pattern(tridiagonal_pattern(5))
>>> a.alpha, list(a.weights), a.invertible
(2, [1/2, 1/2, 0, 1/2, 1/2], False)
>>> a.moving_layers
(1, 2, 4, 5)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Tuple

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_positive_int

__all__ = [
    "PatternAnalysis", "analyze_pattern", "validate_pattern", "exact_pattern", "block_diagonal_pattern",
    "tridiagonal_pattern", "banded_pattern", "isotropy_constant_of_pattern", "null_basis", "pinv_apply"
]


# ---------------------------------------------------------------------------------------------
# constructors and validation
# ---------------------------------------------------------------------------------------------
def banded_pattern(depth: int, bandwidth: int) -> sp.Matrix:
    """``S_ll' = 1`` iff ``|l - l'| <= bandwidth`` (half-bandwidth ``b``; ``b = 0`` is block-diagonal).

    >>> banded_pattern(3, 1)
    Matrix([
    [1, 1, 0],
    [1, 1, 1],
    [0, 1, 1]])
    """
    depth = check_positive_int("depth", depth)
    bandwidth = check_positive_int("bandwidth", bandwidth, minimum=0)
    return sp.Matrix(depth, depth, lambda i, j: 1 if abs(i - j) <= bandwidth else 0)


def exact_pattern(depth: int) -> sp.Matrix:
    """All ones: every Fisher block kept (exact NGD).  ``exact_pattern(2) == ones(2, 2)``."""
    depth = check_positive_int("depth", depth)
    return sp.ones(depth, depth)


def block_diagonal_pattern(depth: int) -> sp.Matrix:
    """The identity: only the diagonal blocks ``F_ll`` are kept."""
    return banded_pattern(depth, 0)


def tridiagonal_pattern(depth: int) -> sp.Matrix:
    """``T``: blocks with ``|l - l'| <= 1`` are kept (block tri-diagonal NGD)."""
    return banded_pattern(depth, 1)


def validate_pattern(pattern, name: str = "pattern") -> sp.Matrix:
    """Return ``pattern`` as an integer SymPy matrix after checking it is a block pattern.

    Required: a square 2-D array, entries 0 or 1, symmetric (the Fisher matrix is symmetric, so
    keeping ``F_ll'`` means keeping ``F_l'l = F_ll'^T``), and ones on the diagonal (every
    approximation keeps each layer's own block; a zero diagonal entry would freeze that layer's
    curvature entirely, which is not a layer-wise Fisher approximation).

    >>> validate_pattern([[1, 0], [1, 1]])
    Traceback (most recent call last):
    ...
    ValueError: pattern is not symmetric: entry (1, 0) = 1 but entry (0, 1) = 0
    """
    try:
        arr = np.asarray(pattern.tolist() if isinstance(pattern, sp.MatrixBase) else pattern, dtype=object)
    except (TypeError, ValueError):  # e.g. an object numpy cannot turn into an array
        raise TypeError(f"{name} must be a square 0/1 matrix, got {type(pattern).__name__}") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"{name} must be a square L x L matrix (L >= 1), got shape {arr.shape}")
    n = arr.shape[0]
    out = sp.zeros(n, n)
    for i in range(n):
        for j in range(n):
            v = arr[i, j]
            if isinstance(v, bool) or not isinstance(v, (numbers.Number, sp.Basic, np.number)):
                raise TypeError(f"{name}[{i}, {j}] = {v!r} is not allowed: entries must be 0 or 1")
            if isinstance(v, (numbers.Integral, np.integer)):
                v = int(v)
            elif not isinstance(v, sp.Basic):
                v = sp.nsimplify(v)
            if v not in (0, 1):
                raise ValueError(f"{name}[{i}, {j}] = {v} is not allowed: entries must be 0 or 1")
            out[i, j] = sp.Integer(v)
    for i in range(n):
        if out[i, i] != 1:
            raise ValueError(
                f"{name}[{i}, {i}] = {out[i, i]} is not allowed: the diagonal must be 1 "
                f"(every layer keeps its own Fisher block)")
        for j in range(i + 1, n):
            if out[i, j] != out[j, i]:
                raise ValueError(f"{name} is not symmetric: entry ({j}, {i}) = {out[j, i]} "
                                 f"but entry ({i}, {j}) = {out[i, j]}")
    return out


# ---------------------------------------------------------------------------------------------
# exact pseudo-inverse data of a pattern
# ---------------------------------------------------------------------------------------------
def null_basis(S: sp.Matrix) -> sp.Matrix:
    """Exact rational basis of ``null(S)`` as the columns of an ``L x k`` matrix (k may be 0)."""
    vecs = S.nullspace()
    return sp.Matrix.hstack(*vecs) if vecs else sp.zeros(S.rows, 0)


def _project_off(Nb: sp.Matrix, v: sp.Matrix) -> sp.Matrix:
    """Orthogonal projection of ``v`` onto the complement of ``span(Nb)``."""
    if Nb.cols == 0:
        return v
    return v - Nb * (Nb.T * Nb).inv() * (Nb.T * v)


def pinv_apply(S: sp.Matrix, b: sp.Matrix) -> sp.Matrix:
    """``S^+ b`` for a symmetric rational ``S``, exactly.

    For symmetric ``S``, ``range(S) = null(S)^perp``, and ``S^+ b`` is the unique ``c`` in
    ``range(S)`` with ``S c = P_range b``.  We solve ``S c0 = P_range b`` by Gauss-Jordan and
    project ``c0`` onto ``range(S)``.

    >>> pinv_apply(sp.ones(2, 2), sp.ones(2, 1)).T
    Matrix([[1/2, 1/2]])
    """
    Nb = null_basis(S)
    rhs = _project_off(Nb, b)
    sol, params = S.gauss_jordan_solve(rhs)
    sol = sol.subs({p: 0 for p in params})
    return _project_off(Nb, sol)


@dataclass
class PatternAnalysis:
    """Exact min-norm (rho -> 0+) data of a block pattern ``S``.

    ``weights`` c = S^+ 1; ``alpha`` = 1^T S^+ 1; ``null_basis`` columns span null(S);
    ``one_in_range``: 1 in range(S) (iff isotropic on the training set, generic kernels);
    ``moving_layers``: 1-based layers whose update is nonzero for generic kernels/residuals;
    ``frozen_layers``: the others (c_l = 0 and every null vector vanishes at l).
    """

    pattern: sp.Matrix
    weights: sp.Matrix
    alpha: sp.Expr
    null_basis: sp.Matrix
    rank: int
    invertible: bool
    one_in_range: bool
    moving_layers: Tuple[int, ...]
    frozen_layers: Tuple[int, ...]
    coupled_layers: Tuple[int, ...]
    derivation: Derivation = field(repr=False, default=None)

    @property
    def depth(self) -> int:
        return self.pattern.rows


def analyze_pattern(pattern) -> PatternAnalysis:
    """Derive ``c = S^+ 1``, ``alpha``, ``null(S)``, the moving layers, with a checked derivation.

    >>> analyze_pattern(tridiagonal_pattern(4)).weights.T
    Matrix([[1, 0, 0, 1]])
    """
    S = validate_pattern(pattern)
    L = S.rows
    one = sp.ones(L, 1)
    Nb = null_basis(S)
    c = pinv_apply(S, one)
    alpha = sp.nsimplify((one.T * c)[0, 0])
    one_in_range = Nb.cols == 0 or all(e == 0 for e in Nb.T * one)
    null_rows_nonzero = [any(Nb[l, k] != 0 for k in range(Nb.cols)) for l in range(L)]
    moving = tuple(l + 1 for l in range(L) if c[l] != 0 or null_rows_nonzero[l])
    frozen = tuple(l + 1 for l in range(L) if l + 1 not in moving)
    coupled = tuple(l + 1 for l in range(L) if null_rows_nonzero[l])

    d = Derivation(
        "Layer weights and isotropy constant of a block pattern",
        r"c = S^{+}\mathbf 1,\quad \alpha(S) = \mathbf 1^{T} S^{+} \mathbf 1 = " + sp.latex(alpha),
        ["S symmetric 0/1 with unit diagonal", f"S = {S.tolist()}"],
    )
    d.add_step("c lies in range(S) = null(S)^perp", Nb.T * c, sp.zeros(Nb.cols, 1),
               "S symmetric, so range(S) is the orthogonal complement of null(S)")
    d.add_step("S c is the projection of 1 onto range(S)", S * c, _project_off(Nb, one),
               "together with the previous step this characterises c = S^+ 1 (Penrose)")
    d.add_step("alpha = 1^T c", (one.T * c)[0, 0], alpha, "definition")
    if one_in_range:
        d.add_step("1 is orthogonal to null(S), i.e. 1 in range(S)", Nb.T * one, sp.zeros(Nb.cols, 1),
                   "hence S c = 1 exactly and J G_S^+ J^T / N = alpha I on the training set")
        d.add_step("alpha = c'^T S c' for the solution c' = c", (c.T * S * c)[0, 0], alpha,
                   "1^T S^+ 1 = c'^T S S^+ S c' = 1^T c' for any solution of S c' = 1")
    else:
        d.add_step("1 has a component in null(S)", sp.Integer(int(any(e != 0 for e in Nb.T * one))),
                   sp.Integer(1), "so the rho -> 0+ limit of (G_S + rho I)^{-1} grad diverges like 1/rho "
                   "and the pseudo-inverse step is not isotropic for generic layer kernels")
    for l in range(L):  # which layers move: v_l = K_l^{-1} (c_l r + sum_k n_kl z_k)
        if l + 1 in frozen:
            d.add_step(f"layer {l + 1} is frozen: c_l = 0 and every null vector vanishes there",
                       sp.Matrix([c[l]] + [Nb[l, k] for k in range(Nb.cols)]), sp.zeros(1 + Nb.cols, 1),
                       "so its dual vector v_l = K_l^{-1}(c_l r + sum_k n_kl z_k) is 0 for every residual")
        elif not null_rows_nonzero[l]:
            d.add_step(f"layer {l + 1} always moves: c_l != 0, no null-space coupling",
                       sp.Integer(int(c[l] != 0)), 1, "v_l = c_l K_l^{-1} r != 0 for r != 0")
        else:
            d.add_step(f"layer {l + 1} moves through the null-space correction (generic kernels)",
                       sp.Integer(int(null_rows_nonzero[l])), 1,
                       "n_kl != 0, and z != 0 unless the layer kernels make sum_l n_l c_l K_l^{-1} r vanish "
                       "(e.g. all K_l equal)")
    d.conclusion = alpha
    d.check()
    return PatternAnalysis(S, c, alpha, Nb, L - Nb.cols, Nb.cols == 0, bool(one_in_range), moving, frozen,
                           coupled, d)


def isotropy_constant_of_pattern(pattern) -> sp.Expr:
    """``alpha(S) = 1^T S^+ 1`` exactly.  ``isotropy_constant_of_pattern(banded_pattern(7, 2)) == 2``."""
    return analyze_pattern(pattern).alpha
