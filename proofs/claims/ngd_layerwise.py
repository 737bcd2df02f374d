"""Layer-wise NGD: block-diagonal and block tri-diagonal (Karakida & Osawa 2020, arXiv:2010.00879) and
general block patterns.

For a symmetric 0/1 pattern ``S`` (``G_S = D^T (S (x) I) D / N``), theory/ derives ``c = S^+ 1``,
``alpha = 1^T S^+ 1``, the moving layers and the test kernel (:mod:`theory.patterns`,
:mod:`theory.pattern_kernels`, :mod:`theory.banded`); the claims hold these against the measured
operator at small width (exact identities), real training over width sweeps (linearisation and
test-kernel errors shrinking ~ M^-1/2), and the per-layer parameter changes of a real step.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from proofs import evidence as ev
from proofs.figures import width_sweep_series
from proofs import figures as F
from proofs.adaptive import Budget
from proofs import verdicts as V
from theory.tolerances import EXACT_TOL
from proofs.assumption_spaces import (AssumptionSpace, isotropy_check, layerwise_space, moving_layers_check,
                                      pattern_alpha, pattern_test_kernel_check, predicted_alpha)
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.strategies import dampings, scenarios
from theory.assumptions import (FULL_ROW_RANK_JACOBIANS, HIDDEN_WIDTH, INFINITE_WIDTH_DYNAMICS, INFINITE_WIDTH_KERNELS,
                                RHO_TO_ZERO, STANDARD_RELU_NET, SYMMETRIC_PATTERN, Setting)

__all__ = [
    "block_diagonal", "block_tridiagonal_alpha", "block_tridiagonal_moving_layers",
    "block_tridiagonal_test_kernel", "patterns", "finite_width_alpha"
]

#: test-output error vs the analytic predictor at the widest net (2048 quick), the bound the headline
#: error is judged by besides the sweep's decrease: block-diagonal L = 3 measures ~0.11, block
#: tri-diagonal L = 5 (null-space-corrected kernel, slower convergence) ~0.2
BD_TEST_TOL = 0.2
BTD_TEST_TOL = 0.25
BASE_ASSUMPTIONS = [STANDARD_RELU_NET, FULL_ROW_RANK_JACOBIANS, RHO_TO_ZERO]


def _finite_setting(depth: int, width: int = 48) -> Setting:
    """The small-width nets of the exact identities (N = 8, M_0 = 12; :func:`finite_width_alpha`)."""
    return Setting(n_samples=8, input_dim=12, hidden_widths=(width,) * (depth - 1))


def _sweep_setting(cfg: RunConfig, depth: int) -> Setting:
    """The narrowest net of the training sweep (:func:`sweep_settings`)."""
    s = sweep_settings(cfg)
    return Setting(n_samples=s["n"], input_dim=s["dim"], hidden_widths=(min(s["widths"]),) * (depth - 1))


def _analysis(S):
    from theory.patterns import analyze_pattern

    return analyze_pattern(S)


def finite_width_alpha(cfg: RunConfig, key, name: str, depth: int, n: int = 8, dim: int = 12,
                       width: int = 48, **options):
    """(isotropy error, measured alpha) of the measured ``Theta_G`` at a small width."""
    task = ev.synthetic_task(cfg, (key, depth), n, dim, 2)
    net = ev.make_net(cfg, (key, name, depth), [dim] + [width] * (depth - 1) + [1])
    return ev.isotropy_error(ev.measured_operator(net, task.X, name, **options))


def sweep_settings(cfg: RunConfig) -> dict:
    # 4 initialisations per width, 16 test points and a 16x width range: one network's error
    # fluctuates by O(1) relative, and with fewer the fitted slope's stderr (~0.2) blurs the verdict
    return {"n": cfg.pick(12, 20), "dim": cfg.pick(16, 24), "n_test": 16,
            "widths": cfg.pick([128, 256, 512, 1024, 2048], [128, 256, 512, 1024, 2048, 4096, 8192]), "steps": 2}


@lru_cache(maxsize=8)
def pattern_training(cfg: RunConfig, name: str, depth: int, test_tol: float = BD_TEST_TOL):
    """Real training of a pattern approximation at eta = 1/alpha over the width sweep, with the
    analytic test predictor (theory.pattern_kernels on the analytic layer NTKs)."""
    s = sweep_settings(cfg)
    if depth >= 5:  # (L-1) hidden M x M layers: cap the memory of a net + its step at ~1.5 GB
        s["widths"] = [m for m in s["widths"] if m <= 4096]
    task = ev.synthetic_task(cfg, ("layerwise", name, depth), s["n"], s["dim"], s["n_test"])
    S = ev.pattern_matrix(name, depth)
    alpha = float(_analysis(S).alpha)
    test_op = ev.analytic_test_operator(name, task.X, task.X_test, depth)
    budget = ev.training_budget(cfg)
    if depth >= 5:
        # four hidden M x M layers: a 4096-wide net costs ~8 of the 2048-wide ones and adds little log-range;
        # more initialisations at the swept widths buy more slope precision per second (the L = 5 test
        # error needs ~100 of them: slope -0.40 +- 0.04 at 96 over seeds 973886/973890)
        budget = Budget(budget.repeats, 2 * budget.max_repeats)
    # L = 2 (mod 3): the test error against the null-space-corrected kernel shrinks, but over 128..2048 at a
    # rate the sweeps cannot place below M^-0.3 at the verification level (slope -0.40 +- 0.04 from 160 nets
    # at audit seed 973887): the claim is about the limit, so no rate is asserted there -- a significant
    # decrease and the tolerance at the widest width (proofs.verdicts.sweep without expected_slope)
    singular = name == "block_tridiagonal" and depth % 3 == 2
    sweep = ev.training_sweep(cfg, ("layerwise", depth), name, task.X, task.Y, task.X_test, task.Y_test,
                              s["widths"], depth, alpha, 1.0 / alpha, s["steps"], test_op,
                              budget=budget, test_tolerance=test_tol, test_rate=None if singular else -0.5)
    return s, task, alpha, sweep


# ---------------------------------------------------------------------------------------------
# block-diagonal
# ---------------------------------------------------------------------------------------------
@claim("ngd.block_diagonal",
       title="Block-diagonal NGD: alpha = L; at eta = 1/L the test predictor averages the layer-wise kernel regressions",
       statement=r"J G_{BD}^{+} J^\top/N = L\,I,\qquad f_1(x') = f_0(x') + \frac1L\sum_{l=1}^{L}"
                 r"\Theta_l(x',X)\Theta_l^{-1}(Y - f_0(X))",
       assumptions=BASE_ASSUMPTIONS + [INFINITE_WIDTH_DYNAMICS],
       setting=lambda cfg: [_finite_setting(3), _sweep_setting(cfg, 3)],
       reference="Karakida & Osawa 2020, arXiv:2010.00879 (block-diagonal NGD)",
       tags=("block_diagonal", "layerwise"))
def block_diagonal(cfg: RunConfig) -> ClaimResult:
    from theory.patterns import block_diagonal_pattern

    depths = cfg.pick([3, 4], [2, 3, 4, 5, 6])
    parts, predicted, measured = [], {}, {}
    derivation = _analysis(block_diagonal_pattern(3)).derivation
    for L in depths:
        a = _analysis(block_diagonal_pattern(L))
        parts.append(V.derivation_verdict(a.derivation, f"alpha(I_{L}) derivation"))
        err, alpha_hat = finite_width_alpha(cfg, "bd", "block_diagonal", L)
        predicted[L], measured[L] = int(a.alpha), alpha_hat
        parts.append(V.compare(f"alpha at L={L} (width 48)", predicted[L], alpha_hat, tolerance=EXACT_TOL))
        parts.append(V.compare(f"isotropy error at L={L}", 0.0, err, tolerance=EXACT_TOL, error=err))
    s, _, alpha, sweep = pattern_training(cfg, "block_diagonal", 3)
    # Lee et al. 2019: one real step deviates from the linear step by O(M^-1/2); the empirical layer
    # kernels converge at the same rate (adaptive sweeps judged by proofs.verdicts.sweep)
    parts += sweep.parts
    widest = max(sweep.curves)
    return V.to_result(
        parts, predicted=predicted[3], measured=measured[3], error=sweep.test_error.errors[-1],
        width=widest, tolerance=BD_TEST_TOL, derivation=derivation,
        details={"settings": s, "spent": sweep.spent,
                 "alpha_by_depth": {"predicted": predicted, "measured": measured}, "table": sweep.table()},
        series={"loss_curve_block_diagonal": sweep.curve_series(),
                "block_diagonal_test_error_vs_width": width_sweep_series(sweep.test_error),
                "block_diagonal_linearisation_vs_width": width_sweep_series(sweep.linearisation)},
        notes="predicted/measured = alpha at L = 3 (width 48); error = relative test-output error after one step at "
              "eta = 1/L (L = 3) at the widest net")


# ---------------------------------------------------------------------------------------------
# block tri-diagonal
# ---------------------------------------------------------------------------------------------
@claim("ngd.block_tridiagonal.alpha",
       title="Block tri-diagonal NGD: alpha = 1^T T^+ 1 = ceil(L/3) for every depth (pinv at L = 2 mod 3)",
       statement=r"J G_{T}^{+} J^\top/N = \lceil L/3\rceil\, I",
       assumptions=BASE_ASSUMPTIONS + [INFINITE_WIDTH_DYNAMICS],
       setting=lambda cfg: [_finite_setting(3), _sweep_setting(cfg, 4)],
       reference="Karakida & Osawa 2020, arXiv:2010.00879 (block tri-diagonal NGD); "
                 "closed form ceil(L/3) derived here",
       tags=("block_tridiagonal", "layerwise"))
def block_tridiagonal_alpha(cfg: RunConfig) -> ClaimResult:
    from theory.banded import banded_alpha_closed_form, tridiagonal_closed_form_derivation
    from theory.patterns import tridiagonal_pattern

    depths = cfg.pick([2, 3, 4, 5, 6, 7, 8], list(range(1, 12)))
    closed_form = tridiagonal_closed_form_derivation()
    parts = [V.derivation_verdict(closed_form, "ceil(L/3) closed form (symbolic L)")]
    predicted, measured = {}, {}
    for L in depths:
        a = _analysis(tridiagonal_pattern(L))
        closed = int(banded_alpha_closed_form(L, 1))
        predicted[L] = closed
        parts.append(V.compare(f"1^T T^+ 1 = ceil(L/3) at L={L}", closed, float(a.alpha), tolerance=0.0))
        err, alpha_hat = finite_width_alpha(cfg, "btd", "block_tridiagonal", L)
        measured[L] = alpha_hat
        parts.append(V.compare(f"measured alpha at L={L} (width 48)", closed, alpha_hat, tolerance=EXACT_TOL))
        parts.append(V.compare(f"isotropy error at L={L}", 0.0, err, tolerance=EXACT_TOL, error=err))
    s, _, alpha, sweep = pattern_training(cfg, "block_tridiagonal", 4)
    lin = sweep.linearisation
    parts.append(sweep.adaptive.part(ev.LINEARISATION))
    # relative, like the compare() sub-verdicts the tolerance applies to
    worst = max(abs(measured[L] - predicted[L]) / predicted[L] for L in depths)
    return V.to_result(
        parts, predicted=predicted[5], measured=measured[5], error=worst,
        width=48, tolerance=EXACT_TOL, derivation=closed_form,
        details={"settings": s, "spent": sweep.spent, "depths": depths, "alpha_by_depth": {"predicted": predicted, "measured": measured},
                 "table_L4": sweep.table()},
        series={"loss_curve_block_tridiagonal_L4": dict(
                    sweep.curve_series(), title="block tri-diagonal NGD, depth L = 4: train and test loss per step, "
                                                "measured (solid) and predicted (dashed)"),
                "block_tridiagonal_linearisation_vs_width": width_sweep_series(lin),
                "block_tridiagonal_alpha_vs_depth": F.figure_series("xy", [
                    F.xy_curve(f"measured alpha (width 48)", depths, [measured[L] for L in depths],
                               approximation="block_tridiagonal"),
                    F.xy_curve("ceil(L/3) (derived)", depths, [predicted[L] for L in depths], role="predicted",
                               approximation="block_tridiagonal")],
                    name="block_tridiagonal_alpha_vs_depth", xlabel="depth L", ylabel="alpha = 1^T T^+ 1",
                    title="alpha against depth L: measured at finite width and ceil(L/3)",
                    caption="Block tri-diagonal NGD: alpha measured at every depth (width 48) against the derived "
                            "ceil(L/3); at the marked depths L = 2 (mod 3) T is singular and alpha is 1^T T^+ 1 "
                            "with the pseudo-inverse, (L+1)/3",
                    vlines=[{"x": L, "label": "T singular (L = 2 mod 3)"} for L in depths if L % 3 == 2])},
        notes="predicted/measured = alpha at L = 5 (T singular, pseudo-inverse); error = max |measured alpha - "
              "ceil(L/3)| / ceil(L/3) over all depths (width 48)")


@claim("ngd.block_tridiagonal.moving_layers",
       title="Block tri-diagonal NGD moves only the layers with c_l != 0 (plus the null-space-coupled ones at L = 2 mod 3)",
       statement=r"\Delta\theta_l = -\eta\, J_l^\top v_l,\ v_l = c_l \Theta_l^{-1} r,\ c = T^{-1}\mathbf 1"
                 r"\ \Rightarrow\ \Delta\theta_l = 0 \iff c_l = 0\ (T\ \text{invertible})",
       assumptions=BASE_ASSUMPTIONS, setting=lambda cfg: _finite_setting(5, 64),
       reference="derived here (block tri-diagonal NGD of arXiv:2010.00879)",
       tags=("block_tridiagonal", "layerwise"))
def block_tridiagonal_moving_layers(cfg: RunConfig) -> ClaimResult:
    from theory.patterns import tridiagonal_pattern

    depths = cfg.pick([3, 4, 5], [3, 4, 5, 6, 7, 8])
    parts, predicted, measured = [], {}, {}
    for L in depths:
        a = _analysis(tridiagonal_pattern(L))
        task = ev.synthetic_task(cfg, ("btd-moving", L), 8, 12, 2)
        net = ev.make_net(cfg, ("btd-moving", L), [12] + [64] * (L - 1) + [1])
        step = ev.one_step(net, task.X, task.Y, "block_tridiagonal", 1.0 / float(a.alpha))
        rel = [c / n for c, n in zip(step["layer_change"], step["layer_norm"])]
        predicted[L] = list(a.moving_layers)
        measured[L] = [l + 1 for l, x in enumerate(rel) if x > 1e-10]
        frozen = [rel[l - 1] for l in a.frozen_layers]
        moving = [rel[l - 1] for l in a.moving_layers]
        # frozen layers: the dual vector is exactly 0, so only round-off (~1e-16 relative) remains
        if frozen:
            parts.append(V.compare(f"L={L}: frozen layers {list(a.frozen_layers)} unchanged", 0.0, max(frozen),
                                   tolerance=1e-10, error=max(frozen)))
        # moving layers: an O(1/sqrt(M)) relative change, far above round-off
        parts.append(V.compare(f"L={L}: layers {list(a.moving_layers)} move", 1.0, float(min(moving) > 1e-6),
                               tolerance=0.0))
        parts.append(V.compare(f"L={L}: moving set = theory", 0.0, float(measured[L] != predicted[L]), tolerance=0.0))
    return V.to_result(parts, predicted=str(predicted[5]), measured=str(measured[5]), width=64,
                       derivation=_analysis(tridiagonal_pattern(5)).derivation,
                       details={"depths": depths, "moving_predicted": predicted, "moving_measured": measured},
                       notes="predicted/measured = moving layers at L = 5; a layer moves when ||theta_l' - theta_l|| / "
                             "||theta_l|| > 1e-10 after one real step (width 64)")


@claim("ngd.block_tridiagonal.test_kernel",
       title="Block tri-diagonal test kernel: sum_l c_l Theta_l(x',X) Theta_l^{-1} for invertible T, "
             "null-space-corrected at L = 2 mod 3",
       statement=r"\Theta_G(x',X) = \sum_l \Theta_l(x',X)\, v_l,\ v = K^{-1/2} M^{+} K^{1/2}(\mathbf 1\otimes\cdot),"
                 r"\ = \sum_l c_l \Theta_l(x',X)\Theta_l^{-1}\ \text{iff}\ T\ \text{invertible}",
       assumptions=BASE_ASSUMPTIONS + [INFINITE_WIDTH_KERNELS],
       setting=lambda cfg: [_finite_setting(5, 64), _sweep_setting(cfg, 5)],
       reference="Karakida & Osawa 2020, arXiv:2010.00879 (block tri-diagonal NGD); singular T derived here",
       tags=("block_tridiagonal", "test"))
def block_tridiagonal_test_kernel(cfg: RunConfig) -> ClaimResult:
    from numerics.factors import layer_grams
    from theory.pattern_kernels import PatternKernel, finite_width_exactness_derivation

    derivation = finite_width_exactness_derivation()
    parts, details = [V.derivation_verdict(derivation, "singular-S test kernel (range/null split)")], {}
    for L in (4, 5):
        S = ev.pattern_matrix("block_tridiagonal", L)
        pk = PatternKernel.from_pattern(S)
        task = ev.synthetic_task(cfg, ("btd-kernel", L), 8, 12, 6)
        net = ev.make_net(cfg, ("btd-kernel", L), [12] + [64] * (L - 1) + [1])
        approx = ev.approximation(net, task.X, "block_tridiagonal")
        measured = approx.operator(task.X_test)
        test_f = net.factors(task.X_test)
        train_k, cross_k = layer_grams(approx.factors), layer_grams(approx.factors, test_f)
        derived = pk.test_kernel(train_k, cross_k)
        naive = pk.naive_test_kernel(train_k, cross_k)
        err = ev.relative_error(measured, derived)
        naive_err = ev.relative_error(measured, naive)
        details[f"L={L}"] = {"derived_vs_measured": err, "naive_vs_measured": naive_err}
        # finite-width identity: same empirical kernels on both sides, round-off only
        parts.append(V.compare(f"L={L}: derived test kernel = measured (width 64)", 0.0, err, tolerance=1e-8, error=err))
        if L % 3 == 2:
            # the naive formula must be visibly wrong for singular T (the correction is O(1) relative)
            parts.append(V.compare(f"L={L}: naive sum_l c_l formula differs from measured", 1.0,
                                   float(naive_err > 1e-3), tolerance=0.0))
        else:
            parts.append(V.compare(f"L={L}: naive formula = measured (T invertible)", 0.0, naive_err,
                                   tolerance=1e-8, error=naive_err))
    s, _, alpha, sweep = pattern_training(cfg, "block_tridiagonal", 5, BTD_TEST_TOL)
    te = sweep.test_error
    widest = sweep.curves[max(sweep.curves)]
    parts.append(sweep.adaptive.part(ev.TEST_ERROR))
    return V.to_result(
        parts, predicted=widest["predicted"]["test_loss"][1], measured=widest["measured"]["test_loss"][1],
        error=te.errors[-1], width=max(sweep.curves), tolerance=BTD_TEST_TOL, derivation=derivation,
        details={**details, "settings": s, "spent": sweep.spent, "table_L5": sweep.table()},
        series={"block_tridiagonal_L5_test_error_vs_width": width_sweep_series(te),
                "loss_curve_block_tridiagonal_L5": dict(
                    sweep.curve_series(), title="block tri-diagonal NGD, depth L = 5: train and test loss per step, "
                                                "measured (solid) and predicted (dashed)")},
        notes="predicted/measured = test loss after one step at L = 5 (analytic corrected kernel vs real net); "
              "error = test-output error at the widest net; at width 64 the derived kernel matches the measured "
              f"one to {details['L=5']['derived_vs_measured']:.1e}, the naive sum_l c_l formula is off by "
              f"{details['L=5']['naive_vs_measured']:.2f}")


# ---------------------------------------------------------------------------------------------
# general block patterns
# ---------------------------------------------------------------------------------------------
def example_patterns(cfg: RunConfig):
    """Named patterns beyond the paper: banded (half-bandwidth 2), first/last coupled, random."""
    from theory.patterns import banded_pattern

    out = {}
    for L in cfg.pick([5, 7], [4, 5, 6, 7, 8, 9]):
        out[f"banded b=2, L={L}"] = np.array(banded_pattern(L, 2).tolist(), dtype=float)
    ring = np.eye(4)
    ring[0, 3] = ring[3, 0] = 1
    out["first and last coupled, L=4"] = ring
    rng = cfg.rng("patterns", "random")
    for i in range(cfg.pick(3, 8)):
        L = int(rng.integers(3, 6))
        U = np.triu(rng.integers(0, 2, (L, L)), 1)
        out[f"random #{i}, L={L}"] = (U + U.T + np.eye(L)).astype(float)
    return out


@claim("ngd.patterns",
       title="Any block pattern S with 1 in range(S): isotropic with alpha = 1^T S^+ 1",
       statement=r"\mathbf 1\in\mathrm{range}(S)\ \Rightarrow\ J G_S^{+} J^\top/N = (\mathbf 1^\top S^{+}\mathbf 1)\,I",
       assumptions=BASE_ASSUMPTIONS + [SYMMETRIC_PATTERN], setting=lambda cfg: _finite_setting(5),
       reference="derived here (extension of the block tri-diagonal NGD of arXiv:2010.00879)",
       tags=("pattern", "layerwise"))
def patterns(cfg: RunConfig) -> ClaimResult:
    parts, predicted, measured = [], {}, {}
    matching = 0
    for label, S in example_patterns(cfg).items():
        a = _analysis(S)
        L = S.shape[0]
        err, alpha_hat = finite_width_alpha(cfg, "pattern", "pattern", L, pattern=S)
        predicted[label] = {"alpha": str(a.alpha), "one_in_range": a.one_in_range}
        measured[label] = {"alpha": alpha_hat, "isotropy_error": err}
        if a.one_in_range:
            checks = [V.compare(f"{label}: alpha", float(a.alpha), alpha_hat, tolerance=EXACT_TOL),
                      V.compare(f"{label}: isotropy error", 0.0, err, tolerance=EXACT_TOL, error=err)]
        else:
            # theory: not isotropic for generic kernels; demand a clearly non-zero isotropy error
            checks = [V.compare(f"{label}: not isotropic (1 not in range(S))", 1.0, float(err > 1e-3),
                                tolerance=0.0)]
        parts += checks
        # the headline counts the patterns whose own checks held (the same comparisons as the verdict)
        matching += all(c.verdict == "verified" for c in checks)
    return V.to_result(parts, predicted=len(predicted), measured=matching, width=48,
                       details={"patterns": {k: v.astype(int).tolist() for k, v in example_patterns(cfg).items()},
                                "predicted": predicted, "measured": measured},
                       notes="predicted = number of patterns, measured = number whose checks held: measured alpha = "
                             "1^T S^+ 1 and isotropy error <= 1e-9 when 1 is in range(S), a clearly non-isotropic "
                             "operator otherwise (hidden width 48, N = 8)")


# ---------------------------------------------------------------------------------------------
# falsify search spaces (ngd-verify falsify): random architectures inside / outside the assumptions
# ---------------------------------------------------------------------------------------------
block_diagonal.set_space(layerwise_space(
    "block_diagonal", "J G_BD^+ J^T / N = L I", st.integers(1, 6), lambda s: predicted_alpha("block_diagonal", s.depth),
    {RHO_TO_ZERO: scenarios("block_diagonal", damping=dampings(1e-2, 10.0))}))
block_tridiagonal_alpha.set_space(layerwise_space(
    "block_tridiagonal", "J G_T^+ J^T / N = ceil(L/3) I", st.integers(2, 9),
    lambda s: predicted_alpha("block_tridiagonal", s.depth)))
block_tridiagonal_moving_layers.set_space(AssumptionSpace(
    "only the layers theory predicts (c_l != 0, null-space-coupled) move",
    scenarios("block_tridiagonal", depth=st.integers(2, 8), n=st.integers(2, 8)), moving_layers_check,
    {HIDDEN_WIDTH: scenarios("block_tridiagonal", depth=st.integers(2, 8), hidden="narrow", n=st.integers(3, 8))}))
block_tridiagonal_test_kernel.set_space(AssumptionSpace(
    "finite-width Theta_G(x', X) = derived pattern kernel; naive sum_l c_l formula iff T invertible",
    scenarios("block_tridiagonal", depth=st.integers(2, 8), n=st.integers(2, 8)), pattern_test_kernel_check,
    {HIDDEN_WIDTH: scenarios("block_tridiagonal", depth=st.integers(2, 8), hidden="narrow", n=st.integers(3, 8))}))
patterns.set_space(AssumptionSpace(
    "J G_S^+ J^T / N = (1^T S^+ 1) I for 1 in range(S)",
    scenarios("pattern", depth=st.integers(2, 6), pattern=True, n=st.integers(2, 8)), isotropy_check(pattern_alpha),
    {HIDDEN_WIDTH: scenarios("pattern", depth=st.integers(2, 6), pattern=True, hidden="narrow", n=st.integers(3, 8))}))
