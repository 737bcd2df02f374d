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

from theory.validation import check_nonnegative

from ..factors import JacobianFactors, layer_vjp
from ..network import MLP

#: Inputs closer than this (relative to the largest input norm) count as duplicates in diagnoses.
DUPLICATE_RTOL = 1e-10


class Approximation(ABC):
    """Base class: validates the arguments, computes the Jacobian factors at ``X`` once.

    Subclasses set ``name`` and implement :meth:`_prepare` (consume options, build the dual
    system), :meth:`direction`, :meth:`operator` and :meth:`dense_matrix`.
    """

    name: ClassVar[str] = "base"

    def __init__(self, net: MLP, X, damping: float = 0.0, **options: Any):
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a numerics.network.MLP, got {type(net).__name__}")
        self.net = net
        self.X = net.check_inputs(X)
        self.damping = check_nonnegative("damping", damping)
        self.factors: JacobianFactors = net.factors(self.X)
        self.diagnostics: Dict[str, Any] = {"approximation": self.name, "damping": self.damping,
                                            "failed_assumption": None}
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

    def layer_gram_assumption(self, l: int, condition_number: float) -> str:
        """A sentence naming why the layer-``l`` Gram ``J_l J_l^T`` is (nearly) singular."""
        return diagnose_layer_gram(self.factors, self.X, l, condition_number)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.n_samples}, C={self.n_outputs}, L={self.depth}, damping={self.damping})"


def reject_options(name: str, options: Dict[str, Any]) -> None:
    """Unknown keyword options are an error (a typo must not be silently ignored)."""
    if options:
        raise TypeError(f"approximation {name!r} got unexpected option(s): {', '.join(sorted(options))}")


def duplicate_pairs(X: np.ndarray, rtol: float = DUPLICATE_RTOL) -> List[tuple]:
    """Pairs ``(i, j)``, ``i < j``, of (numerically) identical rows of ``X`` (one GEMM).

    >>> duplicate_pairs(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    [(0, 2)]
    """
    X = np.asarray(X, dtype=float)
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    scale = max(float(sq.max()), np.finfo(float).tiny)
    i, j = np.nonzero(np.triu(d2 <= rtol * scale, k=1))
    return [(int(a), int(b)) for a, b in zip(i, j)]


def diagnose_layer_gram(factors: JacobianFactors, X: np.ndarray, l: int, condition_number: float) -> str:
    """Explain a singular ``J_l J_l^T`` (called only on the failure path; costs SVDs).

    Checks, in order: too few parameters (``P_l < N C``), duplicated inputs, the rank bound
    ``rank(J_l) <= rank(Delta_l) * rank(Z_l)`` (dead units, linear layers, narrow inputs), and
    otherwise reports near-degenerate inputs/activation patterns.
    """
    n, c = factors.n_samples, factors.n_outputs
    delta = factors.Delta[l - 1].reshape(n * c, -1)
    Z = factors.Z[l - 1]
    P_l = delta.shape[1] * Z.shape[1]
    head = f"layer {l} Gram J_{l} J_{l}^T ({n * c} x {n * c}) is singular (condition number {condition_number:.3g})"
    if P_l < n * c:
        return (f"{head}: layer {l} has P_{l} = M_{l} (M_{l - 1} + bias) = {delta.shape[1]} x {Z.shape[1]} = {P_l} "
                f"parameters < N C = {n * c} (width too small for the batch)")
    dups = duplicate_pairs(X)
    if dups:
        shown = ", ".join(f"{i}&{j}" for i, j in dups[:5])
        return f"{head}: duplicate inputs (rows {shown} of X are equal), so rows of J_{l} coincide"
    dead = int(np.sum(np.all(delta == 0.0, axis=0)))
    rank_delta = int(np.linalg.matrix_rank(delta))
    rank_z = int(np.linalg.matrix_rank(Z))
    if rank_delta * rank_z < n * c:
        extra = f"; {dead} of {delta.shape[1]} units of layer {l} are dead (zero backward signal on every input)" if dead else ""
        return (f"{head}: rank(Delta_{l}) x rank(Z_{l}) = {rank_delta} x {rank_z} < N C = {n * c}{extra} "
                f"(dead units, a linear/degenerate layer, or input dimension too small)")
    if dead:
        return f"{head}: {dead} of {delta.shape[1]} units of layer {l} are dead and the inputs are nearly degenerate"
    return f"{head}: the inputs or activation patterns are nearly linearly dependent (near-duplicate inputs)"
