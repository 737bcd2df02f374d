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
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.linalg import blas

from theory.activations import Activation, get_activation
from theory.validation import check_matrix, check_nonnegative, check_positive_int

from .factors import JacobianFactors

__all__ = ["MLP", "make_rng", "SeedLike"]

SeedLike = Union[int, np.integer, np.random.Generator, None]


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
        """Validate an input matrix: finite, 2-D, ``M_0`` columns."""
        return check_matrix(name, X, ncols=self.widths[0])

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
