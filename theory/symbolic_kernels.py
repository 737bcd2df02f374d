r"""The infinite-width kernels as SymPy expressions, and the telescoping of the layer-wise NTKs.

For an activation with closed-form dual kernels (:func:`theory.dual.closed_form`) and a given
depth ``L``, :func:`symbolic_kernels` composes the recursion of :mod:`theory.kernels` symbolically
in the input inner products ``xx = x.x``, ``xy = x.x'``, ``yy = x'.x'`` and the hyper-parameters
``sigma_w2``, ``sigma_b2``, ``M0``.  :func:`kernels_on_sphere` sets ``x.x = x'.x' = M0`` (inputs of
norm ``sqrt(M0)``, i.e. entries of unit mean square, so ``Sigma^(1)(x, x) = sigma_w2 + sigma_b2``)
and ``x.x' = M0 c``: the kernels as functions of the cosine ``c``.

:func:`telescoping_derivation` proves, for *general* depth, that the NTK recursion
``Theta^(1) = Sigma^(1)``, ``Theta^(L+1) = Theta^(L) dotSigma^(L+1) + Sigma^(L+1)`` has the solution
``Theta^(L) = sum_{l=1}^{L} Sigma^(l) prod_{k=l+1}^{L} dotSigma^(k)`` (the layer-wise NTKs
``Theta_l = Sigma^(l) B_l``), by induction on ``L`` with indexed symbols and symbolic limits.

>>> k = symbolic_kernels(2, "relu")
>>> sp.simplify(k.ntk.subs({xx: 1, yy: 1, xy: 1, sigma_w2: 2, sigma_b2: 0, M0: 1}))
4
>>> sp.simplify(kernels_on_sphere(1, "erf", sigma_w2=1, sigma_b2=0).ntk)
c
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np
import sympy as sp
from sympy.simplify.simplify import product_simplify, sum_simplify

from theory.derivation import Derivation
from theory.dual import closed_form, q11, q12, q22
from theory.validation import check_positive_int

__all__ = [
    "SymbolicKernels", "symbolic_kernels", "kernels_on_sphere", "telescoping_derivation", "xx", "xy", "yy",
    "M0", "sigma_w2", "sigma_b2", "cosine"
]

xx, yy, M0 = sp.symbols("xx yy M_0", positive=True)
xy = sp.Symbol("xy", real=True)
sigma_w2 = sp.Symbol("sigma_w2", positive=True)
sigma_b2 = sp.Symbol("sigma_b2", nonnegative=True)
#: the cosine of the angle between two inputs on the sphere of radius sqrt(M0)
cosine = sp.Symbol("c", real=True)


@dataclass
class SymbolicKernels:
    """Kernels of an ``L``-layer network as SymPy expressions (same layout as ``AnalyticKernels``)."""

    depth: int
    activation: str
    nngp: sp.Expr
    ntk: sp.Expr
    layer_ntk: List[sp.Expr]
    nngp_layers: List[sp.Expr]
    derivative_layers: List[sp.Expr]
    diag_x: List[sp.Expr] = field(default_factory=list)
    diag_y: List[sp.Expr] = field(default_factory=list)

    def latex(self) -> str:
        """``\\Theta^{(L)} = ...`` as LaTeX."""
        return rf"\Theta^{{({self.depth})}}(x, x') = " + sp.latex(self.ntk)

    def numeric(self, which: str = "ntk"):
        """A NumPy function of ``(xx, xy, yy, sigma_w2, sigma_b2, M0)`` for one of the kernels."""
        expr = getattr(self, which)
        return sp.lambdify((xx, xy, yy, sigma_w2, sigma_b2, M0), expr, modules=["scipy", "numpy"])


def _dual_exprs(activation):
    form = closed_form(activation)
    if form is None:
        raise ValueError(f"activation={activation!r} has no closed-form dual kernel; symbolic kernels need one "
                         "(relu, leaky_relu, linear, erf, sin, gelu)")
    return form.value, form.derivative


def _apply(expr, a, c, b):
    return expr.subs({q11: a, q12: c, q22: b}, simultaneous=True)


def symbolic_kernels(depth: int, activation="relu", *, sw2=sigma_w2, sb2=sigma_b2, inputs=(xx, xy, yy),
                     input_dim=M0, simplify_diagonals: bool = True) -> SymbolicKernels:
    """NNGP, NTK and layer-wise NTKs of depth ``L`` as expressions of the inner products.

    ``sw2``, ``sb2``, ``input_dim`` and the three ``inputs`` (``x.x, x.x', x'.x'``) may be numbers
    or expressions; the defaults are the module's symbols.  Diagonals are simplified layer by
    layer (for relu they collapse to ``sigma_w2/2 * previous + sigma_b2``).

    >>> k = symbolic_kernels(2, "relu")
    >>> sp.expand(k.diag_x[1])
    sigma_b2*sigma_w2/2 + sigma_b2 + sigma_w2**2*xx/(2*M_0)
    """
    depth = check_positive_int("depth", depth)
    V, dV = _dual_exprs(activation)
    a, c, b = (sp.sympify(t) for t in inputs)
    dx = [sw2 * a / input_dim + sb2]
    dy = [sw2 * b / input_dim + sb2]
    cross = [sw2 * c / input_dim + sb2]
    dots = []
    for _ in range(depth - 1):
        nx = sw2 * _apply(V, dx[-1], dx[-1], dx[-1]) + sb2
        ny = sw2 * _apply(V, dy[-1], dy[-1], dy[-1]) + sb2
        if simplify_diagonals:
            nx, ny = sp.simplify(nx), sp.simplify(ny)
        dots.append(sw2 * _apply(dV, dx[-1], cross[-1], dy[-1]))
        cross.append(sw2 * _apply(V, dx[-1], cross[-1], dy[-1]) + sb2)
        dx.append(nx)
        dy.append(ny)
    theta = cross[0]
    for l in range(depth - 1):
        theta = theta * dots[l] + cross[l + 1]
    layer = []
    for l in range(depth):
        prod = sp.Integer(1)
        for d in dots[l:]:
            prod = prod * d
        layer.append(cross[l] * prod)
    return SymbolicKernels(depth, str(activation), cross[-1], theta, layer, cross, dots, dx, dy)


def kernels_on_sphere(depth: int, activation="relu", *, sigma_w2=sigma_w2, sigma_b2=sigma_b2,
                      simplify: bool = True) -> SymbolicKernels:
    """The kernels for ``x.x = x'.x' = M0`` and ``x.x' = M0 c`` as functions of the cosine ``c``.

    >>> k = kernels_on_sphere(2, "relu", sigma_w2=2, sigma_b2=0)
    >>> k.ntk.subs(cosine, 1)          # relu, sigma_w2 = 2: Sigma^(l)(x,x) = 2, dotSigma(x,x) = 1, Theta(x,x) = 2L
    4
    >>> k.nngp
    2*(-c*(acos(c) - pi) + sqrt(1 - c**2))/pi
    """
    k = symbolic_kernels(depth, activation, sw2=sigma_w2, sb2=sigma_b2, inputs=(M0, M0 * cosine, M0),
                         input_dim=M0)
    if simplify:
        k.nngp_layers = [sp.simplify(e) for e in k.nngp_layers]
        k.derivative_layers = [sp.simplify(e) for e in k.derivative_layers]
        k.nngp = k.nngp_layers[-1]
        k.ntk = sp.simplify(k.ntk)
        k.layer_ntk = [sp.simplify(e) for e in k.layer_ntk]
    return k


# ------------------------------------------------------------------------------------------------
# telescoping, for general depth
# ------------------------------------------------------------------------------------------------
def telescoping_derivation(max_numeric_depth: int = 12, seed: int = 0) -> Derivation:
    r"""Induction proof that ``Theta^(L) = sum_l Sigma^(l) prod_{k>l} dotSigma^(k)`` for every ``L >= 1``.

    Symbols: ``Sigma[l]`` (NNGP of layer l), ``D[k]`` (``dotSigma^(k)``), ``L`` a positive integer;
    ``T(n) = Sum_{l=1}^{n} Sigma[l] Product_{k=l+1}^{n} D[k]``.  Steps (each machine-checked):
    base case ``T(1) = Sigma[1]``; linearity ``T(L) D[L+1] = Sum Sigma[l] P(l, L) D[L+1]``;
    product extension ``P(l, L) D[L+1] = P(l, L+1)`` (adjacent ranges, SymPy ``product_simplify``);
    empty product ``Sigma[L+1] = Sum_{l=L+1}^{L+1} Sigma[l] P(l, L+1)``; sum combination (SymPy
    ``sum_simplify``); hence ``T(L) D[L+1] + Sigma[L+1] = T(L+1)``, which is the NTK recursion, so
    ``Theta^(L) = T(L)`` by induction.  A final step evaluates both sides at random numbers for
    ``L = 1..max_numeric_depth`` (exact rationals).

    >>> d = telescoping_derivation(6)
    >>> d.check(), d.verified
    (True, True)
    """
    L = sp.Symbol("L", integer=True, positive=True)
    l, k = sp.symbols("l k", integer=True, positive=True)
    S, D = sp.IndexedBase(r"\Sigma"), sp.IndexedBase(r"\dot\Sigma")

    def P(lo, hi):
        return sp.Product(D[k], (k, lo + 1, hi))

    def T(n):
        return sp.Sum(S[l] * P(l, n), (l, 1, n))

    der = Derivation(
        "Layer-wise NTKs telescope to the NTK (every depth)",
        r"\Theta^{(L)} = \sum_{l=1}^{L} \Sigma^{(l)} \prod_{k=l+1}^{L} \dot\Sigma^{(k)} = \sum_{l=1}^{L} \Theta_l",
        ["Theta^(1) = Sigma^(1) and Theta^(l+1) = Theta^(l) dotSigma^(l+1) + Sigma^(l+1) "
         "(Jacot et al. 2018, arXiv:1806.07572)",
         "entrywise (Hadamard) products of kernel matrices, so scalar symbols stand for every entry"],
    )
    base = der.add_step("base case L = 1", T(1), S[1], "the sum has one term with an empty product (= 1)")
    base.checker = lambda: sp.simplify(sp.sympify(base.lhs).doit() - base.rhs) == 0
    linear_lhs = T(L) * D[L + 1] + S[L + 1]
    linear_rhs = sp.Sum(S[l] * P(l, L) * D[L + 1], (l, 1, L)) + S[L + 1]
    der.add_step("linearity", linear_lhs, linear_rhs, "a factor independent of l moves inside the sum")
    extended = product_simplify(P(l, L) * sp.Product(D[k], (k, L + 1, L + 1)))
    der.add_step("product extension", P(l, L) * D[L + 1], P(l, L + 1),
                 "adjacent ranges l+1..L and L+1..L+1 merge (valid also for l = L: empty product)",
                 checker=lambda: extended == P(l, L + 1)
                 and sp.Product(D[k], (k, L + 1, L + 1)).doit() == D[L + 1])
    top = sp.Sum(S[l] * P(l, L + 1), (l, L + 1, L + 1))
    der.add_step("last term", S[L + 1], top, "the l = L+1 term of T(L+1) has an empty product",
                 checker=lambda: sp.simplify(top.doit() - S[L + 1]) == 0)
    merged = sum_simplify(sp.Sum(S[l] * P(l, L + 1), (l, 1, L)) + top)
    der.add_step("sum combination", sp.Sum(S[l] * P(l, L + 1), (l, 1, L)) + top, T(L + 1),
                 "adjacent summation ranges 1..L and L+1..L+1 merge",
                 checker=lambda: merged == T(L + 1))

    def inductive_step() -> bool:
        # compose the checked rewrites: T(L) D[L+1] + Sigma[L+1] -> T(L+1)
        inside = sp.Sum(S[l] * product_simplify(P(l, L) * sp.Product(D[k], (k, L + 1, L + 1))), (l, 1, L))
        return (sp.simplify(linear_lhs - linear_rhs) == 0 and sum_simplify(inside + top) == T(L + 1))

    der.add_step("inductive step", linear_lhs, T(L + 1),
                 "the NTK recursion maps the telescoped sum at depth L to the one at depth L+1",
                 checker=inductive_step)

    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))  # None would be unseeded

    def numeric_check() -> bool:
        for depth in range(1, max_numeric_depth + 1):
            sig = [sp.Rational(int(v), 97) for v in rng.integers(-500, 500, depth + 1)]
            dot = [sp.Rational(int(v), 89) for v in rng.integers(-500, 500, depth + 1)]
            theta = sig[1]
            for n in range(2, depth + 1):
                theta = theta * dot[n] + sig[n]
            telescoped = sum(sig[m] * sp.prod(dot[m + 1:depth + 1]) for m in range(1, depth + 1))
            if theta != telescoped:
                return False
        return True

    der.add_step(f"exact check, L = 1..{max_numeric_depth}", r"\Theta^{(L)}", r"\sum_l \Theta_l",
                 "recursion vs telescoped sum at random rationals, exact arithmetic", checker=numeric_check)
    der.conclusion = sp.Eq(sp.Function(r"\Theta")(L), T(L))
    return der
