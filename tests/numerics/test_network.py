"""MLP: NTK parameterisation, shapes, seeding, validation, updates."""
import numpy as np
import pytest

from numerics.dense import dense_jacobian, finite_difference_jacobian
from numerics.network import MLP


def _reference_forward(net, X):
    """Textbook loop over layers, written independently of MLP's augmented-matrix form."""
    h = X
    for l, Wb in enumerate(net.params, start=1):
        fan_in = net.widths[l - 1]
        W, b = (Wb[:, :-1], Wb[:, -1]) if net.has_bias else (Wb, 0.0)
        u = (net.sigma_w / np.sqrt(fan_in)) * h @ W.T + net.sigma_b * b
        h = net.activation.phi(u) if l < net.depth else u
    return h


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "linear", "gelu", "softplus"])
@pytest.mark.parametrize("sigma_b2", [0.0, 0.3])
def test_forward_matches_textbook_formula(activation, sigma_b2):
    net = MLP([4, 7, 5, 3], activation=activation, sigma_w2=1.7, sigma_b2=sigma_b2, seed=3)
    X = np.random.default_rng(0).standard_normal((6, 4))
    np.testing.assert_allclose(net.forward(X), _reference_forward(net, X), rtol=1e-13, atol=1e-13)


def test_shapes_and_parameter_count():
    net = MLP([3, 8, 6, 2], sigma_b2=0.5, seed=0)
    assert net.depth == 3 and net.n_outputs == 2 and net.has_bias
    assert [p.shape for p in net.params] == [(8, 4), (6, 9), (2, 7)]
    assert net.layer_sizes == (32, 54, 14) and net.n_params == 100
    assert MLP([3, 1], seed=0).depth == 1  # depth-1 (linear model) allowed


def test_initial_weights_are_standard_normal():
    """Entries ~ N(0,1): with 2^20 draws the sample mean/variance are within 5 standard errors."""
    net = MLP([1024, 1024, 1], seed=7)
    w = net.params[0].ravel()
    se = 1 / np.sqrt(w.size)
    assert abs(w.mean()) < 5 * se and abs(w.var() - 1) < 5 * np.sqrt(2) * se


def test_ntk_scaling_keeps_preactivations_order_one():
    """Sigma^(1)(x, x) = sigma_w2 |x|^2 / M_0 at any width; relu preserves it with sigma_w2 = 2."""
    X = np.random.default_rng(0).standard_normal((64, 256))
    net = MLP([256, 2048, 2048, 1], activation="relu", sigma_w2=2.0, seed=1)
    Z, U = net._forward_pass(X)
    expected = 2.0 * np.mean(np.sum(X ** 2, axis=1)) / 256  # ~2
    for u in U[:-1]:  # relu with sigma_w2 = 2 keeps the second moment (within sampling error ~5%)
        assert abs(np.mean(u ** 2) / expected - 1) < 0.1


def test_seed_int_and_generator():
    a = MLP([3, 4, 1], seed=5)
    b = MLP([3, 4, 1], seed=np.random.default_rng(5))
    c = MLP([3, 4, 1], seed=6)
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params))
    assert not np.array_equal(a.params[0], c.params[0])
    assert a.seed == 5 and b.seed is None


def test_jacobian_factors_match_finite_differences_with_bias_and_multiple_outputs():
    """See tests/numerics/test_dense_reference.py for the tolerance argument (h = 1e-6)."""
    net = MLP([3, 6, 5, 2], activation="erf", sigma_w2=1.2, sigma_b2=0.4, seed=2)
    X = np.random.default_rng(1).standard_normal((3, 3))
    np.testing.assert_allclose(dense_jacobian(net, X), finite_difference_jacobian(net, X), rtol=0, atol=1e-7)
    np.testing.assert_allclose(net.factors(X).outputs, net.forward(X), rtol=0, atol=1e-14)


def test_copy_is_independent_and_apply_update_moves_params():
    net = MLP([3, 4, 2], seed=0)
    twin = net.copy()
    d = [np.ones_like(p) for p in net.params]
    net.apply_update(d, 0.5)
    for p, q in zip(net.params, twin.params):
        np.testing.assert_allclose(p, q - 0.5)
    theta = twin.get_flat_params()
    twin.set_flat_params(theta + 1)
    np.testing.assert_allclose(twin.get_flat_params(), theta + 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[3]), "depth >= 1"),
    (dict(widths=[3, 0, 1]), r"widths\[1\]"),
    (dict(widths=[3, 4, 1], sigma_w2=0.0), "sigma_w2"),
    (dict(widths=[3, 4, 1], sigma_b2=-1.0), "sigma_b2"),
    (dict(widths=[3, 4, 1], activation="nope"), "activation"),
    (dict(widths=[3, 4, 1], seed=-1), "seed"),
])
def test_bad_construction_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_bad_inputs_and_updates_are_refused():
    net = MLP([3, 4, 1], seed=0)
    with pytest.raises(ValueError, match="columns"):
        net.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        net.forward(np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="2-D"):
        net.forward(np.ones(3))
    with pytest.raises(TypeError, match=r"widths='34' is not allowed: expected a sequence"):
        MLP("34", seed=0)
    with pytest.raises(TypeError, match="seed"):
        MLP([3, 4, 1], seed=1.5)
    bad = [np.ones_like(p) for p in net.params]
    bad[1][0, 0] = np.inf
    before = [p.copy() for p in net.params]
    with pytest.raises(ValueError, match="non-finite"):
        net.apply_update(bad, 0.1)
    assert all(np.array_equal(p, q) for p, q in zip(net.params, before))  # nothing applied
    with pytest.raises(ValueError, match="shape"):
        net.apply_update([np.ones((2, 2)), np.ones((1, 4))], 0.1)
