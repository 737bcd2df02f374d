"""The ten-class digits experiment on a small version (N = 40, width 256): every approximation and both losses
run, the per-step table and the figure series are well formed, predictions come from the declared source, and
the infinite-width cross-entropy predictor equals the finite-width linearised step it models (exact identity)."""
import numpy as np
import pytest

import proofs.experiments.digits_multiclass as DM
from proofs.claims.digits_multiclass import _series, table
from proofs.figures import check_series


@pytest.fixture(scope="module")
def data():
    return DM.load_digits_multiclass(n_train=40, n_test=20)


def test_loader(data):
    assert data.X_train.shape == (40, 64) and data.Y_test.shape == (20, 10)
    assert np.allclose(np.linalg.norm(data.X_train, axis=1), 1.0)
    assert np.array_equal(data.Y_train.sum(axis=1), np.ones(40)) and data.n_classes == 10
    assert sum(data.class_counts()["train"]) == 40
    with pytest.raises(ValueError, match="exceeds"):
        DM.load_digits_multiclass(1700, 200)
    with pytest.raises(ValueError, match="n_test=1 is not allowed"):
        DM.load_digits_multiclass(10, 1)


@pytest.fixture(scope="module")
def runs(data):
    out = {}
    for loss in ("mse", "cross_entropy"):
        for name in DM.APPROXIMATIONS:
            out[(loss, name)] = DM.run_multiclass(data, name, loss, 256, seed=7, steps=2)
    return out


def test_every_run_has_its_table_and_prediction(runs):
    for (loss, name), r in runs.items():
        steps = min(2, DM.MAX_STEPS.get(name, 2))
        assert len(r.train_loss) == len(r.test_accuracy) == len(r.predicted_train_loss) == steps + 1
        assert r.train_loss[0] == r.predicted_train_loss[0]
        assert r.alpha_source == ("theory" if name in DM.THEORY else "mean eigenvalue (trace identity)")
        if name in ("exact", "block_diagonal", "block_tridiagonal"):
            assert np.all(np.isfinite(r.predicted_test_loss)) and np.isfinite(r.test_output_error)
        assert r.learning_rate == pytest.approx((1.0 if loss == "mse" else DM.CE_STEP_FRACTION) / r.alpha)
    rows = table(runs)
    assert len(rows) == sum(len(r.train_loss) for r in runs.values())
    assert {"train_acc_pred", "test_loss_pred"} <= set(rows[0])
    s = {"steps": 2, "width": 256, "ce_step_fraction": DM.CE_STEP_FRACTION}
    for name, series in _series(runs, s).items():
        check_series(series, name)


def test_cross_entropy_predictor_is_the_linearised_step(data):
    """One predicted step = f_0 - eta J G^+ J^T Pi (p_0 - y) / N of the finite net up to the kernels' finite-width
    error; with the EMPIRICAL layer Grams instead of the analytic ones it is the same step exactly."""
    from numerics import MLP
    from numerics.approximations import get_approximation
    from numerics.factors import layer_grams
    from numerics.losses import CrossEntropyGeometry

    X, Y, Xt = data.X_train[:12], data.Y_train[:12], data.X_test[:5]
    net = MLP([64, 128, 128, 10], seed=1)
    for name in ("exact", "block_diagonal", "block_tridiagonal"):
        approx = get_approximation(name)(net, X, loss="cross_entropy")
        f_all = net.factors(np.vstack([X, Xt]))
        g = CrossEntropyGeometry.at(approx.outputs)
        # the empirical per-layer Grams J_l(X') J_l(X)^T are (Theta_l (x) I)-like blocks: feed them untransformed
        raw_train = [K for K in layer_grams(net.factors(X))]
        n, c = 12, 10
        S = g.S
        Sb = np.zeros((n * (c - 1), n * c))
        for i in range(n):
            Sb[i * (c - 1):(i + 1) * (c - 1), i * c:(i + 1) * c] = S[i]
        train = [Sb @ K @ Sb.T for K in raw_train]
        cross = [K @ Sb.T for K in layer_grams(net.factors(X), f_all)]
        op = DM._pattern_operator(name, train, cross, 3)
        want = approx.logit_operator(np.vstack([X, Xt]))
        got = g.right(op, g.M)
        assert np.linalg.norm(got - want) < 1e-8 * np.linalg.norm(want), name


def test_kfac_cross_entropy_predictor_is_the_linearised_step(data):
    """K-FAC: the factor-regression operator (theory.cross_entropy) fed the EMPIRICAL factor Grams of a finite net
    is that net's K-FAC logit operator J(X') G^+ J^T Pi / N exactly (the analytic prediction replaces the Grams by
    their infinite-width limits)."""
    from numerics import MLP
    from numerics.approximations import get_approximation
    from numerics.losses import CrossEntropyGeometry
    from theory.cross_entropy import kfac_cross_entropy_test_operator_from_grams

    X, Xt = data.X_train[:6], data.X_test[:4]
    net = MLP([64, 96, 96, 10], seed=2)
    approx = get_approximation("kfac")(net, X, loss="cross_entropy")
    g = CrossEntropyGeometry.at(approx.outputs)
    ft, fx = net.factors(X), net.factors(Xt)
    n, c = 6, 10
    bt, bx, zt, zx = [], [], [], []
    for l in range(net.depth):
        Dt = np.einsum("nac,ncm->nam", g.S, ft.Delta[l]).reshape(n * (c - 1), -1)
        bt.append(Dt @ Dt.T)
        bx.append(fx.Delta[l].reshape(-1, Dt.shape[1]) @ Dt.T)
        zt.append(ft.Z[l] @ ft.Z[l].T)
        zx.append(fx.Z[l] @ ft.Z[l].T)
    op = kfac_cross_entropy_test_operator_from_grams(bt, bx, zt, zx)
    want = approx.logit_operator(Xt)
    got = g.right(op, g.M)
    assert np.linalg.norm(got - want) < 1e-8 * np.linalg.norm(want)


def test_kfac_cross_entropy_run_has_test_predictions(runs):
    r = runs[("cross_entropy", "kfac")]
    assert np.all(np.isfinite(r.predicted_test_loss)) and np.isfinite(r.test_output_error)
    assert np.isfinite(r.extra["kfac_train_vs_derived"])
