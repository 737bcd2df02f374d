"""Function-space kernels of block-pattern NGD, derived for singular patterns too, and evaluated.

Setting: ``D = blockdiag(J_l)`` with every ``J_l`` of full row rank, ``K = D D^T = blockdiag(K_l)``
(``K_l = J_l J_l^T``, as ``numerics.factors.layer_gram`` returns it: no ``1/N``),
``G_S = D^T (S (x) I) D / N``.

Derivation (the product rule ``(A B C)^+ = C^+ B^+ A^+`` is NOT used: it fails for singular ``B``,
see :func:`naive_product_rule_counterexample`).  ``U = K^{-1/2} D`` has orthonormal rows, so with
``M = K^{1/2} (S (x) I) K^{1/2}``: ``G_S = U^T M U / N`` and ``G_S^+ = N U^T M^+ U`` (Penrose
conditions, using only ``U U^T = I``).  Then, for a residual ``r``,

    ``Theta_G(x', X) r = sum_l K_l(x', X) v_l``,  ``v = K^{-1/2} M^+ K^{1/2} (1 (x) r)``.

If ``1 in range(S)`` with ``c = S^+ 1``, the min-norm solution of ``M y = K^{1/2}(1 (x) r)`` is
``y = K^{-1/2} (c (x) r + sum_k n_k (x) z_k)`` with ``n_k`` a basis of ``null(S)`` and ``z``
chosen so that ``y`` is orthogonal to ``null(M) = K^{-1/2} (null(S) (x) R^n)``:

    ``v_l = K_l^{-1} (c_l r + sum_k n_kl z_k)``,
    ``sum_k [sum_l n_jl n_kl K_l^{-1}] z_k = - sum_l n_jl c_l K_l^{-1} r``   (Schur system, p.d.).

On the train set ``sum_l K_l v_l = (1^T c) r + sum_k (1^T n_k) z_k = alpha r``.  At a test point the
``z`` term survives: the test kernel is ``sum_l c_l K_l(x',X) K_l^{-1}`` only when ``S`` is
invertible (or all ``K_l`` are equal).  Damped (``rho > 0``), by push-through:
``Theta_G^rho(x', X) = [K_l(x', X)]_l ((S (x) I) K + rho N I)^{-1} (1 (x) I)``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> Ks = [(lambda A: A @ A.T + 3 * np.eye(3))(rng.standard_normal((3, 3))) for _ in range(5)]
>>> pk = PatternKernel.from_pattern([[1 if abs(i - j) <= 1 else 0 for j in range(5)] for i in range(5)])
>>> bool(np.allclose(pk.train_operator(Ks), 2 * np.eye(3)))
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import scipy.linalg
import sympy as sp

from theory.derivation import Derivation
from theory.non_isotropic import cached_derivation
from theory.patterns import analyze_pattern, tridiagonal_pattern
from theory.validation import check_matrix, check_positive_int
from theory.tolerances import RANK_RTOL

__all__ = [
    "PatternKernel", "pattern_test_kernel", "finite_width_exactness_derivation",
    "naive_product_rule_counterexample", "spd_inverse", "COND_LIMIT"
]

#: condition numbers above this make a layer kernel "singular" for the rho = 0 formulas
COND_LIMIT = 1e12


def _check_kernels(name: str, kernels, depth: int, square: bool, ncols: Optional[int] = None) -> List[np.ndarray]:
    if len(kernels) != depth:
        raise ValueError(f"{name} has {len(kernels)} layer kernels, expected depth L = {depth}")
    out = []
    for l, k in enumerate(kernels, 1):
        k = np.asarray(k, dtype=np.float64)
        if k.ndim != 2 or (square and k.shape[0] != k.shape[1]):
            raise ValueError(f"{name}[{l - 1}] (layer {l}) must be a {'square ' if square else ''}2-D array, "
                             f"got shape {k.shape}")
        if ncols is not None and k.shape[1] != ncols:
            raise ValueError(f"{name}[{l - 1}] (layer {l}) has {k.shape[1]} columns, expected {ncols}")
        if not np.all(np.isfinite(k)):
            raise ValueError(f"{name}[{l - 1}] (layer {l}) contains non-finite values")
        out.append(k)
    return out


def spd_inverse(K: np.ndarray, what: str) -> np.ndarray:
    """Inverse of a symmetric positive definite kernel via eigh, refusing singular ones.

    Raises ``ValueError`` naming ``what`` and the condition number when ``K`` is not p.d. or its
    condition number exceeds :data:`COND_LIMIT` (e.g. width < N: the layer Gram has rank < N).

    >>> spd_inverse(np.diag([2.0, 4.0]), "K").tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    K = check_matrix(what, K)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"{what} must be a square kernel matrix, got shape {K.shape}")
    Ks = (K + K.T) / 2
    w, V = np.linalg.eigh(Ks)
    cond = np.inf if w[0] <= 0 else w[-1] / w[0]
    if not np.isfinite(cond) or cond > COND_LIMIT:
        raise ValueError(f"{what} is singular or ill-conditioned (condition number {cond:.3g}, smallest "
                         f"eigenvalue {w[0]:.3g}): the assumption 'every layer Gram J_l J_l^T is invertible' "
                         f"(full row rank, width large enough, distinct inputs) fails")
    return (V / w) @ V.T


@dataclass(frozen=True)
class PatternKernel:
    """Numeric form of the derived min-norm/damped kernels of a block pattern.

    ``weights`` c = S^+ 1, ``null_basis`` (L x k), ``alpha``; evaluators below implement the
    derivation in the module docstring (batched over all residuals at once: GEMMs and solves).
    """

    pattern: np.ndarray
    weights: np.ndarray
    null_basis: np.ndarray
    alpha: float
    one_in_range: bool

    @classmethod
    def from_pattern(cls, pattern) -> "PatternKernel":
        a = analyze_pattern(pattern)
        Nb = np.array(a.null_basis.tolist(), dtype=float).reshape(a.depth, a.null_basis.cols)
        if Nb.shape[1]:
            Nb = np.linalg.qr(Nb)[0]  # any basis works; orthonormal is better conditioned
        return cls(np.array(a.pattern.tolist(), dtype=float), np.array([float(x) for x in a.weights]),
                   Nb, float(a.alpha), a.one_in_range)

    @property
    def depth(self) -> int:
        return self.pattern.shape[0]

    # -- rho = 0 -------------------------------------------------------------------------------
    def dual_vectors(self, train_kernels: Sequence[np.ndarray]) -> List[np.ndarray]:
        """``V_l`` with ``v_l = V_l r`` (the dual layer vectors of the min-norm step), as matrices."""
        Ks = _check_kernels("train_kernels", train_kernels, self.depth, square=True)
        n = Ks[0].shape[0]
        if any(k.shape != (n, n) for k in Ks):
            raise ValueError("train_kernels must all have the same shape (NC, NC)")
        if not self.one_in_range:
            return self._dense_dual_vectors(Ks)
        E = [spd_inverse(k, f"train layer kernel K_{l} = J_{l} J_{l}^T") for l, k in enumerate(Ks, 1)]
        c, Nb = self.weights, self.null_basis
        V = [c[l] * E[l] for l in range(self.depth)]
        k = Nb.shape[1]
        if k:
            A = np.zeros((k * n, k * n))
            B = np.zeros((k * n, n))
            for l in range(self.depth):
                A += np.kron(np.outer(Nb[l], Nb[l]), E[l])
                B -= np.kron(Nb[l][:, None] * c[l], E[l])
            Z = scipy.linalg.solve(A, B, assume_a="pos").reshape(k, n, n)
            for l in range(self.depth):
                V[l] = V[l] + E[l] @ np.tensordot(Nb[l], Z, axes=1)
        return V

    def _dense_dual_vectors(self, Ks):
        """General min-norm ``v = K^{-1/2} M^+ K^{1/2} (1 (x) I)`` (used when 1 is not in range(S):
        the pseudo-inverse step exists, but the rho -> 0+ limit diverges)."""
        n, L = Ks[0].shape[0], self.depth
        roots, inv_roots = [], []
        for l, k in enumerate(Ks, 1):
            spd_inverse(k, f"train layer kernel K_{l}")  # condition check
            w, Q = np.linalg.eigh((k + k.T) / 2)
            roots.append((Q * np.sqrt(w)) @ Q.T)
            inv_roots.append((Q / np.sqrt(w)) @ Q.T)
        R = scipy.linalg.block_diag(*roots)
        Ri = scipy.linalg.block_diag(*inv_roots)
        M = R @ np.kron(self.pattern, np.eye(n)) @ R
        V = Ri @ np.linalg.pinv(M, hermitian=True, rtol=RANK_RTOL) @ R @ np.kron(np.ones((L, 1)), np.eye(n))
        return [V[l * n:(l + 1) * n] for l in range(L)]

    def train_operator(self, train_kernels) -> np.ndarray:
        """``J G_S^+ J^T / N = sum_l K_l V_l`` on the training set (= alpha I iff 1 in range(S))."""
        V = self.dual_vectors(train_kernels)
        return sum(np.asarray(k, float) @ v for k, v in zip(train_kernels, V))

    def test_kernel(self, train_kernels, test_kernels, damping: float = 0.0,
                    n_samples: Optional[int] = None) -> np.ndarray:
        """``Theta_G(X', X) = J(X') (G_S + rho I)^{-1} J(X)^T / N`` (rho -> 0+ for ``damping=0``).

        ``test_kernels[l]`` = ``K_l(X', X) = J_l(X') J_l(X)^T`` (shape (N'C, NC)).  For damping,
        ``n_samples`` is N (default: rows of the train kernels, i.e. C = 1).
        """
        Ks = _check_kernels("train_kernels", train_kernels, self.depth, square=True)
        n = Ks[0].shape[0]
        Kt = _check_kernels("test_kernels", test_kernels, self.depth, square=False, ncols=n)
        if damping < 0 or not np.isfinite(damping):
            raise ValueError(f"damping={damping!r} is not allowed: expected a finite real number >= 0")
        if damping == 0:
            V = self.dual_vectors(Ks)
        else:
            V = self.damped_dual_vectors(Ks, damping, n if n_samples is None else n_samples)
        return sum(kt @ v for kt, v in zip(Kt, V))

    def naive_test_kernel(self, train_kernels, test_kernels) -> np.ndarray:
        """``sum_l c_l K_l(X',X) K_l^{-1}``: correct only for invertible S (kept to show the difference)."""
        return sum(c * kt @ spd_inverse(np.asarray(k, float), f"K_{l}")
                   for l, (c, k, kt) in enumerate(zip(self.weights, train_kernels, test_kernels), 1))

    # -- rho > 0 -------------------------------------------------------------------------------
    def damped_dual_vectors(self, Ks, damping: float, n_samples: int) -> List[np.ndarray]:
        """``((S (x) I) K + rho N I)^{-1} (1 (x) I)`` split into layer blocks (push-through form)."""
        n, L = Ks[0].shape[0], self.depth
        system = np.kron(self.pattern, np.eye(n)) @ scipy.linalg.block_diag(*Ks)
        system[np.diag_indices_from(system)] += damping * n_samples
        cond = np.linalg.cond(system)
        if not np.isfinite(cond) or cond > COND_LIMIT:
            raise ValueError(f"damped system (S (x) I) K + rho N I is singular (condition number {cond:.3g}) "
                             f"at damping={damping!r}: S is indefinite and -rho*N is an eigenvalue of (S (x) I) K")
        V = np.linalg.solve(system, np.kron(np.ones((L, 1)), np.eye(n)))
        return [V[l * n:(l + 1) * n] for l in range(L)]


def pattern_test_kernel(pattern, train_kernels, test_kernels, damping: float = 0.0,
                        n_samples: Optional[int] = None) -> np.ndarray:
    """Functional form of :meth:`PatternKernel.test_kernel`."""
    return PatternKernel.from_pattern(pattern).test_kernel(train_kernels, test_kernels, damping, n_samples)


# ---------------------------------------------------------------------------------------------
# derivations: the finite-width exactness statement and the failing product rule
# ---------------------------------------------------------------------------------------------
@cached_derivation
def naive_product_rule_counterexample() -> Derivation:
    """``(A B C)^+ != C^+ B^+ A^+`` with ``A = diag(1,2)`` (invertible), ``B = [1,1]^T``, ``C = [1]``."""
    A, B, C = sp.diag(1, 2), sp.Matrix([1, 1]), sp.Matrix([[1]])
    lhs, rhs = (A * B * C).pinv(), C.pinv() * B.pinv() * A.pinv()
    d = Derivation("The pseudo-inverse product rule fails for a singular middle factor",
                   r"(ABC)^+ \neq C^+ B^+ A^+", ["A = diag(1,2), B = (1,1)^T, C = (1)"])
    d.add_step("(ABC)^+", lhs, sp.Matrix([[sp.Rational(1, 5), sp.Rational(2, 5)]]), "ABC = (1,2)^T")
    d.add_step("C^+ B^+ A^+", rhs, sp.Matrix([[sp.Rational(1, 2), sp.Rational(1, 4)]]), "B^+ = (1/2, 1/2)")
    d.add_step("they differ", sp.Integer(int(lhs != rhs)), 1, "so the product rule cannot justify "
               "(U^T K U)^+ = U^+ K^+ (U^T)^+ unless the middle factor is invertible")
    d.conclusion = lhs - rhs
    d.check()
    return d


def _cayley_rows(n_rows: int, n_cols: int) -> sp.Matrix:
    """Rows of an exact rational orthogonal matrix (Cayley transform of a skew matrix)."""
    A = sp.Matrix(n_cols, n_cols, lambda i, j: 0 if i == j else (sp.Rational(i + 2 * j + 1, 7) if i < j
                                                                  else -sp.Rational(j + 2 * i + 1, 7)))
    Q = (sp.eye(n_cols) - A) * (sp.eye(n_cols) + A).inv()
    return Q[:n_rows, :]


@cached_derivation
def finite_width_exactness_derivation(seed: int = 0) -> Derivation:
    """``J G_S^+ J^T / N = (1^T S^+ 1) I`` exactly at finite width when every ``J_l`` has full row
    rank and ``1 in range(S)`` -- via orthonormal rows, not the (false) product rule.

    Steps: (i) ``(U^T M U)^+ = U^T M^+ U`` for ``U U^T = I`` and *singular* symmetric ``M``, exact
    rationals; (ii) the Schur-corrected dual solution of the tri-diagonal ``L = 5`` (singular) case
    with scalar layer kernels ``k_l`` (symbols) solves ``M y = w``, is orthogonal to ``null(M)``,
    gives ``alpha = 2`` on the train set, and its test kernel differs from the naive one;
    (iii) a random numeric instance: dense ``numpy.linalg.pinv`` of the primal ``G_S``.
    """
    d = Derivation(
        "Finite-width exactness of block-pattern NGD (range/null-space route)",
        r"J G_S^+ J^T/N = (\mathbf 1^T S^+ \mathbf 1)\, I \iff \mathbf 1 \in \mathrm{range}(S)",
        ["every J_l has full row rank (layer Grams K_l invertible)", "S symmetric 0/1, unit diagonal",
         "rho -> 0+ limit = pseudo-inverse, valid since grad lies in range(G_S) when 1 in range(S)"],
    )
    for step in naive_product_rule_counterexample().steps:
        d.steps.append(step)
    # (i) orthonormal-row pseudo-inverse identity with a singular middle factor
    U = _cayley_rows(2, 4)
    Mq = sp.Matrix([[2, 1], [1, sp.Rational(1, 2)]])  # det = 0: singular
    d.add_step("U U^T = I (Cayley rows)", U * U.T, sp.eye(2), "")
    d.add_step("(U^T M U)^+ = U^T M^+ U with M singular", (U.T * Mq * U).pinv(), U.T * Mq.pinv() * U,
               "Penrose conditions of X = U^T M^+ U use only U U^T = I")
    # (ii) symbolic scalar-kernel instance of the singular tri-diagonal case L = 5
    a = analyze_pattern(tridiagonal_pattern(5))
    k = sp.symbols("k1:6", positive=True)
    kt = sp.symbols("t1:6")  # test-train layer kernels k_l(x', X)
    c, nvec = a.weights, a.null_basis[:, 0]
    z = -sum(nvec[l] * c[l] / k[l] for l in range(5)) / sum(nvec[l] ** 2 / k[l] for l in range(5))
    v = sp.Matrix([(c[l] + nvec[l] * z) / k[l] for l in range(5)])
    root = sp.diag(*[sp.sqrt(x) for x in k])
    Msym = root * a.pattern * root
    y = root * v  # y = K^{1/2} v
    w = root * sp.ones(5, 1)
    d.add_step("M y = K^{1/2} 1 (Schur-corrected y solves the system)", sp.simplify(Msym * y - w), sp.zeros(5, 1),
               "S (c + n z) = S c = 1")
    d.add_step("y orthogonal to null(M) = K^{-1/2} n (so y = M^+ w)",
               sp.simplify((root.inv() * nvec).T * y)[0, 0], 0, "z solves the Schur equation")
    d.add_step("train operator: sum_l k_l v_l = alpha", sp.simplify(sum(k[l] * v[l] for l in range(5))), 2,
               "1^T n = 0")
    naive = sum(c[l] * kt[l] / k[l] for l in range(5))
    diff = sp.simplify(sum(kt[l] * v[l] for l in range(5)) - naive)
    d.add_step("test kernel differs from sum_l c_l k_l(x') / k_l (nonzero correction)",
               sp.Integer(int(diff != 0)), 1, "the correction sum_l k_l(x') v_l - sum_l c_l k_l(x') / k_l, a rational "
               "function of the train kernels k_l and test kernels t_l, is not identically 0", display=sp.Ne(diff, 0))
    # (iii) numeric instance against a dense primal pseudo-inverse
    d.add_step("dense primal check, random J_l, T at L = 5", "J G^+ J^T / N", "2 I",
               "numpy.linalg.pinv of the P x P matrix", checker=lambda: _dense_check(seed) < 1e-9)
    d.conclusion = a.alpha
    d.check()
    return d


def _dense_check(seed: int) -> float:
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))  # None would be unseeded
    n, widths = 3, [5, 4, 6, 5, 4]
    Js = [rng.standard_normal((n, p)) for p in widths]
    D = scipy.linalg.block_diag(*Js)
    S = np.array(tridiagonal_pattern(5).tolist(), dtype=float)
    G = D.T @ np.kron(S, np.eye(n)) @ D / n
    J = np.hstack(Js)
    op = J @ np.linalg.pinv(G, hermitian=True, rtol=1e-12) @ J.T / n
    return float(np.abs(op - 2 * np.eye(n)).max())
