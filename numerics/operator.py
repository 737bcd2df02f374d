"""The function-space operator ``Theta_G(X2, X) = J(X2) (G + rho I)^{-1} J(X)^T / N`` of an approximation.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([4, 64, 64, 64, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((5, 4))
>>> T = function_space_operator(net, X, approximation="block_tridiagonal")
>>> bool(np.allclose(T, 2 * np.eye(5), atol=1e-9))     # alpha = ceil(4 / 3) = 2
True
"""
from __future__ import annotations

import numpy as np

from .approximations import get_approximation

__all__ = ["function_space_operator"]


def function_space_operator(net, X, approximation="exact", damping: float = 0.0, X2=None, **options) -> np.ndarray:
    """``(N2 C, N C)`` matrix ``J(X2) (G + rho I)^{-1} J(X)^T / N`` (train x train when ``X2`` is None).

    Rows and columns are sample-major ``(n, c)``; ``rho = damping`` (0 = pseudo-inverse limit);
    ``options`` go to the approximation (e.g. ``pattern=S`` for ``approximation="pattern"``).
    Computed in dual form from the Jacobian factors (never a ``P x P`` matrix).
    """
    return get_approximation(approximation)(net, X, damping=damping, **options).operator(X2)
