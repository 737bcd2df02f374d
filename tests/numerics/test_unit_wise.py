"""Unit-wise Fisher: batched dual path vs a per-unit reference loop and the dense reference, the
counting identity (tanh/erf exact, relu only as M -> infinity), C > 1 structure, bad input."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from numerics.approximations import get_approximation
from numerics.approximations.unit_wise import UnitWiseApproximation, unit_blocks
from numerics.dense import dense_jacobian, dense_layer_jacobian, dense_reference
from numerics.network import MLP
from numerics.sweeps import fit_power_law

# dual vs per-unit loop: the same per-unit linear algebra done two ways (batched Cholesky/eigh vs
# numpy pinv/solve per block) on systems with condition numbers <= ~1e4: agreement ~1e-12; 1e-10.
LOOP_RTOL = 1e-10
# dual vs the dense P x P reference (pinv with a GLOBAL cut at 1e-10 sigma_max, guarded below): 1e-8.
DENSE_RTOL = 1e-8
EXACT_TOL = 1e-9


def rel(a, b):
    """Relative error (absolute when the reference is exactly zero, e.g. every unit inactive on X2)."""
    scale = np.linalg.norm(b)
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / (scale if scale > 0 else 1.0))


def flat(dirs):
    return np.concatenate([d.ravel() for d in dirs])


def make_problem(widths, activation="relu", sigma_b2=0.0, n=4, n2=3, seed=0, sigma_w2=2.0):
    net = MLP(widths, activation=activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    return (net, rng.standard_normal((n, widths[0])), rng.standard_normal((n2, widths[0])),
            rng.standard_normal((n, widths[-1])))


def per_unit_reference(approx, r, X2=None):
    """Loop over units with explicit J_{l,i} (columns of the layer Jacobian): the definition."""
    n, rho = approx.n_samples, approx.damping
    f2 = approx.factors_at(X2)
    update, operator = [], 0.0
    for l in range(1, approx.depth + 1):
        J = dense_layer_jacobian(approx.factors, l)
        J2 = dense_layer_jacobian(f2, l)
        m = approx.factors.Z[l - 1].shape[1]
        for i in range(approx.factors.Delta[l - 1].shape[2]):
            Ji, J2i = J[:, i * m:(i + 1) * m], J2[:, i * m:(i + 1) * m]
            if rho > 0:
                inv = np.linalg.inv(Ji.T @ Ji / n + rho * np.eye(m))
                update.append(inv @ Ji.T @ r.ravel() / n)
                operator = operator + J2i @ inv @ Ji.T / n
            else:
                pinv = np.linalg.pinv(Ji, rcond=1e-8)   # (G_i)^+ J_i^T / N = J_i^+
                update.append(pinv @ r.ravel())
                operator = operator + J2i @ pinv
    return np.concatenate(update), operator


# ---------------------------------------------------------------------------------------------
# batched == per-unit loop == dense
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("m0", [6, 3])          # 3 < N = 4: layer-1 input Gram singular -> eigh path
@pytest.mark.parametrize("method", ["auto", "eigh"])
def test_batched_equals_per_unit_loop(n_outputs, damping, m0, method):
    net, X, X2, r = make_problem([m0, 12, 10, n_outputs], "relu", 0.0, seed=1)
    approx = UnitWiseApproximation(net, X, damping=damping, method=method, chunk_units=5)
    update, operator = per_unit_reference(approx, r, X2)
    tol = loop_tolerance(approx)
    assert rel(flat(approx.direction(r)), update) < tol
    assert rel(approx.operator(X2), operator) < tol
    assert rel(approx.operator(), per_unit_reference(approx, r)[1]) < tol


def loop_tolerance(approx):
    """1e-10, or more where the batched-eigh path is used: eigh of K_i = J_i J_i^T is backward stable
    in K_i, so its pseudo-inverse solution carries ~eps cond(J_i)^2 relative error (the loop's SVD of
    J_i only eps cond(J_i)); allow 10 eps cond^2 (e.g. cond(J_i) = 1.5e3 -> 5e-9)."""
    if approx.damping > 0 or "batched_eigh" not in approx.methods:
        return LOOP_RTOL
    worst = 1.0
    for l, method in enumerate(approx.methods, start=1):
        if method != "batched_eigh":
            continue
        J = dense_layer_jacobian(approx.factors, l)
        m = approx.factors.Z[l - 1].shape[1]
        for i in range(approx.factors.Delta[l - 1].shape[2]):
            s = np.linalg.svd(J[:, i * m:(i + 1) * m], compute_uv=False)
            if s.max() == 0:  # dead unit: J_i = 0, nothing to invert
                continue
            s = s[s > 1e-12 * s.max()]
            if s.size:
                worst = max(worst, s.max() / s.min())
    return max(LOOP_RTOL, 10 * np.finfo(float).eps * worst ** 2)


def test_methods_are_reported():
    net, X, _, _ = make_problem([3, 12, 10, 1], seed=1)
    assert UnitWiseApproximation(net, X).methods == ["batched_svd", "closed_form_projection",
                                                     "closed_form_projection"]
    assert UnitWiseApproximation(net, X, damping=0.1).diagnostics["methods"] == ["batched_cholesky"] * 3
    assert UnitWiseApproximation(net, X, method="eigh").methods == ["batched_eigh"] * 3


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("activation,sigma_w2,sigma_b2", [("relu", 2.0, 0.0), ("tanh", 0.5, 0.2)])
def test_fast_equals_dense(n_outputs, damping, activation, sigma_w2, sigma_b2):
    # (erf/tanh at sigma_w2 = 2 with a bias give unit blocks with eigenvalues ~1e-10 of the largest,
    # right at the dense pinv's global cut: the guard below rejects them, so a milder net is used)
    net, X, X2, r = make_problem([6, 12, 10, n_outputs], activation, sigma_b2, seed=2, sigma_w2=sigma_w2)
    approx = UnitWiseApproximation(net, X, damping=damping)
    ref = dense_reference(approx, r, X2=X2)
    lam = np.abs(np.linalg.eigvalsh(ref.G))
    nonzero = lam[lam > 1e-12 * lam.max()]
    assert nonzero.min() > 1e-8 * lam.max()   # dense pinv's global 1e-10 cut is far from the spectrum
    assert rel(flat(approx.direction(r)), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    assert rel(approx.operator(), ref.operator) < DENSE_RTOL


def test_unit_blocks_are_sub_blocks_of_the_layer_fisher_block():
    net, X, _, _ = make_problem([5, 7, 6, 2], "tanh", 0.1, seed=3)
    approx = UnitWiseApproximation(net, X)
    G = approx.dense_matrix()
    J = np.hstack([dense_layer_jacobian(approx.factors, l) for l in range(1, 4)])
    F = J.T @ J / approx.n_samples
    # G (per-layer GEMM) and F (one GEMM over all layers) are the same length-K dot products (K = N C rows
    # of J) summed in kernel-dependent orders: each within gamma_K |J|^T|J| / N of the exact value (Higham
    # eq. 3.13), so they differ by <= 2 gamma_K ~ K eps entrywise; + 2 for the division by N on each side
    bound = (J.shape[0] + 2) * np.finfo(float).eps * (np.abs(J).T @ np.abs(J)) / approx.n_samples
    for l, i, offset in unit_blocks(net):
        m = net.params[l - 1].shape[1]
        block = slice(offset, offset + m)
        gap = np.abs(G[block, block] - F[block, block])
        assert np.all(gap <= bound[block, block]), (l, i, float(np.max(gap / bound[block, block])))
        G[block, block] = 0.0
    assert not G.any()  # nothing outside the unit blocks


def test_chunking_does_not_change_the_result():
    net, X, X2, r = make_problem([6, 23, 17, 1], "relu", 0.0, n=5, seed=4)
    results = []
    for chunk in (1, 7, None):
        for damping in (0.0, 0.2):
            a = UnitWiseApproximation(net, X, damping=damping, chunk_units=chunk)
            results.append((flat(a.direction(r)), a.operator(X2)))
    for k in range(2):
        base = results[4 + k]
        for other in (results[k], results[2 + k]):
            assert rel(other[0], base[0]) < 1e-12 and rel(other[1], base[1]) < 1e-12


def test_registry_and_alias():
    assert get_approximation("unit_wise") is UnitWiseApproximation


# ---------------------------------------------------------------------------------------------
# the counting identity and its limits
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_smooth_activation_exact_isotropy(activation):
    # phi' never vanishes: every unit active on every input, Theta_G = (sum_{l<L} M_l + 1) I exactly
    n = 10
    net, X, _, _ = make_problem([12, 30, 25, 1], activation, 0.1, n=n, seed=5)
    approx = UnitWiseApproximation(net, X)
    assert np.max(np.abs(approx.operator() - (30 + 25 + 1) * np.eye(n))) < EXACT_TOL * 56
    if activation == "tanh":
        # the closed form equals the batched eigh pseudo-inverse, so it is not assumed
        eigh = UnitWiseApproximation(net, X, method="eigh").operator()
        assert np.max(np.abs(eigh - (30 + 25 + 1) * np.eye(n))) < EXACT_TOL * 56
    else:
        # erf' = 2/sqrt(pi) exp(-u^2) reaches ~1e-11 on saturated units: K_i's eigenvalues scale like
        # delta^2 and fall below eigh's 1e-10 rank cut, although delta != 0 (the closed form is exact).
        assert approx.diagnostics["min_active_signal_ratio"] < 1e-5


def test_relu_operator_is_diagonal_count_of_active_units():
    n = 10
    net, X, _, _ = make_problem([12, 40, 40, 1], "relu", 0.0, n=n, seed=6)
    approx = UnitWiseApproximation(net, X)
    counts = np.zeros(n)
    for D in approx.factors.Delta:
        counts += np.sum(D[:, 0, :] != 0, axis=1)
    eigh = UnitWiseApproximation(net, X, method="eigh").operator()
    assert np.max(np.abs(eigh - np.diag(counts))) < EXACT_TOL * counts.max()
    op = approx.operator()
    assert np.all(op[~np.eye(n, dtype=bool)] == 0.0)  # C = 1: the blocks are 1 x 1, off-diagonal zeros by construction
    # diagonal: sum over the active units of delta (delta / delta^2) = 1 up to 3 roundings (square, divide,
    # multiply), summed over the 81 units of the 3 layers (one rounding per addition): |op_nn - count_n| <=
    # (81 + 3 + 3) u count_n; with eps = 2u a factor-2 margin.  Not exact: ~25% of the terms are 1 +- 1 ulp.
    n_terms = sum(D.shape[2] for D in approx.factors.Delta) + approx.depth + 3
    np.testing.assert_allclose(np.diag(op), counts, rtol=n_terms * np.finfo(float).eps, atol=0)
    assert counts.min() < counts.max()  # relu counts fluctuate at finite width
    assert "active-unit counts differ" in approx.diagnostics["failed_assumption"]


def test_relu_isotropy_only_as_width_grows():
    # relative spread std_n / mean_n of the diagonal counts ~ M^-1/2 (sum of ~M indicators);
    # N = 32 inputs, 4 seeds per width; measured slope -0.51 +- 0.01
    n, widths, errors = 32, [128, 256, 512, 1024, 2048], []
    for width in widths:
        spreads = []
        for s in range(4):
            X = np.random.default_rng(s).standard_normal((n, 40))
            theta = UnitWiseApproximation(MLP([40, width, width, 1], seed=s), X).operator()
            d = np.diag(theta)
            spreads.append(d.std() / d.mean())
        errors.append(float(np.mean(spreads)))
    fit = fit_power_law(widths, errors)
    assert fit.slope_within(-0.5, n_stderr=3.0, abs_tol=0.1), fit
    # and the mean count per hidden unit tends to gamma = 1/2 for relu: alpha ~ gamma (L-1) M + 1
    assert abs((d.mean() - 1) / (2 * widths[-1]) - 0.5) < 0.02


def test_multiple_outputs_block_structure_and_off_diagonals():
    # C > 1: each unit's projection is blockdiag_n(u u^T), u = delta_i[n] / ||delta_i[n]|| in R^C.
    # Exact at finite width: NO coupling between different samples; within a sample, the C x C block
    # sum_i u u^T has off-diagonal entries O(sqrt M) (not isotropic at finite width).
    n, c = 6, 3
    net, X, _, _ = make_problem([8, 64, 64, c], "tanh", 0.0, n=n, seed=7)
    approx = UnitWiseApproximation(net, X)
    theta = approx.operator().reshape(n, c, n, c)
    eigh = UnitWiseApproximation(net, X, method="eigh").operator().reshape(n, c, n, c)
    assert rel(theta, eigh) < 1e-10
    cross = theta.copy()
    cross[np.arange(n), :, np.arange(n), :] = 0.0
    assert np.max(np.abs(cross)) < 1e-10 * np.max(np.abs(theta))
    blocks = theta[np.arange(n), :, np.arange(n), :]                 # (n, C, C)
    # trace of each block = number of active units (tanh: all 64 + 64 hidden + C output units / ... )
    assert np.allclose(np.trace(blocks, axis1=1, axis2=2), 64 + 64 + c, atol=1e-9)
    off = blocks - np.einsum("nc,cd->ncd", np.diagonal(blocks, axis1=1, axis2=2), np.eye(c))
    assert np.max(np.abs(off)) > 1e-3 * np.mean(np.trace(blocks, axis1=1, axis2=2))
    assert "C = 3 > 1" in approx.diagnostics["failed_assumption"]


def test_multiple_outputs_off_diagonals_shrink_like_inverse_sqrt_width():
    # the within-sample off-diagonal part, relative to the diagonal, decays ~ M^-1/2 (measured -0.4..-0.5)
    n, c, widths, errors = 8, 2, [64, 128, 256, 512, 1024], []
    for width in widths:
        vals = []
        for s in range(4):
            X = np.random.default_rng(s).standard_normal((n, 10))
            theta = UnitWiseApproximation(MLP([10, width, width, c], activation="tanh", seed=s), X).operator()
            d = np.diag(theta)
            vals.append(np.linalg.norm(theta - np.diag(d)) / np.linalg.norm(d))
        errors.append(float(np.mean(vals)))
    fit = fit_power_law(widths, errors)
    assert fit.slope_within(-0.5, n_stderr=3.0, abs_tol=0.15), fit


def test_damping_breaks_isotropy_and_is_reported():
    net, X, _, _ = make_problem([12, 30, 25, 1], "tanh", 0.0, n=8, seed=8)
    approx = UnitWiseApproximation(net, X, damping=0.5)
    theta = approx.operator()
    a = np.mean(np.diag(theta))
    assert np.linalg.norm(theta - a * np.eye(8)) / (a * np.sqrt(8)) > 1e-3
    assert "damping" in approx.diagnostics["failed_assumption"]


def test_ill_conditioned_unit_blocks_are_reported():
    # erf unit with backward signal 6e-17 on one input and 0.3 on the other: the exact minimum-norm
    # step of that unit is ~1e15; the diagnostics say so with the condition number
    net = MLP([2, 2, 1], activation="erf", seed=2)
    X = np.random.default_rng(2).standard_normal((2, 2))
    approx = UnitWiseApproximation(net, X)
    assert approx.diagnostics["max_unit_condition_bound"] > 1e14
    assert "ill-conditioned unit blocks" in approx.diagnostics["failed_assumption"]
    assert "ill-conditioned" not in (UnitWiseApproximation(net, X, damping=0.1).diagnostics["failed_assumption"] or "")


def test_dead_units_are_reported():
    net, X, _, _ = make_problem([6, 12, 10, 1], "relu", 0.0, n=3, seed=9)
    # layer-2 inputs are relu outputs h_1 >= 0, so all-negative fan-in weights give u < 0: dead units
    net.params[1][:4, :] = -1.0
    approx = UnitWiseApproximation(net, X)
    assert approx.diagnostics["dead_units"][1] >= 4
    assert "dead units" in approx.diagnostics["failed_assumption"]
    update, operator = per_unit_reference(approx, np.ones((3, 1)))
    assert rel(flat(approx.direction(np.ones((3, 1)))), update) < LOOP_RTOL


def test_bad_input():
    net, X, _, _ = make_problem([5, 8, 1], n=3)
    with pytest.raises(ValueError, match="method"):
        UnitWiseApproximation(net, X, method="svd")
    with pytest.raises(ValueError, match="chunk_units"):
        UnitWiseApproximation(net, X, chunk_units=0)
    with pytest.raises(TypeError, match="unexpected option"):
        UnitWiseApproximation(net, X, forster=True)
    with pytest.raises(ValueError, match="residual has shape"):
        UnitWiseApproximation(net, X).direction(np.ones((2, 1)))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 2), hidden=st.lists(st.integers(2, 8), min_size=1, max_size=2),
       m0=st.integers(2, 6), damping=st.sampled_from([0.0, 0.05, 1.0]), bias=st.booleans(),
       activation=st.sampled_from(["relu", "erf"]), seed=st.integers(0, 10 ** 6))
def test_property_batched_equals_per_unit_loop(n, c, hidden, m0, damping, bias, activation, seed):
    net = MLP([m0, *hidden, c], activation=activation, sigma_b2=0.2 if bias else 0.0, seed=seed)
    rng = np.random.default_rng(seed)
    X, X2, r = rng.standard_normal((n, m0)), rng.standard_normal((2, m0)), rng.standard_normal((n, c))
    approx = UnitWiseApproximation(net, X, damping=damping)
    if damping == 0:
        # the reference loop's pinv cuts singular values below 1e-8 relative; the closed form is the
        # exact limit.  Compare where every unit block is well conditioned (the library flags the rest).
        assume(approx.diagnostics["max_unit_condition_bound"] < 1e6)
        assume(all(cond < 1e8 for cond in approx.diagnostics["input_gram_conditions"]
                   if np.isfinite(cond)))
    update, operator = per_unit_reference(approx, r, X2)
    assert rel(flat(approx.direction(r)), update) < 1e-8
    assert rel(approx.operator(X2), operator) < 1e-8


def test_measured_alpha_agrees_with_theory_for_smooth_activations():
    # theory.isotropy derives gamma = P(phi' != 0) = 1 for tanh symbolically: alpha = sum_{l<L} M_l + 1
    from theory.isotropy import isotropy_constant

    widths = [12, 30, 25, 1]
    net, X, _, _ = make_problem(widths, "tanh", 0.0, n=10, seed=5)
    alpha = float(isotropy_constant("unit_wise", depth=3, widths=widths, activation="tanh",
                                    n_samples=10, input_dim=12))
    assert np.max(np.abs(UnitWiseApproximation(net, X).operator() - alpha * np.eye(10))) < EXACT_TOL * alpha


def test_linearly_dependent_inputs_with_M0_at_least_N_are_named():
    """Regression: M_0 >= N is only necessary; with M_0 = 12 >= N = 8 but rank X = 6 (rows 6, 7 are
    combinations of others) numerics must name 'inputs linearly dependent (rank X = 6 < N = 8)'.
    With M_0 = 5 < N = 8 the same sentence names the width as the forcing cause."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 12))
    X[6] = X[0] + X[1]
    X[7] = X[2] - 0.5 * X[3]
    net = MLP([12, 64, 64, 1], activation="tanh", seed=0)
    msg = UnitWiseApproximation(net, X).diagnostics["failed_assumption"]
    assert "layer 1: inputs linearly dependent (rank X = 6 < N = 8" in msg, msg
    assert "M_0 >= N is necessary, not sufficient" in msg, msg
    narrow = UnitWiseApproximation(MLP([5, 64, 64, 1], activation="tanh", seed=0), X[:, :5]).diagnostics
    assert "layer 1: M_0 + bias = 5 < N = 8 (the N rows of Z_1 span at most 5 dimensions" in narrow["failed_assumption"]
    # independent inputs: nothing about layer 1 (tanh: every unit active, exact isotropy)
    ok = UnitWiseApproximation(net, rng.standard_normal((8, 12))).diagnostics["failed_assumption"]
    assert ok is None, ok


def test_theory_words_M0_at_least_N_as_necessary_and_numerics_checks_the_rank():
    """theory cannot see X: it keeps the necessary M_0 + bias >= N check (refuting M_0 < N) and words
    the real condition (rank X = N) as checked by numerics."""
    from theory.non_isotropic import NotIsotropic
    from theory.unit_wise_theory import unit_wise_isotropy

    res = unit_wise_isotropy([64, 256, 256, 1], "relu", n_samples=50)
    text = " ".join(res.conditions)
    assert "rank X = N" in text and "necessary" in text and "numerics checks rank Z_1 = N" in text
    with pytest.raises(NotIsotropic, match="necessary for rank Z_1 = N; it is not sufficient"):
        unit_wise_isotropy([40, 256, 256, 1], "relu", n_samples=50)


@pytest.mark.parametrize("n_outputs, sigma_b2", [(1, 0.0), (2, 0.0), (1, 0.5)])
def test_relative_damping_matches_the_per_unit_definition(n_outputs, sigma_b2):
    """relative_damping = lambda: unit i solves (G_i + rho_i I)^{-1} J_i^T r / N with
    rho_i = rho + lambda tr(G_i)/(N C), i.e. the dual Gram shifted by lambda s_i, s_i its mean diagonal."""
    net, X, X2, r = make_problem([5, 7, 6, n_outputs], "relu", sigma_b2=sigma_b2, n=4, seed=3)
    lam, rho = 0.05, 0.01
    approx = UnitWiseApproximation(net, X, damping=rho, relative_damping=lam)
    n, c = approx.n_samples, approx.n_outputs
    f2 = approx.factors_at(X2)
    update, operator = [], 0.0
    for l in range(1, approx.depth + 1):
        J, J2 = dense_layer_jacobian(approx.factors, l), dense_layer_jacobian(f2, l)
        m = approx.factors.Z[l - 1].shape[1]
        scales = approx.unit_scales(l)
        for i in range(approx.factors.Delta[l - 1].shape[2]):
            Ji, J2i = J[:, i * m:(i + 1) * m], J2[:, i * m:(i + 1) * m]
            Gi = Ji.T @ Ji / n
            assert scales[i] == pytest.approx(np.trace(Ji @ Ji.T) / (n * c), rel=1e-12, abs=1e-300)
            inv = np.linalg.inv(Gi + (rho + lam * np.trace(Gi) / (n * c)) * np.eye(m))
            update.append(inv @ Ji.T @ r.ravel() / n)
            operator = operator + J2i @ inv @ Ji.T / n
    assert rel(flat(approx.direction(r)), np.concatenate(update)) < LOOP_RTOL
    assert rel(approx.operator(X2), operator) < LOOP_RTOL
    assert set(approx.diagnostics["methods"]) == {"batched_cholesky"}
    assert approx.diagnostics["relative_damping"] == lam and "relative damping" in approx.diagnostics["failed_assumption"]


def test_relative_damping_alone_handles_dead_units_and_tends_to_the_pseudo_inverse():
    net, X, _, r = make_problem([6, 12, 10, 1], "relu", n=4, seed=1)
    net.params[1][3] = 0.0                       # layer-2 unit 3 is dead ...
    net.params[2][:, 3] = 0.0                    # ... and feeds nothing: zero signal, zero scale
    approx = UnitWiseApproximation(net, X, relative_damping=1e-10)
    assert approx.unit_scales(2)[3] == 0.0 and np.all(np.isfinite(flat(approx.direction(r))))
    pinv = UnitWiseApproximation(net, X)
    assert rel(flat(approx.direction(r)), flat(pinv.direction(r))) < 1e-6
    assert rel(approx.operator(), pinv.operator()) < 1e-6


def test_relative_damping_must_be_nonnegative():
    net, X, _, _ = make_problem([4, 6, 1], "tanh", n=3)
    with pytest.raises(ValueError, match="relative_damping"):
        UnitWiseApproximation(net, X, relative_damping=-1.0)


# ---------------------------------------------------------------------------------------------
# C > 1: the projected N-sized systems (module docstring, "C > 1") == the N C-sized ones == dense
# ---------------------------------------------------------------------------------------------
# Both sides solve the same exact identity on systems with condition numbers <= ~1e4 (checked below):
# agreement ~1e-13; the 1e-9.
PROJECTED_RTOL = 1e-9


def dense_unit_wise(approx, residual, X2):
    """Explicit ``P x P`` unit-block Fisher (of the loss: ``approx.dense_matrix()`` is built from the
    transformed factors under cross-entropy) plus each unit's shift ``(N rho + lambda s_i) / N`` on its block,
    solved with ``numpy.linalg`` (pseudo-inverse with a global 1e-10 cut when undamped).  Returns the update,
    the train and test operators ``J(.) G_d^{-1} J^T Pi / N`` in logit space (``Pi = I`` for mse) and
    ``cond(G_d)`` on its range."""
    net, n = approx.net, approx.n_samples
    G = approx.dense_matrix()
    damped = approx.damping > 0 or approx.relative_damping > 0
    if damped:
        shift = np.concatenate([np.repeat(approx.unit_shifts(l) / n, approx.factors.Z[l - 1].shape[1])
                                for l in range(1, approx.depth + 1)])
        lam, V = np.linalg.eigh(G + np.diag(shift))
        keep = np.ones(lam.size, bool)
    else:
        lam, V = np.linalg.eigh((G + G.T) / 2)
        keep = np.abs(lam) > 1e-10 * np.abs(lam).max()
    inv = (V[:, keep] / lam[keep]) @ V[:, keep].T
    J, J2 = dense_jacobian(net, approx.X), dense_jacobian(net, X2)
    c = J.shape[0] // n
    Pi = np.kron(np.eye(n), np.eye(c) - 1.0 / c) if approx.loss == "cross_entropy" else np.eye(n * c)
    r = np.asarray(residual).ravel()
    return {"update": inv @ J.T @ r / n, "operator": J @ inv @ J.T @ Pi / n,
            "test_operator": J2 @ inv @ J.T @ Pi / n, "cond": float(lam[keep].max() / lam[keep].min())}


def projected_problem(c, m0, seed):
    """relu, N = 4: units inactive on part of the batch; layer-2 units 0-2 get all-negative fan-in weights on
    nonnegative relu inputs (dead on every sample); m0 >= N (no bias): every Z Z^T positive definite."""
    net = MLP([m0, 12, 10, c], activation="relu", sigma_w2=2.0, sigma_b2=0.0, seed=seed)
    net.params[1][:3, :] = -1.0
    rng = np.random.default_rng(seed + 100)
    X, X2 = rng.standard_normal((4, m0)), rng.standard_normal((3, m0))
    Y = np.eye(c)[rng.integers(0, c, 4)]
    return net, X, X2, Y


@pytest.mark.parametrize("c", [2, 3, 10])
@pytest.mark.parametrize("rho,lam", [(0.3, 0.0), (0.0, 0.1), (0.01, 0.05), (0.0, 0.0)])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("form", ["auto", "dual", "primal"])
def test_projected_systems_equal_full_dual_and_dense(c, rho, lam, loss, form):
    if form == "primal" and rho == 0 and lam == 0:
        pytest.skip("the primal twin needs a positive shift")
    net, X, X2, Y = projected_problem(c, 6, seed=c + 1)
    kw = dict(damping=rho, relative_damping=lam, loss=loss)
    approx = UnitWiseApproximation(net, X, solve_form=form, **kw)
    full = UnitWiseApproximation(net, X, solve_form="dual_full", **kw)
    assert approx.diagnostics["dead_units"][1] >= 3                      # units dead on every sample
    assert 0 < np.mean(approx.factors.Delta[0] != 0) < 1                  # and units inactive on some samples
    if not (rho or lam):
        assert set(approx.methods) == {"closed_form_projection"}          # Z Z^T positive definite everywhere
    residual = approx.loss_residual(Y)
    fast = approx.direction(residual)
    forms = approx.diagnostics["direction_forms"]
    # the C' = C (mse) or C - 1 (cross-entropy) rows per sample decide: C' = 1 is the plain C = 1 path
    suffix = "_projected" if approx.n_outputs > 1 else ""
    allowed = {"primal" + suffix} if form == "primal" else {"dual" + suffix}
    if form == "auto":
        allowed = {"primal" + suffix, "dual" + suffix}
    assert set(forms) <= allowed, forms
    slow = full.direction(residual)
    assert full.diagnostics["direction_forms"] == ["dual_full"] * 3
    assert all(np.all(a[:3] == 0.0) for a in fast[1:2])                   # dead units: zero rows
    ref = dense_unit_wise(approx, residual, X2)
    assert ref["cond"] < 1e6
    assert rel(flat(fast), flat(slow)) < PROJECTED_RTOL
    assert rel(flat(fast), ref["update"]) < PROJECTED_RTOL
    if loss == "mse":
        ops = {"operator": (approx.operator(), full.operator()), "test_operator": (approx.operator(X2), full.operator(X2))}
    else:
        ops = {"operator": (approx.logit_operator(), full.logit_operator()),
               "test_operator": (approx.logit_operator(X2), full.logit_operator(X2))}
    for key, (a, b) in ops.items():
        assert rel(a, b) < PROJECTED_RTOL, key
        assert rel(a, ref[key]) < PROJECTED_RTOL, key


@pytest.mark.parametrize("c", [2, 3, 10])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_projected_svd_path_equals_full_dual_and_dense(c, loss):
    """rho = 0 with M_0 = 3 < N = 4: layer 1 goes through the stacked SVD, of diag(s_i) R (N x r) instead of
    E_i R (N C x r), in the direction and in both operators."""
    net, X, X2, Y = projected_problem(c, 3, seed=10 + c)
    approx = UnitWiseApproximation(net, X, loss=loss)
    full = UnitWiseApproximation(net, X, loss=loss, solve_form="dual_full")
    assert approx.methods[0] == "batched_svd"
    residual = approx.loss_residual(Y)
    fast, slow = approx.direction(residual), full.direction(residual)
    assert approx.diagnostics["direction_forms"][0] == ("svd_projected" if approx.n_outputs > 1 else "svd")
    assert full.diagnostics["direction_forms"][0] == ("svd_full" if approx.n_outputs > 1 else "svd")
    ref = dense_unit_wise(approx, residual, X2)
    assert ref["cond"] < 1e6
    assert rel(flat(fast), flat(slow)) < PROJECTED_RTOL
    assert rel(flat(fast), ref["update"]) < PROJECTED_RTOL
    op = (lambda a, x: a.operator(x)) if loss == "mse" else (lambda a, x: a.logit_operator(x))
    for x, key in ((None, "operator"), (X2, "test_operator")):
        assert rel(op(approx, x), op(full, x)) < PROJECTED_RTOL, key
        assert rel(op(approx, x), ref[key]) < PROJECTED_RTOL, key


def test_projected_direction_at_moderate_size_with_chunks():
    """More samples than fit one batch, relu, C = 10, the three forms against the full dual path."""
    net = MLP([20, 48, 40, 10], activation="relu", sigma_w2=2.0, seed=4)
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((16, 20)), np.eye(10)[rng.integers(0, 10, 16)]
    ref = None
    for form in ("dual_full", "dual", "primal"):
        approx = UnitWiseApproximation(net, X, damping=1e-2, solve_form=form, chunk_units=7, loss="cross_entropy")
        d = flat(approx.direction(approx.loss_residual(Y)))
        ref = d if ref is None else ref
        assert rel(d, ref) < PROJECTED_RTOL, form


@pytest.mark.parametrize("c", [1, 7])
def test_a_unit_active_only_on_a_silent_input_contributes_nothing(c):
    """relu [2, 2, 16, C], seed 175: layer 2's unit 11 is active only on inputs whose Z_2 row is exactly 0
    (both layer-1 units inactive there), so J_{2,11} = 0 and its pseudo-inverse block is 0.  The thin SVD's
    R = U sigma carried ~1e-17 rounding in those rows, which survived the per-unit relative cut and was
    inverted: a 3e17 update and a test-operator term of 0.14 (the whole test operator off by up to 38 %)."""
    from numerics.dense import dense_layer_jacobian

    X = np.array([[-0.9187730729889997, 0.3562707312924797], [-0.8314499633576464, 1.0078225099966784],
                  [0.2287792849818758, -0.25732218766028997], [-1.1510060096488064, -0.8271680490422548],
                  [0.46206692698804314, 1.2874640155637274], [-0.908943404211669, 0.1615645409666993]])
    X2 = np.array([[0.09053683347271162, 1.0485168680250883], [-1.7142375915155912, 0.17698486710700093]])
    net = MLP([2, 2, 16, c], activation="relu", sigma_w2=2.0, sigma_b2=0.0, seed=175)
    for form in ("auto", "dual_full"):
        a = get_approximation("unit_wise")(net, X, solve_form=form)
        assert a.methods[1] == "batched_svd"
        assert np.abs(dense_layer_jacobian(a.factors, 2)[:, 22:24]).max() == 0.0
        assert np.all(a.direction(np.ones((6, c)))[1][11] == 0.0)
        # the whole test operator against the per-unit pseudo-inverses of the explicit unit Jacobians
        f2 = a.factors_at(X2)
        ref = 0.0
        for l in range(1, 4):
            J, J2 = dense_layer_jacobian(a.factors, l), dense_layer_jacobian(f2, l)
            fan_in = a.factors.Z[l - 1].shape[1]
            for i in range(J.shape[1] // fan_in):
                cols = slice(i * fan_in, (i + 1) * fan_in)
                ref = ref + J2[:, cols] @ np.linalg.pinv(J[:, cols], rcond=1e-8)
        op = a.operator(X2)
        assert np.abs(op - ref).max() <= 1e-8 * np.abs(ref).max(), (form, np.abs(op - ref).max())
