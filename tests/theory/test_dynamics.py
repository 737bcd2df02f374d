"""theory.dynamics: the derivations check, the derived SymPy results have the expected forms, and
the lambdified predictions agree with direct simulation of the linear recursions."""
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from theory import dynamics as D
from theory.dynamics import alpha, eta, kappa, lam, lam_max, lam_min, loss0, r0, rho, t


@pytest.fixture(scope="module")
def derivations():
    return D.all_dynamics()


@pytest.fixture(scope="module")
def results():
    return D.dynamics_results()


def _spd(rng, n, lo=0.5, hi=20.0):
    """Random SPD matrix with eigenvalues spread over [lo, hi] (endpoints included)."""
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lams = np.concatenate([[lo, hi], rng.uniform(lo, hi, n - 2)])
    return (Q * lams) @ Q.T, Q, lams


def _latex_unsafe(text):
    """Characters that break LaTeX text mode when they appear outside $...$ (escaped \\_ is fine)."""
    outside = re.sub(r"\$[^$]*\$", "", text).replace(r"\_", "")
    return [c for c in "^_&%#" if c in outside]


# ------------------------------------------------------------------------------ symbolic
@pytest.mark.parametrize("index", range(5))
def test_every_step_checked(derivations, index):
    d = derivations[index]
    assert [s.status for s in d.steps] == ["checked"] * len(d.steps), [(s.name, s.status, s.detail) for s in d.steps]
    tex = d.to_latex()
    assert d.title in tex and "(failed)" not in tex and "(unchecked)" not in tex


def test_derived_results_have_the_expected_closed_forms(results):
    # the derivations produced these (rsolve/solve/solveset/summation); here we compare with the
    # textbook forms typed independently
    same = lambda a, b: sp.simplify(sp.expand_power_exp(a - b)) == 0
    assert same(results.residual, (1 - eta * alpha) ** t * r0)
    assert same(results.loss, (1 - eta * alpha) ** (2 * t) * loss0)
    assert same(results.one_step_ratio, (1 - eta * alpha) ** 2)
    assert results.optimal_learning_rate == 1 / alpha
    assert results.stable_interval == sp.Interval.open(0, 2 / alpha)
    assert same(results.test_coefficient, (1 - (1 - eta * alpha) ** t) / alpha)
    assert same(results.gd_factor, (1 - eta * lam) ** t)
    assert results.gd_stable_upper == 2 / lam_max
    assert same(results.gd_optimal_learning_rate, 2 / (lam_min + lam_max))
    assert same(results.gd_optimal_rate, (kappa - 1) / (kappa + 1))
    assert same(results.damped_factor, 1 - eta * lam / (lam + rho))


def test_a_failing_step_would_be_reported():
    # the identity checker used by the derivations can fail (it is not a rubber stamp)
    assert not D._zero((1 - eta * alpha) ** (t + 1) - (1 - eta * alpha) ** t)
    assert D._zero((1 - eta * alpha) ** (t + 1) - (1 - eta * alpha) * (1 - eta * alpha) ** t)


@pytest.mark.parametrize("index", range(5))
def test_text_parts_are_latex_safe(derivations, index):
    # report.tex puts names, assumptions and justifications in text mode: math must sit in $...$
    d = derivations[index]
    for text in [*d.assumptions, *(s.name for s in d.steps), *(s.justification for s in d.steps)]:
        assert not _latex_unsafe(text), text


# ------------------------------------------------------------------------------ isotropic NGD vs simulation
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha_value=st.floats(0.1, 50.0), eta_factor=st.floats(0.05, 1.95),
       n=st.integers(20, 80))
def test_isotropic_simulation_matches_prediction(seed, alpha_value, eta_factor, n):
    rng = np.random.default_rng(seed)
    eta_value = eta_factor / alpha_value          # inside the stable interval (0, 2/alpha)
    theta_g = alpha_value * np.eye(n)
    r = rng.standard_normal(n)
    steps = 25
    sim, loss = [r], [r @ r / (2 * n)]
    for _ in range(steps):
        r = r - eta_value * (theta_g @ r)        # r_{t+1} = (I - eta Theta_G) r_t
        sim.append(r)
        loss.append(r @ r / (2 * n))
    sim, loss = np.array(sim), np.array(loss)
    pred_r = D.predicted_residuals(sim[0], eta_value, alpha_value, steps)
    pred_l = D.predicted_train_losses(loss[0], eta_value, alpha_value, steps)
    # each step rounds once per entry (relative eps); 25 steps -> < 1e-13 relative, 1e-12 leaves margin
    scale = np.linalg.norm(sim[0])
    assert np.max(np.abs(pred_r - sim)) <= 1e-12 * scale
    assert np.max(np.abs(pred_l - loss)) <= 1e-12 * loss[0]
    assert np.all(np.diff(pred_l) <= 0)           # stable: the loss never increases


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha_value=st.floats(0.1, 50.0), eta_factor=st.floats(0.05, 1.95),
       t_value=st.integers(0, 20))
def test_test_outputs_match_unrolled_recursion(seed, alpha_value, eta_factor, t_value):
    rng = np.random.default_rng(seed)
    n_train, n_test, C = 30, 12, 2
    eta_value = eta_factor / alpha_value
    K = rng.standard_normal((n_test * C, n_train * C))      # Theta_G(x', X)
    r = rng.standard_normal((n_train, C))
    f0 = rng.standard_normal((n_test, C))
    f, rt = f0.ravel().copy(), r.ravel().copy()
    for _ in range(t_value):
        f = f - eta_value * (K @ rt)                          # f_{t+1}(x') = f_t(x') - eta Theta_G(x',X) r_t
        rt = rt - eta_value * alpha_value * rt
    pred = D.predicted_test_outputs(f0, K, r, eta_value, alpha_value, t_value)
    assert pred.shape == f0.shape
    # relative to the size of the terms involved: t accumulated GEMV roundings ~ t * 60 eps
    scale = np.abs(f0).max() + np.abs(K @ r.ravel()).max() / alpha_value
    assert np.max(np.abs(pred.ravel() - f)) <= 1e-12 * scale


def test_optimal_learning_rate_gives_one_step_convergence():
    for a in (0.3, 1.0, 3.0, 300.0):
        e = D.optimal_learning_rate(a)
        assert e == pytest.approx(1 / a, rel=1e-15)
        assert D.one_step_loss_ratio(e, a) <= 1e-30
        losses = D.predicted_train_losses(2.0, e, a, 3)
        assert losses[0] == 2.0 and np.all(losses[1:] <= 1e-30)
        grid = np.linspace(0.01, 1.99, 199) / a
        ratios = [D.one_step_loss_ratio(g, a) for g in grid]
        assert abs(grid[int(np.argmin(ratios))] - 1 / a) <= (grid[1] - grid[0]) / 2 + 1e-15


def test_stability_boundary_by_simulation():
    rng = np.random.default_rng(1)
    a = 2.5
    low, high = D.stable_learning_rate_interval(a)
    assert (low, high) == (0.0, pytest.approx(2 / a, rel=1e-15))
    r0_vec = rng.standard_normal(10)

    def simulate(e, steps=200):
        r = r0_vec.copy()
        norms = [np.linalg.norm(r)]
        for _ in range(steps):
            r = r - e * a * r
            norms.append(np.linalg.norm(r))
        return r, np.array(norms)

    # just inside: contracts; just outside: grows; exactly at 2/alpha: |r_t| = |r_0|, sign flips
    _, inside = simulate(high * (1 - 1e-3))
    _, outside = simulate(high * (1 + 1e-3))
    assert inside[-1] < 0.7 * inside[0] and outside[-1] > 1.4 * outside[0]
    r_last, at = simulate(high, steps=7)
    # factor exactly -1 up to one rounding per step: 7 steps -> ~1e-15 relative
    assert np.allclose(at, at[0], rtol=1e-13)
    assert np.allclose(r_last, -r0_vec, rtol=1e-13)
    assert np.allclose(D.predicted_residuals(r0_vec, high, a, 7)[-1], -r0_vec, rtol=1e-13)


@settings(max_examples=20, deadline=None)
@given(alpha_value=st.floats(0.01, 100.0), eta_factor=st.floats(0.0, 4.0).filter(lambda x: abs(x - 2) > 1e-6 and x > 1e-6))
def test_loss_decreases_iff_inside_stable_interval(alpha_value, eta_factor):
    e = eta_factor / alpha_value
    low, high = D.stable_learning_rate_interval(alpha_value)
    ratio = D.one_step_loss_ratio(e, alpha_value)
    assert (ratio < 1) == (low < e < high)


# ------------------------------------------------------------------------------ GD for contrast
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 60), eta_factor=st.floats(0.1, 1.9))
def test_gd_residuals_match_simulation(seed, n, eta_factor):
    rng = np.random.default_rng(seed)
    theta, _, lams = _spd(rng, n)
    e = eta_factor / lams.max()
    r = rng.standard_normal(n)
    steps = 30
    pred = D.gd_predicted_residuals(theta, r, e, steps)
    sim = [r]
    for _ in range(steps):
        r = r - e * (theta @ r)
        sim.append(r)
    # ||I - eta Theta|| < 1 here, so rounding does not grow: ~ steps * n * eps relative (< 1e-12)
    assert np.max(np.abs(pred - np.array(sim))) <= 1e-12 * np.linalg.norm(sim[0])


def test_gd_optimal_rate_and_steps_match_simulation():
    rng = np.random.default_rng(2)
    theta, Q, lams = _spd(rng, 40, lo=1.0, hi=9.0)         # kappa = 9 -> rate (9-1)/(9+1) = 0.8
    e = D.gd_optimal_learning_rate(theta)
    assert e == pytest.approx(2 / 10.0, rel=1e-12)          # eigvalsh of theta: relative rounding ~1e-14
    q = D.gd_convergence_rate(theta)
    assert q == pytest.approx(0.8, rel=1e-12)
    # r0 on the two extreme eigenvectors: both factors have magnitude q, so ||r_t|| = q^t ||r_0|| exactly
    i_min, i_max = np.argmin(lams), np.argmax(lams)
    r = Q[:, i_min] + Q[:, i_max]
    norms = np.linalg.norm(D.gd_predicted_residuals(theta, r, e, 20), axis=1)
    assert np.allclose(norms[1:] / norms[:-1], q, rtol=1e-10)
    tol = 1e-6
    n_steps = D.steps_to_tolerance(q, tol)
    sim = r.copy()
    ratios = [1.0]
    for _ in range(n_steps + 1):
        sim = sim - e * (theta @ sim)
        ratios.append(np.linalg.norm(sim) / np.linalg.norm(r))
    first = next(i for i, x in enumerate(ratios) if x <= tol)
    assert first == n_steps == int(np.ceil(np.log(tol) / np.log(0.8)))
    # any other fixed step is worse in the worst case
    for other in (0.9 * e, 1.1 * e):
        worst = max(abs(1 - other * lams.min()), abs(1 - other * lams.max()))
        assert worst > q + 1e-3
    # NGD with Theta_G = alpha I at eta = 1/alpha needs one step, whatever kappa
    assert D.steps_to_tolerance(abs(1 - D.optimal_learning_rate(3.0) * 3.0), tol) == 1


def test_gd_stability_bound_by_simulation():
    rng = np.random.default_rng(3)
    theta, Q, lams = _spd(rng, 30, lo=0.5, hi=4.0)
    bound = D.gd_stable_learning_rate_bound(theta)
    assert bound == pytest.approx(0.5, rel=1e-12)
    r = Q[:, np.argmax(lams)] + 0.1 * rng.standard_normal(30)
    grow = np.linalg.norm(D.gd_predicted_residuals(theta, r, bound * 1.01, 400)[-1])
    shrink = np.linalg.norm(D.gd_predicted_residuals(theta, r, bound * 0.99, 400)[-1])
    assert grow > 10 * np.linalg.norm(r) and shrink < 0.1 * np.linalg.norm(r)


def test_damped_ngd_factors_are_the_eigenvalues_of_the_step_operator():
    rng = np.random.default_rng(4)
    theta, _, lams = _spd(rng, 25)
    damping, e = 0.7, 1.0
    theta_g = theta @ np.linalg.inv(theta + damping * np.eye(25))
    step = np.eye(25) - e * theta_g
    measured = np.sort(np.linalg.eigvals(step).real)
    predicted = np.sort(D.damped_ngd_factors(lams, e, damping))
    # eigenvalues of a well-conditioned (cond < 40) 25 x 25 operator: ~1e-14 absolute
    assert np.max(np.abs(measured - predicted)) <= 1e-12
    # not isotropic: the factors spread whenever the eigenvalues do
    assert predicted.max() - predicted.min() > 0.1
    # undamped limit is exact NGD: every factor -> 1 - eta = 0
    assert np.max(np.abs(D.damped_ngd_factors(lams, 1.0, 1e-12))) < 1e-10


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, match", [
    (lambda: D.predicted_train_losses(1.0, 0.1, 0.0, 3), "alpha=0.0"),
    (lambda: D.predicted_train_losses(1.0, -0.1, 1.0, 3), "eta=-0.1"),
    (lambda: D.predicted_train_losses(-1.0, 0.1, 1.0, 3), "loss0=-1.0"),
    (lambda: D.predicted_train_losses(1.0, 0.1, 1.0, -1), "steps=-1"),
    (lambda: D.stable_learning_rate_interval(float("nan")), "alpha=nan"),
    (lambda: D.one_step_loss_ratio(0.1, -2.0), "alpha=-2.0"),
    (lambda: D.gd_predicted_residuals(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2), 0.1, 2), "Theta must be symmetric"),
    (lambda: D.gd_predicted_residuals(np.eye(2), np.ones(3), 0.1, 2), "r0 has 3 entries"),
    (lambda: D.gd_optimal_learning_rate([1.0, -1.0]), "positive definite"),
    (lambda: D.steps_to_tolerance(1.0, 1e-3), "rate=1.0"),
    (lambda: D.predicted_test_outputs(np.zeros(2), np.ones((3, 2)), np.ones(2), 0.1, 1.0, 1), "theta_g_test has shape"),
    (lambda: D.damped_ngd_factors([1.0], 0.1, 0.0), "damping=0.0"),
])
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_are_rejected():
    with pytest.raises(TypeError, match="steps"):
        D.predicted_train_losses(1.0, 0.1, 1.0, 2.5)
    with pytest.raises(TypeError, match="alpha"):
        D.optimal_learning_rate("2")
