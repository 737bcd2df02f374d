r"""Infinite-width kernels of a fully connected network in the NTK parameterisation.

With the conventions of :mod:`proofs.conventions` (``L`` weight layers, ``V``/``dotV`` the dual kernels
of :mod:`theory.dual`):

.. math::

   \Sigma^{(1)}(x,x') &= \sigma_w^2\, x\cdot x'/M_0 + \sigma_b^2, \\
   \Sigma^{(l+1)} &= \sigma_w^2\, V(\Sigma^{(l)}) + \sigma_b^2, \qquad
   \dot\Sigma^{(l+1)} = \sigma_w^2\, \dot V(\Sigma^{(l)}), \\
   \Theta^{(1)} &= \Sigma^{(1)}, \qquad \Theta^{(l+1)} = \Theta^{(l)} \odot \dot\Sigma^{(l+1)} + \Sigma^{(l+1)}, \\
   B_l &= \textstyle\prod_{k=l+1}^{L} \dot\Sigma^{(k)} \ (B_L = 1), \qquad
   \Theta_l = \Sigma^{(l)} \odot B_l, \qquad \Theta = \Theta^{(L)} = \textstyle\sum_l \Theta_l,

where ``V(Sigma)`` is evaluated entrywise on the 2x2 covariance
``[[Sigma(x,x), Sigma(x,x')], [Sigma(x,x'), Sigma(x',x')]]``.  These are the NNGP/NTK kernels of
neural-tangents' ``stax.Dense(W_std=sqrt(sigma_w2), b_std=sqrt(sigma_b2), parameterization="ntk")``
stacks (checked against a stored neural-tangents fixture, ``proofs/data``).

Everything after the one Gram product ``X @ X2.T`` is elementwise given the diagonals, so the
recursion runs over row blocks (cache-sized temporaries, optionally on several threads).

Magnitudes: the dual kernels are accurate at every variance float64 can hold (:mod:`theory.dual`);
inputs of extreme magnitude are rescaled by a power of two before the Gram product (exact), and
inputs whose first-layer variance ``sigma_w2 |x|^2/M_0`` -- or a deeper layer's variance, or the
NTK's diagonal -- would overflow float64 (1.8e308) are refused with a ValueError naming the row, the
layer and the limit (as are variances that underflow to 0 where the derivative kernel needs them).

>>> import numpy as np
>>> X = np.array([[1.0, 0.0], [0.6, 0.8]])
>>> k = analytic_kernels(X, depth=2, activation="relu", sigma_w2=2.0)
>>> np.round(k.nngp, 6).tolist()      # Sigma^(2); relu with sigma_w2 = 2 keeps the diagonal: 2 * 1/2 * 1
[[1.0, 0.677548], [0.677548, 1.0]]
>>> bool(np.allclose(k.layer_ntk[0] + k.layer_ntk[1], k.ntk, rtol=1e-14))
True
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from theory.activations import get_activation
from theory.dual import DEFAULT_QUADRATURE_NODES, DualKernel, dual_kernel, snap_correlations
from theory.validation import check_matrix, check_nonnegative, check_positive_int

__all__ = ["AnalyticKernels", "analytic_kernels", "layer_diagonals"]


@dataclass
class AnalyticKernels:
    """The infinite-width kernels of one network on inputs ``X`` (rows) against ``X2`` (columns).

    Matrices have shape ``(N1, N2)``; with ``X2 = None`` they are ``X x X`` (symmetric).

    Attributes
    ----------
    nngp: ``Sigma^(L)``, the output layer's NNGP kernel.
    ntk: ``Theta = Theta^(L)``.
    layer_ntk: ``[Theta_1, ..., Theta_L]`` with ``Theta_l = Sigma^(l) * B_l`` (they sum to ``ntk``).
    nngp_layers: ``[Sigma^(1), ..., Sigma^(L)]`` (pre-activation kernels, layer ``l``'s input Gram limit).
    derivative_layers: ``[dotSigma^(2), ..., dotSigma^(L)]``.
    backward: ``[B_1, ..., B_L]``, ``B_l = prod_{k>l} dotSigma^(k)``, ``B_L = 1``.
    diag_rows, diag_cols: ``[Sigma^(l)(x, x)]_l`` for the rows (``X``) and columns (``X2``).
    """

    nngp: np.ndarray
    ntk: np.ndarray
    layer_ntk: List[np.ndarray]
    nngp_layers: List[np.ndarray]
    derivative_layers: List[np.ndarray]
    backward: List[np.ndarray]
    diag_rows: List[np.ndarray] = field(repr=False, default_factory=list)
    diag_cols: List[np.ndarray] = field(repr=False, default_factory=list)
    depth: int = 1
    activation: str = "relu"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    method: str = ""

    @property
    def shape(self):
        return self.ntk.shape


def _check_inputs(X, X2, depth, activation, sigma_w2, sigma_b2):
    X = check_matrix("X", X)
    X2 = None if X2 is None else check_matrix("X2", X2, ncols=X.shape[1])
    depth = check_positive_int("depth", depth)
    act = get_activation(activation)
    sigma_w2 = check_nonnegative("sigma_w2", sigma_w2, allow_zero=False)
    sigma_b2 = check_nonnegative("sigma_b2", sigma_b2)
    return X, X2, depth, act, sigma_w2, sigma_b2


#: the largest finite float64: every layer variance and every kernel entry must stay below it
FLOAT64_MAX = float(np.finfo(np.float64).max)


def _first_layer_variances(X: np.ndarray, exponent: int, sigma_w2: float, sigma_b2: float,
                           name: str) -> np.ndarray:
    """``sigma_w2 |x|^2/M_0 + sigma_b2`` per row of ``X * 2^exponent`` (``X`` already scaled by ``2^-exponent``,
    so ``|x|^2`` itself never overflows or underflows); ValueError naming the row and the float64 limit
    when the variance overflows, or underflows to 0 for a nonzero row without bias."""
    m0 = X.shape[1]
    scaled = np.einsum("ij,ij->i", X, X) * (sigma_w2 / m0)      # times 4^exponent
    with np.errstate(divide="ignore"):
        log2v = np.log2(scaled) + 2 * exponent
    over = np.isfinite(log2v) & (log2v >= 1024)
    if np.any(over):
        i = int(np.argmax(over))
        raise ValueError(
            f"{name}[{i}] is too large: its first-layer variance sigma_w2 |x|^2/M_0 = 10^{log2v[i] * np.log10(2):.1f} "
            f"overflows float64 (limit {FLOAT64_MAX:.3g}); scale the inputs down (e.g. to unit mean square entries)")
    d = np.ldexp(scaled, 2 * exponent)
    lost = (scaled > 0) & (d == 0) & (sigma_b2 == 0)
    if np.any(lost):
        i = int(np.argmax(lost))
        raise ValueError(
            f"{name}[{i}] is too small: its first-layer variance sigma_w2 |x|^2/M_0 = 10^{log2v[i] * np.log10(2):.1f} "
            f"underflows float64 (smallest subnormal 4.9e-324); scale the inputs up")
    d = d + sigma_b2
    if not np.all(np.isfinite(d)):
        i = int(np.argmax(~np.isfinite(d)))
        raise ValueError(f"{name}[{i}]: first-layer variance sigma_w2 |x|^2/M_0 + sigma_b2 overflows float64 "
                         f"(limit {FLOAT64_MAX:.3g})")
    return d


def layer_diagonals(sq_norms: np.ndarray, input_dim: int, depth: int, dual: DualKernel,
                    sigma_w2: float, sigma_b2: float, name: str = "X",
                    first: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """``[Sigma^(l)(x, x)]_{l=1..L}`` from the squared norms ``x.x`` (one vector per layer; ``first``:
    the first layer's variances when already computed, overflow-safely, by the caller).

    Raises ``ValueError`` naming the sample when a variance vanishes and the dual kernels have
    no limit there (relu-type derivative kernels at ``x = 0`` with ``sigma_b2 = 0``), and naming the
    sample, the layer and the float64 limit when a layer's variance (or the NTK's diagonal, a sum of
    layer variances times products of derivative kernels) overflows.

    >>> d = layer_diagonals(np.array([4.0]), 4, 3, dual_kernel("relu"), 2.0, 0.0)
    >>> [float(v[0]) for v in d]                    # relu with sigma_w2 = 2 preserves the norm
    [2.0, 2.0, 2.0]
    """
    d = sigma_w2 * sq_norms / input_dim + sigma_b2 if first is None else first
    if not np.all(np.isfinite(d)):
        i = int(np.argmax(~np.isfinite(d)))
        raise ValueError(f"{name}[{i}]: the first-layer variance sigma_w2 |x|^2/M_0 + sigma_b2 overflows float64 "
                         f"(limit {FLOAT64_MAX:.3g})")
    out = [d]
    theta = d.copy()
    for layer in range(1, depth + 1):
        if np.any(d == 0) and layer < depth:
            i = int(np.argmax(d == 0))
            try:
                dual.both(np.zeros(1), np.zeros(1), np.ones(1))
            except ValueError:
                if layer > 1 and out[0][i] > 0:
                    raise ValueError(
                        f"{name}[{i}]: Sigma^({layer})(x, x) underflows to 0 at layer {layer} of {depth} (float64's "
                        f"smallest subnormal is 4.9e-324; {dual.name} with sigma_w2 = {sigma_w2:g} shrinks the variance "
                        "every layer, and phi' jumps at 0, so the derivative kernel has no limit there); use larger "
                        "inputs, a smaller depth, a larger sigma_w2 or sigma_b2 > 0") from None
                raise ValueError(
                    f"{name}[{i}] gives Sigma^({layer})(x, x) = 0 (a zero input with sigma_b2 = 0): the "
                    f"derivative kernel of {dual.name} has no limit at zero variance (phi' jumps at 0); "
                    "use sigma_b2 > 0 or remove zero rows"
                ) from None
        if layer == depth:
            break
        v, dv = dual.both(d, d, d, check=False)
        with np.errstate(over="ignore", invalid="ignore"):
            d_next = sigma_w2 * v + sigma_b2
            theta = theta * (sigma_w2 * dv) + d_next     # Theta^(l+1)(x, x)
        for arr, what in ((d_next, f"Sigma^({layer + 1})(x, x)"), (theta, f"Theta^({layer + 1})(x, x)")):
            if not np.all(np.isfinite(arr)):
                i = int(np.argmax(~np.isfinite(arr)))
                raise ValueError(
                    f"{name}[{i}]: {what} overflows float64 at layer {layer + 1} of {depth} (limit {FLOAT64_MAX:.3g}; "
                    f"Sigma^({layer})(x, x) = {d[i]:.3g}, {dual.name} with sigma_w2 = {sigma_w2:g}); use smaller "
                    "inputs, a smaller depth or a smaller sigma_w2")
        d = d_next
        out.append(d)
    return out


def _scale_exponent(X: np.ndarray) -> int:
    """``e`` with ``max |X| 2^-e`` of order 1 when ``max |X|`` is outside [1e-100, 1e100], else 0."""
    top = float(np.max(np.abs(X))) if X.size else 0.0
    if top == 0.0 or 1e-100 <= top <= 1e100:
        return 0
    return int(np.frexp(top)[1])


def _inverse_sqrt(d: np.ndarray) -> np.ndarray:
    """``1/sqrt(d)`` with 0 where ``d = 0`` (zero-variance rows then get correlation 0, value 0)."""
    out = np.zeros_like(d)
    np.sqrt(d, out=out, where=d > 0)
    np.divide(1.0, out, out=out, where=d > 0)
    return out


def _next_layer_homogeneous(dual, S, row, col, out_sigma, out_dot, sigma_w2, sigma_b2):
    """One layer for a positively homogeneous activation, written into ``out_*`` (few passes).

    ``rho = S / sqrt(d1 d2)`` (clipped to [-1, 1] against rounding), ``Sigma' = sigma_w2 sqrt(d1 d2)
    J1(rho) + sigma_b2``, ``dotSigma' = sigma_w2 J0(rho)``; ``row``/``col`` are the diagonals.
    """
    # outer products (a_i b_j = b_j a_i exactly) keep X x X kernels bitwise symmetric
    r = np.multiply.outer(_inverse_sqrt(row), _inverse_sqrt(col))
    r *= S
    snap_correlations(r)
    j1, j0 = dual.correlation_form(r)
    np.multiply(j1, np.multiply.outer(np.sqrt(row), np.sqrt(col)), out=out_sigma)
    out_sigma *= sigma_w2
    out_sigma += sigma_b2
    np.multiply(j0, sigma_w2, out=out_dot)


def _next_layer_generic(dual, S, row, col, out_sigma, out_dot, sigma_w2, sigma_b2):
    """One layer for any activation (closed form or quadrature), written into ``out_*``."""
    v, dv = dual.both(row[:, None], S, col[None, :], check=False)
    np.multiply(v, sigma_w2, out=out_sigma)
    out_sigma += sigma_b2
    np.multiply(dv, sigma_w2, out=out_dot)


def _fill_block(rows: slice, sigmas, dots, backward, layer_ntk, ntk, d1, d2, dual, sigma_w2, sigma_b2,
                symmetric=False):
    """Every kernel for one block of rows (the recursion is elementwise given the diagonals)."""
    step = _next_layer_homogeneous if dual.is_homogeneous else _next_layer_generic
    depth = len(sigmas)
    idx = np.arange(rows.start, rows.stop)
    # quadrature duals cost O(n^2) per entry: on X x X compute the upper part only and copy the
    # lower part from the rows above (blocks must then run in order: see analytic_kernels)
    half = symmetric and not dual.closed_form
    cols = slice(rows.start if half else 0, None)
    for l in range(depth - 1):
        step(dual, sigmas[l][rows, cols], d1[l][rows], d2[l][cols], sigmas[l + 1][rows, cols], dots[l][rows, cols],
             sigma_w2, sigma_b2)
        if half and rows.start > 0:
            sigmas[l + 1][rows, :rows.start] = sigmas[l + 1][:rows.start, rows].T
            dots[l][rows, :rows.start] = dots[l][:rows.start, rows].T
        if symmetric:                                    # keep the diagonal exactly the layer variances
            sigmas[l + 1][idx, idx] = d1[l + 1][idx]
    theta = ntk[rows]
    theta[...] = sigmas[0][rows]
    for l in range(depth - 1):                           # Theta^(l+1) = Theta^(l) * dotSigma^(l+1) + Sigma^(l+1)
        theta *= dots[l][rows]
        theta += sigmas[l + 1][rows]
    back = backward[depth - 1][rows]
    back.fill(1.0)                                       # B_L = 1
    np.copyto(layer_ntk[depth - 1][rows], sigmas[depth - 1][rows])
    for l in range(depth - 2, -1, -1):                   # B_l = B_{l+1} * dotSigma^(l+1) (0-based lists)
        np.multiply(backward[l + 1][rows], dots[l][rows], out=backward[l][rows])
        np.multiply(sigmas[l][rows], backward[l][rows], out=layer_ntk[l][rows])


def analytic_kernels(X, X2=None, depth: int = 3, activation="relu", sigma_w2: float = 2.0,
                     sigma_b2: float = 0.0, *, quadrature_nodes: int = DEFAULT_QUADRATURE_NODES,
                     block_rows: Optional[int] = None, n_threads: Optional[int] = None) -> AnalyticKernels:
    """NNGP, NTK, layer-wise NTKs and backward kernels of an ``L``-layer network, ``X x X2``.

    Parameters
    ----------
    X: (N1, M0) inputs (rows).   X2: (N2, M0) inputs (columns) or ``None`` for ``X``.
    depth: ``L >= 1`` weight layers.   activation: a registered name (``theory.activations``).
    sigma_w2 > 0, sigma_b2 >= 0: weight and bias variances.
    quadrature_nodes: nodes per axis of the numeric rule for activations without a closed-form dual.
    block_rows: rows per block of the elementwise recursion (default: ~0.5 MB temporaries, in cache).
    n_threads: threads over row blocks (default: one per core, up to 8, like the BLAS behind the
        Gram product; on an idle 2-core machine this cut the wall-clock time of the benchmark by
        ~30 %, on a heavily loaded one a single thread was as fast).

    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((4, 3))
    >>> k = analytic_kernels(X, X[:2], depth=3, activation="erf", sigma_w2=1.5, sigma_b2=0.1)
    >>> k.ntk.shape, len(k.layer_ntk), len(k.derivative_layers), float(k.backward[-1][0, 0])
    ((4, 2), 3, 2, 1.0)
    """
    X, X2_, depth, act, sigma_w2, sigma_b2 = _check_inputs(X, X2, depth, activation, sigma_w2, sigma_b2)
    symmetric = X2_ is None
    Y = X if symmetric else X2_
    dual = dual_kernel(act, nodes=quadrature_nodes)
    m0 = X.shape[1]
    # inputs of extreme magnitude are scaled by a power of two (exact) so that |x|^2 and the Gram product
    # neither overflow nor underflow; the scale comes back in the first-layer kernel, after the
    # overflow check (for ordinary inputs the exponent is 0 and nothing is copied)
    exponent = _scale_exponent(X if symmetric else np.concatenate([X.ravel(), Y.ravel()]))
    Xs = X if exponent == 0 else np.ldexp(X, -exponent)
    Ys = Xs if symmetric else (Y if exponent == 0 else np.ldexp(Y, -exponent))
    f1 = _first_layer_variances(Xs, exponent, sigma_w2, sigma_b2, "X")
    d1 = layer_diagonals(None, m0, depth, dual, sigma_w2, sigma_b2, "X", first=f1)
    d2 = d1 if symmetric else layer_diagonals(
        None, m0, depth, dual, sigma_w2, sigma_b2, "X2", first=_first_layer_variances(Ys, exponent, sigma_w2,
                                                                                       sigma_b2, "X2"))
    sigma1 = Xs @ Ys.T                                   # the one GEMM
    sigma1 *= sigma_w2 / m0
    if exponent:
        sigma1 = np.ldexp(sigma1, 2 * exponent)
    sigma1 += sigma_b2
    if symmetric:                                        # diagonal exactly the layer variances
        np.fill_diagonal(sigma1, d1[0])
    n1, n2 = sigma1.shape
    sigmas = [sigma1] + [np.empty((n1, n2)) for _ in range(depth - 1)]
    dots = [np.empty((n1, n2)) for _ in range(depth - 1)]
    backward = [np.empty((n1, n2)) for _ in range(depth)]
    layer_ntk = [np.empty((n1, n2)) for _ in range(depth)]
    ntk = np.empty((n1, n2))

    if block_rows is None:                               # ~0.5 MB temporaries: they stay in cache
        per_row = n2 * (1 if dual.closed_form else dual.nodes ** 2)
        block_rows = max(1, min(n1, 65_536 // max(per_row, 1)))
    starts = range(0, n1, block_rows)

    def work(r0):
        _fill_block(slice(r0, min(n1, r0 + block_rows)), sigmas, dots, backward, layer_ntk, ntk, d1, d2,
                    dual, sigma_w2, sigma_b2, symmetric)

    threads = min(os.cpu_count() or 1, 8) if n_threads is None else check_positive_int("n_threads", n_threads)
    if symmetric and not dual.closed_form:
        threads = 1                                      # the half computation needs the rows above first
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, starts))
    else:
        for r0 in starts:
            work(r0)
    if symmetric and dual.closed_form and not dual.is_homogeneous:
        # closed forms that hand some entries to the quadrature (gelu's cancelling terms, variances > 1e150)
        # may round (i, j) and (j, i) differently across row blocks: keep X x X kernels exactly symmetric
        lower = np.tril_indices(n1, -1)
        for M in sigmas[1:] + dots + backward + layer_ntk + [ntk]:
            M[lower] = M.T[lower]
    return AnalyticKernels(
        nngp=sigmas[-1], ntk=ntk, layer_ntk=layer_ntk, nngp_layers=sigmas, derivative_layers=dots,
        backward=backward, diag_rows=d1, diag_cols=d2, depth=depth, activation=act.name,
        sigma_w2=sigma_w2, sigma_b2=sigma_b2, method=dual.method,
    )
