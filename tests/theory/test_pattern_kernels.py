"""Derived test kernels of block-pattern NGD (singular S, damping) against dense primal computations."""
import numpy as np
import pytest
import scipy.linalg

from theory.pattern_kernels import (PatternKernel, finite_width_exactness_derivation,
                                    naive_product_rule_counterexample, pattern_test_kernel, spd_inverse)
from theory.patterns import banded_pattern, exact_pattern, tridiagonal_pattern

# smallest kind of pattern with 1 not in range(S) (L = 6; see test_patterns.py)
NON_RANGE_6 = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0],
               [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]]


def _instance(L, seed, n=4, n_test=3):
    """Random full-row-rank J_l (train) and J_l(x') (test) with P_l > n; returns the pieces."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(n + 1, n + 5, size=L)
    Jtr = [rng.standard_normal((n, int(p))) for p in widths]
    Jte = [rng.standard_normal((n_test, int(p))) for p in widths]
    Ktr = [j @ j.T for j in Jtr]
    Kte = [a @ b.T for a, b in zip(Jte, Jtr)]
    return Jtr, Jte, Ktr, Kte


def _dense(S, Jtr, Jte, damping=0.0):
    """J(x') (G_S + rho I)^{-1} J^T / N with G_S = D^T (S (x) I) D / N; rho = 0: numpy pinv."""
    n = Jtr[0].shape[0]
    D = scipy.linalg.block_diag(*Jtr)
    G = D.T @ np.kron(np.asarray(S, float), np.eye(n)) @ D / n
    Jt, J = np.hstack(Jte), np.hstack(Jtr)
    if damping == 0:
        return Jt @ np.linalg.pinv(G, hermitian=True, rtol=1e-12) @ J.T / n
    return Jt @ np.linalg.solve(G + damping * np.eye(len(G)), J.T) / n


def _S(p):
    return np.array(p.tolist(), float)


# float64 pinv/solves of matrices of size <= ~60 with condition numbers ~1e3: errors ~1e-12;
# 1e-9 leaves three orders of magnitude of margin and is far below the O(1) naive-formula gaps.
TOL = 1e-9


@pytest.mark.parametrize("L", [2, 3, 4, 5, 6, 8, 11])
@pytest.mark.parametrize("seed", [0, 1])
def test_tridiagonal_test_kernel_matches_dense_pinv(L, seed):
    Jtr, Jte, Ktr, Kte = _instance(L, seed)
    S = _S(tridiagonal_pattern(L))
    pk = PatternKernel.from_pattern(S)
    assert np.abs(pk.test_kernel(Ktr, Kte) - _dense(S, Jtr, Jte)).max() < TOL
    assert np.abs(pk.train_operator(Ktr) - pk.alpha * np.eye(4)).max() < TOL
    assert pk.alpha == np.ceil(L / 3)


@pytest.mark.parametrize("L", [5, 8])
def test_naive_formula_fails_only_for_singular(L):
    Jtr, Jte, Ktr, Kte = _instance(L, 3)
    pk = PatternKernel.from_pattern(tridiagonal_pattern(L))
    gap = np.abs(pk.naive_test_kernel(Ktr, Kte) - _dense(_S(tridiagonal_pattern(L)), Jtr, Jte)).max()
    assert gap > 1e-2  # the null-space correction is O(1) for generic layer kernels
    pk4 = PatternKernel.from_pattern(tridiagonal_pattern(4))
    Jtr4, Jte4, Ktr4, Kte4 = _instance(4, 3)
    assert np.abs(pk4.naive_test_kernel(Ktr4, Kte4) - _dense(_S(tridiagonal_pattern(4)), Jtr4, Jte4)).max() < TOL


def test_equal_layer_kernels_need_no_correction():
    """If all K_l are equal the Schur right-hand side sum_l n_l c_l K^{-1} r vanishes (c orthogonal to n)."""
    _, _, Ktr, Kte = _instance(5, 4)
    Ktr, Kte = [Ktr[0]] * 5, [Kte[0]] * 5
    pk = PatternKernel.from_pattern(tridiagonal_pattern(5))
    assert np.abs(pk.test_kernel(Ktr, Kte) - pk.naive_test_kernel(Ktr, Kte)).max() < TOL


@pytest.mark.parametrize("pattern", [exact_pattern(3), banded_pattern(7, 2), banded_pattern(8, 2)])
def test_other_patterns_match_dense(pattern):
    L = pattern.rows
    Jtr, Jte, Ktr, Kte = _instance(L, 5)
    assert np.abs(pattern_test_kernel(pattern, Ktr, Kte) - _dense(_S(pattern), Jtr, Jte)).max() < TOL


def test_exact_pattern_is_kernel_regression():
    """S = 11^T: Theta(x',X) Theta^{-1} with Theta = sum_l K_l (exact NGD)."""
    Jtr, Jte, Ktr, Kte = _instance(3, 6)
    ref = sum(Kte) @ np.linalg.inv(sum(Ktr))
    assert np.abs(pattern_test_kernel(exact_pattern(3), Ktr, Kte) - ref).max() < TOL


def test_non_range_pattern_uses_general_pinv():
    Jtr, Jte, Ktr, Kte = _instance(6, 7)
    pk = PatternKernel.from_pattern(NON_RANGE_6)
    assert not pk.one_in_range
    assert np.abs(pk.test_kernel(Ktr, Kte) - _dense(NON_RANGE_6, Jtr, Jte)).max() < 1e-8
    train = pk.train_operator(Ktr)
    assert np.abs(train - np.mean(np.diag(train)) * np.eye(4)).max() > 1e-3  # not isotropic


def test_non_range_pattern_with_equal_kernels_is_isotropic():
    """The 'only if' needs generic kernels: with K_l = K for all l, M = S (x) K and the operator is
    (1^T S^+ 1) I = (16/9) I even though 1 is not in range(S)."""
    _, _, Ktr, _ = _instance(6, 12)
    pk = PatternKernel.from_pattern(NON_RANGE_6)
    assert abs(pk.alpha - 16 / 9) < 1e-12
    assert np.abs(pk.train_operator([Ktr[0]] * 6) - 16 / 9 * np.eye(4)).max() < TOL


@pytest.mark.parametrize("rho", [1e-3, 0.3, 5.0])
@pytest.mark.parametrize("L", [3, 5])
def test_damped_kernel_matches_dense(rho, L):
    Jtr, Jte, Ktr, Kte = _instance(L, 8)
    S = _S(tridiagonal_pattern(L))
    got = pattern_test_kernel(S, Ktr, Kte, damping=rho)
    assert np.abs(got - _dense(S, Jtr, Jte, damping=rho)).max() < TOL


def test_damped_kernel_tends_to_pinv_limit():
    """rho -> 0+: gap shrinks linearly in rho (grad in range(G), eigenvalues bounded away from 0)."""
    Jtr, Jte, Ktr, Kte = _instance(5, 9)
    pk = PatternKernel.from_pattern(tridiagonal_pattern(5))
    limit = pk.test_kernel(Ktr, Kte)
    gaps = [np.abs(pk.test_kernel(Ktr, Kte, damping=r) - limit).max() for r in (1e-3, 1e-4, 1e-5)]
    assert gaps[0] > gaps[1] > gaps[2]
    slope = np.polyfit(np.log([1e-3, 1e-4, 1e-5]), np.log(gaps), 1)[0]
    assert abs(slope - 1) < 0.1  # first-order in rho


def test_frozen_layer_has_zero_dual_vector():
    """T at L = 5: c_3 = 0 and the null vector vanishes at layer 3 -> layer 3 never moves."""
    _, _, Ktr, _ = _instance(5, 10)
    V = PatternKernel.from_pattern(tridiagonal_pattern(5)).dual_vectors(Ktr)
    assert np.abs(V[2]).max() == 0.0
    assert min(np.abs(V[l]).max() for l in (0, 1, 3, 4)) > 1e-3


def test_singular_layer_kernel_is_refused_with_condition_number():
    rng = np.random.default_rng(11)
    J = rng.standard_normal((4, 2))  # width < N: rank 2 < 4
    with pytest.raises(ValueError, match="condition number"):
        spd_inverse(J @ J.T, "K_1")
    pk = PatternKernel.from_pattern(tridiagonal_pattern(3))
    Ks = [J @ J.T] + [np.eye(4)] * 2
    with pytest.raises(ValueError, match="invertible"):
        pk.test_kernel(Ks, Ks)
    # a NaN kernel is named instead of reaching eigh ('did not converge' / NaN eigenvalues)
    bad = np.eye(3)
    bad[0, 2] = np.nan
    with pytest.raises(ValueError, match=r"^K_1 contains a non-finite value .*nan.* at index \(0, 2\)"):
        spd_inverse(bad, "K_1")
    with pytest.raises(ValueError, match=r"K_1 must be a square kernel matrix, got shape \(3, 2\)"):
        spd_inverse(np.ones((3, 2)), "K_1")


def test_argument_errors():
    pk = PatternKernel.from_pattern(tridiagonal_pattern(3))
    eye = np.eye(3)
    with pytest.raises(ValueError, match="expected depth L = 3"):
        pk.test_kernel([eye] * 2, [eye] * 2)
    with pytest.raises(ValueError, match="columns"):
        pk.test_kernel([eye] * 3, [np.ones((2, 4))] * 3)
    with pytest.raises(ValueError, match="damping"):
        pk.test_kernel([eye] * 3, [eye] * 3, damping=-1.0)
    with pytest.raises(ValueError, match="non-finite"):
        pk.test_kernel([eye] * 2 + [np.full((3, 3), np.nan)], [eye] * 3)


def test_indefinite_damped_system_singularity_is_reported():
    """(S (x) I) K has eigenvalue 1 - sqrt 2 for T_3 with K = I: rho N = sqrt 2 - 1 makes it singular."""
    pk = PatternKernel.from_pattern(tridiagonal_pattern(3))
    eye = np.eye(1)
    with pytest.raises(ValueError, match="singular"):
        pk.test_kernel([eye] * 3, [eye] * 3, damping=np.sqrt(2) - 1, n_samples=1)


def test_derivations_verified():
    assert naive_product_rule_counterexample().verified
    d = finite_width_exactness_derivation()
    assert d.verified, [s.name for s in d.failed_steps()]
    assert d.conclusion == 2


@pytest.mark.parametrize("L", [3, 5])
def test_analytic_layer_kernels_reproduce_train_operator(L):
    """With the analytic layer NTKs (theory.kernels) as K_l, X' = X gives alpha I (the derived test
    kernel reduces to the train operator), also for the singular L = 5 pattern."""
    from theory.kernels import analytic_kernels

    rng = np.random.default_rng(13)
    X = rng.standard_normal((6, 9))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    k = analytic_kernels(X, depth=L, activation="erf", sigma_b2=0.1)
    pk = PatternKernel.from_pattern(tridiagonal_pattern(L))
    # layer NTK condition numbers ~1e3: 1e-8 absolute on O(1) entries
    assert np.abs(pk.test_kernel(k.layer_ntk, k.layer_ntk) - pk.alpha * np.eye(6)).max() < 1e-8
