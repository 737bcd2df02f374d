r"""Dual kernels of the activations: Gaussian expectations that drive the infinite-width recursion.

For a centred bivariate Gaussian ``(u, u') ~ N(0, [[q11, q12], [q12, q22]])`` the *dual kernel*
of an activation ``phi`` and its *derivative kernel* are

.. math::  V(q) = E[\phi(u)\phi(u')], \qquad \dot V(q) = E[\phi'(u)\phi'(u')].

Price's theorem gives ``dV/dq12 = dotV`` for every activation with a weak derivative of at most
polynomial growth.

Closed forms (each written once as a SymPy expression in ``q11, q12, q22``; the float64 code
evaluates a rearrangement of it that neither cancels nor overflows, see "Accuracy" below):

* every *positively homogeneous* activation ``phi(u) = a u + b relu(u)`` (relu, linear, leaky relu;
  the slopes ``a = -phi(-1)``, ``a + b = phi(1)`` are read off the SymPy expression): the
  arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009),
  ``V = a(a+b) q12 + b^2 k1``, ``dotV = a(a+b) + b^2 k0``, with ``t = arccos(q12/sqrt(q11 q22))``,
  ``k1 = (sqrt(q11 q22 - q12^2) + (pi - t) q12)/(2 pi)``, ``k0 = (pi - t)/(2 pi)``.
  (``E[u relu(u')] = q12/2`` by the symmetry ``(u,u') -> (-u,-u')``.)
* ``erf(c u)``: the arcsine kernel (Williams 1997)
  ``V = (2/pi) arcsin(2c^2 q12 / sqrt((1+2c^2 q11)(1+2c^2 q22)))`` and
  ``dotV = (4c^2/pi) / sqrt((1+2c^2 q11)(1+2c^2 q22) - 4c^4 q12^2)`` (a Gaussian integral of
  ``exp(-c^2(u^2+u'^2))``).
* ``sin(c u)``: ``V = exp(-c^2 (q11+q22)/2) sinh(c^2 q12)``, ``dotV = c^2 exp(-c^2(q11+q22)/2) cosh(c^2 q12)``
  (product-to-sum and ``E cos(w) = exp(-var(w)/2)``).
* ``gelu(u) = u Phi(u)``: derived here with Stein's lemma ``E[u f] = q11 E[d_u f] + q12 E[d_u' f]``
  and the orthant probability ``E[Phi(u)Phi(u')] = 1/4 + arcsin(q12/sqrt((1+q11)(1+q22)))/(2 pi)``:
  ``V = q12/4 + q12 arcsin(q12/sqrt((1+q11)(1+q22)))/(2 pi)
  + (q11 q22 + q12^2 (1/(1+q11) + 1/(1+q22) - 1)) / (2 pi sqrt((1+q11)(1+q22) - q12^2))``;
  its derivative kernel is ``dV/dq12`` (Price's theorem), checked against quadrature of
  ``E[phi' phi']`` directly.

Every closed form is *checked*, not trusted: against a 30-digit mpmath quadrature of the 2-D
Gaussian integral (:func:`reference_expectation`), and, where the derivative kernel was written
independently, against the symbolic identity ``dV/dq12 = dotV`` (:func:`price_identity_holds`).

Activations without a closed form (tanh, softplus, anything registered later) use an adaptive
Gauss-Kronrod quadrature with an a-posteriori error estimate (:func:`adaptive_dual`).

Accuracy (float64; checked against an independent mpmath reference on a grid of variances
1e-12..1e12 and up to the float64 limit, correlations -1, -1 + 1e-15, ..., 0, ..., 1 - 1e-15, 1:
tests/theory/test_kernel_accuracy.py and the claim ``kernels.accuracy_grid``)
-------------------------------------------------------------------------------------------------
The covariance enters through :func:`covariance_geometry`: ``rho`` and the complements ``1 - rho^2``
(from ``det = q11 q22 - q12^2`` in error-free arithmetic on the mantissas), ``1 - rho``, ``1 + rho``, each
to a few ulp -- never as a difference of nearly equal products.  For every registered activation,
``V`` and ``dotV`` are accurate to ``QUADRATURE_RTOL = 1e-12`` relative for variances from 0 up to the
float64 limit (~1.8e308) and every correlation in ``[-1, 1]``, with these qualifications:

* relu, leaky relu, linear: ``V = sqrt(q11) sqrt(q22) [a(a+b) rho + b^2 k1(rho)]`` (positive homogeneity;
  the product of square roots never overflows), ``k1``, ``k0`` from ``phi = pi - arccos rho =
  2 atan2(sqrt(1+rho), sqrt(1-rho))`` and the series of ``sin phi - phi cos phi`` for ``phi < 1/2``
  (near ``rho = -1``, where relu's ``V ~ (1+rho)^{3/2}``).  Rounding error ~1e-15 relative to the
  larger of the two terms (leaky relu changes sign at one negative ``rho``: there the relative error
  is bounded by the conditioning of that root, ~1e-15 of the terms).  ``dotV`` is undefined at zero
  variance (``phi'`` jumps at 0): ValueError.
* erf: ``V = (2/pi) atan2(x, sqrt(1 - x^2))`` with ``1 - x^2`` a sum of non-negative terms; ~1e-15.
* sin: exp(-q)-damped, overflow-free forms (``_sin_numeric``); ~1e-15 relative, except that results
  below ~1e-300 underflow (e.g. ``V`` at ``q11 + q22 - 2|q12| > 1400``: absolute error < 1e-300).
* gelu: the closed form rearranged (``_gelu_numeric``); where its two terms cancel by more than
  ``CANCELLATION_LIMIT = 100`` (correlation near -1 at large variance), and for variances above 1e150
  (erf as well), the adaptive quadrature is used instead; ~1e-14.
* tanh, softplus (and any registered activation with a piecewise-linear asymptote): the adaptive
  quadrature (:func:`adaptive_dual`): tier A, the nested trapezoid (129, then 257 nodes per axis in
  Cholesky coordinates, variances <= 20) accepted when ``|T_h - T_2h| <= 1e-7 |T_h|`` (geometric
  convergence: T_h then errs by ~1e-14); tier B, composite Gauss-Kronrod in ``u``-space on the localized
  remainder of the activation (its piecewise-linear asymptote is integrated in closed form), accepted
  when ``|K15 - G7| <= QUADRATURE_ESTIMATE_RTOL = 1e-8`` relative (the Kronrod result is then ~1e-14;
  measured) after at most ``MAX_QUADRATURE_LEVEL`` refinements, otherwise ValueError naming the
  tolerance.  Odd activations' value kernels at ``|rho| < 0.02`` via Price's integral of ``dotV``.
  Measured worst error over the grid 1e-14.  An activation without such an asymptote is integrated
  directly up to variance 655 (ValueError naming the limit beyond).
* Results that underflow (below ~1e-300) carry an absolute error below 1e-300 instead; at the very edge
  (variances ~1e308) erf's Price path sees subnormal intermediate values: 3e-13 measured there.

>>> import numpy as np
>>> k = dual_kernel("relu")
>>> k.method, k.closed_form
('closed form', True)
>>> float(k.value(2.0, 2.0, 2.0))              # E[relu(u)^2] = q/2
1.0
>>> float(k.derivative(1.0, 0.0, 1.0))         # P(u > 0, u' > 0) = 1/4 for independent u, u'
0.25
>>> round(float(dual_kernel("tanh").value(1.0, 0.5, 1.0)), 10)
0.1863244132
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, Optional, Tuple

import mpmath
import numpy as np
import scipy.special
import sympy as sp

from theory.activations import Activation, get_activation, u

__all__ = [
    "DualKernel", "dual_kernel", "ClosedForm", "closed_form", "available_closed_forms", "arccos_kernels",
    "homogeneous_slopes", "price_identity_holds", "snap_correlations", "quadrature_rule", "quadrature_dual",
    "adaptive_dual", "covariance_geometry", "CovarianceGeometry", "arccos_numeric",
    "refinement_level", "mp_gaussian_expectation", "reference_expectation", "mp_reference", "closed_form_error",
    "quadrature_error", "QUADRATURES", "DEFAULT_QUADRATURE", "DEFAULT_QUADRATURE_NODES", "MAX_REFINEMENTS",
    "QUADRATURE_RTOL", "QUADRATURE_ESTIMATE_RTOL", "MAX_QUADRATURE_LEVEL", "CANCELLATION_LIMIT",
    "q11", "q12", "q22", "rho"
]

#: Entries of the Gaussian covariance. ``q11, q22 > 0`` (variances), ``q12`` real.
q11, q22 = sp.symbols("q11 q22", positive=True)
q12 = sp.Symbol("q12", real=True)
#: Correlation ``q12 / sqrt(q11 q22)`` used by the homogeneous activations.
rho = sp.Symbol("rho", real=True)

#: The default numeric rule: the adaptive Gauss-Kronrod quadrature (:func:`adaptive_dual`).  The two
#: fixed rules of earlier versions stay available for comparison (``quadrature="trapezoid"``: the
#: trapezoidal rule on ``[-9, 9]`` in Cholesky coordinates with ``DEFAULT_QUADRATURE_NODES`` nodes per
#: axis, ~1e-14 at variances <= 3, but it stops refining at variance ~40 (33 % off at 1e4);
#: ``"gauss-hermite"``: 1e-9 at variance 1); they have no error estimate.
DEFAULT_QUADRATURE = "adaptive"
DEFAULT_QUADRATURE_NODES = 131
_TRAPEZOID_HALF_RANGE = 9.0  # Gaussian tail beyond 9 sigma: < 3e-19
QUADRATURES = ("adaptive", "trapezoid", "gauss-hermite")
ADAPTIVE_METHOD = "adaptive (trapezoid 129/257, then Gauss-Kronrod K15/G7; rtol 1e-12)"

_NUMPY_MODULES = [{"erf": scipy.special.erf, "asin": np.arcsin, "acos": np.arccos}, "numpy"]


# ------------------------------------------------------------------------------------------------
# closed forms
# ------------------------------------------------------------------------------------------------
def arccos_kernels() -> Tuple[sp.Expr, sp.Expr]:
    """The arc-cosine kernels ``(k1, k0)`` of degree 1 and 0: ``E[relu relu]`` and ``E[step step]``.

    >>> k1, k0 = arccos_kernels()
    >>> sp.simplify(k0.subs({q11: 1, q22: 1, q12: 0}))
    1/4
    """
    t = sp.acos(q12 / sp.sqrt(q11 * q22))
    k1 = (sp.sqrt(q11 * q22 - q12**2) + (sp.pi - t) * q12) / (2 * sp.pi)
    k0 = (sp.pi - t) / (2 * sp.pi)
    return k1, k0


def homogeneous_slopes(activation: Activation) -> Optional[Tuple[sp.Expr, sp.Expr]]:
    """``(a, b)`` with ``phi(u) = a u + b relu(u)``, or ``None`` when ``phi`` is not positively homogeneous.

    >>> homogeneous_slopes(get_activation("leaky_relu"))
    (1/10, 9/10)
    """
    if not activation.is_positively_homogeneous:
        return None
    a = -activation.expr.subs(u, -1)
    b = activation.expr.subs(u, 1) - a
    t = sp.Symbol("t", positive=True)
    for sign in (1, -1):  # the representation must hold on both half-lines
        lhs = activation.expr.subs(u, sign * t)
        rhs = a * sign * t + b * (t if sign > 0 else 0)
        if sp.simplify(lhs - rhs) != 0:
            return None
    return sp.nsimplify(a), sp.nsimplify(b)


@dataclass(frozen=True)
class ClosedForm:
    """A closed-form pair ``(V, dotV)`` and how it was obtained."""

    value: sp.Expr
    derivative: sp.Expr
    family: str
    derivative_independent: bool  # written independently of V (so Price's identity is a real check)
    numeric: str = ""             # the stable float64 evaluator (``_NUMERIC_FAMILIES``)
    params: Tuple[float, ...] = ()


def _match_scaled(expr: sp.Expr, func) -> Optional[sp.Expr]:
    c = sp.Wild("c", exclude=[u])
    m = expr.match(func(c * u))
    if m is None or m[c] == 0:
        return None
    return m[c]


def closed_form(activation) -> Optional[ClosedForm]:
    """The closed-form dual kernels of an activation, or ``None`` when none is known (cached).

    >>> closed_form("erf").family
    'arcsine (erf)'
    >>> closed_form("tanh") is None
    True
    """
    return _closed_form(get_activation(activation))


@lru_cache(maxsize=None)
def _closed_form(act: Activation) -> Optional[ClosedForm]:
    slopes = homogeneous_slopes(act)
    if slopes is not None:
        a, b = slopes
        k1, k0 = arccos_kernels()
        return ClosedForm(a * (a + b) * q12 + b**2 * k1, a * (a + b) + b**2 * k0,
                          "arc-cosine (positively homogeneous)", True, "homogeneous", (float(a), float(b)))
    c = _match_scaled(act.expr, sp.erf)
    if c is not None:
        c2 = c**2
        A, B = 1 + 2 * c2 * q11, 1 + 2 * c2 * q22
        value = 2 / sp.pi * sp.asin(2 * c2 * q12 / sp.sqrt(A * B))
        deriv = 4 * c2 / sp.pi / sp.sqrt(A * B - 4 * c2**2 * q12**2)
        return ClosedForm(value, deriv, "arcsine (erf)", True, "erf", (float(c2),))
    c = _match_scaled(act.expr, sp.sin)
    if c is not None:
        c2 = c**2
        damp = sp.exp(-c2 * (q11 + q22) / 2)
        return ClosedForm(damp * sp.sinh(c2 * q12), c2 * damp * sp.cosh(c2 * q12), "exponential (sin)", True, "sin",
                          (float(c2),))
    gelu = u * (1 + sp.erf(u / sp.sqrt(2))) / 2
    if sp.simplify(act.expr - gelu) == 0:
        A, B = 1 + q11, 1 + q22
        value = (q12 / 4 + q12 * sp.asin(q12 / sp.sqrt(A * B)) / (2 * sp.pi)
                 + (q11 * q22 + q12**2 * (1 / A + 1 / B - 1)) / (2 * sp.pi * sp.sqrt(A * B - q12**2)))
        return ClosedForm(value, sp.diff(value, q12), "Stein's lemma (gelu)", False, "gelu")
    return None


def price_identity_holds(form: ClosedForm) -> bool:
    """Symbolic check of ``dV/dq12 = dotV`` (Price's theorem): ``simplify(dV/dq12 - dotV) == 0``.

    A real check only when ``form.derivative_independent`` (for gelu the derivative kernel *is*
    ``dV/dq12``, and the mpmath quadrature of ``E[phi' phi']`` is what checks it).

    >>> price_identity_holds(closed_form("relu"))
    True
    """
    return bool(sp.simplify(sp.diff(form.value, q12) - form.derivative) == 0)




# ------------------------------------------------------------------------------------------------
# the public object
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DualKernel:
    """``V(q)`` and ``dotV(q)`` of one activation, numeric (vectorised) and, if closed, symbolic.

    ``value``/``derivative`` broadcast their three arguments (NumPy rules) and return float64.
    ``symbolic`` is ``(V, dotV)`` as SymPy expressions in :data:`q11`, :data:`q12`, :data:`q22`,
    or ``None``; ``method`` says how the numbers are computed.
    """

    activation: Activation
    closed_form: bool
    symbolic: Optional[Tuple[sp.Expr, sp.Expr]]
    method: str
    family: str = ""
    quadrature: Optional[str] = None
    nodes: Optional[int] = None
    _numeric: Optional[str] = field(default=None, repr=False, compare=False)
    _params: Tuple[float, ...] = field(default=(), repr=False, compare=False)
    _homogeneous: bool = False

    @property
    def name(self) -> str:
        return self.activation.name

    @property
    def is_homogeneous(self) -> bool:
        """True for positively homogeneous activations: ``V = sqrt(q11 q22) J1(rho)``, ``dotV = J0(rho)``."""
        return self._homogeneous

    def correlation_form(self, r: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(J1(rho), J0(rho))`` for a homogeneous activation, ``rho`` in ``[-1, 1]`` (one pass, shared
        subexpressions).  ``J1 = V(1, rho, 1)`` and ``J0 = dotV(1, rho, 1)``; ``1 -+ rho`` are formed from
        ``rho`` (use :meth:`value` with the covariance entries where ``1 - rho`` must be exact).

        >>> [round(float(x), 12) for x in dual_kernel("relu").correlation_form(np.array(0.0))]
        [0.159154943092, 0.25]
        """
        if not self._homogeneous:
            raise ValueError(f"activation={self.name!r} is not positively homogeneous: no correlation form")
        r = np.asarray(r, dtype=np.float64)
        sa, sb = self._params
        k1, k0 = arccos_numeric(r, 1.0 - r, 1.0 + r)
        j1 = sa * (sa + sb) * r + sb * sb * k1
        j0 = sa * (sa + sb) + sb * sb * k0
        return np.broadcast_to(j1, r.shape), np.broadcast_to(j0, r.shape)

    def value(self, q11, q12, q22, check: bool = True) -> np.ndarray:
        """``E[phi(u) phi(u')]`` elementwise."""
        return self._evaluate(q11, q12, q22, check)[0]

    def derivative(self, q11, q12, q22, check: bool = True) -> np.ndarray:
        """``E[phi'(u) phi'(u')]`` elementwise."""
        return self._evaluate(q11, q12, q22, check, want=(False, True))[1]

    def both(self, q11, q12, q22, check: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """``(value, derivative)`` in one pass."""
        return self._evaluate(q11, q12, q22, check, want=(True, True))

    # ---------------------------------------------------------------------------------------
    def _evaluate(self, a, c, b, check, want=(True, False)):
        a, c, b = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (a, c, b)))
        if check:
            _check_covariance(a, c, b)
        if self.closed_form:
            lo, hi = np.minimum(a, b), np.maximum(a, b)  # sorted variances: exactly symmetric in (q11, q22)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
                geo = covariance_geometry(lo, c, hi)
                value, deriv, bad = _NUMERIC_FAMILIES[self._numeric](self._params, lo, c, hi, geo, want)
            value = None if value is None else np.array(np.broadcast_to(value, a.shape), dtype=np.float64)
            deriv = None if deriv is None else np.array(np.broadcast_to(deriv, a.shape), dtype=np.float64)
            if bad is not None and np.any(bad):            # gelu terms that cancel: the quadrature instead
                bad = np.broadcast_to(bad, a.shape)
                v2, d2 = adaptive_dual(self.activation, lo[bad], c[bad], hi[bad], want)
                if value is not None:
                    value[bad] = v2
                if deriv is not None:
                    deriv[bad] = d2
            if self._homogeneous and deriv is not None and self.symbolic[1].has(q12):
                deriv = np.where((a == 0) | (b == 0), np.nan, deriv)  # direction-dependent limit: reported below
            out = (value, deriv)
        else:
            out = quadrature_dual(self.activation, a, c, b, self.nodes, want, self.quadrature)
        for arr, what in zip(out, ("value", "derivative")):
            if arr is not None and not np.all(np.isfinite(arr)):
                idx = np.argwhere(~np.isfinite(arr))[0]
                i = tuple(int(t) for t in idx)
                raise ValueError(
                    f"the {what} kernel of {self.name} is not finite at q11={a[i]!r}, q12={c[i]!r}, "
                    f"q22={b[i]!r}" + (" (zero variance: phi' of a homogeneous activation jumps at 0, "
                                       "so the limit depends on the direction; use sigma_b2 > 0 or "
                                       "drop zero inputs)" if (a[i] == 0 or b[i] == 0) else ""))
        return out


def _check_covariance(a, c, b) -> None:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(c))):
        raise ValueError("q11, q12, q22 must be finite")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError(f"q11 and q22 are variances and must be >= 0, got min {min(a.min(), b.min())!r}")
    # Cauchy-Schwarz |q12| <= sqrt(q11) sqrt(q22) (no overflow), with a relative allowance of 5e-11 for
    # kernels computed in float64
    excess = np.abs(c) > np.sqrt(a) * np.sqrt(b) * (1.0 + 5e-11)
    if np.any(excess):
        i = tuple(int(t) for t in np.argwhere(excess)[0])
        raise ValueError(f"not a covariance: q12^2 > q11 q22 at q11={a[i]!r}, q12={c[i]!r}, q22={b[i]!r}")


def snap_correlations(r: np.ndarray) -> np.ndarray:
    """Clip correlations to ``[-1, 1]`` and snap those within 8 ulp of +-1 to +-1, in place.

    For correlations *computed from a Gram matrix* (:mod:`theory.kernels`): relu-type derivative
    kernels ``(pi - arccos rho)/(2 pi)`` have a square-root singularity at ``rho = +-1``, so the
    rounding error of ~1e-16 that the Gram product leaves in the correlation of (anti)parallel inputs
    would become a 1e-8 error in ``dotSigma``; correlations that close to +-1 are parallel to the
    precision of the Gram matrix.  (:class:`DualKernel` itself never snaps: given exact covariance
    entries it evaluates ``1 - rho`` exactly, also at ``rho = 1 - 1e-15``.)

    >>> snap_correlations(np.array([1 + 1e-16, 1 - 4e-16, 0.5, -1 - 1e-15])).tolist()
    [1.0, 1.0, 0.5, -1.0]
    """
    np.clip(r, -1.0, 1.0, out=r)
    near = np.abs(r) >= 1.0 - 8 * np.finfo(np.float64).eps
    np.copysign(1.0, r, out=r, where=near)
    return r


@lru_cache(maxsize=None)
def _build(act: Activation, quadrature: str, nodes: int) -> DualKernel:
    form = closed_form(act)
    if form is None:
        method = (ADAPTIVE_METHOD if quadrature == "adaptive"
                  else f"{quadrature} n={nodes}")
        return DualKernel(act, False, None, method, "numeric", quadrature, nodes)
    return DualKernel(act, True, (form.value, form.derivative), "closed form", form.family, None, None,
                      form.numeric, form.params, form.numeric == "homogeneous")


def dual_kernel(activation, quadrature: str = DEFAULT_QUADRATURE,
                nodes: int = DEFAULT_QUADRATURE_NODES) -> DualKernel:
    """The :class:`DualKernel` of an activation (name or :class:`~theory.activations.Activation`).

    ``quadrature`` only matters for activations without a closed form (``"adaptive"``: the error-
    controlled default; ``"trapezoid"``/``"gauss-hermite"``: fixed rules with ``nodes`` per axis, kept
    for comparison, without an error estimate).

    >>> dual_kernel("erf").symbolic[0]
    2*asin(2*q12/(sqrt(2*q11 + 1)*sqrt(2*q22 + 1)))/pi
    >>> dual_kernel("tanh").method
    'adaptive (trapezoid 129/257, then Gauss-Kronrod K15/G7; rtol 1e-12)'
    """
    from theory.validation import check_choice, check_positive_int

    act = get_activation(activation)
    check_choice("quadrature", quadrature, QUADRATURES)
    check_positive_int("nodes", nodes, minimum=3)
    return _build(act, quadrature, int(nodes))


# ------------------------------------------------------------------------------------------------
# fixed rules (comparison only; no error estimate)
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def quadrature_rule(quadrature: str, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Nodes ``z`` and weights ``w`` with ``sum w f(z) ~ E[f(Z)]``, ``Z ~ N(0, 1)``.

    ``"trapezoid"``: ``n`` equispaced nodes on ``[-9, 9]``, weights ``h phi(z)``;
    ``"gauss-hermite"``: probabilists' Gauss-Hermite, weights normalised to sum to 1.

    >>> z, w = quadrature_rule("trapezoid", 131)
    >>> round(float(w.sum()), 15), round(float(w @ z**2), 14)
    (1.0, 1.0)
    """
    if quadrature == "trapezoid":
        z = np.linspace(-_TRAPEZOID_HALF_RANGE, _TRAPEZOID_HALF_RANGE, n)
        w = np.exp(-0.5 * z * z)
        return z, w / w.sum()  # = h phi(z) up to the truncated tail (< 1e-18) and rounding
    if quadrature == "gauss-hermite":
        z, w = np.polynomial.hermite_e.hermegauss(n)
        return z, w / np.sqrt(2.0 * np.pi)
    raise ValueError(f"quadrature={quadrature!r} is unknown; allowed: trapezoid, gauss-hermite")


#: the fixed trapezoidal step is halved ``ceil(1.5 log2(sigma/2))`` times for a largest standard deviation
#: ``sigma > 2``, at most this many times (reached at variance ~ 40: why the fixed rule fails beyond)
MAX_REFINEMENTS = 3


def refinement_level(max_variance: np.ndarray) -> np.ndarray:
    """How many times the fixed trapezoidal step is halved for a covariance with this larger variance.

    >>> refinement_level(np.array([0.3, 0.5, 4.0, 4.1, 16.0, 1e6])).tolist()
    [-1, -1, 0, 1, 2, 3]
    """
    with np.errstate(divide="ignore"):
        level = np.ceil(1.5 * np.log2(np.sqrt(np.maximum(max_variance, 1e-300)) / 2.0))
    level = np.clip(level, 0, MAX_REFINEMENTS).astype(int)
    level[np.asarray(max_variance) <= 0.5] = -1
    return level


def quadrature_dual(activation, q11_, q12_, q22_, n: int = DEFAULT_QUADRATURE_NODES, want=(True, True),
                    quadrature: str = DEFAULT_QUADRATURE, chunk_points: int = 2_000_000):
    r"""Numeric ``(V, dotV)`` vectorised over covariances: the adaptive rule (:func:`adaptive_dual`, the
    default) or a fixed tensor rule in Cholesky coordinates (``"trapezoid"``, ``"gauss-hermite"``:
    ``u = sqrt(qa) z1``, ``u' = a z1 + b z2``, ``n`` nodes per axis, no error estimate).

    >>> v, d = quadrature_dual("linear", np.array([2.0]), np.array([0.5]), np.array([1.0]), 41, quadrature="trapezoid")
    >>> round(float(v[0]), 12), round(float(d[0]), 12)
    (0.5, 1.0)
    """
    if quadrature == "adaptive":
        return adaptive_dual(activation, q11_, q12_, q22_, want)
    act = get_activation(activation)
    a11, a12, a22 = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (q11_, q12_, q22_)))
    shape = a11.shape
    lo, a12, hi = np.minimum(a11, a22).ravel(), a12.ravel(), np.maximum(a11, a22).ravel()
    s1 = np.sqrt(lo)
    slope = np.divide(a12, s1, out=np.zeros_like(a12), where=s1 > 0)
    scale = np.sqrt(np.maximum(hi - slope * slope, 0.0))
    value = np.empty(lo.size) if want[0] else None
    deriv = np.empty(lo.size) if want[1] else None
    levels = refinement_level(hi) if quadrature == "trapezoid" else np.zeros(lo.size, dtype=int)
    for level in np.unique(levels):
        idx = np.flatnonzero(levels == level)
        m = (n - 1) * 2 ** int(level) + 1 if level >= 0 else (n - 1) // 2 + 1
        z, w = quadrature_rule(quadrature, m)
        step = max(1, chunk_points // (m * m))
        for start in range(0, idx.size, step):
            sl = idx[start:start + step]
            u1 = s1[sl, None] * z[None, :]                                              # (c, m)
            u2 = slope[sl, None, None] * z[None, :, None] + scale[sl, None, None] * z[None, None, :]  # (c, m, m)
            if want[0]:
                value[sl] = (act.phi(u1) * (act.phi(u2) @ w)) @ w
            if want[1]:
                deriv[sl] = (act.dphi(u1) * (act.dphi(u2) @ w)) @ w
    return (value.reshape(shape) if want[0] else None, deriv.reshape(shape) if want[1] else None)


# ------------------------------------------------------------------------------------------------
# accuracy targets of the numeric layer (kernel-specific; derivations next to each)
# ------------------------------------------------------------------------------------------------
#: The relative accuracy every dual kernel is built to (and checked against the mpmath reference:
#: tests/theory/test_kernel_accuracy.py, claim ``kernels.accuracy_grid``).
QUADRATURE_RTOL = 1e-12
#: Acceptance threshold of the a-posteriori estimate ``|K15 - G7|`` of the Gauss-Kronrod rule (relative
#: to the result).  ``|K15 - G7|`` is the error of the 7-point Gauss rule; the 15-point Kronrod result
#: that is returned has degree 23 instead of 13, so for an integrand analytic in a Bernstein ellipse of
#: parameter r its error is ~r^-30 against r^-14: about the 2.1th power of the estimate (QUADPACK
#: assumes the 1.5th).  Measured on tanh and softplus over variances 1e-3..1e12: true error <= estimate^1.75
#: (exponents 1.75..2.9), so an estimate <= 1e-8 leaves the Kronrod result at <= ~1e-14, two decades below
#: QUADRATURE_RTOL; the mpmath grid measures the actual errors (claim kernels.accuracy_grid).
QUADRATURE_ESTIMATE_RTOL = 1e-8
#: Each refinement level halves every piece of both axes (4x the work); entries whose estimate is
#: still too large after this many levels raise ``ValueError`` naming QUADRATURE_ESTIMATE_RTOL.
MAX_QUADRATURE_LEVEL = 3
#: Gaussian half-width of every integration window, in standard deviations: the mass outside is
#: erfc(10/sqrt 2) = 1.5e-23, so even an integrand growing like u^2 loses < 1e-20 relative.
GAUSSIAN_HALF_WIDTH = 10.0
#: ``psi = A + r`` with ``A`` the piecewise-linear asymptote: ``r`` counts as zero beyond the radius
#: where ``|r(t)| <= REMAINDER_RTOL (1 + |A(t)|)`` (checked at the radius and twice it, both signs).
REMAINDER_RTOL = 1e-20
_RADII = (8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
#: An activation without such an asymptote (none registered today) is integrated directly; its
#: window ``10 sigma`` must then stay within this many units of ``u`` (activations vary on the
#: scale ~1), i.e. variances up to ``(MAX_DIRECT_HALF_WIDTH / 10)^2 = 655`` -- beyond it ValueError.
MAX_DIRECT_HALF_WIDTH = 256.0
#: Odd activations: ``V = int_0^q12 dotV(q11, t, q22) dt`` (Price; ``V(q12 = 0) = 0``) for
#: ``|rho| < PRICE_CORRELATION``, where the direct integral of ``phi phi`` cancels (relative error
#: ~ eps/|rho| <= 1e-14 above it).  ``dotV`` is analytic in ``t`` for ``|t| < sqrt(q11 q22)``, so the
#: 4-point Gauss rule on ``[0, q12]`` (``|q12| <= 0.02 sqrt(q11 q22)``: Bernstein parameter >= 99) errs
#: by < 99^-8 = 1e-16.
PRICE_CORRELATION = 0.02
_PRICE_NODES = 4
#: gelu's closed form is a sum of terms that cancel near rho = -1 at large variance (the value is
#: O(q^-1/2), the terms O(q^1/2)); entries whose terms cancel by more than this factor (relative
#: rounding error > ~CANCELLATION_LIMIT * 4 eps = 9e-14) are computed by the quadrature instead.
CANCELLATION_LIMIT = 100.0
#: erf and gelu: variances (times 2c^2) beyond which the closed form's small terms 1/(1+q) would be
#: subnormal; the quadrature is used there instead
HUGE_VARIANCE = 1e150

_GK_X = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                  0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                  0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                  0.207784955007898467600689403773245, 0.0])
_GK_WK = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                   0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                   0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                   0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_GK_WG = np.array([0.0, 0.129484966168869693270611432679082, 0.0, 0.279705391489276667901467771423780,
                   0.0, 0.381830050505118944950369775488975, 0.0, 0.417959183673469387755102040816327])
#: the 15 Kronrod nodes on [-1, 1], their weights, and the 7-point Gauss weights on the same nodes
GK15_NODES = np.concatenate([-_GK_X[:-1], _GK_X[::-1]])
GK15_WEIGHTS = np.concatenate([_GK_WK[:-1], _GK_WK[::-1]])
G7_WEIGHTS = np.concatenate([_GK_WG[:-1], _GK_WG[::-1]])
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))
_INV_SQRT_2PI = 1.0 / _SQRT_2PI


# ------------------------------------------------------------------------------------------------
# the geometry of a covariance, computed without cancellation
# ------------------------------------------------------------------------------------------------
def _two_product(a, b):
    """``(p, e)`` with ``p = fl(a b)`` and ``a b = p + e`` exactly (Dekker/Veltkamp; |a|, |b| <= 4)."""
    p = a * b
    split = 134217729.0  # 2^27 + 1
    t = split * a
    ah = t - (t - a)
    al = a - ah
    t = split * b
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@dataclass(frozen=True)
class CovarianceGeometry:
    """``s1 = sqrt(q11)``, ``s2 = sqrt(q22)``, ``rho = q12/(s1 s2)`` (0 where a variance is 0) and the
    complements ``one_minus_rho2 = 1 - rho^2 = det/(q11 q22)``, ``one_minus_rho``, ``one_plus_rho``,
    each to a few ulp relative -- also at ``rho = 1 - 1e-15``, where ``1 - rho`` computed from
    ``rho`` would carry a relative error of ~0.2."""

    s1: np.ndarray
    s2: np.ndarray
    rho: np.ndarray
    one_minus_rho2: np.ndarray
    one_minus_rho: np.ndarray
    one_plus_rho: np.ndarray


def covariance_geometry(q11_, q12_, q22_) -> CovarianceGeometry:
    """Correlation and its complements of ``[[q11, q12], [q12, q22]]`` without cancellation or overflow.

    ``det = q11 q22 - q12^2`` is evaluated in error-free arithmetic on the binary mantissas (the
    exponents are split off exactly with ``frexp``, so nothing overflows or underflows), so
    ``1 - rho^2 = det/(q11 q22)`` is accurate to a few ulp even when ``det`` is 1e-15 of ``q11 q22``;
    ``1 -+ rho = (1 - rho^2)/(1 +- rho)`` on the side where ``1 +- rho >= 1``.

    >>> g = covariance_geometry(1.0, 1.0 - 1e-15, 1.0)
    >>> f"{float(g.one_minus_rho):.12e}"        # the float nearest 1 - 1e-15 is 1 - 9.992007221626409e-16
    '9.992007221626e-16'
    >>> float(covariance_geometry(1e300, -1e300, 1e300).one_plus_rho)
    0.0
    """
    a, c, b = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (q11_, q12_, q22_)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        s1, s2 = np.sqrt(a), np.sqrt(b)
        prod = s1 * s2
        prod = np.where(a == b, a, prod)                 # exact on the diagonal
        rho = np.where(prod > 0, c / np.where(prod > 0, prod, 1.0), 0.0)
        rho = np.clip(rho, -1.0, 1.0)
        m1, e1 = np.frexp(a)
        m2, e2 = np.frexp(b)
        odd = ((e1 + e2) % 2) != 0
        m1 = np.where(odd, m1 * 2.0, m1)
        e1 = np.where(odd, e1 - 1, e1)
        half = (e1 + e2) // 2
        cs = np.ldexp(c, -half)
        p, pe = _two_product(m1, m2)
        r, re = _two_product(cs, cs)
        det = (p - r) + (pe - re)
        omr2 = np.where(p > 0, det / np.where(p > 0, p, 1.0), 1.0)
        omr2 = np.clip(omr2, 0.0, 1.0)
        # |rho| >= 1/2: rho = +-sqrt(1 - (1 - rho^2)) is accurate (1 - omr2 >= 1/4) and exactly +-1 at det = 0
        big = np.abs(rho) >= 0.5
        rho = np.where(big, np.copysign(np.sqrt(1.0 - omr2), c), rho)
        pos = rho >= 0
        one_minus = np.where(pos, omr2 / (1.0 + rho), 1.0 - rho)
        one_plus = np.where(pos, 1.0 + rho, omr2 / (1.0 - rho))
    return CovarianceGeometry(s1, s2, rho, omr2, one_minus, one_plus)


def _angles(one_minus, one_plus):
    """``(theta, phi) = (arccos rho, pi - arccos rho)`` from accurate ``1 -+ rho`` (no arccos near +-1)."""
    sm, sp_ = np.sqrt(one_minus), np.sqrt(one_plus)
    return 2.0 * np.arctan2(sm, sp_), 2.0 * np.arctan2(sp_, sm)


_K1_SERIES = np.array([(-1) ** (k + 1) * 2 * k / float(sp.factorial(2 * k + 1)) for k in range(1, 12)])


def arccos_numeric(rho_, one_minus, one_plus):
    """Stable arc-cosine kernels ``(k1, k0)`` of correlation ``rho`` (unit variances).

    ``k0 = phi/(2 pi)``, ``k1 = (sin phi - phi cos phi)/(2 pi)`` with ``phi = pi - arccos rho``; for
    ``phi < 1/2`` (``rho < -0.877``), where ``sin phi`` and ``phi cos phi`` cancel to ``phi^3/3``, the
    series ``sum_k (-1)^(k+1) 2k phi^(2k+1)/(2k+1)!`` (11 terms: truncation < 1e-30 relative).

    >>> k1, k0 = arccos_numeric(np.array([0.0, -1.0]), np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    >>> [round(float(x), 15) for x in k1], [float(x) for x in k0]
    ([0.159154943091895, 0.0], [0.25, 0.0])
    """
    _, phi = _angles(one_minus, one_plus)
    sin_phi = np.sqrt(one_minus * one_plus)
    direct = sin_phi + phi * rho_
    small = phi < 0.5
    if np.any(small):
        p = phi[small] if np.ndim(phi) else phi
        p2 = p * p
        series = np.zeros_like(p)
        for coef in _K1_SERIES[::-1]:
            series = series * p2 + coef
        series = series * p * p2
        direct = np.array(direct, dtype=np.float64, copy=True)
        if np.ndim(direct):
            direct[small] = series
        else:
            direct = series
    return direct / (2.0 * np.pi), phi / (2.0 * np.pi)


# ------------------------------------------------------------------------------------------------
# stable closed forms (float64): the SymPy expressions above, rearranged so that nothing cancels
# or overflows; each is checked against the SymPy expression at 30+ digits (tests)
# ------------------------------------------------------------------------------------------------
def _homogeneous_numeric(slopes, a, c, b, geo, want):
    """``V = a(a+b) q12 + b^2 sqrt(q11) sqrt(q22) k1(rho)``, ``dotV = a(a+b) + b^2 k0(rho)``."""
    sa, sb = slopes
    k1, k0 = arccos_numeric(geo.rho, geo.one_minus_rho, geo.one_plus_rho)
    value = sa * (sa + sb) * c + sb * sb * _sqrt_product(a, b, geo) * k1 if want[0] else None
    deriv = sa * (sa + sb) + sb * sb * k0 if want[1] else None
    return value, deriv, None


def _sqrt_product(a, b, geo):
    """``sqrt(q11 q22)`` as ``sqrt(q11) sqrt(q22)`` (no overflow), exactly ``q`` when ``q11 = q22 = q``."""
    return np.where(a == b, a, geo.s1 * geo.s2)


def _erf_parts(p_scale, a, b):
    """``1/(1+p)`` and ``p/(1+p)`` for ``p = p_scale * q`` without overflow (p may be inf)."""
    pa, pb = p_scale * a, p_scale * b
    ia, ib = 1.0 / (1.0 + pa), 1.0 / (1.0 + pb)
    ta, tb = (1.0 / p_scale) / a, (1.0 / p_scale) / b
    return ia, ib, 1.0 / (1.0 + ta), 1.0 / (1.0 + tb)


def _erf_numeric(params, a, c, b, geo, want):
    """``erf(c u)``: with ``p = 2 c^2 q``, ``alpha = p/(1+p)``, ``x = rho sqrt(alpha_1 alpha_2)`` (the arcsine
    argument) and ``1 - x^2 = g = i1 i2 + alpha1 i2 + alpha2 i1 + alpha1 alpha2 (1 - rho^2)`` (``i = 1/(1+p)``,
    a sum of non-negative terms): ``V = (2/pi) atan2(x, sqrt g)``, ``dotV = (4c^2/pi) sqrt(i1 i2 / g)``."""
    c2 = params[0]
    ia, ib, al, be = _erf_parts(2.0 * c2, a, b)
    x = geo.rho * (np.sqrt(al) * np.sqrt(be))
    g = ia * ib + al * ib + be * ia + (al * be) * geo.one_minus_rho2
    value = (2.0 / np.pi) * np.arctan2(x, np.sqrt(g)) if want[0] else None
    deriv = (4.0 * c2 / np.pi) * (np.sqrt(ia) * np.sqrt(ib)) / np.sqrt(g) if want[1] else None
    # beyond 2c^2 q ~ 1e150 the terms of g fall below the normal range (1/(1+p) ~ 1e-308 at the limit):
    # the quadrature (whose work does not depend on the scale) takes over
    return value, deriv, np.maximum(a, b) * (2.0 * c2) > HUGE_VARIANCE


def _sin_numeric(params, a, c, b, geo, want):
    """``sin(c u)``: ``V = sign(q12) e^{-x} (1 - e^{-2 c^2 |q12|})/2``, ``dotV = c^2 e^{-x} (1 + e^{-2 c^2 |q12|})/2``
    with ``x = c^2 (q11/2 + q22/2 - |q12|) >= 0`` summed in double-double (exact cancellation near
    ``q11 = q22 = |q12|``) -- the exp(-q)-damped form of ``e^{-c^2(q11+q22)/2} sinh/cosh(c^2 q12)``, which
    overflows (sinh) before the damping applies."""
    c2 = params[0]
    h1, h2, m = 0.5 * a, 0.5 * b, np.abs(c)
    s = h1 + h2
    bb = s - h1
    err = (h1 - (s - bb)) + (h2 - bb)
    d = np.maximum((s - m) + err, 0.0)
    x = c2 * d
    y = 2.0 * c2 * m
    damp = np.exp(-x)
    value = np.sign(c) * 0.5 * damp * (-np.expm1(-y)) if want[0] else None
    deriv = 0.5 * c2 * damp * (1.0 + np.exp(-y)) if want[1] else None
    return value, deriv, None


def _gelu_numeric(_, a, c, b, geo, want):
    """``gelu(u) = u Phi(u)`` with ``i = 1/(1+q)``, ``alpha = q/(1+q)``, ``x = rho sqrt(alpha1 alpha2)``,
    ``g = 1 - x^2`` as for erf (``2c^2 = 1``) and ``acos(-x) = 2 atan2(sqrt(1+x), sqrt(1-x))``:

    ``V = sqrt(q11) sqrt(q22) [rho acos(-x) + sqrt(alpha1 alpha2) ((1 - rho^2) + rho^2 (i1 + i2)) / sqrt g] / (2 pi)``,
    ``dotV = [acos(-x) + rho sqrt(alpha1 alpha2) ((i1 + i2)/sqrt g + i1 i2 / g^(3/2))] / (2 pi)``

    (the closed form of the module docstring with ``q11 q22 - q12^2 = q11 q22 (1 - rho^2)`` and
    ``(1+q11)(1+q22) - q12^2 = (1+q11)(1+q22) g``; dotV is its q12-derivative simplified by hand, checked
    symbolically in the tests).  Returns also the mask of entries whose two terms cancel by more than
    CANCELLATION_LIMIT (rho near -1 at large variance), which the caller integrates numerically."""
    ia, ib, al, be = _erf_parts(1.0, a, b)
    sab = np.sqrt(al) * np.sqrt(be)
    x = geo.rho * sab
    g = ia * ib + al * ib + be * ia + (al * be) * geo.one_minus_rho2
    pos = x >= 0
    opx = np.where(pos, 1.0 + x, g / (1.0 - x))
    omx = np.where(pos, g / (1.0 + x), 1.0 - x)
    acos_mx = 2.0 * np.arctan2(np.sqrt(opx), np.sqrt(omx))
    sg = np.sqrt(g)
    bad = np.maximum(a, b) > HUGE_VARIANCE        # 1/(1+q) would leave the normal range: see _erf_numeric
    value = deriv = None
    if want[0]:
        t1 = geo.rho * acos_mx
        t2 = sab * (geo.one_minus_rho2 + geo.rho ** 2 * (ia + ib)) / sg
        tot = t1 + t2
        value = _sqrt_product(a, b, geo) * tot / (2.0 * np.pi)
        bad |= (np.abs(t1) + np.abs(t2)) > CANCELLATION_LIMIT * np.abs(tot)
    if want[1]:
        u1 = acos_mx
        u2 = geo.rho * sab * ((ia + ib) / sg + (ia * ib / g) / sg)
        tot = u1 + u2
        deriv = tot / (2.0 * np.pi)
        bad |= (np.abs(u1) + np.abs(u2)) > CANCELLATION_LIMIT * np.abs(tot)
    return value, deriv, bad


_NUMERIC_FAMILIES = {"homogeneous": _homogeneous_numeric, "erf": _erf_numeric, "sin": _sin_numeric,
                     "gelu": _gelu_numeric}


# ------------------------------------------------------------------------------------------------
# the adaptive quadrature (activations without a closed form, and closed forms that cancel)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Integrand:
    """``psi`` (``phi`` for the value kernel, ``phi'`` for the derivative kernel) split as ``A + r``:
    ``A(u) = b_- + a_- u + (a_+ - a_-) relu(u) + (b_+ - b_-) step(u)`` its piecewise-linear asymptote
    (``coef = (b_-, a_-, a_+ - a_-, b_+ - b_-)``, from SymPy limits at +-inf) and ``r`` negligible
    (REMAINDER_RTOL) beyond ``radius``; ``coef = None`` (radius inf) when there is no such asymptote."""

    fn: Callable
    coef: Optional[Tuple[float, float, float, float]]
    radius: float
    odd: bool
    label: str

    def asymptote(self, x):
        b0, a0, da, db = self.coef
        return b0 + a0 * x + da * np.maximum(x, 0.0) + db * (x > 0)

    def remainder(self, x):
        return self.fn(x) - self.asymptote(x)


def _raw(act: Activation, which: str) -> Callable:
    """The activation's vectorised float64 function without the per-call finiteness check (the
    quadrature checks its results instead)."""
    f = (act.stable_numeric or act._phi_lambdified) if which == "value" else \
        (act.stable_derivative or act._dphi_lambdified)

    def fn(x):
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            return f(x)
    return fn


@lru_cache(maxsize=None)
def _integrand(act: Activation, which: str) -> _Integrand:
    expr = act.expr if which == "value" else act.derivative_expr
    fn = _raw(act, which)
    odd = which == "value" and sp.simplify(expr.subs(u, -u) + expr) == 0
    coef = None
    try:
        lims = []
        for end in (-sp.oo, sp.oo):
            slope = sp.limit(expr / u, u, end)
            icpt = sp.limit(expr - slope * u, u, end)
            if not (slope.is_real and icpt.is_real and slope.is_finite and icpt.is_finite):
                raise ValueError
            lims.append((float(slope), float(icpt)))
        (am, bm), (ap, bp) = lims
        coef = (bm, am, ap - am, bp - bm)
    except (ValueError, TypeError, NotImplementedError):
        coef = None
    radius = float("inf")
    if coef is not None:
        probe = _Integrand(fn, coef, 0.0, odd, "")
        for R in _RADII:
            t = np.array([R, 1.5 * R, 2 * R, -R, -1.5 * R, -2 * R])
            if np.all(np.abs(probe.remainder(t)) <= REMAINDER_RTOL * (1.0 + np.abs(probe.asymptote(t)))):
                radius = R
                break
        if not np.isfinite(radius):
            coef = None
    return _Integrand(fn, coef, radius, bool(odd), f"{act.name} {which}")


def _gk_rule(breaks, level):
    """Composite Gauss-Kronrod nodes and weights (K15 and the embedded G7) on sorted ``breaks`` (..., P+1),
    every piece cut into ``2^level`` equal parts; returns arrays of shape (..., P 2^level 15)."""
    if level:
        k = 2 ** level
        lo, hi = breaks[..., :-1, None], breaks[..., 1:, None]
        frac = np.arange(k) / k
        inner = (lo + (hi - lo) * frac).reshape(breaks.shape[:-1] + (-1,))
        breaks = np.concatenate([inner, breaks[..., -1:]], axis=-1)
    lo, hi = breaks[..., :-1, None], breaks[..., 1:, None]
    half = 0.5 * (hi - lo)
    mid = lo + half
    shape = breaks.shape[:-1] + (-1,)
    return ((mid + half * GK15_NODES).reshape(shape), (half * GK15_WEIGHTS).reshape(shape),
            (half * G7_WEIGHTS).reshape(shape))


def _sorted_breaks(lo, hi, points, min_ratio=1.0):
    """``[lo, clip(points), hi]`` sorted along the last axis, without duplicates: points outside
    ``[lo, hi]`` collapse onto the ends and are dropped, and so are points closer to the previous one
    than ``(min_ratio - 1)`` times the previous piece's distance from the window's centre (a piece
    that short adds work, not accuracy); rows are padded with their last point (zero-length pieces,
    zero weight) to the longest row of the batch."""
    pts = [np.clip(p, lo, hi) for p in points]
    b = np.sort(np.stack([lo] + pts + [hi], axis=-1), axis=-1)
    dup = np.zeros(b.shape, dtype=bool)
    dup[..., 1:] = b[..., 1:] <= b[..., :-1]
    b = np.where(dup, np.inf, b)
    b = np.sort(b, axis=-1)
    count = int(np.max(np.sum(np.isfinite(b), axis=-1)))
    b = b[..., :count]
    return np.where(np.isfinite(b), b, np.max(np.where(np.isfinite(b), b, -np.inf), axis=-1, keepdims=True))


def _gauss(x, mean, sd):
    z = (x - mean) / sd
    return np.exp(-0.5 * z * z) * (_INV_SQRT_2PI / sd)


def _asymptote_given(coef, mu, sd):
    """``E[A(u) | ...]`` for ``u ~ N(mu, sd^2)`` (``sd = 0``: ``A(mu)``)."""
    b0, a0, da, db = coef
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(sd > 0, mu / np.where(sd > 0, sd, 1.0), np.where(mu > 0, np.inf, np.where(mu < 0, -np.inf, 0.0)))
        cdf = scipy.special.ndtr(t)
        pdf = np.where(np.isfinite(t), np.exp(-0.5 * np.where(np.isfinite(t), t, 0.0) ** 2) * _INV_SQRT_2PI, 0.0)
        relu = np.where(sd > 0, mu * cdf + sd * pdf, np.maximum(mu, 0.0))
    out = b0 + a0 * mu
    if da:
        out = out + da * relu
    if db:
        out = out + db * cdf
    return out


def _asymptote_pair(coef, geo):
    """``E[A(u) A(u')]`` in closed form from the 16 cross moments of ``(1, u, relu, step)``."""
    s1, s2, r = geo.s1, geo.s2, geo.rho
    k1, k0 = arccos_numeric(r, geo.one_minus_rho, geo.one_plus_rho)
    g = _INV_SQRT_2PI
    m = [[1.0, 0.0, s2 * g, 0.5],
         [0.0, r * s1 * s2, 0.5 * r * s1 * s2, r * s1 * g],
         [s1 * g, 0.5 * r * s1 * s2, s1 * s2 * k1, s1 * geo.one_plus_rho * (0.5 * g)],
         [0.5, r * s2 * g, s2 * geo.one_plus_rho * (0.5 * g), k0]]
    out = 0.0
    for i in range(4):
        for j in range(4):
            if coef[i] and coef[j]:
                out = out + coef[i] * coef[j] * m[i][j]
    return out


#: piece boundaries: the activations' features (poles of tanh at +-i pi/2, softplus at +-i pi, kinks at 0)
#: graded geometrically around 0, so that each piece [x, 2x] sees its nearest singularity at a relative
#: distance >= ~1 (K15 error < 1e-20 there); the Gaussian in standard units every 1.5-2 sigma
_FEATURES = (0.5, 2.0, 6.0, 16.0)
_FEATURE_POINTS = (0.0,) + tuple(s * v for v in _FEATURES for s in (-1.0, 1.0))
_INNER_GAUSS_POINTS = (0.0, -2.0, 2.0, -4.0, 4.0, -7.0, 7.0)


def _outer_points(sd, feat, smooth):
    """Positive piece boundaries of an outer axis: features, Gaussian scale ``sd``, where the inner
    expectation follows the inner activation (``feat`` per unit of ``u'``) and its smoothing width.
    Geometric ratios ~3 around each scale: K15 on [x, 3x] with the nearest pole of tanh at i pi/2 has
    Bernstein parameter >= 4 (G7 error ~1e-9, K15 ~1e-19)."""
    pts = list(_FEATURES)
    pts += [m * sd for m in (2.0, 4.0, 7.0)]
    pts += [m * feat for m in _FEATURES]
    pts += [m * smooth for m in (0.5, 1.5, 4.0, 10.0)]
    return pts


def _outer(sd, half_width, fn, inner, points, level):
    """``int fn(w) inner(w) N(w; 0, sd^2) dw`` over ``[-half_width, half_width]`` (composite GK15, pieces
    at 0, +-``points``); ``inner(w) -> (K value, G value)``.  Returns (K15 result, |K15 - G7| estimate)."""
    hw = half_width
    pos = [np.minimum(np.broadcast_to(np.abs(p), hw.shape), hw) for p in points]
    zero = np.zeros_like(hw)
    breaks = _sorted_breaks(-hw, hw, [-p for p in pos] + [zero] + pos)
    x, wk, wg = _gk_rule(breaks, level)
    base = fn(x) * _gauss(x, 0.0, sd[:, None])
    ik, ig = inner(x)
    qk = np.einsum("ij,ij->i", wk * base, ik)
    qg = np.einsum("ij,ij->i", wg * base, ig)
    return qk, np.abs(qk - qg)


def _inner_numeric(fn, slope, sd, half_width, level):
    """``w -> E[fn(u') | u = w]`` with ``u' | w ~ N(slope w, sd^2)`` restricted to ``|u'| <= half_width``.

    Integrated in the standardised variable ``z = (u' - slope w)/sd`` (so the Gaussian is evaluated at
    nodes known to full relative precision, also when the window ``10 sd`` is 1e-15 of ``|slope w|``),
    with pieces at ``z = 0, +-4`` and where ``u'`` crosses the activation's features (0, +-1/2, +-4)."""
    T = GAUSSIAN_HALF_WIDTH

    def inner(w):
        mu = slope[:, None] * w                                   # (n, m)
        s = np.broadcast_to(sd[:, None], mu.shape)
        pos = s > 0
        s1 = np.where(pos, s, 1.0)
        hw = np.broadcast_to(half_width[:, None], mu.shape)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lo = np.clip((-hw - mu) / s1, -T, T)
            hi = np.maximum(np.clip((hw - mu) / s1, -T, T), lo)
            pts = [np.full_like(mu, v) for v in _INNER_GAUSS_POINTS]
            pts += [(v - mu) / s1 for v in _FEATURE_POINTS]
        z, wk, wg = _gk_rule(_sorted_breaks(lo, hi, pts), level)   # (n, m, k)
        with np.errstate(under="ignore"):
            vals = fn(mu[..., None] + s[..., None] * z) * (np.exp(-0.5 * z * z) * _INV_SQRT_2PI)
        ik = np.einsum("ijk,ijk->ij", wk, vals)
        ig = np.einsum("ijk,ijk->ij", wg, vals)
        if not np.all(pos):
            point = fn(mu)
            ik = np.where(pos, ik, point)
            ig = np.where(pos, ig, point)
        return ik, ig
    return inner


def _inner_closed(coef, slope, sd):
    def inner(w):
        v = _asymptote_given(coef, slope[:, None] * w, sd[:, None])
        return v, v
    return inner


def _one(w):
    return np.ones_like(w), np.ones_like(w)


def _engine_terms(psi: _Integrand, a, c, b, level):
    """``E[psi(u) psi(u')]`` for sorted variances ``a <= b`` (1-D arrays): (result, estimate, magnitude).

    Each variance whose window ``10 sigma`` exceeds the remainder radius is split, ``psi = A + r``:
    ``E[A A'] + E[A(u) r(u')] + E[r(u) A(u')] + E[r r']`` (or fewer terms) with ``E[A A']`` in closed
    form, ``E[A | .]`` in closed form (Gaussian conditional means) and the rest by nested GK15 in
    Cholesky coordinates ``u' | u ~ N(rho s2/s1 u, s2^2 (1 - rho^2))``, whose windows are scaled to the
    variances and whose pieces are graded around the activation's features (|u| ~ 1/2, 4) and the
    Gaussian scales.  Only the localized parts are integrated, so the work does not grow with the
    variance (up to the float64 limit)."""
    geo = covariance_geometry(a, c, b)
    s1, s2, rho = geo.s1, geo.s2, geo.rho
    T, R = GAUSSIAN_HALF_WIDTH, psi.radius
    has_asym = psi.coef is not None
    split1 = has_asym & (T * s1 > R)
    split2 = has_asym & (T * s2 > R)
    total = np.zeros_like(a)
    est = np.zeros_like(a)
    mag = np.zeros_like(a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        sqd = np.sqrt(geo.one_minus_rho2)
        for cls in ((False, False), (False, True), (True, True)):
            sel = (split1 == cls[0]) & (split2 == cls[1])
            if not np.any(sel):
                continue
            A1, B1, C1 = a[sel], c[sel], b[sel]
            g1, g2, r_ = s1[sel], s2[sel], rho[sel]
            sq = sqd[sel]
            zero = A1 == 0
            L1 = np.where(zero, 1.0, R if cls[0] else T * g1)
            L2 = np.full_like(g2, R) if cls[1] else T * g2
            f1 = psi.remainder if cls[0] else psi.fn
            f2 = psi.remainder if cls[1] else psi.fn
            g1s = np.where(zero, 1.0, g1)
            slope = np.where(zero, 0.0, r_ * g2 / g1s)
            sd2 = g2 * sq
            feat = g1s / np.abs(r_ * g2)          # X2's features (|u'| ~ 1) seen from u
            smooth = g1s * sq / np.abs(r_)         # the conditional spread seen from u
            pts = _outer_points(g1s, feat, smooth)
            sub_geo = _geo_slice(geo, sel)
            parts = []
            # E[X1 X2] (numeric inner), or for zero variance psi(0) E[X2]
            q, e = _outer(np.where(zero, 1.0, g1), L1, f1, _inner_numeric(f2, slope, sd2, L2, level), pts, level)
            parts.append((np.where(zero, 0.0, q), np.where(zero, 0.0, e)))
            if cls[1]:
                q, e = _outer(np.where(zero, 1.0, g1), L1, f1, _inner_closed(psi.coef, slope, sd2), pts, level)
                parts.append((np.where(zero, 0.0, q), np.where(zero, 0.0, e)))
            if np.any(zero):
                # u = 0: E[psi(0) psi(u')] = psi(0) (E[A(u')] + E[X2(u')])
                p0 = float(psi.fn(np.zeros(1))[0])
                q, e = _outer(g2, L2, f2, _one, _outer_points(g2, np.inf, np.inf), level)
                mean = q
                if cls[1]:
                    b0, a0, da, db = psi.coef
                    mean = mean + b0 + da * g2 * _INV_SQRT_2PI + 0.5 * db
                parts.append((np.where(zero, p0 * mean, 0.0), np.where(zero, abs(p0) * e, 0.0)))
            if cls[0]:
                # E[A(u) r(u')]: outer over u' (localized), inner the conditional mean of A given u'
                slope_b = r_ * g1 / g2
                sd1 = g1 * sq
                smooth_b = g2 * sq / np.abs(r_)
                q, e = _outer(g2, np.full_like(g2, R), psi.remainder, _inner_closed(psi.coef, slope_b, sd1),
                              _outer_points(g2, np.inf, smooth_b), level)
                parts.append((q, e))
                parts.append((_asymptote_pair(psi.coef, sub_geo), np.zeros_like(g1)))
            tot = sum(p[0] for p in parts)
            total[sel] = tot
            est[sel] = sum(p[1] for p in parts)
            mag[sel] = sum(np.abs(p[0]) for p in parts)
    return total, est, mag


def _geo_slice(geo: CovarianceGeometry, sel) -> CovarianceGeometry:
    return CovarianceGeometry(*(getattr(geo, f)[sel] for f in ("s1", "s2", "rho", "one_minus_rho2", "one_minus_rho",
                                                                   "one_plus_rho")))


#: Tier A (the bulk): the trapezoidal rule on [-9, 9] in Cholesky coordinates with n = 129, then 257
#: nodes per axis, each with the rule of half the nodes (every other node) as its estimate.  For an
#: integrand analytic in a strip the trapezoid error is ~exp(-2 pi d / h), so halving h squares it:
#: accepting |T_h - T_2h| <= TRAPEZOID_ESTIMATE_RTOL |T_h| (the error of T_2h) leaves T_h with ~(1e-7)^2
#: = 1e-14.  Tried only for variances <= TRAPEZOID_MAX_VARIANCE (tanh's poles are then >= pi/9 from the
#: real axis in these coordinates, so 257 nodes converge); larger ones and every entry whose estimate
#: fails go to tier B (the Gauss-Kronrod rule above).
TRAPEZOID_ESTIMATE_RTOL = 1e-7
TRAPEZOID_MAX_VARIANCE = 20.0
_TRAPEZOID_TIER_NODES = (129, 257)


def _trapezoid_tier(fn, lo, c, hi, n, chunk_points=4_000_000):
    """(T_n, |T_n - T_(n+1)/2|) for sorted variances ``lo <= hi`` (1-D arrays): ``u = sqrt(lo) z1``,
    ``u' = (q12/sqrt(lo)) z1 + sqrt(hi) sqrt(1 - rho^2) z2`` (the conditional spread from the stable
    ``1 - rho^2``)."""
    geo = covariance_geometry(lo, c, hi)
    s1 = geo.s1
    slope = np.where(s1 > 0, geo.rho * geo.s2, 0.0)
    spread = geo.s2 * np.sqrt(geo.one_minus_rho2)
    z = np.linspace(-_TRAPEZOID_HALF_RANGE, _TRAPEZOID_HALF_RANGE, n)
    w = np.exp(-0.5 * z * z)
    w /= w.sum()
    zh, wh = z[::2], w[::2] / w[::2].sum()
    full = np.empty_like(lo)
    half = np.empty_like(lo)
    step = max(1, chunk_points // (n * n))
    for start in range(0, lo.size, step):
        sl = slice(start, start + step)
        g = fn(slope[sl, None, None] * z[None, :, None] + spread[sl, None, None] * z[None, None, :])  # (k, n, n)
        f1 = fn(s1[sl, None] * z[None, :])
        full[sl] = (f1 * (g @ w)) @ w
        half[sl] = (f1[:, ::2] * (g[:, ::2, ::2] @ wh)) @ wh
    return full, np.abs(full - half)


def _adaptive(psi: _Integrand, a, c, b, what: str, chunk_entries: int = 16):
    """Refine (levels 0..MAX_QUADRATURE_LEVEL) until ``estimate <= QUADRATURE_ESTIMATE_RTOL * max(|V|,
    1e-3 * magnitude)``; ValueError naming the tolerance for entries that never get there."""
    T = GAUSSIAN_HALF_WIDTH
    if psi.coef is None:
        too_big = T * np.sqrt(b) > MAX_DIRECT_HALF_WIDTH
        if np.any(too_big):
            i = int(np.argmax(too_big))
            limit = (MAX_DIRECT_HALF_WIDTH / T) ** 2
            raise ValueError(
                f"the {what} kernel of {psi.label.split()[0]} at q11={a[i]!r}, q12={c[i]!r}, q22={b[i]!r}: variance "
                f"{b[i]!r} exceeds the quadrature limit {limit:g} (the activation has no piecewise-linear asymptote, "
                f"so its window 10 sigma is integrated directly, up to MAX_DIRECT_HALF_WIDTH = {MAX_DIRECT_HALF_WIDTH:g})")
    out = np.empty_like(a)
    todo = np.flatnonzero(b <= TRAPEZOID_MAX_VARIANCE)
    rest = [np.flatnonzero(b > TRAPEZOID_MAX_VARIANCE)]
    for n in _TRAPEZOID_TIER_NODES:
        if todo.size == 0:
            break
        val, est = _trapezoid_tier(psi.fn, a[todo], c[todo], b[todo], n)
        ok = est <= TRAPEZOID_ESTIMATE_RTOL * np.maximum(np.abs(val), 1e-300)
        out[todo[ok]] = val[ok]
        todo = todo[~ok]
    todo = np.sort(np.concatenate(rest + [todo]))
    for level in range(MAX_QUADRATURE_LEVEL + 1):
        step = max(1, chunk_entries // 4 ** level)
        still = []
        for start in range(0, todo.size, step):
            idx = todo[start:start + step]
            val, est, mag = _engine_terms(psi, a[idx], c[idx], b[idx], level)
            # relative to the result (or 1e-3 of the terms' magnitude, where they cancel); results below
            # 1e-300 are near the underflow range: there an absolute 1e-309 suffices
            ok = est <= QUADRATURE_ESTIMATE_RTOL * np.maximum(np.maximum(np.abs(val), 1e-3 * mag), 1e-300)
            out[idx] = val
            still.append(idx[~ok])
        todo = np.concatenate(still) if still else todo[:0]
        if todo.size == 0:
            return out
    i = int(todo[0])
    raise ValueError(
        f"the {what} kernel of {psi.label.split()[0]} at q11={a[i]!r}, q12={c[i]!r}, q22={b[i]!r}: the Gauss-Kronrod "
        f"estimate stayed above the relative tolerance QUADRATURE_ESTIMATE_RTOL = {QUADRATURE_ESTIMATE_RTOL:g} after "
        f"{MAX_QUADRATURE_LEVEL} refinements")


def adaptive_dual(activation, q11_, q12_, q22_, want=(True, True)):
    """``(V, dotV)`` by the adaptive quadrature, vectorised over covariances (any shape; ``None`` for a
    kernel not wanted).  Exactly symmetric in ``(q11, q22)`` (the variances are sorted).

    >>> v, d = adaptive_dual("tanh", np.array([1e4]), np.array([1e4]), np.array([1e4]))
    >>> round(float(d[0]), 12)                  # E[sech^4(u)], u ~ N(0, 1e4); mpmath: 0.00531914464401462
    0.005319144644
    """
    act = get_activation(activation)
    a11, a12, a22 = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (q11_, q12_, q22_)))
    shape = a11.shape
    lo, c, hi = np.minimum(a11, a22).ravel(), a12.ravel(), np.maximum(a11, a22).ravel()
    # each distinct covariance once: equal inputs give bitwise equal outputs (a reduction's rounding may
    # depend on the position in a batch), and a symmetric kernel matrix costs half
    triples, inverse = np.unique(np.stack([lo, c, hi], axis=1), axis=0, return_inverse=True)
    if len(triples) < lo.size:
        v, d = adaptive_dual(act, triples[:, 0], triples[:, 1], triples[:, 2], want)
        inverse = inverse.ravel()
        return (None if v is None else v[inverse].reshape(shape), None if d is None else d[inverse].reshape(shape))
    value = deriv = None
    if want[1]:
        deriv = _adaptive(_integrand(act, "derivative"), lo, c, hi, "derivative").reshape(shape)
    if want[0]:
        psi = _integrand(act, "value")
        value = np.empty_like(lo)
        geo = covariance_geometry(lo, c, hi)
        price = psi.odd & (np.abs(geo.rho) < PRICE_CORRELATION) & (lo > 0)
        rest = ~price
        if np.any(rest):
            value[rest] = _adaptive(psi, lo[rest], c[rest], hi[rest], "value")
        if np.any(price):
            t, w = np.polynomial.legendre.leggauss(_PRICE_NODES)
            t, w = 0.5 * (t + 1.0), 0.5 * w
            pa, pc, pb = lo[price], c[price], hi[price]
            dpsi = _integrand(act, "derivative")
            d = _adaptive(dpsi, np.repeat(pa, t.size), (pc[:, None] * t).ravel(), np.repeat(pb, t.size),
                          "value (Price integral)").reshape(-1, t.size)
            value[price] = pc * (d @ w)
        value = value.reshape(shape)
    return value, deriv
# ------------------------------------------------------------------------------------------------
# high-precision reference (mpmath)
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _gl_nodes(degree: int, prec: int):
    return tuple(mpmath.calculus.quadrature.GaussLegendre(mpmath.mp).calc_nodes(degree, prec))


@lru_cache(maxsize=None)
def _mp_functions(name: str):
    act = get_activation(name)
    return (sp.lambdify(u, act.expr, modules="mpmath"), sp.lambdify(u, act.derivative_expr, modules="mpmath"))


def _mp_pieces(scale, half_range, pieces):
    """Nodes/weights of a piecewise Gauss-Legendre rule on ``[-T s, T s]`` with a break at 0."""
    h = scale * half_range / pieces
    centers = [scale * (-half_range + (2 * p + 1) * mpmath.mpf(half_range) / pieces) for p in range(pieces)]
    return h, centers


def mp_gaussian_expectation(f, g, a, c, b, pieces: Optional[int] = None, degree: int = 4,
                            half_range: int = 10):
    r"""``E[f(u) g(u')]`` by a tensor Gauss-Legendre rule against the bivariate normal density.

    Works at the current ``mpmath.mp`` precision.  Both axes ``u in [-T sqrt(q11), T sqrt(q11)]``,
    ``u' in [-T sqrt(q22), T sqrt(q22)]`` (``T = half_range = 10``: the Gaussian mass outside is
    ``< 2e-23``, so an integrand growing like ``|u|^4`` loses ``~2e-19``) are split into an even number of equal pieces, so ``0`` -- where relu-type
    activations have their kinks -- is always a piece boundary; each piece carries a
    ``3 * 2^(degree-1)``-point Gauss-Legendre rule.  Only ``2n`` activation evaluations are needed:
    the ``n^2`` density values ``exp(a_i + b_j + gamma u_i v_j)`` are assembled from per-piece
    exponential tables.  The ridge of the density narrows as ``|rho| -> 1``, so the default number
    of pieces grows with ``|rho|`` (8, 16, 32 for ``|rho| <= 0.9, 0.99, 0.999``) and with the
    larger standard deviation (times ``ceil(sigma/2)``: the activation's features are ~1 wide in
    ``u``); ``|rho| = 1`` exactly is the 1-D integral ``E[f(s1 z) g(+-s2 z)]``.

    >>> import mpmath
    >>> with mpmath.workdps(30):
    ...     v = mp_gaussian_expectation(lambda x: x, lambda y: y, mpmath.mpf(1), mpmath.mpf('0.5'), mpmath.mpf(2))
    >>> mpmath.nstr(v, 20)
    '0.5'
    """
    mp = mpmath.mp
    a, b, c = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(c)
    s1, s2 = mpmath.sqrt(a), mpmath.sqrt(b)
    det = a * b - c * c
    nodes = _gl_nodes(degree, mp.prec)
    xs = [x for x, _ in nodes]
    ws = [w for _, w in nodes]
    if det < 0:
        raise ValueError(f"not a covariance: q12^2 > q11 q22 (q11={a}, q12={c}, q22={b})")
    corr = c / (s1 * s2)
    # an activation's features have width ~1 in u, i.e. ~1/sigma on the standard scale of the rule
    spread = max(1, int(mpmath.ceil(max(s1, s2) / 2)))
    if det == 0:  # |rho| = 1 exactly: u' = sign * (s2/s1) u
        sign = 1 if corr > 0 else -1
        h, centers = _mp_pieces(1, half_range, pieces or 8 * spread)
        total = mpmath.mpf(0)
        for cen in centers:
            for x, w in zip(xs, ws):
                z = cen + h * x
                total += w * h * f(s1 * z) * g(sign * s2 * z) * mpmath.exp(-z * z / 2)
        return total / mpmath.sqrt(2 * mpmath.pi)
    if pieces is None:
        r = abs(float(corr))
        pieces = (8 if r <= 0.9 else 16 if r <= 0.99 else 32 if r <= 0.999 else 64) * spread
    hu, cu = _mp_pieces(s1, half_range, pieces)
    hv, cv = _mp_pieces(s2, half_range, pieces)
    gamma = c / det
    G = [[w * hv * g(cen + hv * x) * mpmath.exp(-a * (cen + hv * x) ** 2 / (2 * det)) for x, w in zip(xs, ws)]
         for cen in cv]
    total = mpmath.mpf(0)
    for cen in cu:
        for x, w in zip(xs, ws):
            uu = cen + hu * x
            fu = f(uu)
            if fu == 0:
                continue
            gu = gamma * uu
            e_local = [mpmath.exp(gu * hv * t) for t in xs]
            inner = mpmath.fsum(mpmath.exp(gu * cp) * mpmath.fdot(Gp, e_local) for cp, Gp in zip(cv, G))
            total += w * hu * fu * mpmath.exp(-b * uu * uu / (2 * det)) * inner
    return total / (2 * mpmath.pi * mpmath.sqrt(det))


@lru_cache(maxsize=512)
def reference_expectation(activation: str, which: str, q11_, q12_, q22_, dps: int = 30,
                          pieces: Optional[int] = None, degree: int = 4) -> mpmath.mpf:
    """30-digit reference for ``E[phi phi]`` (``which="value"``) or ``E[phi' phi']`` (``"derivative"``).

    The activation and its SymPy-derived derivative are lambdified to mpmath; the covariance
    entries are taken as exact decimal strings of their float values.  Cached per process.

    >>> v = reference_expectation("relu", "value", 1.0, 0.0, 1.0)
    >>> float(v) == 1 / (2 * 3.141592653589793)
    True
    """
    if which not in ("value", "derivative"):
        raise ValueError(f"which={which!r} is unknown; allowed: value, derivative")
    f, df = _mp_functions(get_activation(activation).name)
    fn = f if which == "value" else df
    with mpmath.workdps(dps):
        return +mp_gaussian_expectation(fn, fn, mpmath.mpf(repr(float(q11_))), mpmath.mpf(repr(float(q12_))),
                                        mpmath.mpf(repr(float(q22_))), pieces, degree)


def closed_form_error(activation, which: str, q11_, q12_, q22_, dps: int = 30) -> float:
    """Relative error of the float64 closed form (or GH rule) against the mpmath reference.

    >>> closed_form_error("erf", "value", 1.0, 0.3, 2.0) < 1e-14
    True
    """
    k = dual_kernel(activation)
    got = (k.value if which == "value" else k.derivative)(q11_, q12_, q22_)
    ref = reference_expectation(k.name, which, float(q11_), float(q12_), float(q22_), dps)
    return float(abs(mpmath.mpf(float(got)) - ref) / max(abs(ref), mpmath.mpf(10) ** (-dps // 2)))


def quadrature_error(activation, which: str, q11_, q12_, q22_, n: int = DEFAULT_QUADRATURE_NODES,
                     quadrature: str = DEFAULT_QUADRATURE, dps: int = 30) -> float:
    """Relative error of the ``n``-node numeric rule against the mpmath reference.

    >>> quadrature_error("tanh", "value", 1.0, 0.5, 1.0) < 1e-14
    True
    """
    want = (True, False) if which == "value" else (False, True)
    out = quadrature_dual(activation, np.array([q11_]), np.array([q12_]), np.array([q22_]), n, want, quadrature)
    got = out[0 if which == "value" else 1][0]
    ref = reference_expectation(get_activation(activation).name, which, float(q11_), float(q12_), float(q22_), dps)
    return float(abs(mpmath.mpf(float(got)) - ref) / max(abs(ref), mpmath.mpf(10) ** (-dps // 2)))


def available_closed_forms() -> Dict[str, str]:
    """Activation name -> closed-form family, for every registered activation that has one."""
    from theory.activations import available_activations

    out = {}
    for name in available_activations():
        form = closed_form(name)
        if form is not None:
            out[name] = form.family
    return out


# ------------------------------------------------------------------------------------------------
# an independent reference at any scale: mpmath, exact inputs
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _mp_closed(name: str, which: str):
    form = closed_form(name)
    return sp.lambdify((q11, q12, q22), form.value if which == "value" else form.derivative, modules="mpmath")


@lru_cache(maxsize=None)
def _gl_table(n: int, dps: int):
    with mpmath.workdps(dps + 10):
        xs, ws = [], []
        for x, w in mpmath.calculus.quadrature.GaussLegendre(mpmath.mp).calc_nodes(
                int(mpmath.ceil(mpmath.log(n / 3.0, 2))) + 1, mpmath.mp.prec):
            xs.append(x)
            ws.append(w)
    return xs, ws


def _mp_pieces_sum(fn, points, n, dps):
    """``sum over pieces of a Gauss-Legendre rule with 3 * 2^k >= n nodes`` on the sorted distinct ``points``."""
    xs, ws = _gl_table(n, dps)
    total = mpmath.mpf(0)
    for lo, hi in zip(points[:-1], points[1:]):
        if hi <= lo:
            continue
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        total += half * mpmath.fsum(w * fn(mid + half * x) for x, w in zip(xs, ws))
    return total


def _breaks(lo, hi, pts):
    out = sorted({p for p in pts if lo < p < hi} | {lo, hi})
    return out


def _mp_nested(f, g, a, c, b, n, dps):
    """``E[f(u) g(u')]`` by nested composite Gauss-Legendre in ``u``-space (``u ~ N(0, q11)``, then
    ``u' | u ~ N(q12/q11 u, det/q11)``), no asymptote subtraction: pieces at the activation's features
    (``|u| = 0, 1/4, 1, 4, 16, 64``), at the Gaussian scales and where the inner expectation changes."""
    T = mpmath.mpf(12)            # Gaussian mass beyond 12 sigma: 3.6e-33
    s1 = mpmath.sqrt(a)
    det = a * b - c * c
    feats = [mpmath.mpf(v) for v in ("0.125", "0.25", "0.5", "1", "2", "3", "4", "6", "8", "12", "16", "24", "32",
                                     "48", "64")]
    if s1 == 0:
        pts = [mpmath.mpf(0)] + feats + [-v for v in feats]
        s2 = mpmath.sqrt(b)
        lo, hi = -T * s2, T * s2
        norm2 = s2 * mpmath.sqrt(2 * mpmath.pi)
        dens = lambda v: mpmath.exp(-(v / s2) ** 2 / 2) / norm2  # noqa: E731
        return f(mpmath.mpf(0)) * _mp_pieces_sum(lambda v: g(v) * dens(v), _breaks(lo, hi, pts + [s2, -s2]), n, dps)
    k = c / a
    sd = mpmath.sqrt(det / a) if det > 0 else mpmath.mpf(0)
    norm = sd * mpmath.sqrt(2 * mpmath.pi)

    def inner(x):
        mu = k * x
        if sd == 0:
            return g(mu)
        lo, hi = mu - T * sd, mu + T * sd
        pts = [mu + m * sd for m in (0, 1, -1, 2, -2, 3, -3, 4.5, -4.5, 6, -6, 8, -8)] + [mpmath.mpf(0)]
        pts += feats + [-v for v in feats]
        return _mp_pieces_sum(lambda v: g(v) * mpmath.exp(-((v - mu) / sd) ** 2 / 2), _breaks(lo, hi, pts), n, dps) / norm

    pts = [mpmath.mpf(0)] + feats + [-v for v in feats]
    pts += [s1 * m for m in (1, 2, 3, 4.5, 6, 8, -1, -2, -3, -4.5, -6, -8)]
    if k != 0:
        for m in ("0.25", "1", "4", "16", "64"):
            pts += [mpmath.mpf(m) / k, -mpmath.mpf(m) / k]     # the inner expectation follows g(k u)
        if sd > 0:
            # where the inner expectation changes with u: on the scale sd/|k| (its smoothing width), graded
            # geometrically from there up to the outer window (at rho ~ -1 + 1e-16 and variance 1e300 the
            # width is 1e-8 of the window: a piece spanning both misses the transition)
            w = sd / abs(k)
            for m in ("0.5", "1", "2", "3", "4.5", "6", "8", "12"):
                pts += [mpmath.mpf(m) * w, -mpmath.mpf(m) * w]
            point = 16 * w
            for _ in range(60):
                if point >= T * s1:
                    break
                pts += [point, -point]
                point *= 4
    norm1 = s1 * mpmath.sqrt(2 * mpmath.pi)
    return _mp_pieces_sum(lambda x: f(x) * mpmath.exp(-(x / s1) ** 2 / 2) * inner(x), _breaks(-T * s1, T * s1, pts),
                          n, dps) / norm1


@lru_cache(maxsize=4096)
def mp_reference(activation: str, which: str, q11_: float, q12_: float, q22_: float, dps: int = 30) -> mpmath.mpf:
    """An independent high-precision value of ``E[phi phi]`` / ``E[phi' phi']`` at any scale (exact float inputs).

    Closed forms: the SymPy expression (the raw one, not the float64 rearrangement) in mpmath at
    ``dps + 40`` and ``dps + 80`` digits, or where these disagree in the first ``dps`` digits at ``dps +
    700`` and ``dps + 900`` -- enough to survive every cancellation of the raw form on float64 inputs
    (``q11 q22 - q12^2`` loses at most ~620 digits) -- which must agree to ``dps`` digits.  Other activations: nested composite Gauss-Legendre in ``u``-space (:func:`_mp_nested`, no
    asymptote subtraction, none of the float64 code) with 12 and 24 nodes per piece, which must agree
    to 1e-14 relative (the 12-node error; the 24-node result, returned, is ~its square: measured <= 1e-20
    against 48 nodes).  ValueError otherwise.

    >>> float(mp_reference("relu", "value", 1e300, 1e300, 1e300))       # q/2, not overflow
    5e+299
    """
    if which not in ("value", "derivative"):
        raise ValueError(f"which={which!r} is unknown; allowed: value, derivative")
    name = get_activation(activation).name
    a, c, b = (mpmath.mpf(float(x)) for x in (q11_, q12_, q22_))
    if closed_form(name) is not None:
        fn = _mp_closed(name, which)
        for low, high in ((40, 80), (700, 900)):     # guard digits: escalate where the raw form cancels more
            vals = []
            for extra in (low, high):
                with mpmath.workdps(dps + extra):
                    v = fn(a, c, b)
                    if isinstance(v, mpmath.mpc):
                        v = v.real  # acos(1 + 1e-900) = i 4e-450: the rounding of q12/sqrt(q11 q22) at rho = 1
                    vals.append(v)
            with mpmath.workdps(dps):
                if abs(vals[0] - vals[1]) <= mpmath.mpf(10) ** (-dps) * max(abs(vals[1]), mpmath.mpf(10) ** -(10 * dps)):
                    return +vals[1]
        raise ValueError(f"mp_reference: the {which} kernel of {name} did not converge at q = {(q11_, q12_, q22_)}")
    f, df = _mp_functions(name)
    fn = f if which == "value" else df
    lo, hi = (a, b) if a <= b else (b, a)
    with mpmath.workdps(dps):
        v1 = _mp_nested(fn, fn, lo, c, hi, 12, dps)
        v2 = _mp_nested(fn, fn, lo, c, hi, 24, dps)
        if abs(v1 - v2) > mpmath.mpf("1e-14") * abs(v2) and abs(v1 - v2) > mpmath.mpf(10) ** (-dps):
            raise ValueError(f"mp_reference: the {which} kernel of {name} did not converge at q = {(q11_, q12_, q22_)}: "
                             f"{mpmath.nstr(v1, 25)} vs {mpmath.nstr(v2, 25)}")
        return +v2
