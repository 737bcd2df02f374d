"""Train a real finite network by approximate-Fisher NGD (and plain GD for contrast).

Every step recomputes the Jacobian factors at the *current* parameters, asks the approximation for
its direction ``(G + rho I)^{-1} grad`` and applies ``theta <- theta - eta * direction`` to the
network (nothing is simulated in function space).  Loss (``loss=``, :mod:`numerics.losses`): ``"mse"``,
``1/(2N) sum_n ||f(x_n) - y_n||^2`` (default), or ``"cross_entropy"``, ``(1/N) sum_n -y_n^T log softmax(f(x_n))``
with one-hot targets, where ``G`` keeps blocks of ``F = J^T H J / N``.

Cross-entropy updates (``variant=``), in this code's normalisation (``Theta = J J^T / N``, ``r = p - y``):

* ``"fisher"`` (default): ``theta <- theta - eta (G + rho I)^{-1} J^T r / N``.  For ``approximation="exact"``
  this is the authors' "exact", ``dtheta = -eta J^T (H Theta + rho I)^{-1} r / N`` (push-through); in
  function space ``Delta f = -eta (H + rho Theta^{-1})^{-1} r``, and as ``rho -> 0+`` its part orthogonal to
  each sample's all-ones direction is the per-sample Newton step ``-eta H^+ r`` (the shift along 1 is fixed
  by Theta and invisible to softmax): ``Delta p = -eta r`` to first order.
* ``"plus_mse"``: the squared-loss step of the approximation on the Newton residual ``(H + rho I)^{-1} r``.
  For ``approximation="exact"`` this is the authors' "exact_plus_mse", ``dtheta = -eta J^T Theta^{-1}
  (H + rho I)^{-1} r / N``: ``Delta f = -eta (H + rho I)^{-1} r`` exactly (no shift along 1 at rho = 0),
  ``Delta p = -eta H (H + rho I)^{-1} r`` to first order (eigenvalues ``lambda / (lambda + rho)`` of ``H_n``).

:data:`AUTHORS_CE_UPDATES` names the two authors' updates; :func:`authors_ce_step` runs one.

>>> import numpy as np
>>> from numerics.network import MLP
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((4, 8)); X /= np.linalg.norm(X, axis=1, keepdims=True)
>>> Y = rng.standard_normal((4, 1)) / 2
>>> net = MLP([8, 256, 256, 1], seed=0)
>>> hist = train_ngd(net, X, Y, "exact", learning_rate=1.0, steps=2)
>>> hist.train_loss[1] < 1e-2 * hist.train_loss[0]
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from theory.validation import check_matrix, check_nonnegative, check_positive_int

from theory.validation import check_choice

from .approximations import get_approximation
from .approximations.pattern import block_pattern
from .factors import empirical_ntk, layer_vjp
from .losses import (accuracy, check_loss, check_targets, loss_value, newton_residual, probability_isotropy_error,
                     softmax)
from .measure import isotropy_error
from .network import MLP

__all__ = [
    "train_ngd", "History", "ngd_step", "one_step_loss_ratio", "mse_loss", "theory_alpha",
    "gd_learning_rate", "VARIANTS", "AUTHORS_CE_UPDATES", "authors_ce_step", "predicted_probabilities"
]

#: Cross-entropy updates (module docstring); ``"fisher"`` is the only one for squared loss.
VARIANTS = ("fisher", "plus_mse")

#: The authors' two cross-entropy updates (github.com/kazukiosawa/ngd_in_wide_nn, arXiv:2010.00879 App. D per
#: its README): name -> (approximation, variant); their code's default damping is 1e-5.
AUTHORS_CE_UPDATES = {"exact": ("exact", "fisher"), "exact_plus_mse": ("exact", "plus_mse")}
AUTHORS_CE_DAMPING = 1e-5


def mse_loss(outputs: np.ndarray, targets: np.ndarray) -> float:
    """``1/(2N) sum_n ||f(x_n) - y_n||^2``.

    >>> mse_loss(np.array([[1.0], [3.0]]), np.zeros((2, 1)))
    2.5
    >>> mse_loss(np.zeros((2, 1)), np.zeros(2))      # (N, 1) - (N,) would broadcast to N x N
    Traceback (most recent call last):
    ...
    ValueError: outputs has shape (2, 1) but targets has shape (2,): expected equal (N, C) shapes
    """
    outputs = check_matrix("outputs", outputs)
    targets = np.asarray(targets, dtype=float)
    if targets.shape != outputs.shape:
        raise ValueError(f"outputs has shape {outputs.shape} but targets has shape {targets.shape}: "
                         f"expected equal (N, C) shapes")
    targets = check_matrix("targets", targets)
    diff = outputs - targets
    return float(0.5 * np.sum(diff * diff) / diff.shape[0])


@dataclass
class History:
    """Per-step record of :func:`train_ngd` (index 0 = before the first step).

    ``train_loss``/``test_loss``: NGD; ``gd_train_loss``/``gd_test_loss``: plain GD from the same
    initial parameters with ``gd_learning_rate = 1 / lambda_max(Theta_0)``; ``predicted_train_loss``:
    the linearised isotropic prediction ``(1 - eta alpha)^(2t) loss_0`` (cross-entropy: the loss of the
    first-order probabilities ``y + (1 - eta alpha)^t (p_0 - y)``, :func:`predicted_probabilities`);
    ``alpha``: the constant from ``theory.isotropy`` (None if unavailable), ``measured_alpha``: mean
    diagonal of the measured ``Theta_G`` at step 0 (cross-entropy: of ``H Theta_G Pi_H``, per dimension of
    ``range(H)``), ``isotropy_error``: ``||Theta_G - a I|| / ||a I||`` at step 0 (cross-entropy:
    ``||H Theta_G Pi_H - a Pi_H|| / ||a Pi_H||``).  ``*_accuracy``: argmax agreement (``C >= 2``) or sign
    agreement (``C = 1``) per step.
    """

    approximation: str
    learning_rate: float
    damping: float
    alpha: Optional[float]
    measured_alpha: float
    isotropy_error: float
    train_loss: List[float] = field(default_factory=list)
    test_loss: List[float] = field(default_factory=list)
    gd_train_loss: List[float] = field(default_factory=list)
    gd_test_loss: List[float] = field(default_factory=list)
    gd_learning_rate: Optional[float] = None
    predicted_train_loss: List[float] = field(default_factory=list)
    predicted_from: str = "theory"
    seeds: Dict[str, Any] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    loss: str = "mse"
    variant: str = "fisher"
    train_accuracy: List[float] = field(default_factory=list)
    test_accuracy: List[float] = field(default_factory=list)
    gd_train_accuracy: List[float] = field(default_factory=list)
    gd_test_accuracy: List[float] = field(default_factory=list)
    predicted_train_accuracy: List[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["options"] = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in self.options.items()}
        return out


def _check_targets(name: str, Y, n: int, c: int, loss: str = "mse") -> np.ndarray:
    return check_targets(name, Y, n, c, loss)


def predicted_probabilities(p0: np.ndarray, Y: np.ndarray, rate: float, steps: int) -> List[np.ndarray]:
    """First-order cross-entropy dynamics ``p_t = y + (1 - eta alpha)^t (p_0 - y)`` (``rate = eta alpha``)
    for ``t = 0..steps`` (from ``H Theta_G Pi_H = alpha Pi_H``, :mod:`theory.cross_entropy`).

    >>> [p[0].tolist() for p in predicted_probabilities(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]), 0.5, 2)]
    [[0.5, 0.5], [0.75, 0.25], [0.875, 0.125]]
    """
    p0, Y = np.asarray(p0, dtype=float), np.asarray(Y, dtype=float)
    return [Y + (1.0 - rate) ** t * (p0 - Y) for t in range(steps + 1)]


def _probability_loss(p: np.ndarray, Y: np.ndarray) -> float:
    """``(1/N) sum -y^T log p`` of (predicted) probabilities; NaN where a needed entry is <= 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), np.nan)
    return float(-np.sum(np.where(Y != 0, Y * logp, 0.0)) / Y.shape[0])


def theory_alpha(net: MLP, X: np.ndarray, approximation: str, options: Dict[str, Any], loss: str = "mse") -> float:
    """``alpha`` from ``theory.isotropy.isotropy_constant`` (derived there, not tabulated here) for the
    network's architecture and the inputs ``X`` (``(N, M_0)``); ``loss="cross_entropy"``: the constant of
    the probability-space statement ``H Theta_G Pi_H = alpha Pi_H`` (:mod:`theory.cross_entropy`).

    Whether the inputs are in radial isotropic position (what K-FAC needs when ``M_0 + bias < N``)
    is read off the data (:func:`numerics.forster.in_radial_isotropic_position`), not from an option.
    Raises ``theory.isotropy.NotIsotropic`` (a ValueError) when theory says there is no alpha.
    """
    from theory.isotropy import isotropy_constant

    from .forster import in_radial_isotropic_position

    n_samples = X.shape[0]
    kwargs: Dict[str, Any] = dict(depth=net.depth, n_samples=n_samples, input_dim=net.widths[0],
                                  widths=list(net.widths), activation=net.activation.name,
                                  n_outputs=net.n_outputs, bias=net.has_bias)
    name = approximation
    if approximation == "pattern":
        S = options.get("pattern")
        if S is None and options.get("bandwidth") is not None:
            S = block_pattern("banded", net.depth, options["bandwidth"])
        kwargs["pattern"] = np.asarray(S).astype(int).tolist()
    if not net.has_bias and net.widths[0] < n_samples:
        kwargs["forster"] = in_radial_isotropic_position(X)
    if check_loss(loss) != "mse":
        kwargs["loss"] = loss
    return float(isotropy_constant(name, **kwargs))


def gd_learning_rate(net: MLP, X: np.ndarray) -> float:
    """``1 / lambda_max(Theta_0)``, ``Theta_0 = J J^T / N`` at the current parameters.

    Plain GD's linearised residual obeys ``r_{t+1} = (I - eta Theta) r_t``: it is stable for
    ``eta < 2 / lambda_max`` and every mode decays monotonically for ``eta <= 1 / lambda_max``;
    this choice removes the top mode in one step and leaves the rate ``1 - lambda_min/lambda_max``
    that NGD's isotropy avoids.
    """
    X = check_matrix("X", X, ncols=net.widths[0])
    theta = empirical_ntk(net.factors(X)) / X.shape[0]
    top = float(np.linalg.eigvalsh(theta)[-1])
    if not top > 0.0:  # J = 0 (e.g. every relu unit dead and no bias): 1/lambda_max would be inf
        raise ValueError(f"the empirical NTK J J^T / N of net on X has lambda_max = {top:.3g}: GD does not move "
                         f"(zero Jacobian, e.g. all units dead), so 1/lambda_max is undefined")
    return 1.0 / top


def ngd_step(net: MLP, X, Y, approximation="exact", learning_rate: float = 1.0, damping: float = 0.0,
             loss: Optional[str] = None, variant: str = "fisher", **options: Any):
    """One REAL NGD step ``theta <- theta - eta (G + rho I)^{-1} J^T r / N`` on ``net``, in place.

    ``approximation``: a registered name (built here at the current parameters with ``damping``, ``loss``
    and ``options``) or an :class:`~numerics.approximations.base.Approximation` already built on ``net`` at
    its current parameters (then ``X`` may be ``None``, ``options`` must be left out, ``damping`` too except
    for ``variant="plus_mse"``, where it is the damping of ``H``).  ``loss``: ``"mse"`` (``r = f - Y``) or
    ``"cross_entropy"`` (``r = softmax(f) - Y``, one-hot ``Y``); ``None`` means the passed approximation's
    loss, or ``"mse"``.  ``variant`` (cross-entropy only, module docstring): ``"fisher"`` or ``"plus_mse"``
    (the squared-loss approximation, undamped, stepping on ``(H + rho I)^{-1} r``).  ``Y``: targets
    ``(N, C)``.  Returns the approximation at the PRE-step parameters: its ``outputs`` are ``f_0(X)``, its
    ``logit_operator()`` the step's ``Theta_G``.  The one place the update is written; :func:`train_ngd`, the
    claims, the falsification spaces and the benchmarks use it.
    Source: Karakida & Osawa 2020, arXiv:2010.00879, Eq. (4).

    >>> from numerics.network import MLP
    >>> net = MLP([3, 64, 1], seed=0)
    >>> X = np.eye(3)[:2]; Y = np.array([[0.5], [-0.5]])
    >>> approx = ngd_step(net, X, Y, "exact", learning_rate=1.0)
    >>> bool(np.sum((net.forward(X) - Y) ** 2) < 1e-2 * np.sum((approx.factors.outputs - Y) ** 2))
    True
    """
    from .approximations.base import Approximation

    variant = check_choice("variant", variant, VARIANTS)
    if loss is not None:
        check_loss(loss)
    if isinstance(approximation, Approximation):
        approx = approximation
        if approx.net is not net:
            raise ValueError("approximation was built on a different network than net")
        if X is not None and (np.shape(X) != approx.X.shape or not np.array_equal(np.asarray(X, float), approx.X)):
            raise ValueError("X differs from the inputs the approximation was built on (pass X=None)")
        if (damping != 0.0 and variant == "fisher") or options:
            raise TypeError("damping/options belong to the approximation's constructor, not to ngd_step, "
                            "when an Approximation object is passed")
        step_loss = loss or ("cross_entropy" if variant == "plus_mse" else approx.loss)
        built_loss = "mse" if variant == "plus_mse" else step_loss
        if approx.loss != built_loss:
            raise ValueError(f"loss={step_loss!r}, variant={variant!r} needs an approximation built with "
                             f"loss={built_loss!r}, got one built with loss={approx.loss!r}")
    else:
        step_loss = loss or "mse"
        if variant == "plus_mse":  # the squared-loss approximation, undamped: the damping is that of H
            approx = get_approximation(approximation)(net, X, damping=0.0, loss="mse", **options)
        else:
            approx = get_approximation(approximation)(net, X, damping=damping, loss=step_loss, **options)
    if variant == "plus_mse" and step_loss != "cross_entropy":
        raise ValueError(f"variant='plus_mse' is a cross-entropy update (Newton residual (H + rho I)^-1 (p - y)); "
                         f"got loss={step_loss!r}")
    eta = float(learning_rate)
    if not np.isfinite(eta):
        raise ValueError(f"learning_rate={learning_rate!r} is not allowed: expected a finite number")
    outputs = approx.outputs
    Y = _check_targets("Y", Y, outputs.shape[0], outputs.shape[1], step_loss)
    if variant == "plus_mse":
        p = softmax(outputs)
        r = newton_residual(p, p - Y, check_nonnegative("damping", damping))
    else:
        r = approx.loss_residual(Y)
    net.apply_update(approx.direction(r), eta)
    return approx


def authors_ce_step(net: MLP, X, Y, update: str = "exact", learning_rate: float = 1.0,
                    damping: float = AUTHORS_CE_DAMPING):
    """One of the authors' cross-entropy updates (:data:`AUTHORS_CE_UPDATES`: ``"exact"``,
    ``"exact_plus_mse"``) as a real step on ``net``; returns the approximation (pre-step parameters)."""
    update = check_choice("update", update, tuple(AUTHORS_CE_UPDATES))
    approximation, variant = AUTHORS_CE_UPDATES[update]
    return ngd_step(net, X, Y, approximation, learning_rate, damping, loss="cross_entropy", variant=variant)


def one_step_loss_ratio(net: MLP, X, Y, approximation="exact", learning_rate: Optional[float] = None,
                        damping: float = 0.0, loss: str = "mse", **options: Any) -> float:
    """``loss(theta_1) / loss(theta_0)`` after one real NGD step on a COPY of ``net``.

    ``learning_rate=None`` uses ``1 / alpha`` from ``theory.isotropy`` (see :func:`train_ngd`).
    Isotropy with ``eta = 1 / alpha`` predicts 0 (linearised, squared loss); the finite-width value
    measures the linearisation error.  (Cross-entropy never reaches 0: finite logits.)
    """
    history = train_ngd(net.copy(), X, Y, approximation, learning_rate=learning_rate, steps=1,
                        damping=damping, gd=False, loss=loss, **options)
    if history.train_loss[0] == 0.0:
        raise ValueError("the initial loss is zero: the loss ratio is undefined")
    return history.train_loss[1] / history.train_loss[0]


def train_ngd(net: MLP, X, Y, approximation="exact", learning_rate: Optional[float] = None, steps: int = 1,
              damping: float = 0.0, X_test=None, Y_test=None, gd: bool = True,
              gd_lr: Optional[float] = None, loss: str = "mse", variant: str = "fisher", **options: Any) -> History:
    """Run ``steps`` NGD steps on ``net`` IN PLACE (its parameters are really updated).

    ``learning_rate=None`` uses ``1 / alpha`` with ``alpha`` from ``theory.isotropy`` (for
    ``damping > 0`` this is the undamped constant and a note says so; cross-entropy: the constant of
    ``H Theta_G Pi_H = alpha Pi_H``, and for ``variant="plus_mse"`` the squared-loss one).  With ``gd=True``
    plain GD (``gd_lr``, default ``1 / lambda_max(Theta_0)``) runs the same number of steps on a copy of
    the initial network.  ``loss``/``variant``: see :func:`ngd_step` (targets one-hot for cross-entropy).
    ``options`` go to the approximation.  Inputs are used as given: to train K-FAC
    with ``M_0 < N`` on Forster inputs, transform the data once first (``res = forster_transform(X)``;
    ``X = res.inputs``, ``X_test = res.transform(X_test)``; :mod:`numerics.forster`).
    Every list is indexed by step, index 0 = before the first update; losses and accuracies are recorded
    for the training set and, when given, the test set.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a numerics.network.MLP, got {type(net).__name__}")
    loss = check_loss(loss)
    variant = check_choice("variant", variant, VARIANTS)
    if variant != "fisher" and loss != "cross_entropy":
        raise ValueError(f"variant={variant!r} is a cross-entropy update; got loss={loss!r}")
    X = net.check_inputs(X)
    n, c = X.shape[0], net.n_outputs
    Y = _check_targets("Y", Y, n, c, loss)
    steps = check_positive_int("steps", steps, minimum=0)
    damping = check_nonnegative("damping", damping)
    if (X_test is None) != (Y_test is None):
        raise ValueError("give both X_test and Y_test, or neither")
    if X_test is not None:
        X_test = net.check_inputs(X_test, "X_test")
        Y_test = _check_targets("Y_test", Y_test, X_test.shape[0], c, loss)
    cls = get_approximation(approximation)
    name = cls.name
    notes: List[str] = []

    alpha_loss = "mse" if variant == "plus_mse" else loss
    try:
        alpha: Optional[float] = theory_alpha(net, X, name, options, alpha_loss)
    except (ImportError, ValueError) as err:  # NotIsotropic is a ValueError
        if learning_rate is None:
            raise ValueError(f"learning_rate=None needs alpha from theory.isotropy for approximation={name!r}, "
                             f"loss={loss!r}, which failed: {err}") from err
        alpha = None
        notes.append(f"no theoretical alpha: {err}")
    if damping > 0 and alpha is not None:
        notes.append("alpha is the rho = 0 constant; with damping the operator is not isotropic")
    if learning_rate is None:
        learning_rate = 1.0 / alpha
    eta = float(learning_rate)
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"learning_rate={learning_rate!r} is not allowed: expected a finite number > 0")

    gd_net = net.copy() if gd else None
    history = History(approximation=name, learning_rate=eta, damping=damping, alpha=alpha,
                      measured_alpha=float("nan"), isotropy_error=float("nan"),
                      seeds={"net": net.seed}, options=dict(options), notes=notes, loss=loss, variant=variant)
    build_loss, build_damping = ("mse", 0.0) if variant == "plus_mse" else (loss, damping)

    def record_test(model, losses, accuracies):
        if X_test is not None:
            f_test = model.forward(X_test)
            losses.append(loss_value(f_test, Y_test, loss))
            accuracies.append(accuracy(f_test, Y_test))

    for t in range(steps + 1):
        # losses at index t are those of the parameters BEFORE update t (index 0 = initial network)
        record_test(net, history.test_loss, history.test_accuracy)
        if t == steps:
            f = net.forward(X)
            history.train_loss.append(loss_value(f, Y, loss))
            history.train_accuracy.append(accuracy(f, Y))
            break
        approx = cls(net, X, damping=build_damping, loss=build_loss, **options)
        history.train_loss.append(loss_value(approx.outputs, Y, loss))
        history.train_accuracy.append(accuracy(approx.outputs, Y))
        if t == 0:
            if loss == "cross_entropy" and variant == "fisher":
                history.isotropy_error, history.measured_alpha = probability_isotropy_error(
                    approx.probability_operator(), c)
            else:
                history.isotropy_error, history.measured_alpha = isotropy_error(approx.operator())
            p0 = softmax(approx.outputs) if loss == "cross_entropy" else None
        ngd_step(net, None, Y, approx, eta, damping if variant == "plus_mse" else 0.0,
                 loss=loss, variant=variant)

    rate_alpha = alpha if alpha is not None else history.measured_alpha
    history.predicted_from = "theory" if alpha is not None else "measured"
    if loss == "cross_entropy":
        if steps == 0:
            p0 = softmax(net.forward(X))
        probs = predicted_probabilities(p0, Y, eta * rate_alpha, steps)
        history.predicted_train_loss = [_probability_loss(p, Y) for p in probs]
        history.predicted_train_accuracy = [accuracy(p, Y) for p in probs]
    else:
        history.predicted_train_loss = [float((1.0 - eta * rate_alpha) ** (2 * t) * history.train_loss[0])
                                        for t in range(steps + 1)]

    if gd_net is not None:
        history.gd_learning_rate = float(gd_lr) if gd_lr is not None else gd_learning_rate(gd_net, X)
        for t in range(steps + 1):
            if t < steps:
                factors = gd_net.factors(X)
                f = factors.outputs
                residual = f - Y if loss == "mse" else softmax(f) - Y
            else:
                f = gd_net.forward(X)
            history.gd_train_loss.append(loss_value(f, Y, loss))
            history.gd_train_accuracy.append(accuracy(f, Y))
            record_test(gd_net, history.gd_test_loss, history.gd_test_accuracy)
            if t < steps:
                grad = [layer_vjp(factors, l, residual) / n for l in range(1, net.depth + 1)]
                gd_net.apply_update(grad, history.gd_learning_rate)
    return history
