"""Per-layer Jacobian factors and everything computed from them with GEMMs only.

The Jacobian of layer ``l`` (columns ``theta_l = Wb_l.ravel()``, rows sample-major ``(n, c)``) is a
row-wise Kronecker (Khatri-Rao) product of two small factors,

    J_l[(n, c), :] = kron(Delta_l[n, c, :], Z_l[n, :]),

so it is never formed: its Gram is ``J_l(X2) J_l(X)^T = (Delta2 Delta^T) o (Z2 Z^T (x) 1_C 1_C^T)``
(``o`` = Hadamard product) and ``J_l^T v`` is ``(sum_c v[n, c] Delta_l[n, c, :])^T Z_l``.

Layer indices ``l`` in this module are the mathematical ones, ``1..L`` (``Delta[l - 1]`` holds layer l).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([4, 32, 32, 2], activation="relu", seed=0)
>>> X = np.random.default_rng(1).standard_normal((5, 4))
>>> f = net.factors(X)
>>> f.n_samples, f.n_outputs, f.depth, f.Delta[0].shape, f.Z[0].shape
(5, 2, 3, (5, 2, 32), (5, 4))
>>> K1 = layer_gram(f, 1)
>>> K1.shape, bool(np.allclose(K1, K1.T))
((10, 10), True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

__all__ = ["JacobianFactors", "layer_gram", "layer_grams", "empirical_ntk", "layer_vjp", "layer_jvp"]


@dataclass(frozen=True)
class JacobianFactors:
    """Factors of the layer Jacobians at a batch of inputs.

    Attributes
    ----------
    Z:
        ``L`` arrays ``(N, M_{l-1} + b)``: the layer inputs ``z_{l,n}`` (bias coordinate last).
    Delta:
        ``L`` arrays ``(N, C, M_l)``: ``Delta[l-1][n, c, i] = d f_c(x_n) / d u_{l,i}``.
    outputs:
        ``(N, C)`` network outputs at the same inputs.
    """

    Z: List[np.ndarray]
    Delta: List[np.ndarray]
    outputs: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.outputs.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.outputs.shape[1])

    @property
    def depth(self) -> int:
        return len(self.Z)

    @property
    def layer_sizes(self) -> tuple:
        """``P_l = M_l (M_{l-1} + b)``."""
        return tuple(int(d.shape[2] * z.shape[1]) for d, z in zip(self.Delta, self.Z))

    def check_layer(self, l) -> int:
        """Validate a 1-based layer index."""
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 1 <= l <= self.depth:
            raise ValueError(f"l={l!r} is not allowed: layer indices are 1..L = 1..{self.depth} (1-based)")
        return int(l)


def _expand_outputs(gram: np.ndarray, n_outputs: int) -> np.ndarray:
    """``gram (x) 1_C 1_C^T``: repeat every entry into a ``C x C`` block (sample-major order)."""
    if n_outputs == 1:
        return gram
    return np.repeat(np.repeat(gram, n_outputs, axis=0), n_outputs, axis=1)


def layer_gram(factors: JacobianFactors, l: int, factors2: Optional[JacobianFactors] = None) -> np.ndarray:
    """``J_l(X2) J_l(X)^T``, shape ``(N2 C, N C)``, via the Khatri-Rao identity (two GEMMs).

    ``(Delta_l(X2) Delta_l(X)^T) o (Z_l(X2) Z_l(X)^T (x) 1_C 1_C^T)``; WITHOUT the 1/N, so that it
    converges to the analytic layer-wise NTK ``Theta_l(X2, X) (x) I_C`` as the width grows.
    ``factors2=None`` means ``X2 = X``.
    """
    l = factors.check_layer(l)
    f2 = factors if factors2 is None else factors2
    if f2.depth != factors.depth or f2.n_outputs != factors.n_outputs:
        raise ValueError("factors2 must come from the same network as factors")
    d1 = factors.Delta[l - 1].reshape(factors.n_samples * factors.n_outputs, -1)
    z1 = factors.Z[l - 1]
    if factors2 is None:
        d2, z2 = d1, z1  # same buffer: numpy dispatches A @ A.T to the symmetric rank-k update
    else:
        d2 = f2.Delta[l - 1].reshape(f2.n_samples * f2.n_outputs, -1)
        z2 = f2.Z[l - 1]
    return (d2 @ d1.T) * _expand_outputs(z2 @ z1.T, factors.n_outputs)


def layer_grams(factors: JacobianFactors, factors2: Optional[JacobianFactors] = None) -> List[np.ndarray]:
    """``[J_l(X2) J_l(X)^T for l = 1..L]``."""
    return [layer_gram(factors, l, factors2) for l in range(1, factors.depth + 1)]


def empirical_ntk(factors: JacobianFactors, factors2: Optional[JacobianFactors] = None) -> np.ndarray:
    """``J(X2) J(X)^T = sum_l J_l(X2) J_l(X)^T`` (no 1/N)."""
    return sum(layer_grams(factors, factors2))


def layer_vjp(factors: JacobianFactors, l: int, v: np.ndarray) -> np.ndarray:
    """``J_l^T v`` reshaped like ``Wb_l``, i.e. ``(M_l, M_{l-1} + b)``, as one GEMM.

    ``v`` has ``N C`` entries (sample-major) or shape ``(N, C)``:
    ``J_l^T v = sum_{n,c} v[n,c] Delta_l[n,c,:] (outer) z_n = (einsum('nc,nci->ni', v, Delta))^T Z``.
    """
    l = factors.check_layer(l)
    n, c = factors.n_samples, factors.n_outputs
    v = np.asarray(v, dtype=float).reshape(n, c)
    weighted = np.einsum("nc,nci->ni", v, factors.Delta[l - 1], optimize=True)
    return weighted.T @ factors.Z[l - 1]


def layer_jvp(factors: JacobianFactors, l: int, direction: np.ndarray) -> np.ndarray:
    """``J_l x`` for ``x`` shaped like ``Wb_l``: returns ``(N, C)`` with
    ``[n, c] = Delta_l[n, c, :] @ x @ z_n`` (two GEMMs)."""
    l = factors.check_layer(l)
    direction = np.asarray(direction, dtype=float)
    xz = factors.Z[l - 1] @ direction.T  # (N, M_l): row n = x @ z_n
    return np.einsum("nci,ni->nc", factors.Delta[l - 1], xz, optimize=True)
