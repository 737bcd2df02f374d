"""Activation functions, each defined once as a SymPy expression.

One definition feeds every layer of the project: the symbolic kernels (``theory``), the numeric
dual kernels and the finite networks (``numerics``).  The derivative is always *derived*
(``sympy.diff``), never written by hand, and so is the active fraction
``gamma = P(phi'(u) != 0)`` used by unit-wise NGD.

Example
-------
>>> from theory.activations import get_activation
>>> act = get_activation("relu")
>>> act.derivative_expr
Piecewise((0, u < 0), (1, True))
>>> act.active_fraction()
1/2
>>> import numpy as np
>>> act.phi(np.array([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Dict, Optional

import numpy as np
import scipy.special
import sympy as sp

__all__ = ["Activation", "get_activation", "available_activations", "register_activation", "u"]

#: The one symbol every activation expression is written in.
u = sp.Symbol("u", real=True)

_LAMBDIFY_MODULES = [{"erf": scipy.special.erf, "erfc": scipy.special.erfc}, "numpy"]


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity ``phi`` given as a SymPy expression in :data:`u`.

    Attributes
    ----------
    name:
        Registry name (``"relu"``, ``"erf"``, ...).
    expr:
        ``phi(u)`` as a SymPy expression.
    stable_numeric, stable_derivative:
        Optional overflow-safe NumPy implementations of ``phi`` and ``phi'``; they must agree
        with the lambdified expressions wherever those are finite (tested).
    description:
        One line for reports.
    """

    name: str
    expr: sp.Expr
    description: str = ""
    stable_numeric: Optional[Callable[[np.ndarray], np.ndarray]] = field(default=None, compare=False)
    stable_derivative: Optional[Callable[[np.ndarray], np.ndarray]] = field(default=None, compare=False)

    # -- symbolic -------------------------------------------------------------------------
    @cached_property
    def derivative_expr(self) -> sp.Expr:
        """``phi'(u)``, derived with ``sympy.diff`` (left unsimplified: e.g. ``1 - tanh(u)**2`` is
        the numerically stable form, ``cosh(u)**-2`` overflows)."""
        return sp.diff(self.expr, u)

    @cached_property
    def is_piecewise(self) -> bool:
        return bool(self.expr.has(sp.Piecewise))

    @cached_property
    def is_positively_homogeneous(self) -> bool:
        """True when ``phi(c u) = c phi(u)`` for every ``c > 0`` (relu, linear, leaky relu)."""
        c, t = sp.symbols("c t", positive=True)
        for sign in (1, -1):  # check both half-lines so piecewise conditions resolve
            diff = self.expr.subs(u, sign * c * t) - c * self.expr.subs(u, sign * t)
            if sp.simplify(diff) != 0:
                return False
        return True

    # -- numeric --------------------------------------------------------------------------
    @cached_property
    def _phi_lambdified(self) -> Callable[[np.ndarray], np.ndarray]:
        return sp.lambdify(u, self.expr, modules=_LAMBDIFY_MODULES)

    @cached_property
    def _dphi_lambdified(self) -> Callable[[np.ndarray], np.ndarray]:
        return sp.lambdify(u, self.derivative_expr, modules=_LAMBDIFY_MODULES)

    def phi(self, x: np.ndarray) -> np.ndarray:
        """Evaluate ``phi`` elementwise (float64, same shape as ``x``)."""
        return self._evaluate(self.stable_numeric or self._phi_lambdified, x, "phi")

    def dphi(self, x: np.ndarray) -> np.ndarray:
        """Evaluate ``phi'`` elementwise (float64, same shape as ``x``)."""
        return self._evaluate(self.stable_derivative or self._dphi_lambdified, x, "phi'")

    def _evaluate(self, f, x, what: str) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.broadcast_to(np.asarray(f(x), dtype=float), x.shape).copy()
        bad = ~np.isfinite(y) & np.isfinite(x)
        if bad.any():
            raise FloatingPointError(
                f"{self.name}: {what} is not finite at finite input {x[bad].flat[0]!r}; "
                "give the activation a stable_numeric/stable_derivative implementation"
            )
        return y

    # -- unit-wise constant ---------------------------------------------------------------
    def active_fraction(self, variance: sp.Expr = sp.Integer(1)) -> sp.Expr:
        """``gamma = P(phi'(u) != 0)`` for ``u ~ N(0, variance)``, derived from ``phi'``.

        Pieces of a piecewise derivative that vanish identically contribute the Gaussian mass
        of their interval; an analytic, non-constant piece vanishes only on a null set.

        >>> get_activation("tanh").active_fraction()
        1
        """
        variance = sp.sympify(variance)
        d = sp.piecewise_fold(self.derivative_expr)
        pieces = d.args if isinstance(d, sp.Piecewise) else ((d, sp.true),)
        covered: sp.Set = sp.S.EmptySet
        zero_mass = sp.Integer(0)
        for piece_expr, cond in pieces:
            region = (cond.as_set() if cond is not sp.true else sp.S.Reals).intersect(sp.S.Reals)
            region = region - covered  # Piecewise: first matching condition wins
            covered = covered.union(region)
            if sp.simplify(piece_expr) == 0:
                zero_mass += _gaussian_mass(region, variance)
            elif piece_expr.is_constant() and piece_expr != 0:
                continue
            # analytic non-constant piece: zeros are isolated, Gaussian mass 0
        return sp.nsimplify(sp.simplify(1 - zero_mass))


def _gaussian_mass(region: sp.Set, variance: sp.Expr) -> sp.Expr:
    """Mass of ``region`` (a union of intervals) under ``N(0, variance)``."""
    if region.is_empty:
        return sp.Integer(0)
    if isinstance(region, sp.Union):
        return sum((_gaussian_mass(a, variance) for a in region.args), sp.Integer(0))
    if isinstance(region, sp.Interval):
        cdf = lambda t: (1 + sp.erf(t / sp.sqrt(2 * variance))) / 2  # noqa: E731
        return sp.simplify(cdf(region.end) - cdf(region.start))
    if isinstance(region, sp.FiniteSet):
        return sp.Integer(0)
    raise ValueError(f"cannot measure the region {region!r} where phi' vanishes")


def _stable_softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


_REGISTRY: Dict[str, Activation] = {}


def register_activation(activation: Activation) -> Activation:
    """Add an activation to the registry (names are unique)."""
    if not isinstance(activation, Activation):
        raise TypeError(f"activation must be an Activation, got {type(activation).__name__}")
    if activation.name in _REGISTRY:
        raise ValueError(f"activation name {activation.name!r} is already registered")
    _REGISTRY[activation.name] = activation
    return activation


for _act in (
    Activation("relu", sp.Piecewise((0, u < 0), (u, True)), "rectified linear max(0, u)"),
    Activation("erf", sp.erf(u), "Gauss error function erf(u)"),
    Activation("tanh", sp.tanh(u), "hyperbolic tangent"),
    Activation("linear", u, "identity (deep linear network)"),
    Activation("gelu", u / 2 * (1 + sp.erf(u / sp.sqrt(2))), "Gaussian error linear unit u Phi(u)"),
    Activation("softplus", sp.log(1 + sp.exp(u)), "log(1 + e^u)",
               stable_numeric=_stable_softplus, stable_derivative=scipy.special.expit),
    Activation("sin", sp.sin(u), "sine (random Fourier features)"),
    Activation("leaky_relu", sp.Piecewise((u / 10, u < 0), (u, True)), "leaky relu, slope 0.1 for u < 0"),
):
    register_activation(_act)


def available_activations() -> tuple:
    """Names of all registered activations."""
    return tuple(_REGISTRY)


def get_activation(name) -> Activation:
    """Look up an activation by name (an :class:`Activation` is passed through).

    Raises ``ValueError`` naming the allowed names for an unknown name.
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str) or Activation, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"activation={name!r} is unknown; allowed: {', '.join(sorted(_REGISTRY))}"
        ) from None
