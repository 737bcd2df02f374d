"""Layer-wise block-pattern approximations ``G_S = D^T (S (x) I) D / N``, in dual form.

``S`` is a symmetric L x L 0/1 matrix saying which Fisher blocks ``F_lk = J_l^T J_k / N`` are kept
(exact: all ones; block-diagonal: I; block tri-diagonal: T with ones on ``|l - k| <= 1``; banded;
user-given).  ``D = blockdiag(J_1, ..., J_L)``, ``K = D D^T = blockdiag(K_l)``, ``K_l = J_l J_l^T``
(each ``N C x N C``, built from the factors), ``b = 1_L (x) r``.  Nothing ``P x P`` is formed:

* ``rho > 0`` (push-through ``(rho I + A B)^{-1} A = A (rho I + B A)^{-1}`` with ``A = D^T``):
  ``(G + rho I)^{-1} J^T r / N = D^T v``,  ``v = (rho N I + (S (x) I) K)^{-1} b``.
* ``rho = 0`` (minimum norm; needs every ``K_l`` positive definite): with ``U = K^{-1/2} D``
  (orthonormal rows), ``G_S = U^T M U / N``, ``M = K^{1/2} (S (x) I) K^{1/2}``, so
  ``G_S^+ = N U^T M^+ U`` and ``v = K^{-1/2} M^+ K^{1/2} b``.  This is the pseudo-inverse (and the
  ``rho -> 0+`` limit, since ``grad`` lies in ``range(G_S)``) INCLUDING singular ``S`` (T at
  L = 2 mod 3).  ``M^+`` is computed with the exact rank: ``null(M) = K^{-1/2} (null(S) (x) I)``
  is known from the small matrix S, so with ``Q`` the orthogonal projector onto it and ``s > 0``,
  ``M^+ = (M + s Q)^{-1} - Q / s`` (no eigenvalue threshold on the big matrix).
* The direction is ``x_l = J_l^T v_l`` (one GEMM per layer) and
  ``Theta_G(X2, X) = sum_l J_l(X2) J_l(X)^T V_l`` with ``V`` the dual solution for ``r = I``.

>>> import numpy as np
>>> from numerics.network import MLP
>>> net = MLP([6, 64, 64, 64, 64, 1], activation="relu", seed=0)
>>> X = np.random.default_rng(0).standard_normal((5, 6))
>>> T = block_pattern("tridiagonal", 5)
>>> theta_G = PatternApproximation(net, X, pattern=T).operator()
>>> bool(np.allclose(theta_G, 2 * np.eye(5), atol=1e-9))   # alpha = 1^T T^+ 1 = 2 at L = 5
True
"""
from __future__ import annotations

from typing import Any, List, Optional

import numpy as np
import scipy.linalg

from ..dense import dense_layer_jacobian
from ..factors import layer_grams
from theory.assumptions import WELL_CONDITIONED

from ..diagnosis import Diagnosis, layer_scale_spread
from ..linalg import MAX_CONDITION, SingularSystemError, lu_factor_checked, psd_sqrt_and_inverse_sqrt
from .base import Approximation, reject_options, register_approximation

__all__ = [
    "PatternApproximation", "block_pattern", "check_pattern", "pattern_null_space", "pattern_coefficients",
    "PATTERN_RTOL"
]

#: Eigenvalues of the small 0/1 pattern S with ``|lambda| <= PATTERN_RTOL * L`` are zero.  S has
#: integer entries, so its nonzero eigenvalues are algebraic integers' conjugates bounded away from
#: zero by far more than this (e.g. 2 - 2 cos(pi/(L+1))-type gaps ~ 1/L^2 for banded patterns).
PATTERN_RTOL = 1e-9


def block_pattern(kind: str, depth: int, bandwidth: Optional[int] = None) -> np.ndarray:
    """Named L x L block patterns: ``"ones"`` (exact), ``"identity"`` (block-diagonal),
    ``"tridiagonal"`` (BTD) and ``"banded"`` (``S_lk = 1`` iff ``|l - k| <= bandwidth``).

    >>> block_pattern("tridiagonal", 3).astype(int).tolist()
    [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    from theory.validation import check_choice, check_positive_int

    check_choice("kind", kind, ("ones", "identity", "tridiagonal", "banded"))
    L = check_positive_int("depth", depth)
    if kind == "ones":
        return np.ones((L, L))
    if kind == "identity":
        return np.eye(L)
    if kind == "tridiagonal":
        bandwidth = 1
    elif bandwidth is None:
        raise ValueError("bandwidth is required for kind='banded' (an integer >= 0)")
    b = check_positive_int("bandwidth", bandwidth, minimum=0)
    idx = np.arange(L)
    return (np.abs(idx[:, None] - idx[None, :]) <= b).astype(float)


def check_pattern(pattern, depth: int) -> np.ndarray:
    """Validate a block pattern: L x L, entries 0/1, symmetric, not all zero."""
    S = np.asarray(pattern, dtype=float)
    if S.shape != (depth, depth):
        raise ValueError(f"pattern has shape {S.shape}, expected (L, L) = ({depth}, {depth})")
    if not np.all((S == 0) | (S == 1)):
        raise ValueError(f"pattern must contain only 0 and 1, got {np.unique(S).tolist()}")
    if not np.array_equal(S, S.T):
        raise ValueError("pattern must be symmetric (G_S must be a symmetric matrix)")
    if not S.any():
        raise ValueError("pattern must keep at least one block (it is all zero)")
    return S


def pattern_null_space(S: np.ndarray) -> np.ndarray:
    """Orthonormal basis (L x k) of ``null(S)`` via ``eigh`` of the small symmetric pattern.

    >>> n = pattern_null_space(block_pattern("tridiagonal", 5))
    >>> n.shape, np.abs(n[:, 0] / n[0, 0]).round(12).tolist()      # span(1, -1, 0, 1, -1)
    ((5, 1), [1.0, 1.0, 0.0, 1.0, 1.0])
    """
    lam, V = np.linalg.eigh(S)
    return V[:, np.abs(lam) <= PATTERN_RTOL * S.shape[0]]


def pattern_coefficients(S: np.ndarray) -> dict:
    """``c = S^+ 1``, ``alpha = 1^T S^+ 1`` and whether ``1 in range(S)`` (then ``Theta_G = alpha I``).

    >>> d = pattern_coefficients(block_pattern("tridiagonal", 4))
    >>> d["c"], d["alpha"], d["ones_in_range"]
    ([1.0, 0.0, 0.0, 1.0], 2.0, True)
    """
    ones = np.ones(S.shape[0])
    c = np.linalg.pinv(S, rcond=PATTERN_RTOL) @ ones
    in_range = bool(np.allclose(S @ c, ones, atol=1e-9))
    # S is a small 0/1 matrix: round away the ~1e-16 noise of pinv so reports print 1.0, 0.5, ...
    clean = np.round(c, 12) + 0.0
    return {"c": [float(x) for x in clean], "alpha": float(np.round(ones @ c, 12)), "ones_in_range": in_range,
            "null_dimension": int(pattern_null_space(S).shape[1])}


@register_approximation("pattern", parametrised=True)
class PatternApproximation(Approximation):
    """Any symmetric 0/1 block pattern (option ``pattern=S`` or ``bandwidth=b``).

    Options: ``pattern`` (L x L 0/1 array), ``bandwidth`` (banded pattern, instead of ``pattern``),
    ``max_condition`` (largest accepted condition number, default :data:`numerics.linalg.MAX_CONDITION`).
    """


    def _default_pattern(self) -> Optional[np.ndarray]:
        return None

    def _prepare(self, pattern=None, bandwidth=None, max_condition: float = MAX_CONDITION, **options: Any) -> None:
        reject_options(self.name, options)
        default = self._default_pattern()
        if default is not None:
            if pattern is not None or bandwidth is not None:
                raise TypeError(f"approximation {self.name!r} has a fixed block pattern; "
                                "use approximation='pattern' to choose one")
            S = default
        elif pattern is not None and bandwidth is not None:
            raise TypeError("give either pattern= or bandwidth=, not both")
        elif pattern is not None:
            S = check_pattern(pattern, self.depth)
        elif bandwidth is not None:
            S = block_pattern("banded", self.depth, bandwidth)
        else:
            raise TypeError("approximation 'pattern' needs the option pattern=S (L x L 0/1 array) or bandwidth=b")
        self.pattern = S
        self.max_condition = float(max_condition)
        self.grams = layer_grams(self.factors)
        self.diagnostics.update(pattern=S.astype(int).tolist(), **{f"pattern_{k}": v for k, v in
                                                                     pattern_coefficients(S).items()})
        if not self.diagnostics["pattern_ones_in_range"]:
            self.diagnostics["note"] = ("1 is not in range(S): grad has a component in null(G_S), so "
                                        "(G_S + rho I)^{-1} grad diverges as rho -> 0+; rho = 0 returns the "
                                        "Moore-Penrose solution G_S^+ grad, and Theta_G is not alpha I")
        self._build_system()

    # -- the dual system ----------------------------------------------------------------------
    @property
    def block_size(self) -> int:
        return self.n_samples * self.n_outputs

    def _check_layer_grams(self) -> List[tuple]:
        """``(K_l^{1/2}, K_l^{-1/2})`` for every layer, raising with a diagnosis if some K_l is singular."""
        roots, conds = [], []
        for l, K in enumerate(self.grams, start=1):
            try:
                sq, isq, cond = psd_sqrt_and_inverse_sqrt(K, name=f"layer {l} Gram J_{l} J_{l}^T",
                                                          max_condition=self.max_condition)
            except SingularSystemError as err:
                assumption = self.layer_gram_assumption(l, err.condition_number)
                self.diagnostics.update(layer_condition_numbers=conds)
                raise self.layer_gram_failure(f"{self.name}: rho = 0 needs every layer Gram positive definite",
                                              err.condition_number, assumption) from None
            roots.append((sq, isq))
            conds.append(cond)
        self.diagnostics["layer_condition_numbers"] = conds
        return roots

    def _build_system(self) -> None:
        S, L, m = self.pattern, self.depth, self.block_size
        if self.damping > 0:
            # rho N I + (S (x) I) K: block (l, k) = S_lk K_k
            A = np.block([[S[l, k] * self.grams[k] for k in range(L)] for l in range(L)])
            A[np.diag_indices_from(A)] += self.damping * self.n_samples
            self._lu, cond = self._checked_lu(A, f"{self.name} damped dual system")
            self.diagnostics["system_condition_number"] = cond
            return
        self._roots = self._check_layer_grams()
        M = np.block([[S[l, k] * (self._roots[l][0] @ self._roots[k][0]) if S[l, k] else np.zeros((m, m))
                       for k in range(L)] for l in range(L)])
        null_S = pattern_null_space(S)
        scale = float(np.mean([np.trace(K) for K in self.grams])) / m
        if null_S.shape[1]:
            # null(M) = K^{-1/2} (null(S) (x) I): orthonormalise its basis, Q = basis basis^T
            basis = np.vstack([self._roots[l][1] @ np.kron(null_S[l:l + 1, :], np.eye(m)) for l in range(L)])
            basis, _ = np.linalg.qr(basis)
            Q = basis @ basis.T
        else:
            Q = np.zeros_like(M)
        self._lu, cond = self._checked_lu(M + scale * Q, f"{self.name} dual system")
        self._Q, self._scale = Q, scale
        self.diagnostics["system_condition_number"] = cond
        self.diagnostics["system_rank"] = int(L * m - null_S.shape[1] * m)

    def _checked_lu(self, A: np.ndarray, name: str):
        """LU of the pattern system; on failure a SingularSystemError carrying the diagnosed flag (layer
        Grams of very different scales -- :func:`numerics.diagnosis.layer_scale_spread` -- or the system's
        own invertibility condition)."""
        try:
            return lu_factor_checked(A, name=name, assumption=self._system_assumption(),
                                     max_condition=self.max_condition)
        except SingularSystemError as err:
            d = layer_scale_spread(self.grams, err.condition_number, 1.0 / self.max_condition)
            if d is None:
                d = Diagnosis("pattern_system_singular", self._system_assumption(), WELL_CONDITIONED)
            raise self.layer_gram_failure(f"{name} is numerically singular", err.condition_number, d,
                                          violated=WELL_CONDITIONED) from None

    def _system_assumption(self) -> str:
        if self.damping > 0:
            return (f"rho N I + (S (x) I) K must be invertible: rho = {self.damping:g} must not equal minus an "
                    "eigenvalue of the (possibly indefinite) G_S")
        return "the pattern system K^{1/2} (S (x) I) K^{1/2} restricted to range(S) (x) R^{NC} must be invertible"

    def dual_solution(self, rhs: np.ndarray) -> List[np.ndarray]:
        """Per-layer dual vectors ``v_l`` (each ``(N C, k)``) for residual columns ``rhs`` (``N C x k``)."""
        L, m = self.depth, self.block_size
        b = np.tile(rhs, (L, 1))
        if self.damping > 0:
            v = scipy.linalg.lu_solve(self._lu, b, check_finite=False)
        else:
            w = np.vstack([self._roots[l][0] @ b[l * m:(l + 1) * m] for l in range(L)])
            y = scipy.linalg.lu_solve(self._lu, w, check_finite=False)
            y = y - self._Q @ w / self._scale
            v = np.vstack([self._roots[l][1] @ y[l * m:(l + 1) * m] for l in range(L)])
        return [v[l * m:(l + 1) * m] for l in range(L)]

    # -- public interface ---------------------------------------------------------------------
    def direction(self, residual) -> List[np.ndarray]:
        r = self.residual_matrix(residual).reshape(-1, 1)
        dual = self.dual_solution(r)
        return self.directions_from_dual([v[:, 0] for v in dual])

    def operator(self, X2=None) -> np.ndarray:
        V = self.dual_solution(np.eye(self.block_size))
        grams = self.grams if X2 is None else layer_grams(self.factors, self.factors_at(X2))
        return sum(K @ Vl for K, Vl in zip(grams, V))

    def dense_matrix(self) -> np.ndarray:
        J = [dense_layer_jacobian(self.factors, l) for l in range(1, self.depth + 1)]
        return np.block([[self.pattern[l, k] * (J[l].T @ J[k]) for k in range(self.depth)]
                         for l in range(self.depth)]) / self.n_samples
