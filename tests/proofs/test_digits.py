"""Tests of the real-data experiment: the digits loader (shapes, normalisation, labels, ranks) and a
small real run (exact NGD at width 512 on 20 digits) against its analytic prediction."""
import numpy as np
import pytest

from proofs.experiments import digits as D


def test_loader_shapes_labels_and_split():
    data = D.load_digits_binary()
    assert data.X_train.shape == (100, 64) and data.X_test.shape == (50, 64)
    assert data.Y_train.shape == (100, 1) and data.Y_test.shape == (50, 1)
    assert set(np.unique(data.Y_train)) == {-0.5, 0.5}
    # first class (0) -> +0.5: compare with the raw targets of the first 150 zeros/ones
    from sklearn.datasets import load_digits

    raw = load_digits()
    mask = np.isin(raw.target, (0, 1))
    targets = raw.target[mask][:150]
    assert np.array_equal(np.concatenate([data.Y_train, data.Y_test]).ravel(), np.where(targets == 0, 0.5, -0.5))


def test_loader_normalisation_matches_definition():
    """Each subset: (x - scalar mean) / scalar std, then unit rows -- recomputed from the raw pixels."""
    from sklearn.datasets import load_digits

    data = D.load_digits_binary(n_train=30, n_test=20)
    raw = load_digits()
    images = raw.data[np.isin(raw.target, (0, 1))].astype(float)
    for got, block in ((data.X_train, images[:30]), (data.X_test, images[30:50])):
        z = (block - block.mean()) / block.std()
        assert np.allclose(got, z / np.linalg.norm(z, axis=1, keepdims=True), atol=1e-12)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)


def test_input_ranks_explain_the_unit_wise_assumption():
    """rank X = 48 at N = 100 and 47 at N = 50: M_0 = 64 >= 50 is not enough; N = 40 is full rank."""
    assert D.load_digits_binary(n_train=100).train_input_rank == 48
    assert D.load_digits_binary(n_train=50).train_input_rank == 47
    assert D.load_digits_binary(n_train=40).train_input_rank == 40


@pytest.mark.parametrize("kwargs, match", [
    ({"classes": (1, 1)}, "classes"),
    ({"classes": (0, 12)}, "classes"),
    ({"n_train": 300, "n_test": 100}, "exceeds"),
    ({"n_train": 0}, "n_train"),
])
def test_loader_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.load_digits_binary(**kwargs)


def test_standardise_rejects_degenerate_input():
    with pytest.raises(ValueError, match="zero standard deviation"):
        D.standardise_unit_norm(np.ones((3, 2)))


def test_span_coordinates_is_an_isometry_on_the_training_span():
    data = D.load_digits_binary(n_train=60, n_test=10)
    P, Q = D.span_coordinates(data.X_train, data.X_test)
    assert P.shape[1] == data.train_input_rank
    assert np.allclose(P @ P.T, data.X_train @ data.X_train.T, atol=1e-12)
    assert np.allclose(Q @ P.T, data.X_test @ data.X_train.T, atol=1e-12)  # test-train inner products kept


def test_small_exact_run_matches_prediction():
    """20 digits, width 512: one exact step drops the train loss > 30x and the test loss after the
    step is within 30% of the analytic prediction (finite width 512: ~10% linearisation error)."""
    data = D.load_digits_binary(n_train=20, n_test=10)
    run = D.run_approximation(data, "exact", 512, seed=1, steps=1)
    assert run.alpha == 1.0 and run.isotropy_error < 1e-9
    assert run.train_loss[1] < run.train_loss[0] / 30
    assert run.predicted_test_loss[0] == pytest.approx(run.test_loss[0], rel=1e-12)  # same f_0
    assert run.test_loss[1] == pytest.approx(run.predicted_test_loss[1], rel=0.3)


def test_unit_wise_probe_names_the_failed_assumption():
    """N = 50: M_0 = 64 >= N yet rank X = 47 < N -- the probe must name linear independence; at
    N = 40 (full rank) nothing fails and the isotropy error is at the relu count spread (2x margin)."""
    p50 = D.unit_wise_probe(D.load_digits_binary(n_train=50, n_test=5), 128, seed=0)
    assert "rank X = 47 < N = 50" in p50["failed_assumption"]
    p40 = D.unit_wise_probe(D.load_digits_binary(n_train=40, n_test=5), 256, seed=0)
    assert p40["failed_assumption"] is None
    assert p40["isotropy_error"] < 2 * p40["relu_spread_predicted"]


def test_run_takes_real_steps_through_train_ngd_with_the_step_zero_convention():
    """K-FAC run (span coordinates + Forster, 2 steps): the recorded losses equal a manual replay of
    real NGD steps on a fresh net of the same seed (same arithmetic: 1e-12), index 0 = initial net."""
    from numerics import MLP
    from numerics.approximations import get_approximation
    from numerics.forster import forster_transform
    from numerics.training import mse_loss

    data = D.load_digits_binary(n_train=30, n_test=8)
    run = D.run_approximation(data, "kfac", 256, seed=3, steps=2)
    Xs, Xs_test = D.span_coordinates(data.X_train, data.X_test)
    res = forster_transform(Xs, tol=D.DIGITS_FORSTER_TOL)
    X, X_test = res.inputs, res.transform(Xs_test)
    net = MLP([X.shape[1], 256, 256, 1], activation="relu", sigma_w2=2.0, sigma_b2=0.0, seed=3)
    train, test = [], []
    for _ in range(2):
        train.append(mse_loss(net.forward(X), data.Y_train))
        test.append(mse_loss(net.forward(X_test), data.Y_test))
        approx = get_approximation("kfac")(net, X)
        net.apply_update(approx.direction(approx.factors.outputs - data.Y_train), run.learning_rate)
    train.append(mse_loss(net.forward(X), data.Y_train))
    test.append(mse_loss(net.forward(X_test), data.Y_test))
    np.testing.assert_allclose(run.train_loss, train, rtol=1e-12)
    np.testing.assert_allclose(run.test_loss, test, rtol=1e-12)
    assert run.train_loss[1] < run.train_loss[0] / 10   # the parameters really moved
