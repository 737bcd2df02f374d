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

from ..factors import layer_grams
from ..linalg import MAX_CONDITION, SingularSystemError, cholesky_apply, cholesky_factor
from .base import (NEAR_DUPLICATE_RTOL, closest_pair, duplicate_pairs, numerical_rank, register_approximation,
                   reject_options,
                   zero_signal_samples)
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

    def _exact_assumption(self, cond: float) -> str:
        """Why ``J J^T = sum_l K_l`` is singular: it needs a null vector shared by every layer Gram."""
        n_c = self.block_size
        head = f"NTK Gram J J^T ({n_c} x {n_c}) is singular (condition number {cond:.3g})"
        if self.net.n_params < n_c:
            return f"{head}: P = {self.net.n_params} parameters < N C = {n_c}"
        dups = duplicate_pairs(self.X)
        if dups:
            shown = ", ".join(f"{i}&{j}" for i, j in dups[:5])
            return f"{head}: duplicate inputs (rows {shown} of X are equal), so rows of J coincide"
        silent = set(zero_signal_samples(self.factors, 1).tolist())
        for l in range(2, self.depth + 1):
            silent &= set(zero_signal_samples(self.factors, l).tolist())
        if silent:
            shown = ", ".join(str(i) for i in sorted(silent)[:8])
            return (f"{head}: the network passes no gradient on {len(silent)} input(s) (rows {shown} of J are zero "
                    "in every layer: all units of some layer inactive there, e.g. dead relu patterns)")
        ranks = [numerical_rank(K) for K in self.grams]
        if sum(ranks) < n_c:
            return (f"{head}: rank bound rank(J) <= sum_l rank(J_l) = {' + '.join(map(str, ranks))} = {sum(ranks)} "
                    f"< N C = {n_c} (narrow layers or dead units; widths {list(self.net.widths)})")
        pair = closest_pair(self.X)
        if pair is not None and pair[2] < NEAR_DUPLICATE_RTOL:
            return (f"{head}: near-duplicate inputs (rows {pair[0]}&{pair[1]} of X at relative distance "
                    f"{pair[2]:.3g})")
        return (f"{head}: the N C rows of J share a (near) null vector across all layers (layer Gram ranks {ranks}; "
                f"no near-duplicate inputs, closest pair at relative distance {pair[2] if pair else float('nan'):.3g}): "
                "degenerate activation patterns")

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
