"""Fully connected networks in the NTK parameterisation (:mod:`proofs.conventions`), float64.

Layer ``l = 1..L`` keeps one *augmented* weight matrix ``Wb_l`` of shape ``(M_l, M_{l-1} + b)``
(``b = 1`` when the network has biases, the bias being the LAST column), and

    z_l = [sigma_w * h_{l-1} / sqrt(M_{l-1}) ; sigma_b]      (the bias coordinate only if b = 1)
    u_l = Wb_l @ z_l,   h_l = phi(u_l) for l < L,   f(x) = u_L,   h_0 = x,

which is ``u_l = sigma_w/sqrt(M_{l-1}) W_l h_{l-1} + sigma_b b_l`` with every entry of ``Wb_l``
drawn i.i.d. N(0, 1).  ``theta_l = Wb_l.ravel()`` (row-major) and ``theta`` concatenates the layers.

>>> import numpy as np
>>> net = MLP([3, 16, 16, 2], activation="tanh", sigma_w2=1.5, sigma_b2=0.1, seed=0)
>>> net.depth, net.n_outputs, net.has_bias, [p.shape for p in net.params]
(3, 2, True, [(16, 4), (16, 17), (2, 17)])
>>> net.n_params == 16 * 4 + 16 * 17 + 2 * 17
True
>>> net.forward(np.ones((5, 3))).shape
(5, 2)
"""
from __future__ import annotations

import copy as _copy
import numbers
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.linalg import blas

from theory.activations import Activation, get_activation
from theory.validation import check_matrix, check_nonnegative, check_positive_int

from .factors import JacobianFactors

__all__ = ["MLP", "make_rng", "SeedLike", "check_real_array", "activation_growth", "ActivationGrowth",
           "MAX_PREACTIVATION_VARIANCE"]

#: Largest pre-activation variance bound accepted (2^960 ~ 9.7e288): float64 overflows at 2^1024 ~ 1.8e308,
#: and the Grams built from a pass sum squares of this size over N samples and L layers, times backward
#: signals; the 2^64 ~ 1.8e19 headroom covers that for any practical N, L (measured: a relu net at
#: |x|^2/M_0 = 1e304 still runs, 1e310 overflows in the first Gram).
MAX_PREACTIVATION_VARIANCE = 2.0 ** 960

#: dtype kinds accepted as real inputs: bool, signed/unsigned integers, floats.
_REAL_KINDS = "biuf"

SeedLike = Union[int, np.integer, np.random.Generator, None]


def check_real_array(name: str, X):
    """``X`` as an array if its dtype is real (bool, int, uint, float); TypeError naming the argument and
    the dtype otherwise -- complex values are never silently cast to real (numpy would drop the imaginary
    part with only a ComplexWarning), object and string arrays are never parsed.  Shape and finiteness are
    checked afterwards (:func:`theory.validation.check_matrix`).

    >>> check_real_array("X", np.array([[1 + 2j]]))
    Traceback (most recent call last):
    ...
    TypeError: X has dtype complex128: expected real numbers (bool, int or float); complex inputs are not cast to real -- pass X.real (or stack real and imaginary parts as features) if that is what is meant
    """
    if isinstance(X, np.ndarray):
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError):
            return X          # ragged or exotic: check_matrix names it
    kind = arr.dtype.kind
    if kind in _REAL_KINDS:
        return arr
    if kind == "c":
        raise TypeError(f"{name} has dtype {arr.dtype}: expected real numbers (bool, int or float); complex inputs "
                        f"are not cast to real -- pass {name}.real (or stack real and imaginary parts as features) if "
                        "that is what is meant")
    what = {"O": "an object array (entries of arbitrary Python types)", "U": "a string array", "S": "a bytes array",
            "M": "a datetime array", "m": "a timedelta array", "V": "a structured array"}.get(kind, "not numeric")
    raise TypeError(f"{name} has dtype {arr.dtype}, {what}: expected a 2-D array of real numbers (bool, int or float)")


def _log_max_row_norm2(X: np.ndarray) -> float:
    """``log max_n |x_n|^2`` without overflow or a warning (rows scaled by their largest entry first);
    ``-inf`` when every row is zero."""
    if X.size == 0:
        return -np.inf
    peak = np.max(np.abs(X), axis=1)
    live = peak > 0
    if not live.any():
        return -np.inf
    scaled = X[live] / peak[live, None]                        # entries in [-1, 1]
    return float(np.max(2.0 * np.log(peak[live]) + np.log(np.einsum("ij,ij->i", scaled, scaled))))


def _exp10(log_value: float) -> str:
    """``exp(log_value)`` printed as ``m.mme+XXX`` even beyond the float64 range."""
    if not np.isfinite(log_value):
        return "0" if log_value < 0 else "inf"
    e10 = log_value / np.log(10.0)
    exponent = int(np.floor(e10))
    mantissa = 10.0 ** (e10 - exponent)
    if mantissa >= 9.995:
        mantissa, exponent = 1.0, exponent + 1
    return f"{mantissa:.3g}e{exponent:+d}"


@dataclass(frozen=True)
class ActivationGrowth:
    """How fast ``|phi(u)|`` can grow: ``|phi(u)| <= intercept + slope |u|`` (linear growth), or
    ``|phi| <= sup`` (``bounded``); ``slope=None`` when it grows faster than linearly or the limits
    could not be derived."""

    slope: Optional[float]
    intercept: float
    bounded: bool
    sup: float


_GROWTH: Dict[Tuple[str, str], ActivationGrowth] = {}


def activation_growth(activation) -> ActivationGrowth:
    """The growth of ``phi`` from its SymPy expression (``theory.activations``), cached per activation.

    The slope is ``max`` over the two half-lines of ``lim |phi(u)| / |u|`` (SymPy limits); ``phi`` is
    bounded when both slopes are 0 and ``phi`` has finite limits (or bounded oscillation, ``sin``) at
    both ends.  The intercept ``a = sup_u (|phi(u)| - s |u|)`` and the bound ``sup |phi|`` are
    evaluated on a grid of 40001 points (``|u| <= 1e6``) with a 1 % margin: they matter only for small
    variances, never near the overflow limit this bound is for.

    >>> g = activation_growth(get_activation("relu")); (g.slope, g.intercept, g.bounded)
    (1.0, 0.0, False)
    >>> activation_growth(get_activation("tanh")).bounded
    True
    """
    import sympy as sp

    from theory.activations import u as _u

    activation = get_activation(activation)
    key = (activation.name, str(activation.expr))
    if key in _GROWTH:
        return _GROWTH[key]
    t = sp.Symbol("t", positive=True)
    slopes, ends = [], []
    try:
        for sign in (1, -1):
            e = sp.piecewise_fold(activation.expr.subs(_u, sign * t))
            slopes.append(sp.limit(sp.Abs(e) / t, t, sp.oo))
            ends.append(sp.limit(e, t, sp.oo))
        finite = all(sl.is_finite for sl in slopes)
    except Exception:  # noqa: BLE001 -- SymPy cannot take the limit: unknown growth
        finite = False
    grid = np.concatenate([np.linspace(-50.0, 50.0, 20001), np.logspace(-3, 6, 10000), -np.logspace(-3, 6, 10000)])
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.abs(np.asarray(activation.phi(grid), dtype=float))
    if not finite:
        growth = ActivationGrowth(None, 0.0, False, float("inf"))
    else:
        slope = float(max(abs(float(sl)) for sl in slopes))

        def end_bound(v):
            if isinstance(v, sp.AccumBounds):
                return max(abs(float(v.min)), abs(float(v.max)))
            return abs(float(v)) if v.is_finite else float("inf")

        top = max(end_bound(v) for v in ends)
        if slope == 0 and np.isfinite(top):
            growth = ActivationGrowth(0.0, 0.0, True, 1.01 * max(top, float(np.max(values))))
        else:
            slope = slope if slope > 0 else 1.0       # sublinear but unbounded: bounded by a linear function
            excess = float(np.max(values - slope * np.abs(grid)))
            growth = ActivationGrowth(slope, 1.01 * max(0.0, excess), False, float("inf"))
    _GROWTH[key] = growth
    return growth


def make_rng(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int seed or an existing Generator (passed through).

    ``None`` is refused: every draw in the project must be reproducible from a seed the user can see.

    >>> int(make_rng(3).integers(10)) == int(make_rng(3).integers(10))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}={seed!r} is not allowed: expected an int >= 0 or a numpy.random.Generator")
    if seed < 0:
        raise ValueError(f"{name}={seed} is not allowed: expected an int >= 0 or a numpy.random.Generator")
    return np.random.default_rng(int(seed))


class MLP:
    """A multilayer perceptron ``M_0 -> M_1 -> ... -> M_L = C`` in the NTK parameterisation.

    Parameters
    ----------
    widths:
        ``[M_0, M_1, ..., M_L]``; ``L = len(widths) - 1 >= 1`` weight layers, ``C = M_L`` outputs.
    activation:
        A name from :func:`theory.activations.available_activations` or an ``Activation``; the same
        SymPy definition feeds the symbolic kernels.
    sigma_w2, sigma_b2:
        Weight and bias variances (``sigma_b2 > 0`` switches bias parameters on).
    seed:
        int or ``numpy.random.Generator``; the weights are drawn layer by layer from it.
    """

    def __init__(self, widths: Sequence[int], activation="relu", sigma_w2: float = 2.0,
                 sigma_b2: float = 0.0, seed: SeedLike = 0):
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
            raise TypeError(f"widths={widths!r} is not allowed: expected a sequence [M_0, ..., M_L] of ints")
        if len(widths) < 2:
            raise ValueError(f"widths={list(widths)!r} is not allowed: needs at least [M_0, C] (depth >= 1)")
        self.widths: Tuple[int, ...] = tuple(check_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        self.activation: Activation = get_activation(activation)
        self.sigma_w2 = check_nonnegative("sigma_w2", sigma_w2, allow_zero=False)
        self.sigma_b2 = check_nonnegative("sigma_b2", sigma_b2)
        self.seed = int(seed) if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, bool) else None
        rng = make_rng(seed)
        self.params: List[np.ndarray] = [
            rng.standard_normal((m_out, m_in + self.has_bias))
            for m_in, m_out in zip(self.widths[:-1], self.widths[1:])
        ]

    # -- shape information ------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """L, the number of weight layers."""
        return len(self.widths) - 1

    @property
    def n_outputs(self) -> int:
        """C, the output dimension."""
        return self.widths[-1]

    @property
    def has_bias(self) -> bool:
        return self.sigma_b2 > 0.0

    @property
    def sigma_w(self) -> float:
        return float(np.sqrt(self.sigma_w2))

    @property
    def sigma_b(self) -> float:
        return float(np.sqrt(self.sigma_b2))

    @property
    def layer_sizes(self) -> Tuple[int, ...]:
        """``P_l = M_l (M_{l-1} + b)``, the number of parameters of each layer."""
        return tuple(int(p.size) for p in self.params)

    @property
    def n_params(self) -> int:
        return int(sum(self.layer_sizes))

    def __repr__(self) -> str:
        return (f"MLP(widths={list(self.widths)}, activation={self.activation.name!r}, "
                f"sigma_w2={self.sigma_w2}, sigma_b2={self.sigma_b2}, seed={self.seed})")

    # -- passes -----------------------------------------------------------------------------
    def check_inputs(self, X, name: str = "X") -> np.ndarray:
        """Validate an input matrix before any arithmetic: real (not complex, object, string: TypeError
        naming the argument and its dtype, no numpy ComplexWarning), 2-D, ``M_0`` columns, finite, and of a
        magnitude whose pre-activation variance bound stays below :data:`MAX_PREACTIVATION_VARIANCE` at
        this depth (:meth:`variance_bound`; ValueError with the limit and the largest allowed
        ``|x|^2 / M_0``), so the forward pass and every Gram after it cannot overflow."""
        X = check_matrix(name, check_real_array(name, X), ncols=self.widths[0])
        self.check_scale(X, name)
        return X

    def variance_bound(self, X) -> np.ndarray:
        """``log`` of an upper bound on the pre-activation variance ``q_l`` of layers ``l = 1..L`` over the
        rows of ``X`` (log domain: no overflow whatever the input).

        ``q_1 = sigma_w2 max_n |x_n|^2 / M_0 + sigma_b2`` exactly (``u_1 = Wb_1 z_1`` with i.i.d. N(0, 1)
        weights has variance ``|z_1|^2``); then ``q_{l+1} <= sigma_w2 E[phi(u)^2] + sigma_b2`` with
        ``E[phi(u)^2] <= (a + s sqrt(q_l))^2`` for an activation of linear growth ``|phi(u)| <= a + s |u|``
        (at most ``sigma_w2 s^2`` per layer for large ``q``) and ``<= sup phi^2`` for a bounded one (no
        growth): :func:`activation_growth`.  An activation of faster growth gets ``q_1`` only.

        >>> net = MLP([2, 8, 8, 1], activation="relu", sigma_w2=2.0, seed=0)
        >>> np.exp(net.variance_bound(np.array([[3.0, 4.0]]))).round(6).tolist()   # 2*25/2 = 25, x2 per layer
        [25.0, 50.0, 100.0]
        """
        X = np.asarray(X, dtype=float)
        log_q1 = np.log(self.sigma_w2) - np.log(self.widths[0]) + _log_max_row_norm2(X)
        if self.has_bias:
            log_q1 = np.logaddexp(log_q1, np.log(self.sigma_b2))
        out = [float(log_q1)]
        growth = activation_growth(self.activation)
        for _ in range(1, self.depth):
            if growth.slope is None:
                break
            if growth.bounded:
                log_phi2 = 2.0 * np.log(growth.sup) if growth.sup > 0 else -np.inf
            else:
                log_root = np.log(growth.slope) + 0.5 * out[-1]
                if growth.intercept > 0:
                    log_root = np.logaddexp(np.log(growth.intercept), log_root)
                log_phi2 = 2.0 * log_root
            log_q = np.log(self.sigma_w2) + log_phi2
            if self.has_bias:
                log_q = np.logaddexp(log_q, np.log(self.sigma_b2))
            out.append(float(log_q))
        return np.array(out)

    def check_scale(self, X, name: str = "X") -> None:
        """ValueError when the pre-activation variance bound of some layer exceeds
        :data:`MAX_PREACTIVATION_VARIANCE` (the message names the layer, the bound, the limit and the
        largest ``max_n |x_n|^2 / M_0`` allowed at this depth)."""
        X = np.asarray(X, dtype=float)
        logs = self.variance_bound(X)
        limit = np.log(MAX_PREACTIVATION_VARIANCE)
        if not np.all(logs <= limit):
            l = int(np.argmax(logs > limit)) + 1
            growth = activation_growth(self.activation)
            how = (f"{self.activation.name} grows at most linearly with slope {growth.slope:g}, so the variance grows by "
                   f"at most sigma_w2 slope^2 = {self.sigma_w2 * growth.slope ** 2:g} per layer" if not growth.bounded
                   and growth.slope is not None else
                   f"{self.activation.name} is bounded, so only the first layer's variance depends on the inputs"
                   if growth.bounded else f"{self.activation.name} grows faster than linearly: only layer 1 is bounded")
            allowed = self._largest_allowed_log_scale(limit)
            raise ValueError(
                f"{name} is too large for float64 at depth L = {self.depth}: max_n |x_n|^2 / M_0 = "
                f"{_exp10(_log_max_row_norm2(X) - np.log(self.widths[0]))} gives a pre-activation variance bound "
                f"{_exp10(logs[l - 1])} at layer {l} (q_1 = sigma_w2 |x|^2 / M_0 + sigma_b2 with sigma_w2 = "
                f"{self.sigma_w2:g}, sigma_b2 = {self.sigma_b2:g}; {how}), above the limit "
                f"{MAX_PREACTIVATION_VARIANCE:.3g} (float64 overflows at 1.8e308; Grams sum such squares over samples "
                f"and layers); allowed: max_n |x_n|^2 / M_0 <= {_exp10(allowed)} for this network -- rescale the inputs")

    def _largest_allowed_log_scale(self, limit: float) -> float:
        """``log`` of the largest ``max_n |x_n|^2 / M_0`` whose variance bound stays below ``exp(limit)``
        (bisection in the log domain: the bound is increasing in the input scale)."""
        m0 = self.widths[0]

        def ok(log_s):
            x = np.zeros((1, m0))
            # a row with |x|^2 / M_0 = exp(log_s): every entry exp(log_s / 2) (representable while log_s < 1418)
            x[0, :] = np.exp(0.5 * log_s)
            return bool(np.all(self.variance_bound(x) <= limit))

        lo, hi = -50.0, 2 * np.log(np.finfo(float).max) - 1.0
        if not ok(lo):
            return -np.inf
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return lo

    def _layer_input(self, h: np.ndarray, fan_in: int) -> np.ndarray:
        """``z = [sigma_w h / sqrt(fan_in), sigma_b]`` for every row of ``h``."""
        z = (self.sigma_w / np.sqrt(fan_in)) * h
        if self.has_bias:
            z = np.hstack([z, np.full((h.shape[0], 1), self.sigma_b)])
        return z

    def _forward_pass(self, X: np.ndarray):
        """Layer inputs ``Z_l`` and pre-activations ``u_l`` for every layer (one GEMM per layer)."""
        Z, U = [], []
        h = X
        for l, W in enumerate(self.params):
            z = self._layer_input(h, self.widths[l])
            u = (W @ z.T).T  # = z @ W.T; this operand order is several times faster in OpenBLAS for N << M
            Z.append(z)
            U.append(u)
            if l < self.depth - 1:
                h = self.activation.phi(u)
        return Z, U

    def forward(self, X) -> np.ndarray:
        """Network outputs ``f(X)``, shape ``(N, C)``.

        >>> net = MLP([2, 4, 1], activation="linear", sigma_w2=1.0, seed=1)
        >>> x = np.array([[1.0, -1.0]])
        >>> W1, W2 = net.params
        >>> bool(np.allclose(net.forward(x), (W2 @ (W1 @ x[0] / np.sqrt(2))) / 2))
        True
        """
        X = self.check_inputs(X)
        return self._forward_pass(X)[1][-1]

    def factors(self, X) -> JacobianFactors:
        """Jacobian factors at ``X``: one forward pass and one backward pass, no Jacobian formed.

        ``Delta_L[n, c, :] = e_c`` and, going down,
        ``Delta_l[n, c, :] = (Delta_{l+1}[n, c, :] @ W_{l+1}) * sigma_w / sqrt(M_l) * phi'(u_l(x_n))``
        with ``W_{l+1}`` the weight part of ``Wb_{l+1}`` (bias column dropped); each step is one GEMM
        of shape ``(N C, M_{l+1}) x (M_{l+1}, M_l)``.
        """
        X = self.check_inputs(X)
        Z, U = self._forward_pass(X)
        n, c = X.shape[0], self.n_outputs
        deltas: List[Optional[np.ndarray]] = [None] * self.depth
        delta = np.broadcast_to(np.eye(c), (n, c, c)).copy()
        deltas[-1] = delta
        for l in range(self.depth - 2, -1, -1):  # 0-based index of the layer whose Delta we compute
            fan_in = self.widths[l + 1]
            W_next = self.params[l + 1][:, :fan_in]
            back = (W_next.T @ delta.reshape(n * c, -1).T).T.reshape(n, c, fan_in)  # = delta @ W_next
            delta = back * ((self.sigma_w / np.sqrt(fan_in)) * self.activation.dphi(U[l]))[:, None, :]
            deltas[l] = delta
        return JacobianFactors(Z=Z, Delta=deltas, outputs=U[-1])

    # -- parameters -------------------------------------------------------------------------
    def copy(self) -> "MLP":
        """An independent deep copy (parameters included)."""
        return _copy.deepcopy(self)

    def get_flat_params(self) -> np.ndarray:
        """``theta`` = concatenation of ``params[l].ravel()`` (row-major), length ``n_params``."""
        return np.concatenate([p.ravel() for p in self.params])

    def set_flat_params(self, theta) -> None:
        """Inverse of :meth:`get_flat_params`."""
        theta = np.asarray(theta, dtype=float)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta has shape {theta.shape}, expected ({self.n_params},)")
        if not np.all(np.isfinite(theta)):
            raise ValueError("theta contains non-finite values")
        offset = 0
        for l, p in enumerate(self.params):
            self.params[l] = theta[offset:offset + p.size].reshape(p.shape).copy()
            offset += p.size

    def apply_update(self, directions: Sequence[np.ndarray], learning_rate: float) -> None:
        """``params[l] -= learning_rate * directions[l]`` for every layer (in place).

        Refuses wrong shapes and non-finite directions instead of corrupting the network.
        """
        lr = float(learning_rate)
        if not np.isfinite(lr):
            raise ValueError(f"learning_rate={learning_rate!r} is not allowed: expected a finite number")
        if len(directions) != self.depth:
            raise ValueError(f"directions has {len(directions)} layers, the network has {self.depth}")
        checked = []
        for l, (d, p) in enumerate(zip(directions, self.params)):
            d = np.asarray(d, dtype=float)
            if d.shape != p.shape:
                raise ValueError(f"directions[{l}] has shape {d.shape}, expected {p.shape}")
            # a sum is finite iff no entry is inf/nan (barring overflow, which the full check resolves)
            if not np.isfinite(d.sum()) and not np.all(np.isfinite(d)):
                raise ValueError(f"directions[{l}] contains non-finite values; the update was not applied")
            checked.append(d)
        for l, d in enumerate(checked):
            p = self.params[l]
            if not p.flags.writeable or not p.flags.c_contiguous:
                p = self.params[l] = np.array(p, dtype=float, order="C")
            # in place via BLAS axpy: no P_l-sized temporary (matters at width 16384: 2 GiB per layer)
            flat = blas.daxpy(np.ascontiguousarray(d).ravel(), p.ravel(), a=-lr)
            if not np.shares_memory(flat, p):  # axpy could not work in place: fall back
                p -= lr * d
