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
    """Mutation: dropping S (treating the C channels as C-1 untransformed ones) breaks the training-set identity."""
    rng = np.random.default_rng(3)
    n, c, depth = 4, 3, 3
    X = rng.standard_normal((n, 6))
    k = analytic_kernels(X, depth=depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0)
    g = CrossEntropyGeometry.at(rng.standard_normal((n, c)))
    wrong = np.zeros_like(g.S)
    wrong[:, :, : c - 1] = np.eye(c - 1)[None]
    op = kfac_cross_entropy_test_operator(k.nngp_layers, k.backward, k.nngp_layers, k.backward, wrong)
    prob = _blockdiag(g.hessian()) @ op @ _blockdiag(g.M)
    assert np.abs(prob - kfac_probability_operator(g.hessian(), depth)).max() > 1e-2


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="S has shape"):
        kfac_cross_entropy_test_operator([np.eye(2)], [np.eye(2)], [np.eye(2)], [np.eye(2)], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="same number"):
        kfac_cross_entropy_test_operator_from_grams([np.eye(2)], [], [np.eye(2)], [np.eye(2)])
