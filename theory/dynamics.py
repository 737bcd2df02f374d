"""Training dynamics in function space, derived with SymPy: isotropic NGD, plain GD, damped NGD.

Linearised training moves the stacked train residual ``r = f(X) - y`` by
``r_{t+1} = (I - eta Theta_G) r_t`` and a test output by ``f_{t+1}(x') = f_t(x') - eta Theta_G(x', X) r_t``
(:mod:`proofs.conventions`).  Everything below is *derived* from these two recursions by SymPy
(``rsolve``, ``solve``, ``solveset``, ``summation``), each result carried by a
:class:`theory.derivation.Derivation` with checked steps:

* isotropic preconditioning ``Theta_G = alpha I``: ``r_t = (1 - eta alpha)^t r_0``,
  ``L_t = (1 - eta alpha)^{2t} L_0``;
* ``eta* = 1/alpha`` (one-step convergence), stable iff ``0 < eta < 2/alpha`` (``eta = 2/alpha``
  oscillates ``r_t = (-1)^t r_0`` without decay);
* test outputs ``f_t(x') = f_0(x') - (1 - (1 - eta alpha)^t)/alpha * Theta_G(x', X) r_0``;
* GD (``Theta_G = Theta``): factors ``(1 - eta lambda_i)^t`` per eigenvalue, stable iff
  ``eta < 2/lambda_max``, best fixed ``eta = 2/(lambda_min + lambda_max)`` with rate
  ``(kappa - 1)/(kappa + 1)``, and the number of steps to a tolerance;
* damped exact NGD: factors ``1 - eta lambda/(lambda + rho)`` -- isotropic only if all lambda agree.

The numeric helpers (``predicted_train_losses`` ...) evaluate these SymPy results through
``sympy.lambdify``; no formula is typed twice.

>>> round(float(predicted_train_losses(0.5, 0.25, 2.0, 2)[-1]), 12)   # 0.5 * (1 - 0.5)^4
0.03125
>>> stable_learning_rate_interval(4.0)
(0.0, 0.5)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import sympy as sp

from theory.derivation import Derivation
from theory.validation import check_matrix, check_nonnegative, check_positive_int

# --- the symbols every result is written in --------------------------------------------------
eta = sp.Symbol("eta", positive=True)            # learning rate
alpha = sp.Symbol("alpha", positive=True)        # isotropy constant: Theta_G = alpha I
t = sp.Symbol("t", integer=True, nonnegative=True)  # step
s = sp.Symbol("s", integer=True, nonnegative=True)  # summation index
r0 = sp.Symbol("r_0", real=True)                 # initial residual (a component of it)
loss0 = sp.Symbol("L_0", nonnegative=True)       # initial train loss
n_samples = sp.Symbol("N", positive=True, integer=True)
lam = sp.Symbol("lambda", positive=True)         # an eigenvalue of Theta
lam_min = sp.Symbol("lambda_min", positive=True)
lam_max = sp.Symbol("lambda_max", positive=True)
kappa = sp.Symbol("kappa", positive=True)        # lambda_max / lambda_min
rho = sp.Symbol("rho", positive=True)            # damping
rate = sp.Symbol("q", positive=True)             # a contraction factor per step, 0 < q < 1
tolerance = sp.Symbol("epsilon", positive=True)  # target residual ratio

__all__ = [
    "eta", "alpha", "t", "r0", "loss0", "lam", "lam_min", "lam_max", "kappa", "rho", "rate", "tolerance",
    "DynamicsResults", "dynamics_results", "all_dynamics",
    "isotropic_residual_derivation", "learning_rate_derivation", "test_prediction_derivation",
    "gd_derivation", "damped_ngd_derivation",
    "predicted_train_losses", "predicted_residuals", "predicted_test_outputs", "gd_predicted_residuals",
    "one_step_loss_ratio", "stable_learning_rate_interval", "optimal_learning_rate",
    "gd_optimal_learning_rate", "gd_convergence_rate", "gd_stable_learning_rate_bound",
    "steps_to_tolerance", "damped_ngd_factors",
]


def _finish(d: Derivation, check: bool) -> Derivation:
    if check:
        d.check()
    return d


def _zero(expr) -> bool:
    """Identity check: split powers ``x^(t+1) -> x^t x`` and expand; fall back to cancel/simplify."""
    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    for e in entries:
        if sp.expand(sp.expand_power_exp(e)) == 0:
            continue
        if sp.simplify(sp.cancel(sp.together(e))) != 0:
            return False
    return True


def _cayley_rotation(param) -> sp.Matrix:
    """Exact rational 2 x 2 rotation ``[[1 - p^2, -2p], [2p, 1 - p^2]] / (1 + p^2)``."""
    return sp.Matrix([[1 - param ** 2, -2 * param], [2 * param, 1 - param ** 2]]) / (1 + param ** 2)


# ---------------------------------------------------------------------------------------------
# Derivations
# ---------------------------------------------------------------------------------------------
def isotropic_residual_derivation(check: bool = True) -> Derivation:
    r"""``r_t = (1 - eta alpha)^t r_0`` and ``L_t = (1 - eta alpha)^{2t} L_0`` for ``Theta_G = alpha I``.

    The closed form comes from ``sympy.rsolve`` on the per-component recursion; the induction step
    and base case are checked, and the loss ratio is computed from a generic 3-vector residual.

    >>> isotropic_residual_derivation().conclusion["residual"]
    r_0*(-alpha*eta + 1)**t
    """
    r = sp.Function("r")
    residual = sp.rsolve(r(t + 1) - (1 - eta * alpha) * r(t), r(t), {r(0): r0})
    vec0 = sp.Matrix(sp.symbols("r_0:3", real=True))
    d = Derivation(
        "Isotropic NGD: train residual and loss",
        r"r_t = (1-\eta\alpha)^t r_0,\qquad \mathcal L_t = (1-\eta\alpha)^{2t}\mathcal L_0",
        [r"linearised dynamics $r_{t+1} = (I - \eta\Theta_G) r_t$", r"isotropy $\Theta_G = \alpha I$, $\alpha > 0$",
         r"$\mathcal L = \|r\|^2/(2N)$"],
    )
    d.add_step("isotropic update", r"(I - \eta\,\alpha I)\,r", r"(1-\eta\alpha)\,r", "generic 3-vector r",
               checker=lambda: _zero((sp.eye(3) - eta * alpha * sp.eye(3)) * vec0 - (1 - eta * alpha) * vec0))
    d.add_step("recurrence solved (rsolve)", r"r_t", residual, r"sympy.rsolve of $r_{t+1} = (1-\eta\alpha)r_t$, $r(0) = r_0$",
               checker=lambda: residual.subs(t, 0) == r0)
    d.add_step("induction step", residual.subs(t, t + 1), (1 - eta * alpha) * residual,
               "the closed form satisfies the recursion for symbolic t",
               checker=lambda: _zero(residual.subs(t, t + 1) - (1 - eta * alpha) * residual))
    vec_t = residual / r0 * vec0
    loss_t = (vec_t.T * vec_t)[0] / (2 * n_samples)
    loss_start = (vec0.T * vec0)[0] / (2 * n_samples)
    ratio = sp.simplify(loss_t / loss_start)
    d.add_step("train loss", r"\|r_t\|^2/(2N)", ratio * sp.Symbol(r"\|r_0\|^2/(2N)"),
               "every component shrinks by the same factor, the squared norm by its square",
               checker=lambda: _zero(loss_t - ratio * loss_start) and not ratio.has(*vec0),
               display=r"\frac{\|r_t\|^2}{2N} = " + sp.latex(ratio) + r"\, \frac{\|r_0\|^2}{2N}")
    d.conclusion = {"residual": residual, "loss": ratio * loss0}
    return _finish(d, check)


def learning_rate_derivation(check: bool = True) -> Derivation:
    r"""``eta* = 1/alpha`` (one-step convergence) and stability iff ``0 < eta < 2/alpha``.

    ``q(eta) = L_1/L_0`` from the residual derivation; its unique stationary point (``solve``) is
    a minimum with ``q = 0``.  The stable set ``|1 - eta alpha| < 1`` is solved by ``solveset``
    over the reals; at the boundary ``eta = 2/alpha`` the factor is ``-1`` (undamped oscillation),
    beyond it ``|factor| > 1`` (divergence).

    >>> learning_rate_derivation().conclusion["stable_interval"]
    Interval.open(0, 2/alpha)
    """
    base = isotropic_residual_derivation(check=False).conclusion
    ratio = sp.simplify(base["loss"].subs(t, 1) / loss0)
    factor = sp.simplify(base["residual"].subs(t, 1) / r0)
    stationary = sp.solve(sp.diff(ratio, eta), eta)
    eta_opt = stationary[0] if len(stationary) == 1 else None
    stable = sp.solveset(sp.Abs(factor) < 1, eta, sp.S.Reals)
    divergent = sp.solveset(sp.Abs(factor) > 1, eta, sp.Interval(0, sp.oo))
    d = Derivation(
        "Isotropic NGD: optimal and stable learning rates",
        r"\eta^* = 1/\alpha \text{ (one step)},\qquad \text{stable} \iff 0 < \eta < 2/\alpha",
        [r"$\Theta_G = \alpha I$ with $\alpha > 0$", r"linearised dynamics"],
    )
    d.add_step("one-step loss ratio", r"\mathcal L_1/\mathcal L_0", ratio, "t = 1 in the loss formula",
               checker=lambda: _zero(ratio - factor ** 2))
    d.add_step("unique stationary point", r"\frac{d}{d\eta}\frac{\mathcal L_1}{\mathcal L_0} = 0", sp.Eq(eta, eta_opt),
               "sympy.solve finds exactly one root",
               checker=lambda: eta_opt is not None and _zero(sp.diff(ratio, eta).subs(eta, eta_opt)))
    d.add_step("it is a minimum", sp.diff(ratio, eta, 2), 2 * alpha ** 2, "second derivative > 0",
               checker=lambda: _zero(sp.diff(ratio, eta, 2) - 2 * alpha ** 2) and (2 * alpha ** 2).is_positive)
    d.add_step("one-step convergence", base["residual"].subs(t, 1).subs(eta, eta_opt), 0,
               "at eta = 1/alpha the residual vanishes after one step")
    d.add_step("stable set (solveset)", r"\{\eta: |1-\eta\alpha| < 1\}", stable,
               "the residual contracts iff |1 - eta alpha| < 1",
               checker=lambda: isinstance(stable, sp.Interval) and stable.left == 0 and stable.left_open
               and stable.right_open and _zero(stable.right - 2 / alpha))
    d.add_step("boundary eta = 2/alpha", base["residual"].subs(eta, stable.right), (-1) ** t * r0,
               r"factor $-1$: $r_t = (-1)^t r_0$ oscillates with $|r_t| = |r_0|$, no decay",
               checker=lambda: _zero(factor.subs(eta, stable.right) + 1))
    d.add_step("divergence beyond", r"\{\eta \ge 0: |1-\eta\alpha| > 1\}", r"(2/\alpha, \infty)",
               "eta > 2/alpha blows the residual up geometrically",
               checker=lambda: divergent == sp.Interval.open(stable.right, sp.oo)
               or sp.simplify(divergent - sp.Interval.open(stable.right, sp.oo)) == sp.S.EmptySet)
    d.conclusion = {"one_step_ratio": ratio, "optimal_learning_rate": eta_opt, "stable_interval": stable}
    return _finish(d, check)


def test_prediction_derivation(check: bool = True) -> Derivation:
    r"""``f_t(x') = f_0(x') - (1 - (1 - eta alpha)^t)/alpha * Theta_G(x', X) r_0``.

    Unrolling ``f_{t+1}(x') = f_t(x') - eta Theta_G(x', X) r_t`` with the isotropic ``r_s`` gives the
    coefficient ``sum_{s<t} eta (1 - eta alpha)^s``, evaluated by ``sympy.summation``.

    >>> test_prediction_derivation().conclusion["coefficient"]
    (1 - (-alpha*eta + 1)**t)/alpha
    """
    base = isotropic_residual_derivation(check=False).conclusion["residual"]
    summand = eta * base.subs(t, s) / r0
    coefficient = sp.simplify(sp.summation(summand, (s, 0, t - 1)))
    K = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"k_{i}{j}", real=True))   # Theta_G(x', X), 2 test x 3 train
    rv = sp.Matrix(sp.symbols("r_0:3", real=True))
    f0 = sp.Matrix(sp.symbols("f_0:2", real=True))
    d = Derivation(
        "Isotropic NGD: test-point predictions",
        r"f_t(x') = f_0(x') - \frac{1-(1-\eta\alpha)^t}{\alpha}\,\Theta_G(x',X)\,r_0",
        [r"$f_{t+1}(x') = f_t(x') - \eta\,\Theta_G(x',X)\,r_t$ (linearised)", r"$r_t = (1-\eta\alpha)^t r_0$"],
    )
    d.add_step("geometric sum (summation)", sp.Sum(summand, (s, 0, t - 1)), coefficient,
               "sympy.summation; eta alpha > 0 excludes the ratio-1 branch",
               checker=lambda: not coefficient.has(sp.Piecewise, sp.Sum))
    d.add_step("recursion of the coefficient", coefficient.subs(t, t + 1) - coefficient, summand.subs(s, t),
               r"$c_{t+1} - c_t = \eta(1-\eta\alpha)^t$ and $c_0 = 0$",
               checker=lambda: _zero(coefficient.subs(t, t + 1) - coefficient - summand.subs(s, t))
               and coefficient.subs(t, 0) == 0)

    def unrolled() -> bool:
        f = f0
        for step in range(4):
            f = f - eta * K * (base.subs(t, step) / r0 * rv)
        return _zero(f - (f0 - coefficient.subs(t, 4) * K * rv))

    d.add_step("vector check at t = 4", r"f_4(x')\ \text{(unrolled)}", r"f_0 - c_4\,\Theta_G(x',X) r_0",
               "generic 2 x 3 cross-kernel and residual", checker=unrolled)
    d.add_step("at eta = 1/alpha", coefficient.subs(eta, 1 / alpha), 1 / alpha,
               r"for $t \ge 1$: $f_1(x') = f_0(x') - \Theta_G(x',X)r_0/\alpha$ (the kernel-regression predictor)",
               checker=lambda: _zero(coefficient.subs(eta, 1 / alpha).subs(t, 1) - 1 / alpha)
               and _zero(sp.simplify(coefficient.subs(eta, 1 / alpha).subs(t, t + 1)) - 1 / alpha))
    d.conclusion = {"coefficient": coefficient}
    return _finish(d, check)


def gd_derivation(check: bool = True) -> Derivation:
    r"""Plain GD, ``r_t = (I - eta Theta)^t r_0``, in the eigenbasis of ``Theta``.

    Per eigenvalue the factor ``(1 - eta lambda)^t`` (rsolve); stability ``0 < eta < 2/lambda``
    per eigenvalue (solveset), hence ``eta < 2/lambda_max`` overall; the best fixed step balances
    ``1 - eta lambda_min = eta lambda_max - 1``: ``eta = 2/(lambda_min + lambda_max)`` with rate
    ``(kappa - 1)/(kappa + 1)``; ``t = log(epsilon)/log(q)`` steps reach a residual ratio epsilon
    at rate q.

    >>> gd_derivation().conclusion["optimal_rate"]
    (kappa - 1)/(kappa + 1)
    """
    r = sp.Function("r")
    factor_t = sp.simplify(sp.rsolve(r(t + 1) - (1 - eta * lam) * r(t), r(t), {r(0): 1}))
    p = sp.Symbol("p", real=True)
    l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
    Q = _cayley_rotation(p)
    Lam = sp.diag(l1, l2)
    Theta = Q * Lam * Q.T

    def power(n):
        return Q * sp.diag(factor_t.subs({lam: l1, t: n}), factor_t.subs({lam: l2, t: n})) * Q.T

    stable_one = sp.solveset(sp.Abs(factor_t.subs(t, 1)) < 1, eta, sp.S.Reals)
    gap = sp.Symbol("delta", positive=True)
    eta_opt_list = sp.solve(sp.Eq(factor_t.subs({t: 1, lam: lam_min}), -factor_t.subs({t: 1, lam: lam_max})), eta)
    eta_opt = eta_opt_list[0]
    opt_rate = sp.simplify(factor_t.subs({t: 1, lam: lam_min, eta: eta_opt}))
    rate_kappa = sp.simplify(opt_rate.subs(lam_max, kappa * lam_min))
    steps = sp.solve(sp.Eq(rate ** t, tolerance), t)
    tt = sp.Symbol("t", positive=True)
    steps_expr = sp.solve(sp.Eq(rate ** tt, tolerance), tt)[0]
    d = Derivation(
        "Gradient descent for contrast",
        r"r_t = Q(I-\eta\Lambda)^tQ^Tr_0,\ \ 0<\eta<\frac{2}{\lambda_{\max}},\ \ "
        r"\eta^*=\frac{2}{\lambda_{\min}+\lambda_{\max}},\ \ \text{rate } \frac{\kappa-1}{\kappa+1}",
        [r"$\Theta = Q\Lambda Q^T$ symmetric positive definite", r"fixed learning rate $\eta$"],
    )
    d.add_step("per-eigenvalue factor (rsolve)", r"(1-\eta\lambda)^t", factor_t, "r(t+1) = (1 - eta lambda) r(t)",
               checker=lambda: _zero(factor_t.subs(t, t + 1) - (1 - eta * lam) * factor_t) and factor_t.subs(t, 0) == 1)
    d.add_step("eigenbasis induction step", r"(I-\eta\Theta)\,Q(I-\eta\Lambda)^tQ^T", r"Q(I-\eta\Lambda)^{t+1}Q^T",
               r"generic rational rotation $Q$ (Cayley, parameter $p$) and eigenvalues $\lambda_1$, $\lambda_2$",
               checker=lambda: _zero((sp.eye(2) - eta * Theta) * power(t) - power(t + 1)) and _zero(power(0) - sp.eye(2)))
    d.add_step("stable set per eigenvalue (solveset)", r"\{\eta: |1-\eta\lambda|<1\}", stable_one,
               "each eigen-component contracts iff 0 < eta < 2/lambda",
               checker=lambda: isinstance(stable_one, sp.Interval) and stable_one.left == 0
               and _zero(stable_one.right - 2 / lam))
    d.add_step("largest eigenvalue binds", sp.Symbol(r"2/\lambda_{\min} - 2/(\lambda_{\min}+\delta)"),
               sp.simplify(2 / lam_min - 2 / (lam_min + gap)),
               r"$2/\lambda$ decreases in $\lambda$, so the intersection over the spectrum is $(0, 2/\lambda_{\max})$",
               checker=lambda: bool(sp.simplify(stable_one.right.subs(lam, lam_min)
                                                - stable_one.right.subs(lam, lam_min + gap)).is_positive))
    d.add_step("balanced step", r"1-\eta\lambda_{\min} = \eta\lambda_{\max}-1", sp.Eq(eta, eta_opt),
               "sympy.solve: the unique eta where the extreme factors have equal magnitude",
               checker=lambda: len(eta_opt_list) == 1)
    d.add_step("it minimises the worst factor", r"\max(|1-\eta\lambda_{\min}|, |1-\eta\lambda_{\max}|)",
               r"\text{decreasing for } \eta<\eta^*, \text{ increasing for } \eta>\eta^*",
               r"below $\eta^*$ the max is $1-\eta\lambda_{\min}$ (slope $-\lambda_{\min}$), "
               r"above it $\eta\lambda_{\max}-1$ (slope $\lambda_{\max}$)",
               checker=lambda: bool(sp.simplify((1 - eta_opt * lam_min) - (eta_opt * lam_max - 1)) == 0)
               and bool((-lam_min).is_negative) and bool(lam_max.is_positive))
    d.add_step("optimal rate", opt_rate, rate_kappa, r"with $\kappa = \lambda_{\max}/\lambda_{\min}$",
               checker=lambda: _zero(opt_rate.subs(lam_max, kappa * lam_min) - rate_kappa))
    d.add_step("steps to a tolerance (solve)", r"q^t = \epsilon", sp.Eq(t, steps_expr),
               "t = log(epsilon)/log(q); round up to an integer",
               checker=lambda: _zero(rate ** steps_expr - tolerance) and len(steps) == 1)
    d.conclusion = {"factor": factor_t, "stable_interval_per_eigenvalue": stable_one,
                    "stable_upper": stable_one.right.subs(lam, lam_max), "optimal_learning_rate": eta_opt,
                    "optimal_rate": rate_kappa, "steps": steps_expr}
    return _finish(d, check)


def damped_ngd_derivation(check: bool = True) -> Derivation:
    r"""Damped exact NGD: ``Theta_G = Theta (Theta + rho I)^{-1}``, factors ``1 - eta lambda/(lambda + rho)``.

    Push-through turns ``J (J^T J/N + rho I)^{-1} J^T / N`` into ``Theta (Theta + rho I)^{-1}``; in the
    eigenbasis each eigenvalue maps to ``lambda/(lambda + rho)``, a strictly increasing map for
    ``rho > 0``, so ``Theta_G`` is a multiple of I only if every lambda is the same.

    >>> damped_ngd_derivation().conclusion["factor"]
    -eta*lambda/(lambda + rho) + 1
    """
    J = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"j_{i}{j}", real=True))
    Nsym = n_samples
    theta = J * J.T / Nsym
    p = sp.Symbol("p", real=True)
    l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
    Q = _cayley_rotation(p)
    Th = Q * sp.diag(l1, l2) * Q.T
    eig_map = lam / (lam + rho)
    iso = isotropic_residual_derivation(check=False).conclusion["residual"]
    factor = sp.expand(iso.subs(t, 1) / r0).subs(alpha, eig_map)
    d = Derivation(
        "Damped exact NGD is not isotropic",
        r"\Theta_G = \Theta(\Theta+\rho I)^{-1},\quad "
        r"r_{t+1} = Q\,\mathrm{diag}\!\left(1-\eta\tfrac{\lambda_i}{\lambda_i+\rho}\right)Q^T r_t",
        [r"exact Fisher $F = J^TJ/N$, damping $\rho > 0$", r"$\Theta = JJ^T/N = Q\Lambda Q^T$"],
    )
    d.add_step("push-through (cleared)", r"(J^TJ/N + \rho I)\,J^T", r"J^T\,(JJ^T/N + \rho I)",
               r"so $J(J^TJ/N + \rho I)^{-1}J^T/N = \Theta(\Theta+\rho I)^{-1}$ (generic $2\times 3$ $J$)",
               checker=lambda: all(sp.expand(e) == 0 for e in
                                   (J.T * J / Nsym + rho * sp.eye(3)) * J.T - J.T * (theta + rho * sp.eye(2))))
    d.add_step("eigenbasis", r"\Theta(\Theta+\rho I)^{-1}",
               r"Q\,\mathrm{diag}\!\left(\tfrac{\lambda_i}{\lambda_i+\rho}\right)Q^T",
               "generic rational rotation Q and eigenvalues",
               checker=lambda: _zero(Th * (Th + rho * sp.eye(2)).inv()
                                     - Q * sp.diag(eig_map.subs(lam, l1), eig_map.subs(lam, l2)) * Q.T))
    def eigenpair() -> bool:
        # (I - eta Theta_G) Q e_1 = factor(lambda_1) Q e_1: the factor is the one-step eigenvalue
        step = sp.eye(2) - eta * Th * (Th + rho * sp.eye(2)).inv()
        q1 = Q[:, 0]
        return _zero(step * q1 - factor.subs(lam, l1) * q1)

    d.add_step("per-eigenvalue factor", r"(I-\eta\Theta_G)\,q_i", sp.Mul(factor, sp.Symbol("q_i"), evaluate=False),
               r"eigenvector $q_i$ of $\Theta$: the isotropic factor with $\alpha \to \lambda_i/(\lambda_i+\rho)$",
               checker=eigenpair)
    d.add_step("strictly increasing", sp.diff(eig_map, lam), rho / (lam + rho) ** 2,
               "positive for rho > 0: distinct lambda give distinct factors, so isotropy needs equal eigenvalues",
               checker=lambda: _zero(sp.diff(eig_map, lam) - rho / (lam + rho) ** 2)
               and bool((rho / (lam + rho) ** 2).is_positive))
    d.add_step("undamped limit", sp.Limit(eig_map, rho, 0, "+"), 1, "rho -> 0+ recovers exact NGD, alpha = 1",
               checker=lambda: sp.limit(eig_map, rho, 0, "+") == 1)
    d.conclusion = {"factor": factor, "eigenvalue_map": eig_map}
    return _finish(d, check)


DERIVATIONS = (isotropic_residual_derivation, learning_rate_derivation, test_prediction_derivation,
               gd_derivation, damped_ngd_derivation)


def all_dynamics(check: bool = True) -> List[Derivation]:
    """Every dynamics derivation (checked unless ``check=False``).

    The checked list is computed once per process and shared: treat it as read-only.

    >>> [d.title for d in all_dynamics(check=False)][0]
    'Isotropic NGD: train residual and loss'
    """
    if check:
        return list(_checked_derivations())
    return [f(check=False) for f in DERIVATIONS]


@functools.lru_cache(maxsize=1)
def _checked_derivations():
    return tuple(f(check=True) for f in DERIVATIONS)


# ---------------------------------------------------------------------------------------------
# The derived results, and numeric evaluators made from them by lambdify
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DynamicsResults:
    """The SymPy results of the derivations (all verified before being handed out)."""

    residual: sp.Expr              # r_t in (eta, alpha, t, r_0)
    loss: sp.Expr                  # L_t in (eta, alpha, t, L_0)
    one_step_ratio: sp.Expr        # L_1 / L_0
    optimal_learning_rate: sp.Expr
    stable_interval: sp.Interval
    test_coefficient: sp.Expr      # (1 - (1 - eta alpha)^t)/alpha
    gd_factor: sp.Expr             # (1 - eta lambda)^t
    gd_stable_upper: sp.Expr       # 2 / lambda_max
    gd_optimal_learning_rate: sp.Expr
    gd_optimal_rate: sp.Expr       # in kappa
    steps_to_tolerance: sp.Expr    # in q, epsilon
    damped_factor: sp.Expr         # one-step factor per eigenvalue, in (eta, lambda, rho)


@functools.lru_cache(maxsize=1)
def dynamics_results() -> DynamicsResults:
    """Run and check every derivation once; return the results (cached).

    Raises ``RuntimeError`` naming the failed steps if any derivation does not check -- the
    numeric helpers never evaluate an unverified formula.
    """
    ders = all_dynamics(check=True)
    bad = [(d.title, s.name, s.detail) for d in ders for s in d.failed_steps()]
    if bad:
        raise RuntimeError(f"dynamics derivation steps failed: {bad}")
    iso, lr, test, gd, damped = (d.conclusion for d in ders)
    return DynamicsResults(
        residual=iso["residual"], loss=iso["loss"], one_step_ratio=lr["one_step_ratio"],
        optimal_learning_rate=lr["optimal_learning_rate"], stable_interval=lr["stable_interval"],
        test_coefficient=test["coefficient"], gd_factor=gd["factor"], gd_stable_upper=gd["stable_upper"],
        gd_optimal_learning_rate=gd["optimal_learning_rate"], gd_optimal_rate=gd["optimal_rate"],
        steps_to_tolerance=gd["steps"], damped_factor=damped["factor"],
    )


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
    """numpy functions lambdified from the derived expressions."""
    R = dynamics_results()
    table = {
        "loss": ((loss0, eta, alpha, t), R.loss),
        "residual_factor": ((eta, alpha, t), R.residual / r0),
        "one_step_ratio": ((eta, alpha), R.one_step_ratio),
        "optimal_learning_rate": ((alpha,), R.optimal_learning_rate),
        "stable_left": ((alpha,), R.stable_interval.left),
        "stable_right": ((alpha,), R.stable_interval.right),
        "test_coefficient": ((eta, alpha, t), R.test_coefficient),
        "gd_factor": ((eta, lam, t), R.gd_factor),
        "gd_stable_upper": ((lam_max,), R.gd_stable_upper),
        "gd_optimal_learning_rate": ((lam_min, lam_max), R.gd_optimal_learning_rate),
        "gd_optimal_rate": ((kappa,), R.gd_optimal_rate),
        "steps_to_tolerance": ((rate, tolerance), R.steps_to_tolerance),
        "damped_factor": ((eta, lam, rho), R.damped_factor),
    }
    args, expr = table[name]
    return sp.lambdify(args, expr, modules="numpy")


def _positive(name: str, value) -> float:
    return check_nonnegative(name, value, allow_zero=False)


def _steps(value) -> int:
    return check_positive_int("steps", value, minimum=0)


# Parameter names follow the paper (eta, alpha, r0, t, ...): inside these helpers they are numbers
# and shadow the module-level SymPy symbols of the same names, which only the derivations use.


def predicted_train_losses(loss0, eta, alpha, steps) -> np.ndarray:
    """``L_t = (1 - eta alpha)^{2t} L_0`` for ``t = 0 .. steps`` (isotropic NGD).

    >>> predicted_train_losses(1.0, 1.0, 1.0, 2).tolist()    # eta = 1/alpha: zero after one step
    [1.0, 0.0, 0.0]
    """
    L0 = check_nonnegative("loss0", loss0)
    e, a = _positive("eta", eta), _positive("alpha", alpha)
    ts = np.arange(_steps(steps) + 1)
    return np.asarray(_compiled("loss")(L0, e, a, ts), dtype=float) * np.ones(ts.size)


def predicted_residuals(r0, eta, alpha, steps) -> np.ndarray:
    """``r_t = (1 - eta alpha)^t r_0`` for ``t = 0 .. steps``; shape ``(steps + 1,) + r0.shape``.

    >>> predicted_residuals(np.array([2.0, -1.0]), 0.5, 1.0, 2).tolist()
    [[2.0, -1.0], [1.0, -0.5], [0.5, -0.25]]
    """
    r = np.asarray(r0, dtype=float)
    if not np.all(np.isfinite(r)):
        raise ValueError("r0 contains a non-finite value")
    e, a = _positive("eta", eta), _positive("alpha", alpha)
    ts = np.arange(_steps(steps) + 1)
    factors = np.asarray(_compiled("residual_factor")(e, a, ts), dtype=float) * np.ones(ts.size)
    return factors.reshape((-1,) + (1,) * r.ndim) * r


def predicted_test_outputs(f0_test, theta_g_test, r0, eta, alpha, t) -> np.ndarray:
    """``f_t(x') = f_0(x') - (1 - (1 - eta alpha)^t)/alpha * Theta_G(x', X) r_0``.

    ``f0_test`` is (N2, C) or (N2*C,), ``theta_g_test`` is (N2*C, N*C), ``r0`` (N, C) or (N*C,); stacked
    vectors are sample-major (row-major ravel).  The result has the shape of ``f0_test``.

    >>> predicted_test_outputs(np.zeros(1), np.array([[2.0]]), np.array([1.0]), 0.5, 2.0, 1).tolist()
    [-1.0]
    """
    f0 = np.asarray(f0_test, dtype=float)
    K = check_matrix("theta_g_test", theta_g_test)
    r = np.asarray(r0, dtype=float).ravel()
    if K.shape != (f0.size, r.size):
        raise ValueError(f"theta_g_test has shape {K.shape}; expected (f0_test.size, r0.size) = {(f0.size, r.size)}")
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(r))):
        raise ValueError("f0_test or r0 contains a non-finite value")
    e, a = _positive("eta", eta), _positive("alpha", alpha)
    coefficient = float(_compiled("test_coefficient")(e, a, check_positive_int("t", t, minimum=0)))
    return (f0.ravel() - coefficient * (K @ r)).reshape(f0.shape)


def _symmetric(name: str, M) -> np.ndarray:
    M = check_matrix(name, M)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"{name} must be square, got shape {M.shape}")
    asym = float(np.max(np.abs(M - M.T)))
    scale = float(np.max(np.abs(M))) or 1.0
    if asym > 1e-12 * scale * M.shape[0]:
        raise ValueError(f"{name} must be symmetric: max |M - M^T| = {asym:.3g} (scale {scale:.3g})")
    return M


def gd_predicted_residuals(Theta, r0, eta, steps) -> np.ndarray:
    """``r_t = (I - eta Theta)^t r_0 = Q diag((1 - eta lambda_i)^t) Q^T r_0`` for ``t = 0 .. steps``.

    One ``eigh`` of the symmetric ``Theta``; returns shape ``(steps + 1, n)``.

    >>> gd_predicted_residuals(np.diag([1.0, 3.0]), np.ones(2), 0.5, 1).tolist()
    [[1.0, 1.0], [0.5, -0.5]]
    """
    Th = _symmetric("Theta", Theta)
    r = np.asarray(r0, dtype=float).ravel()
    if r.size != Th.shape[0]:
        raise ValueError(f"r0 has {r.size} entries, Theta is {Th.shape[0]} x {Th.shape[0]}")
    if not np.all(np.isfinite(r)):
        raise ValueError("r0 contains a non-finite value")
    e = _positive("eta", eta)
    lams, Q = np.linalg.eigh(Th)
    ts = np.arange(_steps(steps) + 1)
    factors = np.asarray(_compiled("gd_factor")(e, lams[None, :], ts[:, None]), dtype=float)
    return (factors * (Q.T @ r)[None, :]) @ Q.T


def one_step_loss_ratio(eta, alpha) -> float:
    """``L_1 / L_0 = (1 - eta alpha)^2``.

    >>> one_step_loss_ratio(0.5, 1.0)
    0.25
    """
    return float(_compiled("one_step_ratio")(_positive("eta", eta), _positive("alpha", alpha)))


def optimal_learning_rate(alpha) -> float:
    """``eta* = 1/alpha`` (one-step convergence).

    >>> optimal_learning_rate(4.0)
    0.25
    """
    return float(_compiled("optimal_learning_rate")(_positive("alpha", alpha)))


def stable_learning_rate_interval(alpha) -> Tuple[float, float]:
    """The open interval ``(0, 2/alpha)`` of learning rates for which the residual contracts.

    >>> stable_learning_rate_interval(1.0)
    (0.0, 2.0)
    """
    a = _positive("alpha", alpha)
    return float(_compiled("stable_left")(a)), float(_compiled("stable_right")(a))


def _spectrum(theta_or_eigenvalues) -> np.ndarray:
    arr = np.asarray(theta_or_eigenvalues, dtype=float)
    lams = np.linalg.eigvalsh(_symmetric("Theta", arr)) if arr.ndim == 2 else arr.ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)):
        raise ValueError("the spectrum must be non-empty and finite")
    if lams.min() <= 0:
        cond = float("inf") if lams.min() == 0 else float(lams.max() / abs(lams.min()))
        raise ValueError(f"Theta must be positive definite for GD rates: smallest eigenvalue {lams.min():.3g} "
                         f"(condition number {cond:.3g})")
    return lams


def gd_stable_learning_rate_bound(theta_or_eigenvalues) -> float:
    """``2 / lambda_max``: GD contracts iff ``0 < eta < 2/lambda_max``.

    >>> gd_stable_learning_rate_bound([1.0, 4.0])
    0.5
    """
    return float(_compiled("gd_stable_upper")(_spectrum(theta_or_eigenvalues).max()))


def gd_optimal_learning_rate(theta_or_eigenvalues) -> float:
    """``2/(lambda_min + lambda_max)``, the fixed step minimising the worst per-eigenvalue factor.

    >>> gd_optimal_learning_rate([1.0, 3.0])
    0.5
    """
    lams = _spectrum(theta_or_eigenvalues)
    return float(_compiled("gd_optimal_learning_rate")(lams.min(), lams.max()))


def gd_convergence_rate(theta_or_eigenvalues) -> float:
    """``(kappa - 1)/(kappa + 1)`` with ``kappa = lambda_max/lambda_min``: the residual factor per step
    at the optimal fixed learning rate.

    >>> gd_convergence_rate([1.0, 3.0])
    0.5
    """
    lams = _spectrum(theta_or_eigenvalues)
    return float(_compiled("gd_optimal_rate")(lams.max() / lams.min()))


def steps_to_tolerance(rate_value, tol) -> int:
    """Smallest integer ``t >= 1`` with ``rate^t <= tol``: ``ceil(log(tol)/log(rate))`` from the GD
    derivation (``0`` if ``tol >= 1``: already there); a zero rate (NGD at ``eta = 1/alpha``) needs one step.

    >>> steps_to_tolerance(0.5, 1e-3), steps_to_tolerance(0.0, 1e-12)
    (10, 1)
    """
    q = check_nonnegative("rate", rate_value)
    e = check_nonnegative("tol", tol, allow_zero=False)
    if q >= 1:
        raise ValueError(f"rate={q} is not allowed: a residual factor >= 1 never reaches a tolerance (need 0 <= rate < 1)")
    if e >= 1:
        return 0
    if q == 0:
        return 1
    raw = float(_compiled("steps_to_tolerance")(q, e))
    n = int(np.ceil(raw - 1e-9 * max(1.0, raw)))  # guard against log rounding at exact powers
    return max(n, 1)


def damped_ngd_factors(eigenvalues, eta, damping) -> np.ndarray:
    """Per-eigenvalue one-step factors ``1 - eta lambda/(lambda + rho)`` of damped exact NGD.

    >>> damped_ngd_factors([1.0, 3.0], 1.0, 1.0).tolist()
    [0.5, 0.25]
    """
    lams = np.asarray(eigenvalues, dtype=float).ravel()
    if lams.size == 0 or not np.all(np.isfinite(lams)) or lams.min() < 0:
        raise ValueError(f"eigenvalues must be finite and >= 0, got min {lams.min() if lams.size else 'none'}")
    e = _positive("eta", eta)
    r = _positive("damping", damping)
    return np.asarray(_compiled("damped_factor")(e, lams, r), dtype=float) * np.ones(lams.size)
