"""K-FAC NGD from its definition: isotropy constant, conditions, test kernel.

Layer ``l``: ``J_l`` row ``(n, c)`` = ``delta_{l,n,c} (x) z_{l,n}``; Kronecker factors
``B_l = Delta_l^T Delta_l / N`` (``Delta_l``: NC x M_l) and ``A_{l-1} = Z_l^T Z_l / N``
(``Z_l``: N x (M_{l-1} + bias)), ``G = blockdiag(B_l (x) A_{l-1})`` and ``(B (x) A)^+ = B^+ (x) A^+``.
By the mixed product rule ``(d (x) z)^T (B^+ (x) A^+) (d' (x) z') = (d^T B^+ d')(z^T A^+ z')``:

    ``J_l G_ll^+ J_l^T / N = N * P_Delta o (P_Z (x) 1_C 1_C^T)``,

with ``P_Delta = Delta (Delta^T Delta)^+ Delta^T`` and ``P_Z = Z (Z^T Z)^+ Z^T`` projections.
Hidden layer (``Delta_l`` rank NC, ``Z_l`` rank N): ``N I``.  Output layer: ``Delta_L = 1_N (x) I_C``
so ``P_Delta = (1 1^T / N) (x) I_C`` and the contribution is ``P_Z (x) I_C = I``.  Hence
``alpha = N (L - 1) + 1`` (M_0 + bias >= N).  With ``M_0 < N`` and no first-layer bias the first
layer gives ``N diag(P_Z)``: isotropic iff the leverage scores are equal, which (unit rows,
``X^T X = (N/M_0) I``: Forster / radial isotropic position) makes them ``M_0/N``: contribution ``M_0``.

>>> kfac_alpha(3, 100, 784)
201
>>> kfac_alpha(3, 100, 64, forster=True)
165
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.non_isotropic import cached_derivation, IsotropyResult, NotIsotropic
from theory.validation import check_matrix, check_positive_int, check_signals
from theory.tolerances import RANK_RTOL

__all__ = [
    "kfac_isotropy", "kfac_alpha", "kfac_derivation", "kfac_layer_operator", "kfac_layer_operator_dense",
    "kfac_test_kernel", "kfac_test_kernel_from_analytic", "factor_regression", "projection",
    "authors_kfac_constant", "authors_kfac_consequence", "RANK_CONDITION", "DRAW_RANK_CONDITION"
]


# ---------------------------------------------------------------------------------------------
# numeric constructions (finite width, exact identities)
# ---------------------------------------------------------------------------------------------
def projection(A: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """Orthogonal projection onto the column space of ``A`` (``A A^+``), via SVD with a rank cut.

    >>> np.round(projection(np.array([[1.0], [1.0]])), 12).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    U, s, _ = np.linalg.svd(check_matrix("A", A), full_matrices=False)
    r = int(np.sum(s > rtol * s[0])) if s.size and s[0] > 0 else 0
    return U[:, :r] @ U[:, :r].T


def kfac_layer_operator(Delta: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``N * P_Delta o (P_Z (x) 1 1^T)``: the layer's K-FAC function-space block (NC x NC).

    ``Delta``: (N, C, M_l) backward signals (or (N, M_l) for C = 1); ``Z``: (N, m) layer inputs.

    >>> rng = np.random.default_rng(0)
    >>> op = kfac_layer_operator(rng.standard_normal((3, 5)), rng.standard_normal((3, 4)))  # hidden layer
    >>> bool(np.allclose(op, 3 * np.eye(3)))
    True
    """
    Z = check_matrix("Z", Z)
    Delta = check_signals("Delta", Delta, n_samples=Z.shape[0])
    N, C, _ = Delta.shape
    P_delta = projection(Delta.reshape(N * C, -1))
    return N * P_delta * np.kron(projection(Z), np.ones((C, C)))


def kfac_layer_operator_dense(Delta: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Reference: ``J_l (B_l (x) A_{l-1})^+ J_l^T / N`` with explicit Kronecker factors (small sizes)."""
    Z = check_matrix("Z", Z)
    Delta = check_signals("Delta", Delta, n_samples=Z.shape[0])
    N, C, M = Delta.shape
    D2 = Delta.reshape(N * C, M)
    Jl = np.einsum("ni,nj->nij", D2, np.repeat(Z, C, axis=0)).reshape(N * C, -1)  # kron(delta, z) rows
    B, A = D2.T @ D2 / N, Z.T @ Z / N
    G = np.kron(np.linalg.pinv(B, hermitian=True), np.linalg.pinv(A, hermitian=True))
    return Jl @ G @ Jl.T / N


def factor_regression(gram_test: np.ndarray, gram_train: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """``K(x', X) K(X, X)^+`` (pseudo-inverse with relative eigenvalue cut ``rtol``).

    >>> factor_regression(np.array([[2.0, 0.0]]), np.diag([4.0, 1.0])).tolist()
    [[0.5, 0.0]]
    """
    w, V = np.linalg.eigh((gram_train + gram_train.T) / 2)
    keep = w > rtol * max(w[-1], 0.0)
    if not np.any(keep):
        raise ValueError("factor Gram is zero: no direction to regress on")
    return (gram_test @ V[:, keep] / w[keep]) @ V[:, keep].T


def kfac_test_kernel(nngp_train: Sequence[np.ndarray], backward_train: Sequence[np.ndarray],
                     nngp_test: Sequence[np.ndarray], backward_test: Sequence[np.ndarray]) -> np.ndarray:
    """``Theta_G(x', X) = N sum_l [B_l(x',X) B_l^+] o [Sigma^(l)(x',X) Sigma^(l)+]`` (C = 1).

    With ``B_L = 1 1^T`` the last term is ``Sigma^(L)(x',X) Sigma^(L)^{-1}`` (weight 1); for an
    invertible ``B_l`` the term is the Hadamard product of the two factor regressions times N.
    Works for finite-width Grams (``Delta Delta^T``, ``Z Z^T``: then it is exactly
    ``J(x') G^+ J^T / N``) and for the analytic kernels (``.nngp_layers``, ``.backward``).
    Rank-deficient factors (e.g. layer 1 with M_0 < N in Forster position) use the pseudo-inverse.
    """
    L = len(nngp_train)
    if not (len(backward_train) == len(nngp_test) == len(backward_test) == L):
        raise ValueError("nngp_train, backward_train, nngp_test, backward_test must all have L entries")
    N = np.asarray(nngp_train[0]).shape[0]
    out = 0.0
    for l in range(L):
        regress_b = factor_regression(np.asarray(backward_test[l], float), np.asarray(backward_train[l], float))
        regress_z = factor_regression(np.asarray(nngp_test[l], float), np.asarray(nngp_train[l], float))
        out = out + N * regress_b * regress_z
    return out


def kfac_test_kernel_from_analytic(train, test) -> np.ndarray:
    """Same, from ``theory.kernels.analytic_kernels(X)`` (train) and ``analytic_kernels(X_test, X)``."""
    return kfac_test_kernel(train.nngp_layers, train.backward, test.nngp_layers, test.backward)


# ---------------------------------------------------------------------------------------------
# symbolic results
# ---------------------------------------------------------------------------------------------
def _ge(a, b):
    """``a >= b`` as True/False when decidable, else None (symbolic)."""
    rel = sp.sympify(a) - sp.sympify(b)
    if rel.is_nonnegative:
        return True
    if rel.is_negative:
        return False
    return None


@cached_derivation
def kfac_derivation(seed: int = 0) -> Derivation:
    """The K-FAC constant from the definition, with checked steps (symbolic and exact-rational)."""
    Nn, L, M0 = sp.symbols("N L M_0", positive=True, integer=True)
    d = Derivation("K-FAC from its definition: alpha = N(L-1) + 1",
                   r"J G_{KFAC}^+ J^T/N = \Big(\sum_{l<L} N + 1\Big) I = (N(L-1)+1)\,I",
                   ["rank Delta_l = N C for hidden layers (needs M_l >= N C; relu can fail it at any width)",
                    "rank Z_l = N (needs M_{l-1} + bias >= N)", "pseudo-inverse of each factor (rho -> 0+)"])
    # mixed product rule on generic symbols
    b = sp.Matrix(2, 2, sp.symbols("b11 b12 b21 b22"))
    a = sp.Matrix(2, 2, sp.symbols("a11 a12 a21 a22"))
    dv, dw = sp.Matrix(sp.symbols("d1 d2")), sp.Matrix(sp.symbols("e1 e2"))
    zv, zw = sp.Matrix(sp.symbols("z1 z2")), sp.Matrix(sp.symbols("w1 w2"))
    kron = sp.kronecker_product
    d.add_step("mixed product: (d (x) z)^T (B (x) A) (d' (x) z') = (d^T B d')(z^T A z')",
               (kron(dv, zv).T * kron(b, a) * kron(dw, zw))[0, 0], (dv.T * b * dw)[0, 0] * (zv.T * a * zw)[0, 0],
               "so J_l (B^+ (x) A^+) J_l^T is a Hadamard product of Gram forms")
    rng = np.random.default_rng(check_positive_int("seed", seed, minimum=0))  # None would be unseeded
    Delta, Z = rng.standard_normal((4, 2, 11)), rng.standard_normal((4, 6))
    d.add_step("J_l (B (x) A)^+ J_l^T / N = N P_Delta o (P_Z (x) 11^T)", r"J_l (B \otimes A)^{+} J_l^\top / N",
               r"N P_\Delta \circ (P_Z \otimes \mathbf 1 \mathbf 1^\top)",
               "B^+ = N (Delta^T Delta)^+, A^+ = N (Z^T Z)^+; random N=4, C=2 instance",
               checker=lambda: np.abs(kfac_layer_operator_dense(Delta, Z) - kfac_layer_operator(Delta, Z)).max() < 1e-9)
    d.add_step("hidden layer: full-rank factors give N I", r"N P_\Delta \circ P_Z", "N I",
               "both projections are I; random instance M_l = 11 >= NC = 8, m = 6 >= N = 4",
               checker=lambda: np.abs(kfac_layer_operator(Delta, Z) - 4 * np.eye(8)).max() < 1e-9)
    # output layer, exact rationals: N = 3, C = 2
    n3, C = 3, 2
    Dl = kron(sp.ones(n3, 1), sp.eye(C))
    P_delta = Dl * (Dl.T * Dl).inv() * Dl.T
    d.add_step("output layer: P_Delta = (11^T/N) (x) I_C", P_delta, kron(sp.ones(n3, n3) / n3, sp.eye(C)),
               "Delta_L = 1_N (x) I_C since df_c/du_{L,c'} = [c = c']")
    PZ = sp.Matrix(n3, n3, sp.symbols(f"p0:{n3 * n3}"))
    d.add_step("output layer: N P_Delta o (P_Z (x) 11^T) = P_Z (x) I_C",
               (n3 * P_delta).multiply_elementwise(kron(PZ, sp.ones(C, C))), kron(PZ, sp.eye(C)),
               "= I when Z_L has full row rank: the output layer contributes 1")
    l_idx = sp.Symbol("l", integer=True, positive=True)
    d.add_step("sum over layers", sp.summation(Nn, (l_idx, 1, L - 1)) + 1, Nn * (L - 1) + 1,
               "L-1 hidden layers contribute N each, the output layer 1")
    X3 = sp.Matrix([[1, 0], [-sp.Rational(1, 2), sp.sqrt(3) / 2], [-sp.Rational(1, 2), -sp.sqrt(3) / 2]])
    d.add_step("Forster position (N=3 unit vectors in R^2 at 120 degrees): X^T X = (N/M_0) I",
               X3.T * X3, sp.Rational(3, 2) * sp.eye(2), "radial isotropic position")
    PZ3 = X3 * (X3.T * X3).inv() * X3.T
    d.add_step("leverage scores diag(P_Z) all equal M_0/N", sp.Matrix([PZ3[i, i] for i in range(3)]),
               sp.Matrix([sp.Rational(2, 3)] * 3), "x_n^T (N/M_0)^{-1} x_n = M_0/N for unit rows")
    d.add_step("Forster first layer: N diag(P_Z) = M_0 I", 3 * sp.diag(*[PZ3[i, i] for i in range(3)]), 2 * sp.eye(3),
               "P_Delta = I, so the layer block is N diag(P_Z) = M_0 I (off-diagonals of P_Z are killed)")
    d.conclusion = Nn * (L - 1) + 1
    d.check()
    return d


#: The rank condition of the finite-width identity, as numerics and the claims name it.
RANK_CONDITION = "rank Delta_l = N C and rank Z_l = N for every hidden layer"

#: Why theory states it but cannot decide it (the per-draw check lives in numerics).
DRAW_RANK_CONDITION = (
    f"{RANK_CONDITION}, and rank Z_L = N, on the drawn network and inputs (checked per draw by "
    "numerics: KFACApproximation.diagnostics['failed_assumption']).  The width bounds are necessary, not "
    "sufficient: for smooth activations and distinct inputs they suffice generically, but for relu a 0/1 "
    "activation pattern times W_{l+1} is rank-deficient with positive probability at any width (two inputs "
    "with the same pattern on a layer; measured 11 of 200 draws at N = 10, widths [12, 30, 30, 30, 30, 1]). "
    "An invertible layer Gram J_l J_l^T is not enough.")


def kfac_isotropy(depth, n_samples, input_dim=None, widths=None, n_outputs=1, forster=False,
                  bias=False) -> IsotropyResult:
    """alpha for standard K-FAC (pinv factors) with its conditions; raises :class:`NotIsotropic`.

    Theory decides the *dimension* conditions (``M_l >= N C`` for hidden layers, ``M_0 + bias >= N``
    or Forster inputs) with the same wording as the numerics diagnostics
    (:func:`numerics.approximations.kfac.diagnose_backward_rank` says ``assumption M_l >= N C``);
    the rank of ``Delta_l`` and ``Z_l`` on a particular draw is a condition it states
    (:data:`DRAW_RANK_CONDITION`) but cannot check: a relu draw that passes every dimension check can
    still fail it, and then only the numerics diagnostics name the failure (the value returned here
    is alpha where the ranks hold).

    ``alpha = r_1 + N (L - 2) + 1`` with ``r_1`` the first layer's contribution: ``N`` when
    ``M_0 + bias >= N``; ``M_0 + bias`` (the rank of Z_1) with Forster inputs when ``M_0 + bias < N``.
    ``L = 1``: only the output layer, alpha = 1 (needs ``M_0 + bias >= N``).
    """
    L, N, C = sp.sympify(depth), sp.sympify(n_samples), sp.sympify(n_outputs)
    m1 = None if input_dim is None else sp.sympify(input_dim) + (1 if bias else 0)
    conditions = ["M_l >= N C for every hidden layer l (dimension bound of rank Delta_l = N C)",
                  "M_{l-1} + bias >= N for l >= 2 (dimension bound of rank Z_l = N)",
                  DRAW_RANK_CONDITION,
                  "pseudo-inverse of each Kronecker factor (rho -> 0+)"]
    notes = []
    d = kfac_derivation()
    if widths is not None:
        ws = [sp.sympify(w) for w in widths]
        if len(ws) >= 2:
            for l in range(1, len(ws) - 1):
                if _ge(ws[l], N * C) is False:
                    raise NotIsotropic(
                        f"K-FAC: hidden width M_{l} = {ws[l]} < N C = {N * C}: rank(Delta_{l}) <= M_{l} < N C, so "
                        f"the backward factor projection P_Delta of layer {l} is not I and N P_Delta o P_Z is not "
                        f"N I",
                        f"M_{l} >= N C", d)
                if l >= 1 and _ge(ws[l] + (1 if bias else 0), N) is False:
                    raise NotIsotropic(
                        f"K-FAC: layer {l + 1} input width M_{l} + bias = {ws[l] + (1 if bias else 0)} < N = {N}: "
                        f"the input projection P_Z is not I", f"M_{l} + bias >= N", d)
    if m1 is None:
        first = N
        conditions.insert(0, "M_0 + bias >= N (input Gram X X^T invertible)")
    else:
        full = _ge(m1, N)
        if full is True:
            first = N
        elif full is False and not forster:
            raise NotIsotropic(
                f"K-FAC with M_0 + bias = {m1} < N = {N} and inputs not in radial isotropic position: the first "
                f"layer contributes N diag(P_Z) whose entries are N times the leverage scores "
                f"z_n^T (Z^T Z)^+ z_n; they are not constant, so the operator is not alpha I "
                f"(apply the Forster transform: forster=True)", "M_0 >= N or Forster inputs", d)
        elif full is False:
            first = m1
            conditions.insert(0, ("augmented inputs [sigma_w x / sqrt(M_0); sigma_b] in radial isotropic position "
                                  "(Forster transform of the augmented rows, not of x alone)") if bias else
                              "inputs in radial isotropic position: ||x_n|| = 1, X^T X = (N/M_0) I (Forster)")
            notes.append(f"first layer contributes rank(Z_1) = {m1} instead of N")
        else:  # symbolic: both cases in one expression
            first = sp.Min(m1, N) if forster else N
            conditions.insert(0, "M_0 + bias >= N, or Forster inputs (then the first layer gives min(M_0 + bias, N))"
                              if forster else "M_0 + bias >= N")
    if L == 1:
        if m1 is not None and _ge(m1, N) is False:
            raise NotIsotropic(f"K-FAC with L = 1 and M_0 + bias = {m1} < N: the only block is P_Z (x) I_C, a "
                               f"projection of rank {m1} < N (Forster makes its diagonal constant, not its "
                               f"off-diagonal zero)", "M_0 + bias >= N", d)
        value = sp.Integer(1)
    else:
        value = sp.expand(first + N * (L - 2) + 1)
    return IsotropyResult("kfac", value, conditions, d, True, notes)


def kfac_alpha(depth, n_samples, input_dim=None, **kwargs) -> sp.Expr:
    """``kfac_isotropy(...).value``; e.g. ``kfac_alpha(L, N) = N (L-1) + 1``."""
    return kfac_isotropy(depth, n_samples, input_dim, **kwargs).value


def authors_kfac_constant(depth, n_samples) -> sp.Expr:
    """The authors' released code's ``alpha = N L`` (``eta = 1/(N L)``): NOT derived from the
    definition (it sets the last layer's backward factor regression to ``1 1^T`` instead of
    ``1 1^T / N``, weighting the output layer by N).  See :func:`authors_kfac_consequence`."""
    return sp.sympify(n_samples) * sp.sympify(depth)


def authors_kfac_consequence(depth=None, n_samples=None) -> Derivation:
    """With ``eta = 1/(N L)`` and the true ``alpha = N(L-1)+1``, the one-step residual factor is
    ``1 - (N(L-1)+1)/(N L) = (N-1)/(N L)`` -- not 0, so no one-step convergence."""
    N = sp.Symbol("N", positive=True, integer=True) if n_samples is None else sp.sympify(n_samples)
    L = sp.Symbol("L", positive=True, integer=True) if depth is None else sp.sympify(depth)
    alpha_true = N * (L - 1) + 1
    factor = 1 - alpha_true / authors_kfac_constant(L, N)
    d = Derivation("Consequence of the authors' K-FAC constant N L",
                   r"1 - \eta\,\alpha = 1 - \frac{N(L-1)+1}{NL} = \frac{N-1}{NL}",
                   ["eta = 1/(N L) (authors' code)", "alpha = N(L-1)+1 (definition)"])
    d.add_step("residual factor", factor, (N - 1) / (N * L), "r_1 = (1 - eta alpha) r_0")
    k = sp.Symbol("k", positive=True, integer=True)
    positive = sp.simplify(((N - 1) / (N * L)).subs(N, k + 1) if isinstance(N, sp.Symbol) else (N - 1) / (N * L))
    d.add_step("positive for N >= 2", sp.Integer(int(bool(positive.is_positive))), 1,
               "so one-step convergence fails; the factor tends to 1/L for large N")
    d.conclusion = sp.simplify(factor)
    d.check()
    return d
