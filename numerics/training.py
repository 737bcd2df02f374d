"""Train a real finite network by approximate-Fisher NGD (and plain GD for contrast).

Every step recomputes the Jacobian factors at the *current* parameters, asks the approximation for
its direction ``(G + rho I)^{-1} grad`` and applies ``theta <- theta - eta * direction`` to the
network (nothing is simulated in function space).  Loss: ``1/(2N) sum_n ||f(x_n) - y_n||^2``.

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

from .approximations import get_approximation
from .approximations.pattern import block_pattern
from .factors import empirical_ntk, layer_vjp
from .measure import isotropy_error
from .network import MLP

__all__ = [
    "train_ngd", "History", "ngd_step", "one_step_loss_ratio", "mse_loss", "theory_alpha",
    "gd_learning_rate"
]


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
    the linearised isotropic prediction ``(1 - eta alpha)^(2t) loss_0``; ``alpha``: the constant from
    ``theory.isotropy`` (None if unavailable), ``measured_alpha``: mean diagonal of the measured
    ``Theta_G`` at step 0, ``isotropy_error``: ``||Theta_G - a I|| / ||a I||`` at step 0.
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

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["options"] = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v) for k, v in self.options.items()}
        return out


def _check_targets(name: str, Y, n: int, c: int) -> np.ndarray:
    Y = np.asarray(Y, dtype=float)
    if c == 1 and Y.shape == (n,):
        Y = Y.reshape(n, 1)
    Y = check_matrix(name, Y, ncols=c)
    if Y.shape[0] != n:
        raise ValueError(f"{name} has {Y.shape[0]} rows, the inputs have {n}")
    return Y


def theory_alpha(net: MLP, X: np.ndarray, approximation: str, options: Dict[str, Any]) -> float:
    """``alpha`` from ``theory.isotropy.isotropy_constant`` (derived there, not tabulated here) for the
    network's architecture and the inputs ``X`` (``(N, M_0)``).

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
             **options: Any):
    """One REAL NGD step ``theta <- theta - eta (G + rho I)^{-1} J^T (f(X) - Y) / N`` on ``net``, in place.

    ``approximation``: a registered name (built here at the current parameters with ``damping`` and
    ``options``) or an :class:`~numerics.approximations.base.Approximation` already built on ``net`` at
    its current parameters (then ``X`` may be ``None`` and ``damping``/``options`` must be left out).
    ``Y``: targets ``(N, C)``.  Returns the approximation at the PRE-step parameters: its
    ``factors.outputs`` are ``f_0(X)``, its ``operator()`` the step's ``Theta_G``.  The one place the
    update is written; :func:`train_ngd`, the claims, the falsification spaces and the benchmarks use it.
    Source: Karakida & Osawa 2020, arXiv:2010.00879, Eq. (4).

    >>> from numerics.network import MLP
    >>> net = MLP([3, 64, 1], seed=0)
    >>> X = np.eye(3)[:2]; Y = np.array([[0.5], [-0.5]])
    >>> approx = ngd_step(net, X, Y, "exact", learning_rate=1.0)
    >>> bool(np.sum((net.forward(X) - Y) ** 2) < 1e-2 * np.sum((approx.factors.outputs - Y) ** 2))
    True
    """
    from .approximations.base import Approximation

    if isinstance(approximation, Approximation):
        approx = approximation
        if approx.net is not net:
            raise ValueError("approximation was built on a different network than net")
        if X is not None and (np.shape(X) != approx.X.shape or not np.array_equal(np.asarray(X, float), approx.X)):
            raise ValueError("X differs from the inputs the approximation was built on (pass X=None)")
        if damping != 0.0 or options:
            raise TypeError("damping/options belong to the approximation's constructor, not to ngd_step, "
                            "when an Approximation object is passed")
    else:
        approx = get_approximation(approximation)(net, X, damping=damping, **options)
    eta = float(learning_rate)
    if not np.isfinite(eta):
        raise ValueError(f"learning_rate={learning_rate!r} is not allowed: expected a finite number")
    Y = _check_targets("Y", Y, approx.n_samples, approx.n_outputs)
    net.apply_update(approx.direction(approx.factors.outputs - Y), eta)
    return approx


def one_step_loss_ratio(net: MLP, X, Y, approximation="exact", learning_rate: Optional[float] = None,
                        damping: float = 0.0, **options: Any) -> float:
    """``loss(theta_1) / loss(theta_0)`` after one real NGD step on a COPY of ``net``.

    ``learning_rate=None`` uses ``1 / alpha`` from ``theory.isotropy`` (see :func:`train_ngd`).
    Isotropy with ``eta = 1 / alpha`` predicts 0 (linearised); the finite-width value measures the
    linearisation error.
    """
    history = train_ngd(net.copy(), X, Y, approximation, learning_rate=learning_rate, steps=1,
                        damping=damping, gd=False, **options)
    if history.train_loss[0] == 0.0:
        raise ValueError("the initial loss is zero: the loss ratio is undefined")
    return history.train_loss[1] / history.train_loss[0]


def train_ngd(net: MLP, X, Y, approximation="exact", learning_rate: Optional[float] = None, steps: int = 1,
              damping: float = 0.0, X_test=None, Y_test=None, gd: bool = True,
              gd_lr: Optional[float] = None, **options: Any) -> History:
    """Run ``steps`` NGD steps on ``net`` IN PLACE (its parameters are really updated).

    ``learning_rate=None`` uses ``1 / alpha`` with ``alpha`` from ``theory.isotropy`` (for
    ``damping > 0`` this is the undamped constant and a note says so).  With ``gd=True`` plain GD
    (``gd_lr``, default ``1 / lambda_max(Theta_0)``) runs the same number of steps on a copy of the
    initial network.  ``options`` go to the approximation.  Inputs are used as given: to train K-FAC
    with ``M_0 < N`` on Forster inputs, transform the data once first (``res = forster_transform(X)``;
    ``X = res.inputs``, ``X_test = res.transform(X_test)``; :mod:`numerics.forster`).
    Every list is indexed by step, index 0 = before the first update.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a numerics.network.MLP, got {type(net).__name__}")
    X = net.check_inputs(X)
    n, c = X.shape[0], net.n_outputs
    Y = _check_targets("Y", Y, n, c)
    steps = check_positive_int("steps", steps, minimum=0)
    damping = check_nonnegative("damping", damping)
    if (X_test is None) != (Y_test is None):
        raise ValueError("give both X_test and Y_test, or neither")
    if X_test is not None:
        X_test = net.check_inputs(X_test, "X_test")
        Y_test = _check_targets("Y_test", Y_test, X_test.shape[0], c)
    cls = get_approximation(approximation)
    name = cls.name
    notes: List[str] = []

    try:
        alpha: Optional[float] = theory_alpha(net, X, name, options)
    except (ImportError, ValueError) as err:  # NotIsotropic is a ValueError
        if learning_rate is None:
            raise ValueError(f"learning_rate=None needs alpha from theory.isotropy for approximation={name!r}, "
                             f"which failed: {err}") from err
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
                      seeds={"net": net.seed}, options=dict(options), notes=notes)

    for t in range(steps + 1):
        # losses at index t are those of the parameters BEFORE update t (index 0 = initial network)
        if X_test is not None:
            history.test_loss.append(mse_loss(net.forward(X_test), Y_test))
        if t == steps:
            history.train_loss.append(mse_loss(net.forward(X), Y))
            break
        approx = cls(net, X, damping=damping, **options)
        history.train_loss.append(mse_loss(approx.factors.outputs, Y))
        if t == 0:
            history.isotropy_error, history.measured_alpha = isotropy_error(approx.operator())
        ngd_step(net, None, Y, approx, eta)

    rate_alpha = alpha if alpha is not None else history.measured_alpha
    history.predicted_from = "theory" if alpha is not None else "measured"
    history.predicted_train_loss = [float((1.0 - eta * rate_alpha) ** (2 * t) * history.train_loss[0])
                                    for t in range(steps + 1)]

    if gd_net is not None:
        history.gd_learning_rate = float(gd_lr) if gd_lr is not None else gd_learning_rate(gd_net, X)
        for t in range(steps + 1):
            if t < steps:
                factors = gd_net.factors(X)
                residual = factors.outputs - Y
                history.gd_train_loss.append(mse_loss(factors.outputs, Y))
            else:
                history.gd_train_loss.append(mse_loss(gd_net.forward(X), Y))
            if X_test is not None:
                history.gd_test_loss.append(mse_loss(gd_net.forward(X_test), Y_test))
            if t < steps:
                grad = [layer_vjp(factors, l, residual) / n for l in range(1, net.depth + 1)]
                gd_net.apply_update(grad, history.gd_learning_rate)
    return history
