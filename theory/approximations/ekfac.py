r"""EKFAC, eigenvalue-corrected K-FAC (George et al. 2018, arXiv:1806.03884): derived here, NOT isotropic
in general -- not even at infinite width.

Definition (MSE / Gauss-Newton Fisher, layer ``l``, Jacobian rows ``kron(delta_{n,c}, z_n)``): K-FAC's
factors ``A = Z^T Z / N``, ``B = Delta^T Delta / N`` with eigenbases ``U_A``, ``U_B``, and

    ``G_l = (U_B (x) U_A) diag(s) (U_B (x) U_A)^T``,  ``s_ji = (1/N) sum_{n,c} (U_B^T delta_{n,c})_j^2 (U_A^T z_n)_i^2``.

**The layer block is a Hadamard frame.**  Thin SVDs ``Z = W T U_A^T`` and ``Delta = V S U_B^T`` (``W``:
``N x r_A``, ``V``: ``N C x r_B``, orthonormal columns) make the rotated Jacobian
``J_l (U_B (x) U_A)`` the matrix with entries ``V[(n,c), j] S_j W[n, i] T_i``, hence
``s_ji = S_j^2 T_i^2 h_ji / N`` with ``h_ji = ||v_j o (w_i (x) 1_C)||^2``, and (``rho -> 0+``)

    ``Theta_l = J_l G_l^+ J_l^T / N = sum_{(j,i): h_ji > 0} u_ji u_ji^T``,  ``u_ji = v_j o (w_i (x) 1_C) / sqrt(h_ji)``:

a sum of rank-one orthogonal projections, the scales ``S``, ``T`` cancel.  So ``trace Theta_l`` is the
number of pairs with ``h_ji > 0`` (``N^2 C`` for a full-rank hidden layer, like K-FAC's ``N I``), and the
mean diagonal of ``Theta_G`` is K-FAC's ``N (L - 1) + 1`` -- but ``Theta_l`` is ``N I`` only when this
weighted frame is tight.  K-FAC's block is ``N (W W^T) o (V V^T)`` (``h`` replaced by its mean ``1/N``):
EKFAC equals K-FAC exactly when ``h_ji = 1/N`` for all pairs, e.g. when one eigenbasis is **flat**
(``W[n, i]^2 = 1/N``, or ``sum_c V[(n,c), j]^2 = 1/N``, for every ``n``).

**Where it is isotropic** (``alpha = N (L - 1) + 1``, K-FAC's value; the ``Setting`` says N, L, C, the
activation and the widths, not the inputs, so input conditions are stated, not decided):

* ``L = 1`` and every output layer: ``Delta_L`` rows are ``e_c``, its eigenbasis is flat (exact, any width);
* ``N = 1`` (``W = [1]``, exact);
* ``N = 2``, in the infinite-width limit: a ``2 x 2`` Gram with equal diagonal entries has the flat
  eigenvectors ``(1, +-1)/sqrt 2``.  The backward kernel ``B_l = prod_{k>l} dotSigma^(k)`` has a constant
  diagonal for positively homogeneous activations (relu, leaky relu: ``dotSigma(x, x) = sigma_w2
  E[phi'(u)^2]`` does not depend on ``||x||``), so relu needs only distinct inputs; other activations need
  equal-norm inputs (then every ``Sigma^(l)`` has a constant diagonal);
* deep **linear** networks: ``delta_{n,c}`` does not depend on ``n``, so ``V`` is flat (exact, any
  width), and then both EKFAC and K-FAC give ``P_Z (x) I_C = I`` per layer: ``alpha = L`` (the K-FAC
  formula ``N (L - 1) + 1`` needs ``rank Delta_l = N C``, which a linear net never has).

Otherwise (``N >= 3``, nonlinear, ``L >= 2``) the limiting kernels' eigenvectors are not flat and EKFAC
is not isotropic even as ``M -> infinity``: :func:`ekfac_isotropy` raises :class:`NotIsotropic`.  The
infinite-width operator is the same frame built from the eigenvectors of the analytic kernels
(``W_l`` from ``Sigma^(l)`` = ``analytic_kernels(...).nngp_layers[l-1]``, the limit of ``Z_l Z_l^T``;
``V_l`` from ``B_l`` = ``.backward[l-1]``, the limit of ``Delta_l Delta_l^T`` for C = 1), and the test
kernel (:func:`ekfac_test_kernel`) uses the same weights ``1/h_ji`` with the test rows' regression
coordinates ``k(x', X) K^+ W`` and ``b(x', X) B^+ V``.  The limit exists where the kernels' eigenvalues
are simple (:func:`limit_eigengaps`); finite-width eigenvectors then converge like ``M^-1/2 / gap``.

>>> from theory.isotropy import isotropy_constant, isotropy_result
>>> isotropy_constant("ekfac", depth=1, n_samples=10)
1
>>> isotropy_result("ekfac", depth=3, n_samples=2).exact_at_finite_width
False
>>> isotropy_constant("ekfac", depth=3, n_samples=8)
Traceback (most recent call last):
...
theory.non_isotropic.NotIsotropic: EKFAC with N = 8 >= 3: ...
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import sympy as sp

from theory.activations import get_activation
from theory.assumptions import Assumption
from theory.derivation import Derivation
from theory.non_isotropic import IsotropyResult, NotIsotropic, cached_derivation
from theory.registry import register_theory
from theory.tolerances import CHUNK_ENTRIES, RANK_RTOL
from theory.validation import check_matrix, check_signals

from ._layerwise import depth_of

__all__ = [
    "EKFAC_FLAT", "FAILED_ASSUMPTION", "FLAT_TOL", "flatness", "hadamard_weights", "frame_contract",
    "frame_operator", "ekfac_layer_operator", "ekfac_layer_operator_dense", "ekfac_test_kernel",
    "ekfac_test_kernel_from_analytic", "ekfac_limit_operator", "limit_eigengaps", "thin_eigenbasis",
    "ekfac_derivation", "ekfac_isotropy"
]

#: The assumption EKFAC's isotropy needs (``NotIsotropic.failed_assumption`` and the numerics flags).
FAILED_ASSUMPTION = "a flat eigenbasis of one Kronecker factor in every hidden layer (e.g. N = 2 with equal-norm inputs)"
EKFAC_FLAT = Assumption("flat Kronecker eigenbasis", FAILED_ASSUMPTION)

#: An eigenbasis counts as flat when ``max |N W_ni^2 - 1| <= FLAT_TOL``.  The exactly flat cases (N = 1,
#: output layers, linear nets, Hadamard-type Grams) come out of ``eigh`` with entries accurate to
#: ``~ eps ||K|| / gap ~ 1e-15`` (there the gap is a whole eigenvalue); 1e-8 leaves seven decades, while a
#: generic basis is off by O(1) and the N = 2 finite-width bases by O(M^-1/2) (~1e-2 at M = 4096).
FLAT_TOL = 1e-8

# ---------------------------------------------------------------------------------------------
# numeric constructions
# ---------------------------------------------------------------------------------------------
def thin_eigenbasis(K: np.ndarray, rtol: float = RANK_RTOL) -> Tuple[np.ndarray, np.ndarray]:
    """``(lam, V)``: eigenpairs of the symmetric PSD ``K`` with ``lam > rtol * max lam`` (ascending).

    >>> lam, V = thin_eigenbasis(np.ones((2, 2)))
    >>> lam.tolist(), bool(np.allclose(np.abs(V), 2 ** -0.5))
    ([2.0], True)
    """
    K = check_matrix("K", K)
    lam, V = np.linalg.eigh((K + K.T) / 2)
    top = float(lam[-1]) if lam.size else 0.0
    keep = lam > rtol * top if top > 0 else np.zeros(lam.shape, dtype=bool)
    return lam[keep], V[:, keep]


def hadamard_weights(V: np.ndarray, W: np.ndarray, n_outputs: int = 1) -> np.ndarray:
    """``h_ji = sum_{n,c} V[(n,c), j]^2 W[n, i]^2 = ||v_j o (w_i (x) 1_C)||^2`` (``r_B x r_A``), one GEMM.

    >>> hadamard_weights(np.full((4, 1), 0.5), np.eye(4)).tolist()    # a flat v: h = 1/N for every pair
    [[0.25, 0.25, 0.25, 0.25]]
    """
    n = W.shape[0]
    mass = (V * V).reshape(n, n_outputs, -1).sum(axis=1)          # (N, r_B): per-sample mass of v_j
    return mass.T @ (W * W)


def flatness(W: np.ndarray, V: np.ndarray, n_samples: int, n_outputs: int = 1) -> Tuple[float, float]:
    """``(max |N W_ni^2 - 1|, max |N sum_c V_(n,c)j^2 - 1|)``: how far each eigenbasis is from flat
    (0 = flat, then EKFAC's layer block is K-FAC's).  ``inf`` for an empty basis.

    >>> flatness(np.eye(4), np.full((4, 1), 0.5), 4)
    (3.0, 0.0)
    """
    n = n_samples
    mass = (V * V).reshape(n, n_outputs, -1).sum(axis=1) if V.size else V
    f_w = float(np.max(np.abs(n * W * W - 1.0))) if W.size else float("inf")
    f_v = float(np.max(np.abs(n * mass - 1.0))) if V.size else float("inf")
    return f_w, f_v


def _inverse_weights(h: np.ndarray, rtol: float) -> np.ndarray:
    """``1/h`` on the pairs with ``h > rtol max h`` (pseudo-inverse convention: 0 elsewhere)."""
    out = np.zeros_like(h)
    if h.size and h.max() > 0:
        keep = h > rtol * h.max()
        out[keep] = 1.0 / h[keep]
    return out


def frame_contract(P2: np.ndarray, P: np.ndarray, Q2: np.ndarray, Q: np.ndarray, w: np.ndarray,
                   n_outputs: int = 1) -> np.ndarray:
    """``T[(a,c),(n,d)] = sum_ji P2[(a,c),j] P[(n,d),j] Q2[a,i] Q[n,i] w_ji``, shape ``(N2 C, N C)``.

    Vectorised (no loop over samples or units): per chunk of rows ``a`` (at most
    :data:`theory.tolerances.CHUNK_ENTRIES` intermediate entries) one GEMM of the pairwise products
    ``Q2[a,i] Q[n,i]`` with ``w^T`` and one batched GEMM with the backward coordinates.

    >>> frame_contract(np.ones((1, 1)), np.ones((2, 1)), np.ones((1, 1)), np.ones((2, 1)), np.full((1, 1), 3.0)).tolist()
    [[3.0, 3.0]]
    """
    c = n_outputs
    n2, n = Q2.shape[0], Q.shape[0]
    rb, ra = w.shape
    P2 = P2.reshape(n2, c, rb)
    Pt = P.reshape(n, c, rb).transpose(0, 2, 1)                                   # (n, r_B, C)
    out = np.empty((n2, c, n, c))
    chunk = max(1, CHUNK_ENTRIES // max(1, n * (ra + rb + c * rb)))
    for start in range(0, n2, chunk):
        stop = min(n2, start + chunk)
        k = stop - start
        pairs = (Q2[start:stop, None, :] * Q[None, :, :]).reshape(k * n, ra)
        S = (pairs @ w.T).reshape(k, n, rb)                                       # (k, n, r_B)
        Y = (S[:, :, None, :] * P2[start:stop, None, :, :]).transpose(1, 0, 2, 3).reshape(n, k * c, rb)
        out[start:stop] = np.matmul(Y, Pt).reshape(n, k, c, c).transpose(1, 2, 0, 3)
    return out.reshape(n2 * c, n * c)


def frame_operator(V: np.ndarray, W: np.ndarray, n_outputs: int = 1, rtol: float = RANK_RTOL) -> np.ndarray:
    """``sum_ji u_ji u_ji^T``, ``u_ji = v_j o (w_i (x) 1_C) / ||.||``, over the pairs with ``h_ji > rtol max h``:
    EKFAC's ``rho -> 0+`` layer block from the eigenbases alone (``V``: ``N C x r_B``, ``W``: ``N x r_A``).

    >>> frame_operator(np.full((2, 1), 2 ** -0.5), np.eye(2)).round(12).tolist()   # output layer: P_W = I
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return frame_contract(V, V, W, W, _inverse_weights(hadamard_weights(V, W, n_outputs), rtol), n_outputs)


def ekfac_layer_operator(Delta: np.ndarray, Z: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """EKFAC's layer block ``J_l G_l^+ J_l^T / N`` as the Hadamard frame of the eigenvectors of
    ``Z Z^T`` and ``Delta Delta^T`` (``Delta``: ``(N, C, M)`` or ``(N, M)``; ``Z``: ``(N, m)``).

    >>> rng = np.random.default_rng(0)
    >>> op = ekfac_layer_operator(rng.standard_normal((3, 7)), rng.standard_normal((3, 5)))
    >>> round(float(np.trace(op)), 9), bool(np.allclose(op, 3 * np.eye(3), atol=1e-3))   # 9 pairs, not 3 I
    (9.0, False)
    """
    Z = check_matrix("Z", Z)
    Delta = check_signals("Delta", Delta, n_samples=Z.shape[0])
    N, C, _ = Delta.shape
    D = Delta.reshape(N * C, -1)
    _, V = thin_eigenbasis(D @ D.T, rtol)
    _, W = thin_eigenbasis(Z @ Z.T, rtol)
    return frame_operator(V, W, C, rtol)


def ekfac_layer_operator_dense(Delta: np.ndarray, Z: np.ndarray, rtol: float = RANK_RTOL) -> np.ndarray:
    """Reference from the definition (small sizes): explicit ``A``, ``B``, their full eigenbases, ``s`` as
    the mean squares of ``J_l (U_B (x) U_A)``, ``G_l^+ = Q diag(s^+) Q^T``, then ``J_l G_l^+ J_l^T / N``."""
    Z = check_matrix("Z", Z)
    Delta = check_signals("Delta", Delta, n_samples=Z.shape[0])
    N, C, M = Delta.shape
    D = Delta.reshape(N * C, M)
    Jl = np.einsum("ni,nj->nij", D, np.repeat(Z, C, axis=0)).reshape(N * C, -1)      # kron(delta, z) rows
    _, UB = np.linalg.eigh(D.T @ D / N)
    _, UA = np.linalg.eigh(Z.T @ Z / N)
    Q = np.kron(UB, UA)
    rot = Jl @ Q
    s = np.sum(rot ** 2, axis=0) / N
    inv = np.where(s > rtol * s.max(), 1.0 / np.where(s > 0, s, 1.0), 0.0)
    return (rot * inv) @ rot.T / N


def limit_eigengaps(kernels, rtol: float = RANK_RTOL) -> list:
    """Per layer ``(gap of Sigma^(l), gap of B_l)``: the smallest difference between consecutive kept
    eigenvalues relative to the largest (``inf`` for a single kept eigenvalue).  The infinite-width EKFAC
    operator is defined where these are positive; finite-width eigenvectors converge like ``M^-1/2/gap``."""
    out = []
    for S, B in zip(kernels.nngp_layers, kernels.backward):
        gaps = []
        for K in (S, B):
            lam, _ = thin_eigenbasis(np.asarray(K, float), rtol)
            gaps.append(float(np.min(np.diff(lam)) / lam[-1]) if lam.size > 1 else float("inf"))
        out.append(tuple(gaps))
    return out


def ekfac_test_kernel(nngp_train: Sequence[np.ndarray], backward_train: Sequence[np.ndarray],
                      nngp_test: Sequence[np.ndarray], backward_test: Sequence[np.ndarray],
                      rtol: float = RANK_RTOL) -> np.ndarray:
    """``Theta_EKFAC(x', X) = sum_l sum_ji beta_l(x')_j alpha_l(x')_i (v_j o w_i)^T / h_ji`` (C = 1, rho -> 0+),

    ``alpha_l(x') = Sigma^(l)(x', X) Sigma^(l)+ W_l``, ``beta_l(x') = B_l(x', X) B_l^+ V_l`` (the test rows'
    coordinates ``U^T z'``, ``U^T delta'`` over the singular values, which cancel against ``s``).  For
    ``x' = x_m`` they are row ``m`` of ``W``, ``V``: the training operator, the frame sum.  Works for the
    finite-width Grams (``Z Z^T``, ``Delta Delta^T``: then it is exactly ``J(x') G^+ J^T / N``) and the
    analytic kernels (``.nngp_layers``, ``.backward``).
    """
    L = len(nngp_train)
    if not (len(backward_train) == len(nngp_test) == len(backward_test) == L):
        raise ValueError("nngp_train, backward_train, nngp_test, backward_test must all have L entries")
    out = 0.0
    for l in range(L):
        lam_a, W = thin_eigenbasis(np.asarray(nngp_train[l], float), rtol)
        lam_b, V = thin_eigenbasis(np.asarray(backward_train[l], float), rtol)
        alpha = np.asarray(nngp_test[l], float) @ W / lam_a
        beta = np.asarray(backward_test[l], float) @ V / lam_b
        out = out + frame_contract(beta, V, alpha, W, _inverse_weights(hadamard_weights(V, W), rtol), 1)
    return out


def ekfac_test_kernel_from_analytic(train, test, rtol: float = RANK_RTOL) -> np.ndarray:
    """Same, from ``theory.kernels.analytic_kernels(X)`` (train) and ``analytic_kernels(X_test, X)``."""
    return ekfac_test_kernel(train.nngp_layers, train.backward, test.nngp_layers, test.backward, rtol)


def ekfac_limit_operator(kernels, rtol: float = RANK_RTOL) -> np.ndarray:
    """The infinite-width ``Theta_EKFAC`` on the training set (``N x N``, C = 1): ``sum_l`` of the frame
    of the eigenvectors of ``Sigma^(l)`` and ``B_l`` (``kernels = analytic_kernels(X, ...)``)."""
    out = 0.0
    for S, B in zip(kernels.nngp_layers, kernels.backward):
        _, W = thin_eigenbasis(np.asarray(S, float), rtol)
        _, V = thin_eigenbasis(np.asarray(B, float), rtol)
        out = out + frame_operator(V, W, 1, rtol)
    return out


# ---------------------------------------------------------------------------------------------
# the derivation (exact rationals and symbols)
# ---------------------------------------------------------------------------------------------
def _cayley(entries, n: int) -> sp.Matrix:
    """A rational orthogonal matrix ``(I - K)(I + K)^{-1}`` from the strictly-upper entries of a skew ``K``."""
    K = sp.zeros(n, n)
    it = iter(entries)
    for i in range(n):
        for j in range(i + 1, n):
            K[i, j] = sp.Rational(next(it))
            K[j, i] = -K[i, j]
    return (sp.eye(n) - K) * (sp.eye(n) + K).inv()


def _frame_sym(V: sp.Matrix, W: sp.Matrix) -> sp.Matrix:
    """``sum_ji (v_j o w_i)(v_j o w_i)^T / ||v_j o w_i||^2`` exactly (C = 1, pairs with h > 0)."""
    n = W.rows
    out = sp.zeros(n, n)
    for j in range(V.cols):
        for i in range(W.cols):
            u = V[:, j].multiply_elementwise(W[:, i])
            h = (u.T * u)[0, 0]
            if sp.simplify(h) != 0:
                out += u * u.T / h
    return out


def _nonflat_limit_error() -> float:
    """Isotropy error of the infinite-width EKFAC operator for fixed inputs: N = 3 unit vectors in R^3,
    relu, L = 2 (the analytic kernels of :mod:`theory.kernels`)."""
    from theory.kernels import analytic_kernels

    X = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]])
    T = ekfac_limit_operator(analytic_kernels(X, depth=2, activation="relu"))
    a = float(np.mean(np.diag(T)))
    return float(np.linalg.norm(T - a * np.eye(3)) / (a * np.sqrt(3)))


@cached_derivation
def ekfac_derivation() -> Derivation:
    """EKFAC's function-space operator from its definition, with checked steps (exact rationals, symbols)."""
    d = Derivation(
        "EKFAC from its definition: a Hadamard frame, isotropic only for flat eigenbases",
        r"J_l G_l^{+} J_l^\top/N = \sum_{j,i} \frac{(v_j\circ w_i)(v_j\circ w_i)^\top}{\|v_j\circ w_i\|^2}"
        r"\ \neq\ N I \text{ in general}",
        ["G_l = (U_B (x) U_A) diag(s) (U_B (x) U_A)^T with s the second moments of the rotated Jacobian rows "
         "(George et al. 2018, arXiv:1806.03884)", "pseudo-inverse (rho -> 0+)", "MSE / Gauss-Newton Fisher"])
    # ---- a generic exact instance: N = 3, C = 1, m = 4 inputs, M = 5 units, rational orthogonal bases
    N = 3
    W = _cayley(["1/2", "1/3", "-1/5"], 3)
    V = _cayley(["2/7", "-1/4", "3/5"], 3)
    UA = _cayley(["1/3", "-1/2", "1/4", "2/5", "-1/6", "1/7"], 4)
    UB = _cayley(["1/2", "-1/3", "1/5", "1/4", "-2/7", "1/6", "1/3", "-1/8", "2/9", "1/10"], 5)
    t, sig = [sp.Integer(1), sp.Integer(2), sp.Integer(3)], [sp.Integer(2), sp.Integer(3), sp.Integer(5)]
    Z = W * sp.diag(*t) * UA[:, :3].T                                    # thin SVD Z = W T U_A^T
    D = V * sp.diag(*sig) * UB[:, :3].T                                  # thin SVD Delta = V S U_B^T
    J = sp.Matrix([list(sp.kronecker_product(D[n, :], Z[n, :])) for n in range(N)])   # rows kron(delta, z)
    A, B = Z.T * Z / N, D.T * D / N
    d.add_step("U_A, U_B are eigenbases of A = Z^T Z/N, B = Delta^T Delta/N (thin SVDs, null vectors appended)",
               sp.diag(A * UA, B * UB),
               sp.diag(UA * sp.diag(*[x ** 2 / N for x in t], 0), UB * sp.diag(*[x ** 2 / N for x in sig], 0, 0)),
               "Z = W T U_A^T, Delta = V S U_B^T with W, V, U_A, U_B rational orthogonal (Cayley transforms): an "
               "exact generic instance")
    Q = sp.kronecker_product(UB, UA)
    rot = J * Q
    s = [sum(rot[n, k] ** 2 for n in range(N)) / N for k in range(rot.cols)]
    h = sp.Matrix(3, 3, lambda j, i: sum(V[n, j] ** 2 * W[n, i] ** 2 for n in range(N)))
    s_closed = [sig[k // 4] ** 2 * t[k % 4] ** 2 * h[k // 4, k % 4] / N if (k // 4 < 3 and k % 4 < 3) else 0
                for k in range(20)]
    d.add_step("eigenvalue correction: s_ji = S_j^2 T_i^2 ||v_j o w_i||^2 / N (0 off the ranges)",
               sp.Matrix(s), sp.Matrix(s_closed),
               "the rotated Jacobian J_l (U_B (x) U_A) has entries V_nj S_j W_ni T_i")
    b_a = [sig[k // 4] ** 2 * t[k % 4] ** 2 / N ** 2 if (k // 4 < 3 and k % 4 < 3) else 0 for k in range(20)]
    d.add_step("s_ji = N b_j a_i h_ji: K-FAC's eigenvalue b_j a_i reweighted by N h_ji",
               sp.Matrix(s), sp.Matrix([N * b_a[k] * h[k // 4, k % 4] if b_a[k] else 0 for k in range(20)]),
               "b_j = S_j^2/N, a_i = T_i^2/N; so EKFAC = K-FAC iff h_ji = 1/N on every pair")
    Gplus = Q * sp.diag(*[1 / x if x != 0 else 0 for x in s]) * Q.T
    theta = J * Gplus * J.T / N
    frame = _frame_sym(V, W)
    d.add_step("Theta_l = J_l G_l^+ J_l^T / N = sum_ji u_ji u_ji^T, u_ji = (v_j o w_i)/||v_j o w_i||",
               theta, frame, "the scales S, T cancel: only the eigenvectors W, V enter")
    d.add_step("trace identity: trace Theta_l = #{(j, i): v_j o w_i != 0} = r_A r_B", theta.trace(),
               sp.Integer(9), "each u_ji u_ji^T is a unit-trace projection; 3 x 3 pairs here")
    dev = sp.nsimplify(((theta - theta.trace() / N * sp.eye(N)).norm()) ** 2)
    d.add_step("not isotropic here: ||Theta_l - (trace/N) I||_F^2 > 0", dev, dev,
               "a generic Hadamard frame is not tight", checker=lambda: bool(dev > 0))
    kfac = J * sp.kronecker_product(B.pinv(), A.pinv()) * J.T / N
    d.add_step("K-FAC on the same instance: J_l (B^+ (x) A^+) J_l^T / N = N I", kfac, N * sp.eye(N),
               "K-FAC's block N (V V^T) o (W W^T): every h_ji replaced by its mean 1/N (full-rank factors)")
    # ---- test rows: the same weights with the test rows' coordinates
    zt = sp.Matrix([[sp.Rational(1, 2), -1, sp.Rational(2, 3), 1]])
    dt = sp.Matrix([[1, sp.Rational(-1, 3), 2, sp.Rational(1, 2), -1]])
    Jt = sp.kronecker_product(dt, zt)
    al = (zt * Z.T * (Z * Z.T).inv() * W)                                # alpha(x') = k_Z(x', X) K_Z^{-1} W
    be = (dt * D.T * (D * D.T).inv() * V)                                # beta(x')  = k_B(x', X) K_B^{-1} V
    cross = sp.zeros(1, N)
    for j in range(3):
        for i in range(3):
            u = V[:, j].multiply_elementwise(W[:, i])
            cross += be[0, j] * al[0, i] * u.T / h[j, i]
    d.add_step("test kernel: J_l(x') G_l^+ J_l^T / N = sum_ji beta_j(x') alpha_i(x') (v_j o w_i)^T / h_ji",
               Jt * Gplus * J.T / N, cross,
               "alpha = k_Z(x',X) K_Z^+ W, beta = k_B(x',X) K_B^+ V: the analytic kernels give the limit")
    # ---- flat eigenbases: EKFAC = K-FAC
    H4 = sp.Matrix([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    V4 = _cayley(["1/2", "-1/3", "1/5", "2/7", "-1/4", "3/8"], 4)
    d.add_step("flat W (|W_ni| = 1/sqrt N; Hadamard, N = 4) with a generic V: the frame is N I",
               _frame_sym(V4, H4), 4 * sp.eye(4), "h_ji = sum_n V_nj^2 / N = 1/N for every pair: EKFAC = K-FAC")
    th = sp.Symbol("theta", real=True)
    V2 = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])
    H2 = sp.Matrix([[1, 1], [1, -1]]) / sp.sqrt(2)
    d.add_step("N = 2: flat W = (1, +-1)/sqrt 2 with any rotation V: the frame is 2 I",
               _frame_sym(V2, H2).applyfunc(sp.trigsimp), 2 * sp.eye(2), "symbolic angle theta")
    a_, b_ = sp.symbols("a b", real=True)
    K2 = sp.Matrix([[a_, b_], [b_, a_]])
    d.add_step("N = 2: a Gram with equal diagonal entries has the flat eigenvectors (1, +-1)/sqrt 2",
               sp.Matrix.hstack(K2 * H2[:, 0] - (a_ + b_) * H2[:, 0], K2 * H2[:, 1] - (a_ - b_) * H2[:, 1]),
               sp.zeros(2, 2), "eigenvalues a +- b (simple for b != 0): equal-norm inputs give equal diagonals")
    q = sp.Symbol("q", positive=True)
    sw2 = sp.Symbol("sigma_w2", positive=True)
    from theory.dual import arccos_kernels, q11, q12, q22

    _, k0 = arccos_kernels()
    d.add_step("relu: dotSigma(x, x) = sigma_w2 E[phi'(u)^2] = sigma_w2/2 for every variance q",
               sw2 * k0.subs({q11: q, q22: q, q12: q}), sw2 / 2,
               "so relu backward Grams B_l have constant diagonals: N = 2 is flat in the limit for any inputs")
    Vout = sp.ones(3, 1) / sp.sqrt(3)
    d.add_step("output layer, C = 1: Delta_L rows are 1, V = 1/sqrt N is flat and the frame is W W^T = I",
               _frame_sym(Vout, W), sp.eye(3), "full-rank Z_L; the same as K-FAC's output term")
    C2 = 2
    DL = sp.kronecker_product(sp.ones(2, 1), sp.eye(C2))                 # rows (n, c) = e_c, N = 2
    VL, lamL = (DL * DL.T).diagonalize(normalize=True)
    VLk = sp.Matrix.hstack(*[VL[:, k] for k in range(4) if lamL[k, k] != 0]) * V2   # any basis of the eigenspace
    mass = sp.Matrix(2, VLk.cols, lambda n, j: sp.trigsimp(sum(VLk[n * C2 + c, j] ** 2 for c in range(C2))))
    d.add_step("output layer, C = 2: every orthonormal eigenbasis of Delta_L Delta_L^T = 11^T (x) I_C (eigenvalue N, "
               "multiplicity C; rotated by theta) has per-sample mass 1/N",
               mass, sp.ones(2, VLk.cols) / 2, "flat in the C-output sense: EKFAC = K-FAC = P_Z (x) I_C, whichever "
               "basis of the degenerate eigenspace is used")
    L_, N_ = sp.symbols("L N", positive=True, integer=True)
    l_ = sp.Symbol("l", positive=True, integer=True)
    d.add_step("flat eigenbasis in every hidden layer: alpha = sum_{l<L} N + 1", sp.summation(N_, (l_, 1, L_ - 1)) + 1,
               N_ * (L_ - 1) + 1, "K-FAC's alpha (hidden layers N, output layer 1)")
    err = _nonflat_limit_error()
    d.add_step("infinite width, N = 3 fixed unit inputs, relu, L = 2: the limiting EKFAC operator is not a multiple "
               "of I", r"\|\Theta_\infty - a I\|_F / (a\sqrt N)", sp.Float(err, 6),
               "eigenvectors of the analytic Sigma^(1), B_1 are not flat (theory.kernels)",
               checker=lambda: err > 1e-3)
    d.conclusion = N_ * (L_ - 1) + 1
    d.check()
    return d


def _number(x) -> Optional[int]:
    """``int(x)`` for a concrete integer (SymPy or Python), else None (symbolic)."""
    x = sp.sympify(x)
    return int(x) if x.is_Integer else None


def _test_kernel(k_train, k_cross, setting):
    """The registry's test kernel: :func:`ekfac_test_kernel_from_analytic` (C = 1)."""
    return ekfac_test_kernel_from_analytic(k_train, k_cross)


@register_theory("ekfac", label="EKFAC", citation="arXiv:1806.03884", test_kernel=_test_kernel)
def ekfac_isotropy(setting) -> IsotropyResult:
    """alpha of EKFAC where the theory proves isotropy, else :class:`NotIsotropic` (module docstring).

    Decided from the :class:`theory.registry.Setting` (depth, N, C, activation, widths, bias):

    * ``L = 1``: alpha = 1, exact (``M_0 + bias >= N``);
    * linear activation: alpha = L, exact (``M_l + bias >= N`` for l < L, ``M_l >= C``, rank X = N);
    * ``N = 1``: alpha = L (K-FAC's N(L-1)+1 at N = 1), exact;
    * ``N = 2``: alpha = 2L - 1 in the infinite-width limit (``exact_at_finite_width=False``), with the
      input condition stated (relu-type: distinct inputs; other activations: equal-norm inputs);
    * otherwise (``N >= 3`` or symbolic N, nonlinear, ``L >= 2``): :class:`NotIsotropic`.
    """
    from theory.kfac_theory import kfac_isotropy

    L = depth_of(setting)
    n_outputs = setting.widths[-1] if isinstance(setting.widths, (list, tuple)) else setting.n_outputs
    N, C = setting.n_samples, sp.sympify(n_outputs)
    b = 1 if setting.bias else 0
    act = get_activation(setting.activation)
    input_dim = setting.input_dim
    if input_dim is None and isinstance(setting.widths, (list, tuple)):
        input_dim = setting.widths[0]
    d = ekfac_derivation()
    base = ["pseudo-inverse of G (rho -> 0+)", "EKFAC eigenbases from the K-FAC factors A = Z^T Z/N, B = Delta^T Delta/N"]
    if _number(L) == 1:
        if N is not None and input_dim is not None and (sp.sympify(input_dim) + b - sp.sympify(N)).is_negative:
            raise NotIsotropic(f"EKFAC with L = 1 and M_0 + bias = {sp.sympify(input_dim) + b} < N = {N}: the only block "
                               "is P_Z (x) I_C, a projection of rank < N", "M_0 + bias >= N", d)
        return IsotropyResult("ekfac", sp.Integer(1),
                              ["M_0 + bias >= N (rank Z_1 = N)", "Delta_1 rows are e_c: a flat eigenbasis (exact)"] + base,
                              d, True, ["L = 1: only the output layer, EKFAC = K-FAC = P_Z (x) I_C"])
    if act.name == "linear":
        if isinstance(setting.widths, (list, tuple)) and N is not None:
            ws = [sp.sympify(w) for w in setting.widths]
            for l in range(0, len(ws) - 1):
                if (ws[l] + b - sp.sympify(N)).is_negative:
                    raise NotIsotropic(f"EKFAC, linear net: M_{l} + bias = {ws[l] + b} < N = {N}: Z_{l + 1} has rank < N, "
                                       f"so its block P_Z (x) I_C is not I", f"M_{l} + bias >= N", d)
                if l >= 1 and (ws[l] - C).is_negative:
                    raise NotIsotropic(f"EKFAC, linear net: M_{l} = {ws[l]} < C = {C}: the backward product has rank < C",
                                       f"M_{l} >= C", d)
        return IsotropyResult("ekfac", sp.sympify(L),
                              ["linear activation: delta_{n,c} does not depend on n, so V_l is flat (exact)",
                               "rank Z_l = N for every layer (M_{l-1} + bias >= N, linearly independent inputs)",
                               "hidden widths M_l >= C"] + base, d, True,
                              ["each layer contributes P_Z (x) I_C = I (EKFAC = K-FAC here; K-FAC's N(L-1)+1 needs "
                               "rank Delta_l = N C, which a linear net never has)"])
    if N is None:
        raise ValueError("approximation='ekfac' needs n_samples=N (isotropy depends on N)")
    n = _number(N)
    if n in (1, 2):
        res = kfac_isotropy(L, n, input_dim, setting.widths, n_outputs, False, setting.bias)
        if n == 1:
            return IsotropyResult("ekfac", res.value, ["N = 1: W = [1] is flat (exact)"] + res.conditions, d, True,
                                  ["EKFAC = K-FAC = the exact layer blocks for one sample"])
        inputs = ("distinct inputs (relu-type activation: dotSigma(x, x) = sigma_w2 E[phi'(u)^2] does not depend "
                  "on ||x||, so every backward Gram B_l has a constant diagonal)" if act.is_positively_homogeneous
                  else "equal-norm inputs (then every Sigma^(l) and B_l has a constant diagonal)")
        return IsotropyResult(
            "ekfac", res.value,
            [f"N = 2 and {inputs}: the 2 x 2 limiting Gram of one factor per hidden layer has the flat eigenvectors "
             "(1, +-1)/sqrt 2", "simple eigenvalues of that Gram (nonzero off-diagonal entry)",
             "infinite width (at finite width the eigenvectors are flat only to O(M^-1/2))"] + res.conditions,
            d, False, ["N = 2: EKFAC -> K-FAC as M -> infinity; a positive control of the theory"])
    which = " >= 3" if n is not None else " samples (isotropy is proved only for N <= 2, L = 1 or linear nets)"
    raise NotIsotropic(
        f"EKFAC with N = {N}{which}: each hidden layer's block is the Hadamard frame sum_ji u_ji u_ji^T, "
        "u_ji = v_j o w_i / ||v_j o w_i|| built from the eigenvectors of Z Z^T and Delta Delta^T; it has K-FAC's "
        "trace N^2 but equals N I only for a flat eigenbasis, and the eigenvectors of the limiting kernels "
        "Sigma^(l), B_l are generically not flat, so Theta_EKFAC is not alpha I even at infinite width",
        FAILED_ASSUMPTION, d)


