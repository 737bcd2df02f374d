"""K-FAC in dual form: equality with the dense reference, the exact finite-width identities
(alpha = N(L-1)+1, Forster M_0 + N(L-2) + 1), exactness for N = 1 and deep linear nets, the
authors' eta = 1/(N L) residual factor, diagnostics and bad input."""
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from numerics.approximations import get_approximation
from numerics.approximations.kfac import KFACApproximation, thin_gram
from numerics.dense import dense_jacobian, dense_layer_jacobian, dense_reference
from numerics.forster import ForsterError, forster_transform
from numerics.network import MLP

# Agreement of the dual path with the dense P x P reference.  Both are float64; the dense side
# takes a pinv/solve of a P x P matrix whose condition number on its range is <= ~1e6 for these
# nets (checked in `_check_dense_trustworthy`), so it carries ~1e-10 relative error; 1e-8 leaves margin.
DENSE_RTOL = 1e-8
# Exact algebraic identities (projections of Grams of size <= 100): rounding ~1e-13; 1e-9 per the brief.
EXACT_TOL = 1e-9


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def flat(dirs):
    return np.concatenate([d.ravel() for d in dirs])


def _check_dense_trustworthy(G):
    """The dense pinv cuts at 1e-10 * sigma_max; require the genuine spectrum to sit far above it."""
    lam = np.abs(np.linalg.eigvalsh(G))
    top = lam.max()
    nonzero = lam[lam > 1e-12 * top]
    assert nonzero.min() > 1e-8 * top, "test net too ill-conditioned for the dense reference"


def make_problem(widths, activation="relu", sigma_b2=0.0, n=4, n2=3, seed=0):
    net = MLP(widths, activation=activation, sigma_b2=sigma_b2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    X = rng.standard_normal((n, widths[0]))
    X2 = rng.standard_normal((n2, widths[0]))
    r = rng.standard_normal((n, widths[-1]))
    return net, X, X2, r


def isotropy_error(theta):
    a = np.mean(np.diag(theta))
    return float(np.linalg.norm(theta - a * np.eye(len(theta))) / (abs(a) * np.sqrt(len(theta))))


# ---------------------------------------------------------------------------------------------
# fast == dense reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("mode", ["exact", "factored"])
@pytest.mark.parametrize("activation,sigma_b2", [("relu", 0.0), ("tanh", 0.1)])
def test_fast_equals_dense(n_outputs, damping, mode, activation, sigma_b2):
    net, X, X2, r = make_problem([5, 12, 10, n_outputs], activation, sigma_b2, seed=3)
    approx = KFACApproximation(net, X, damping=damping, damping_mode=mode)
    ref = dense_reference(approx, r, X2=X2)
    _check_dense_trustworthy(ref.G + damping * np.eye(len(ref.G)))
    assert rel(flat(approx.direction(r)), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    assert rel(approx.operator(), dense_reference(approx, r).operator) < DENSE_RTOL


def test_width_below_batch_uses_pseudo_inverse_and_matches_dense():
    # M_1 = 3 < N C = 8: B_1 singular, the factor pseudo-inverse path must still equal the dense pinv
    net, X, X2, r = make_problem([6, 3, 9, 2], "erf", 0.0, n=4, seed=5)
    approx = KFACApproximation(net, X)
    ref = dense_reference(approx, r, X2=X2)
    assert rel(flat(approx.direction(r)), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    layer1 = approx.diagnostics["layers"][0]
    assert layer1["backward_gram_rank"] == 3 < layer1["backward_gram_size"] == 8
    assert "layer 1: rank(Delta_1) = 3 < N C = 8: M_1 = 3 < N C" in approx.diagnostics["failed_assumption"]
    assert approx.diagnostics["predicted_alpha"] is None


def test_direction_moves_function_by_operator():
    # J d = Theta_G r: the parameter update and the function-space operator are one object
    net, X, _, r = make_problem([7, 16, 16, 2], "relu", 0.2, n=3, seed=8)
    approx = KFACApproximation(net, X, damping=0.05)
    J = dense_jacobian(net, X)
    assert rel(J @ flat(approx.direction(r)), approx.operator() @ r.ravel()) < 1e-10


def test_registry_and_alias():
    assert get_approximation("kfac") is KFACApproximation


# ---------------------------------------------------------------------------------------------
# exact finite-width identities
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [2, 3, 4, 5])
@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("activation,sigma_b2", [("relu", 0.0), ("erf", 0.3)])
def test_alpha_is_N_times_hidden_layers_plus_one(depth, n_outputs, activation, sigma_b2):
    n = 7
    widths = [n + 2] + [3 * n * n_outputs] * (depth - 1) + [n_outputs]  # M_0 >= N, M_l >= N C
    net, X, _, _ = make_problem(widths, activation, sigma_b2, n=n, seed=depth)
    approx = KFACApproximation(net, X)
    theta = approx.operator()
    alpha = n * (depth - 1) + 1
    assert np.max(np.abs(theta - alpha * np.eye(n * n_outputs))) < EXACT_TOL * alpha
    assert approx.diagnostics["predicted_alpha"] == alpha
    assert approx.diagnostics["failed_assumption"] is None


def test_layer_contributions_are_N_and_one():
    # the per-layer operator N P_Delta o (P_Z (x) 11^T): N I for hidden layers, I for the output layer
    n = 6
    net, X, _, _ = make_problem([8, 40, 40, 1], "tanh", 0.1, n=n, seed=2)
    approx = KFACApproximation(net, X)
    for l in range(1, 4):
        J_l = dense_layer_jacobian(approx.factors, l)
        B, A = approx.kronecker_factors(l)
        theta_l = J_l @ np.kron(np.linalg.pinv(B), np.linalg.pinv(A)) @ J_l.T / n
        expected = (1.0 if l == 3 else n) * np.eye(n)
        assert np.max(np.abs(theta_l - expected)) < 1e-8 * n  # pinv of M x M factors: cond ~1e3
        assert approx.diagnostics["layers"][l - 1]["contribution"] == expected[0, 0]


def test_kfac_equals_exact_block_for_one_sample():
    # N = 1: F_ll = sum_c delta_c delta_c^T (x) z z^T = B (x) A exactly, for any C and activation
    net, X, _, _ = make_problem([4, 9, 7, 3], "relu", 0.2, n=1, seed=4)
    approx = KFACApproximation(net, X)
    for l in range(1, 4):
        J_l = dense_layer_jacobian(approx.factors, l)
        B, A = approx.kronecker_factors(l)
        F_ll = J_l.T @ J_l
        assert np.max(np.abs(np.kron(B, A) - F_ll)) < 1e-12 * np.max(np.abs(F_ll))


def _fisher_minus_kfac(approx, l):
    """``F_ll - B (x) A`` and the covariance form ``(1/N) sum_n (S_n - S_bar) (x) z_n z_n^T``."""
    n = approx.n_samples
    J_l = dense_layer_jacobian(approx.factors, l)
    B, A = approx.kronecker_factors(l)
    D, Z = approx.factors.Delta[l - 1], approx.factors.Z[l - 1]
    S = np.einsum("nci,ncj->nij", D, D)                      # per-sample backward outer products
    cov = sum(np.kron(S[k] - S.mean(axis=0), np.outer(Z[k], Z[k])) for k in range(n)) / n
    return J_l.T @ J_l / n - np.kron(B, A), cov


@pytest.mark.parametrize("sigma_b2", [0.0, 0.5])
def test_kfac_exact_for_deep_linear_nets(sigma_b2):
    # Exact condition: F_ll - B (x) A = (1/N) sum_n (S_n - S_bar) (x) z_n z_n^T with
    # S_n = sum_c delta_{n,c} delta_{n,c}^T.  In a deep LINEAR net delta_{n,c} does not depend on n
    # (the backward pass is a fixed product of weight matrices), so S_n = S_bar and K-FAC is exact.
    net, X, _, _ = make_problem([4, 6, 5, 2], "linear", sigma_b2, n=5, seed=6)
    approx = KFACApproximation(net, X)
    for l in range(1, 4):
        diff, cov = _fisher_minus_kfac(approx, l)
        scale = np.max(np.abs(approx.kronecker_factors(l)[0])) * np.max(np.abs(approx.kronecker_factors(l)[1]))
        assert np.max(np.abs(diff)) < 1e-12 * scale
        assert np.max(np.abs(cov)) < 1e-12 * scale


def test_kfac_not_exact_for_relu_hidden_layers_but_exact_for_the_output_layer():
    net, X, _, _ = make_problem([4, 6, 5, 1], "relu", 0.0, n=5, seed=6)
    approx = KFACApproximation(net, X)
    diff, cov = _fisher_minus_kfac(approx, 1)
    # the covariance identity holds (rounding only) and the discrepancy is O(1) relative
    assert np.max(np.abs(diff - cov)) < 1e-12 * np.max(np.abs(diff))
    B, A = approx.kronecker_factors(1)
    assert np.linalg.norm(diff) > 0.05 * np.linalg.norm(np.kron(B, A))
    # the output layer's delta_{n,c} = e_c is sample independent: K-FAC exact there for any activation
    diff_L, _ = _fisher_minus_kfac(approx, 3)
    assert np.max(np.abs(diff_L)) < 1e-12 * np.max(np.abs(approx.kronecker_factors(3)[1]))


def test_authors_learning_rate_leaves_residual_factor():
    # The authors' code uses alpha = N L, eta = 1/(N L).  With standard K-FAC (alpha = N(L-1)+1)
    # the linearised one-step residual is (1 - eta alpha) r = (N - 1)/(N L) r: measured with the
    # REAL parameter update and the dense Jacobian (r_1^lin = r_0 - eta J d).
    n, L = 9, 3
    net, X, _, _ = make_problem([12, 40, 40, 1], "relu", 0.0, n=n, seed=11)
    Y = np.random.default_rng(12).standard_normal((n, 1))
    approx = KFACApproximation(net, X)
    r0 = approx.factors.outputs - Y
    eta = 1.0 / (n * L)
    r1 = r0.ravel() - eta * dense_jacobian(net, X) @ flat(approx.direction(r0))
    factor = (n - 1) / (n * L)
    assert np.max(np.abs(r1 - factor * r0.ravel())) < 1e-8 * np.max(np.abs(r0))
    # ... while eta = 1/(N(L-1)+1) removes the residual (to the same precision)
    r1_opt = r0.ravel() - dense_jacobian(net, X) @ flat(approx.direction(r0)) / (n * (L - 1) + 1)
    assert np.max(np.abs(r1_opt)) < 1e-8 * np.max(np.abs(r0))


def test_authors_learning_rate_real_step_converges_to_the_factor_with_width():
    # A real (nonlinear) step at eta = 1/(N L): r_1 = (N-1)/(N L) r_0 + linearisation error, and the
    # error shrinks like M^-1/2 (NTK linearisation).  Width sweep, 3 seeds per width, fitted slope.
    from numerics.sweeps import fit_power_law

    n, L = 8, 3
    factor = (n - 1) / (n * L)
    widths = [256, 512, 1024, 2048]
    errors = []
    for width in widths:
        per_seed = []
        for s in range(3):
            rng = np.random.default_rng(21 + s)
            X = rng.standard_normal((n, 10))
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            Y = 0.5 * np.sign(rng.standard_normal((n, 1)))
            net = MLP([10, width, width, 1], seed=22 + s)
            approx = KFACApproximation(net, X)
            r0 = approx.factors.outputs - Y
            net.apply_update(approx.direction(r0), 1.0 / (n * L))
            r1 = net.forward(X) - Y
            per_seed.append(np.linalg.norm(r1 - factor * r0) / np.linalg.norm(r0))
        errors.append(float(np.mean(per_seed)))
    fit = fit_power_law(widths, errors)
    # measured: slope -0.51 +- 0.08; allow 3 standard errors plus 0.15 for a 4-point sweep
    assert fit.slope_within(-0.5, n_stderr=3.0, abs_tol=0.15), fit
    assert fit.slope < -0.25, fit
    assert errors[-1] < 0.05  # at width 2048 the residual factor is (N-1)/(NL) = 0.29 to within 0.05


# ---------------------------------------------------------------------------------------------
# Forster inputs (M_0 < N)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [3, 4])
def test_forster_gives_alpha_M0_plus_N_hidden(depth):
    n, m0 = 24, 5
    widths = [m0] + [3 * n] * (depth - 1) + [1]
    net, X, _, _ = make_problem(widths, "relu", 0.0, n=n, seed=9)
    approx = KFACApproximation(net, forster_transform(X, tol=1e-13).inputs)
    theta = approx.operator()
    alpha = m0 + n * (depth - 2) + 1
    assert np.max(np.abs(theta - alpha * np.eye(n))) < EXACT_TOL * alpha
    assert approx.diagnostics["predicted_alpha"] == alpha
    assert approx.diagnostics["layers"][0]["leverage"]["relative_spread"] < 1e-11


def test_without_forster_small_input_dimension_breaks_isotropy():
    # same inputs, no transform: layer 1 contributes N diag(leverage scores), not constant
    n, m0 = 24, 5
    net, X, _, _ = make_problem([m0, 72, 72, 1], "relu", 0.0, n=n, seed=9)
    approx = KFACApproximation(net, X)
    theta = approx.operator()
    err = isotropy_error(theta)
    assert err > 1e-2, err  # leverage-score spread of Gaussian inputs is O(1) relative to M_0/N
    from numerics.forster import leverage_scores

    lev = leverage_scores(approx.factors.Z[0])
    # off the first layer, everything is exact: theta - N diag(lev) = (N + 1) I
    assert np.max(np.abs(theta - n * np.diag(lev) - (n + 1) * np.eye(n))) < EXACT_TOL * n
    assert "leverage" in approx.diagnostics["failed_assumption"]
    assert approx.diagnostics["predicted_alpha"] is None


def test_forster_with_bias_is_flagged():
    """Forster puts x in radial isotropic position, not the augmented rows [x; sigma_b]: the leverage
    scores of Z_1 are not constant and the layer-1 failure is named."""
    net, X, _, _ = make_problem([4, 30, 30, 1], "relu", 0.1, n=12, seed=1)
    approx = KFACApproximation(net, forster_transform(X).inputs)
    assert "leverage" in approx.diagnostics["failed_assumption"]
    assert approx.diagnostics["predicted_alpha"] is None


# ---------------------------------------------------------------------------------------------
# diagnostics, bad input, properties
# ---------------------------------------------------------------------------------------------
def test_damping_is_reported_and_not_isotropic():
    net, X, _, _ = make_problem([9, 40, 40, 1], "relu", 0.0, n=6, seed=2)
    theta = KFACApproximation(net, X, damping=1.0).operator()
    assert isotropy_error(theta) > 1e-3
    assert "damping" in KFACApproximation(net, X, damping=1.0).diagnostics["failed_assumption"]


def test_bad_input():
    net, X, _, _ = make_problem([5, 8, 1], n=3)
    with pytest.raises(ValueError, match="damping_mode"):
        KFACApproximation(net, X, damping_mode="pi")
    with pytest.raises(TypeError, match="unexpected option.*forster"):
        KFACApproximation(net, X, forster=True)   # Forster transforms the data (numerics.forster), not K-FAC
    with pytest.raises(TypeError, match="unexpected option"):
        KFACApproximation(net, X, bogus=1)
    with pytest.raises(ValueError, match="damping"):
        KFACApproximation(net, X, damping=-1.0)
    with pytest.raises(ForsterError, match="N = 3 rows < M_0 = 5"):
        forster_transform(X)
    with pytest.raises(ValueError, match="residual has shape"):
        KFACApproximation(net, X).direction(np.ones((4, 1)))


def test_thin_gram_drops_the_exact_null_space():
    rows = np.vstack([np.eye(3), np.eye(3)[:1]])
    g = thin_gram(rows)
    assert g.rank == 3 and g.size == 4 and not g.full_rank
    assert g.dropped_ratio < 1e-15


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 2), hidden=st.lists(st.integers(2, 9), min_size=1, max_size=2),
       m0=st.integers(2, 6), damping=st.sampled_from([0.0, 0.01, 1.0]), bias=st.booleans(),
       mode=st.sampled_from(["exact", "factored"]), seed=st.integers(0, 10 ** 6))
@example(n=1, c=1, hidden=[2], m0=3, damping=0.0, bias=False, mode="exact", seed=923)  # a 1e-27 layer block
def test_property_fast_equals_dense(n, c, hidden, m0, damping, bias, mode, seed):
    net = MLP([m0, *hidden, c], activation="erf", sigma_b2=0.2 if bias else 0.0, seed=seed)
    rng = np.random.default_rng(seed)
    X, X2, r = rng.standard_normal((n, m0)), rng.standard_normal((2, m0)), rng.standard_normal((n, c))
    approx = KFACApproximation(net, X, damping=damping, damping_mode=mode)
    G = approx.dense_matrix()
    lam = np.abs(np.linalg.eigvalsh(G + damping * np.eye(len(G))))
    # G is block diagonal over layers; a block's exact zeros sit at ~1e-16 relative to THAT block (a
    # whole layer block can be 1e-27 of another's: erf derivatives at a saturated unit, seed 923)
    cuts = np.cumsum([0] + [p.size for p in net.params])
    nonzero = np.concatenate([lam_b[lam_b > 1e-14 * lam_b.max()] if lam_b.max() > 0 else lam_b[:0] for lam_b in
                              (np.abs(np.linalg.eigvalsh(G[a:b, a:b])) for a, b in zip(cuts[:-1], cuts[1:]))])
    # The dense pinv cuts eigenvalues b_i a_j below 1e-10 of the GLOBAL max; K-FAC's factor
    # pseudo-inverses cut each factor relative to itself, i.e. keep every nonzero product (the exact
    # (B (x) A)^+ = B^+ (x) A^+).  Compare only where no genuine eigenvalue sits near the dense cut.
    assume(damping > 0 or nonzero.min() > 1e-7 * lam.max())
    ref = dense_reference(approx, r, X2=X2)
    assert rel(flat(approx.direction(r)), ref.update) < 1e-7
    assert rel(approx.operator(X2), ref.test_operator) < 1e-7


@pytest.mark.parametrize("depth,n_outputs,bias,forster", [(3, 1, False, False), (4, 2, True, False),
                                                          (3, 1, False, True), (5, 1, False, True)])
def test_measured_alpha_agrees_with_theory(depth, n_outputs, bias, forster):
    # theory.isotropy derives alpha symbolically from the definition; the finite net must measure it
    from theory.isotropy import isotropy_constant

    n, m0 = (24, 5) if forster else (7, 9)
    widths = [m0] + [3 * n * n_outputs] * (depth - 1) + [n_outputs]
    net, X, _, _ = make_problem(widths, "relu", 0.3 if bias else 0.0, n=n, seed=depth)
    theta = KFACApproximation(net, forster_transform(X, tol=1e-13).inputs if forster else X).operator()
    alpha = float(isotropy_constant("kfac", depth=depth, n_samples=n, input_dim=m0, widths=widths,
                                    n_outputs=n_outputs, forster=forster, bias=bias))
    assert np.max(np.abs(theta - alpha * np.eye(n * n_outputs))) < EXACT_TOL * alpha


def test_test_kernel_is_hadamard_product_of_factor_regressions():
    # derived here (standard K-FAC, C = 1): Theta_G(x', X) = N sum_{l<L} [D2 D^T (D D^T)^-1] o [Z2 Z^T (Z Z^T)^-1] + output-layer term
    # (C = 1, full-rank Grams); at the output layer D = 1, so its term is Z2 Z^T (Z Z^T)^-1 alone.
    n = 6
    net, X, X2, _ = make_problem([9, 40, 40, 1], "relu", 0.0, n=n, n2=4, seed=15)
    approx = KFACApproximation(net, X)
    f, f2 = approx.factors, net.factors(X2)
    expected = 0.0
    for l in range(1, 4):
        D, D2 = f.Delta[l - 1][:, 0, :], f2.Delta[l - 1][:, 0, :]
        Z, Z2 = f.Z[l - 1], f2.Z[l - 1]
        zreg = np.linalg.solve(Z @ Z.T, Z @ Z2.T).T
        if l < 3:
            expected = expected + n * np.linalg.solve(D @ D.T, D @ D2.T).T * zreg
        else:
            expected = expected + zreg
    assert rel(approx.operator(X2), expected) < 1e-10


@pytest.mark.parametrize("mode", ["exact", "factored"])
def test_damping_keeps_tiny_genuine_factor_eigenvalues(mode):
    # regression (found by hypothesis): layer 1's backward Gram has a genuine eigenvalue 4.6e-12 of
    # its largest.  A rank cut there is harmless for rho = 0 conventions but wrong with damping: the
    # bounded inverse 1/(b a + rho) keeps that component (relative size sqrt(lam/lam_max)(ba+rho)/rho
    # ~ 4e-5 here).  The damped path keeps every positive eigenvalue and matches the dense solve.
    net = MLP([3, 3, 1], activation="erf", seed=3)
    rng = np.random.default_rng(3)
    X, X2, r = rng.standard_normal((3, 3)), rng.standard_normal((2, 3)), rng.standard_normal((3, 1))
    approx = KFACApproximation(net, X, damping=0.01, damping_mode=mode)
    assert 0 < approx.diagnostics["layers"][0]["backward_gram_dropped"] < 1e-10   # the tiny eigenvalue
    ref = dense_reference(approx, r, X2=X2)
    assert rel(flat(approx.direction(r)), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    assert rel(approx.operator(), ref.operator) < DENSE_RTOL


@pytest.mark.parametrize("n, m0, seed", [(24, 5, 9), (20, 4, 13), (60, 30, 2)])
def test_already_forster_transformed_inputs_pass_and_raw_inputs_fail(n, m0, seed):
    """Regression: inputs already in radial isotropic position (Forster at its default tol 1e-10,
    leverage spread ~1e-10 relative) were flagged as failing isotropy.  The tolerance
    4 sqrt(M_0) 1e-10 + 64 eps cond(Z) (see LEVERAGE_SPREAD_PER_SQRT_M0) accepts them, and the layer
    contributes M_0 I; raw inputs (relative spread O(1)) are still flagged.  The operator agrees with
    alpha = M_0 + N + 1 to the 1e-9 precision of exact identities."""
    from numerics.approximations.kfac import leverage_tolerance
    from numerics.forster import leverage_scores

    net, X, _, _ = make_problem([m0, 3 * n, 3 * n, 1], "relu", 0.0, n=n, seed=seed)
    Xf = forster_transform(X).inputs
    approx = KFACApproximation(net, Xf)                        # forster=False: inputs used as given
    lev = leverage_scores(Xf)
    spread = (lev.max() - lev.min()) / lev.mean()
    assert 1e-12 < spread < leverage_tolerance(Xf), spread    # nonzero rounding/tolerance spread, accepted
    assert approx.diagnostics["failed_assumption"] is None, approx.diagnostics["failed_assumption"]
    assert approx.diagnostics["predicted_alpha"] == m0 + n + 1
    assert approx.diagnostics["layers"][0]["leverage"]["relative_spread"] == pytest.approx(spread, rel=1e-6)
    theta = approx.operator()
    assert np.max(np.abs(theta - (m0 + n + 1) * np.eye(n))) < EXACT_TOL * (m0 + n + 1)
    raw = KFACApproximation(net, X)
    raw_spread = raw.diagnostics["layers"][0]["leverage"]["relative_spread"]
    assert raw_spread > 0.1 and "leverage" in raw.diagnostics["failed_assumption"]
    assert raw.diagnostics["predicted_alpha"] is None


def test_loosely_forster_transformed_inputs_are_still_flagged():
    """Forster stopped at 1e-3 isotropy error leaves a relative spread ~1e-3 >> 2e-9: flagged."""
    net, X, _, _ = make_problem([5, 72, 72, 1], "relu", 0.0, n=24, seed=9)
    res = forster_transform(X, tol=1e-3)
    approx = KFACApproximation(net, res.inputs)
    lev = approx.diagnostics["layers"][0]["leverage"]
    assert 1e-6 < lev["relative_spread"] < 2 * np.sqrt(5) * 1e-3 * 1.01   # within the first-order bound
    assert "relative spread" in approx.diagnostics["failed_assumption"]
