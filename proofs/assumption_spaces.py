"""Per-claim search spaces: where each claim's assumptions hold, where one is relaxed, and the
property the claim states, measured against its prediction with the claim's tolerance model.

For a claim id, :data:`SPACES` holds an :class:`AssumptionSpace`:

* ``holds`` -- a hypothesis strategy of :class:`~proofs.strategies.Scenario` satisfying every
  assumption of the claim;
* ``relaxed`` -- ``{assumption name: strategy}``, each violating that one assumption;
* ``check(scenario) -> Outcome`` -- builds the real finite network and data, measures the claim's
  quantity (``Theta_G = J G^+ J^T / N``, its mean diagonal ``a`` and isotropy error
  ``||Theta_G - a I||_F / ||a I||_F``), puts it next to the claim's prediction (derived by
  ``theory``, never a table) and records every *flag* the verifier's own assumption checks raise:
  ``theory.isotropy.NotIsotropic`` on the scenario's full setting, ``numerics.linalg.SingularSystemError``,
  ``numerics.forster.ForsterError``, and ``approximation.diagnostics["failed_assumption"]``.

Tolerance model: exact finite-width identities at ``EXACT_TOL = 1e-9`` (float64 N x N solves,
round-off ~1e-13); Forster inputs at ``FORSTER_TOL = 1e-7`` (the iteration stops at 1e-10 and N
leverage scores enter alpha); the relu unit-wise isotropy, an infinite-width statement, at
``RELU_SIGMAS`` times the predicted relative spread ``sqrt(gamma (1 - gamma) sum_l M_l) / alpha``
of the per-sample active counts -- a tolerance that shrinks like ``M^-1/2`` with the width.

Two properties (``tests/proofs/test_assumption_properties.py``):

* assumptions hold  =>  ``outcome.holds`` (and no flag beyond the claim's own ``expected_flags``);
* an assumption relaxed  =>  ``outcome.holds or outcome.flags``: the claim may fail, never silently.

>>> space = SPACES["ngd.block_tridiagonal.alpha"]
>>> sorted(space.relaxed)
['distinct inputs', 'hidden width >= N', 'no dead relu units']
>>> from proofs.strategies import Scenario
>>> out = space.check(Scenario("block_tridiagonal", (6, 12, 12, 12, 12, 1), 5))
>>> out.holds, out.predicted, out.flags
(True, 2.0, [])
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from hypothesis import strategies as st

from proofs.strategies import (Scenario, activations, dampings, depths_mod3, learning_rate_factors,  # noqa: F401
                               scenarios, seeds)

EXACT_TOL = 1e-9
FORSTER_TOL = 1e-7
#: relu unit-wise: tolerance = RELU_SIGMAS x the predicted relative spread of the active counts.
#: The isotropy error is the sample standard deviation of N <= 12 counts over their mean; its
#: chance of exceeding 4x the population value is < 1e-9 even at N = 4 (chi-square, 3 dof).
RELU_SIGMAS = 4.0
#: diagonal Fisher "not isotropic": smallest isotropy error counted as "clearly not alpha I"
#: (measured 0.1-0.6 on these sizes; exact layer-wise identities sit at 1e-13).
DIAGONAL_MIN_ERROR = 0.02
#: condition number of Theta = J J^T above which a float64 dynamics check is flagged instead of trusted:
#: its round-off allowance 1e3 cond eps would exceed 2e-3 (a check that could no longer fail).
ILL_CONDITIONED = 1e10


@dataclass
class Outcome:
    """The claim's statement evaluated on one scenario."""

    holds: bool
    measured: Optional[float] = None
    predicted: Optional[float] = None
    error: Optional[float] = None
    tolerance: Optional[float] = None
    flags: List[str] = field(default_factory=list)
    numbers: Dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def summary(self) -> Dict[str, Any]:
        """Numbers for reports: measured vs predicted, error vs tolerance, flags."""
        out = {"measured": self.measured, "predicted": self.predicted, "error": self.error,
               "tolerance": self.tolerance}
        out.update(self.numbers)
        out["flagged"] = "; ".join(self.flags) if self.flags else "nothing (no assumption check fired)"
        return out


@dataclass
class AssumptionSpace:
    """The search space of one claim (see the module docstring)."""

    claim_id: str
    statement: str
    holds: st.SearchStrategy
    check: Callable[[Any], Outcome]
    relaxed: Dict[str, st.SearchStrategy] = field(default_factory=dict)
    expected_flags: Tuple[str, ...] = ()

    def strategy(self, relax: Optional[str] = None) -> st.SearchStrategy:
        """The strategy with ``relax`` violated (``None`` or ``"none"``: every assumption holds)."""
        if relax in (None, "none"):
            return self.holds
        if relax not in self.relaxed:
            raise ValueError(f"--relax {relax!r} is not a relaxation of {self.claim_id}; allowed: "
                             + ", ".join(repr(k) for k in ["none", *self.relaxed]))
        return self.relaxed[relax]

    @property
    def relaxations(self) -> List[str]:
        return ["none", *self.relaxed]

    def unexpected_flags(self, outcome: Outcome) -> List[str]:
        """Flags that are not part of the claim's own statement (e.g. relu's "only as M -> infinity")."""
        return [f for f in outcome.flags if not any(e in f for e in self.expected_flags)]


# ---------------------------------------------------------------------------------------------
# the verifier's own assumption checks
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _theory_flag(name, depth, n, widths, activation, forster, bias, damping, pattern) -> Optional[str]:
    from theory.isotropy import NotIsotropic, isotropy_result

    kwargs = dict(n_samples=n, input_dim=widths[0], widths=list(widths), activation=activation,
                  n_outputs=widths[-1], forster=forster, bias=bias,
                  # a float 0.0 reads as "rho > 0" in isotropy_result (SymPy Float(0.0) != 0): pass int 0
                  damping=damping if damping else 0)
    if pattern is not None:
        kwargs["pattern"] = [list(r) for r in pattern]
    try:
        isotropy_result(name, depth, **kwargs)
    except NotIsotropic as exc:
        return f"theory: {exc.failed_assumption or 'not isotropic'}: {' '.join(exc.reason.split())[:240]}"
    return None


def theory_flag(s: Scenario) -> Optional[str]:
    """``NotIsotropic`` raised by :func:`theory.isotropy.isotropy_result` on the scenario's full
    setting (N, M_0, widths, C, activation, Forster, bias, damping, pattern), as a sentence."""
    return _theory_flag(s.approximation, s.depth, s.n_samples, tuple(s.widths), s.activation, s.forster,
                        s.sigma_b2 > 0, float(s.damping), s.pattern)


@dataclass
class Measurement:
    """The measured function-space operator of a scenario (``operator`` None if it could not be formed)."""

    operator: Optional[np.ndarray]
    approximation: Any
    flags: List[str]
    X: np.ndarray


def measure(s: Scenario) -> Measurement:
    """Build inputs, network and approximation; return ``Theta_G`` and every flag raised."""
    from numerics.approximations import get_approximation
    from numerics.forster import ForsterError
    from numerics.linalg import SingularSystemError

    flags = []
    tf = theory_flag(s)
    if tf:
        flags.append(tf)
    X = s.build_inputs()
    net = s.build_network()
    try:
        approx = get_approximation(s.approximation)(net, X, damping=s.damping, **s.options())
        op = approx.operator()
    except (SingularSystemError, ForsterError) as exc:
        cond = getattr(exc, "condition_number", None)
        flags.append(f"numerics: {exc.assumption}" + (f" (condition number {cond:.3g})" if cond else ""))
        return Measurement(None, None, flags, X)
    diagnosed = approx.diagnostics.get("failed_assumption")
    if diagnosed:
        flags.append(f"numerics: {diagnosed}")
    cond = system_condition(approx)
    if cond > ILL_CONDITIONED:  # the round-off allowance 1e3 cond eps would make the identity check toothless
        flags.append(f"numerics: ill-conditioned dual system (condition number {cond:.3g} > {ILL_CONDITIONED:.0e})")
    return Measurement(op, approx, flags, X)


def system_condition(approx) -> float:
    """The largest condition number of the N x N (or LN x LN) systems the approximation solved, as its
    diagnostics record them (1 when it records none)."""
    d = approx.diagnostics
    conds = list(d.get("layer_condition_numbers") or [])
    conds += [d[k] for k in ("condition_number", "system_condition_number") if d.get(k) is not None]
    finite = [float(c) for c in conds if np.isfinite(c)]
    return max(finite, default=1.0) if len(finite) == len(conds) else float("inf")


def exact_tolerance(approx) -> float:
    """Tolerance of an exact finite-width identity: ``max(EXACT_TOL, 1e3 eps cond)`` -- a backward-stable
    solve of a system with condition number ``cond`` is accurate to ``~cond eps``; 1e3 covers N <= 12
    and the products around the solve (Hypothesis found block-diagonal, 15 dead relu units: isotropy
    error 2e-8 to 8e-8 from cond ~1e8, which a fixed 1e-9 called a counterexample)."""
    return max(EXACT_TOL, 1e3 * np.finfo(float).eps * system_condition(approx))


def isotropy_numbers(op: np.ndarray) -> Tuple[float, float]:
    """``(isotropy error, mean diagonal a)`` (see :func:`proofs.evidence.isotropy_error`)."""
    from proofs.evidence import isotropy_error

    return isotropy_error(op)


# ---------------------------------------------------------------------------------------------
# checks: the statement of a claim family on one scenario
# ---------------------------------------------------------------------------------------------
def isotropy_check(predict: Callable[[Scenario], Optional[float]],
                   tolerance: Optional[Callable[[Scenario, float], float]] = None):
    """``Theta_G = alpha I`` with ``alpha = predict(s)`` (``None``: any alpha, only the isotropy
    error is tested), relative tolerance ``tolerance(s, alpha)`` on both the isotropy error and
    ``|a - alpha| / alpha``; ``tolerance=None`` (an exact identity): :func:`exact_tolerance`, scaled by
    the condition number of the systems solved."""

    def check(s: Scenario) -> Outcome:
        m = measure(s)
        alpha = predict(s)
        if m.operator is None:
            return Outcome(False, None, alpha, None, None, m.flags, {"reason": "operator could not be formed"})
        if alpha == 0:
            # e.g. an indefinite pattern with 1^T S^+ 1 = 0: Theta_G = 0 I, the L layer terms cancel;
            # absolute tolerance: each of the L terms is O(1) with round-off ~1e-13
            size = float(np.max(np.abs(m.operator)))
            tol = EXACT_TOL * s.depth
            return Outcome(size <= tol, float(np.mean(np.diag(m.operator))), 0.0, size, tol, m.flags,
                           {"max_abs_entry": size})
        try:
            err, a = isotropy_numbers(m.operator)
        except ValueError as exc:  # zero mean diagonal: nothing to be isotropic about
            return Outcome(False, 0.0, alpha, float("inf"), None, m.flags + [f"measure: {exc}"])
        tol = (tolerance(s, alpha if alpha is not None else a) if tolerance is not None
               else exact_tolerance(m.approximation))
        alpha_err = 0.0 if alpha is None else abs(a - alpha) / abs(alpha)
        holds = err <= tol and alpha_err <= tol
        return Outcome(bool(holds), a, alpha, max(err, alpha_err), tol, m.flags,
                       {"isotropy_error": err, "alpha_relative_error": alpha_err})

    return check


def _authors_kfac(depth: int, n: int):
    from theory.kfac_theory import authors_kfac_constant

    return authors_kfac_constant(depth, n)


def _alpha(name: str, depth: int, **kwargs) -> float:
    from theory.isotropy import isotropy_constant

    return float(isotropy_constant(name, depth, **kwargs))


@functools.lru_cache(maxsize=None)
def _gamma(activation: str) -> float:
    from theory.unit_wise_theory import active_fraction

    from theory.activations import get_activation

    return float(active_fraction(get_activation(activation)))


def _unit_wise_alpha(s: Scenario, activation: str) -> float:
    """The claim's ``gamma sum_{l<L} M_l + 1`` for a single output (the C = 1 statement)."""
    from theory.unit_wise_theory import unit_wise_isotropy

    return float(unit_wise_isotropy(list(s.widths[:-1]) + [1], activation).value)


def relu_tolerance(s: Scenario, alpha: float) -> float:
    """``RELU_SIGMAS sqrt(gamma (1 - gamma) sum_l M_l) / alpha`` (gamma of relu, derived)."""
    g = _gamma("relu")
    return RELU_SIGMAS * float(np.sqrt(g * (1 - g) * sum(s.hidden_widths))) / alpha


def pattern_alpha(s: Scenario) -> float:
    from theory.patterns import analyze_pattern

    return float(analyze_pattern([list(r) for r in s.pattern]).alpha)


def diagonal_check(s: Scenario) -> Outcome:
    """"Not isotropic": the isotropy error of the diagonal-Fisher operator exceeds DIAGONAL_MIN_ERROR."""
    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, DIAGONAL_MIN_ERROR, m.flags)
    err, a = isotropy_numbers(m.operator)
    return Outcome(err > DIAGONAL_MIN_ERROR, err, DIAGONAL_MIN_ERROR, err, DIAGONAL_MIN_ERROR, m.flags,
                   {"mean_diagonal": a, "statement": "isotropy error > tolerance"})


def damping_check(s: Scenario) -> Outcome:
    """``Theta_G = Theta (Theta + rho I)^{-1}`` (exact Fisher, rho > 0) to EXACT_TOL, and its
    spectrum not flat (relative spread of the eigenvalues > 1e-6)."""
    from numerics.factors import layer_grams

    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, EXACT_TOL, m.flags)
    n = s.n_samples
    theta = sum(layer_grams(m.approximation.factors)) / n
    predicted = theta @ np.linalg.inv(theta + s.damping * np.eye(theta.shape[0]))
    err = float(np.linalg.norm(m.operator - predicted) / np.linalg.norm(predicted))
    eig = np.linalg.eigvalsh((m.operator + m.operator.T) / 2)
    spread = float((eig[-1] - eig[0]) / np.mean(eig))
    # the identity is an exact finite-width one; the spread of lambda/(lambda+rho) is >= rho
    # (1/lambda_min - 1/lambda_max) ~ 1e-3 on these sizes, far above round-off
    holds = err <= EXACT_TOL and spread > 1e-6
    return Outcome(bool(holds), float(np.mean(eig)), float(np.mean(np.diag(predicted))), err, EXACT_TOL, m.flags,
                   {"identity_error": err, "eigenvalue_spread": spread})


def _pattern_of(s: Scenario) -> np.ndarray:
    from proofs.evidence import pattern_matrix

    return pattern_matrix(s.approximation, s.depth, None if s.pattern is None else np.array(s.pattern, float))


def moving_layers_check(s: Scenario) -> Outcome:
    """One NGD direction of a block pattern moves exactly the layers theory predicts
    (:func:`theory.patterns.analyze_pattern`): a layer counts as moving when
    ``||d_l|| / ||theta_l|| > 1e-10`` (frozen layers have dual vector 0: round-off ~1e-16 only;
    moving ones change by O(1/sqrt(M)), many decades above)."""
    from theory.patterns import analyze_pattern

    m = measure(s)
    predicted = tuple(analyze_pattern(_pattern_of(s).astype(int).tolist()).moving_layers)
    if m.operator is None:
        return Outcome(False, None, None, None, 1e-10, m.flags)
    net = m.approximation.net
    r = net.forward(m.approximation.X) - s.build_targets()
    d = m.approximation.direction(r)
    rel = [float(np.linalg.norm(x) / np.linalg.norm(p)) for x, p in zip(d, net.params)]
    measured = tuple(l + 1 for l, x in enumerate(rel) if x > 1e-10)
    return Outcome(measured == predicted, None, None, None, 1e-10, m.flags,
                   {"moving_measured": list(measured), "moving_predicted": list(predicted),
                    "relative_direction_norms": rel})


def pattern_test_kernel_check(s: Scenario) -> Outcome:
    """Finite-width test kernel ``Theta_G(X', X)`` of a block pattern equals the derived one
    (:class:`theory.pattern_kernels.PatternKernel`, null-space-corrected for singular S) to 1e-8,
    and the naive ``sum_l c_l K_l(X',X) K_l^{-1}`` agrees iff S is invertible (else it is off by
    more than 1e-3: the correction is O(1) relative)."""
    from numerics.factors import layer_grams
    from theory.pattern_kernels import PatternKernel

    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, 1e-8, m.flags)
    S = _pattern_of(s)
    approx = m.approximation
    X_test = s.build_test_inputs()
    measured = approx.operator(X_test)
    train_k = layer_grams(approx.factors)
    cross_k = layer_grams(approx.factors, approx.net.factors(X_test))
    pk = PatternKernel.from_pattern(S)
    derived = pk.test_kernel(train_k, cross_k)
    naive = pk.naive_test_kernel(train_k, cross_k)
    scale = float(np.linalg.norm(measured))
    err = float(np.linalg.norm(measured - derived)) / scale
    naive_err = float(np.linalg.norm(measured - naive)) / scale
    invertible = abs(np.linalg.det(S)) > 0.5  # integer matrix: det is an integer
    holds = err <= 1e-8 and ((naive_err <= 1e-8) if invertible else (naive_err > 1e-3))
    return Outcome(bool(holds), err, 0.0, err, 1e-8, m.flags,
                   {"naive_formula_error": naive_err, "pattern_invertible": bool(invertible)})


def exact_test_predictor_check(s: Scenario) -> Outcome:
    """Exact NGD's test kernel ``J(X') J^+ = Theta(X', X) Theta^{-1}`` at finite width (1e-8: one
    N x N solve of a kernel with condition number < 1e6 at these sizes)."""
    from numerics.factors import layer_grams

    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, 1e-8, m.flags)
    approx = m.approximation
    X_test = s.build_test_inputs()
    K = sum(layer_grams(approx.factors))
    Kx = sum(layer_grams(approx.factors, approx.net.factors(X_test)))
    predicted = np.linalg.solve(K, Kx.T).T
    measured = approx.operator(X_test)
    err = float(np.linalg.norm(measured - predicted) / np.linalg.norm(predicted))
    return Outcome(err <= 1e-8, err, 0.0, err, 1e-8, m.flags, {"condition_number_theta": float(np.linalg.cond(K))})


def dynamics_check(s: Scenario) -> Outcome:
    """Isotropy lemma and learning-rate statement on a model LINEAR in its parameters (depth 1, so
    real training is linearised training): 3 real NGD steps at ``eta = learning_rate / alpha``
    (alpha derived) give ``r_t = (1 - eta alpha)^t r_0`` and
    ``f_t(x') = f_0(x') - (1 - (1 - eta alpha)^t)/alpha Theta_G(x', X) r_0`` (relative 1e-9 of the
    largest residual, round-off of 3 dual solves), ``L_1/L_0 = (1 - eta alpha)^2``, and the residual decays
    iff ``0 < eta < 2/alpha``."""
    from theory import dynamics
    from numerics.approximations import get_approximation

    from numerics.factors import empirical_ntk

    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, 1e-9, m.flags)
    alpha = _alpha(s.approximation, s.depth)
    eta = s.learning_rate / alpha
    net, X, Y = m.approximation.net, m.approximation.X, s.build_targets()
    net_at_start = net.copy()
    X_test = s.build_test_inputs()
    op_test = m.approximation.operator(X_test)
    r0, f0_test = net.forward(X) - Y, net.forward(X_test)
    steps, residuals, dev_test = 3, [r0], 0.0
    for t in range(1, steps + 1):
        approx = get_approximation(s.approximation)(net, X, damping=s.damping, **s.options())
        net.apply_update(approx.direction(residuals[-1]), eta)
        residuals.append(net.forward(X) - Y)
        pred_test = dynamics.predicted_test_outputs(f0_test, op_test, r0, eta, alpha, t)
        dev_test = max(dev_test, float(np.linalg.norm(net.forward(X_test) - pred_test)))
    predicted = dynamics.predicted_residuals(r0, eta, alpha, steps)
    scale = float(np.linalg.norm(r0))
    dev_train = max(float(np.linalg.norm(r - p)) for r, p in zip(residuals, predicted)) / scale
    dev_test /= scale
    ratio = float(np.sum(residuals[1] ** 2) / np.sum(r0 ** 2))
    ratio_pred = dynamics.one_step_loss_ratio(eta, alpha)
    decays = float(np.linalg.norm(residuals[-1])) < scale
    lo, hi = dynamics.stable_learning_rate_interval(alpha)
    # the test outputs apply Theta_G(x', X) to the solution: its round-off is amplified by that operator's
    # norm relative to alpha (near-parallel training inputs make it extrapolate: 1.5e3 x at N = 2, M_0 = 2,
    # cond 2e6, where hypothesis found a test deviation of 9e-7 = 2000 cond eps)
    amplification = max(1.0, float(np.linalg.norm(op_test, 2)) / alpha)
    err = max(dev_train, dev_test / amplification, abs(ratio - ratio_pred) / max(1.0, ratio_pred))
    # round-off is relative to the largest residual met: |1 - eta alpha|^3 |r_0| (3.4x at eta = 2.5/alpha),
    # and every step and the test kernel solve with Theta = J J^T: backward-stable solves are accurate to
    # ~cond(Theta) eps, times a modest constant (1e3: N <= 10, 3 steps, J(x') applied to the solution).
    # Square Gaussian inputs (M_0 = N) reach cond ~1e8 (measured 6e7 at N = 9: deviation 3e-7 = 20 cond eps)
    cond = float(np.linalg.cond(empirical_ntk(net_at_start.factors(X))))
    tol = max(1e-9, 1e3 * np.finfo(float).eps * cond) * max(1.0, abs(1.0 - eta * alpha) ** steps)
    flags = list(m.flags)
    if cond > ILL_CONDITIONED:  # beyond this the round-off allowance would make the check toothless
        flags.append(f"numerics: Theta = J J^T ill-conditioned (condition number {cond:.3g} > {ILL_CONDITIONED:.0e})")
    holds = err <= tol and decays == (lo < eta < hi)
    return Outcome(bool(holds), ratio, ratio_pred, err, tol, flags,
                   {"train_deviation": dev_train, "test_deviation": dev_test, "eta": eta, "alpha": alpha,
                    "decays": decays, "stable_interval": [float(lo), float(hi)], "condition_number_theta": cond,
                    "test_amplification": amplification})


# ---------------------------------------------------------------------------------------------
# analytic kernels (infinite width): telescoping and closed-form duals
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelCase:
    """Inputs and hyper-parameters for the analytic kernels (``zero_input``: the last input is 0)."""

    depth: int
    n_samples: int
    input_dim: int
    activation: str = "relu"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    zero_input: bool = False
    data_seed: int = 0

    def describe(self) -> str:
        return (f"analytic kernels: depth {self.depth}, {self.activation}, sigma_w2 = {self.sigma_w2:g}, "
                f"sigma_b2 = {self.sigma_b2:g}, N = {self.n_samples} Gaussian inputs in R^{self.input_dim}"
                + (" (the last one is 0)" if self.zero_input else "") + f", data seed {self.data_seed}")

    def build_inputs(self) -> np.ndarray:
        X = np.random.default_rng(self.data_seed).standard_normal((self.n_samples, self.input_dim))
        if self.zero_input:
            X[-1] = 0.0
        return X


@st.composite
def kernel_cases(draw, zero_input=False, activation=st.sampled_from(("relu", "erf", "tanh", "gelu", "linear")),
                 input_dim=st.integers(1, 8)):
    """:class:`KernelCase` examples (depth 1-6, N 2-8, several sigma_w2 / sigma_b2)."""
    return KernelCase(depth=draw(st.integers(1, 6)), n_samples=draw(st.integers(2, 8)),
                      input_dim=draw(input_dim), activation=draw(activation),
                      sigma_w2=draw(st.sampled_from((2.0, 1.0, 0.5, 3.0))),
                      sigma_b2=draw(st.sampled_from((0.0, 0.1, 1.0))), zero_input=zero_input,
                      data_seed=draw(seeds()))


def telescoping_check(k: KernelCase) -> Outcome:
    """``sum_l Theta_l = Theta`` and both equal the recursion ``Theta^(l+1) = Theta^(l) dotSigma^(l+1)
    + Sigma^(l+1)`` rebuilt here from the returned ``Sigma^(l)``, ``dotSigma^(l)`` (relative 1e-12:
    a few float64 products and sums per entry)."""
    from theory.kernels import analytic_kernels

    try:
        kern = analytic_kernels(k.build_inputs(), depth=k.depth, activation=k.activation, sigma_w2=k.sigma_w2,
                                sigma_b2=k.sigma_b2)
    except ValueError as exc:
        return Outcome(False, None, None, None, 1e-12, [f"theory: {' '.join(str(exc).split())[:240]}"])
    theta = kern.nngp_layers[0].copy()
    for l in range(1, k.depth):
        theta = theta * kern.derivative_layers[l - 1] + kern.nngp_layers[l]
    scale = float(np.max(np.abs(theta)))
    err = max(float(np.max(np.abs(sum(kern.layer_ntk) - theta))), float(np.max(np.abs(kern.ntk - theta)))) / scale
    return Outcome(err <= 1e-12, float(np.max(np.abs(kern.ntk))), scale, err, 1e-12, [])


def closed_form_check(k: KernelCase) -> Outcome:
    """Closed-form dual kernels ``V``, ``dotV`` (float64) against the 30-digit mpmath Gaussian
    expectation (:func:`theory.dual.closed_form_error`) at the first-layer covariance of the first
    two inputs; relative tolerance 1e-9 (closed forms measure ~1e-16; arccos near rho = +-1 loses
    up to ~1e-10)."""
    from theory.dual import closed_form_error, dual_kernel

    if not dual_kernel(k.activation).closed_form:
        return Outcome(False, None, None, None, 1e-9, [f"theory: {k.activation} has no closed-form dual kernel"])
    X = k.build_inputs()
    S = k.sigma_w2 * X[:2] @ X[:2].T / k.input_dim + k.sigma_b2
    if S[0, 0] <= 0 or S[1, 1] <= 0:
        return Outcome(False, None, None, None, 1e-9, ["theory: zero variance (input 0 and sigma_b2 = 0)"])
    errs = [closed_form_error(k.activation, which, S[0, 0], S[0, 1], S[1, 1]) for which in ("value", "derivative")]
    return Outcome(max(errs) <= 1e-9, max(errs), 0.0, max(errs), 1e-9, [],
                   {"value_error": errs[0], "derivative_error": errs[1], "q11": S[0, 0], "q12": S[0, 1],
                    "q22": S[1, 1]})


# ---------------------------------------------------------------------------------------------
# sanity: the pseudo-inverse product rule (a statement about matrices)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatrixCase:
    """``A`` (m x k, full column rank), ``B`` (k x k; rank ``rank_b``, or invertible when ``rank_b`` is
    None: ``G + 3 I``, well conditioned), ``C`` (k x n, full row rank), Gaussian from ``seed``."""

    k: int
    extra_rows: int = 0
    extra_cols: int = 0
    rank_b: Optional[int] = None
    seed: int = 0

    def describe(self) -> str:
        b = "invertible (G + 3 I)" if self.rank_b is None else f"of rank {self.rank_b}"
        return (f"A {self.k + self.extra_rows}x{self.k}, B {self.k}x{self.k} {b}, C {self.k}x{self.k + self.extra_cols}"
                f" (Gaussian, seed {self.seed})")

    def build(self):
        rng = np.random.default_rng(self.seed)
        k = self.k
        A = rng.standard_normal((k + self.extra_rows, k))
        C = rng.standard_normal((k, k + self.extra_cols))
        if self.rank_b is None:
            B = rng.standard_normal((k, k)) + 3.0 * np.eye(k)
        else:
            B = rng.standard_normal((k, self.rank_b)) @ rng.standard_normal((self.rank_b, k))
        return A, B, C


@st.composite
def matrix_cases(draw, singular_b: bool = False):
    k = draw(st.integers(2, 5))
    return MatrixCase(k, draw(st.integers(0, 2)), draw(st.integers(0, 2)),
                      draw(st.integers(1, k - 1)) if singular_b else None, draw(seeds()))


def pinv_product_check(case: MatrixCase) -> Outcome:
    """``(ABC)^+ = C^+ B^+ A^+`` to 1e-8 relative (SVD pinv of well-conditioned <= 7 x 7 Gaussian
    matrices is accurate to ~1e-13; a genuine mismatch is O(1)); flags ``B`` rank-deficient."""
    A, B, C = case.build()
    lhs = np.linalg.pinv(A @ B @ C)
    rhs = np.linalg.pinv(C) @ np.linalg.pinv(B) @ np.linalg.pinv(A)
    err = float(np.linalg.norm(lhs - rhs) / np.linalg.norm(lhs))
    rank = int(np.linalg.matrix_rank(B))
    flags = [f"rank check: B has rank {rank} < {case.k} (not invertible)"] if rank < case.k else []
    return Outcome(err <= 1e-8, err, 0.0, err, 1e-8, flags, {"rank_B": rank})


def diagonal_isotropic_check(s: Scenario) -> Outcome:
    """The deliberately false "diagonal Fisher is isotropic": isotropy error <= 0.2 (the sanity
    claim's tolerance; isotropic-in-the-limit approximations sit below 0.09 at these widths)."""
    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, 0.0, None, 0.2, m.flags)
    err, a = isotropy_numbers(m.operator)
    return Outcome(err <= 0.2, err, 0.0, err, 0.2, m.flags, {"mean_diagonal": a})


# ---------------------------------------------------------------------------------------------
# the spaces
# ---------------------------------------------------------------------------------------------
def _sc(name, **kw):
    return scenarios(name, **kw)


_DISTINCT = st.sampled_from(("duplicate", "near_duplicate"))


def _DEAD(name, depth):
    """1-24 dead relu units in layer 1 (positive inputs, all-negative fan-in): up to every unit."""
    return _sc(name, depth=depth.filter(lambda L: L >= 2) if isinstance(depth, st.SearchStrategy) else depth,
               inputs=st.just("positive"), dead_units=st.integers(1, 24))


#: The K-FAC premise of the finite-width identity (same words as the claim and theory.kfac_theory).
KFAC_RANK_ASSUMPTION = "rank Delta_l = NC and rank Z_l = N for every hidden layer"


def kfac_rank_relaxed():
    """K-FAC, relu, hidden widths 3 N (the claim's relu margin; every dimension condition holds), deep
    and small-N enough that two inputs often share a layer's activation pattern: rank(Delta_l) < N C
    on roughly 5-50 % of draws (measured: N = 8, L = 5: 13 %; N = 4, L = 6: 51 %)."""
    return _sc("kfac", depth=st.integers(4, 6), n=st.integers(4, 10), hidden="three_nc",
               width_extra=st.integers(0, 2))


def exactness_alpha(s: Scenario) -> float:
    """K-FAC: ``N(L-1)+1`` (theory, from N and L: the statement); block patterns: ``1^T S^+ 1``."""
    if s.approximation == "kfac":
        return _alpha("kfac", s.depth, n_samples=s.n_samples)
    return pattern_alpha(s)


def _layerwise_space(claim_id, name, statement, depth, predict, extra_relax=None):
    relaxed = {"hidden width >= N": _sc(name, depth=depth, hidden="narrow", n=st.integers(3, 10)),
               "distinct inputs": _sc(name, depth=depth, inputs=_DISTINCT),
               "no dead relu units": _DEAD(name, depth)}
    relaxed.update(extra_relax or {})
    return AssumptionSpace(claim_id, statement, _sc(name, depth=depth, n=st.integers(2, 10)),
                           isotropy_check(predict), relaxed)


def build_spaces() -> Dict[str, AssumptionSpace]:
    """Every claim id with a search space -> its :class:`AssumptionSpace`."""
    spaces: Dict[str, AssumptionSpace] = {}

    def add(space):
        spaces[space.claim_id] = space

    add(_layerwise_space("ngd.exact.one_step", "exact", "J F^+ J^T / N = I (exact at finite width)",
                         st.integers(1, 5), lambda s: _alpha("exact", s.depth),
                         {"rho -> 0+": _sc("exact", damping=dampings(1e-2, 10.0))}))
    add(_layerwise_space("ngd.block_diagonal", "block_diagonal", "J G_BD^+ J^T / N = L I",
                         st.integers(1, 6), lambda s: _alpha("block_diagonal", s.depth),
                         {"rho -> 0+": _sc("block_diagonal", damping=dampings(1e-2, 10.0))}))
    add(_layerwise_space("ngd.width_below_n", "block_diagonal", "J G_BD^+ J^T / N = L I (needs hidden width >= N)",
                         st.integers(2, 5), lambda s: _alpha("block_diagonal", s.depth)))
    add(_layerwise_space("ngd.block_tridiagonal.alpha", "block_tridiagonal", "J G_T^+ J^T / N = ceil(L/3) I",
                         st.integers(2, 9), lambda s: _alpha("block_tridiagonal", s.depth)))
    pat = "pattern"
    add(AssumptionSpace(
        "ngd.patterns", "J G_S^+ J^T / N = (1^T S^+ 1) I for 1 in range(S)",
        _sc(pat, depth=st.integers(2, 6), pattern=True, n=st.integers(2, 8)), isotropy_check(pattern_alpha),
        {"hidden width >= N": _sc(pat, depth=st.integers(2, 6), pattern=True, hidden="narrow", n=st.integers(3, 8))}))
    # K-FAC at finite width: both the block patterns and K-FAC (claim ngd.finite_width_exactness covers
    # both); in the "holds" side relu draws whose factors lose rank are flagged by numerics and rejected
    add(AssumptionSpace(
        "ngd.finite_width_exactness",
        "rank J_l = N C for all l => J G_S^+ J^T / N = (1^T S^+ 1) I; "
        f"{KFAC_RANK_ASSUMPTION} => J G_KFAC^+ J^T / N = (N(L-1)+1) I",
        st.one_of(_sc(pat, depth=st.integers(2, 6), pattern=True, n=st.integers(2, 8), activation=activations()),
                  _sc("kfac", depth=st.integers(2, 6), n=st.integers(2, 10), activation=activations())),
        isotropy_check(exactness_alpha),
        {"hidden width >= N": _sc(pat, depth=st.integers(2, 6), pattern=True, hidden="narrow", n=st.integers(3, 8)),
         KFAC_RANK_ASSUMPTION: kfac_rank_relaxed()}))

    kfac_predict = lambda s: _alpha("kfac", s.depth, n_samples=s.n_samples)  # noqa: E731 -- N(L-1)+1, the statement
    add(AssumptionSpace(
        "ngd.kfac.alpha_definition", "J G_KFAC^+ J^T / N = (N(L-1)+1) I (M_0 >= N)",
        _sc("kfac", depth=st.integers(2, 6), n=st.integers(2, 10)), isotropy_check(kfac_predict),
        {"M_0 >= N": _sc("kfac", depth=st.integers(2, 6), n=st.integers(4, 12), input_dim="narrow",
                         inputs=st.sampled_from(("sphere", "raw"))),
         "hidden width >= N": _sc("kfac", depth=st.integers(2, 6), n=st.integers(3, 10), hidden="narrow"),
         "no dead relu units": _DEAD("kfac", st.integers(2, 6)),
         KFAC_RANK_ASSUMPTION: kfac_rank_relaxed()}))
    forster_predict = lambda s: _alpha("kfac", s.depth, n_samples=s.n_samples, input_dim=s.input_dim,  # noqa: E731
                                       forster=True)
    add(AssumptionSpace(
        "ngd.kfac.forster", "Forster inputs, M_0 < N: J G_KFAC^+ J^T / N = (M_0 + N(L-2) + 1) I",
        _sc("kfac", depth=st.integers(2, 6), n=st.integers(4, 12), input_dim="narrow", inputs=st.just("forster")),
        isotropy_check(forster_predict, lambda s, a: FORSTER_TOL),
        {"Forster inputs": _sc("kfac", depth=st.integers(2, 6), n=st.integers(4, 12), input_dim="narrow",
                               inputs=st.sampled_from(("sphere", "raw")))}))
    add(AssumptionSpace(
        "ngd.kfac.no_forster", "M_0 < N, inputs not in isotropic position: Theta_G = alpha I (stated false)",
        _sc("kfac", depth=st.integers(2, 6), n=st.integers(4, 12), input_dim="narrow", inputs=st.just("raw")),
        isotropy_check(lambda s: None), expected_flags=("Forster", "forster")))

    tanh_predict = lambda s: _unit_wise_alpha(s, "tanh")  # noqa: E731
    add(AssumptionSpace(
        "ngd.unit_wise.tanh_exact", "tanh: J G_unit^+ J^T / N = (sum_{l<L} M_l + 1) I",
        _sc("unit_wise", depth=st.integers(2, 5), activation=st.just("tanh")), isotropy_check(tanh_predict),
        {"C = 1": _sc("unit_wise", depth=st.integers(2, 5), activation=st.just("tanh"), n_outputs=st.just(2)),
         "M_0 >= N": _sc("unit_wise", depth=st.integers(2, 5), activation=st.just("tanh"), input_dim="narrow",
                         n=st.integers(4, 8)),
         "phi' != 0 almost everywhere": _sc("unit_wise", depth=st.integers(2, 5))}))
    relu_predict = lambda s: _unit_wise_alpha(s, "relu")  # noqa: E731
    add(AssumptionSpace(
        "ngd.unit_wise.relu_asymptotic",
        "relu: ||Theta_G - alpha I|| / ||alpha I|| <= 4 sqrt(gamma(1-gamma) sum M_l) / alpha, alpha = sum M_l / 2 + 1",
        _sc("unit_wise", depth=st.integers(2, 4), width_extra=st.integers(0, 64)),
        isotropy_check(relu_predict, relu_tolerance),
        {"C = 1": _sc("unit_wise", depth=st.integers(2, 4), n_outputs=st.just(2), width_extra=st.integers(0, 64)),
         "M_0 >= N": _sc("unit_wise", depth=st.integers(2, 4), input_dim="narrow", n=st.integers(4, 8)),
         "no dead relu units": _sc("unit_wise", depth=st.integers(2, 4), inputs=st.just("positive"),
                                   dead_units=st.integers(1, 4))},
        expected_flags=("isotropy only as M -> infinity",)))
    add(AssumptionSpace(
        "ngd.unit_wise.multi_output", "C = 2: J G_unit^+ J^T / N = (gamma sum M_l + 1) I (stated false)",
        _sc("unit_wise", depth=st.integers(2, 4), activation=st.just("tanh"), n_outputs=st.just(2)),
        isotropy_check(tanh_predict), expected_flags=("C = ",)))
    add(AssumptionSpace(
        "ngd.diagonal.not_isotropic", f"isotropy error of J diag(F)^-1 J^T / N > {DIAGONAL_MIN_ERROR}",
        _sc("diagonal", depth=st.integers(2, 5), n=st.integers(3, 10), activation=activations(("relu", "tanh"))),
        diagonal_check, expected_flags=("diagonal Fisher",)))
    add(AssumptionSpace(
        "ngd.damping.eigenvalues", "J (F + rho I)^-1 J^T / N = Theta (Theta + rho I)^-1, spectrum not flat",
        _sc("exact", depth=st.integers(1, 4), n=st.integers(3, 10), damping=dampings(1e-2, 10.0)),
        damping_check, expected_flags=("rho -> 0+", "damping")))
    add(AssumptionSpace(
        "ngd.kfac.alpha_authors", "J G_KFAC^+ J^T / N = N L I (the authors' code; stated false)",
        _sc("kfac", depth=st.integers(2, 6), n=st.integers(2, 10)),
        isotropy_check(lambda s: float(_authors_kfac(s.depth, s.n_samples)))))
    add(AssumptionSpace(
        "ngd.block_tridiagonal.moving_layers", "only the layers theory predicts (c_l != 0, null-space-coupled) move",
        _sc("block_tridiagonal", depth=st.integers(2, 8), n=st.integers(2, 8)), moving_layers_check,
        {"hidden width >= N": _sc("block_tridiagonal", depth=st.integers(2, 8), hidden="narrow", n=st.integers(3, 8))}))
    add(AssumptionSpace(
        "ngd.block_tridiagonal.test_kernel",
        "finite-width Theta_G(x', X) = derived pattern kernel; naive sum_l c_l formula iff T invertible",
        _sc("block_tridiagonal", depth=st.integers(2, 8), n=st.integers(2, 8)), pattern_test_kernel_check,
        {"hidden width >= N": _sc("block_tridiagonal", depth=st.integers(2, 8), hidden="narrow", n=st.integers(3, 8))}))
    add(AssumptionSpace(
        "ngd.exact.test_predictor", "finite-width J(x') J^+ = Theta(x', X) Theta^{-1}",
        _sc("exact", depth=st.integers(1, 5), n=st.integers(2, 10)), exact_test_predictor_check,
        {"distinct inputs": _sc("exact", depth=st.integers(1, 5), inputs=_DISTINCT)}))
    linear_model = _sc(st.sampled_from(("exact", "block_diagonal")), depth=st.just(1), n=st.integers(2, 10),
                       learning_rate=learning_rate_factors())
    add(AssumptionSpace(
        "ngd.isotropy_lemma", "Theta_G = alpha I => r_t = (1 - eta alpha)^t r_0 and the closed-form test predictor "
        "(depth-1 model: linear in its parameters)", linear_model, dynamics_check,
        {"distinct inputs": _sc("exact", depth=st.just(1), inputs=_DISTINCT, learning_rate=learning_rate_factors())}))
    add(AssumptionSpace(
        "ngd.lr_stability", "L_1/L_0 = (1 - eta alpha)^2; r_t -> 0 iff 0 < eta < 2/alpha (depth-1 model)",
        linear_model, dynamics_check))
    # sanity.pinv_product_rule_invertible keeps its own falsifier draws: it is the worked example of
    # the fallback engine (tests/proofs/test_cli.py); matrix_cases() covers its true side in the tests
    add(AssumptionSpace(
        "sanity.pinv_product_rule", "(ABC)^+ = C^+ B^+ A^+ for any B (stated false)", matrix_cases(singular_b=True),
        pinv_product_check, expected_flags=("rank check",)))
    add(AssumptionSpace(
        "sanity.diagonal_fisher_isotropic", "diagonal Fisher isotropy error <= 0.2 (stated false)",
        _sc("diagonal", depth=st.integers(2, 4), n=st.integers(2, 8), hidden=(64, 128),
            activation=activations(("relu", "tanh", "erf"))),
        diagonal_isotropic_check, expected_flags=("diagonal Fisher",)))
    add(AssumptionSpace(
        "kernels.layerwise_telescoping", "sum_l Theta_l = Theta = NTK recursion",
        kernel_cases(), telescoping_check,
        {"nonzero inputs or sigma_b2 > 0": kernel_cases(zero_input=True,
                                                        activation=st.sampled_from(("relu", "linear")))}))
    add(AssumptionSpace(
        "kernels.dual_closed_forms", "closed-form V, dotV = numeric Gaussian rule",
        kernel_cases(activation=st.sampled_from(("relu", "erf", "linear", "leaky_relu")), input_dim=st.integers(2, 8)),
        closed_form_check))
    return spaces


SPACES: Dict[str, AssumptionSpace] = build_spaces()


def space_for(claim_id: str) -> Optional[AssumptionSpace]:
    """The :class:`AssumptionSpace` of ``claim_id`` or ``None`` (then ``falsify`` uses the claim's draws)."""
    return SPACES.get(claim_id)
