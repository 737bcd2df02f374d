"""Diagonal Fisher ``G = diag(F)``, ``F = J^T J / N``: elementwise preconditioning, computed without ``J``.

For layer ``l`` the diagonal of its Fisher block, shaped like ``Wb_l``, is one GEMM:

    F_l[i, j] = (1/N) sum_{n,c} Delta_l[n,c,i]^2 Z_l[n,j]^2 = (1/N) (S^T (Z o Z))[i, j],
    S[n, i] = sum_c Delta_l[n,c,i]^2.

With ``E_l = 1 / (F_l + rho)`` (``rho = 0``: pseudo-inverse convention ``1/0 -> 0`` for entries with
``F = 0``, e.g. dead units; their number is in ``diagnostics["zero_entries"]``):

    direction_l = E_l o (J_l^T r / N),
    Theta_G(X2, X)[(a,c),(n,d)] = (1/N) sum_l sum_{i,j} Delta2_l[a,c,i] Delta_l[n,d,i] Z2_l[a,j] Z_l[n,j] E_l[i,j].

The operator is computed in chunks of rows ``a``: the pairwise products ``Z2[a,j] Z[n,j]`` times
``E^T`` (one GEMM, ``N2 N m M_l`` flops), then a batched GEMM with the backward signals.  Its cost is
``N2 N P`` -- the same as forming ``J diag J^T`` -- because ``E`` has no low-rank structure; fine at
moderate widths (``N = 64``, ``M = 1024``: ~1e11 flops), heavy at ``M = 4096`` with ``N = 256``.

The diagonal Fisher is NOT isotropic in function space: ``Theta_G`` has off-diagonal entries of the
same order as its diagonal (derived and measured here); ``diagnostics`` reports no "isotropic" prediction.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([5, 16, 1], activation="tanh", seed=0)
>>> X = np.random.default_rng(0).standard_normal((4, 5))
>>> approx = DiagonalApproximation(net, X)
>>> theta_G = approx.operator()
>>> theta_G.shape, bool(np.allclose(theta_G, theta_G.T))
((4, 4), True)
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from theory.tolerances import CHUNK_ENTRIES
from theory.assumptions import BLOCK_STRUCTURE, NO_DEAD_UNITS, Flag

from ..dense import _check_small
from ..diagnosis import input_diagnoses
from .base import Approximation, reject_options, register_approximation

#: Float64 entries allowed for the per-chunk intermediates of :meth:`DiagonalApproximation.operator`.


def diagonal_fisher_blocks(factors) -> List[np.ndarray]:
    """``diag(F)`` per layer, shaped like ``Wb_l``: ``(sum_c Delta^2)^T (Z o Z) / N``.

    >>> import numpy as np
    >>> from numerics.network import MLP
    >>> from numerics.dense import dense_jacobian
    >>> net = MLP([3, 4, 1], seed=1); X = np.random.default_rng(1).standard_normal((5, 3))
    >>> F = np.concatenate([b.ravel() for b in diagonal_fisher_blocks(net.factors(X))])
    >>> J = dense_jacobian(net, X)
    >>> bool(np.allclose(F, np.einsum("kp,kp->p", J, J) / 5))
    True
    """
    n = factors.n_samples
    out = []
    for D, Z in zip(factors.Delta, factors.Z):
        S = np.einsum("nci,nci->ni", D, D)
        out.append(S.T @ (Z * Z) / n)
    return out


@register_approximation("diagonal")
class DiagonalApproximation(Approximation):
    """Entry-wise diagonal Fisher.  Options: ``chunk_rows`` (rows of ``X2`` per operator chunk)."""


    def _prepare(self, chunk_rows=None, **options: Any) -> None:
        reject_options(self.name, options)
        if chunk_rows is not None:
            from theory.validation import check_positive_int

            chunk_rows = check_positive_int("chunk_rows", chunk_rows)
        self.chunk_rows = chunk_rows
        self.fisher_diagonal = diagonal_fisher_blocks(self.factors)
        zeros = [int(np.sum(F == 0.0)) for F in self.fisher_diagonal]
        if self.damping > 0:
            self.inverse = [1.0 / (F + self.damping) for F in self.fisher_diagonal]
        else:
            self.inverse = [np.where(F > 0, 1.0 / np.where(F > 0, F, 1.0), 0.0) for F in self.fisher_diagonal]
        positive = np.concatenate([F[F > 0] for F in self.fisher_diagonal])
        dead = [int(np.sum(~np.any(D != 0, axis=(0, 1)))) for D in self.factors.Delta]
        self.diagnostics.update(
            zero_entries=zeros, dead_units=dead,
            pseudo_inverse_zeros=(sum(zeros) if self.damping == 0 else 0),
            diagonal_condition_number=(float(positive.max() / positive.min()) if positive.size else float("inf")),
        )
        flags = [Flag("diagonal_fisher", "diagonal Fisher: Theta_G = J diag(F)^{-1} J^T / N is not a multiple of I "
                                         "(its off-diagonal entries are of the order of its diagonal)", BLOCK_STRUCTURE)]
        if sum(zeros):
            flags.append(Flag("zero_fisher_entries", f"{sum(zeros)} zero Fisher diagonal entries (units with zero "
                                                     f"backward signal on every input, per layer: {dead}) use 1/0 -> 0",
                              NO_DEAD_UNITS))
        # zero / parallel / duplicate inputs make rows of J zero or dependent: Theta_G inherits them
        flags.extend(d.flag() for d in input_diagnoses(self.net, self.factors, self.X))
        self.set_flags(flags)

    def direction(self, residual) -> List[np.ndarray]:
        """``E_l o grad_l`` with ``grad = J^T r / N`` (one GEMM per layer)."""
        return [E * g for E, g in zip(self.inverse, self.gradient(residual))]

    def operator(self, X2=None) -> np.ndarray:
        """``J(X2) diag(F + rho)^{-1} J(X)^T / N`` in row chunks (cost ``N2 N P``)."""
        n, c = self.n_samples, self.n_outputs
        f2 = self.factors_at(X2)
        n2 = f2.n_samples
        total = np.zeros((n2, c, n * c))
        for l in range(1, self.depth + 1):
            Z, Z2 = self.factors.Z[l - 1], f2.Z[l - 1]
            D, D2 = self.factors.Delta[l - 1], f2.Delta[l - 1]
            E = self.inverse[l - 1]                                             # (M_l, m)
            m_l, m = E.shape
            rows = self.chunk_rows or max(1, CHUNK_ENTRIES // max(1, n * (m + (c + 1) * m_l)))
            Dt = D.transpose(0, 2, 1)                                           # (N, M_l, C)
            for start in range(0, n2, rows):
                stop = min(n2, start + rows)
                k = stop - start
                pairs = (Z2[start:stop, None, :] * Z[None, :, :]).reshape(k * n, m)
                T = (pairs @ E.T).reshape(k, n, m_l)                            # T[a,n,i] = sum_j Z2 Z E
                weighted = T[:, :, :, None] * Dt[None]                          # (k, N, M_l, C)
                weighted = weighted.transpose(0, 2, 1, 3).reshape(k, m_l, n * c)
                total[start:stop] += np.matmul(D2[start:stop], weighted)        # (k, C, N C)
        return total.reshape(n2 * c, n * c) / n

    def dense_matrix(self) -> np.ndarray:
        """``diag(F)`` explicitly (``P x P``; small nets only)."""
        _check_small(self.net.n_params)
        return np.diag(np.concatenate([F.ravel() for F in self.fisher_diagonal]))


#: Short alias.
Diagonal = DiagonalApproximation

__all__ = ["Diagonal", "DiagonalApproximation", "diagonal_fisher_blocks"]
