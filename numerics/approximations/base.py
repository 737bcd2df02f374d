"""The common interface of every approximate-Fisher preconditioner, and shared helpers.

An approximation is built at the network's current parameters and a training batch ``X``:

    approx = SomeApproximation(net, X, damping=rho, **options)
    approx.direction(residual)   # list of L arrays like net.params: (G + rho I)^{-1} J^T r / N
    approx.operator(X2=None)     # Theta_G(X2, X) = J(X2) (G + rho I)^{-1} J(X)^T / N, (N2 C, N C)
    approx.dense_matrix()        # explicit P x P matrix G (small nets only)
    approx.diagnostics           # dict: condition numbers, ranks, failed assumption (None if none)

``rho = 0`` means the limit ``rho -> 0+``: the minimum-norm (pseudo-inverse) solution.  Every fast
path works in the dual (sample) space through :mod:`numerics.factors`; the explicit ``G`` exists
only for the dense reference (:mod:`numerics.dense`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from theory.assumptions import Flag, failed_assumption_text
from theory.validation import check_nonnegative

from ..factors import JacobianFactors, layer_vjp
from ..linalg import SingularSystemError
from ..network import MLP

__all__ = [
    "Approximation", "register_approximation", "reject_options", "duplicate_pairs", "closest_pair",
    "numerical_rank", "zero_signal_samples", "diagnose_layer_gram", "DUPLICATE_RTOL", "NEAR_DUPLICATE_RTOL"
]

#: Inputs closer than this (relative to the largest input norm) count as duplicates in diagnoses.
DUPLICATE_RTOL = 1e-10

#: Inputs closer than this relative distance are named "near-duplicates" when nothing structural
#: (parameter count, zero rows, rank bounds, narrow layers) explains a singular Gram: a pair at
#: distance d makes two Jacobian rows differ by O(d), i.e. a Gram eigenvalue O(d^2) relative, so
#: d < 1e-6 gives condition numbers beyond ~1e12, the range where the solvers give up.
NEAR_DUPLICATE_RTOL = 1e-6


_REGISTRY: Dict[str, type] = {}


def register_approximation(name: str, *, parametrised: bool = False):
    """Class decorator: register an :class:`Approximation` subclass under ``name`` (sets ``cls.name``).

    ``parametrised=True`` marks a family that needs an option to be one approximation (``pattern``
    needs ``pattern=S``): it is looked up by name but not listed in ``APPROXIMATIONS``.  One name,
    one class: registering a name twice from different classes is an error.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r} is not allowed: expected an identifier such as 'kfac'")

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Approximation)):
            raise TypeError(f"@register_approximation({name!r}) decorates Approximation subclasses, got {cls!r}")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"approximation {name!r} is registered twice: {old.__module__}.{old.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        cls.name = name
        cls.parametrised = parametrised
        _REGISTRY[name] = cls
        return cls

    return decorate


class Approximation(ABC):
    """Base class: validates the arguments, computes the Jacobian factors at ``X`` once.

    Subclasses set ``name`` and implement :meth:`_prepare` (consume options, build the dual
    system), :meth:`direction`, :meth:`operator` and :meth:`dense_matrix`.
    """

    name: ClassVar[str] = "base"
    parametrised: ClassVar[bool] = False

    def __init__(self, net: MLP, X, damping: float = 0.0, **options: Any):
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a numerics.network.MLP, got {type(net).__name__}")
        self.net = net
        self.X = net.check_inputs(X)
        self.damping = check_nonnegative("damping", damping)
        self.factors: JacobianFactors = net.factors(self.X)
        self.diagnostics: Dict[str, Any] = {"approximation": self.name, "damping": self.damping,
                                            "failed_assumption": None, "flags": []}
        self._prepare(**options)

    # -- to implement ---------------------------------------------------------------------
    def _prepare(self, **options: Any) -> None:
        """Consume options and build the dual system (default: accept no options)."""
        reject_options(self.name, options)

    @abstractmethod
    def direction(self, residual) -> List[np.ndarray]:
        """``(G + rho I)^{-1} J^T r / N`` as L arrays shaped like ``net.params``."""

    @abstractmethod
    def operator(self, X2=None) -> np.ndarray:
        """``J(X2) (G + rho I)^{-1} J(X)^T / N``, shape ``(N2 C, N C)``."""

    @abstractmethod
    def dense_matrix(self) -> np.ndarray:
        """The explicit ``P x P`` matrix ``G`` (for small networks and tests)."""

    # -- shared helpers -------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.factors.n_samples

    @property
    def n_outputs(self) -> int:
        return self.factors.n_outputs

    @property
    def depth(self) -> int:
        return self.factors.depth

    def residual_matrix(self, residual) -> np.ndarray:
        """Validate a residual ``f(X) - Y``: shape ``(N, C)`` (or ``N C`` sample-major), finite."""
        r = np.asarray(residual, dtype=float)
        n, c = self.n_samples, self.n_outputs
        if r.shape == (n * c,) or (c == 1 and r.shape == (n,)):
            r = r.reshape(n, c)
        if r.shape != (n, c):
            raise ValueError(f"residual has shape {r.shape}, expected (N, C) = ({n}, {c})")
        if not np.all(np.isfinite(r)):
            raise ValueError("residual contains non-finite values")
        return r

    def factors_at(self, X2=None) -> JacobianFactors:
        """Factors at test inputs ``X2`` (the training factors when ``X2`` is None)."""
        if X2 is None:
            return self.factors
        return self.net.factors(self.net.check_inputs(X2, "X2"))

    def directions_from_dual(self, dual: List[np.ndarray]) -> List[np.ndarray]:
        """``x_l = J_l^T v_l`` for per-layer dual vectors ``v_l`` (``N C`` each), one GEMM per layer."""
        return [layer_vjp(self.factors, l, v) for l, v in enumerate(dual, start=1)]

    def gradient(self, residual) -> List[np.ndarray]:
        """``grad = J^T r / N`` per layer (the plain GD direction)."""
        r = self.residual_matrix(residual)
        return [layer_vjp(self.factors, l, r) / self.n_samples for l in range(1, self.depth + 1)]

    def set_flags(self, flags: List[Flag]) -> None:
        """``diagnostics["flags"] = flags`` and ``diagnostics["failed_assumption"]``, their messages."""
        self.diagnostics["flags"] = list(flags)
        self.diagnostics["failed_assumption"] = failed_assumption_text(flags)

    def layer_gram_failure(self, message: str, condition_number: float, assumption: str,
                           code: str = "layer_gram_singular", violated=None):
        """Record the flag of a singular layer system and return the :class:`SingularSystemError` to
        raise; the error carries the same flags (``err.flags``: the approximation object is lost)."""
        from theory.assumptions import FULL_ROW_RANK_JACOBIANS

        self.set_flags([Flag(code, assumption, violated or FULL_ROW_RANK_JACOBIANS)])
        err = SingularSystemError(message, condition_number, assumption)
        err.flags = list(self.diagnostics["flags"])
        return err

    def layer_gram_assumption(self, l: int, condition_number: float) -> str:
        """A sentence naming why the layer-``l`` Gram ``J_l J_l^T`` is (nearly) singular."""
        return diagnose_layer_gram(self.factors, self.X, l, condition_number)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.n_samples}, C={self.n_outputs}, L={self.depth}, damping={self.damping})"


def reject_options(name: str, options: Dict[str, Any]) -> None:
    """Unknown keyword options are an error (a typo must not be silently ignored)."""
    if options:
        raise TypeError(f"approximation {name!r} got unexpected option(s): {', '.join(sorted(options))}")


def _squared_distances(X: np.ndarray):
    """Squared row norms and all pairwise squared distances ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` (one GEMM)."""
    sq = np.einsum("ij,ij->i", X, X)
    return sq, sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)


def duplicate_pairs(X: np.ndarray, rtol: float = DUPLICATE_RTOL) -> List[tuple]:
    """Pairs ``(i, j)``, ``i < j``, of (numerically) identical rows of ``X`` (one GEMM).

    >>> duplicate_pairs(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    [(0, 2)]
    """
    X = np.asarray(X, dtype=float)
    sq, d2 = _squared_distances(X)
    scale = max(float(sq.max()), np.finfo(float).tiny)
    i, j = np.nonzero(np.triu(d2 <= rtol * scale, k=1))
    return [(int(a), int(b)) for a, b in zip(i, j)]


def closest_pair(X: np.ndarray):
    """``(i, j, d)``: the two closest rows of ``X`` and their distance relative to the largest row norm
    (one GEMM to find the pair -- reliable for distances above ~``sqrt(eps)`` -- then the distance
    of that pair directly); ``None`` for fewer than two rows.

    >>> i, j, d = closest_pair(np.array([[3.0, 4.0], [0.0, 5.0], [3.0, 4.005]]))
    >>> i, j, round(d, 7)
    (0, 2, 0.0009992)
    """
    X = np.asarray(X, dtype=float)
    if X.shape[0] < 2:
        return None
    sq, d2 = _squared_distances(X)
    d2[np.tril_indices_from(d2)] = np.inf
    i, j = np.unravel_index(int(np.argmin(d2)), d2.shape)
    scale = max(float(np.sqrt(sq.max())), np.finfo(float).tiny)
    # the Gram formula loses ~sqrt(eps) of the distance to cancellation: recompute the winner directly
    return int(i), int(j), float(np.linalg.norm(X[i] - X[j]) / scale)


def numerical_rank(A: np.ndarray) -> int:
    """Rank of ``A`` with numpy's default cut ``sigma > max(shape) eps sigma_max`` (0 for an empty/zero matrix).

    >>> numerical_rank(np.array([[1.0, 2.0], [2.0, 4.0]]))
    1
    """
    A = np.asarray(A, dtype=float)
    return int(np.linalg.matrix_rank(A)) if A.size and np.any(A != 0) else 0


def zero_signal_samples(factors: JacobianFactors, l: int) -> np.ndarray:
    """Indices ``n`` whose layer-``l`` Jacobian rows ``kron(Delta_l[n, c, :], z_{l,n})`` all vanish.

    For relu that happens when no unit of layer ``l`` passes a backward signal on ``x_n`` (all of
    them inactive there, or only dead paths above), or when ``z_{l,n} = 0`` (the whole previous layer
    inactive on ``x_n``).
    """
    n = factors.n_samples
    delta_zero = np.all(factors.Delta[l - 1].reshape(n, -1) == 0.0, axis=1)
    z_zero = np.all(factors.Z[l - 1] == 0.0, axis=1)
    return np.flatnonzero(delta_zero | z_zero)


def diagnose_layer_gram(factors: JacobianFactors, X: np.ndarray, l: int, condition_number: float) -> str:
    """Explain a singular ``J_l J_l^T`` (called only on the failure path; costs SVDs).

    Checks, in this order (each names its cause; the first that applies wins):

    1. too few parameters, ``P_l = M_l (M_{l-1} + b) < N C``;
    2. exactly duplicated inputs (identical rows of ``J_l``);
    3. inputs on which layer ``l`` passes no signal (zero rows of ``J_l``: every unit inactive there);
    4. the rank bound ``rank(J_l) <= min(N C, rank(Delta_l) rank(Z_l), sum_i min(a_i, rank Z_l))`` with
       ``a_i`` the number of inputs on which unit ``i`` has a backward signal (dead units: ``a_i = 0``);
    5. a narrow layer: ``rank(Delta_l) < N C`` (``M_l`` units) or ``rank(Z_l) < N`` (``M_{l-1} + b``
       inputs): the rows ``kron(delta_n, z_n)`` come from spaces of dimension below ``N``, and with the
       activation zero patterns (relu) they are dependent below the product bound of 4;
    6. only when ``Delta_l`` and ``Z_l`` both have full row rank: near-duplicate inputs (the closest
       pair is named with its distance) or else near-dependent activation patterns.
    """
    n, c = factors.n_samples, factors.n_outputs
    nc = n * c
    delta3 = factors.Delta[l - 1]
    delta = delta3.reshape(nc, -1)
    Z = factors.Z[l - 1]
    width, fan_in = delta.shape[1], Z.shape[1]
    P_l = width * fan_in
    head = f"layer {l} Gram J_{l} J_{l}^T ({nc} x {nc}) is singular (condition number {condition_number:.3g})"
    if P_l < nc:
        return (f"{head}: layer {l} has P_{l} = M_{l} (M_{l - 1} + bias) = {width} x {fan_in} = {P_l} "
                f"parameters < N C = {nc} (width too small for the batch)")
    dups = duplicate_pairs(X)
    if dups:
        shown = ", ".join(f"{i}&{j}" for i, j in dups[:5])
        return f"{head}: duplicate inputs (rows {shown} of X are equal), so rows of J_{l} coincide"
    active = np.any(delta3 != 0.0, axis=1)                   # (N, M_l): unit i passes a signal on x_n
    counts = active.sum(axis=0)
    dead = int(np.sum(counts == 0))
    # units of layer l-1 with zero output on every input are zero columns of Z_l (bias column excluded)
    # (for l > 1, Delta_{l-1} has M_{l-1} columns, so Z_l's first M_{l-1} columns are the unit outputs)
    prev_units = Z[:, :factors.Delta[l - 2].shape[2]] if l > 1 else Z
    dead_prev = int(np.sum(np.all(prev_units == 0.0, axis=0))) if l > 1 else 0
    dead_parts = []
    if dead:
        dead_parts.append(f"{dead} of {width} units of layer {l} are dead (zero backward signal on every input)")
    if dead_prev:
        dead_parts.append(f"{dead_prev} of {prev_units.shape[1]} units of layer {l - 1} are dead "
                          "(zero output on every input)")
    dead_text = "".join(f"; {part}" for part in dead_parts)
    silent = zero_signal_samples(factors, l)
    if silent.size:
        shown = ", ".join(str(i) for i in silent[:8])
        return (f"{head}: layer {l} passes no signal on {silent.size} input(s) (rows {shown} of J_{l} are zero: "
                f"every one of its M_{l} = {width} units is inactive there, or the previous layer is){dead_text}")
    rank_delta, rank_z = numerical_rank(delta), numerical_rank(Z)
    narrow = []
    if rank_delta < nc and l < factors.depth:  # (output layer: Delta_L rows are e_c by construction)
        why = f"M_{l} = {width} units" if width < nc else "backward signals confined to a subspace"
        narrow.append(f"rank(Delta_{l}) = {rank_delta} < N C = {nc} ({why})")
    if rank_z < n:
        if fan_in < n:
            why = f"M_{l - 1} + bias = {fan_in} < N"
        elif l == 1:
            why = f"inputs linearly dependent (rank X = {numerical_rank(X)} < N = {n})"
        else:
            why = f"layer {l - 1} outputs linearly dependent"
        narrow.append(f"rank(Z_{l}) = {rank_z} < N = {n} ({why})")
    unit_bound = int(np.minimum(counts, rank_z).sum())
    if min(rank_delta * rank_z, unit_bound) < nc:
        which = (f"rank(Delta_{l}) x rank(Z_{l}) = {rank_delta} x {rank_z}" if rank_delta * rank_z <= unit_bound
                 else f"sum over units of min(#inputs where the unit is active, rank(Z_{l})) = {unit_bound}")
        causes = dead_parts + narrow
        cause = "; ".join(causes) if causes else "too few units active on enough inputs"
        return f"{head}: rank bound {which} < N C = {nc}: {cause}"
    if narrow:
        # the explicit J_l (N C x P_l) only when small (failure path, <= 32 MiB)
        rank_j = (numerical_rank((delta[:, :, None] * np.repeat(Z, c, axis=0)[:, None, :]).reshape(nc, P_l))
                  if P_l * nc <= 1 << 22 else None)
        measured = f"; measured rank(J_{l}) = {rank_j}" if rank_j is not None else ""
        return (f"{head}: layer {l} is narrower than the batch, " + " and ".join(narrow)
                + f": the rows kron(delta_n, z_n) come from low-dimensional spaces and the activation zero "
                  f"patterns make them dependent{measured}{dead_text}")
    pair = closest_pair(X)
    if pair is not None and pair[2] < NEAR_DUPLICATE_RTOL:
        return (f"{head}: near-duplicate inputs (rows {pair[0]}&{pair[1]} of X at relative distance "
                f"{pair[2]:.3g}){dead_text}")
    return (f"{head}: Delta_{l} and Z_{l} have full row rank and no inputs nearly coincide (closest pair at "
            f"relative distance {pair[2] if pair else float('nan'):.3g}), yet their row-wise Kronecker products "
            f"are nearly dependent (degenerate activation patterns){dead_text}")
