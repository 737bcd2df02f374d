"""Exact NGD: ``G = F = J^T J / N`` (block pattern S = all ones).

Default ``method="dual"``: the plain ``N C x N C`` dual system of the summed Gram ``K = J J^T``,
``v = (K + rho N I)^{-1} r`` (Cholesky), the same dual vector for every layer, ``x_l = J_l^T v``.
For ``rho = 0`` this is ``J^+ r``, the minimum-norm step; it needs only ``J J^T`` positive
definite (not every layer Gram).  ``method="pattern"`` runs the general block-pattern code with
S = ones instead (needs every ``K_l`` positive definite); both agree (tested).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([5, 32, 32, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 5))
>>> bool(np.allclose(ExactApproximation(net, X).operator(), np.eye(6), atol=1e-9))
True
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from theory.assumptions import NTK_POSITIVE_DEFINITE
from theory.validation import check_choice

from ..diagnosis import diagnose_ntk_gram
from ..factors import layer_grams
from ..linalg import MAX_CONDITION, SingularSystemError, cholesky_apply, cholesky_factor
from .base import register_approximation, reject_options
from .pattern import PatternApproximation, block_pattern

__all__ = ["ExactApproximation"]


@register_approximation("exact")
class ExactApproximation(PatternApproximation):
    """Exact Fisher; option ``method="dual"`` (default) or ``"pattern"``."""


    def _default_pattern(self):
        return block_pattern("ones", self.depth)

    def _prepare(self, method: str = "dual", max_condition: float = MAX_CONDITION, **options: Any) -> None:
        self.method = check_choice("method", method, ("dual", "pattern"))
        if self.method == "pattern":
            super()._prepare(max_condition=max_condition, **options)
            return
        reject_options(self.name, options)
        self.pattern = self._default_pattern()
        self.max_condition = float(max_condition)
        self.grams = layer_grams(self.factors)
        self.gram = sum(self.grams)
        self.diagnostics.update(pattern=self.pattern.astype(int).tolist(), method="dual")
        try:
            self._factor, cond = cholesky_factor(self.gram + self.damping * self.n_samples * np.eye(self.block_size),
                                                 name="NTK Gram J J^T + rho N I", max_condition=self.max_condition,
                                                 assumption="J J^T positive definite")
        except SingularSystemError as err:
            assumption = self._exact_assumption(err.condition_number)
            raise self.layer_gram_failure("exact NGD: the dual system is singular", err.condition_number, assumption,
                                          code="ntk_gram_singular", violated=NTK_POSITIVE_DEFINITE) from None
        self.diagnostics["condition_number"] = cond

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        return cholesky_apply(self._factor, rhs)

    def _exact_assumption(self, cond: float):
        """Why ``J J^T = sum_l K_l`` is singular (it needs a null vector shared by every layer Gram):
        :func:`numerics.diagnosis.diagnose_ntk_gram` (a Diagnosis; ``str()`` is the sentence)."""
        return diagnose_ntk_gram(self.net, self.factors, self.X, cond, cut=1.0 / self.max_condition)

    def dual_solution(self, rhs: np.ndarray) -> List[np.ndarray]:
        if self.method == "pattern":
            return super().dual_solution(rhs)
        v = self._solve(rhs)
        return [v] * self.depth

    def operator(self, X2=None) -> np.ndarray:
        if self.method == "pattern":
            return super().operator(X2)
        V = self._solve(np.eye(self.block_size))
        K = self.gram if X2 is None else sum(layer_grams(self.factors, self.factors_at(X2)))
        return K @ V
