"""Fast dual paths == dense reference (explicit P x P G, numpy pinv / solve), for every approximation present.

The harness is generic: it parametrises over ``available_approximations()``, so any approximation
module that lands in ``numerics/approximations/`` is checked the same way (direction, train
operator, test operator; rho = 0 and rho > 0; C = 1 and C = 2; depths 2..6 and 8).

Tolerance: 1e-8 relative (the issue's oracle), or ``100 eps cond(G)`` if larger.  Both sides are
float64 computations of the same exact identity; a backward-stable dense pseudo-inverse has a
relative forward error of about ``eps cond(G on its range)``, so a fixed 1e-8 is only meaningful
for ``cond <= ~1e6``; the exact/BD/BTD/pattern problems here have cond ~1e4..1e6 and so are held to
1e-8, and any wrong factor, block or ordering gives O(1) errors.
"""
import numpy as np
import pytest

from numerics.approximations import available_approximations, get_approximation
from numerics.approximations.pattern import block_pattern
from numerics.dense import compare_with_dense, dense_jacobian, dense_reference, finite_difference_jacobian
from numerics.network import MLP

RTOL = 1e-8
EPS = np.finfo(float).eps
#: every approximation present is checked at these depths (5: BTD's T singular)
DEPTHS = (2, 3, 5)
#: the block-pattern family (this module's owner) additionally at 4, 6 and 8 (T singular again at 8)
PATTERN_FAMILY = ("exact", "block_diagonal", "block_tridiagonal", "pattern")


def _assert_matches_dense(errors):
    tol = max(RTOL, 100 * EPS * errors["condition_number"])
    worst = max(v for k, v in errors.items() if k != "condition_number")
    assert worst < tol, errors


def _options(name, depth):
    """Extra options an approximation needs (pattern: a user pattern coupling first and last layer)."""
    if name == "pattern":
        S = np.eye(depth)
        S[0, -1] = S[-1, 0] = 1.0
        return {"pattern": S}
    return {}


def _problem(depth, n_outputs, seed):
    """A small net whose every layer Jacobian has full row rank: N C <= P_l for every layer."""
    rng = np.random.default_rng(seed)
    width = 9 if depth <= 6 else 6  # keep P (and the dense P x P eigh) small for the deepest nets
    widths = [5] + [width] * (depth - 1) + [n_outputs]
    net = MLP(widths, activation="tanh", sigma_w2=1.5, sigma_b2=0.2, seed=seed)
    X = rng.standard_normal((4, 5))
    X2 = rng.standard_normal((3, 5))
    residual = rng.standard_normal((4, n_outputs))
    return net, X, X2, residual


@pytest.mark.parametrize("name", available_approximations())
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("n_outputs", (1, 2))
@pytest.mark.parametrize("damping", (0.0, 0.3))
def test_fast_equals_dense(name, depth, n_outputs, damping):
    net, X, X2, residual = _problem(depth, n_outputs, seed=100 * depth + 10 * n_outputs)
    approx = get_approximation(name)(net, X, damping=damping, **_options(name, depth))
    _assert_matches_dense(compare_with_dense(approx, residual, X2=X2))


@pytest.mark.parametrize("name", PATTERN_FAMILY)
@pytest.mark.parametrize("depth", (4, 6, 8))
@pytest.mark.parametrize("n_outputs", (1, 2))
@pytest.mark.parametrize("damping", (0.0, 0.3))
def test_pattern_family_equals_dense_deeper(name, depth, n_outputs, damping):
    net, X, X2, residual = _problem(depth, n_outputs, seed=100 * depth + 10 * n_outputs)
    approx = get_approximation(name)(net, X, damping=damping, **_options(name, depth))
    errors = compare_with_dense(approx, residual, X2=X2)
    assert errors["condition_number"] < 1e6  # the fixed 1e-8 below is meaningful
    assert max(v for k, v in errors.items() if k != "condition_number") < RTOL, errors


@pytest.mark.parametrize("bandwidth", (0, 1, 2, 5))
def test_banded_patterns_equal_dense(bandwidth):
    net, X, X2, residual = _problem(6, 2, seed=7)
    approx = get_approximation("pattern")(net, X, bandwidth=bandwidth)
    errors = compare_with_dense(approx, residual, X2=X2)
    assert max(v for k, v in errors.items() if k != "condition_number") < RTOL, errors


def test_named_patterns_match_their_specialisations():
    """exact / BD / BTD are the pattern code with S = ones / I / T (fast paths may differ)."""
    net, X, X2, residual = _problem(5, 2, seed=3)
    for name, kind in (("exact", "ones"), ("block_diagonal", "identity"), ("block_tridiagonal", "tridiagonal")):
        for damping in (0.0, 0.05):
            special = get_approximation(name)(net, X, damping=damping)
            general = get_approximation("pattern")(net, X, damping=damping, pattern=block_pattern(kind, 5))
            np.testing.assert_allclose(special.operator(X2), general.operator(X2), rtol=0, atol=1e-9)
            for a, b in zip(special.direction(residual), general.direction(residual)):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max())


def test_dense_jacobian_equals_central_differences():
    """The factor-built J against an independent finite-difference J (only net.forward used).

    Central differences at h = 1e-6 on a smooth (tanh) net: truncation O(h^2) ~ 1e-12 and rounding
    O(eps/h) ~ 1e-10, so 1e-7 absolute on O(1) entries is a safe bound that any wrong index fails.
    """
    rng = np.random.default_rng(0)
    net = MLP([3, 5, 4, 2], activation="tanh", sigma_w2=1.3, sigma_b2=0.3, seed=4)
    X = rng.standard_normal((4, 3))
    J = dense_jacobian(net, X)
    J_fd = finite_difference_jacobian(net, X)
    assert J.shape == (8, net.n_params)
    np.testing.assert_allclose(J, J_fd, rtol=0, atol=1e-7)


def test_dense_reference_exact_update_is_pseudo_inverse_solution():
    """Independent of any approximation code: G = J^T J / N, x = G^+ J^T r / N = J^+ r."""
    net, X, _, residual = _problem(3, 2, seed=5)
    approx = get_approximation("exact")(net, X)
    ref = dense_reference(approx, residual)
    J = dense_jacobian(net, X)
    np.testing.assert_allclose(ref.G, J.T @ J / X.shape[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.update, np.linalg.pinv(J) @ residual.ravel(), rtol=0, atol=1e-9)


def test_dense_reference_refuses_large_networks():
    net = MLP([50, 200, 1], seed=0)
    with pytest.raises(ValueError, match="too large"):
        dense_jacobian(net, np.ones((2, 50)))


def test_pattern_with_ones_outside_its_range_is_the_pseudo_inverse_and_flagged():
    """S = diag(1, 0): layer 2's blocks are dropped, 1 is not in range(S), so there is no rho -> 0+
    limit; rho = 0 must still equal the dense Moore-Penrose solution, and the diagnostics say why."""
    net, X, X2, residual = _problem(2, 2, seed=9)
    approx = get_approximation("pattern")(net, X, pattern=np.diag([1.0, 0.0]))
    errors = compare_with_dense(approx, residual, X2=X2)
    assert max(v for k, v in errors.items() if k != "condition_number") < RTOL, errors
    assert "not in range(S)" in approx.diagnostics["note"]
    steps = approx.direction(residual)
    assert np.linalg.norm(steps[1]) < 1e-12 * np.linalg.norm(steps[0])  # layer 2 does not move (rounding only)


def test_dense_reference_handles_G_equal_zero():
    """Regression: G = 0 (all weights zero, relu: every Jacobian row vanishes) crashed with a zero-size
    max.  G^+ = 0 exactly, so update/operators are exactly 0, rank 0, cond reported as inf with a note."""
    net = MLP([3, 5, 5, 1], activation="relu", seed=0)
    net.set_flat_params(np.zeros(net.n_params))
    X = np.random.default_rng(0).standard_normal((4, 3))
    approx = get_approximation("diagonal")(net, X)
    ref = dense_reference(approx, np.ones((4, 1)), X2=X[:2])
    assert np.all(ref.G == 0) and ref.rank == 0 and ref.condition_number == np.inf
    assert np.all(ref.update == 0) and np.all(ref.operator == 0) and np.all(ref.test_operator == 0)
    assert "G = 0" in ref.note and "pseudo-inverse is 0" in ref.note
    # with damping the system is rho I: well defined, rank P, condition number 1
    damped = dense_reference(get_approximation("diagonal")(net, X, damping=0.5), np.ones((4, 1)))
    assert damped.rank == net.n_params and damped.condition_number == 1.0 and damped.note is None
