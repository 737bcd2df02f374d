"""Why some approximate-Fisher NGD schemes are NOT isotropic in function space (derived), plus the
shared result types :class:`IsotropyResult` and :class:`NotIsotropic`.

Cases (each a checked :class:`~theory.derivation.Derivation`):

* **diagonal Fisher** -- a 2-sample, 2-parameters-per-layer symbolic Jacobian for which
  ``J diag(F)^{-1} J^T / N`` has a nonzero off-diagonal entry and unequal diagonal entries;
* **fixed damping rho > 0** -- ``Theta (Theta + rho I)^{-1}`` has eigenvalues
  ``lambda / (lambda + rho)``, equal for all ``lambda`` only if the spectrum is flat;
* **singular layer Grams** (width < N) -- ``J_l J_l^+`` is a projection of rank < N, not ``I``;
* unit-wise with ``C > 1`` -- see :func:`theory.unit_wise_theory.multi_output_derivation`.

>>> diagonal_fisher_derivation().verified
True
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_positive_int

__all__ = [
    "NotIsotropic", "IsotropyResult", "diagonal_fisher_derivation", "damping_derivation",
    "singular_layer_gram_derivation"
]


def cached_derivation(builder):
    """Build a derivation once per argument tuple (they are deterministic and checked on build);
    every call returns an independent deep copy, so callers may extend it."""
    cached = functools.lru_cache(maxsize=None)(builder)

    @functools.wraps(builder)
    def wrapper(*args, **kwargs):
        return copy.deepcopy(cached(*args, **kwargs))
    wrapper.cache_clear = cached.cache_clear
    return wrapper


class NotIsotropic(ValueError):
    """Raised when ``J G^+ J^T / N`` is not ``alpha I``; carries the derived reason.

    Attributes: ``reason`` (sentence), ``failed_assumption`` (short name), ``derivation``.
    """

    def __init__(self, reason: str, failed_assumption: str = "", derivation: Optional[Derivation] = None):
        super().__init__(reason)
        self.reason = reason
        self.failed_assumption = failed_assumption
        self.derivation = derivation


@dataclass
class IsotropyResult:
    """``value`` (exact SymPy alpha), the ``conditions`` it needs, its ``derivation``; ``exact_at_finite_width``
    says whether ``J G^+ J^T / N = alpha I`` holds exactly at finite width (True) or only as M -> infinity."""

    approximation: str
    value: sp.Expr
    conditions: List[str] = field(default_factory=list)
    derivation: Optional[Derivation] = None
    exact_at_finite_width: bool = True
    notes: List[str] = field(default_factory=list)
    failed_assumption: Optional[str] = None

    @property
    def learning_rate(self) -> sp.Expr:
        """``eta_opt = 1 / alpha`` (one-step convergence on the training set)."""
        return sp.simplify(1 / self.value)


@cached_derivation
def diagonal_fisher_derivation() -> Derivation:
    """Entry-wise diagonal Fisher is not isotropic: a symbolic 2-sample counterexample.

    Two layers with two parameters each and a generic 2 x 4 Jacobian ``J`` (``N = 2``, ``C = 1``):
    ``diag(F)_p = sum_n J_np^2 / N``; the (1,2) entry of ``J diag(F)^{-1} J^T / N`` is
    ``sum_p J_1p J_2p / sum_n J_np^2``, a nonzero rational function, so no scalar ``alpha`` works.
    """
    a = sp.symbols("a1:5", positive=True)
    b = sp.symbols("b1:5", positive=True)
    J = sp.Matrix([a, b])  # rows: samples; columns: (layer 1: p1, p2), (layer 2: p3, p4)
    N = 2
    Fdiag = sp.diag(*[(J[0, p] ** 2 + J[1, p] ** 2) / N for p in range(4)])
    op = J * Fdiag.inv() * J.T / N
    off = sum(a[p] * b[p] / (a[p] ** 2 + b[p] ** 2) for p in range(4))
    d = Derivation("Diagonal Fisher is not isotropic", r"J\,\mathrm{diag}(F)^{-1}J^T/N \neq \alpha I",
                   ["N = 2 samples, C = 1, two layers with two parameters each, generic positive entries"])
    d.add_step("off-diagonal entry", op[0, 1], off, "sum_p J_1p J_2p / (J_1p^2 + J_2p^2)",
               checker=lambda: sp.cancel(sp.together(op[0, 1] - off)) == 0)
    d.add_step("off-diagonal entry is nonzero (every term > 0)", sp.Integer(int(off.is_positive is True)), 1,
               "all entries positive, so each term is positive")
    diag_gap = op[0, 0] - op[1, 1]
    gap_value = sp.nsimplify(diag_gap.subs(dict(zip(a + b, [1, 2, 3, 4, 1, 1, 1, 1]))))
    d.add_step("diagonal entries differ at a = (1,2,3,4), b = (1,1,1,1)",
               r"\Theta_{G,11} - \Theta_{G,22}", gap_value,
               "sum_p J_np^2 / (J_1p^2 + J_2p^2) depends on the sample n; the value is nonzero",
               checker=lambda: gap_value != 0 and sp.simplify(diag_gap.subs(
                   dict(zip(a + b, [1, 2, 3, 4, 1, 1, 1, 1]))) - gap_value) == 0)
    d.conclusion = op
    d.check()
    return d


@cached_derivation
def damping_derivation() -> Derivation:
    """Fixed ``rho > 0``: ``Theta_G = Theta (Theta + rho I)^{-1}``, eigenvalues ``lambda/(lambda + rho)``."""
    l1, l2, rho = sp.symbols("lambda1 lambda2 rho", positive=True)
    Theta = sp.diag(l1, l2)  # eigenbasis of Theta (symmetric p.d.)
    op = Theta * (Theta + rho * sp.eye(2)).inv()
    d = Derivation("Damped NGD (rho > 0) is not isotropic",
                   r"\Theta(\Theta + \rho I)^{-1} = \alpha I \iff \lambda_i \text{ all equal}",
                   ["rho > 0 fixed (not taken to 0)", "Theta symmetric positive definite"])
    d.add_step("eigenvalues lambda/(lambda + rho)", op, sp.diag(l1 / (l1 + rho), l2 / (l2 + rho)),
               "Theta and (Theta + rho I)^{-1} share eigenvectors")
    gap = sp.factor(op[0, 0] - op[1, 1])
    d.add_step("difference of two eigenvalues", gap, rho * (l1 - l2) / ((l1 + rho) * (l2 + rho)),
               "zero iff lambda1 = lambda2 (rho > 0): isotropic only for a flat spectrum")
    d.add_step("rho -> 0 recovers isotropy", sp.limit(op[0, 0], rho, 0), 1, "")
    d.conclusion = gap
    d.check()
    return d


@cached_derivation
def singular_layer_gram_derivation(seed: int = 0) -> Derivation:
    """Width < N: ``J_l`` (N x P_l, P_l < N) has rank < N, so ``J_l J_l^+`` is a projection of rank
    ``P_l < N`` and cannot equal ``I`` (its trace is ``P_l``, not ``N``)."""
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))  # None would be unseeded
    N, P = 5, 3
    Jl = rng.standard_normal((N, P))
    proj = Jl @ np.linalg.pinv(Jl)
    d = Derivation("Singular layer Gram (P_l < N) breaks isotropy", r"\mathrm{tr}(J_l J_l^+) = P_l < N",
                   ["a layer Jacobian J_l with fewer columns than rows"])
    d.add_step("J_l J_l^+ is an orthogonal projection", "J_l J_l^+", "(J_l J_l^+)^2",
               "Penrose condition J J^+ J = J", checker=lambda: np.allclose(proj @ proj, proj, atol=1e-12))
    d.add_step("its trace is the rank P_l = 3 < N = 5", sp.Integer(int(round(np.trace(proj)))), P,
               "a multiple of I with trace 3 in dimension 5 would be (3/5) I, a non-projection")
    d.add_step("it is not a multiple of I", sp.Integer(int(np.abs(proj - np.trace(proj) / N * np.eye(N)).max() > 1e-3)),
               1, "eigenvalues are 1 (x3) and 0 (x2)")
    d.conclusion = sp.Integer(P)
    d.check()
    return d
