"""Jacobian factors: Khatri-Rao Grams, vector-Jacobian products, against the explicit layer Jacobians.

Tolerance 1e-12 relative: both sides are a handful of float64 products of O(1) numbers.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.dense import dense_layer_jacobian
from numerics.factors import empirical_ntk, layer_gram, layer_grams, layer_jvp, layer_vjp
from numerics.network import MLP


def _setup(n_outputs=2, sigma_b2=0.3, seed=0):
    net = MLP([4, 6, 5, n_outputs], activation="tanh", sigma_w2=1.4, sigma_b2=sigma_b2, seed=seed)
    rng = np.random.default_rng(seed)
    return net, rng.standard_normal((5, 4)), rng.standard_normal((3, 4))


@settings(max_examples=20, deadline=None)
@given(n_outputs=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 1000))
def test_khatri_rao_gram_equals_dense(n_outputs, bias, seed):
    net, X, X2 = _setup(n_outputs, 0.3 if bias else 0.0, seed)
    f, f2 = net.factors(X), net.factors(X2)
    for l in range(1, net.depth + 1):
        J, J2 = dense_layer_jacobian(f, l), dense_layer_jacobian(f2, l)
        np.testing.assert_allclose(layer_gram(f, l), J @ J.T, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer_gram(f, l, f2), J2 @ J.T, rtol=1e-12, atol=1e-12)


def test_vjp_and_jvp_equal_dense_products():
    net, X, _ = _setup()
    f = net.factors(X)
    rng = np.random.default_rng(3)
    v = rng.standard_normal((5, 2))
    for l in range(1, net.depth + 1):
        J = dense_layer_jacobian(f, l)
        np.testing.assert_allclose(layer_vjp(f, l, v).ravel(), J.T @ v.ravel(), rtol=1e-12, atol=1e-12)
        x = rng.standard_normal(net.params[l - 1].shape)
        np.testing.assert_allclose(layer_jvp(f, l, x).ravel(), J @ x.ravel(), rtol=1e-12, atol=1e-12)


def test_layer_grams_sum_to_the_ntk_and_last_layer_is_block_identity():
    """Last layer: Delta_L = I_C, so K_L = Z_L Z_L^T (x) I_C (no output coupling)."""
    net, X, _ = _setup(n_outputs=3)
    f = net.factors(X)
    np.testing.assert_allclose(empirical_ntk(f), sum(layer_grams(f)), rtol=1e-14)
    ZL = f.Z[-1]
    np.testing.assert_allclose(layer_gram(f, net.depth), np.kron(ZL @ ZL.T, np.eye(3)), rtol=1e-13, atol=1e-13)


def test_layer_index_is_one_based_and_checked():
    net, X, _ = _setup()
    f = net.factors(X)
    with pytest.raises(ValueError, match="1-based"):
        layer_gram(f, 0)
    with pytest.raises(ValueError, match="1-based"):
        layer_gram(f, net.depth + 1)
    assert f.layer_sizes == net.layer_sizes
