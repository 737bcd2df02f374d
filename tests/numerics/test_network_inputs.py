"""Inputs are refused up front (issue 10): complex/object/string arrays with a TypeError naming the argument
and its dtype (never numpy's ComplexWarning and a silent cast), and magnitudes whose pre-activation variance
bound overflows at the requested depth with a ValueError naming the limit -- before any RuntimeWarning.

Every test here runs with warnings as errors: a ComplexWarning or an overflow RuntimeWarning fails it.
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics.approximations import APPROXIMATIONS, get_approximation
from numerics.linalg import SingularSystemError
from numerics.network import MAX_PREACTIVATION_VARIANCE, MLP, activation_growth, check_real_array
from proofs.hypothesis_profiles import examples
from theory.activations import available_activations, get_activation

pytestmark = pytest.mark.filterwarnings("error")

X0 = np.random.default_rng(0).standard_normal((6, 8))


def allowed_scale(err: ValueError) -> float:
    """The largest allowed max |x|^2 / M_0 the refusal message names."""
    return float(re.search(r"allowed: max_n \|x_n\|\^2 / M_0 <= ([0-9.]+e[+-]\d+)", str(err)).group(1))


def scaled(X, s):
    """X rescaled so that max_n |x_n|^2 / M_0 = s."""
    return X * np.sqrt(s / np.max(np.sum(X ** 2, axis=1) / X.shape[1]))


# -- dtype ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, dtype", [(X0.astype(complex), "complex128"), (X0.astype(np.complex64), "complex64"),
                                        (X0.astype(object), "object"), (X0.astype(str), "<U"),
                                        ([[1.0, 2j] + [0.0] * 6], "complex128")])
def test_non_real_inputs_are_refused_naming_argument_and_dtype(bad, dtype):
    net = MLP([8, 16, 1], seed=0)
    for call in (net.forward, net.factors, lambda X: get_approximation("exact")(net, X)):
        with pytest.raises(TypeError, match=rf"^X has dtype {re.escape(dtype)}"):
            call(bad)
    approx = get_approximation("exact")(net, X0)
    with pytest.raises(TypeError, match=rf"^X2 has dtype {re.escape(dtype)}"):
        approx.operator(bad)


def test_complex_message_says_what_to_do():
    with pytest.raises(TypeError) as info:
        check_real_array("X", np.ones((2, 2), dtype=complex))
    assert "complex inputs are not cast to real -- pass X.real" in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, bool])
def test_real_dtypes_are_accepted_and_equal_float64(dtype):
    net = MLP([8, 16, 1], seed=0)
    X = (np.abs(X0) * 3).astype(dtype)
    np.testing.assert_array_equal(net.forward(X), net.forward(X.astype(np.float64)))


# -- magnitude -----------------------------------------------------------------------------------------
def test_issue_scale_1e200_is_refused_before_any_warning():
    """The issue: X * 1e200 overflowed with RuntimeWarnings before a generic "non-finite" error."""
    net = MLP([8, 64, 64, 1], activation="relu", seed=0)
    for call in (net.forward, lambda X: get_approximation("kfac")(net, X)):
        with pytest.raises(ValueError) as info:
            call(X0 * 1e200)
        text = str(info.value)
        assert text.startswith("X is too large for float64 at depth L = 3: max_n |x_n|^2 / M_0 = ")
        assert f"above the limit {MAX_PREACTIVATION_VARIANCE:.3g}" in text and "rescale the inputs" in text


@pytest.mark.parametrize("depth", [1, 2, 5, 12])
def test_relu_limit_is_the_bound_divided_by_sigma_w2_per_layer(depth):
    """relu, slope 1: q_1 = sigma_w2 s, q_{l+1} <= sigma_w2 q_l, so the largest allowed s = |x|^2/M_0 is
    LIMIT / sigma_w2^depth (3 printed digits)."""
    sigma_w2 = 3.0
    net = MLP([8] + [16] * (depth - 1) + [1], activation="relu", sigma_w2=sigma_w2, seed=0)
    with pytest.raises(ValueError) as info:
        net.check_inputs(X0 * 1e200)
    expected = MAX_PREACTIVATION_VARIANCE / sigma_w2 ** depth
    assert allowed_scale(info.value) == pytest.approx(expected, rel=5e-3)
    net.check_inputs(scaled(X0, 0.99 * expected))                 # just below: accepted
    with pytest.raises(ValueError):
        net.check_inputs(scaled(X0, 1.01 * expected))             # just above: refused


def test_bounded_activation_limit_does_not_depend_on_depth():
    """tanh is bounded: layers >= 2 have variance <= sigma_w2 sup tanh^2 + sigma_b2 whatever the input."""
    limits = []
    for depth in (2, 6, 20):
        net = MLP([8] + [16] * (depth - 1) + [1], activation="tanh", sigma_w2=2.0, seed=0)
        with pytest.raises(ValueError) as info:
            net.check_inputs(X0 * 1e200)
        assert "tanh is bounded, so only the first layer's variance depends on the inputs" in str(info.value)
        limits.append(allowed_scale(info.value))
    assert limits[0] == limits[1] == limits[2] == pytest.approx(MAX_PREACTIVATION_VARIANCE / 2.0, rel=5e-3)


def test_variance_bound_is_exact_at_layer_one_with_bias():
    net = MLP([4, 8, 8, 1], activation="softplus", sigma_w2=1.5, sigma_b2=0.25, seed=0)
    X = np.array([[1.0, 2.0, 2.0, 4.0], [0.0, 0.0, 0.0, 1.0]])        # max |x|^2 = 25
    q = np.exp(net.variance_bound(X))
    assert q[0] == pytest.approx(1.5 * 25 / 4 + 0.25, rel=1e-14)
    g = activation_growth(net.activation)                             # softplus: |phi| <= a + |u|, a ~ log 2
    assert g.slope == 1.0 and np.log(2) <= g.intercept <= 1.02 * np.log(2)
    assert q[1] == pytest.approx(1.5 * (g.intercept + np.sqrt(q[0])) ** 2 + 0.25, rel=1e-14)


@pytest.mark.parametrize("name, slope, bounded", [("relu", 1.0, False), ("leaky_relu", 1.0, False),
                                                  ("linear", 1.0, False), ("gelu", 1.0, False),
                                                  ("softplus", 1.0, False), ("tanh", 0.0, True),
                                                  ("erf", 0.0, True), ("sin", 0.0, True)])
def test_activation_growth_from_the_sympy_expression(name, slope, bounded):
    g = activation_growth(get_activation(name))
    assert (g.slope, g.bounded) == (slope, bounded)
    if bounded:
        assert 1.0 <= g.sup <= 1.02                                      # sup |tanh|, |erf|, |sin| = 1


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "sin", "leaky_relu"])
def test_just_below_the_limit_every_approximation_runs_without_warnings(activation):
    """At a tenth of the allowed scale nothing overflows: every approximation builds, steps and predicts
    without a RuntimeWarning (a saturated tanh/sin net may be singular: then it says so)."""
    net = MLP([8, 32, 32, 1], activation=activation, seed=0)
    with pytest.raises(ValueError) as info:
        net.check_inputs(X0 * 1e200)
    X = scaled(X0, allowed_scale(info.value) / 10)
    for name in APPROXIMATIONS:
        try:
            approx = get_approximation(name)(net, X)
        except SingularSystemError:
            continue
        assert np.all(np.isfinite(approx.operator())) and np.all(np.isfinite(approx.operator(X[:2])))
        assert all(np.all(np.isfinite(d)) for d in approx.direction(np.ones(6)))


@settings(max_examples=examples(30), deadline=None)
@given(activation=st.sampled_from(available_activations()), depth=st.integers(1, 8),
       sigma_w2=st.sampled_from([0.5, 1.0, 2.0, 4.0]), bias=st.booleans(), exponent=st.integers(0, 170),
       seed=st.integers(0, 1000))
def test_any_scale_is_either_refused_with_the_limit_or_runs_finite(activation, depth, sigma_w2, bias, exponent, seed):
    net = MLP([5] + [12] * (depth - 1) + [1], activation=activation, sigma_w2=sigma_w2,
              sigma_b2=0.1 if bias else 0.0, seed=seed)
    X = np.random.default_rng(seed).standard_normal((4, 5)) * 10.0 ** exponent
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            out = net.forward(X)
        except ValueError as err:
            assert f"above the limit {MAX_PREACTIVATION_VARIANCE:.3g}" in str(err)
            assert np.max(net.variance_bound(X)) > np.log(MAX_PREACTIVATION_VARIANCE)
            return
        assert np.max(net.variance_bound(X)) <= np.log(MAX_PREACTIVATION_VARIANCE)
        assert np.all(np.isfinite(out))
        f = net.factors(X)
        assert all(np.all(np.isfinite(z @ z.T)) for z in f.Z)
