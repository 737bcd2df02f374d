"""Dense reference paths (small networks only): explicit Jacobians and the explicit ``P x P`` matrix ``G``.

They exist to check the fast dual paths: every approximation's ``direction`` and ``operator``
must equal what :func:`dense_reference` computes from ``G = approx.dense_matrix()`` with plain
``numpy.linalg`` (``pinv`` for ``rho = 0``, ``solve`` for ``rho > 0``).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([3, 5, 2], activation="tanh", sigma_b2=0.1, seed=0)
>>> X = np.random.default_rng(0).standard_normal((4, 3))
>>> dense_jacobian(net, X).shape      # (N C, P)
(8, 32)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from theory.metrics import relative_error

from .factors import JacobianFactors
from .network import MLP
from theory.tolerances import RANK_RTOL

__all__ = [
    "dense_jacobian", "dense_layer_jacobian", "finite_difference_jacobian", "split_layers",
    "DenseReference", "dense_reference", "compare_with_dense", "MAX_DENSE_PARAMS"
]

#: Refuse to build dense matrices beyond this many parameters (P x P float64 = 8 P^2 bytes).
MAX_DENSE_PARAMS = 6000


def _check_small(n_params: int) -> None:
    if n_params > MAX_DENSE_PARAMS:
        raise ValueError(f"the dense reference needs P x P matrices; P = {n_params} > {MAX_DENSE_PARAMS} "
                         "is too large (use a smaller network)")


def dense_layer_jacobian(factors: JacobianFactors, l: int) -> np.ndarray:
    """``J_l`` explicitly, shape ``(N C, P_l)``: row ``(n, c)`` is ``kron(Delta_l[n, c, :], Z_l[n, :])``."""
    l = factors.check_layer(l)
    delta, Z = factors.Delta[l - 1], factors.Z[l - 1]
    n, c, m = delta.shape
    return (delta[:, :, :, None] * Z[:, None, None, :]).reshape(n * c, m * Z.shape[1])


def dense_jacobian(net: MLP, X, factors: Optional[JacobianFactors] = None) -> np.ndarray:
    """The full Jacobian ``J = d f(X) / d theta``, rows sample-major ``(n, c)``, columns in theta order."""
    _check_small(net.n_params)
    f = net.factors(X) if factors is None else factors
    return np.hstack([dense_layer_jacobian(f, l) for l in range(1, f.depth + 1)])


def split_layers(vector: np.ndarray, net: MLP) -> List[np.ndarray]:
    """Cut a length-``P`` vector into per-layer arrays shaped like ``net.params``."""
    out, offset = [], 0
    for p in net.params:
        out.append(np.asarray(vector[offset:offset + p.size]).reshape(p.shape))
        offset += p.size
    return out


@dataclass
class DenseReference:
    """Result of :func:`dense_reference`.

    Attributes: ``G`` (P x P), ``J`` (N C x P), ``gradient`` (P), ``update`` (P, the solution
    ``(G + rho I)^{-1} grad`` or ``G^+ grad``), ``directions`` (per layer), ``operator``
    (``J (G + rho I)^{-1} J^T / N``, train x train), ``test_operator`` (``J(X2) ... / N`` or None),
    ``condition_number`` (of ``G + rho I``, or of ``G`` on its range when ``rho = 0``; ``inf`` when
    that range is empty, i.e. ``G = 0`` at ``rho = 0``), ``rank``, ``note`` (set for such edge cases).
    """

    G: np.ndarray
    J: np.ndarray
    gradient: np.ndarray
    update: np.ndarray
    directions: List[np.ndarray]
    operator: np.ndarray
    test_operator: Optional[np.ndarray]
    condition_number: float
    rank: int
    note: Optional[str] = None


def dense_reference(approx, residual, X2=None, rcond: float = RANK_RTOL) -> DenseReference:
    """The dense answer for ``approx`` built from its explicit ``G`` (symmetric, so via ``eigh``).

    ``rho = approx.damping``: ``(G + rho I)^{-1}`` for ``rho > 0``; for ``rho = 0`` the Moore-Penrose
    pseudo-inverse with eigenvalues ``|lambda| <= rcond * max |lambda|`` dropped (the exact zeros of
    ``G`` sit at ~1e-16 relative; genuine eigenvalues of well-conditioned test nets well above 1e-10).
    """
    net, X = approx.net, approx.X
    _check_small(net.n_params)
    n = X.shape[0]
    G = np.asarray(approx.dense_matrix(), dtype=float)
    if not np.allclose(G, G.T, rtol=0, atol=1e-12 * max(np.abs(G).max(), 1e-300)):
        raise ValueError(f"{approx.name}: dense_matrix() is not symmetric")
    J = dense_jacobian(net, X)
    r = approx.residual_matrix(residual).ravel()
    grad = J.T @ r / n
    lam, V = np.linalg.eigh((G + G.T) / 2 + approx.damping * np.eye(G.shape[0]))
    mag = np.abs(lam)
    keep = mag > (rcond * mag.max() if approx.damping == 0 else 0.0)
    inv = (V[:, keep] / lam[keep]) @ V[:, keep].T
    update = inv @ grad
    JinvJt = inv @ J.T
    test_operator = None if X2 is None else dense_jacobian(net, X2) @ JinvJt / n
    note = None
    if keep.any():
        condition_number = float(mag[keep].max() / mag[keep].min())
    else:
        # rho = 0 and G = 0 (e.g. every unit dead or all weights zero): G^+ = 0, rank 0; the range of G is
        # empty, so there is no finite condition number to report
        condition_number = float("inf")
        note = (f"{approx.name}: G = 0 (rank 0 of P = {G.shape[0]}); the pseudo-inverse is 0, so update and "
                "operators are 0")
        if np.any(grad != 0):
            note += ("; the gradient is nonzero, so the rho -> 0+ limit of (G + rho I)^{-1} grad does not exist "
                     "(it diverges like 1/rho): only the pseudo-inverse value is reported")
    return DenseReference(G=G, J=J, gradient=grad, update=update, directions=split_layers(update, net),
                          operator=J @ JinvJt / n, test_operator=test_operator,
                          condition_number=condition_number, rank=int(keep.sum()), note=note)


def finite_difference_jacobian(net: MLP, X, step: float = 1e-6) -> np.ndarray:
    """``J`` by central differences ``(f(theta + h e_k) - f(theta - h e_k)) / 2h`` (tests only).

    Independent of the factor code: it only calls ``net.forward``. Truncation error O(h^2 f''')
    and rounding error O(eps |f| / h) give ~1e-9 agreement for smooth activations at h = 1e-6.
    """
    _check_small(net.n_params)
    X = net.check_inputs(X)
    probe = net.copy()
    theta = net.get_flat_params()
    columns = []
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = step
        probe.set_flat_params(theta + e)
        plus = probe.forward(X).ravel()
        probe.set_flat_params(theta - e)
        minus = probe.forward(X).ravel()
        columns.append((plus - minus) / (2 * step))
    return np.stack(columns, axis=1)


def compare_with_dense(approx, residual, X2=None, rcond: float = RANK_RTOL) -> dict:
    """Relative errors of ``approx``'s fast paths against :func:`dense_reference`.

    Returns ``{"direction", "operator", "test_operator" (with X2), "condition_number"}``: the
    oracle every approximation's tests assert (at ~1e-8 for well-conditioned ``G``).
    """
    ref = dense_reference(approx, residual, X2=X2, rcond=rcond)
    fast = np.concatenate([np.asarray(d).ravel() for d in approx.direction(residual)])
    out = {"direction": relative_error(fast, ref.update), "operator": relative_error(approx.operator(), ref.operator)}
    if X2 is not None:
        out["test_operator"] = relative_error(approx.operator(X2), ref.test_operator)
    out["condition_number"] = ref.condition_number
    return out
