"""Layer-wise block tri-diagonal NGD: keeps ``F_lk`` for ``|l - k| <= 1`` (block pattern S = T).

T is indefinite for L >= 3 and singular for L = 2 (mod 3); the general pattern code
(:mod:`numerics.approximations.pattern`) handles both, giving ``Theta_G = (1^T T^+ 1) I =
ceil(L/3) I`` on the training set when every layer Gram is positive definite.

Fast path (``rho = 0`` and T invertible, i.e. ``L != 2 mod 3``): with every ``K_l = J_l J_l^T`` positive
definite, ``M = K^{1/2} (T (x) I) K^{1/2}`` is invertible and the pattern code's dual solution
``v = K^{-1/2} M^{-1} K^{1/2} (1 (x) r)`` collapses to

    v_l = c_l K_l^{-1} r,      c = T^{-1} 1   (integer: det T = +-1),

so the step needs one Cholesky solve per layer with ``c_l != 0`` and no ``L N C``-sized system, no matrix
square roots and no GEMM for the layers with ``c_l = 0`` (their direction is exactly zero: at L = 3,
``c = (0, 1, 0)``, only the middle layer moves).  The layer Grams are checked for positive definiteness
exactly as in the pattern code (``eigvalsh``: the same condition numbers, the same refusal and diagnosis);
the recorded ``system_condition_number`` is the bound ``cond(T) max_l lambda_max(K_l) / min_l
lambda_min(K_l)`` of ``cond(M)``.  The layer Grams (``N^2 M`` flops, ``M / N`` times fewer than a
forward GEMM) and the small solves run with one BLAS thread, the width-sized direction GEMMs with the
caller's threads (:mod:`numerics.threads`).  ``rho > 0`` and singular T use the pattern code.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([5, 32, 32, 32, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 5))
>>> bool(np.allclose(BlockTridiagonalApproximation(net, X).operator(), 2 * np.eye(6), atol=1e-9))
True
>>> BlockTridiagonalApproximation(net, X).diagnostics["dual_form"], pattern_inverse_ones(block_pattern("tridiagonal", 3))
('layerwise_cholesky', [0.0, 1.0, 0.0])
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import scipy.linalg

from theory.validation import check_choice

from ..factors import layer_gram, layer_vjp
from ..linalg import SingularSystemError
from ..threads import all_blas_threads, single_blas_thread
from .base import register_approximation
from .pattern import PatternApproximation, block_pattern

__all__ = ["BlockTridiagonalApproximation", "DUAL_FORMS", "pattern_inverse_ones"]

#: Option ``dual_form``: ``"auto"`` (the layer-wise fast path where it applies) or ``"pattern_system"`` (always
#: the general pattern code, ``K^{1/2} M^+ K^{1/2}``: an independent computation for checks of the ``c_l`` formula).
DUAL_FORMS = ("auto", "pattern_system")


def pattern_inverse_ones(S: np.ndarray) -> Optional[List[float]]:
    """``c = S^{-1} 1`` when the 0/1 pattern ``S`` is invertible with an integer ``c`` (checked exactly:
    ``S c = 1`` in integer arithmetic), else None."""
    S = np.asarray(S, dtype=float)
    try:
        c = np.round(np.linalg.solve(S, np.ones(S.shape[0])))
    except np.linalg.LinAlgError:
        return None
    Si, ci = S.astype(np.int64), c.astype(np.int64)
    if not np.array_equal(Si @ ci, np.ones(S.shape[0], dtype=np.int64)):
        return None
    if abs(round(float(np.linalg.det(S)))) != 1:   # integer S with |det| = 1: S^{-1} integer, c exact
        return None
    return [float(x) + 0.0 for x in c]


@register_approximation("block_tridiagonal")
class BlockTridiagonalApproximation(PatternApproximation):
    """Block tri-diagonal Fisher (fast layer-wise path at ``rho = 0``, ``L != 2 mod 3``: module docstring).

    Options: ``dual_form`` (``"auto"``; ``"pattern_system"`` forces the general pattern code), ``max_condition``.
    """


    def _default_pattern(self):
        return block_pattern("tridiagonal", self.depth)

    def _prepare(self, dual_form: str = "auto", **options) -> None:
        self.dual_form_option = check_choice("dual_form", dual_form, DUAL_FORMS)
        # layer Grams (N^2 M flops each, M / N times fewer than a forward GEMM: measured 0.6 s with two
        # threads next to a busy process against 0.02 s with one) and the N x N solves: one BLAS thread
        with single_blas_thread():
            super()._prepare(**options)

    # -- the dual system ----------------------------------------------------------------------
    def _build_system(self) -> None:
        self._layer_coefficients = None
        fast = self.damping == 0 and self.dual_form_option == "auto"
        c = pattern_inverse_ones(self.pattern) if fast else None
        with single_blas_thread():
            if c is None:
                self.diagnostics["dual_form"] = "pattern_system"
                return super()._build_system()
            self._build_layerwise(c)

    def _build_layerwise(self, c: List[float]) -> None:
        """Check every ``K_l`` (positive definite, condition <= max_condition) and factor those with
        ``c_l != 0``."""
        conds, lo, hi, factors = [], [], [], []
        for l, K in enumerate(self.grams, start=1):
            lam = np.linalg.eigvalsh((K + K.T) / 2)
            top, bottom = float(np.abs(lam).max()), float(lam.min())
            cond = float("inf") if bottom <= 0 or top == 0 else top / bottom
            if not cond <= self.max_condition:
                assumption = self.layer_gram_assumption(l, cond)
                self.diagnostics.update(layer_condition_numbers=conds)
                raise self.layer_gram_failure(f"{self.name}: rho = 0 needs every layer Gram positive definite",
                                              cond, assumption) from None
            conds.append(cond)
            lo.append(bottom)
            hi.append(top)
            factors.append(self._cholesky(K, cond) if c[l - 1] != 0 else None)
        S_eigs = np.abs(np.linalg.eigvalsh(self.pattern))
        self.diagnostics["layer_condition_numbers"] = conds
        self.diagnostics["system_condition_number"] = float(S_eigs.max() / S_eigs.min() * max(hi) / min(lo))
        self.diagnostics["system_rank"] = int(self.depth * self.block_size)
        self.diagnostics["dual_form"] = "layerwise_cholesky"
        self._layer_coefficients = c
        self._layer_factors = factors

    @staticmethod
    def _cholesky(K: np.ndarray, cond: float):
        try:
            return scipy.linalg.cho_factor(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:  # pragma: no cover -- eigvalsh said positive definite (cond <= 1e12)
            raise SingularSystemError("layer Gram is not positive definite", cond,
                                      "every layer Gram J_l J_l^T is positive definite") from None

    def dual_solution(self, rhs: np.ndarray) -> List[np.ndarray]:
        if self._layer_coefficients is None:
            with single_blas_thread():
                return super().dual_solution(rhs)
        with single_blas_thread():
            return [np.zeros_like(rhs, dtype=float) if fac is None else
                    c * scipy.linalg.cho_solve(fac, rhs, check_finite=False)
                    for c, fac in zip(self._layer_coefficients, self._layer_factors)]

    # -- public interface ---------------------------------------------------------------------
    def direction(self, residual) -> List[np.ndarray]:
        if self._layer_coefficients is None:
            return super().direction(residual)
        r = self.residual_matrix(residual).reshape(-1, 1)
        with single_blas_thread():
            dual = self.dual_solution(r)
        out = []
        for l, (c, v) in enumerate(zip(self._layer_coefficients, dual), start=1):
            if c == 0:  # exactly zero: no GEMM
                out.append(np.zeros((self.factors.Delta[l - 1].shape[2], self.factors.Z[l - 1].shape[1])))
            else:
                out.append(layer_vjp(self.factors, l, v[:, 0]))
        return out

    def operator(self, X2=None) -> np.ndarray:
        if self._layer_coefficients is None:
            return super().operator(X2)
        f2 = None if X2 is None else self.factors_at(X2)
        with single_blas_thread():
            V = self.dual_solution(np.eye(self.block_size))
        n2 = self.block_size if f2 is None else f2.n_samples * self.n_outputs
        total = np.zeros((n2, self.block_size))
        for l, (c, Vl) in enumerate(zip(self._layer_coefficients, V), start=1):
            if c != 0:
                K = self.grams[l - 1] if f2 is None else layer_gram(self.factors, l, f2)
                total += K @ Vl
        return total
