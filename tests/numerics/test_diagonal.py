"""Diagonal Fisher: GEMM path vs the dense reference, the pseudo-inverse convention for zero entries,
and the measured failure of isotropy (it does not improve with width)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from numerics.approximations import get_approximation
from numerics.approximations.diagonal import DiagonalApproximation, diagonal_fisher_blocks
from numerics.dense import dense_jacobian, dense_reference
from numerics.network import MLP
from numerics.sweeps import fit_power_law

# elementwise reciprocal + GEMMs vs dense pinv/solve of a diagonal P x P matrix: both are exact up
# to rounding of sums of <= P products (~1e-14); 1e-10 leaves room for cancellation in J diag J^T.
DENSE_RTOL = 1e-10


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def flat(dirs):
    return np.concatenate([d.ravel() for d in dirs])


def isotropy_error(theta):
    a = np.mean(np.diag(theta))
    return float(np.linalg.norm(theta - a * np.eye(len(theta))) / (abs(a) * np.sqrt(len(theta))))


def make_problem(widths, activation="relu", sigma_b2=0.0, n=4, n2=3, seed=0):
    net = MLP(widths, activation=activation, sigma_b2=sigma_b2, seed=seed)
    rng = np.random.default_rng(seed + 100)
    return (net, rng.standard_normal((n, widths[0])), rng.standard_normal((n2, widths[0])),
            rng.standard_normal((n, widths[-1])))


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("activation,sigma_b2", [("relu", 0.0), ("erf", 0.1)])
def test_fast_equals_dense(n_outputs, damping, activation, sigma_b2):
    net, X, X2, r = make_problem([5, 12, 10, n_outputs], activation, sigma_b2, seed=1)
    approx = DiagonalApproximation(net, X, damping=damping, chunk_rows=2)
    ref = dense_reference(approx, r, X2=X2)
    assert rel(flat(approx.direction(r)), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    assert rel(approx.operator(), dense_reference(approx, r).operator) < DENSE_RTOL


def test_fisher_diagonal_is_the_diagonal_of_J_T_J():
    net, X, _, _ = make_problem([4, 9, 7, 2], "tanh", 0.2, n=5, seed=2)
    J = dense_jacobian(net, X)
    F = flat(diagonal_fisher_blocks(net.factors(X)))
    assert rel(F, np.einsum("kp,kp->p", J, J) / 5) < 1e-13


def test_chunking_does_not_change_the_operator():
    net, X, X2, _ = make_problem([6, 20, 20, 2], "relu", 0.1, n=7, n2=5, seed=3)
    base = DiagonalApproximation(net, X).operator(X2)
    for rows in (1, 3):
        assert rel(DiagonalApproximation(net, X, chunk_rows=rows).operator(X2), base) < 1e-13


def test_zero_entries_use_the_pseudo_inverse_convention():
    # dead layer-2 units (all-negative fan-in on relu outputs h_1 >= 0) give zero Fisher rows:
    # 1/0 -> 0, exactly what the dense pinv of diag(F) does
    net, X, X2, r = make_problem([6, 12, 10, 1], "relu", 0.0, n=4, seed=7)
    net.params[1][:3, :] = -1.0
    approx = DiagonalApproximation(net, X)
    F = np.concatenate([f.ravel() for f in approx.fisher_diagonal])
    assert F[F > 0].min() > 1e-8 * F.max()  # the dense pinv's 1e-10 cut only removes the exact zeros
    assert approx.diagnostics["dead_units"][1] >= 3
    assert approx.diagnostics["zero_entries"][1] >= 3 * 12
    assert approx.diagnostics["pseudo_inverse_zeros"] == sum(approx.diagnostics["zero_entries"])
    assert "1/0 -> 0" in approx.diagnostics["failed_assumption"]
    d = approx.direction(r)
    assert np.all(np.isfinite(flat(d))) and not np.any(d[1][:3])
    ref = dense_reference(approx, r, X2=X2)
    assert rel(flat(d), ref.update) < DENSE_RTOL
    assert rel(approx.operator(X2), ref.test_operator) < DENSE_RTOL
    # with damping the zero entries become 1/rho, and nothing is reported as a pseudo-inverse
    assert DiagonalApproximation(net, X, damping=0.5).diagnostics["pseudo_inverse_zeros"] == 0


def test_not_isotropic_and_width_does_not_help():
    # Theta_G = J diag(F)^{-1} J^T / N converges to a deterministic kernel that is not a multiple of
    # I: off-diagonal entries of the order of the diagonal at every width, no decay with M.
    n, widths, errors, off = 12, [128, 256, 512, 1024], [], []
    for width in widths:
        e, o = [], []
        for s in range(3):
            X = np.random.default_rng(s).standard_normal((n, 30))
            theta = DiagonalApproximation(MLP([30, width, width, 1], sigma_b2=0.25, seed=s), X).operator()
            e.append(isotropy_error(theta))
            d = np.diag(theta)
            o.append(np.max(np.abs(theta - np.diag(d))) / d.mean())
        errors.append(float(np.mean(e)))
        off.append(float(np.mean(o)))
    assert min(errors) > 0.05, errors            # measured ~0.5 at every width
    assert min(off) > 0.1, off                   # largest off-diagonal ~0.3 of the mean diagonal
    fit = fit_power_law(widths, errors)
    assert fit.slope > -0.1, fit                 # measured +0.05: no M^-1/2 approach to isotropy


def test_one_step_does_not_converge():
    # even at its best learning rate (least squares over eta in the linearised model) the residual
    # stays a sizeable fraction of r_0: the gradient is not isotropic in function space
    net, X, _, _ = make_problem([30, 256, 256, 1], "relu", 0.0, n=12, seed=5)
    r0 = np.random.default_rng(6).standard_normal(12)
    theta = DiagonalApproximation(net, X).operator()
    step = theta @ r0
    eta = (step @ r0) / (step @ step)
    assert np.linalg.norm(r0 - eta * step) > 0.1 * np.linalg.norm(r0)


def test_registry_and_bad_input():
    assert get_approximation("diagonal") is DiagonalApproximation
    net, X, _, _ = make_problem([5, 8, 1], n=3)
    with pytest.raises(ValueError, match="chunk_rows"):
        DiagonalApproximation(net, X, chunk_rows=0)
    with pytest.raises(TypeError, match="unexpected option"):
        DiagonalApproximation(net, X, method="x")
    with pytest.raises(ValueError, match="residual has shape"):
        DiagonalApproximation(net, X).direction(np.ones((5, 1)))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 2), hidden=st.lists(st.integers(1, 8), min_size=1, max_size=2),
       m0=st.integers(1, 6), damping=st.sampled_from([0.0, 0.05, 1.0]), bias=st.booleans(),
       activation=st.sampled_from(["relu", "tanh"]), seed=st.integers(0, 10 ** 6))
def test_property_fast_equals_dense(n, c, hidden, m0, damping, bias, activation, seed):
    net = MLP([m0, *hidden, c], activation=activation, sigma_b2=0.2 if bias else 0.0, seed=seed)
    rng = np.random.default_rng(seed)
    X, X2, r = rng.standard_normal((n, m0)), rng.standard_normal((2, m0)), rng.standard_normal((n, c))
    approx = DiagonalApproximation(net, X, damping=damping)
    F = np.diag(approx.dense_matrix())
    # dense pinv cuts entries below 1e-10 max(F); ours keeps every nonzero entry: compare where no
    # nonzero entry sits below that cut
    nonzero = F[F > 0]
    if damping == 0 and nonzero.size == 0:
        # every unit dead (e.g. relu widths [1, 1]): G = 0, its pseudo-inverse is 0, nothing moves
        assert not flat(approx.direction(r)).any() and not approx.operator(X2).any()
        return
    assume(damping > 0 or nonzero.min() > 1e-10 * nonzero.max())
    ref = dense_reference(approx, r, X2=X2)
    scale = max(np.linalg.norm(ref.update), 1e-300)
    assert np.linalg.norm(flat(approx.direction(r)) - ref.update) <= 1e-9 * scale
    assert np.linalg.norm(approx.operator(X2) - ref.test_operator) <= 1e-9 * max(np.linalg.norm(ref.test_operator), 1e-300)
