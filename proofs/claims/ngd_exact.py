"""Exact NGD (Karakida & Osawa 2020, arXiv:2010.00879): ``alpha = 1``, one-step convergence at
``eta = 1``, and the test predictor is the NTK kernel regression
``f_0(x') + Theta(x',X) Theta^{-1} (y - f_0(X))``.

Evidence: the symbolic ``alpha`` (theory), the measured ``Theta_G`` at finite width (exact identity),
real one-step training over a width sweep (the nonlinear step's deviation from the linear
prediction shrinks ~ M^{-1/2}), and the test outputs after one step against the analytic-kernel
predictor over the same sweep.
"""
from __future__ import annotations

from functools import lru_cache

from hypothesis import strategies as st

from proofs import evidence as ev
from proofs.figures import width_sweep_series
from proofs import verdicts as V
from proofs.assumption_spaces import (DUPLICATED_INPUTS, AssumptionSpace, exact_test_predictor_check, layerwise_space,
                                      predicted_alpha)
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.strategies import dampings, scenarios
from theory.assumptions import (DISTINCT_INPUTS, INFINITE_WIDTH_DYNAMICS, NTK_POSITIVE_DEFINITE, RHO_TO_ZERO,
                                STANDARD_RELU_NET, Setting)

__all__ = ["one_step_convergence", "test_predictor", "exact_evidence"]

DEPTH = 3
#: test-output error vs the analytic predictor (relative to the predicted change of the test outputs)
#: allowed at the widest net: empirical kernels and the step's nonlinearity both converge ~ M^-1/2;
#: measured here: 5-8 % at width 4096, the quick sweep's 2048 gives 8-14 %
TEST_TOL = 0.15
ASSUMPTIONS = [STANDARD_RELU_NET, NTK_POSITIVE_DEFINITE, RHO_TO_ZERO, INFINITE_WIDTH_DYNAMICS]


def setting(cfg: RunConfig) -> Setting:
    """What the assumptions are checked on: the narrowest net of the sweep (and the width-64 net)."""
    s = settings(cfg)
    return Setting(n_samples=s["n"], input_dim=s["dim"], hidden_widths=(min(64, *s["widths"]),) * (DEPTH - 1))


def settings(cfg: RunConfig) -> dict:
    # several initialisations per width and 16 test points average out the O(1) relative
    # fluctuation of one network's error, which otherwise blurs the slope of a 4-width sweep
    return {"n": cfg.pick(12, 20), "dim": cfg.pick(16, 24), "n_test": 16,
            "widths": cfg.pick([128, 256, 512, 1024, 2048], [128, 256, 512, 1024, 2048, 4096, 8192]), "steps": 2}


@lru_cache(maxsize=4)
def exact_evidence(cfg: RunConfig):
    """One shared run for the claims of this module: alpha, finite-width operator, training sweep."""
    s = settings(cfg)
    task = ev.synthetic_task(cfg, ("ngd.exact",), s["n"], s["dim"], s["n_test"])
    alpha = ev.predicted_alpha("exact", DEPTH)
    small = ev.make_net(cfg, ("ngd.exact", "small"), [s["dim"], 64, 64, 1])
    iso_err, alpha_hat = ev.isotropy_error(ev.measured_operator(small, task.X, "exact"))
    test_op = ev.analytic_test_operator("exact", task.X, task.X_test, DEPTH)
    sweep = ev.training_sweep(cfg, ("ngd.exact",), "exact", task.X, task.Y, task.X_test, task.Y_test,
                              s["widths"], DEPTH, alpha, 1.0 / alpha, s["steps"], test_op,
                              budget=ev.training_budget(cfg), test_tolerance=TEST_TOL)
    return s, alpha, iso_err, alpha_hat, sweep


@claim("ngd.exact.one_step",
       title="Exact NGD: alpha = 1 and one-step convergence at eta = 1",
       statement=r"J F^{+} J^\top / N = I,\qquad \eta = 1 \Rightarrow f_1(X) - Y \to 0 \ (M \to \infty)",
       assumptions=ASSUMPTIONS, setting=setting, reference="Karakida & Osawa 2020, arXiv:2010.00879 (exact NGD)",
       tags=("exact", "dynamics"))
def one_step_convergence(cfg: RunConfig) -> ClaimResult:
    from theory.isotropy import isotropy_result

    s, alpha, iso_err, alpha_hat, sweep = exact_evidence(cfg)
    derivation = isotropy_result("exact", DEPTH).derivation
    lin = sweep.linearisation
    widest = max(sweep.curves)
    losses = sweep.curves[widest]["measured"]["train_loss"]
    ratio = losses[1] / losses[0]
    parts = [
        V.derivation_verdict(derivation, "alpha(11^T) = 1 (symbolic)"),
        # exact identity at finite width: float64 round-off of an N x N solve is ~1e-13
        V.compare("alpha measured at width 64 (exact identity)", alpha, alpha_hat, tolerance=1e-9),
        V.compare("isotropy error at width 64", 0.0, iso_err, tolerance=1e-9, error=iso_err),
        # Lee et al. 2019: the nonlinearity of one step is O(M^-1/2) (adaptive sweep, proofs.verdicts rules)
        sweep.adaptive.part(ev.LINEARISATION),
        # the authors' MNIST run at width 4096: L1/L0 = 1.5e-3; demand a > 100x drop at the widest net
        V.compare("one-step loss ratio L1/L0 at the widest net", 0.0, ratio, tolerance=1e-2, error=ratio),
    ]
    return V.to_result(
        # the headline error is judged by the width sweep (its slope), not by a fixed tolerance
        parts, predicted=alpha, measured=alpha_hat, error=lin.errors[-1], width=widest, tolerance=None,
        derivation=derivation,
        details={"settings": s, "spent": sweep.spent, "loss_ratio_widest": ratio, "table": sweep.table(),
                 # at eta = 1 the linearisation error IS ||r_1|| / ||r_0||; the loss ratio is its square
                 "relative_residual_slope": lin.fit.slope, "relative_residual_slope_stderr": lin.fit.slope_stderr,
                 "loss_ratio_by_width": {m: c["measured"]["train_loss"][1] / c["measured"]["train_loss"][0]
                                         for m, c in sweep.curves.items()}},
        series={"one_step_residual_vs_width": width_sweep_series(lin), "loss_curve_exact": sweep.curve_series()},
        notes="measured = mean diag of Theta_G at width 64; error = ||r_1 - (1 - eta alpha) r_0|| / ||r_0|| "
              "at the widest net, judged by its width sweep (must shrink with slope near -1/2); the loss ratio "
              "L1/L0 at the widest net must be below 1e-2")


@claim("ngd.exact.test_predictor",
       title="Exact NGD at eta = 1 gives the NTK kernel regression on test points",
       statement=r"f_1(x') = f_0(x') + \Theta(x',X)\,\Theta^{-1}\,(Y - f_0(X))",
       assumptions=ASSUMPTIONS, setting=setting, reference="Karakida & Osawa 2020, arXiv:2010.00879 (exact NGD, test prediction)",
       tags=("exact", "test"))
def test_predictor(cfg: RunConfig) -> ClaimResult:
    s, alpha, _, _, sweep = exact_evidence(cfg)
    te = sweep.test_error
    widest = max(sweep.curves)
    curve = sweep.curves[widest]
    parts = [
        # empirical kernels and the step's nonlinearity both converge ~ M^-1/2; relative to the
        # predicted change of the test outputs, 15% at the widest quick width (measured here: 5-8% at 4096)
        sweep.adaptive.part(ev.TEST_ERROR),
    ]
    return V.to_result(
        parts, predicted=curve["predicted"]["test_loss"][1], measured=curve["measured"]["test_loss"][1],
        error=te.errors[-1], width=widest, tolerance=TEST_TOL, details={"settings": s, "spent": sweep.spent},
        series={"test_error_vs_width": width_sweep_series(te)},
        notes="predicted/measured = test loss after one step at the widest net; error = "
              "||f_1(X') - f_1^pred(X')|| / ||f_1^pred(X') - f_0(X')||")


# ----------------------------------------------------------------------------- falsify search spaces
one_step_convergence.set_space(layerwise_space(
    "exact", "J F^+ J^T / N = I (exact at finite width)", st.integers(1, 5), lambda s: predicted_alpha("exact", s.depth),
    {RHO_TO_ZERO: scenarios("exact", damping=dampings(1e-2, 10.0))}))
test_predictor.set_space(AssumptionSpace(
    "finite-width J(x') J^+ = Theta(x', X) Theta^{-1}", scenarios("exact", depth=st.integers(1, 5), n=st.integers(2, 10)),
    exact_test_predictor_check, {DISTINCT_INPUTS: scenarios("exact", depth=st.integers(1, 5), inputs=DUPLICATED_INPUTS)}))
