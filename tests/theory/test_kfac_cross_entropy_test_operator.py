"""K-FAC's cross-entropy test operator (theory.cross_entropy.kfac_cross_entropy_test_operator*).

Exact at finite width against the dense definition ``J_l(X') (B~_l (x) A_l)^+ J~_l^T / N`` with explicit
Kronecker factors; at infinite width (analytic kernels) on the training set it must reproduce the derived
probability-space operator ``N (L-1) Pi + blockdiag(H_n Hbar^+) Pi`` (theory.cross_entropy item 5).
"""
import numpy as np
import pytest
import scipy.linalg

from numerics.losses import CrossEntropyGeometry
from theory.cross_entropy import (kfac_cross_entropy_test_operator, kfac_cross_entropy_test_operator_from_grams,
                                  kfac_probability_operator, projector)
from theory.kernels import analytic_kernels
from theory.tolerances import EXACT_TOL


def _blockdiag(blocks):
    return scipy.linalg.block_diag(*blocks)


def _dense_layer(Delta, Delta_test, Z, Z_test, S):
    """J_l(X') (B~ (x) A)^+ J~_l^T / N with the P x P Kronecker factors (small sizes only)."""
    n, c, mb = Delta.shape
    a = S.shape[1]
    Dt = np.einsum("nac,ncm->nam", S, Delta).reshape(n * a, mb)          # Delta~ rows (n, k)
    J_train = np.einsum("ri,rj->rij", Dt, np.repeat(Z, a, axis=0)).reshape(n * a, -1)
    Dx = Delta_test.reshape(-1, mb)
    J_test = np.einsum("ri,rj->rij", Dx, np.repeat(Z_test, c, axis=0)).reshape(Dx.shape[0], -1)
    B, A = Dt.T @ Dt / n, Z.T @ Z / n
    G = np.kron(np.linalg.pinv(B, hermitian=True), np.linalg.pinv(A, hermitian=True))
    return J_test @ G @ J_train.T / n, Dt


@pytest.mark.parametrize("c, mz", [(2, 7), (3, 7), (3, 3), (10, 5)])
def test_finite_width_grams_match_dense_definition(c, mz):
    rng = np.random.default_rng(100 * c + mz)
    n, n_test, layers = 4, 3, [(mz, 2 * 4 * c), (9, 3 * c)]     # (width of Z, width of Delta) per layer
    S = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S
    dense = 0.0
    grams = ([], [], [], [])
    for mzl, mb in layers:
        Delta, Delta_x = rng.standard_normal((n, c, mb)), rng.standard_normal((n_test, c, mb))
        Z, Z_x = rng.standard_normal((n, mzl)), rng.standard_normal((n_test, mzl))
        op, Dt = _dense_layer(Delta, Delta_x, Z, Z_x, S)
        dense = dense + op
        grams[0].append(Dt @ Dt.T)
        grams[1].append(Delta_x.reshape(-1, mb) @ Dt.T)
        grams[2].append(Z @ Z.T)
        grams[3].append(Z_x @ Z.T)
    fast = kfac_cross_entropy_test_operator_from_grams(*grams)
    assert fast.shape == (n_test * c, n * (c - 1))
    # pseudo-inverses of Grams with condition numbers ~1e2: agreement to 1e-9 relative
    assert np.abs(fast - dense).max() <= 1e-9 * np.abs(dense).max()


@pytest.mark.parametrize("depth, c", [(2, 2), (3, 3), (4, 10)])
def test_infinite_width_training_set_is_the_derived_probability_operator(depth, c):
    rng = np.random.default_rng(depth * 10 + c)
    n = 5
    X = rng.standard_normal((n, 8))                            # M_0 >= N: every factor of full rank
    k = analytic_kernels(X, depth=depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0)
    g = CrossEntropyGeometry.at(rng.standard_normal((n, c)))
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, g.S)
    prob = _blockdiag(g.hessian()) @ op @ _blockdiag(g.M)
    expected = kfac_probability_operator(g.hessian(), depth)
    assert np.abs(prob - expected).max() <= EXACT_TOL * np.abs(expected).max()   # measured ~1e-14; Grams of condition < 1e2
    # and not isotropic unless the H_n are equal: the output layer's term differs from Pi
    assert np.abs(prob - (n * (depth - 1) + 1) * projector(n, c)).max() > 1e-3


def test_equal_outputs_give_isotropic_operator():
    """Equal H_n (identical logit rows): H Theta Pi = (N (L-1) + 1) Pi exactly (item 5's isotropy condition)."""
    rng = np.random.default_rng(7)
    n, c, depth = 4, 3, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0)
    g = CrossEntropyGeometry.at(np.tile(rng.standard_normal((1, c)), (n, 1)))
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, g.S)
    prob = _blockdiag(g.hessian()) @ op @ _blockdiag(g.M)
    assert np.abs(prob - (n * (depth - 1) + 1) * projector(n, c)).max() <= 1e-9 * (n * (depth - 1) + 1)


def test_without_the_transform_the_identity_fails():
    """Mutations: thin factors of other outputs' Hessians break the training-set identity; dropping S
    (treating the C channels as C-1 untransformed ones) is refused (S_n 1 != 0)."""
    rng = np.random.default_rng(3)
    n, c, depth = 4, 3, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0)
    g = CrossEntropyGeometry.at(rng.standard_normal((n, c)))
    other = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, other)
    prob = _blockdiag(g.hessian()) @ op @ _blockdiag(g.M)
    assert np.abs(prob - kfac_probability_operator(g.hessian(), depth)).max() > 1e-2
    wrong = np.zeros_like(g.S)
    wrong[:, :, : c - 1] = np.eye(c - 1)[None]
    with pytest.raises(ValueError, match=r"S\[0\] rows do not sum to 0"):
        kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, wrong)


def _mp_regression(gram_test, gram, rank):
    """``gram_test gram^+`` in 60-digit arithmetic keeping the top ``rank`` eigenvalues (the exact rank)."""
    import mpmath as mp

    with mp.workdps(60):
        E, Q = mp.eigsy(mp.matrix(gram.tolist()))
        order = sorted(range(E.rows), key=lambda i: E[i], reverse=True)[:rank]
        Bx = mp.matrix(gram_test.tolist())
        out = mp.zeros(Bx.rows, Bx.cols)
        for i in order:
            q = Q[:, i]
            out += (Bx * q) * q.T / E[i]
        return np.array(out.tolist(), dtype=float)


@pytest.mark.parametrize("logit_scale", [1.0, 20.0, 40.0, 80.0])
def test_saturated_softmax_matches_a_high_precision_reference(logit_scale):
    """Probabilities down to 1e-18 .. 1e-90 (logit scale 20 .. 80): the transformed backward Gram
    ``[b(x_n, x_m) S_n S_m^T]`` has eigenvalues ~ p_min, far below ``RANK_RTOL`` times its largest, and the
    eigenvalue-cut pseudo-inverse dropped true directions (train identity off by 0.3-0.8, the hidden-layer
    regression off by 100 %).  Against the same pseudo-inverse in 60-digit arithmetic (exact ranks: N (C-1) for
    hidden layers, C - 1 for the output layer) the factored computation is accurate to round-off, normwise
    (measured 2e-16 .. 4e-15)."""
    rng = np.random.default_rng(int(logit_scale) + 1)
    n, nt, c, depth = 3, 2, 3, 3
    a = c - 1
    X, Xt = rng.standard_normal((n, 6)), rng.standard_normal((nt, 6))
    k, kt = analytic_kernels(X, depth=depth, activation="relu"), analytic_kernels(Xt, X, depth=depth, activation="relu")
    g = CrossEntropyGeometry.at(logit_scale * rng.standard_normal((n, c)))
    S = g.S
    ref = 0.0
    SS = np.einsum("nac,mbc->namb", S, S)
    for l in range(depth):
        bt = (SS * k.backward[l][:, None, :, None]).reshape(n * a, n * a)
        bx = np.einsum("pm,mbc->pcmb", kt.backward[l], S).reshape(nt * c, n * a)
        rb = _mp_regression(bx, bt, a if l == depth - 1 else n * a)
        rz = kt.nngp_layers[l] @ np.linalg.inv(k.nngp_layers[l])
        ref = ref + n * rb * np.kron(rz, np.ones((c, a)))
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, kt.nngp_layers, kt.backward, S)
    assert np.all(np.isfinite(op))
    assert np.abs(op - ref).max() <= 1e-12 * np.abs(ref).max(), (g.p.min(), np.abs(op - ref).max() / np.abs(ref).max())


def test_factored_regression_equals_the_gram_pseudo_inverse_when_well_conditioned():
    """At moderate outputs both computations are valid: the factored form equals the Gram form."""
    rng = np.random.default_rng(11)
    n, n_test, c, depth = 5, 3, 3, 3
    X, Xt = rng.standard_normal((n, 8)), rng.standard_normal((n_test, 8))
    k, kt = analytic_kernels(X, depth=depth, activation="relu"), analytic_kernels(Xt, X, depth=depth, activation="relu")
    S = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S
    a = c - 1
    SS = np.einsum("nac,mbc->namb", S, S)
    b_train = [(SS * K[:, None, :, None]).reshape(n * a, n * a) for K in k.backward]
    b_test = [np.einsum("pm,mbc->pcmb", K, S).reshape(n_test * c, n * a) for K in kt.backward]
    gram = kfac_cross_entropy_test_operator_from_grams(b_train, b_test, k.nngp_layers, kt.nngp_layers)
    fact = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, kt.nngp_layers, kt.backward, S)
    assert np.abs(fact - gram).max() <= 1e-9 * np.abs(gram).max()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="S has shape"):
        kfac_cross_entropy_test_operator([np.eye(2)], [np.eye(2)], [np.eye(2)], [np.eye(2)], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="same number"):
        kfac_cross_entropy_test_operator_from_grams([np.eye(2)], [], [np.eye(2)], [np.eye(2)])


def test_from_grams_validates_every_layer():
    n, nt, c = 3, 2, 3
    a = c - 1
    good = ([np.eye(n * a)] * 2, [np.ones((nt * c, n * a))] * 2, [np.eye(n)] * 2, [np.ones((nt, n))] * 2)
    assert kfac_cross_entropy_test_operator_from_grams(*good).shape == (nt * c, n * a)
    with pytest.raises(ValueError, match=r"backward_test\[0\] has shape \(6, 5\): expected \(N' C, N \(C-1\)\)"):
        kfac_cross_entropy_test_operator_from_grams(good[0], [np.ones((nt * c, 5))] * 2, good[2], good[3])
    with pytest.raises(ValueError, match=r"backward_train\[1\] has shape \(5, 5\): expected \(6, 6\)"):
        kfac_cross_entropy_test_operator_from_grams([np.eye(6), np.eye(5)], good[1], good[2], good[3])
    nan = np.ones((nt * c, n * a))
    nan[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"backward_test\[1\] contains a non-finite value nan at index \(1, 2\)"):
        kfac_cross_entropy_test_operator_from_grams(good[0], [good[1][0], nan], good[2], good[3])
    with pytest.raises(TypeError, match="nngp_train\\[0\\] must be a 2-D array of real numbers, got dtype complex"):
        kfac_cross_entropy_test_operator_from_grams(good[0], good[1], [np.eye(n) * 1j] * 2, good[3])


def test_analytic_operator_refuses_zero_probabilities_and_duplicate_inputs():
    rng = np.random.default_rng(5)
    n, c = 4, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=2, activation="relu")
    S = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S.copy()
    S[2] = 0.0                                                  # p_2 one-hot exactly: H_2 = 0
    with pytest.raises(ValueError, match=r"S\[2\] has rank < C-1 = 2"):
        kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, S)
    X[3] = X[1]                                                 # duplicate inputs: b_1 singular of rank 3
    k = analytic_kernels(X, depth=2, activation="relu")
    S = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S
    with pytest.raises(ValueError, match=r"backward_train\[0\] has rank 3 < N = 4"):
        kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, S)


@pytest.mark.parametrize("d", [1e-3, 1e-8, 1e-12])
def test_every_sample_saturated_in_the_same_class_keeps_the_output_layer(d):
    """Equal outputs p = (0.5, 0.5 - d, d) on every sample: sum_n H_n is itself small (~d) in one direction,
    and a relative cut on it dropped that direction (S op had eigenvalues 8 and 9 instead of 9 at d = 1e-12).
    The output layer's regression comes from an SVD of the stacked A_n instead: S op = alpha I on the
    training set, alpha = N (L-1) + 1 = 9 (equal H_n: isotropic)."""
    rng = np.random.default_rng(7)
    n, c, depth = 4, 3, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0)
    p = np.array([0.5, 0.5 - d, d])
    g = CrossEntropyGeometry.at(np.tile(np.log(p), (n, 1)))
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, g.S)
    Sop = _blockdiag(g.S) @ op
    alpha = n * (depth - 1) + 1
    assert np.abs(Sop - alpha * np.eye(n * (c - 1))).max() <= 1e-6 * alpha     # measured 1e-14 .. 2e-9


def test_no_test_points_and_bad_kernels():
    rng = np.random.default_rng(2)
    n, c = 3, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=2, activation="relu")
    S = CrossEntropyGeometry.at(rng.standard_normal((n, c))).S
    empty = [np.zeros((0, n))] * 2
    assert kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, empty, empty, S).shape == (0, n * (c - 1))
    grams = ([np.eye(n * 2)] * 2, [np.zeros((0, n * 2))] * 2, [np.eye(n)] * 2, [np.zeros((0, n))] * 2)
    assert kfac_cross_entropy_test_operator_from_grams(*grams).shape == (0, n * 2)
    with pytest.raises(ValueError, match=r"nngp_train\[0\] has shape \(0, 0\): needs at least 1 row"):
        kfac_cross_entropy_test_operator_from_grams([np.zeros((0, 0))], [np.zeros((0, 0))], [np.zeros((0, 0))],
                                                    [np.zeros((0, 0))])
    skew = [K + np.triu(np.ones((n, n)), 1) for K in k.backward]
    with pytest.raises(ValueError, match=r"backward_train\[0\] is not symmetric"):
        kfac_cross_entropy_test_operator(k.nngp_layers, skew, k.nngp_layers, k.backward, S)
    indefinite = [np.diag([1.0, 1.0, -1.0])] * 2
    with pytest.raises(ValueError, match=r"backward_train\[0\] is not positive semidefinite"):
        kfac_cross_entropy_test_operator(k.nngp_layers, indefinite, k.nngp_layers, k.backward, S)
    logits = np.column_stack([np.full(n, 740.0), rng.standard_normal(n), rng.standard_normal(n)])
    with pytest.raises(ValueError, match=r"a probability below ~1e-300.*clip the logits"):
        kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward,
                                         CrossEntropyGeometry.at(logits).S)

