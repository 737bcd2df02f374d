"""The authors' multi-class experiment on real images: scikit-learn's bundled digits, all 10 classes.

Setting (the multi-class defaults of the authors' code github.com/kazukiosawa/ngd_in_wide_nn, MNIST replaced by
the digits): the first ``n_train = 200`` digits (all ten classes) for training and the next ``n_test = 100`` for
testing, each subset standardised by its own scalar mean and standard deviation, rows scaled to unit norm
(:func:`proofs.experiments.digits.standardise_unit_norm`); one-hot targets (``C = 10``).  Depth 3, relu,
``sigma_w2 = 2``, no bias, width 2048 (``--full``; 1024 in ``--quick``).  Two losses:

* ``"mse"`` on the one-hot targets, ``eta = 1/alpha``: the prediction is the infinite-width linearised dynamics
  ``r_{t+1} = (1 - eta alpha) r_t`` with the approximation's analytic test kernel
  (:func:`proofs.evidence.analytic_test_operator`, applied to each of the C outputs);
* ``"cross_entropy"``, ``eta = c / alpha`` (``c = 1/10``): the prediction is the infinite-width linearised network
  under cross-entropy NGD (:func:`cross_entropy_prediction`): the train logits move by ``-eta Theta_G Pi (p - y)``
  -- modulo logit shifts the per-sample Newton step ``-c H^+ (p - y)`` -- and the test logits by
  ``-eta Theta_G(X', X) Pi (p - y)`` with the transformed analytic layer kernels ``S (Theta_l (x) I_C) S^T``
  (:mod:`theory.cross_entropy`), ``S`` re-evaluated at each predicted step.

Approximations with a theory constant (exact 1, block-diagonal L, block tri-diagonal ``1^T T^-1 1``; K-FAC
``M_0 + N(L-2) + 1`` on Forster inputs in the span of the data, full mode, where the hidden width 2048 exceeds
``N C = 2000``) are predicted as above; unit-wise, diagonal and EKFAC have none (not isotropic): their learning
rate is ``1 / mean eigenvalue`` (diagonal: ``#{F_pp > 0} / (N C')`` -- the trace of ``J diag(F)^+ J^T / N`` counts the
nonzero Fisher entries; EKFAC: the number of frame pairs / ``(N C')``, ``C' = C`` or ``C - 1``; unit-wise: the
asymptotic mean ``gamma sum M_l / C' + ...`` of :mod:`theory.unit_wise_theory` / :mod:`theory.cross_entropy`) and their
"prediction" is the isotropic model at that constant, which they are expected NOT to follow.

>>> data = load_digits_multiclass(n_train=20, n_test=10)
>>> data.X_train.shape, data.Y_train.shape, data.n_classes
((20, 64), (20, 10), 10)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from theory.validation import check_choice, check_positive_int

__all__ = ["MulticlassData", "load_digits_multiclass", "MulticlassRun", "run_multiclass", "cross_entropy_prediction",
           "APPROXIMATIONS", "QUICK_APPROXIMATIONS", "CE_STEP_FRACTION", "THEORY"]

APPROXIMATIONS = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal", "ekfac")
#: --quick: exact NGD under both losses at width 1024 (every run builds dual systems of N C = 2000 rows)
QUICK_APPROXIMATIONS = ("exact",)
#: approximations whose prediction comes from theory (the others: the isotropic model at the mean eigenvalue)
THEORY = ("exact", "block_diagonal", "block_tridiagonal", "kfac")
#: cross-entropy runs at eta = c / alpha.  From near-uniform outputs with C = 10 the Newton step moves the logits by
#: ~ c C: at c = 1/2 the real relu net leaves its linearisation (one-step deviation from the prediction 0.71 / 0.60
#: of the predicted move at widths 1024 / 2048, N = 200), at c = 1/10 it follows it (0.38 / 0.26, shrinking like
#: M^-1/2); no step size reaches one-hot targets anyway
CE_STEP_FRACTION = 0.1


@dataclass(frozen=True)
class MulticlassData:
    """Train/test inputs (unit-norm rows) and one-hot targets ``(n, 10)`` of the ten-class digits task."""

    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.Y_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def train_input_rank(self) -> int:
        return int(np.linalg.matrix_rank(self.X_train))

    def class_counts(self) -> Dict[str, List[int]]:
        return {"train": np.bincount(self.Y_train.argmax(1), minlength=10).tolist(),
                "test": np.bincount(self.Y_test.argmax(1), minlength=10).tolist()}


def load_digits_multiclass(n_train: int = 200, n_test: int = 100) -> MulticlassData:
    """The first ``n_train`` digits (every class) for training and the next ``n_test`` for testing, one-hot."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    from proofs.experiments.digits import standardise_unit_norm

    n_train, n_test = check_positive_int("n_train", n_train, 2), check_positive_int("n_test", n_test, 2)
    digits = load_digits()
    if n_train + n_test > digits.data.shape[0]:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {digits.data.shape[0]} digits")
    Y = np.eye(10)[digits.target]
    train, test = slice(0, n_train), slice(n_train, n_train + n_test)
    images = digits.data.astype(float)
    return MulticlassData(standardise_unit_norm(images[train]), Y[train], standardise_unit_norm(images[test]), Y[test])


@dataclass
class MulticlassRun:
    """One approximation and one loss on the digits: per step (index 0 = initialisation) measured and predicted
    train/test loss and accuracy; ``prediction`` names where the prediction comes from."""

    approximation: str
    loss: str
    alpha: float
    alpha_source: str
    learning_rate: float
    width: int
    train_loss: list
    test_loss: list
    train_accuracy: list
    test_accuracy: list
    predicted_train_loss: list
    predicted_test_loss: list
    predicted_train_accuracy: list
    predicted_test_accuracy: list
    prediction: str
    seconds: float
    #: after the first step: train (probabilities for cross-entropy, outputs for mse) and test outputs (logits)
    #: against the prediction, relative to the move the prediction makes; NaN where there is no prediction
    train_step_error: float = float("nan")
    test_output_error: float = float("nan")
    note: str = ""
    extra: Dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _centre(F: np.ndarray) -> np.ndarray:
    """Logits modulo the all-ones shift softmax cannot see: each row minus its mean."""
    return F - F.mean(axis=1, keepdims=True)


def _kron_eye(K: np.ndarray, c: int) -> np.ndarray:
    return np.kron(K, np.eye(c))


def _transformed(layer_train, layer_cross, S):
    """``S (Theta_l (x) I_C) S^T`` and ``(Theta_l(X', X) (x) I_C) S^T`` for every layer (``S``: (N, C-1, C))."""
    n, a, c = S.shape
    SS = np.einsum("nac,mbc->namb", S, S)
    train = [(SS * K[:, None, :, None]).reshape(n * a, n * a) for K in layer_train]
    cross = [np.einsum("pm,mbc->pcmb", K, S).reshape(K.shape[0] * c, n * a) for K in layer_cross]
    return train, cross


def _pattern_operator(name: str, train, cross, depth: int) -> np.ndarray:
    """``J(X') G^+ J~^T / N`` of the infinite-width linearised network from (transformed) layer kernels:
    exact ``(sum K_l(X')) (sum K~_l)^{-1}``; block-diagonal ``sum_l K_l(X') K~_l^{-1}``; block tri-diagonal
    (T invertible, L not 2 mod 3) ``sum_l c_l K_l(X') K~_l^{-1}``, ``c = T^{-1} 1``."""
    import scipy.linalg

    def solve(K, B):
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(K), B.T).T

    if name == "exact":
        return solve(sum(train), sum(cross))
    if name == "block_diagonal":
        return sum(solve(K, Kx) for K, Kx in zip(train, cross))
    if name == "block_tridiagonal":
        T = (np.abs(np.subtract.outer(np.arange(depth), np.arange(depth))) <= 1).astype(float)
        if depth % 3 == 2:
            raise ValueError(f"depth={depth}: T is singular (L = 2 mod 3); the c-formula needs invertible T")
        coef = np.linalg.solve(T, np.ones(depth))
        return sum(w * solve(K, Kx) for w, K, Kx in zip(coef, train, cross) if abs(w) > 1e-12)
    raise ValueError(f"approximation={name!r}: no analytic cross-entropy operator (allowed: exact, block_diagonal, "
                     "block_tridiagonal)")


def _pattern_apply(name: str, train, cross, v: np.ndarray, depth: int) -> np.ndarray:
    """``_pattern_operator(name, train, cross, depth) @ v`` with one solve per layer (never the full operator)."""
    import scipy.linalg

    def solve(K, b):
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(K), b)

    if name == "exact":
        return sum(cross) @ solve(sum(train), v)
    if name == "block_diagonal":
        return sum(Kx @ solve(K, v) for K, Kx in zip(train, cross))
    if name == "block_tridiagonal":
        T = (np.abs(np.subtract.outer(np.arange(depth), np.arange(depth))) <= 1).astype(float)
        if depth % 3 == 2:
            raise ValueError(f"depth={depth}: T is singular (L = 2 mod 3); the c-formula needs invertible T")
        coef = np.linalg.solve(T, np.ones(depth))
        return sum(w * (Kx @ solve(K, v)) for w, K, Kx in zip(coef, train, cross) if abs(w) > 1e-12)
    raise ValueError(f"approximation={name!r}: no analytic cross-entropy operator (allowed: exact, block_diagonal, "
                     "block_tridiagonal)")


def cross_entropy_prediction(name: str, X, X_test, f0, f0_test, Y, learning_rate: float, steps: int,
                             depth: int = 3, activation: str = "relu", sigma_w2: float = 2.0, sigma_b2: float = 0.0):
    """The infinite-width linearised network trained by cross-entropy NGD (``name`` in exact / block-diagonal /
    block tri-diagonal / K-FAC): train and test logits per step, ``f_{t+1}(X') = f_t(X') - eta Theta_G(X', X) Pi (p_t - y)``
    with ``Theta_G(X', X) Pi = [J(X') G^+ J~^T / N] M`` from the analytic layer NTKs (``K_l -> Theta_l (x) I_C``) and
    the thin factor ``S`` / residual map ``M`` at the predicted ``p_t`` (:mod:`numerics.losses`); K-FAC through
    its factor regressions (:func:`theory.cross_entropy.kfac_cross_entropy_test_operator`)."""
    from numerics.losses import CrossEntropyGeometry
    from theory.kernels import analytic_kernels

    X_all = np.vstack([X, X_test])
    k = analytic_kernels(X_all, X, depth=depth, activation=activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    n = X.shape[0]
    layer_train = [K[:n] for K in k.layer_ntk]
    layer_all = [K for K in k.layer_ntk]
    f, ft = np.array(f0, float), np.array(f0_test, float)
    train, test = [f.copy()], [ft.copy()]
    for _ in range(steps):
        g = CrossEntropyGeometry.at(f)
        v = g.transform_residual(g.residual(Y)).ravel()
        if name == "kfac":
            from theory.cross_entropy import kfac_cross_entropy_test_operator

            op = kfac_cross_entropy_test_operator([K[:n] for K in k.nngp_layers], [K[:n] for K in k.backward],
                                                  k.nngp_layers, k.backward, g.S)
            move = (op @ v).reshape(X_all.shape[0], -1)
        else:
            Kt, Kx = _transformed(layer_train, layer_all, g.S)
            move = _pattern_apply(name, Kt, Kx, v, depth).reshape(X_all.shape[0], -1)
        f = f - learning_rate * move[:n]
        ft = ft - learning_rate * move[n:]
        train.append(f.copy())
        test.append(ft.copy())
    return train, test


def _kfac_newton(f0, Y, learning_rate: float, hidden_total: float, steps: int):
    """K-FAC's linearised cross-entropy step modulo logit shifts (theory.cross_entropy): ``H Theta Pi =
    a Pi + blockdiag(H_n Hbar^+) Pi`` (``a``: the hidden layers' contribution), so
    ``Pi Delta f_n = -eta (a H_n^+ r_n + Hbar^+ r_n)``."""
    from numerics.losses import hessian, newton_residual, softmax

    f = np.array(f0, float)
    out = [f.copy()]
    for _ in range(steps):
        p = softmax(f)
        r = p - Y
        Hbar = hessian(p).mean(axis=0)
        lam, V = np.linalg.eigh(Hbar)
        keep = lam > 1e-12 * lam.max()
        Hbar_pinv = (V[:, keep] / lam[keep]) @ V[:, keep].T
        f = f - learning_rate * (hidden_total * newton_residual(p, r) + r @ Hbar_pinv)
        out.append(f.copy())
    return out


def _ce(logits, Y) -> float:
    from numerics.losses import cross_entropy_loss

    return cross_entropy_loss(logits, Y)


def _mean_eigenvalue(name: str, approx, n: int, c_eff: int, widths, loss: str) -> float:
    """The mean eigenvalue of the (probability-space) operator of a non-isotropic approximation, from a trace
    identity (module docstring) -- no N C x N C operator needed."""
    if name == "diagonal":
        return float(sum(int(np.sum(F > 0)) for F in approx.fisher_diagonal)) / (n * c_eff)
    if name == "ekfac":
        return float(sum(layer["frame_trace"] for layer in approx.diagnostics["layers"])) / (n * c_eff)
    if name == "unit_wise":
        from theory.activations import get_activation
        from theory.unit_wise_theory import active_count_moments

        gamma = get_activation("relu").active_fraction()
        hidden = [int(w) for w in widths[1:-1]]
        if loss == "mse":
            return float(active_count_moments(hidden, gamma, c_eff)[0])
        C = c_eff + 1
        return float(gamma * sum(hidden) / (C - 1) + sp_ratio(C))
    raise ValueError(f"approximation={name!r} has a theory constant")


def sp_ratio(C: int) -> float:
    """``C / (C - 1)``: the unit-wise output layer's contribution at uniform outputs (theory.cross_entropy)."""
    return C / (C - 1)


#: steps cap per approximation (none now).  Unit-wise was capped at one step (990 s for three steps at width 2048,
#: measured with an earlier version on a loaded machine); its C > 1 step now solves N-sized per-unit systems on the
#: projected residual (numerics.approximations.unit_wise, "C > 1"): ~1 s per step at width 2048 against 5 s for the
#: N C-sized ones (solve_form="dual_full"), three steps 4.8 s (mse) / 3.8 s (cross-entropy) in all, idle machine
#: (benchmarks/results/bench-numerics-unit-wise-C10.txt)
MAX_STEPS: Dict[str, int] = {}


def run_multiclass(data: MulticlassData, name: str, loss: str, width: int, seed: int, steps: int = 2,
                   depth: int = 3) -> MulticlassRun:
    """Train a fresh relu net on the ten-class digits with approximation ``name`` under ``loss`` for ``steps``
    real NGD steps (at most :data:`MAX_STEPS`) and put each step next to its prediction (module docstring)."""
    from numerics import MLP
    from numerics.approximations import get_approximation
    from numerics.losses import accuracy, loss_value, softmax
    from numerics.training import ngd_step
    from proofs import evidence as ev
    from theory.isotropy import isotropy_constant

    check_choice("approximation", name, APPROXIMATIONS)
    check_choice("loss", loss, ("mse", "cross_entropy"))
    start = time.perf_counter()
    steps = min(check_positive_int("steps", steps), MAX_STEPS.get(name, steps))
    X, X_test, Y, Y_test = data.X_train, data.X_test, data.Y_train, data.Y_test
    n, C = X.shape[0], data.n_classes
    c_eff = C if loss == "mse" else C - 1
    note = ""
    run_extra: Dict[str, float] = {}
    if name == "kfac":
        from numerics.forster import forster_transform
        from proofs.experiments.digits import DIGITS_FORSTER_TOL, span_coordinates

        Xs, Xs_test = span_coordinates(X, X_test)
        res = forster_transform(Xs, tol=DIGITS_FORSTER_TOL)
        X, X_test = res.inputs, res.transform(Xs_test)
        note = (f"inputs in their {Xs.shape[1]}-dim span, Forster transform to isotropy error {res.isotropy_error:.2g} "
                f"({res.iterations} iterations); test inputs through the same map")
    widths = [X.shape[1]] + [width] * (depth - 1) + [C]
    net = MLP(widths, activation="relu", sigma_w2=2.0, sigma_b2=0.0, seed=seed)
    approx = get_approximation(name)(net, X, loss=loss)
    if name in THEORY:
        kw = {"forster": True} if name == "kfac" else {}
        alpha = float(isotropy_constant(name, depth, n_samples=n, input_dim=X.shape[1], n_outputs=C, loss=loss, **kw))
        source = "theory"
    else:
        alpha = _mean_eigenvalue(name, approx, n, c_eff, widths, loss)
        source = "mean eigenvalue (trace identity)"
    eta = (1.0 if loss == "mse" else CE_STEP_FRACTION) / alpha
    f0, f0_test = approx.outputs.copy(), net.forward(X_test)
    outputs, outputs_test = [f0], [f0_test]
    for t in range(steps):
        try:
            if t == 0:
                ngd_step(net, None, Y, approx, eta)      # the approximation built above (its alpha, diagnostics)
            else:
                ngd_step(net, X, Y, name, eta, loss=loss)
            f, f_test = net.forward(X), net.forward(X_test)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:   # a diverged step: recorded
            f = f_test = None
            note += f"{'; ' if note else ''}step {t + 1} failed ({type(exc).__name__}: {str(exc)[:120]})"
        if f is None or not (np.all(np.isfinite(f)) and np.all(np.isfinite(f_test))) or np.abs(f).max() > 1e150:
            note += f"{'; ' if note else ''}diverged at step {t + 1}: the remaining steps are not run"
            while len(outputs) < steps + 1:
                outputs.append(np.full_like(f0, np.nan))
                outputs_test.append(np.full_like(f0_test, np.nan))
            break
        outputs.append(f)
        outputs_test.append(f_test)

    # predictions
    pred_train = pred_test = None
    if loss == "mse":
        if name in THEORY:
            op = ev.analytic_test_operator(name, X, X_test, depth)
            residuals, tests = ev.predicted_outputs(f0, f0_test, Y, alpha, op, eta, steps)
            pred_train, pred_test = [Y + r for r in residuals], list(tests)
            prediction = "infinite width, analytic kernels"
        else:
            residuals, _ = ev.predicted_outputs(f0, f0_test, Y, alpha, np.zeros((X_test.shape[0], n)), eta, steps)
            pred_train = [Y + r for r in residuals]
            prediction = "isotropic model at the mean eigenvalue (not isotropic: expected to deviate)"
    else:
        if name in ("exact", "block_diagonal", "block_tridiagonal"):
            pred_train, pred_test = cross_entropy_prediction(name, X, X_test, f0, f0_test, Y, eta, steps, depth)
            prediction = "infinite width, analytic kernels (linearised network, exact softmax)"
        elif name == "kfac":
            pred_train, pred_test = cross_entropy_prediction(name, X, X_test, f0, f0_test, Y, eta, steps, depth)
            hidden_total = X.shape[1] + n * (depth - 2)
            newton = _kfac_newton(f0, Y, eta, hidden_total, steps)
            # the analytic factor regressions reproduce the derived train step (modulo logit shifts)
            run_extra["kfac_train_vs_derived"] = float(max(
                np.abs(_centre(a) - _centre(b)).max() / max(np.abs(_centre(b) - _centre(f0)).max(), 1e-300)
                for a, b in zip(pred_train[1:], newton[1:])))
            prediction = "infinite width, analytic factor regressions (linearised network, exact softmax)"
        else:
            from numerics.training import predicted_probabilities

            probs = predicted_probabilities(softmax(f0), Y, eta * alpha, steps)
            pred_train = [np.log(np.maximum(p, 1e-300)) for p in probs]
            prediction = "isotropic model at the mean eigenvalue (not isotropic: expected to deviate)"

    def losses(values, targets):
        return [loss_value(v, targets, loss) if np.all(np.isfinite(v)) else float("nan") for v in values]

    def accuracies(values, targets):
        return [accuracy(v, targets) if np.all(np.isfinite(v)) else float("nan") for v in values]

    run = MulticlassRun(
        name, loss, alpha, source, eta, width, losses(outputs, Y), losses(outputs_test, Y_test),
        accuracies(outputs, Y), accuracies(outputs_test, Y_test),
        losses(pred_train, Y) if pred_train is not None else [float("nan")] * (steps + 1),
        losses(pred_test, Y_test) if pred_test is not None else [float("nan")] * (steps + 1),
        [accuracy(v, Y) for v in pred_train] if pred_train is not None else [float("nan")] * (steps + 1),
        [accuracy(v, Y_test) for v in pred_test] if pred_test is not None else [float("nan")] * (steps + 1),
        prediction, 0.0, note=note, extra=run_extra)
    if pred_train is not None and np.all(np.isfinite(outputs[1])):
        if loss == "mse":
            a, b, z = outputs[1], pred_train[1], f0
        else:
            a, b, z = softmax(outputs[1]), softmax(pred_train[1]), softmax(f0)
        run.train_step_error = float(np.linalg.norm(a - b) / np.linalg.norm(b - z))
    if pred_test is not None and np.all(np.isfinite(outputs_test[1])):
        # logits modulo shifts for cross-entropy (softmax cannot see them): compare centred rows
        def centre(F):
            return F - F.mean(axis=1, keepdims=True) if loss == "cross_entropy" else F

        run.test_output_error = float(np.linalg.norm(centre(outputs_test[1]) - centre(pred_test[1]))
                                      / np.linalg.norm(centre(pred_test[1]) - centre(f0_test)))
    run.seconds = time.perf_counter() - start
    return run
