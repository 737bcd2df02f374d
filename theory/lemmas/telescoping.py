"""Layer-wise NTK telescoping (part of :mod:`theory.lemmas`)."""
from __future__ import annotations

import functools
from typing import List, Tuple

import numpy as np
import sympy as sp
from sympy.simplify.simplify import product_simplify, sum_simplify

from theory.derivation import Derivation
from theory.validation import check_positive_int

from theory.lemmas._common import EPS, NumericCheck, _finish

__all__ = ["ntk_telescoping_lemma", "ntk_telescoping_check", "ntk_by_recursion", "ntk_by_layer_sum"]


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
