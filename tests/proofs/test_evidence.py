"""Tests of proofs.evidence: the measurement helpers behind the NGD claims.

Exact identities are asserted at float64 round-off (1e-9 leaves four orders of magnitude above the
~1e-13 of an N x N solve); statements about finite-width networks use cases where the answer is
exact (a depth-1 network is linear in its parameters) or O(1) (diagonal Fisher).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from proofs import evidence as ev
from proofs.figures import width_sweep_series
from proofs.claim import RunConfig

CFG = RunConfig(seed=3)


def test_loss_and_isotropy_error_numbers():
    assert ev.loss(np.array([[1.0], [3.0]])) == pytest.approx(2.5)  # (1 + 9) / (2 * 2)
    err, a = ev.isotropy_error(np.diag([1.0, 3.0]))
    assert a == 2.0 and err == pytest.approx(np.sqrt(2) / (2 * np.sqrt(2)))
    with pytest.raises(ValueError, match="square"):
        ev.isotropy_error(np.ones((2, 3)))
    with pytest.raises(ValueError, match="zero mean diagonal"):
        ev.isotropy_error(np.zeros((2, 2)))


@settings(max_examples=20, deadline=None)
@given(st.floats(0.01, 2.5), st.floats(0.1, 10.0), st.integers(0, 4))
def test_predicted_outputs_match_theory_dynamics(eta_alpha, alpha, t):
    """The general linear recursion reduces to theory.dynamics' closed forms when Theta_G = alpha I."""
    from theory.dynamics import predicted_residuals, predicted_test_outputs

    rng = np.random.default_rng(0)
    f0, f0_test, Y = rng.standard_normal((5, 1)), rng.standard_normal((3, 1)), rng.standard_normal((5, 1))
    K = rng.standard_normal((3, 5))
    eta = eta_alpha / alpha
    residuals, tests = ev.predicted_outputs(f0, f0_test, Y, alpha, K, eta, t)
    scale = max(1.0, abs(1 - eta_alpha) ** t)  # residuals grow like |1 - eta alpha|^t outside (0, 2)
    assert np.allclose(residuals[t], predicted_residuals(f0 - Y, eta, alpha, t)[t], atol=1e-12 * scale)
    assert np.allclose(tests[t], predicted_test_outputs(f0_test, K, f0 - Y, eta, alpha, t), atol=1e-9 * scale)


def test_synthetic_task_is_seeded_and_key_dependent():
    a = ev.synthetic_task(CFG, ("k",), 6, 4, 3)
    b = ev.synthetic_task(CFG, ("k",), 6, 4, 3)
    c = ev.synthetic_task(CFG, ("other",), 6, 4, 3)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y)
    assert not np.allclose(a.X, c.X)
    assert np.allclose(np.linalg.norm(a.X, axis=1), 1.0)


def test_pattern_matrix_from_theory_and_bad_name():
    assert ev.pattern_matrix("block_diagonal", 3).tolist() == np.eye(3).tolist()
    assert ev.pattern_matrix("exact", 2).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="not a block-pattern"):
        ev.pattern_matrix("kfac", 3)


def test_isotropy_sweep_exact_is_identity_and_diagonal_is_not():
    task = ev.synthetic_task(CFG, ("sweep",), 6, 8, 2)
    exact = ev.isotropy_sweep(CFG, ("t",), "exact", task.X, [16, 32, 64], 3)
    assert max(exact.errors) < 1e-9 and np.allclose(exact.extra["alpha"], 1.0, atol=1e-9)
    diag = ev.isotropy_sweep(CFG, ("t",), "diagonal", task.X, [16, 32, 64], 3)
    assert min(diag.errors) > 0.05  # O(1): the diagonal Fisher is not isotropic at any width
    series = width_sweep_series(diag)
    assert series["kind"] == "width_sweep" and len(series["curves"][0]["y"]) == 3


def test_one_step_on_linear_model_is_exact_and_moves_in_place():
    """Depth 1: f is linear in theta, so a real exact-NGD step gives r_1 = (1 - eta) r_0 exactly."""
    task = ev.synthetic_task(CFG, ("lin",), 6, 10, 2)
    net = ev.make_net(CFG, ("lin",), [10, 1])
    before = net.params[0].copy()
    step = ev.one_step(net, task.X, task.Y, "exact", 0.7)
    assert ev.relative_residual_change(step["r0"], step["r1"], 0.3) < 1e-9
    assert not np.allclose(net.params[0], before)
    assert step["layer_change"][0] > 0


def test_training_sweep_linear_model_and_wrong_alpha():
    """Linearisation error is ~0 for a linear model; feeding a wrong alpha makes it O(1)."""
    task = ev.synthetic_task(CFG, ("ts",), 6, 10, 3)
    good = ev.training_sweep(CFG, ("ts",), "exact", task.X, task.Y, task.X_test, task.Y_test, [4, 8, 16], 1,
                             1.0, 1.0, 2)
    assert max(good.linearisation.errors) < 1e-9
    assert good.curves[16]["measured"]["train_loss"][1] < 1e-20 * good.curves[16]["measured"]["train_loss"][0] + 1e-25
    wrong = ev.training_sweep(CFG, ("ts",), "exact", task.X, task.Y, task.X_test, task.Y_test, [4, 8, 16], 1,
                              2.0, 1.0, 1)
    assert min(wrong.linearisation.errors) == pytest.approx(1.0, abs=1e-9)  # r_1 = 0 but predicted -r_0


def test_eta_scan_and_spectrum_series():
    task = ev.synthetic_task(CFG, ("eta",), 6, 10, 2)
    net = ev.make_net(CFG, ("eta",), [10, 1])
    scan = ev.eta_scan(net.copy, task.X, task.Y, "exact", 1.0, [0.5, 1.0, 1.5])
    # linear model: the measured one-step loss ratio is exactly (1 - f)^2
    assert np.allclose(scan["measured"], [0.25, 0.0, 0.25], atol=1e-12)
    assert np.allclose(scan["predicted"], [0.25, 0.0, 0.25], atol=1e-15)  # (1 - eta alpha)^2 from theory
    spec = ev.spectrum_series("exact", np.diag([3.0, 1.0, 2.0]), 10)
    assert spec["curves"][0]["y"] == [3.0, 2.0, 1.0]


def test_evidence_uses_the_one_relative_error_and_isotropy_error():
    """proofs builds on numerics/theory: no second definition of either measure."""
    from numerics.measure import isotropy_error
    from theory.metrics import relative_error

    assert ev.relative_error is relative_error and ev.isotropy_error is isotropy_error
    assert ev.relative_error(np.array([2.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(1.0, rel=1e-15)


def test_block_tridiagonal_is_measured_through_the_general_pattern_system():
    """The fast path solves v_l = c_l K_l^-1 r, the formula the claims check: a claim measured through it
    would hold by construction.  Every measurement of the verifier (evidence helpers, falsify scenarios) uses
    the general pattern system instead; an explicit option still wins."""
    import numpy as np

    from numerics.network import MLP
    from proofs import evidence as ev
    from proofs.strategies import Scenario

    net = MLP([5, 32, 32, 32, 1], seed=0)
    X = np.random.default_rng(0).standard_normal((6, 5))
    assert ev.approximation(net, X, "block_tridiagonal").diagnostics["dual_form"] == "pattern_system"
    assert ev.approximation(net, X, "block_tridiagonal", dual_form="auto").diagnostics["dual_form"] == \
        "layerwise_cholesky"
    assert ev.measurement_options("exact") == {}
    scenario = Scenario("block_tridiagonal", (5, 32, 32, 32, 1), 6)
    assert scenario.options() == {"dual_form": "pattern_system"}
    assert Scenario("exact", (5, 32, 1), 4).options() == {}
