"""train_ngd: real parameter updates, one-step convergence at large width, GD contrast, predictions."""
import numpy as np
import pytest

from numerics import MLP, train_ngd
from numerics.approximations import get_approximation
from numerics.measure import unit_norm_inputs, width_sweep
from numerics.training import gd_learning_rate, mse_loss, ngd_step, one_step_loss_ratio


def _data(n=8, dim=16, n_outputs=1, seed=0):
    X = unit_norm_inputs(n, dim, seed)
    Y = 0.5 * np.random.default_rng(seed + 100).standard_normal((n, n_outputs))
    return X, Y


def test_one_exact_step_at_width_4096_drops_train_loss_by_100x():
    """Isotropy (alpha = 1, eta = 1) predicts loss 0 after one step; at width 4096 the linearisation
    error leaves ~1e-3 of the loss (measured ~6e-4), so '> 100x' has margin yet fails if the step is
    wrong by more than ~10% in function space."""
    X, Y = _data()
    net = MLP([16, 4096, 4096, 1], activation="relu", sigma_w2=2.0, seed=0)
    hist = train_ngd(net, X, Y, "exact", learning_rate=None, steps=1, gd=False)
    assert hist.learning_rate == 1.0 and hist.alpha == 1.0
    assert hist.train_loss[1] < hist.train_loss[0] / 100, hist.train_loss


def test_one_step_loss_ratio_improves_with_width():
    """Residual after one step = linearisation error, O(M^-1/2) in f, so the loss ratio ~ M^-1.

    Measured slope ~ -0.95; we assert it is below -0.5 by more than 2 standard errors (a flat or
    growing ratio, i.e. no approach to the infinite-width dynamics, fails)."""
    X, Y = _data()
    sweep = width_sweep(lambda m, s: one_step_loss_ratio(MLP([16, m, m, 1], seed=s), X, Y, "exact"),
                        [128, 256, 512, 1024, 2048], [0, 1])
    assert sweep.slope + 2 * sweep.slope_stderr < -0.5, sweep.to_dict()


def test_train_ngd_really_updates_parameters_with_the_direction():
    X, Y = _data(n=5, dim=6, n_outputs=2)
    net = MLP([6, 32, 32, 2], activation="tanh", sigma_w2=1.5, sigma_b2=0.1, seed=3)
    twin = net.copy()
    approx = get_approximation("block_tridiagonal")(twin, X)
    directions = approx.direction(approx.factors.outputs - Y)
    hist = train_ngd(net, X, Y, "block_tridiagonal", learning_rate=0.7, steps=1, gd=False)
    for p, q, d in zip(net.params, twin.params, directions):
        np.testing.assert_allclose(p, q - 0.7 * d, rtol=0, atol=1e-12)
    assert hist.train_loss[1] == pytest.approx(mse_loss(net.forward(X), Y), rel=1e-12)


@pytest.mark.parametrize("name, depth, alpha", [("exact", 3, 1), ("block_diagonal", 4, 4),
                                                ("block_tridiagonal", 5, 2), ("block_tridiagonal", 4, 2)])
def test_learning_rate_none_uses_theory_alpha_and_matches_measurement(name, depth, alpha):
    X, Y = _data(n=6, dim=8)
    net = MLP([8] + [256] * (depth - 1) + [1], seed=depth)
    hist = train_ngd(net, X, Y, name, steps=2, X_test=unit_norm_inputs(3, 8, 9), Y_test=np.zeros((3, 1)))
    assert hist.alpha == alpha and hist.learning_rate == pytest.approx(1 / alpha)
    assert hist.measured_alpha == pytest.approx(alpha, rel=1e-9) and hist.isotropy_error < 1e-9
    assert len(hist.train_loss) == len(hist.test_loss) == len(hist.gd_train_loss) == len(hist.gd_test_loss) == 3
    assert hist.predicted_train_loss == [hist.train_loss[0], 0.0, 0.0]
    # NGD at eta = 1/alpha beats GD at its stable 1/lambda_max step by orders of magnitude
    assert hist.train_loss[2] < 1e-2 * hist.gd_train_loss[2]
    assert hist.gd_train_loss[2] < hist.gd_train_loss[0]  # GD does descend (stable step)


def test_gd_learning_rate_is_inverse_top_eigenvalue_and_predicted_curve_geometric():
    X, Y = _data(n=4, dim=5)
    net = MLP([5, 64, 1], seed=0)
    eta_gd = gd_learning_rate(net, X)
    from numerics.dense import dense_jacobian
    J = dense_jacobian(net, X)
    assert eta_gd == pytest.approx(1 / np.linalg.eigvalsh(J @ J.T / 4)[-1], rel=1e-10)
    hist = train_ngd(net, X, Y, "exact", learning_rate=0.5, steps=3, gd=False)
    expected = [hist.train_loss[0] * 0.5 ** (2 * t) for t in range(4)]
    np.testing.assert_allclose(hist.predicted_train_loss, expected, rtol=1e-12)


def test_non_isotropic_and_damped_cases_are_explicit():
    X, Y = _data(n=4, dim=5)
    net = MLP([5, 32, 1], seed=0)
    with pytest.raises(ValueError, match="learning_rate=None"):
        train_ngd(net.copy(), X, Y, "diagonal")
    hist = train_ngd(net.copy(), X, Y, "diagonal", learning_rate=0.1, steps=1, gd=False)
    assert hist.alpha is None and hist.predicted_from == "measured" and hist.notes
    damped = train_ngd(net.copy(), X, Y, "exact", steps=1, damping=0.1, gd=False)
    assert damped.alpha == 1.0 and any("damping" in note for note in damped.notes)
    assert damped.isotropy_error > 1e-3  # Theta (Theta + rho)^-1 is not a multiple of I


def test_bad_arguments_are_refused():
    X, Y = _data(n=4, dim=5)
    net = MLP([5, 8, 1], seed=0)
    with pytest.raises(ValueError, match="rows"):
        train_ngd(net, X, Y[:3], "exact")
    with pytest.raises(ValueError, match="X_test"):
        train_ngd(net, X, Y, "exact", X_test=X)
    with pytest.raises(ValueError, match="learning_rate"):
        train_ngd(net, X, Y, "exact", learning_rate=-1.0)
    with pytest.raises(ValueError, match="steps"):
        train_ngd(net, X, Y, "exact", steps=-1)
    with pytest.raises(ValueError, match="approximation"):
        train_ngd(net, X, Y, "newton")


# ---------------------------------------------------------------------------------------------
# regressions (review): test-loss indexing and the Forster transform in train_ngd
# ---------------------------------------------------------------------------------------------
def test_test_loss_index_zero_is_before_the_first_step_and_every_step_is_recorded():
    """Regression: test_loss[0] was recorded after the first update and the last value duplicated.

    A manual replay (fresh copy, same directions, same eta) gives the reference per step; the losses
    are computed by the same forward pass, so they agree to rounding (1e-12 relative)."""
    X, Y = _data(n=6, dim=8)
    X_test, Y_test = unit_norm_inputs(4, 8, 7), 0.5 * np.ones((4, 1))
    net = MLP([8, 64, 64, 1], activation="tanh", seed=2)
    twin = net.copy()
    hist = train_ngd(net, X, Y, "block_diagonal", learning_rate=0.2, steps=3, X_test=X_test, Y_test=Y_test)
    expected_test, expected_gd_test = [], []
    gd_twin = twin.copy()
    for _ in range(3):
        expected_test.append(mse_loss(twin.forward(X_test), Y_test))
        approx = get_approximation("block_diagonal")(twin, X)
        twin.apply_update(approx.direction(approx.factors.outputs - Y), 0.2)
    expected_test.append(mse_loss(twin.forward(X_test), Y_test))
    np.testing.assert_allclose(hist.test_loss, expected_test, rtol=1e-12)
    assert hist.test_loss[0] == pytest.approx(mse_loss(gd_twin.forward(X_test), Y_test), rel=1e-12)
    assert hist.test_loss[-1] != hist.test_loss[-2]          # the last step is not a duplicate
    # GD contrast: same convention (index 0 = initial network)
    assert hist.gd_test_loss[0] == pytest.approx(hist.test_loss[0], rel=1e-12)
    for _ in range(3):
        expected_gd_test.append(mse_loss(gd_twin.forward(X_test), Y_test))
        approx = get_approximation("exact")(gd_twin, X)
        gd_twin.apply_update(approx.gradient(approx.factors.outputs - Y), hist.gd_learning_rate)
    expected_gd_test.append(mse_loss(gd_twin.forward(X_test), Y_test))
    np.testing.assert_allclose(hist.gd_test_loss, expected_gd_test, rtol=1e-12)


def test_kfac_on_forster_inputs_reads_the_position_off_the_data():
    """Forster is a transform of the DATA, applied once by the caller (the map T fitted to the training
    inputs, applied to both sets); train_ngd sees that the inputs are in radial isotropic position and
    takes alpha = M_0 + N (L - 2) + 1, and refuses a learning rate from theory on raw inputs with
    M_0 < N.  Replay with ngd_step on the same inputs must give the same losses (1e-12: same arithmetic)."""
    from numerics.forster import forster_transform

    n, m0 = 20, 5
    X, Y = _data(n=n, dim=m0)
    X_test, Y_test = unit_norm_inputs(6, m0, 11), 0.5 * np.ones((6, 1))
    net = MLP([m0, 128, 128, 1], activation="relu", seed=4)
    twin = net.copy()
    res = forster_transform(X)
    Xf, Xf_test = res.inputs, res.transform(X_test)
    with pytest.raises(ValueError, match="radial isotropic position|Forster"):
        train_ngd(net.copy(), X, Y, "kfac", steps=1)
    hist = train_ngd(net, Xf, Y, "kfac", steps=2, X_test=Xf_test, Y_test=Y_test, gd=True)
    assert hist.alpha == m0 + n + 1                        # alpha = M_0 + N (L - 2) + 1 with Forster
    train, test = [], []
    for _ in range(2):
        train.append(mse_loss(twin.forward(Xf), Y))
        test.append(mse_loss(twin.forward(Xf_test), Y_test))
        ngd_step(twin, Xf, Y, "kfac", hist.learning_rate)
    train.append(mse_loss(twin.forward(Xf), Y))
    test.append(mse_loss(twin.forward(Xf_test), Y_test))
    np.testing.assert_allclose(hist.train_loss, train, rtol=1e-12)
    np.testing.assert_allclose(hist.test_loss, test, rtol=1e-12)
    # the isotropy the prediction relies on holds on the transformed inputs (exact at finite width)
    assert hist.measured_alpha == pytest.approx(m0 + n + 1, rel=1e-9) and hist.isotropy_error < 1e-9
    # GD contrast on the same transformed inputs: its step-0 losses equal NGD's
    assert hist.gd_train_loss[0] == pytest.approx(train[0], rel=1e-12)
    assert hist.gd_test_loss[0] == pytest.approx(test[0], rel=1e-12)


def test_gd_learning_rate_refuses_a_zero_jacobian_and_bad_inputs():
    """All-zero relu weights without bias: J = 0, lambda_max = 0; 1/lambda_max must not become inf."""
    net = MLP([2, 3, 1], activation="relu", seed=0)
    for p in net.params:
        p[...] = 0.0
    with pytest.raises(ValueError, match="lambda_max = 0: GD does not move"):
        gd_learning_rate(net, np.eye(2))
    with pytest.raises(ValueError, match=r"X has 3 columns, expected 2"):
        gd_learning_rate(MLP([2, 3, 1], seed=0), np.ones((2, 3)))


def test_mse_loss_refuses_broadcasting_and_nan():
    """(N, 1) outputs against (N,) targets used to broadcast to an N x N difference (a wrong loss)."""
    assert mse_loss(np.array([[1.0, 1.0], [3.0, 0.0]]), np.zeros((2, 2))) == 11 / 4   # (1 + 1 + 9) / (2 N)
    with pytest.raises(ValueError, match=r"outputs has shape \(3, 1\) but targets has shape \(3,\)"):
        mse_loss(np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"^targets contains a non-finite value"):
        mse_loss(np.zeros((2, 1)), np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match=r"^outputs contains a non-finite value"):
        mse_loss(np.array([[np.inf], [0.0]]), np.zeros((2, 1)))
