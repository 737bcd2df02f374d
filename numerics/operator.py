"""The function-space operator ``Theta_G(X2, X) = J(X2) (G + rho I)^{-1} J(X)^T / N`` of an approximation.

Squared loss (``loss="mse"``): ``G`` approximates ``F = J^T J / N``; the residual ``f - y`` obeys
``r_{t+1} = (I - eta Theta_G) r_t`` to first order.

Cross-entropy (``loss="cross_entropy"``): ``G`` keeps blocks of ``F = J^T H J / N``; the residual ``p - y``
lies in ``range(H)`` (per sample ``1^perp``), and the operator returned is ``Theta_G Pi_H = J(X2) G^+ J^T
Pi_H / N`` -- the map from ``p - y`` to the first-order logit change ``-Delta f / eta`` (the only part of
``J G^+ J^T / N`` with a ``rho -> 0+`` limit; along each sample's all-ones direction ``(G + rho I)^{-1} J^T``
grows like ``1/rho``).  Its isotropy statement lives in probability space:
:func:`probability_space_operator` returns ``H Theta_G Pi_H``, which is ``alpha Pi_H`` for exact,
block-diagonal and block tri-diagonal NGD (:mod:`theory.cross_entropy`).

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([4, 64, 64, 64, 1], seed=0)
>>> X = np.random.default_rng(0).standard_normal((5, 4))
>>> T = function_space_operator(net, X, approximation="block_tridiagonal")
>>> bool(np.allclose(T, 2 * np.eye(5), atol=1e-9))     # alpha = ceil(4 / 3) = 2
True
>>> net3 = MLP([4, 64, 64, 3], seed=0)
>>> P = probability_space_operator(net3, X, approximation="block_diagonal")
>>> Pi = np.kron(np.eye(5), np.eye(3) - 1 / 3)
>>> bool(np.allclose(P, 3 * Pi, atol=1e-9))            # H Theta_G Pi_H = L Pi_H under cross-entropy
True
"""
from __future__ import annotations

import numpy as np

from .approximations import get_approximation

__all__ = ["function_space_operator", "probability_space_operator"]


def function_space_operator(net, X, approximation="exact", damping: float = 0.0, X2=None, loss: str = "mse",
                            **options) -> np.ndarray:
    """``(N2 C, N C)`` matrix ``J(X2) (G + rho I)^{-1} J(X)^T / N`` (train x train when ``X2`` is None).

    Rows and columns are sample-major ``(n, c)``; ``rho = damping`` (0 = pseudo-inverse limit);
    ``loss`` is ``"mse"`` (``G ~ J^T J / N``) or ``"cross_entropy"`` (``G ~ J^T H J / N``, and the operator
    is multiplied on the right by ``Pi_H``, the projector onto ``range(H)`` where ``p - y`` lives: module
    docstring); ``options`` go to the approximation (e.g. ``pattern=S`` for ``approximation="pattern"``).
    Computed in dual form from the Jacobian factors (never a ``P x P`` matrix).
    """
    return get_approximation(approximation)(net, X, damping=damping, loss=loss, **options).logit_operator(X2)


def probability_space_operator(net, X, approximation="exact", damping: float = 0.0, loss: str = "cross_entropy",
                               **options) -> np.ndarray:
    """``H Theta_G Pi_H`` (``N C x N C``, training set): the first-order map ``p - y -> -Delta p / eta`` under
    cross-entropy (``loss="mse"``: ``Theta_G`` itself, the map ``f - y -> -Delta f / eta``)."""
    return get_approximation(approximation)(net, X, damping=damping, loss=loss, **options).probability_operator()
