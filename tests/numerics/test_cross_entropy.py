"""Cross-entropy in numerics: the loss definitions, and every approximation's operator and direction
against an independent dense computation from the explicit Jacobian and the explicit ``H``.

The dense reference builds ``F = J^T H J / N`` from ``J`` (explicit ``N C x P``, :func:`numerics.dense.dense_jacobian`)
and ``H = blockdiag_n(diag p_n - p_n p_n^T)`` written out here, then each approximation's ``G`` from its
definition -- blocks of ``F`` (exact, block-diagonal, block tri-diagonal, patterns, unit-wise, diagonal),
``B_l (x) A_{l-1}`` with ``B_l = sum_n Delta_n^T H_n Delta_n / N`` from the UNtransformed backward signals
(K-FAC), the eigenbasis of those factors with the second moments of ``F_ll`` (EKFAC) -- and takes
``numpy`` pseudo-inverses / solves.  Nothing of the thin factor ``S_n``, the residual map or the dual
solvers is used.

Tolerance: 1e-9 relative (the issue's oracle): both sides compute one exact identity in float64, the dense
pseudo-inverse has a forward error ``~ eps cond(G)``, ``cond`` is 1e0..4e6 on the nets below (measured errors
1e-16..5e-11), and any wrong factor (``H`` for ``S``, the squared-loss ``B``) gives O(1e-2..1) errors
(mutation tests).
"""
import numpy as np
import pytest

import numerics.losses as losses_module
from numerics import MLP, function_space_operator
from numerics.approximations import get_approximation
from numerics.dense import dense_jacobian, finite_difference_jacobian
from numerics.losses import (CrossEntropyGeometry, accuracy, check_targets, cross_entropy_loss, hessian,
                             hessian_pinv_sqrt, hessian_sqrt, loss_value, newton_residual, probability_isotropy_error,
                             residual_map, softmax, thin_factor)
from numerics.operator import probability_space_operator
from numerics.training import AUTHORS_CE_UPDATES, authors_ce_step, ngd_step, train_ngd
from theory.metrics import relative_error

RTOL = 1e-9
EPS = np.finfo(float).eps
NAMES = ("exact", "block_diagonal", "block_tridiagonal", "pattern", "kfac", "unit_wise", "diagonal", "ekfac")
CLASSES = (2, 3, 10)


# ---------------------------------------------------------------------------------------------
# the loss definitions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("scale", (0.01, 1.0, 20.0))
def test_factor_residual_map_and_roots(c, scale):
    """S^T S = H, S^T M = Pi, (H^1/2)^2 = H (PSD), H^1/2 H^+1/2 = Pi, H (H^+ r) = r: relative to |H| ~ max p."""
    rng = np.random.default_rng(c)
    f = scale * rng.standard_normal((6, c))
    p = softmax(f)
    H, S, M = hessian(p), thin_factor(p), residual_map(p)
    Pi = np.eye(c) - 1.0 / c
    top = np.abs(H).max()
    assert S.shape == M.shape == (6, c - 1, c)
    # both sides relatively accurate entry by entry (H's diagonal as p_c * sum of the others)
    assert np.all(np.abs(np.einsum("nac,nad->ncd", S, S) - H) <= 50 * EPS * np.abs(H) + 1e-300)
    assert np.abs(np.einsum("nac,nad->ncd", S, M) - Pi).max() < 1e-12 * max(1.0, 1.0 / p.min() ** 0.5) * 1e3
    r = p - np.eye(c)[rng.integers(0, c, 6)]
    x = newton_residual(p, r)                      # Pi (r / p): relative error ~ eps per entry of r / p
    assert np.abs(np.einsum("ncd,nd->nc", H, x) - r).max() < 100 * EPS * max(1.0, np.abs(x).max())
    assert np.abs(x.sum(axis=1)).max() < 100 * EPS * np.abs(x).max()
    if scale > 1.0:
        return   # the PSD roots below come from eigh: absolute accuracy sqrt(eps |H|) for tiny probabilities
    R = hessian_sqrt(p)
    assert np.array_equal(R, R.transpose(0, 2, 1)) and np.linalg.eigvalsh(R).min() > -1e-12
    assert np.abs(R @ R - H).max() < 1e-12 * max(1.0, top)
    # the pinv root's error is eps cond(H on 1^perp) ~ eps / min p, relative to |H^{+1/2}| ~ p_min^{-1/2}
    assert np.abs(R @ hessian_pinv_sqrt(p) - Pi).max() < 1e3 * EPS / p.min()


def test_factor_is_accurate_for_tiny_probabilities():
    """S_n = U^T diag(sqrt p) is relatively accurate where an eigendecomposition of H is not: at p_c ~ 1e-30
    the entries of S^T S reproduce H_n[c, c] = p_c (1 - p_c) to a few eps relative."""
    f = np.array([[0.0, -69.0, 3.0]])
    p = softmax(f)
    S = thin_factor(p)
    H = hessian(p)
    got = (S[0].T @ S[0])[1, 1]
    assert abs(got - H[0, 1, 1]) < 10 * EPS * H[0, 1, 1]


def test_softmax_and_loss_values():
    f = np.array([[1000.0, 1000.0, 999.0], [0.0, 0.0, 0.0]])
    p = softmax(f)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)
    Y = np.eye(3)[[2, 0]]
    expected = (-np.log(np.exp(-1.0) / (2 + np.exp(-1.0))) + np.log(3.0)) / 2
    assert abs(cross_entropy_loss(f, Y) - expected) < 1e-14
    assert abs(loss_value(f, Y, "cross_entropy") - expected) < 1e-14
    assert loss_value(np.array([[1.0], [3.0]]), np.zeros((2, 1))) == 2.5
    assert accuracy(f, Y) == 0.5


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="loss='hinge' is unknown"):
        check_targets("Y", np.eye(2), 2, 2, "hinge")
    with pytest.raises(ValueError, match=r"Y row 1 = \[0.5, 0.7\].*one-hot"):
        check_targets("Y", [[1.0, 0.0], [0.5, 0.7]], 2, 2, "cross_entropy")
    with pytest.raises(ValueError, match="C >= 2"):
        check_targets("Y", np.ones((2, 1)), 2, 1, "cross_entropy")
    with pytest.raises(ValueError, match="Y has 3 columns, expected 2"):
        check_targets("Y", np.eye(3), 3, 2, "cross_entropy")
    with pytest.raises(ValueError, match=r"p\[0, 1\] = 0.0"):
        hessian(np.array([[1.0, 0.0]]))
    net = MLP([4, 8, 1], seed=0)
    X = np.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(ValueError, match="C >= 2"):
        get_approximation("exact")(net, X, loss="cross_entropy")
    with pytest.raises(ValueError, match="loss='xent' is unknown"):
        function_space_operator(net, X, loss="xent")
    net3 = MLP([4, 16, 3], seed=0)
    approx = get_approximation("exact")(net3, X, loss="cross_entropy")
    with pytest.raises(ValueError, match="row 0 sums to"):
        approx.direction(np.ones((3, 3)))       # f - y of squared loss, not p - y
    with pytest.raises(ValueError, match=r"expected finite \(N, C\) = \(3, 3\)"):
        approx.direction(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="variant='plus_mse' is a cross-entropy update"):
        train_ngd(net3, X, np.eye(3), "exact", learning_rate=1.0, variant="plus_mse")
    with pytest.raises(ValueError, match="variant='newton' is unknown"):
        ngd_step(net3, X, np.eye(3), "exact", loss="cross_entropy", variant="newton")
    with pytest.raises(ValueError, match="one-hot"):
        train_ngd(net3, X, np.full((3, 3), 0.5), "exact", loss="cross_entropy", learning_rate=1.0)


# ---------------------------------------------------------------------------------------------
# the independent dense reference
# ---------------------------------------------------------------------------------------------
def _blockdiag(blocks):
    n, a, b = blocks.shape
    out = np.zeros((n * a, n * b))
    for i in range(n):
        out[i * a:(i + 1) * a, i * b:(i + 1) * b] = blocks[i]
    return out


def _dense_G(name, net, X, H_blocks, options):
    """G of approximation ``name`` under cross-entropy from its definition (module docstring)."""
    factors = net.factors(X)
    n = X.shape[0]
    J = dense_jacobian(net, X)
    H = _blockdiag(H_blocks)
    F = J.T @ H @ J / n
    sizes = [p.size for p in net.params]
    edges = np.cumsum([0] + sizes)
    L = len(sizes)
    layer = np.repeat(np.arange(L), sizes)
    if name in ("exact", "block_diagonal", "block_tridiagonal", "pattern"):
        S = {"exact": np.ones((L, L)), "block_diagonal": np.eye(L),
             "block_tridiagonal": (np.abs(np.subtract.outer(np.arange(L), np.arange(L))) <= 1) * 1.0,
             "pattern": options.get("pattern")}[name]
        return F * S[layer][:, layer]
    if name == "unit_wise":
        unit = np.concatenate([np.repeat(np.arange(p.shape[0]), p.shape[1]) + 1000 * l for l, p in enumerate(net.params)])
        return F * (unit[:, None] == unit[None, :])
    if name == "diagonal":
        return np.diag(np.diag(F))
    G = np.zeros_like(F)
    for l in range(L):
        D, Z = factors.Delta[l], factors.Z[l]                      # untransformed (N, C, M_l), (N, m)
        B = np.einsum("nci,ncd,ndj->ij", D, H_blocks, D) / n       # sum_n Delta_n^T H_n Delta_n / N
        A = Z.T @ Z / n
        sl = slice(edges[l], edges[l + 1])
        if name == "kfac":
            G[sl, sl] = np.kron(B, A)
        else:  # ekfac: eigenbases of B and A, eigenvalues the second moments of F_ll in that basis
            Q = np.kron(np.linalg.eigh(B)[1], np.linalg.eigh(A)[1])
            s = np.einsum("pi,pq,qi->i", Q, F[sl, sl], Q)
            G[sl, sl] = (Q * s) @ Q.T
    return G


def _dense_reference(name, net, X, X2, Y, damping, options, rcond=1e-10):
    n, c = X.shape[0], net.n_outputs
    p = softmax(net.forward(X))
    Hb = hessian(p)
    G = _dense_G(name, net, X, Hb, options)
    P = G.shape[0]
    if damping > 0:
        inv = np.linalg.inv(G + damping * np.eye(P))
        cond = np.linalg.cond(G + damping * np.eye(P))
    else:
        lam, V = np.linalg.eigh((G + G.T) / 2)
        keep = np.abs(lam) > rcond * np.abs(lam).max()
        inv = (V[:, keep] / lam[keep]) @ V[:, keep].T
        cond = np.abs(lam[keep]).max() / np.abs(lam[keep]).min()
    J, J2 = dense_jacobian(net, X), dense_jacobian(net, X2)
    Pi = np.kron(np.eye(n), np.eye(c) - 1.0 / c)
    r = (p - Y).ravel()
    return {"direction": inv @ J.T @ r / n, "operator": J @ inv @ J.T @ Pi / n,
            "test_operator": J2 @ inv @ J.T @ Pi / n, "probability": _blockdiag(Hb) @ J @ inv @ J.T @ Pi / n,
            "cond": cond}


def _problem(c, seed, depth=3):
    """Full-rank factors under cross-entropy: N (C - 1) <= hidden widths, N <= input widths + bias."""
    rng = np.random.default_rng(seed)
    n = 4 if c <= 3 else 3
    width = max(9, n * (c - 1) + 3)
    widths = [5] + [width] * (depth - 1) + [c]
    net = MLP(widths, activation="tanh", sigma_w2=1.5, sigma_b2=0.2, seed=seed)
    X, X2 = rng.standard_normal((n, 5)), rng.standard_normal((2, 5))
    Y = np.eye(c)[rng.integers(0, c, n)]
    return net, X, X2, Y


def _options(name, depth):
    if name == "pattern":
        S = np.eye(depth)
        S[0, -1] = S[-1, 0] = 1.0
        return {"pattern": S}
    return {}


def _compare(name, net, X, X2, Y, damping):
    options = _options(name, net.depth)
    approx = get_approximation(name)(net, X, damping=damping, loss="cross_entropy", **options)
    ref = _dense_reference(name, net, X, X2, Y, damping, options)
    fast_dir = np.concatenate([d.ravel() for d in approx.direction(approx.loss_residual(Y))])
    errors = {"direction": relative_error(fast_dir, ref["direction"]),
              "operator": relative_error(approx.logit_operator(), ref["operator"]),
              "test_operator": relative_error(approx.logit_operator(X2), ref["test_operator"]),
              "probability": relative_error(approx.probability_operator(), ref["probability"])}
    return errors, ref["cond"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("damping", (0.0, 0.05))
def test_cross_entropy_operator_equals_dense(name, c, damping):
    net, X, X2, Y = _problem(c, seed=31 * c + (7 if damping else 0))
    errors, cond = _compare(name, net, X, X2, Y, damping)
    # the 1e-9 for every approximation and C: measured worst 5e-11 (K-FAC / EKFAC at C = 10, rho = 0,
    # cond(G on its range) ~ 4e6, where eps cond would allow 1e-9); all others 1e-16..1e-12
    assert max(errors.values()) < RTOL, (errors, cond)


@pytest.mark.parametrize("name", ("exact", "block_tridiagonal", "kfac"))
@pytest.mark.parametrize("depth", (2, 5))
def test_cross_entropy_operator_equals_dense_other_depths(name, depth):
    net, X, X2, Y = _problem(3, seed=depth, depth=depth)
    errors, cond = _compare(name, net, X, X2, Y, 0.0)
    assert max(errors.values()) < max(RTOL, 1e3 * EPS * cond), (errors, cond)


def test_dense_jacobian_is_the_finite_difference_jacobian():
    """The reference's J is the network's derivative (central differences, h = 1e-6: ~1e-9 agreement)."""
    net, X, _, _ = _problem(3, seed=2)
    J = dense_jacobian(net, X)
    assert relative_error(J, finite_difference_jacobian(net, X)) < 1e-7


# ---------------------------------------------------------------------------------------------
# mutations: the reference must catch a wrong factor
# ---------------------------------------------------------------------------------------------
def test_mutation_hessian_instead_of_its_root_fails(monkeypatch):
    """S_n replaced by C - 1 rows of H_n (same row space 1^perp, but S^T S != H): the dense check fails."""
    net, X, X2, Y = _problem(3, seed=5)
    errors, _ = _compare("block_diagonal", net, X, X2, Y, 0.0)
    assert max(errors.values()) < RTOL
    monkeypatch.setattr(losses_module, "thin_factor", lambda p: hessian(p)[:, :-1, :])
    errors, _ = _compare("block_diagonal", net, X, X2, Y, 0.0)
    assert errors["direction"] > 1e-2 and errors["test_operator"] > 1e-2, errors


def test_mutation_squared_loss_backward_factor_fails(monkeypatch):
    """K-FAC with the squared-loss factors (S_n = identity rows: B = Delta^T Delta / N) is caught."""
    net, X, X2, Y = _problem(3, seed=6)
    monkeypatch.setattr(losses_module, "thin_factor", lambda p: np.broadcast_to(np.eye(3)[:2], (p.shape[0], 2, 3)).copy())
    errors, _ = _compare("kfac", net, X, X2, Y, 0.0)
    assert errors["operator"] > 1e-2, errors


def test_psd_root_gives_the_same_direction(monkeypatch):
    """S_n = V_n H_n^{1/2}: the PSD root (C rows, damped so the singular Grams are fine) gives the same step."""
    net, X, _, Y = _problem(3, seed=8)
    for name in ("exact", "kfac", "unit_wise", "ekfac"):
        thin = get_approximation(name)(net, X, damping=0.05, loss="cross_entropy")
        d_thin = np.concatenate([d.ravel() for d in thin.direction(thin.loss_residual(Y))])
        with monkeypatch.context() as m:
            m.setattr(losses_module, "thin_factor", hessian_sqrt)
            m.setattr(losses_module, "residual_map",
                      lambda p: np.einsum("nab,bc->nac", hessian_pinv_sqrt(p), np.eye(p.shape[1]) - 1.0 / p.shape[1]))
            root = get_approximation(name)(net, X, damping=0.05, loss="cross_entropy")
            assert root.factors.n_outputs == 3
            d_root = np.concatenate([d.ravel() for d in root.direction(root.loss_residual(Y))])
        # the C-row root has exactly singular factor Grams whose rounding-level eigenvalues the damped paths
        # keep (K-FAC: measured 6e-10): 1e-8 still fails on any wrong factor by orders of magnitude
        assert relative_error(d_root, d_thin) < 1e-8, name


# ---------------------------------------------------------------------------------------------
# operators, training and the authors' variants
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", CLASSES)
def test_probability_space_isotropy_of_layerwise_approximations(c):
    """H Theta_G Pi_H = alpha Pi_H at finite width: 1, L, 1^T T^+ 1 (L = 4: 2)."""
    rng = np.random.default_rng(c)
    n = 4
    net = MLP([6] + [max(16, 2 * n * c)] * 3 + [c], activation="relu", seed=c)
    X = rng.standard_normal((n, 6))
    for name, alpha in (("exact", 1.0), ("block_diagonal", 4.0), ("block_tridiagonal", 2.0)):
        P = probability_space_operator(net, X, name)
        err, a = probability_isotropy_error(P, c)
        assert err < RTOL and abs(a - alpha) < RTOL * alpha, (name, err, a)


def test_mse_paths_unchanged():
    """loss='mse' (default): logit_operator == operator == probability_operator, outputs == factors.outputs."""
    net = MLP([5, 32, 32, 2], seed=0)
    X = np.random.default_rng(0).standard_normal((4, 5))
    approx = get_approximation("block_diagonal")(net, X)
    assert approx.loss == "mse" and approx.cross_entropy is None
    assert np.array_equal(approx.logit_operator(), approx.operator())
    assert np.array_equal(approx.outputs, approx.factors.outputs)
    assert np.array_equal(function_space_operator(net, X, "block_diagonal"), approx.operator())


def test_train_ngd_cross_entropy_records_losses_and_accuracies():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 10))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.eye(3)[rng.integers(0, 3, 8)]
    X_test = rng.standard_normal((5, 10))
    Y_test = np.eye(3)[rng.integers(0, 3, 5)]
    net = MLP([10, 512, 512, 3], seed=3)
    f0 = net.forward(X)
    h = train_ngd(net, X, Y, "block_diagonal", steps=2, loss="cross_entropy", learning_rate=0.5 / 3,
                  X_test=X_test, Y_test=Y_test)
    assert h.loss == "cross_entropy" and h.alpha == 3.0
    assert len(h.train_loss) == len(h.test_loss) == len(h.train_accuracy) == len(h.test_accuracy) == 3
    assert abs(h.train_loss[0] - cross_entropy_loss(f0, Y)) < 1e-14
    assert h.train_loss[2] < h.train_loss[1] < h.train_loss[0]
    assert h.isotropy_error < RTOL and abs(h.measured_alpha - 3.0) < 1e-9
    # first-order prediction p_t = y + (1/2)^t (p_0 - y), its loss
    p_pred = Y + 0.25 * (softmax(f0) - Y)
    assert abs(h.predicted_train_loss[2] - cross_entropy_loss(np.log(p_pred), Y)) < 1e-12
    assert len(h.gd_train_loss) == 3 and len(h.gd_test_accuracy) == 3


def test_cross_entropy_step_matches_the_dense_update():
    """A real ngd_step moves theta by -eta (G + rho I)^{-1} J^T (p - y) / N (dense, exact Fisher)."""
    net, X, X2, Y = _problem(3, seed=9)
    theta0 = net.get_flat_params()
    ref = _dense_reference("exact", net, X, X2, Y, 0.0, {})
    ngd_step(net, X, Y, "exact", 0.3, loss="cross_entropy")
    assert relative_error((theta0 - net.get_flat_params()) / 0.3, ref["direction"]) < 1e-8


@pytest.mark.parametrize("damping", (1e-5, 1e-2))
def test_authors_variants_in_function_space(damping):
    """exact: J dtheta = -eta (H + rho Theta^-1)^-1 r; exact_plus_mse: J dtheta = -eta (H + rho I)^-1 r (dense)."""
    net, X, _, Y = _problem(3, seed=10)
    n, c = X.shape[0], 3
    J = dense_jacobian(net, X)
    p = softmax(net.forward(X))
    H = _blockdiag(hessian(p))
    Theta = J @ J.T / n
    r = (p - Y).ravel()
    expected = {"exact": np.linalg.solve(H + damping * np.linalg.inv(Theta), r),
                "exact_plus_mse": np.linalg.solve(H + damping * np.eye(n * c), r)}
    for update in AUTHORS_CE_UPDATES:
        probe = net.copy()
        theta0 = probe.get_flat_params()
        authors_ce_step(probe, X, Y, update, learning_rate=1.0, damping=damping)
        df = J @ (theta0 - probe.get_flat_params())
        cond = np.linalg.cond(H + damping * np.eye(n * c)) * np.linalg.cond(Theta)
        assert relative_error(df, expected[update]) < max(1e-8, 1e3 * EPS * cond), update
    # exact_plus_mse has no logit shift along 1; exact has one
    plus = net.copy()
    t0 = plus.get_flat_params()
    authors_ce_step(plus, X, Y, "exact_plus_mse", 1.0, damping)
    shift = (J @ (t0 - plus.get_flat_params())).reshape(n, c).sum(axis=1)
    assert np.abs(shift).max() < 1e-8 * np.abs(expected["exact_plus_mse"]).max()
    assert np.abs(expected["exact"].reshape(n, c).sum(axis=1)).max() > 1e-3 * np.abs(expected["exact"]).max()


def test_geometry_logit_operator_reconstructs_rows():
    """The split J = (I (x) Q) J_Q + (I (x) e) J_1 loses nothing: with an identity 'transformed operator'
    applied to factor rows, the reconstruction is exact."""
    g = CrossEntropyGeometry.at(np.random.default_rng(0).standard_normal((3, 4)))
    net = MLP([2, 5, 4], seed=0)
    f2 = net.factors(np.random.default_rng(1).standard_normal((2, 2)))
    # 'operator' = the first unit's backward signal of the output layer: Delta_L[n, :, 0] per pseudo-row
    op = lambda F: np.tile(F.Delta[-1][:, :, 0].reshape(-1, 1), (1, 3 * 3))  # noqa: E731
    out = g.logit_operator(op, f2)
    want = g.right(np.tile(f2.Delta[-1][:, :, 0].reshape(-1, 1), (1, 9)), g.M)
    assert np.abs(out - want).max() < 1e-14


@pytest.mark.parametrize("name", ["exact", "block_diagonal", "kfac", "unit_wise"])
def test_operator_at_test_inputs_under_cross_entropy_points_to_logit_operator(name):
    """operator() under cross-entropy is the squared-loss operator of the transformed training factors; with
    raw test inputs it used to fail deep inside (a reshape or matmul error): say what to call instead."""
    from numerics.approximations import get_approximation
    from numerics.network import MLP

    net = MLP([3, 8, 2], activation="tanh", sigma_w2=2.0, sigma_b2=0.0, seed=0)
    rng = np.random.default_rng(0)
    X, X2 = rng.standard_normal((2, 3)), rng.standard_normal((1, 3))
    approx = get_approximation(name)(net, X, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"X2 is not allowed with loss='cross_entropy'.*use logit_operator\(X2\)"):
        approx.operator(X2)
    assert approx.logit_operator(X2).shape == (2, 4)
