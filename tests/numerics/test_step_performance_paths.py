"""The fast NGD-step paths against an explicit-Jacobian reference.

* Unit-wise, C = 1: the direction solves each unit's system restricted to its active samples (compressed
  dual, stacked LU) or, when ``M_{l-1} + b`` is small, in the primal ``(M_{l-1} + b)``-sized form
  (push-through).  Reference: per unit, the explicit ``J_i = diag(delta_i) Z`` and
  ``x_i = (J_i^T J_i + sigma_i I)^{-1} J_i^T r`` (damped; ``sigma_i = N rho + lambda s_i``) or
  ``x_i = pinv(J_i) r`` (undamped), computed with ``numpy.linalg.solve`` / ``lstsq`` on the P_l-sized
  blocks -- a different algorithm from the fast paths, so agreement is to rounding times the blocks'
  condition numbers (kept below ~1e4 here): 1e-9 relative.
* Block tri-diagonal with an invertible pattern at rho = 0: ``v_l = c_l K_l^{-1} r`` (``c = S^{-1} 1``)
  against the dense ``G_BTD^+ grad`` and against the general pattern code.
"""
import numpy as np
import pytest

from numerics.approximations import get_approximation
from numerics.approximations.pattern import PatternApproximation, block_pattern
from numerics.dense import dense_layer_jacobian
from numerics.network import MLP

RTOL = 1e-9


def rel(a, b):
    scale = np.linalg.norm(b)
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / (scale if scale > 0 else 1.0))


def flat(dirs):
    return np.concatenate([np.asarray(d).ravel() for d in dirs])


def problem(widths, activation="relu", n=6, seed=0, sigma_b2=0.0):
    net = MLP(widths, activation=activation, sigma_w2=2.0, sigma_b2=sigma_b2, seed=seed)
    rng = np.random.default_rng(seed + 7)
    X = rng.standard_normal((n, widths[0]))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = rng.standard_normal((n, widths[-1]))
    return net, X, Y


def unit_wise_reference(approx, r):
    """Per unit, the explicit ``J_i`` (columns of the dense layer Jacobian) and a solve of its own."""
    f, n = approx.factors, approx.n_samples
    out = []
    for l in range(1, approx.depth + 1):
        J = dense_layer_jacobian(f, l)
        m_l, m = f.Delta[l - 1].shape[2], f.Z[l - 1].shape[1]
        damped = approx.damping > 0 or approx.relative_damping > 0
        shifts = approx.unit_shifts(l) if damped else None
        rows = []
        for i in range(m_l):
            Ji = J[:, i * m:(i + 1) * m]
            if damped:
                rows.append(np.linalg.solve(Ji.T @ Ji + shifts[i] * np.eye(m), Ji.T @ r.ravel()))
            else:
                rows.append(np.linalg.lstsq(Ji, r.ravel(), rcond=None)[0])
        out.append(np.array(rows))
    return out


UNIT_CASES = [
    # (widths, activation, n, damping, relative_damping, solve_form)
    ([3, 24, 24, 1], "tanh", 12, 1e-2, 0.0, "auto"),        # layer 1 m = 3 << N = 12: primal by the flop count
    ([5, 24, 24, 1], "relu", 8, 1e-2, 0.0, "auto"),         # m = 5 < N but ~half the units inactive: dual
    ([5, 24, 24, 1], "relu", 8, 1e-2, 0.0, "dual"),
    ([5, 24, 24, 1], "relu", 8, 1e-2, 0.0, "primal"),
    ([5, 24, 24, 1], "tanh", 8, 0.0, 0.1, "primal"),        # relative damping only
    ([5, 24, 24, 1], "tanh", 8, 0.0, 0.1, "dual"),
    ([12, 32, 32, 1], "relu", 6, 1e-3, 0.05, "auto"),       # m >= N everywhere: dual
    ([12, 32, 32, 1], "relu", 6, 0.0, 0.0, "auto"),         # rho = 0, Z Z^T positive definite: closed form
    ([12, 32, 32, 1], "tanh", 6, 0.0, 0.0, "auto"),
    ([3, 16, 16, 16, 1], "relu", 10, 1e-1, 0.0, "auto"),    # rho = 0 would need batched SVD on layer 1
]


@pytest.mark.parametrize("widths,activation,n,rho,lam,form", UNIT_CASES)
def test_unit_wise_fast_direction_matches_explicit_jacobian(widths, activation, n, rho, lam, form):
    net, X, Y = problem(widths, activation, n)
    approx = get_approximation("unit_wise")(net, X, damping=rho, relative_damping=lam, solve_form=form)
    r = approx.factors.outputs - Y
    fast = approx.direction(r)
    ref = unit_wise_reference(approx, r)
    assert rel(flat(fast), flat(ref)) < RTOL
    for l, (a, b) in enumerate(zip(fast, ref), start=1):
        assert rel(a, b) < RTOL, (l, approx.diagnostics["direction_forms"])
    forms = approx.diagnostics["direction_forms"]
    damped = rho > 0 or lam > 0
    if form == "primal":
        assert all(f == "primal" for f in forms)
    if form == "dual" or not damped:
        assert "primal" not in forms
    if form == "auto" and damped and activation == "tanh" and 4 * widths[0] <= n:
        assert forms[0] == "primal"   # every unit active on all N samples, M_0 (no bias) <= N / 4: far cheaper


def test_unit_wise_primal_and_dual_agree_at_scale():
    """The switch itself: the two forms (different algebra, different systems) on the same step, relu
    (units inactive on part of the batch, so the compression is exercised); C > 1 (projected residual, the
    same N-sized systems) against ``solve_form="dual_full"`` in test_unit_wise.py and below."""
    net, X, Y = problem([20, 96, 96, 1], "relu", n=40, seed=3)
    dirs = {}
    for form in ("dual", "primal"):
        approx = get_approximation("unit_wise")(net, X, damping=1e-3, solve_form=form, chunk_units=17)
        dirs[form] = flat(approx.direction(approx.factors.outputs - Y))
    assert rel(dirs["primal"], dirs["dual"]) < RTOL


@pytest.mark.parametrize("widths,activation,n,rho,lam,form", [
    ([5, 24, 24, 3], "relu", 8, 1e-2, 0.0, "dual"),
    ([5, 24, 24, 3], "relu", 8, 1e-2, 0.0, "primal"),
    ([5, 24, 24, 10], "tanh", 8, 0.0, 0.1, "auto"),
    ([12, 32, 32, 4], "relu", 6, 0.0, 0.0, "auto"),        # rho = 0, Z Z^T positive definite: Kz_SS^{-1} t_S
    ([3, 16, 16, 2], "relu", 6, 0.0, 0.0, "auto"),         # rho = 0, M_0 < N: the N x r SVD on layer 1
])
def test_unit_wise_multi_output_direction_matches_explicit_jacobian(widths, activation, n, rho, lam, form):
    """C > 1: each unit sees the projection t_n = delta_i[n] . r_n / s_n of the residual (module docstring of
    numerics.approximations.unit_wise); the reference solves with the explicit N C x P_l unit Jacobian."""
    net, X, Y = problem(widths, activation, n)
    approx = get_approximation("unit_wise")(net, X, damping=rho, relative_damping=lam, solve_form=form)
    r = approx.factors.outputs - Y
    fast = approx.direction(r)
    assert all(f.endswith("_projected") for f in approx.diagnostics["direction_forms"])
    assert rel(flat(fast), flat(unit_wise_reference(approx, r))) < RTOL


def test_unit_wise_dead_units_and_single_active_sample():
    """Units active on no sample get a zero row; units active on one sample a 1 x 1 system."""
    net, X, Y = problem([4, 40, 40, 1], "relu", n=5, seed=1)
    net.params[0][:5, :] = -1.0    # bias-free relu units with all-negative weights on normalised inputs:
    X = np.abs(X)                  # pre-activation < 0 on every (positive) input: dead
    approx = get_approximation("unit_wise")(net, X, damping=1e-2, solve_form="dual")
    r = approx.factors.outputs - Y
    fast = approx.direction(r)
    assert np.all(fast[0][:5] == 0.0)
    assert rel(flat(fast), flat(unit_wise_reference(approx, r))) < RTOL


@pytest.mark.parametrize("depth", [3, 4, 5, 6])
@pytest.mark.parametrize("rho", [0.0, 1e-2])
def test_block_tridiagonal_fast_path_matches_dense_and_pattern_code(depth, rho):
    widths = [10] + [20] * (depth - 1) + [1]      # P <= 2000: the dense P x P reference stays cheap
    net, X, Y = problem(widths, "tanh", n=6, sigma_b2=0.1)
    btd = get_approximation("block_tridiagonal")(net, X, damping=rho)
    fast_path = rho == 0 and depth % 3 != 2          # T invertible iff L != 2 mod 3
    assert btd.diagnostics["dual_form"] == ("layerwise_cholesky" if fast_path else "pattern_system")
    general = PatternApproximation(net, X, damping=rho, pattern=block_pattern("tridiagonal", depth))
    forced = get_approximation("block_tridiagonal")(net, X, damping=rho, dual_form="pattern_system")
    assert forced.diagnostics["dual_form"] == "pattern_system"
    r = btd.factors.outputs - Y
    fast = flat(btd.direction(r))
    assert rel(fast, flat(general.direction(r))) < RTOL
    assert rel(fast, flat(forced.direction(r))) < RTOL
    G = btd.dense_matrix()
    J = np.hstack([dense_layer_jacobian(btd.factors, l) for l in range(1, depth + 1)])
    grad = J.T @ r.ravel() / btd.n_samples
    if rho > 0:
        ref = np.linalg.solve(G + rho * np.eye(G.shape[0]), grad)
    else:
        ref = np.linalg.lstsq(G, grad, rcond=1e-10)[0]
    assert rel(fast, ref) < 1e-8   # lstsq on the P x P matrix (cond(G) ~ cond(K)^2): one decade looser
    T_fast, T_general = btd.operator(), general.operator()
    assert rel(T_fast, T_general) < RTOL
    rng = np.random.default_rng(5)
    X2 = rng.standard_normal((3, widths[0]))
    assert rel(btd.operator(X2), general.operator(X2)) < RTOL
