"""Shared builders of finite-width evidence for the NGD claims (``proofs/claims/ngd_*.py``).

Every function here measures something on REAL finite networks (``numerics``) and puts it next to
the prediction of the theory (``theory``); the claim modules only choose configurations and
tolerances and turn the measurements into verdicts.

The measurements:

* :func:`isotropy_error` -- ``||Theta_G - a I||_F / ||a I||_F`` with ``a`` the mean diagonal of the
  measured function-space operator ``Theta_G = J G^+ J^T / N``;
* :func:`isotropy_sweep` -- that error over a width sweep with the fitted log-log slope;
* :func:`one_step` / :func:`training_sweep` -- real NGD steps and their residual against the
  linearised prediction ``r_1 = (1 - eta alpha) r_0``, over widths, with test outputs against the
  analytic predictor;
* :func:`analytic_test_operator` -- the infinite-width test kernel ``Theta_G(x', X)`` of each
  approximation from the analytic kernels (used to predict test losses);
* :func:`predicted_losses` / :func:`loss_curves` -- train/test loss per step, measured vs predicted;
* :func:`eta_scan` -- one-step loss ratio vs ``eta / eta*``.

Verdicts are computed by the claims with :mod:`proofs.verdicts` (``compare``, ``sweep``, ``combine``).

Conventions (:mod:`proofs.conventions`): loss ``sum_n ||r_n||^2 / (2N)``, residual ``r = f - Y``
stacked sample-major, ``alpha`` from :func:`theory.isotropy.isotropy_constant` (derived, not a table).

>>> import numpy as np
>>> isotropy_error(3.0 * np.eye(4))
IsotropyError(error=0.0, alpha=3.0)
>>> loss(np.array([[1.0], [-1.0]]))
0.5
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from numerics.measure import WidthSweep, isotropy_error
from numerics.training import ngd_step
from numerics.sweeps import PowerLawFit
from theory.metrics import relative_error

__all__ = [
    "loss", "unit_sphere_inputs", "sign_targets", "relative_residual_change", "progress", "make_net",
    "approximation", "measurement_options", "MEASUREMENT_OPTIONS", "measured_operator", "predicted_alpha", "WidthSweep", "ISOTROPY", "isotropy_sweep",
    "one_step", "pattern_matrix", "analytic_test_operator", "predicted_outputs", "train_steps",
    "predicted_losses", "loss_curve_series", "eta_scan", "spectrum_series", "TrainingSweep",
    "training_budget", "LINEARISATION", "TEST_ERROR", "training_sweep", "Task", "synthetic_task"
]

# ---------------------------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------------------------


def loss(residual: np.ndarray) -> float:
    """Mean-squared loss of a residual ``(N, C)``: ``sum_n ||r_n||^2 / (2N)``.

    >>> loss(np.ones((4, 2)))
    1.0
    """
    r = np.asarray(residual, dtype=float)
    if r.ndim == 1:
        r = r[:, None]
    return float(np.sum(r * r) / (2.0 * r.shape[0]))


def unit_sphere_inputs(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` i.i.d. points uniform on the unit sphere of ``R^dim`` (the authors normalise inputs to norm 1).

    >>> X = unit_sphere_inputs(np.random.default_rng(0), 5, 3)
    >>> X.shape, bool(np.allclose(np.linalg.norm(X, axis=1), 1))
    ((5, 3), True)
    """
    X = rng.standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def sign_targets(rng: np.random.Generator, n: int, n_outputs: int = 1) -> np.ndarray:
    """Targets ``+-0.5`` (the authors' binary labels), shape ``(n, n_outputs)``.

    >>> sorted(set(sign_targets(np.random.default_rng(0), 20).ravel().tolist()))
    [-0.5, 0.5]
    """
    return rng.choice(np.array([-0.5, 0.5]), size=(n, n_outputs))


def relative_residual_change(r0: np.ndarray, r1: np.ndarray, factor: float) -> float:
    """``||r_1 - factor * r_0|| / ||r_0||``: the deviation of a real step from the linear prediction.

    >>> relative_residual_change(np.ones(4), 0.5 * np.ones(4), 0.5)
    0.0
    """
    r0, r1 = np.ravel(r0), np.ravel(r1)
    return float(np.linalg.norm(r1 - factor * r0) / np.linalg.norm(r0))


def as_float(value) -> float:
    """A SymPy number (or plain number) as a Python float."""
    return float(value)


# ---------------------------------------------------------------------------------------------
# networks and operators
# ---------------------------------------------------------------------------------------------


def progress(cfg, iterable, desc: str):
    """Wrap a sweep in the framework's progress bar (:func:`proofs.progress.progress`)."""
    from proofs.progress import progress as framework_progress

    return framework_progress(iterable, cfg, desc)


def make_net(cfg, key: Sequence, widths: Sequence[int], activation: str = "relu",
             sigma_w2: float = 2.0, sigma_b2: float = 0.0):
    """An :class:`numerics.network.MLP` seeded by ``cfg.sub_seed(*key, widths)``."""
    from numerics.network import MLP

    return MLP(list(widths), activation=activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2,
               seed=cfg.sub_seed(*key, "net", *widths))


#: Options every measurement of the verifier passes, per approximation, unless the caller sets them.
#: Block tri-diagonal: the library's fast path at rho = 0 (``numerics.approximations.block_tridiagonal``)
#: solves ``v_l = c_l K_l^{-1} r`` with ``c = T^{-1} 1`` -- the very formula the claims check -- so a claim
#: measured through it would be true by construction (alpha = 1^T c, frozen layers exactly zero, the naive
#: test kernel).  Claims measure through the general pattern system ``K^{-1/2} M^+ K^{1/2}`` instead; the fast
#: path is tested against it and against the dense P x P definition (tests/numerics).
MEASUREMENT_OPTIONS = {"block_tridiagonal": {"dual_form": "pattern_system"}}


def measurement_options(name: str, options: Optional[dict] = None) -> dict:
    """``options`` on top of :data:`MEASUREMENT_OPTIONS` for approximation ``name`` (the caller's win).

    >>> measurement_options("block_tridiagonal"), measurement_options("kfac", {"forster": True})
    ({'dual_form': 'pattern_system'}, {'forster': True})
    """
    return {**MEASUREMENT_OPTIONS.get(name, {}), **(options or {})}


def approximation(net, X, name: str, damping: float = 0.0, **options):
    """The numerics approximation object ``name`` at the net's current parameters, built with the verifier's
    :func:`measurement_options`."""
    from numerics.approximations import get_approximation

    return get_approximation(name)(net, X, damping=damping, **measurement_options(name, options))


def measured_operator(net, X, name: str, damping: float = 0.0, X2=None, **options) -> np.ndarray:
    """Measured ``Theta_G(X2, X) = J(X2) (G + rho I)^{-1} J(X)^T / N`` (train x train if ``X2`` is None)."""
    return approximation(net, X, name, damping, **options).operator(X2)


def predicted_alpha(name: str, depth: int, **kwargs) -> float:
    """``alpha`` derived by :func:`theory.isotropy.isotropy_constant` (raises ``NotIsotropic``)."""
    from theory.isotropy import isotropy_constant

    return as_float(isotropy_constant(name, depth, **kwargs))


# ---------------------------------------------------------------------------------------------
# width sweeps
# ---------------------------------------------------------------------------------------------


ISOTROPY = "isotropy error"


def isotropy_sweep(cfg, key: Sequence, name: str, X: np.ndarray, widths: Sequence[int], depth: int,
                   n_outputs: int = 1, activation: str = "relu", sigma_w2: float = 2.0,
                   sigma_b2: float = 0.0, damping: float = 0.0, budget=None, expected_slope: float = -0.5,
                   final_tolerance: Optional[float] = None, **options) -> WidthSweep:
    """Isotropy error of the measured operator over hidden widths ``widths`` (all hidden layers equal),
    judged as "-> 0 like ``M^expected_slope``" by an adaptive sweep (:mod:`proofs.adaptive`;
    ``budget`` default: one initialisation per width, no more).  ``.parts`` holds the sub-verdict
    (name :data:`ISOTROPY`), ``.errors`` the per-width means, ``extra["alpha"]`` the mean diagonal
    ``a`` of replicate 0.  Network ``(width, replicate)`` is seeded from those coordinates only, so in a
    distributed run each ``(width, replicate)`` point can be a Dask task (:mod:`proofs.distributed`;
    ``measure`` captures ``cfg``, ``key`` and ``X``, shipped with each task) with the serial numbers.
    """
    from proofs.adaptive import Budget, SweepSpec, adaptive_sweep

    def measure(m: int, rep: int) -> dict:
        net = make_net(cfg, (*key, name, rep) if rep else (*key, name),
                       [X.shape[1]] + [m] * (depth - 1) + [n_outputs], activation, sigma_w2, sigma_b2)
        err, a = isotropy_error(measured_operator(net, X, name, damping, **options))
        return {ISOTROPY: err, "alpha": a}

    run = adaptive_sweep(measure, widths, [SweepSpec(ISOTROPY, expected_slope, final_tolerance)],
                         budget or Budget(1, 1),
                         progress=lambda it, desc: progress(cfg, it, f"{name}: isotropy sweep, {desc}"))
    return WidthSweep(f"isotropy error of {name}", run.widths, run.mean_errors(ISOTROPY), run.part(ISOTROPY).fit,
                      {"alpha": [run.records[(m, 0)]["alpha"] for m in run.widths]}, run)


def one_step(net, X: np.ndarray, Y: np.ndarray, name: str, learning_rate: float,
             damping: float = 0.0, **options) -> dict:
    """One REAL NGD step ``theta <- theta - eta (G + rho I)^{-1} grad`` on ``net`` (modified in place).

    Returns the residuals before/after (``r0``, ``r1``), the losses, and the per-layer parameter
    change norms ``||theta_l' - theta_l||`` next to ``||theta_l||``.
    """
    before = [p.copy() for p in net.params]
    r0 = ngd_step(net, X, Y, name, learning_rate, damping, **measurement_options(name, options)).factors.outputs - Y
    r1 = net.forward(X) - Y
    return {"r0": r0, "r1": r1, "loss0": loss(r0), "loss1": loss(r1),
            "layer_change": [float(np.linalg.norm(p - b)) for p, b in zip(net.params, before)],
            "layer_norm": [float(np.linalg.norm(b)) for b in before]}


# ---------------------------------------------------------------------------------------------
# infinite-width predictions
# ---------------------------------------------------------------------------------------------


def _kernels(X, X2, depth, activation, sigma_w2, sigma_b2):
    from theory.kernels import analytic_kernels

    return analytic_kernels(X, X2, depth=depth, activation=activation, sigma_w2=sigma_w2,
                            sigma_b2=sigma_b2)


def pattern_matrix(name: str, depth: int, pattern=None) -> np.ndarray:
    """The L x L block pattern of a layer-wise approximation (from :mod:`theory.patterns`).

    >>> pattern_matrix("block_tridiagonal", 3).astype(int).tolist()
    [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    """
    from theory import patterns

    makers = {"exact": patterns.exact_pattern, "block_diagonal": patterns.block_diagonal_pattern,
              "block_tridiagonal": patterns.tridiagonal_pattern}
    if name == "pattern":
        S = patterns.validate_pattern(pattern)
    elif name in makers:
        S = makers[name](depth)
    else:
        raise ValueError(f"approximation={name!r} is not a block-pattern approximation: expected one of "
                         "'exact', 'block_diagonal', 'block_tridiagonal', 'pattern'")
    return np.array(S.tolist(), dtype=float)


def analytic_test_operator(name: str, X: np.ndarray, X_test: np.ndarray, depth: int,
                           activation: str = "relu", sigma_w2: float = 2.0, sigma_b2: float = 0.0,
                           pattern=None, **options) -> np.ndarray:
    """Infinite-width ``Theta_G(x', X)`` (``(N', N)``, C = 1) of approximation ``name``: the test kernel
    its theory registers (:func:`theory.registry.theory_entry`; block patterns: the min-norm pattern
    kernel on the analytic layer NTKs, with the null-space correction when the pattern is singular;
    K-FAC: the Hadamard product of the factor regressions).  ``ValueError`` when the theory of ``name``
    gives no test kernel.
    """
    from theory.registry import Setting, theory_entry

    entry = theory_entry(name)
    if entry.test_kernel is None:
        raise ValueError(f"approximation={name!r}: its theory ({entry.module}) registers no infinite-width test "
                         f"kernel")
    opts = dict(options)
    if pattern is not None:
        opts["pattern"] = pattern
    setting = Setting(depth=depth, activation=activation, options=opts)
    k_train = _kernels(X, None, depth, activation, sigma_w2, sigma_b2)
    k_cross = _kernels(X_test, X, depth, activation, sigma_w2, sigma_b2)
    return entry.test_kernel(k_train, k_cross, setting)


def predicted_outputs(f0_train: np.ndarray, f0_test: np.ndarray, Y: np.ndarray, train_operator,
                      test_operator: np.ndarray, learning_rate: float, steps: int):
    """Linearised dynamics: ``r_{t+1} = (I - eta Theta_G) r_t`` and
    ``f_t(x') = f_0(x') - eta Theta_G(x', X) sum_{s<t} r_s`` (C = 1 stacked vectors).

    ``train_operator`` may be a scalar ``alpha`` (isotropic case, ``Theta_G = alpha I``).  With it
    this is the paper's ``f_t(x') = f_0(x') - (1 - (1 - eta alpha)^t)/alpha Theta_G(x',X) r_0``.

    >>> tr, te = predicted_outputs(np.zeros((2, 1)), np.zeros((1, 1)), np.ones((2, 1)), 1.0,
    ...                            np.array([[0.5, 0.5]]), 1.0, 2)
    >>> [round(float(x), 12) for x in te[:, 0, 0]], [loss(r) for r in tr]
    ([0.0, 1.0, 1.0], [0.5, 0.0, 0.0])
    """
    r = f0_train - Y
    op = (train_operator * np.eye(r.shape[0])) if np.isscalar(train_operator) else np.asarray(train_operator)
    residuals, tests = [r], [f0_test]
    acc = np.zeros_like(r)
    for _ in range(steps):
        acc = acc + r
        r = r - learning_rate * (op @ r)
        residuals.append(r)
        tests.append(f0_test - learning_rate * (test_operator @ acc))
    return np.array(residuals), np.array(tests)


# ---------------------------------------------------------------------------------------------
# training runs: measured vs predicted losses per step
# ---------------------------------------------------------------------------------------------


def train_steps(net, X, Y, X_test, Y_test, name: str, learning_rate: float, steps: int,
                damping: float = 0.0, **options) -> dict:
    """``steps`` REAL NGD steps (the approximation recomputed at the current parameters each step).

    Returns ``train_loss``/``test_loss`` lists (index 0 = before the first step) and the initial
    outputs ``f0_train``/``f0_test`` the linearised prediction starts from.
    """
    f0_train, f0_test = net.forward(X), net.forward(X_test)
    train, test = [loss(f0_train - Y)], [loss(f0_test - Y_test)]
    for _ in range(steps):
        ngd_step(net, X, Y, name, learning_rate, damping, **options)
        train.append(loss(net.forward(X) - Y))
        test.append(loss(net.forward(X_test) - Y_test))
    return {"train_loss": train, "test_loss": test, "f0_train": f0_train, "f0_test": f0_test}


def predicted_losses(f0_train, f0_test, Y, Y_test, alpha: float, test_operator, learning_rate: float,
                     steps: int, train_operator=None) -> dict:
    """Predicted train/test loss per step from the linearised dynamics (:func:`predicted_outputs`),
    started from the network's own initial outputs (as the authors do); ``train_operator`` defaults
    to the isotropic ``alpha I``."""
    residuals, tests = predicted_outputs(f0_train, f0_test, Y,
                                         alpha if train_operator is None else train_operator,
                                         test_operator, learning_rate, steps)
    return {"train_loss": [loss(r) for r in residuals], "test_loss": [loss(t - Y_test) for t in tests]}


def loss_curve_series(name: str, measured: dict, predicted: dict, width: int, learning_rate: float) -> dict:
    """Figure data (schema of :mod:`proofs.figures`): train/test loss vs step, measured at ``width``
    and predicted (log y); the learning rate goes to ``data``."""
    from proofs.figures import figure_series, loss_curves

    steps = list(range(len(measured["train_loss"])))
    pred = {"train": predicted["train_loss"]}
    if np.all(np.isfinite(predicted["test_loss"])):  # no test predictor: no predicted test curve
        pred["test"] = predicted["test_loss"]
    curves = loss_curves(name, steps, {"train": measured["train_loss"], "test": measured["test_loss"]}, pred, width)
    return figure_series("loss_curves", curves, name=f"loss curves of {name}", xlabel="step", ylabel="loss",
                         logy=True, data={"learning_rate": float(learning_rate)})


def eta_scan(net_factory: Callable[[], Any], X, Y, name: str, alpha: float, factors: Sequence[float],
             damping: float = 0.0, **options) -> dict:
    """One real step at ``eta = factor / alpha`` for each factor, from the SAME initial network.

    Returns measured ``L_1/L_0`` and the isotropic prediction ``(1 - eta alpha)^2`` per factor
    (:func:`theory.dynamics.one_step_loss_ratio`, derived symbolically).
    """
    from theory.dynamics import one_step_loss_ratio

    measured, predicted = [], []
    for f in factors:
        step = one_step(net_factory(), X, Y, name, f / alpha, damping, **options)
        measured.append(step["loss1"] / step["loss0"])
        predicted.append(one_step_loss_ratio(f / alpha, alpha))
    return {"kind": "eta_scan", "approximation": name, "x": list(map(float, factors)),
            "xlabel": "eta / eta*", "ylabel": "L_1 / L_0", "logy": True,
            "measured": measured, "predicted": predicted}


def spectrum_series(name: str, operator: np.ndarray, width: int) -> dict:
    """Figure data: sorted eigenvalues of the symmetrised measured ``Theta_G`` (divided by nothing)."""
    from proofs.figures import figure_series, spectrum_curve

    op = np.asarray(operator, dtype=float)
    eig = np.sort(np.linalg.eigvals(op).real)[::-1]
    return figure_series("spectrum", [spectrum_curve(eig, approximation=name, width=int(width))],
                         name=f"spectrum of {name}", xlabel="index", ylabel="eigenvalue of Theta_G")


@dataclass
class TrainingSweep:
    """Real training at several widths against the linearised infinite-width prediction.

    ``linearisation``: width sweep of ``||r_1 - (1 - eta alpha) r_0|| / ||r_0||`` (train);
    ``test_error``: width sweep of ``||f_1(X') - f_1^pred(X')|| / ||f_1^pred(X') - f_0(X')||`` (test
    outputs after one step vs the analytic-kernel predictor, relative to the predicted change);
    ``curves``: per width the measured and predicted train/test losses per step.
    """

    name: str
    alpha: float
    learning_rate: float
    linearisation: WidthSweep
    test_error: Optional[WidthSweep]
    curves: Dict[int, dict]
    layer_change: Dict[int, List[float]]
    adaptive: Any = None  # proofs.adaptive.AdaptiveSweep: replicates, sub-verdicts, what was spent

    @property
    def parts(self) -> list:
        """The sweep sub-verdicts (linearisation, and test error when a test operator was given)."""
        return list(self.adaptive.parts) if self.adaptive is not None else []

    @property
    def spent(self) -> dict:
        return dict(self.adaptive.spent) if self.adaptive is not None else {}

    def curve_series(self, width: Optional[int] = None) -> dict:
        width = max(self.curves) if width is None else width
        c = self.curves[width]
        return loss_curve_series(self.name, c["measured"], c["predicted"], width, self.learning_rate)

    def table(self) -> List[dict]:
        """Rows ``{width, step, train, train_pred, test, test_pred}`` for reports."""
        rows = []
        for m, c in sorted(self.curves.items()):
            for t, (a, b) in enumerate(zip(c["measured"]["train_loss"], c["predicted"]["train_loss"])):
                rows.append({"width": m, "step": t, "train": a, "train_pred": b,
                             "test": c["measured"]["test_loss"][t], "test_pred": c["predicted"]["test_loss"][t]})
        return rows


def training_budget(cfg):
    """The evidence budget of the training sweeps (:class:`proofs.adaptive.Budget`): 4 initialisations
    per width, doubled up to 16 while undecided, then one wider net."""
    from proofs.adaptive import Budget

    return cfg.pick(Budget(4, 16, (4096,)), Budget(4, 16, (16384,)))


LINEARISATION = "one-step linearisation error"
TEST_ERROR = "test-output error vs analytic predictor"


def training_sweep(cfg, key: Sequence, name: str, X, Y, X_test, Y_test, widths: Sequence[int],
                   depth: int, alpha: float, learning_rate: float, steps: int,
                   test_operator: Optional[np.ndarray] = None, activation: str = "relu",
                   sigma_w2: float = 2.0, sigma_b2: float = 0.0, damping: float = 0.0, repeats: int = 1,
                   budget=None, test_tolerance: Optional[float] = None, test_rate: Optional[float] = -0.5,
                   **options) -> TrainingSweep:
    """At each hidden width and initialisation: one real NGD step at ``learning_rate`` (measured
    against ``r_1 = (1 - eta alpha) r_0``), test outputs against the predictor built from
    ``test_operator`` (``Theta_G(X', X)`` at infinite width; skipped when None).

    The sweep is adaptive (:func:`proofs.adaptive.adaptive_sweep`): ``budget`` (default
    ``Budget(repeats, repeats)``, i.e. fixed) says how many initialisations per width to start with,
    how far to double them and which wider nets to add while the verdicts of "linearisation error
    -> 0 like M^-1/2" and "test-output error -> 0 like M^-1/2, within ``test_tolerance`` at the
    widest width" are undecided (``test_rate=None``: "-> 0 within ``test_tolerance``", no rate asserted).
    ``.adaptive.parts`` holds those two sub-verdicts (names
    :data:`LINEARISATION` and :data:`TEST_ERROR`), ``.adaptive.spent`` what was spent.
    Network ``(width, replicate)`` is seeded from those coordinates only; the loss curves (``steps``
    real steps) are those of replicate 0.  In a distributed run (``--workers`` / ``--scheduler``) every
    ``(width, replicate)`` point of a round is a Dask task (:func:`proofs.adaptive.adaptive_sweep`,
    :mod:`proofs.distributed`): ``measure`` below is a closure over ``cfg``, the data and
    ``test_operator`` (``(N', N)``), pickled with each task -- or scattered once per round when it is
    large -- and returns only numbers and short lists, so a point task ships kilobytes, not a network.
    """
    from proofs.adaptive import Budget, SweepSpec, adaptive_sweep

    budget = budget or Budget(repeats=repeats, max_repeats=repeats)
    if depth >= 5:  # (L-1) hidden M x M layers: keep a net and its step well inside the machine's memory
        budget = Budget(budget.repeats, budget.max_repeats, tuple(w for w in budget.extra_widths if w <= 4096))

    def measure(m: int, rep: int) -> dict:
        net = make_net(cfg, (*key, name, "train", rep), [X.shape[1]] + [m] * (depth - 1) + [Y.shape[1]],
                       activation, sigma_w2, sigma_b2)
        f0_train, f0_test = net.forward(X), net.forward(X_test)
        first = one_step(net, X, Y, name, learning_rate, damping, **options)
        rec = {LINEARISATION: relative_residual_change(first["r0"], first["r1"], 1.0 - learning_rate * alpha)}
        f1_test = net.forward(X_test)
        if test_operator is not None:
            _, pred_tests = predicted_outputs(f0_train, f0_test, Y, alpha, test_operator, learning_rate, 1)
            change = np.linalg.norm(pred_tests[1] - f0_test)
            rec[TEST_ERROR] = float(np.linalg.norm(f1_test - pred_tests[1]) / change)
        if rep:
            return rec
        rec["layer_change"] = [c / n for c, n in zip(first["layer_change"], first["layer_norm"])]
        train, test = [first["loss0"], first["loss1"]], [loss(f0_test - Y_test), loss(f1_test - Y_test)]
        for _ in range(steps - 1):
            ngd_step(net, X, Y, name, learning_rate, damping, **options)
            train.append(loss(net.forward(X) - Y))
            test.append(loss(net.forward(X_test) - Y_test))
        op = test_operator if test_operator is not None else np.zeros((X_test.shape[0], X.shape[0]))
        predicted = predicted_losses(f0_train, f0_test, Y, Y_test, alpha, op, learning_rate, steps)
        if test_operator is None:
            predicted["test_loss"] = [float("nan")] * (steps + 1)
        rec["curves"] = {"measured": {"train_loss": train, "test_loss": test}, "predicted": predicted}
        return rec

    # Lee et al. 2019: one real step deviates from the linear one by O(M^-1/2); the test outputs carry
    # that and the O(M^-1/2) fluctuation of the empirical kernels
    specs = [SweepSpec(LINEARISATION, expected_slope=-0.5)]
    if test_operator is not None:
        specs.append(SweepSpec(TEST_ERROR, expected_slope=test_rate, final_tolerance=test_tolerance))
    run = adaptive_sweep(measure, widths, specs, budget,
                         progress=lambda it, desc: progress(cfg, it, f"{name}: training sweep, {desc}"))
    used = run.widths
    lin = WidthSweep(f"one-step linearisation error of {name}", used, run.mean_errors(LINEARISATION),
                     run.part(LINEARISATION).fit)
    test_sweep = (WidthSweep(f"test-output error of {name} vs analytic predictor", used, run.mean_errors(TEST_ERROR),
                             run.part(TEST_ERROR).fit) if test_operator is not None else None)
    curves = {m: run.records[(m, 0)]["curves"] for m in used}
    changes = {m: run.records[(m, 0)]["layer_change"] for m in used}
    return TrainingSweep(name, alpha, learning_rate, lin, test_sweep, curves, changes, run)


@dataclass(frozen=True)
class Task:
    """A synthetic regression task: unit-norm Gaussian inputs, targets +-0.5."""

    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def input_dim(self) -> int:
        return self.X.shape[1]


def synthetic_task(cfg, key: Sequence, n: int, dim: int, n_test: int = 8, n_outputs: int = 1) -> Task:
    """Inputs uniform on the unit sphere of ``R^dim``, targets ``+-0.5``; seeded by ``cfg.rng(*key)``.

    >>> from proofs.claim import RunConfig
    >>> t = synthetic_task(RunConfig(), ("doc",), 6, 4, 3)
    >>> t.X.shape, t.Y.shape, t.X_test.shape
    ((6, 4), (6, 1), (3, 4))
    """
    rng = cfg.rng(*key, "task", n, dim, n_test, n_outputs)
    return Task(unit_sphere_inputs(rng, n, dim), sign_targets(rng, n, n_outputs),
                unit_sphere_inputs(rng, n_test, dim), sign_targets(rng, n_test, n_outputs))
