"""Layer-wise block-diagonal NGD: ``G = blockdiag(F_11, ..., F_LL)`` (block pattern S = I).

The dual system decouples into one ``N C x N C`` system per layer:
``v_l = (K_l + rho N I)^{-1} r`` (Cholesky, factored once at construction), ``x_l = J_l^T v_l``;
at ``rho = 0`` each layer takes the min-norm step ``J_l^+ r`` and ``Theta_G = sum_l K_l K_l^{-1} = L I``.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([5, 32, 32, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 5))
>>> bool(np.allclose(BlockDiagonalApproximation(net, X).operator(), 3 * np.eye(6), atol=1e-9))
True
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..linalg import SingularSystemError, cholesky_apply, cholesky_factor
from .pattern import PatternApproximation, block_pattern
from .base import register_approximation

__all__ = ["BlockDiagonalApproximation"]


@register_approximation("block_diagonal")
class BlockDiagonalApproximation(PatternApproximation):
    """Block-diagonal Fisher (one block per layer)."""


    def _default_pattern(self):
        return block_pattern("identity", self.depth)

    def _build_system(self) -> None:
        eye = np.eye(self.block_size)
        self._factors, conds = [], []
        for l, K in enumerate(self.grams, start=1):
            try:
                factor, cond = cholesky_factor(K + self.damping * self.n_samples * eye,
                                               name=f"layer {l} Gram J_{l} J_{l}^T + rho N I",
                                               max_condition=self.max_condition)
            except SingularSystemError as err:
                assumption = self.layer_gram_assumption(l, err.condition_number)
                self.diagnostics.update(layer_condition_numbers=conds)
                raise self.layer_gram_failure(f"{self.name}: layer {l} system is singular", err.condition_number,
                                              assumption) from None
            self._factors.append(factor)
            conds.append(cond)
        self.diagnostics["layer_condition_numbers"] = conds

    def dual_solution(self, rhs: np.ndarray) -> List[np.ndarray]:
        return [cholesky_apply(factor, rhs) for factor in self._factors]
