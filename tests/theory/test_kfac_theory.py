"""K-FAC from its definition: Hadamard-of-projections identity, alpha, Forster, test kernel, authors' N L."""
import numpy as np
import pytest
import sympy as sp

from theory.kfac_theory import (authors_kfac_consequence, authors_kfac_constant, factor_regression, kfac_alpha,
                                kfac_derivation, kfac_isotropy, kfac_layer_operator, kfac_layer_operator_dense,
                                kfac_test_kernel)
from theory.non_isotropic import NotIsotropic

# Exact finite-width identities evaluated with float64 pinv/SVD of matrices of size <= ~100: errors
# ~1e-12 relative to O(N) entries; 1e-9 is a safe bound and far below any O(1) violation.
TOL = 1e-9


def _harmonic_frame(N, M0):
    """Unit rows x_n with X^T X = (N/M0) I (radial isotropic position), M0 even, M0/2 < N/2."""
    n = np.arange(N)[:, None]
    k = np.arange(1, M0 // 2 + 1)[None, :]
    X = np.hstack([np.cos(2 * np.pi * k * n / N), np.sin(2 * np.pi * k * n / N)]) * np.sqrt(2 / M0)
    return X


def _network_factors(N, C, widths, rng, X=None):
    """Random Delta_l (N, C, M_l) and Z_l (N, M_{l-1}); the output layer has Delta_L = 1 (x) I_C."""
    L = len(widths) - 1
    Zs = [X if X is not None else rng.standard_normal((N, widths[0]))]
    Zs += [rng.standard_normal((N, widths[l])) for l in range(1, L)]
    Ds = [rng.standard_normal((N, C, widths[l])) for l in range(1, L)]
    Ds.append(np.broadcast_to(np.eye(C), (N, C, C)).copy())
    return Ds, Zs


@pytest.mark.parametrize("C", [1, 2])
@pytest.mark.parametrize("shape", [(5, 12, 7), (5, 3, 7), (5, 12, 3)])  # full rank / narrow Delta / narrow Z
def test_hadamard_identity_matches_dense_kronecker_pinv(C, shape):
    N, M, m = shape
    rng = np.random.default_rng(C * 10 + M)
    Delta, Z = rng.standard_normal((N, C, M)), rng.standard_normal((N, m))
    assert np.abs(kfac_layer_operator(Delta, Z) - kfac_layer_operator_dense(Delta, Z)).max() < TOL


@pytest.mark.parametrize("L, C", [(1, 1), (2, 1), (3, 1), (4, 2), (5, 1)])
def test_alpha_from_definition_on_constructed_factors(L, C):
    N = 6
    rng = np.random.default_rng(L)
    widths = [9] + [N * C + 3] * (L - 1) + [C]
    Ds, Zs = _network_factors(N, C, widths, rng)
    op = sum(kfac_layer_operator_dense(D, Z) for D, Z in zip(Ds, Zs))
    alpha = kfac_alpha(L, N, widths[0], widths=widths, n_outputs=C)
    assert alpha == N * (L - 1) + 1
    assert np.abs(op - float(alpha) * np.eye(N * C)).max() < TOL


def test_forster_first_layer_contributes_input_dim():
    N, M0, L = 10, 4, 3
    X = _harmonic_frame(N, M0)
    assert np.abs(X.T @ X - N / M0 * np.eye(M0)).max() < 1e-12
    rng = np.random.default_rng(1)
    widths = [M0, 14, 14, 1]
    Ds, Zs = _network_factors(N, 1, widths, rng, X=X)
    first = kfac_layer_operator(Ds[0], Zs[0])
    assert np.abs(first - M0 * np.eye(N)).max() < TOL
    op = sum(kfac_layer_operator(D, Z) for D, Z in zip(Ds, Zs))
    alpha = kfac_alpha(L, N, M0, forster=True)
    assert alpha == M0 + N * (L - 2) + 1
    assert np.abs(op - float(alpha) * np.eye(N)).max() < TOL


def test_small_input_dim_without_forster_is_not_isotropic():
    N, M0 = 10, 4
    rng = np.random.default_rng(2)
    X = rng.standard_normal((N, M0))
    Delta = rng.standard_normal((N, 1, 14))
    first = kfac_layer_operator(Delta, X)
    assert abs(np.trace(first) - N * M0) < TOL * N  # N * trace(P_Z) = N M_0
    assert np.std(np.diag(first)) > 0.1  # non-constant leverage: spread of O(1) in units of N * M0/N
    with pytest.raises(NotIsotropic, match="leverage") as info:
        kfac_alpha(3, N, M0)
    assert "Forster" in info.value.failed_assumption


def test_symbolic_alpha():
    N, L, M0 = sp.symbols("N L M_0", positive=True, integer=True)
    assert sp.expand(kfac_alpha(L, N) - (N * (L - 1) + 1)) == 0
    assert sp.expand(kfac_alpha(L, N, M0, forster=True) - (sp.Min(M0, N) + N * (L - 2) + 1)) == 0
    assert kfac_alpha(3, 100, 784) == 201
    assert kfac_alpha(1, 5, 8) == 1


def test_bias_and_forster_conditions():
    res = kfac_isotropy(3, 40, 10, forster=True, bias=True)
    assert res.value == 11 + 40 + 1
    assert any("augmented" in c for c in res.conditions)
    assert kfac_alpha(3, 10, 9, bias=True) == 21  # M_0 + 1 >= N: the full first layer
    with pytest.raises(NotIsotropic, match=r"rank 4 < N") as info:
        kfac_alpha(1, 10, 4, forster=True)  # L = 1: P_Z (x) I_C itself, rank M_0 < N
    assert info.value.failed_assumption == "M_0 + bias >= N"


def test_narrow_hidden_width_is_not_isotropic():
    with pytest.raises(NotIsotropic, match="hidden width"):
        kfac_alpha(3, 10, 20, widths=[20, 15, 30, 2], n_outputs=2)  # M_1 = 15 < N C = 20


def test_derivation_verified():
    d = kfac_derivation()
    assert d.verified, [s.name for s in d.failed_steps()]


def test_authors_constant_and_consequence():
    assert authors_kfac_constant(3, 100) == 300
    d = authors_kfac_consequence(3, 20)
    assert d.verified and d.conclusion == sp.Rational(19, 60)
    sym = authors_kfac_consequence()
    N, L = sp.symbols("N L", positive=True, integer=True)
    assert sym.verified and sp.simplify(sym.conclusion - (N - 1) / (N * L)) == 0
    # numeric: eta = 1/(N L) on the constructed exact operator leaves (N-1)/(N L) of the residual
    N_, L_ = 6, 3
    Ds, Zs = _network_factors(N_, 1, [9, 9, 9, 1], np.random.default_rng(3))
    op = sum(kfac_layer_operator(D, Z) for D, Z in zip(Ds, Zs))
    r = np.random.default_rng(4).standard_normal(N_)
    r1 = r - op @ r / float(authors_kfac_constant(L_, N_))
    assert abs(np.linalg.norm(r1) / np.linalg.norm(r) - (N_ - 1) / (N_ * L_)) < TOL


def test_test_kernel_equals_finite_width_dense_operator():
    """kfac_test_kernel on finite Grams (Delta Delta^T, Z Z^T) = J(x') G_KFAC^+ J^T / N exactly (C = 1)."""
    rng = np.random.default_rng(5)
    N, Nt, widths = 5, 3, [7, 9, 8, 1]
    L = len(widths) - 1
    Dtr = [rng.standard_normal((N, widths[l])) for l in range(1, L)] + [np.ones((N, 1))]
    Dte = [rng.standard_normal((Nt, widths[l])) for l in range(1, L)] + [np.ones((Nt, 1))]
    Ztr = [rng.standard_normal((N, widths[l])) for l in range(L)]
    Zte = [rng.standard_normal((Nt, widths[l])) for l in range(L)]
    dense = 0.0
    for l in range(L):
        B = Dtr[l].T @ Dtr[l] / N
        A = Ztr[l].T @ Ztr[l] / N
        Jtr = np.einsum("ni,nj->nij", Dtr[l], Ztr[l]).reshape(N, -1)
        Jte = np.einsum("ni,nj->nij", Dte[l], Zte[l]).reshape(Nt, -1)
        dense = dense + Jte @ np.kron(np.linalg.pinv(B), np.linalg.pinv(A)) @ Jtr.T / N
    got = kfac_test_kernel([z @ z.T for z in Ztr], [d @ d.T for d in Dtr],
                           [a @ b.T for a, b in zip(Zte, Ztr)], [a @ b.T for a, b in zip(Dte, Dtr)])
    assert np.abs(got - dense).max() < TOL
    # on the training inputs it reduces to alpha I
    train = kfac_test_kernel([z @ z.T for z in Ztr], [d @ d.T for d in Dtr],
                             [z @ z.T for z in Ztr], [d @ d.T for d in Dtr])
    assert np.abs(train - (N * (L - 1) + 1) * np.eye(N)).max() < TOL


def test_factor_regression_rank_deficient_and_zero():
    X = _harmonic_frame(8, 2)
    R = factor_regression(X @ X.T, X @ X.T)
    assert np.abs(R - X @ X.T * 2 / 8).max() < 1e-12  # projection (M0/N) X X^T in Forster position
    with pytest.raises(ValueError, match="zero"):
        factor_regression(np.zeros((2, 2)), np.zeros((2, 2)))


def test_analytic_kernels_reduce_to_alpha_on_train():
    """On the analytic kernels (theory.kernels), the test kernel evaluated at the training inputs is
    (N(L-1)+1) I (M_0 >= N), and with Forster inputs (M_0 < N, no bias) it is (M_0 + N(L-2) + 1) I."""
    from theory.kernels import analytic_kernels

    from theory.kfac_theory import kfac_test_kernel_from_analytic
    rng = np.random.default_rng(7)
    N, L = 6, 3
    X = rng.standard_normal((N, 10))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    k = analytic_kernels(X, depth=L, activation="relu")
    op = kfac_test_kernel_from_analytic(k, k)
    # analytic Grams of condition ~1e2-1e4: regression products accurate to ~1e-10 relative
    assert np.abs(op - (N * (L - 1) + 1) * np.eye(N)).max() < 1e-8
    Xf = _harmonic_frame(10, 4)
    kf = analytic_kernels(Xf, depth=L, activation="relu")
    opf = kfac_test_kernel_from_analytic(kf, kf)
    assert np.abs(opf - (4 + 10 * (L - 2) + 1) * np.eye(10)).max() < 1e-8
    # test points: shape (N', N) and the last-layer term is the plain NNGP regression
    kt = analytic_kernels(X[:2] * 0.5 + X[2:4] * 0.5, X, depth=L, activation="relu")
    assert kfac_test_kernel_from_analytic(k, kt).shape == (2, N)


def test_layer_operators_reject_bad_factors_by_name():
    """NaN factors reached the SVD ('did not converge') or came back as NaN; now named up front."""
    from theory.kfac_theory import projection
    rng = np.random.default_rng(0)
    Delta, Z = rng.standard_normal((3, 5)), rng.standard_normal((3, 4))
    bad = Z.copy()
    bad[2, 1] = np.inf
    for op in (kfac_layer_operator, kfac_layer_operator_dense):
        with pytest.raises(ValueError, match=r"^Z contains a non-finite value"):
            op(Delta, bad)
        with pytest.raises(ValueError, match=r"^Delta contains a non-finite value inf at index \(2, 1\)"):
            op(bad, Z)
        with pytest.raises(ValueError, match=r"Delta has N = 3 samples, expected 4"):
            op(Delta, rng.standard_normal((4, 4)))
    with pytest.raises(ValueError, match=r"^A contains a non-finite value"):
        projection(bad)
