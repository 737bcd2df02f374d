"""Block-pattern approximations (exact / block-diagonal / block tri-diagonal / any pattern) at finite width.

Exact identities are asserted at 1e-9 (absolute on O(1)..O(L) matrices): they hold to float64
rounding (~1e-13 measured) whenever every layer Gram is positive definite, which the small nets
below guarantee (N C <= P_l, distinct inputs, smooth activations; conditions ~1e4).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.approximations import get_approximation
from numerics.approximations.pattern import (block_pattern, check_pattern, pattern_coefficients,
                                             pattern_null_space)
from numerics.factors import layer_grams
from numerics.linalg import SingularSystemError
from numerics.network import MLP
from numerics.sweeps import fit_power_law

ATOL = 1e-9


def _net(depth, n_outputs=1, width=12, activation="tanh", sigma_b2=0.1, seed=0, input_dim=6):
    return MLP([input_dim] + [width] * (depth - 1) + [n_outputs], activation=activation,
               sigma_w2=1.5, sigma_b2=sigma_b2, seed=seed)


def _inputs(n, dim=6, seed=1):
    return np.random.default_rng(seed).standard_normal((n, dim))


# -- isotropy: Theta_G = alpha I exactly at finite width --------------------------------------
@pytest.mark.parametrize("depth", (2, 3, 4, 5, 6, 7, 8))
@pytest.mark.parametrize("n_outputs", (1, 2))
def test_theta_g_is_alpha_identity(depth, n_outputs):
    """alpha = 1 (exact), L (block-diagonal), ceil(L/3) (block tri-diagonal, also singular T)."""
    net = _net(depth, n_outputs, seed=depth)
    X = _inputs(5, seed=depth)
    eye = np.eye(5 * n_outputs)
    for name, alpha in (("exact", 1), ("block_diagonal", depth), ("block_tridiagonal", math.ceil(depth / 3))):
        theta_g = get_approximation(name)(net, X).operator()
        np.testing.assert_allclose(theta_g, alpha * eye, rtol=0, atol=ATOL * alpha, err_msg=name)


def test_pattern_alpha_is_one_s_pinv_one_for_banded_and_custom_patterns():
    """alpha(S) = 1^T S^+ 1 whenever 1 is in range(S) (banded width 2; first/last coupled)."""
    depth = 6
    net, X = _net(depth, 2, seed=11), _inputs(4, seed=11)
    custom = np.eye(depth)
    custom[0, -1] = custom[-1, 0] = 1
    for S in (block_pattern("banded", depth, 2), custom):
        info = pattern_coefficients(S)
        assert info["ones_in_range"]
        theta_g = get_approximation("pattern")(net, X, pattern=S).operator()
        np.testing.assert_allclose(theta_g, info["alpha"] * np.eye(8), rtol=0, atol=ATOL * info["alpha"])


def test_exact_dual_and_pattern_methods_agree():
    net, X = _net(4, 2, seed=3), _inputs(5, seed=3)
    X2 = _inputs(3, seed=4)
    r = np.random.default_rng(5).standard_normal((5, 2))
    for damping in (0.0, 0.2):
        a = get_approximation("exact")(net, X, damping=damping)
        b = get_approximation("exact")(net, X, damping=damping, method="pattern")
        np.testing.assert_allclose(a.operator(X2), b.operator(X2), rtol=0, atol=ATOL)
        for da, db in zip(a.direction(r), b.direction(r)):
            np.testing.assert_allclose(da, db, rtol=0, atol=ATOL * np.abs(db).max())


# -- which layers move --------------------------------------------------------------------------
@pytest.mark.parametrize("depth, moving", [(3, {2}), (4, {1, 4}), (6, {2, 5})])
def test_btd_moves_only_layers_with_nonzero_c(depth, moving):
    """c = T^{-1} 1 is (0,1,0), (1,0,0,1), (0,1,0,0,1,0): only those layers get a nonzero step."""
    net, X = _net(depth, seed=depth), _inputs(5, seed=depth)
    r = np.random.default_rng(0).standard_normal((5, 1))
    steps = get_approximation("block_tridiagonal")(net, X).direction(r)
    norms = np.array([np.linalg.norm(s) for s in steps])
    for l in range(1, depth + 1):
        if l in moving:
            assert norms[l - 1] > 1e-3 * norms.max()
        else:
            assert norms[l - 1] < 1e-10 * norms.max()


# -- rho -> 0+ limit, including singular T ------------------------------------------------------
@pytest.mark.parametrize("depth", (3, 5, 8))
def test_damped_solution_converges_to_min_norm_solution(depth):
    """||x(rho) - x(0)|| / ||x(0)|| = O(rho): the fitted slope of the error vs rho is 1.

    At L = 5, 8 the pattern T is singular, so this checks that the rho = 0 path (pseudo-inverse via
    the null space of T) is the true rho -> 0+ limit of (G + rho I)^{-1} grad, not another
    generalised inverse.  Slope 1 +- 0.05: the error is analytic in rho with a nonzero linear
    term; the three decades used stay far from both rounding (1e-10) and the O(rho^2) regime.
    """
    net, X = _net(depth, 2, seed=depth), _inputs(4, seed=depth)
    r = np.random.default_rng(1).standard_normal((4, 2))
    flat = lambda d: np.concatenate([x.ravel() for x in d])  # noqa: E731
    x0 = flat(get_approximation("block_tridiagonal")(net, X).direction(r))
    rhos = [1e-4, 1e-5, 1e-6, 1e-7]
    errors = [np.linalg.norm(flat(get_approximation("block_tridiagonal")(net, X, damping=rho).direction(r)) - x0)
              / np.linalg.norm(x0) for rho in rhos]
    fit = fit_power_law(rhos, errors)
    assert abs(fit.slope - 1.0) < 0.05, (errors, fit.slope)
    assert errors[-1] < 1e-4


def test_singular_t_test_kernel_has_null_space_correction():
    """L = 5: T^+ 1 = c = (1/2, 1/2, 0, 1/2, 1/2), null(T) = span(1, -1, 0, 1, -1).

    The rho = 0 test kernel is sum_l K_l(x', X) v_l with v_l = K_l^{-1}(c_l r + n_l z) and
    (sum_l n_l^2 K_l^{-1}) z = -sum_l n_l c_l K_l^{-1} r (stationarity of the min-norm problem on
    null(T)); it is NOT the invertible-T formula sum_l c_l K_l(x', X) K_l^{-1}.
    """
    depth = 5
    net, X, X2 = _net(depth, 1, seed=21), _inputs(5, seed=21), _inputs(4, seed=22)
    S = block_pattern("tridiagonal", depth)
    c = np.array(pattern_coefficients(S)["c"])
    np.testing.assert_allclose(c, [0.5, 0.5, 0, 0.5, 0.5], atol=1e-12)
    nvec = pattern_null_space(S)[:, 0]
    K = layer_grams(net.factors(X))
    K2 = layer_grams(net.factors(X), net.factors(X2))
    Kinv = [np.linalg.inv(k) for k in K]
    R = np.eye(5)  # all residual directions at once
    lhs = sum(n ** 2 * ki for n, ki in zip(nvec, Kinv))
    z = np.linalg.solve(lhs, -sum(n * cl * ki for n, cl, ki in zip(nvec, c, Kinv)) @ R)
    corrected = sum(k2 @ ki @ (cl * R + n * z) for k2, ki, cl, n in zip(K2, Kinv, c, nvec))
    naive = sum(cl * k2 @ ki for k2, ki, cl in zip(K2, Kinv, c))
    fast = get_approximation("block_tridiagonal")(net, X).operator(X2)
    np.testing.assert_allclose(fast, corrected, rtol=0, atol=1e-9 * np.abs(corrected).max())
    gap = np.linalg.norm(corrected - naive) / np.linalg.norm(corrected)
    assert gap > 1e-2, gap  # the correction is a visible, O(1)-ish effect, not rounding


# -- singular systems: detected, named, never silent ------------------------------------------
def test_width_below_n_raises_with_condition_number_and_assumption():
    net = MLP([5, 3, 1], activation="tanh", sigma_w2=1.5, seed=0)  # P_2 = 3 < N = 6
    X = _inputs(6, dim=5)
    with pytest.raises(SingularSystemError) as info:
        get_approximation("block_diagonal")(net, X).operator()
    assert info.value.condition_number > 1e12
    assert "P_2" in info.value.assumption and "N C = 6" in info.value.assumption
    with pytest.raises(SingularSystemError) as info:
        get_approximation("block_tridiagonal")(net, X)  # rho = 0 pattern path checks every K_l up front
    assert info.value.condition_number > 1e12          # exactly singular rank-3 Gram: reported as inf
    assert "P_2 = M_2 (M_1 + bias) = 1 x 3 = 3 parameters < N C = 6" in info.value.assumption
    # exact only needs J J^T = K_1 + K_2 (P_1 = 15 >= 6): still isotropic
    np.testing.assert_allclose(get_approximation("exact")(net, X).operator(), np.eye(6), atol=ATOL)
    # with damping the system is regular: finite answer, no error
    damped = get_approximation("block_diagonal")(net, X, damping=0.1).operator()
    assert np.all(np.isfinite(damped))


def test_duplicate_inputs_are_named():
    net = _net(3, seed=2)
    X = _inputs(5)
    X[3] = X[0]
    for name in ("exact", "block_diagonal", "block_tridiagonal"):
        with pytest.raises(SingularSystemError) as info:
            get_approximation(name)(net, X).operator()
        assert "duplicate inputs" in info.value.assumption and "0&3" in info.value.assumption, name
        assert info.value.condition_number > 1e12


def test_dead_relu_units_are_named():
    net = MLP([4, 6, 6, 1], activation="relu", sigma_w2=2.0, sigma_b2=1.0, seed=0)
    W1 = net.params[0]
    W1[1:, :-1] = 0.0
    W1[1:, -1] = -1.0  # units 2..6 of layer 1: u = -sigma_b < 0 on every input -> dead
    X = _inputs(8, dim=4)
    for name in ("block_diagonal", "block_tridiagonal"):
        with pytest.raises(SingularSystemError) as info:
            get_approximation(name)(net, X).operator()
        assert "5 of 6 units of layer 1 are dead" in info.value.assumption, name


def test_bad_options_and_patterns_are_refused():
    net, X = _net(3), _inputs(4)
    with pytest.raises(TypeError, match="unexpected option"):
        get_approximation("block_tridiagonal")(net, X, pattren=np.eye(3))
    with pytest.raises(TypeError, match="pattern"):
        get_approximation("pattern")(net, X)
    with pytest.raises(ValueError, match="symmetric"):
        check_pattern(np.triu(np.ones((3, 3))), 3)
    with pytest.raises(ValueError, match="0 and 1"):
        check_pattern(2 * np.eye(3), 3)
    with pytest.raises(ValueError, match="shape"):
        check_pattern(np.eye(2), 3)
    with pytest.raises(ValueError, match="damping"):
        get_approximation("exact")(net, X, damping=-1.0)
    with pytest.raises(ValueError, match="residual"):
        get_approximation("exact")(net, X).direction(np.ones((3, 1)))


@pytest.mark.parametrize("depth, alpha", [(L, math.ceil(L / 3)) for L in range(1, 16)])
def test_tridiagonal_pattern_coefficients(depth, alpha):
    """1^T T^+ 1 = ceil(L/3) for every L, with 1 in range(T) (so train isotropy holds)."""
    info = pattern_coefficients(block_pattern("tridiagonal", depth))
    assert info["alpha"] == alpha and info["ones_in_range"]
    assert info["null_dimension"] == (1 if depth % 3 == 2 else 0)


# -- properties on random small nets -------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(depth=st.integers(2, 5), n_outputs=st.integers(1, 2), n=st.integers(2, 4),
       activation=st.sampled_from(["tanh", "erf", "relu", "softplus"]), bias=st.booleans(),
       seed=st.integers(0, 10_000), damping=st.sampled_from([0.0, 0.05]))
def test_property_isotropy_or_named_failure(depth, n_outputs, n, activation, bias, seed, damping):
    """Exact: Theta_G symmetric PSD (eigenvalues in [0, 1]); undamped: = alpha I; never silent.

    Random nets may be degenerate (relu dead units, near-parallel inputs): then the fast path must
    raise SingularSystemError with a condition number and an assumption, never return garbage.
    """
    net = MLP([5] + [10] * (depth - 1) + [n_outputs], activation=activation, sigma_w2=1.5,
              sigma_b2=0.2 if bias else 0.0, seed=seed)
    X = np.random.default_rng(seed + 1).standard_normal((n, 5))
    eye = np.eye(n * n_outputs)
    for name, alpha in (("exact", 1), ("block_diagonal", depth), ("block_tridiagonal", math.ceil(depth / 3))):
        try:
            theta_g = get_approximation(name)(net, X, damping=damping).operator()
        except SingularSystemError as err:
            assert err.condition_number > 1e11 and err.assumption
            continue
        assert np.all(np.isfinite(theta_g))
        np.testing.assert_allclose(theta_g, theta_g.T, rtol=0, atol=1e-9 * alpha)
        if name == "exact":
            lam = np.linalg.eigvalsh((theta_g + theta_g.T) / 2)
            assert lam.min() > -1e-9 and lam.max() < 1 + 1e-9  # Theta (Theta + rho)^-1
        if damping == 0.0:
            np.testing.assert_allclose(theta_g, alpha * eye, rtol=0, atol=1e-7 * alpha)


def test_exact_with_fewer_parameters_than_outputs_is_named():
    net = MLP([2, 1], activation="linear", sigma_w2=1.0, seed=0)  # P = 2 < N C = 3
    with pytest.raises(SingularSystemError) as info:
        get_approximation("exact")(net, _inputs(3, dim=2))
    assert "P = 2 parameters < N C = 3" in info.value.assumption
