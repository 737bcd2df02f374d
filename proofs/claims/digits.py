"""The authors' experiment on real images (scikit-learn's bundled digits, 0 vs 1; the
experiment defaults of the authors' code, github.com/kazukiosawa/ngd_in_wide_nn):
real NGD training at eta = 1/alpha for every approximation against the infinite-width prediction
from the analytic kernels, and what happens to unit-wise NGD whose input assumption fails here.
See :mod:`proofs.experiments.digits` for the setting.
"""
from __future__ import annotations

from functools import lru_cache

from proofs import figures as F
from proofs import verdicts as V
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.experiments import digits as D

__all__ = ["digits_one_step", "digits_unit_wise"]

DEPTH = 3
#: test-output error ``||f_1(X') - f_1^pred(X')|| / ||f_1^pred(X') - f_0(X')||`` allowed after one step:
#: the standards of the synthetic test-predictor claims (ngd.exact / ngd.block_*: 0.15; K-FAC, whose
#: Forster position on the digits is only approximate: 0.25), which shrink ~ M^-1/2 in their sweeps.
#: Measured on the digits at width 4096 over 16 initialisations: exact 0.018-0.033, block-diagonal
#: 0.019-0.031, block tri-diagonal 0.023-0.048, K-FAC 0.060-0.119.
TEST_OUTPUT_TOL = {"default": 0.15, "kfac": 0.25}


def settings(cfg: RunConfig) -> dict:
    # the authors' width 4096 for every approximation, also in --quick (one run: ~2-4 s on an idle
    # 2-core machine).  At 2048 the finite-width effects are visibly larger (K-FAC's one-step loss
    # ratio 0.02 instead of 0.008, block-diagonal's test loss 27% off the prediction instead of 5-15%).
    widths = {name: 4096 for name in D.LAYERWISE}
    return {"n_train": 100, "n_test": 50, "widths": widths, "steps": cfg.pick(2, 3),
            "unit_wise_width": cfg.pick(256, 1024)}


@lru_cache(maxsize=2)
def digits_runs(cfg: RunConfig):
    s = settings(cfg)
    data = D.load_digits_binary(n_train=s["n_train"], n_test=s["n_test"])
    runs = {}
    for name in D.LAYERWISE:
        runs[name] = D.run_approximation(data, name, s["widths"][name], cfg.sub_seed("digits", name), steps=s["steps"],
                                         depth=DEPTH)
    return s, data, runs


def table(runs) -> list:
    """Rows: approximation, alpha, eta, step, train/test loss measured and predicted."""
    rows = []
    for name, r in runs.items():
        for t in range(len(r.train_loss)):
            rows.append({"approximation": name, "width": r.width, "alpha": r.alpha, "eta": r.learning_rate, "step": t,
                         "train": r.train_loss[t], "train_pred": r.predicted_train_loss[t],
                         "test": r.test_loss[t], "test_pred": r.predicted_test_loss[t]})
    return rows


@claim("digits.one_step",
       title="Real digits (0 vs 1, N = 100): every layer-wise NGD converges in one step at eta = 1/alpha "
             "and its test outputs follow the infinite-width predictor",
       statement=r"\mathcal L_{\rm train}(\theta_1) \ll \mathcal L_{\rm train}(\theta_0),\quad "
                 r"f_1(X') \approx f_0(X') - \eta\,\Theta_G(X',X)\,(f_0(X) - Y)\ \text{(analytic kernels)}",
       assumptions=["scikit-learn digits 0 vs 1, first 100 train / next 50 test, standardised, unit norm, labels +-0.5",
                    "depth 3, width 4096, relu, sigma_w2 = 2, no bias",
                    "K-FAC: inputs in their span (M_0 = rank X = 48 < N) and Forster-transformed"],
       reference="Karakida & Osawa 2020, arXiv:2010.00879 (exact, layer-wise and K-FAC NGD); "
                 "authors' MNIST run, github.com/kazukiosawa/ngd_in_wide_nn", tags=("experiment", "digits"))
def digits_one_step(cfg: RunConfig) -> ClaimResult:
    s, data, runs = digits_runs(cfg)
    parts, series = [], {}
    for name, r in runs.items():
        ratio = r.train_loss[1] / r.train_loss[0]
        # the authors' MNIST run at the same width: 0.134 -> 2.0e-4 (ratio 1.5e-3); plain GD halves the
        # loss per step here.  Demand a 50x drop: exact/BD/BTD reach 1e-4..2e-3, K-FAC 0.007-0.012 over
        # seeds -- from the step's nonlinearity, not from the approximate Forster position: the step
        # linearised with the measured operator gives 3e-5 (linearised_loss_ratio in details)
        parts.append(V.compare(f"{name}: train loss ratio after one step", 0.0, ratio, tolerance=2e-2, error=ratio))
        # test outputs after one step vs the analytic predictor, relative to the move it predicts (the
        # relative error of the test LOSS is ill-conditioned: the prediction brings it near 0, and a 3 %
        # output deviation became a 42 % loss deviation at one seed in 20)
        tol = TEST_OUTPUT_TOL.get(name, TEST_OUTPUT_TOL["default"])
        parts.append(V.compare(f"{name}: test outputs after one step vs the infinite-width predictor", 0.0,
                               r.test_output_error, tolerance=tol, error=r.test_output_error))
        series[f"digits_loss_curve_{name}"] = F.figure_series("loss_curves", F.loss_curves(
            name, list(range(len(r.train_loss))), {"train": r.train_loss, "test": r.test_loss},
            {"train": [max(v, 1e-300) for v in r.predicted_train_loss], "test": r.predicted_test_loss}, r.width),
            name=f"digits_loss_curve_{name}", xlabel="step", ylabel="loss", logy=True,
            data={"learning_rate": r.learning_rate})
    steps = list(range(s["steps"] + 1))
    series["digits_train_loss_all"] = F.figure_series(
        "loss_curves", [{"label": f"{F.approximation_label(k)} (alpha={r.alpha:g})", "x": steps, "y": r.train_loss,
                         "approximation": k, "split": "train"} for k, r in runs.items()],
        name="digits_train_loss_all", title="digits: train loss per step at eta = 1/alpha (width 4096)",
        ylabel="train loss")
    series["digits_test_loss_all"] = F.figure_series(
        "loss_curves", [{"label": f"{F.approximation_label(k)} {role}", "x": steps, "role": role, "approximation": k,
                         "split": "test", "y": r.test_loss if role == "measured" else r.predicted_test_loss}
                        for role in ("measured", "predicted") for k, r in runs.items()],
        name="digits_test_loss_all", title="digits: test loss, measured vs infinite-width prediction",
        ylabel="test loss")
    exact = runs["exact"]
    extra = {}
    if cfg.full:  # context: exact NGD on the digits over widths (loss ratio ~ linearisation error^2)
        sweep = {m: D.run_approximation(data, "exact", m, cfg.sub_seed("digits", "exact"), steps=1, depth=DEPTH)
                 for m in (1024, 2048)}
        sweep[exact.width] = exact
        widths = sorted(sweep)
        ratios = [sweep[m].train_loss[1] / sweep[m].train_loss[0] for m in widths]
        extra["exact_width_sweep"] = {"widths": widths, "loss_ratio": ratios,
                                      "test_output_error": [sweep[m].test_output_error for m in widths]}
        series["digits_exact_loss_ratio_vs_width"] = F.sweep_series(
            "exact NGD: L1 / L0 after one step", widths, ratios, name="digits_exact_loss_ratio_vs_width",
            ylabel="loss ratio L1 / L0 after one step",
            title=f"real digits (0 vs 1, N = {s['n_train']}): exact NGD, loss ratio "
                  "after one step against width (3 widths)")
    return V.to_result(
        parts, predicted=exact.predicted_test_loss[1], measured=exact.test_loss[1],
        error=exact.test_output_error, width=exact.width, tolerance=TEST_OUTPUT_TOL["default"], series=series,
        details={"settings": s, "input_rank": data.train_input_rank, "table": table(runs), **extra,
                 "runs": {k: v.to_dict() for k, v in runs.items()}, "mnist_reference": D.MNIST_REFERENCE},
        notes="predicted/measured = exact NGD test loss after one step, error = its test-output error; the authors' "
              "MNIST (different data): "
              f"train {_arrows(D.MNIST_REFERENCE['train_loss'])}, test {_arrows(D.MNIST_REFERENCE['test_loss'][:2])} "
              f"vs predicted {D.MNIST_REFERENCE['predicted_test_loss_step1']:.2g}")


def _arrows(values) -> str:
    """``0.13 -> 0.0002 -> ...`` (2 significant digits)."""
    return " -> ".join(f"{v:.2g}" for v in values)


@claim("digits.unit_wise",
       title="Unit-wise NGD on the digits (N = 100 > M_0 = 64) is isotropic",
       statement=r"J G_{\mathrm{unit}}^{+} J^\top/N \approx (\gamma\textstyle\sum_{l<L}M_l+1)\, I\ \text{on the digits}",
       assumptions=["linearly independent inputs: rank X = N (M_0 >= N is necessary, not sufficient)", "C = 1"],
       expected="conditional", reference="Karakida & Osawa 2020, arXiv:2010.00879 (unit-wise NGD); authors' "
                                         "experiment defaults, github.com/kazukiosawa/ngd_in_wide_nn",
       tags=("experiment", "digits", "unit_wise"))
def digits_unit_wise(cfg: RunConfig) -> ClaimResult:
    s = settings(cfg)
    width = s["unit_wise_width"]
    parts, probes, failed = [], {}, []
    for n in (100, 50, 40):
        data = D.load_digits_binary(n_train=n, n_test=10)
        p = D.unit_wise_probe(data, width, cfg.sub_seed("digits-unit", n))
        probes[n] = p
        # relu: isotropic only up to the count spread sqrt(gamma(1-gamma) sum M_l)/alpha; a sample
        # estimate over N diagonal entries stays within 2x of it (chi distribution, N >= 40)
        # the mean diagonal is the mean of N such counts over alpha: within 2x the same relative spread
        label = f"N={n} (rank X = {p['input_rank']})"
        relaxed = p["failed_assumption"] or None
        if relaxed:
            failed.append(f"{label}: {relaxed}")
        parts.append(V.compare(f"{label}: isotropy error within 2x the relu spread", 0.0, p["isotropy_error"],
                               tolerance=2 * p["relu_spread_predicted"], error=p["isotropy_error"],
                               assumption=relaxed))
        alpha_err = abs(p["mean_diag"] - p["alpha_predicted"]) / p["alpha_predicted"]
        parts.append(V.compare(f"{label}: mean diagonal = gamma sum M_l + 1 within 2x the relu spread",
                               p["alpha_predicted"], p["mean_diag"], tolerance=2 * p["relu_spread_predicted"],
                               error=alpha_err, assumption=relaxed))
    result = V.to_result(
        parts, assumptions={"rank X = N at N = 100": probes[100]["failed_assumption"] is None},
        predicted=probes[100]["alpha_predicted"], measured=probes[100]["mean_diag"],
        error=probes[100]["isotropy_error"], width=width, tolerance=2 * probes[100]["relu_spread_predicted"],
        details={"probes": {str(k): v for k, v in probes.items()}},
        notes="predicted/measured = gamma sum M_l + 1 vs mean diagonal at N = 100; error = isotropy error at N = 100 "
              "(tolerance: 2x the predicted relu count spread); input ranks: "
              + ", ".join(f"{p['input_rank']} at N = {n}" + (" (linearly dependent)" if p["input_rank"] < n else "")
                          for n, p in probes.items()))
    if failed and not result.failed_assumption:
        result.failed_assumption = "; ".join(failed)
    return result
