"""Layer-wise block tri-diagonal NGD: keeps ``F_lk`` for ``|l - k| <= 1`` (block pattern S = T).

T is indefinite for L >= 3 and singular for L = 2 (mod 3); the general pattern code
(:mod:`numerics.approximations.pattern`) handles both, giving ``Theta_G = (1^T T^+ 1) I =
ceil(L/3) I`` on the training set when every layer Gram is positive definite.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([5, 32, 32, 32, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((6, 5))
>>> bool(np.allclose(BlockTridiagonalApproximation(net, X).operator(), 2 * np.eye(6), atol=1e-9))
True
"""
from __future__ import annotations

from .pattern import PatternApproximation, block_pattern
from .base import register_approximation

__all__ = ["BlockTridiagonalApproximation"]


@register_approximation("block_tridiagonal")
class BlockTridiagonalApproximation(PatternApproximation):
    """Block tri-diagonal Fisher."""


    def _default_pattern(self):
        return block_pattern("tridiagonal", self.depth)
