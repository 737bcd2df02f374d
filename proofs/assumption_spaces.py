"""Search spaces for ``ngd-verify falsify``: the :class:`AssumptionSpace` type, the :class:`Outcome`
of one example, and the checks (the statement of a claim family, measured on one scenario).

Each claim module under ``proofs/claims/`` declares its claim's space next to the claim
(``my_claim.set_space(AssumptionSpace(...))``), built from the strategies of :mod:`proofs.strategies`:

* ``holds`` -- a hypothesis strategy of :class:`~proofs.strategies.Scenario` satisfying every
  assumption of the claim;
* ``relaxed`` -- ``{Assumption: strategy}`` (:mod:`theory.assumptions`), each violating that one
  assumption; ``--relax`` names it by ``Assumption.name``;
* ``check(scenario) -> Outcome`` -- builds the real finite network and data, measures the claim's
  quantity (``Theta_G = J G^+ J^T / N``, its mean diagonal ``a`` and isotropy error
  ``||Theta_G - a I||_F / ||a I||_F``), puts it next to the claim's prediction (derived by
  ``theory``, never a table) and records every :class:`~theory.assumptions.Flag` the verifier's own
  assumption checks raise: ``theory.isotropy.NotIsotropic`` on the scenario's full setting,
  ``numerics.linalg.SingularSystemError``, ``numerics.forster.ForsterError``, and the approximation's
  ``diagnostics["flags"]``;
* ``expected`` -- the assumptions whose flags are part of the claim's own statement (the stated-false
  claims, relu's "isotropic only as M -> infinity"): flags of other assumptions put a "holds" example
  outside the claim's assumptions.

Tolerance model: exact finite-width identities at ``EXACT_TOL = 1e-9`` (float64 N x N solves,
round-off ~1e-13); Forster inputs at ``FORSTER_TOL = 1e-7`` (the iteration stops at 1e-10 and N
leverage scores enter alpha); the relu unit-wise isotropy, an infinite-width statement, at
``RELU_SIGMAS`` times the predicted relative spread ``sqrt(gamma (1 - gamma) sum_l M_l) / alpha``
of the per-sample active counts -- a tolerance that shrinks like ``M^-1/2`` with the width.

Two properties (``tests/proofs/test_assumption_properties.py``):

* assumptions hold  =>  ``outcome.holds`` (and no flag beyond the claim's ``expected`` assumptions);
* an assumption relaxed  =>  ``outcome.holds or outcome.flags``: the claim may fail, never silently.

>>> from proofs.strategies import Scenario
>>> out = isotropy_check(lambda s: 2.0)(Scenario("block_tridiagonal", (6, 12, 12, 12, 12, 1), 5))
>>> out.holds, out.predicted, out.flags
(True, 2.0, [])
>>> out = isotropy_check(lambda s: 3.0)(Scenario("block_diagonal", (6, 16, 16, 3, 1), 4))
>>> out.holds, sorted({(f.code, f.assumption.name) for f in out.flags})  # theory and numerics both flag it
(False, [('theory_not_isotropic', 'layer Jacobians of full row rank'), ('too_few_parameters', 'layer Jacobians of full row rank')])
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from theory.tolerances import EXACT_TOL, ILL_CONDITIONED, round_off_tolerance
from hypothesis import strategies as st

from proofs.strategies import KernelCase, MatrixCase, Scenario, scenarios
from theory.assumptions import (B_INVERTIBLE, CLOSED_FORM_DUAL, DISTINCT_INPUTS, FORSTER_INPUTS, HIDDEN_WIDTH,
                                NO_DEAD_UNITS, NONZERO_VARIANCE, WELL_CONDITIONED, Assumption, Flag, lookup)

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


@dataclass
class Outcome:
    """The claim's statement evaluated on one scenario."""

    holds: bool
    measured: Optional[float] = None
    predicted: Optional[float] = None
    error: Optional[float] = None
    tolerance: Optional[float] = None
    flags: List[Flag] = field(default_factory=list)
    numbers: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        for f in self.flags:
            if not isinstance(f, Flag):
                raise TypeError(f"Outcome flags must be theory.assumptions.Flag objects, got {f!r:.80}")

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def summary(self) -> Dict[str, Any]:
        """Numbers for reports: measured vs predicted, error vs tolerance, flags."""
        out = {"measured": self.measured, "predicted": self.predicted, "error": self.error,
               "tolerance": self.tolerance}
        out.update(self.numbers)
        out["flagged"] = ("; ".join(f.message for f in self.flags) if self.flags
                          else "nothing (no assumption check fired)")
        return out


@dataclass
class AssumptionSpace:
    """The search space of one claim (see the module docstring).

    ``relaxed`` is given as ``{Assumption: strategy}`` and kept as ``{name: strategy}`` (the
    ``--relax`` key); :attr:`relaxed_assumptions` maps the names back to the objects.  ``claim_id``
    is set when the space is attached to its claim (:meth:`proofs.claim.Claim.set_space`).
    """

    statement: str
    holds: st.SearchStrategy
    check: Callable[[Any], Outcome]
    relaxed: Dict[Any, st.SearchStrategy] = field(default_factory=dict)
    expected: Tuple[Assumption, ...] = ()
    claim_id: str = ""
    relaxed_assumptions: Dict[str, Assumption] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.statement, str):
            raise TypeError(f"statement={self.statement!r} is not allowed: expected a string")
        if not isinstance(self.holds, st.SearchStrategy):
            raise TypeError(f"holds={self.holds!r} is not allowed: expected a hypothesis strategy")
        if not callable(self.check):
            raise TypeError(f"check={self.check!r} is not allowed: expected a callable example -> Outcome")
        table = {}
        for key, strategy in dict(self.relaxed).items():
            if not isinstance(key, Assumption):
                raise TypeError(f"relaxed keys must be theory.assumptions.Assumption objects, got {key!r}")
            if not isinstance(strategy, st.SearchStrategy):
                raise TypeError(f"relaxed[{key.name!r}] is not a hypothesis strategy: {strategy!r}")
            if key.name == "none" or key.name in table:
                raise ValueError(f"relaxation name {key.name!r} is reserved or repeated")
            table[key.name] = strategy
            self.relaxed_assumptions[key.name] = key
        self.relaxed = table
        self.expected = tuple(self.expected)
        for a in self.expected:
            if not isinstance(a, Assumption):
                raise TypeError(f"expected must hold theory.assumptions.Assumption objects, got {a!r}")

    def strategy(self, relax=None) -> st.SearchStrategy:
        """The strategy with ``relax`` (a name or an :class:`Assumption`) violated (``None`` or
        ``"none"``: every assumption holds); ``ValueError`` naming the allowed ones otherwise."""
        name = relax.name if isinstance(relax, Assumption) else relax
        if name in (None, "none"):
            return self.holds
        if name not in self.relaxed:
            raise ValueError(f"--relax {name!r} is not a relaxation of {self.claim_id or 'this claim'}; allowed: "
                             + ", ".join(repr(k) for k in ["none", *self.relaxed]))
        return self.relaxed[name]

    @property
    def relaxations(self) -> List[str]:
        return ["none", *self.relaxed]

    def unexpected_flags(self, outcome: Outcome) -> List[Flag]:
        """Flags of assumptions that are not part of the claim's own statement (``expected``), by identity."""
        return [f for f in outcome.flags if not any(f.violates(a) for a in self.expected)]


# ---------------------------------------------------------------------------------------------
# the verifier's own assumption checks
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _theory_flag(name, depth, n, widths, activation, forster, bias, damping, pattern) -> Optional[Flag]:
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
        name = exc.failed_assumption or ""
        return Flag("theory_not_isotropic", f"theory: {name or 'not isotropic'}: {' '.join(exc.reason.split())[:240]}",
                    lookup(name) if name else None)
    return None


def theory_flag(s: Scenario) -> Optional[Flag]:
    """``NotIsotropic`` raised by :func:`theory.isotropy.isotropy_result` on the scenario's full
    setting (N, M_0, widths, C, activation, Forster, bias, damping, pattern), as a :class:`Flag`
    naming the catalogue assumption (:func:`theory.assumptions.lookup` of its ``failed_assumption``)."""
    return _theory_flag(s.approximation, s.depth, s.n_samples, tuple(s.widths), s.activation, s.forster,
                        s.sigma_b2 > 0, float(s.damping), s.pattern)


@dataclass
class Measurement:
    """The measured function-space operator of a scenario (``operator`` None if it could not be formed)."""

    operator: Optional[np.ndarray]
    approximation: Any
    flags: List[Flag]
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
    X = None
    net = s.build_network()
    try:
        X = s.build_inputs()  # Forster inputs: the transform of the data raises ForsterError when N < M_0
        approx = get_approximation(s.approximation)(net, X, damping=s.damping, **s.options())
        op = approx.operator()
    except (SingularSystemError, ForsterError) as exc:
        flags.extend(exception_flags(exc))
        return Measurement(None, None, flags, X)
    diagnosed = list(approx.diagnostics.get("flags") or [])
    if not diagnosed and approx.diagnostics.get("failed_assumption"):
        # an approximation that writes only the text (no typed flags): keep it, naming no assumption
        diagnosed = [Flag("diagnosed", str(approx.diagnostics["failed_assumption"]))]
    flags.extend(f.with_prefix("numerics: ") for f in diagnosed)
    cond = system_condition(approx)
    if cond > ILL_CONDITIONED:  # the round-off allowance 1e3 cond eps would make the identity check toothless
        flags.append(Flag("ill_conditioned", f"numerics: ill-conditioned dual system (condition number {cond:.3g} > "
                                             f"{ILL_CONDITIONED:.0e})", WELL_CONDITIONED))
    return Measurement(op, approx, flags, X)


def exception_flags(exc) -> List[Flag]:
    """The flags of a ``SingularSystemError`` / ``ForsterError`` (the approximation that raised is lost:
    the error carries its flags; a Forster failure violates "Forster inputs")."""
    from numerics.forster import ForsterError

    cond = getattr(exc, "condition_number", None)
    message = f"numerics: {exc.assumption}" + (f" (condition number {cond:.3g})" if cond else "")
    carried = list(getattr(exc, "flags", None) or [])
    if carried:
        return [Flag(carried[0].code, message, carried[0].assumption, carried[0].causes),
                *(f.with_prefix("numerics: ") for f in carried[1:])]
    if isinstance(exc, ForsterError):
        return [Flag("forster_failed", message, FORSTER_INPUTS)]
    return [Flag("singular_system", message, lookup(str(exc.assumption)))]


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
            return Outcome(False, 0.0, alpha, float("inf"), None, m.flags + [Flag("zero_operator", f"measure: {exc}")])
        tol = (tolerance(s, alpha if alpha is not None else a) if tolerance is not None
               else exact_tolerance(m.approximation))
        alpha_err = 0.0 if alpha is None else abs(a - alpha) / abs(alpha)
        holds = err <= tol and alpha_err <= tol
        return Outcome(bool(holds), a, alpha, max(err, alpha_err), tol, m.flags,
                       {"isotropy_error": err, "alpha_relative_error": alpha_err})

    return check


def authors_kfac_alpha(depth: int, n: int):
    from theory.kfac_theory import authors_kfac_constant

    return authors_kfac_constant(depth, n)


def predicted_alpha(name: str, depth: int, **kwargs) -> float:
    from theory.isotropy import isotropy_constant

    return float(isotropy_constant(name, depth, **kwargs))


@functools.lru_cache(maxsize=None)
def _gamma(activation: str) -> float:
    from theory.unit_wise_theory import active_fraction

    from theory.activations import get_activation

    return float(active_fraction(get_activation(activation)))


def unit_wise_alpha(s: Scenario, activation: str) -> float:
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
    from numerics.factors import empirical_ntk
    from numerics.training import ngd_step

    m = measure(s)
    if m.operator is None:
        return Outcome(False, None, None, None, EXACT_TOL, m.flags)
    alpha = predicted_alpha(s.approximation, s.depth)
    eta = s.learning_rate / alpha
    net, X, Y = m.approximation.net, m.approximation.X, s.build_targets()
    net_at_start = net.copy()
    X_test = s.build_test_inputs()
    op_test = m.approximation.operator(X_test)
    r0, f0_test = net.forward(X) - Y, net.forward(X_test)
    steps, residuals, dev_test = 3, [r0], 0.0
    for t in range(1, steps + 1):
        ngd_step(net, X, Y, s.approximation, eta, s.damping, **s.options())
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
    tol = round_off_tolerance(max(cond, 1.0)) * max(1.0, abs(1.0 - eta * alpha) ** steps)
    flags = list(m.flags)
    if cond > ILL_CONDITIONED:  # beyond this the round-off allowance would make the check toothless
        flags.append(Flag("ill_conditioned", f"numerics: Theta = J J^T ill-conditioned (condition number {cond:.3g} "
                                             f"> {ILL_CONDITIONED:.0e})", WELL_CONDITIONED))
    holds = err <= tol and decays == (lo < eta < hi)
    return Outcome(bool(holds), ratio, ratio_pred, err, tol, flags,
                   {"train_deviation": dev_train, "test_deviation": dev_test, "eta": eta, "alpha": alpha,
                    "decays": decays, "stable_interval": [float(lo), float(hi)], "condition_number_theta": cond,
                    "test_amplification": amplification})


# ---------------------------------------------------------------------------------------------
# analytic kernels (infinite width): telescoping and closed-form duals
# ---------------------------------------------------------------------------------------------
def telescoping_check(k: KernelCase) -> Outcome:
    """``sum_l Theta_l = Theta`` and both equal the recursion ``Theta^(l+1) = Theta^(l) dotSigma^(l+1)
    + Sigma^(l+1)`` rebuilt here from the returned ``Sigma^(l)``, ``dotSigma^(l)`` (relative 1e-12:
    a few float64 products and sums per entry)."""
    from theory.kernels import analytic_kernels

    try:
        kern = analytic_kernels(k.build_inputs(), depth=k.depth, activation=k.activation, sigma_w2=k.sigma_w2,
                                sigma_b2=k.sigma_b2)
    except ValueError as exc:
        return Outcome(False, None, None, None, 1e-12,
                       [Flag("kernel_undefined", f"theory: {' '.join(str(exc).split())[:240]}", NONZERO_VARIANCE)])
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
        return Outcome(False, None, None, None, EXACT_TOL, [Flag("no_closed_form", f"theory: {k.activation} has no "
                                                            "closed-form dual kernel", CLOSED_FORM_DUAL)])
    X = k.build_inputs()
    S = k.sigma_w2 * X[:2] @ X[:2].T / k.input_dim + k.sigma_b2
    if S[0, 0] <= 0 or S[1, 1] <= 0:
        return Outcome(False, None, None, None, EXACT_TOL, [Flag("zero_variance", "theory: zero variance (input 0 and "
                                                            "sigma_b2 = 0)", NONZERO_VARIANCE)])
    errs = [closed_form_error(k.activation, which, S[0, 0], S[0, 1], S[1, 1]) for which in ("value", "derivative")]
    return Outcome(max(errs) <= EXACT_TOL, max(errs), 0.0, max(errs), EXACT_TOL, [],
                   {"value_error": errs[0], "derivative_error": errs[1], "q11": S[0, 0], "q12": S[0, 1],
                    "q22": S[1, 1]})


# ---------------------------------------------------------------------------------------------
# sanity: the pseudo-inverse product rule (a statement about matrices)
# ---------------------------------------------------------------------------------------------
def pinv_product_check(case: MatrixCase) -> Outcome:
    """``(ABC)^+ = C^+ B^+ A^+`` to 1e-8 relative (SVD pinv of well-conditioned <= 7 x 7 Gaussian
    matrices is accurate to ~1e-13; a genuine mismatch is O(1)); flags ``B`` rank-deficient."""
    A, B, C = case.build()
    lhs = np.linalg.pinv(A @ B @ C)
    rhs = np.linalg.pinv(C) @ np.linalg.pinv(B) @ np.linalg.pinv(A)
    err = float(np.linalg.norm(lhs - rhs) / np.linalg.norm(lhs))
    rank = int(np.linalg.matrix_rank(B))
    flags = [Flag("b_singular", f"rank check: B has rank {rank} < {case.k} (not invertible)", B_INVERTIBLE)
             ] if rank < case.k else []
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
# building blocks of the claims' spaces (the spaces themselves sit next to their claims)
# ---------------------------------------------------------------------------------------------
#: data recipes violating "distinct inputs"
DUPLICATED_INPUTS = st.sampled_from(("duplicate", "near_duplicate"))


def dead_unit_scenarios(name, depth):
    """1-24 dead relu units in layer 1 (positive inputs, all-negative fan-in): up to every unit."""
    return scenarios(name, depth=depth.filter(lambda L: L >= 2) if isinstance(depth, st.SearchStrategy) else depth,
                     inputs=st.just("positive"), dead_units=st.integers(1, 24))


def kfac_rank_relaxed():
    """K-FAC, relu, hidden widths 3 N (the claim's relu margin; every dimension condition holds), deep
    and small-N enough that two inputs often share a layer's activation pattern: rank(Delta_l) < N C
    on roughly 5-50 % of draws (measured: N = 8, L = 5: 13 %; N = 4, L = 6: 51 %)."""
    return scenarios("kfac", depth=st.integers(4, 6), n=st.integers(4, 10), hidden="three_nc",
                     width_extra=st.integers(0, 2))


def exactness_alpha(s: Scenario) -> float:
    """K-FAC: ``N(L-1)+1`` (theory, from N and L: the statement); block patterns: ``1^T S^+ 1``."""
    if s.approximation == "kfac":
        return predicted_alpha("kfac", s.depth, n_samples=s.n_samples)
    return pattern_alpha(s)


def layerwise_space(name: str, statement: str, depth, predict, extra_relax=None) -> AssumptionSpace:
    """The space of a layer-wise isotropy claim: every assumption holding, or one of "hidden width
    >= N", "distinct inputs", "no dead relu units" (and ``extra_relax``) relaxed."""
    relaxed = {HIDDEN_WIDTH: scenarios(name, depth=depth, hidden="narrow", n=st.integers(3, 10)),
               DISTINCT_INPUTS: scenarios(name, depth=depth, inputs=DUPLICATED_INPUTS),
               NO_DEAD_UNITS: dead_unit_scenarios(name, depth)}
    relaxed.update(extra_relax or {})
    return AssumptionSpace(statement, scenarios(name, depth=depth, n=st.integers(2, 10)), isotropy_check(predict),
                           relaxed)


__all__ = [
    "Outcome",
    "AssumptionSpace",
    "Measurement",
    "measure",
    "theory_flag",
    "exception_flags",
    "system_condition",
    "exact_tolerance",
    "isotropy_check",
    "layerwise_space",
    "diagonal_check",
    "damping_check",
    "moving_layers_check",
    "pattern_test_kernel_check",
    "exact_test_predictor_check",
    "dynamics_check",
    "telescoping_check",
    "closed_form_check",
    "pinv_product_check",
    "diagonal_isotropic_check",
]
