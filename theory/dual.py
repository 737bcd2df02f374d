r"""Dual kernels of the activations: Gaussian expectations that drive the infinite-width recursion.

For a centred bivariate Gaussian ``(u, u') ~ N(0, [[q11, q12], [q12, q22]])`` the *dual kernel*
of an activation ``phi`` and its *derivative kernel* are

.. math::  V(q) = E[\phi(u)\phi(u')], \qquad \dot V(q) = E[\phi'(u)\phi'(u')].

Price's theorem gives ``dV/dq12 = dotV`` for every activation with a weak derivative of at most
polynomial growth.

Closed forms (each written once as a SymPy expression in ``q11, q12, q22``, lambdified for NumPy):

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

Activations without a closed form (tanh, softplus, anything registered later) use a vectorised
tensor quadrature in Cholesky coordinates (trapezoidal rule by default, Gauss-Hermite on request);
its error against the mpmath reference is *measured* (:func:`quadrature_error`), see
``DEFAULT_QUADRATURE_NODES``.

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
    "refinement_level", "mp_gaussian_expectation", "reference_expectation", "closed_form_error",
    "quadrature_error", "QUADRATURES", "DEFAULT_QUADRATURE", "DEFAULT_QUADRATURE_NODES", "MAX_REFINEMENTS",
    "q11", "q12", "q22", "rho"
]

#: Entries of the Gaussian covariance. ``q11, q22 > 0`` (variances), ``q12`` real.
q11, q22 = sp.symbols("q11 q22", positive=True)
q12 = sp.Symbol("q12", real=True)
#: Correlation ``q12 / sqrt(q11 q22)`` used by the homogeneous activations.
rho = sp.Symbol("rho", real=True)

#: Numeric rule for activations without a closed form: the trapezoidal ("sinc") rule on
#: ``[-9, 9]`` in Cholesky coordinates with ``DEFAULT_QUADRATURE_NODES`` nodes per axis (step 0.138).
#: Chosen by measurement against the 30-digit mpmath reference (``quadrature_error``;
#: tests/theory/test_dual.py re-measures it): max relative error ~1e-14 for tanh and softplus at
#: variances <= 3 and 8e-12 at variance 4 (tanh's derivative kernel at rho = 1 is the worst case;
#: softplus stays at ~1e-15).  Larger variances get proportionally finer steps
#: (:func:`refinement_level`).  With 121 nodes (step 0.15) tanh's was 1.1e-12 at variance 3 and 1.0e-10
#: at variance 4; with 141, 6.5e-13 at variance 4.  A tensor Gauss-Hermite rule (``quadrature="gauss-hermite"``) is available for comparison:
#: with 96 nodes per axis it is only 1e-9 accurate at variance 1 and 1e-6 at variance 3, because its
#: nodes spread to +-sqrt(2n) while tanh's poles at +-i pi/(2 sigma) limit its convergence; the
#: trapezoidal rule converges like exp(-2 pi d / h) for poles at distance d.
DEFAULT_QUADRATURE = "trapezoid"
DEFAULT_QUADRATURE_NODES = 131
_TRAPEZOID_HALF_RANGE = 9.0  # Gaussian tail beyond 9 sigma: < 3e-19
QUADRATURES = ("trapezoid", "gauss-hermite")

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
                          "arc-cosine (positively homogeneous)", True)
    c = _match_scaled(act.expr, sp.erf)
    if c is not None:
        c2 = c**2
        A, B = 1 + 2 * c2 * q11, 1 + 2 * c2 * q22
        value = 2 / sp.pi * sp.asin(2 * c2 * q12 / sp.sqrt(A * B))
        deriv = 4 * c2 / sp.pi / sp.sqrt(A * B - 4 * c2**2 * q12**2)
        return ClosedForm(value, deriv, "arcsine (erf)", True)
    c = _match_scaled(act.expr, sp.sin)
    if c is not None:
        c2 = c**2
        damp = sp.exp(-c2 * (q11 + q22) / 2)
        return ClosedForm(damp * sp.sinh(c2 * q12), c2 * damp * sp.cosh(c2 * q12), "exponential (sin)", True)
    gelu = u * (1 + sp.erf(u / sp.sqrt(2))) / 2
    if sp.simplify(act.expr - gelu) == 0:
        A, B = 1 + q11, 1 + q22
        value = (q12 / 4 + q12 * sp.asin(q12 / sp.sqrt(A * B)) / (2 * sp.pi)
                 + (q11 * q22 + q12**2 * (1 / A + 1 / B - 1)) / (2 * sp.pi * sp.sqrt(A * B - q12**2)))
        return ClosedForm(value, sp.diff(value, q12), "Stein's lemma (gelu)", False)
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
    _value_fn: Optional[Callable] = field(default=None, repr=False, compare=False)
    _derivative_fn: Optional[Callable] = field(default=None, repr=False, compare=False)
    _homogeneous: bool = False
    _correlation_fn: Optional[Callable] = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.activation.name

    @property
    def is_homogeneous(self) -> bool:
        """True for positively homogeneous activations: ``V = sqrt(q11 q22) J1(rho)``, ``dotV = J0(rho)``."""
        return self._homogeneous

    def correlation_form(self, r: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(J1(rho), J0(rho))`` for a homogeneous activation, ``rho`` in ``[-1, 1]`` (one pass, shared
        subexpressions).  ``J1 = V(1, rho, 1)`` and ``J0 = dotV(1, rho, 1)`` by substitution.

        >>> [round(float(x), 12) for x in dual_kernel("relu").correlation_form(np.array(0.0))]
        [0.159154943092, 0.25]
        """
        if not self._homogeneous:
            raise ValueError(f"activation={self.name!r} is not positively homogeneous: no correlation form")
        j1, j0 = self._correlation_fn(r)
        return np.broadcast_to(j1, np.shape(r)), np.broadcast_to(j0, np.shape(r))

    def value(self, q11, q12, q22, check: bool = True) -> np.ndarray:
        """``E[phi(u) phi(u')]`` elementwise."""
        return self._evaluate(q11, q12, q22, check)[0]

    def derivative(self, q11, q12, q22, check: bool = True) -> np.ndarray:
        """``E[phi'(u) phi'(u')]`` elementwise."""
        return self._evaluate(q11, q12, q22, check, want=(False, True))[1]

    def both(self, q11, q12, q22, check: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """``(value, derivative)`` in one pass (shares the quadrature grid for numeric duals)."""
        return self._evaluate(q11, q12, q22, check, want=(True, True))

    # ---------------------------------------------------------------------------------------
    def _evaluate(self, a, c, b, check, want=(True, False)):
        a, c, b = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (a, c, b)))
        if check:
            _check_covariance(a, c, b)
        if self._homogeneous:
            out = _homogeneous_eval(self, a, c, b, want)
        elif self.closed_form:
            lo, hi = np.minimum(a, b), np.maximum(a, b)  # sorted variances: exactly symmetric in (q11, q22)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                out = (np.broadcast_to(self._value_fn(lo, c, hi), a.shape).astype(np.float64) if want[0] else None,
                       np.broadcast_to(self._derivative_fn(lo, c, hi), a.shape).astype(np.float64)
                       if want[1] else None)
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
    # Cauchy-Schwarz, with a relative allowance for rounding of kernels computed in float64
    excess = c * c - a * b
    if np.any(excess > 1e-10 * np.maximum(a * b, 1e-300)):
        i = tuple(int(t) for t in np.argwhere(excess > 1e-10 * np.maximum(a * b, 1e-300))[0])
        raise ValueError(f"not a covariance: q12^2 > q11 q22 at q11={a[i]!r}, q12={c[i]!r}, q22={b[i]!r}")


def snap_correlations(r: np.ndarray) -> np.ndarray:
    """Clip correlations to ``[-1, 1]`` and snap those within 8 ulp of +-1 to +-1, in place.

    Why: relu-type derivative kernels ``(pi - arccos rho)/(2 pi)`` have a square-root singularity
    at ``rho = +-1``, so a rounding error of 1e-16 in the correlation of (anti)parallel inputs would
    become a 1e-8 error in ``dotSigma``.  Correlations that close to +-1 are parallel to float
    precision.

    >>> snap_correlations(np.array([1 + 1e-16, 1 - 4e-16, 0.5, -1 - 1e-15])).tolist()
    [1.0, 1.0, 0.5, -1.0]
    """
    np.clip(r, -1.0, 1.0, out=r)
    near = np.abs(r) >= 1.0 - 8 * np.finfo(np.float64).eps
    np.copysign(1.0, r, out=r, where=near)
    return r


def _homogeneous_eval(kernel: DualKernel, a, c, b, want):
    """``V = sqrt(q11 q22) J1(rho)``, ``dotV = J0(rho)`` for degree-1 homogeneous activations."""
    s = np.sqrt(a * b)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = snap_correlations(np.array(c / s, dtype=np.float64, ndmin=1)).reshape(s.shape)
    value = deriv = None
    if want[0]:
        value = np.broadcast_to(kernel._value_fn(r), s.shape) * s
        value = np.where(s == 0, 0.0, value)  # |V| <= const * sqrt(q11 q22): the limit is 0
    if want[1]:
        deriv = np.broadcast_to(kernel._derivative_fn(r), s.shape).astype(np.float64)
        constant = not kernel.symbolic[1].has(q12)
        if not constant:
            deriv = np.where(s == 0, np.nan, deriv)  # direction-dependent limit: reported by caller
    return value, deriv


@lru_cache(maxsize=None)
def _build(act: Activation, quadrature: str, nodes: int) -> DualKernel:
    form = closed_form(act)
    if form is None:
        return DualKernel(act, False, None, f"{quadrature} n={nodes}", "numeric", quadrature, nodes)
    if homogeneous_slopes(act) is not None:
        J1 = form.value.subs({q11: 1, q22: 1, q12: rho})
        J0 = form.derivative.subs({q11: 1, q22: 1, q12: rho})
        vf = sp.lambdify(rho, J1, modules=_NUMPY_MODULES, cse=True)
        df = sp.lambdify(rho, J0, modules=_NUMPY_MODULES, cse=True)
        both = sp.lambdify(rho, [J1, J0], modules=_NUMPY_MODULES, cse=True)
        return DualKernel(act, True, (form.value, form.derivative), "closed form", form.family, None, None,
                          vf, df, True, both)
    vf = sp.lambdify((q11, q12, q22), form.value, modules=_NUMPY_MODULES, cse=True)
    df = sp.lambdify((q11, q12, q22), form.derivative, modules=_NUMPY_MODULES, cse=True)
    return DualKernel(act, True, (form.value, form.derivative), "closed form", form.family, None, None, vf, df)


def dual_kernel(activation, quadrature: str = DEFAULT_QUADRATURE,
                nodes: int = DEFAULT_QUADRATURE_NODES) -> DualKernel:
    """The :class:`DualKernel` of an activation (name or :class:`~theory.activations.Activation`).

    ``quadrature``/``nodes`` only matter for activations without a closed form.

    >>> dual_kernel("erf").symbolic[0]
    2*asin(2*q12/(sqrt(2*q11 + 1)*sqrt(2*q22 + 1)))/pi
    >>> dual_kernel("tanh").method
    'trapezoid n=131'
    """
    from theory.validation import check_choice, check_positive_int

    act = get_activation(activation)
    check_choice("quadrature", quadrature, QUADRATURES)
    check_positive_int("nodes", nodes, minimum=3)
    return _build(act, quadrature, int(nodes))


# ------------------------------------------------------------------------------------------------
# Gauss-Hermite (activations without a closed form)
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
    raise ValueError(f"quadrature={quadrature!r} is unknown; allowed: {', '.join(QUADRATURES)}")


#: the trapezoidal step is halved ``ceil(1.5 log2(sigma/2))`` times for a largest standard deviation
#: ``sigma > 2`` (tanh's poles sit at distance pi/(2 sigma), and the relative error also grows with
#: sigma as the derivative kernel shrinks), at most this many times (reached at variance ~ 40)
MAX_REFINEMENTS = 3


def refinement_level(max_variance: np.ndarray) -> np.ndarray:
    """How many times the trapezoidal step is halved for a covariance with this larger variance.

    Level -1 (half the nodes) for variances <= 1/2, where the coarser step is still accurate to
    ~1e-14 (measured; tests/theory/test_dual.py).

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
    r"""Tensor quadrature in Cholesky coordinates, vectorised over covariances.

    ``u = sqrt(qa) z1``, ``u' = a z1 + b z2`` with ``a = q12/sqrt(qa)``, ``b = sqrt(qb - a^2)``,
    ``E[f(u) g(u')] ~ sum_i w_i f(u_i) sum_j w_j g(a z_i + b z_j)`` (``f = g = phi`` for the value,
    ``phi'`` for the derivative kernel), where ``qa <= qb`` are the two variances in sorted order --
    so the result is exactly symmetric in ``(q11, q22)``.  ``n`` nodes per axis for variances <= 4;
    the trapezoidal rule uses ``(n - 1) 2^k + 1`` nodes (step halved ``k`` times, see
    :func:`refinement_level`) for larger variances.  Work ``O(n^2)`` per entry, in chunks of at
    most ``chunk_points`` grid points.  A zero variance is the deterministic ``u = 0``.

    >>> v, d = quadrature_dual("linear", np.array([2.0]), np.array([0.5]), np.array([1.0]), 41)
    >>> round(float(v[0]), 12), round(float(d[0]), 12)
    (0.5, 1.0)
    """
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
