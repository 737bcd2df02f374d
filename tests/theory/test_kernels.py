"""analytic_kernels: agreement with neural-tangents, known values, identities (hypothesis),
the finite-width limit, and bad input."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.sweeps import fit_power_law
from theory.kernels import AnalyticKernels, analytic_kernels

FIXTURE = Path(__file__).resolve().parents[2] / "proofs" / "data" / "neural_tangents_reference.npz"
ACTIVATIONS = ("relu", "erf", "tanh", "linear", "gelu", "softplus", "sin", "leaky_relu")


def _inputs(seed=0, n=6, dim=5):
    return np.random.default_rng(seed).standard_normal((n, dim))


# ------------------------------------------------------------------------------------------------
# an independent implementation
# ------------------------------------------------------------------------------------------------
def test_agrees_with_neural_tangents_fixture():
    data = np.load(FIXTURE)
    meta = json.loads(str(data["meta"]))
    assert meta["x64"] and len(meta["configs"]) >= 10
    X, X2 = data["X"], data["X2"]
    seen = set()
    for c in meta["configs"]:
        kw = dict(depth=c["depth"], activation=c["activation"], sigma_w2=c["sigma_w2"], sigma_b2=c["sigma_b2"])
        seen.add(c["activation"])
        for suffix, k in (("", analytic_kernels(X, **kw)), ("_cross", analytic_kernels(X, X2, **kw))):
            for kind in ("nngp", "ntk"):
                ref = data[f"{c['key']}{suffix}_{kind}"]
                assert getattr(k, kind).shape == ref.shape
                # issue 2 asks for 1e-6; both sides evaluate the same closed forms in float64, so
                # anything above ~1e-13 would be a convention or formula difference
                np.testing.assert_allclose(getattr(k, kind), ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    assert {"relu", "erf", "gelu", "sin", "leaky_relu"} <= seen


# ------------------------------------------------------------------------------------------------
# known values
# ------------------------------------------------------------------------------------------------
def test_relu_diagonal_recursion():
    X = _inputs(1)
    sw2, sb2 = 1.7, 0.3
    k = analytic_kernels(X, depth=5, activation="relu", sigma_w2=sw2, sigma_b2=sb2)
    d = sw2 * np.sum(X * X, axis=1) / X.shape[1] + sb2
    for l in range(5):
        np.testing.assert_allclose(np.diag(k.nngp_layers[l]), d, rtol=1e-14)
        np.testing.assert_allclose(k.diag_rows[l], d, rtol=1e-14)
        d = sw2 / 2 * d + sb2                         # E[relu(u)^2] = q/2
    for dot in k.derivative_layers:
        np.testing.assert_allclose(np.diag(dot), sw2 / 2, rtol=1e-15)   # P(u > 0) = 1/2


def test_deep_linear_network():
    # linear: Sigma^(l) = sigma_w2^l x.x'/M0, dotSigma = sigma_w2, Theta = L sigma_w2^L x.x'/M0
    X, X2 = _inputs(2), _inputs(3, n=3)
    k = analytic_kernels(X, X2, depth=4, activation="linear", sigma_w2=1.3)
    gram = X @ X2.T / X.shape[1]
    np.testing.assert_allclose(k.nngp, 1.3**4 * gram, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(k.ntk, 4 * 1.3**4 * gram, rtol=1e-13, atol=1e-15)
    for l in range(4):
        np.testing.assert_allclose(k.layer_ntk[l], 1.3**4 * gram, rtol=1e-13, atol=1e-15)


def test_first_layer_and_depth_one():
    X = _inputs(4)
    k = analytic_kernels(X, depth=1, activation="tanh", sigma_w2=2.0, sigma_b2=0.5)
    expected = 2.0 * X @ X.T / X.shape[1] + 0.5
    np.testing.assert_allclose(k.nngp, expected, rtol=1e-14)
    np.testing.assert_allclose(k.ntk, expected, rtol=1e-14)
    assert k.derivative_layers == [] and len(k.backward) == 1 and np.all(k.backward[0] == 1)


def test_layout_and_backward_kernels():
    X, X2 = _inputs(5), _inputs(6, n=3)
    k = analytic_kernels(X, X2, depth=4, activation="erf", sigma_w2=1.5, sigma_b2=0.1)
    assert isinstance(k, AnalyticKernels) and k.shape == (6, 3)
    assert len(k.layer_ntk) == len(k.nngp_layers) == len(k.backward) == 4 and len(k.derivative_layers) == 3
    assert k.nngp is k.nngp_layers[-1]
    np.testing.assert_array_equal(k.backward[-1], 1.0)
    for l in range(3):   # B_l = B_{l+1} * dotSigma^(l+1), Theta_l = Sigma^(l) * B_l (exact float ops)
        np.testing.assert_array_equal(k.backward[l], k.backward[l + 1] * k.derivative_layers[l])
    for l in range(4):
        np.testing.assert_array_equal(k.layer_ntk[l], k.nngp_layers[l] * k.backward[l])


# ------------------------------------------------------------------------------------------------
# identities
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_cross_kernel_is_a_block_of_the_joint_kernel(activation):
    # k(X, X2) must equal the off-diagonal block of k([X; X2]): the cross recursion uses the
    # diagonals of both sets correctly
    X, X2 = _inputs(7, n=5), _inputs(8, n=3)
    kw = dict(depth=3, activation=activation, sigma_w2=1.4, sigma_b2=0.2)
    joint = analytic_kernels(np.vstack([X, X2]), **kw)
    cross = analytic_kernels(X, X2, **kw)
    for a, b in ((cross.ntk, joint.ntk[:5, 5:]), (cross.nngp, joint.nngp[:5, 5:])):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14 * np.abs(b).max())
    swapped = analytic_kernels(X2, X, **kw)
    np.testing.assert_allclose(swapped.ntk, cross.ntk.T, rtol=1e-13, atol=1e-14 * np.abs(cross.ntk).max())


def test_x2_equal_x_and_tiling_do_not_change_numbers():
    X = _inputs(9, n=9)
    base = analytic_kernels(X, depth=4, activation="relu", sigma_b2=0.1)
    again = analytic_kernels(X, X.copy(), depth=4, activation="relu", sigma_b2=0.1)
    np.testing.assert_allclose(again.ntk, base.ntk, rtol=1e-14)
    for rows, threads in ((1, 1), (2, 2), (4, 1)):
        tiled = analytic_kernels(X, depth=4, activation="relu", sigma_b2=0.1, block_rows=rows, n_threads=threads)
        np.testing.assert_array_equal(tiled.ntk, base.ntk)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 7), dim=st.integers(1, 6), depth=st.integers(1, 6),
       activation=st.sampled_from(ACTIVATIONS), sigma_w2=st.floats(0.2, 3.0), sigma_b2=st.floats(0.0, 1.0),
       scale=st.floats(0.1, 3.0))
def test_properties_over_random_inputs(seed, n, dim, depth, activation, sigma_w2, sigma_b2, scale):
    X = scale * np.random.default_rng(seed).standard_normal((n, dim))
    if sigma_b2 == 0:
        X[np.linalg.norm(X, axis=1) == 0] = 1.0
    k = analytic_kernels(X, depth=depth, activation=activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    top = np.abs(k.ntk).max()
    # telescoping at float64: the same numbers in two association orders (~2L roundings)
    np.testing.assert_allclose(sum(k.layer_ntk), k.ntk, rtol=0, atol=1e-12 * top)
    # exactly symmetric (outer products, sorted variances in the duals) and positive semi-definite
    # (a Gram limit) up to rounding of the largest entry
    for K in [k.ntk, k.nngp] + k.derivative_layers:
        np.testing.assert_array_equal(K, K.T)
    for K in [k.ntk, k.nngp] + k.layer_ntk:
        assert np.linalg.eigvalsh(K).min() >= -1e-10 * max(np.abs(K).max(), 1e-300)
    assert np.all(np.isfinite(k.ntk))
    # diagonal of Theta = sum of positive layer contributions: at least Sigma^(L)(x, x)
    assert np.all(np.diag(k.ntk) >= np.diag(k.nngp) * (1 - 1e-12))


# ------------------------------------------------------------------------------------------------
# finite width
# ------------------------------------------------------------------------------------------------
def test_empirical_ntk_converges_with_slope_minus_half():
    from numerics.factors import layer_gram
    from numerics.network import MLP

    rng = np.random.default_rng(11)
    X = rng.standard_normal((6, 10))
    k = analytic_kernels(X, depth=3, activation="erf", sigma_w2=1.5, sigma_b2=0.1)
    widths, seeds = [64, 128, 256, 512, 1024], 6
    errors = []
    for width in widths:
        e = 0.0
        for s in range(seeds):
            net = MLP([10, width, width, 1], activation="erf", sigma_w2=1.5, sigma_b2=0.1, seed=1000 * width + s)
            f = net.factors(X)
            emp = sum(layer_gram(f, l) for l in (1, 2, 3))
            e += np.linalg.norm(emp - k.ntk) / np.linalg.norm(k.ntk) / seeds
        errors.append(e)
    fit = fit_power_law(widths, errors)
    # relative fluctuation of a mean of M i.i.d. terms ~ M^-1/2; 0.2 + 2 stderr covers the
    # finite-width bias (O(1/M)) and seed noise of this short sweep; a wrong kernel gives a plateau (slope ~ 0)
    assert abs(fit.slope + 0.5) <= 0.2 + 2 * fit.slope_stderr, fit
    assert errors[-1] < errors[0] / 2.5


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
def test_bad_input_names_the_argument():
    X = _inputs()
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^X contains a non-finite"):
        analytic_kernels(bad)
    with pytest.raises(ValueError, match=r"^X2 contains a non-finite"):
        analytic_kernels(X, bad)
    with pytest.raises(ValueError, match="X must be a 2-D array"):
        analytic_kernels(X[0])
    with pytest.raises(ValueError, match="X2 has 4 columns, expected 5"):
        analytic_kernels(X, X[:, :4])
    with pytest.raises(ValueError, match="depth=0"):
        analytic_kernels(X, depth=0)
    with pytest.raises(TypeError, match="depth=2.5"):
        analytic_kernels(X, depth=2.5)
    with pytest.raises(ValueError, match="sigma_w2=-1.0"):
        analytic_kernels(X, sigma_w2=-1.0)
    with pytest.raises(ValueError, match="sigma_b2=-0.1"):
        analytic_kernels(X, sigma_b2=-0.1)
    with pytest.raises(ValueError, match="activation='swish' is unknown"):
        analytic_kernels(X, activation="swish")
    with pytest.raises(TypeError, match="X must be a 2-D array of real numbers"):
        analytic_kernels(object())


def test_zero_input():
    X = _inputs(n=4)
    X[2] = 0.0
    # relu without bias: u = 0 exactly, phi' jumps there -> a clear error naming the row
    with pytest.raises(ValueError, match=r"X\[2\] gives Sigma\^\(1\)\(x, x\) = 0"):
        analytic_kernels(X, depth=3, activation="relu")
    # with a bias the variance is positive; erf is smooth at zero variance; depth 1 needs no dual
    for kw in (dict(activation="relu", sigma_b2=0.1), dict(activation="erf"), dict(activation="relu", depth=1)):
        k = analytic_kernels(X, **kw)
        assert np.all(np.isfinite(k.ntk))
    k = analytic_kernels(X, depth=3, activation="erf")
    np.testing.assert_allclose(k.ntk[2], 0.0, atol=1e-15)   # erf(0) = 0: the zero input stays 0


def test_docstring_examples_run():
    """The runnable examples of the kernel modules (formulas and numbers in the docstrings)."""
    import doctest

    import theory.dual
    import theory.kernels
    import theory.symbolic_kernels
    for module in (theory.dual, theory.kernels, theory.symbolic_kernels):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
