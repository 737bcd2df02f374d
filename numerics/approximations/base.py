"""The common interface of every approximate-Fisher preconditioner, and shared helpers.

An approximation is built at the network's current parameters and a training batch ``X``:

    approx = SomeApproximation(net, X, damping=rho, **options)
    approx.direction(residual)   # list of L arrays like net.params: (G + rho I)^{-1} J^T r / N
    approx.operator(X2=None)     # Theta_G(X2, X) = J(X2) (G + rho I)^{-1} J(X)^T / N, (N2 C, N C)
    approx.dense_matrix()        # explicit P x P matrix G (small nets only)
    approx.diagnostics           # dict: condition numbers, ranks, failed assumption (None if none)

``rho = 0`` means the limit ``rho -> 0+``: the minimum-norm (pseudo-inverse) solution.  Every fast
path works in the dual (sample) space through :mod:`numerics.factors`; the explicit ``G`` exists
only for the dense reference (:mod:`numerics.dense`).

``loss="cross_entropy"`` (``Approximation(net, X, loss=...)``) is one transformation here, not a change
in any subclass: ``self.factors`` become those of ``J~ = S J`` (``S_n^T S_n = H_n``, ``C - 1`` rows per
sample, :mod:`numerics.losses`), so every subclass builds the same blocks of ``F = J^T H J / N`` with its
squared-loss code, and :meth:`Approximation.residual_matrix` maps ``p - y`` to ``M (p - y)``; then
``direction(p - y)`` is the cross-entropy step, ``operator()`` the transformed operator ``J~ G^+ J~^T / N``,
``probability_operator()`` ``H Theta_G Pi_H`` and ``logit_operator(X2)`` ``J(X2) G^+ J^T Pi_H / N``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from theory.assumptions import Flag, failed_assumption_text
from theory.validation import check_nonnegative

from ..diagnosis import (DUPLICATE_RTOL, NEAR_DUPLICATE_RTOL, Diagnosis, closest_pair, duplicate_pairs,
                         numerical_rank, zero_signal_samples)
from ..diagnosis import diagnose_layer_gram as _diagnose_layer_gram
from ..factors import JacobianFactors, layer_vjp
from ..losses import CrossEntropyGeometry, check_loss, transform_factors
from ..linalg import SingularSystemError
from ..network import MLP
from ..threads import single_blas_thread

__all__ = [
    "Approximation", "register_approximation", "reject_options", "duplicate_pairs", "closest_pair",
    "numerical_rank", "zero_signal_samples", "diagnose_layer_gram", "DUPLICATE_RTOL", "NEAR_DUPLICATE_RTOL"
]

# DUPLICATE_RTOL, NEAR_DUPLICATE_RTOL and the diagnosis helpers live in numerics.diagnosis (re-exported here).


_REGISTRY: Dict[str, type] = {}


def register_approximation(name: str, *, parametrised: bool = False):
    """Class decorator: register an :class:`Approximation` subclass under ``name`` (sets ``cls.name``).

    ``parametrised=True`` marks a family that needs an option to be one approximation (``pattern``
    needs ``pattern=S``): it is looked up by name but not listed in ``APPROXIMATIONS``.  One name,
    one class: registering a name twice from different classes is an error.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r} is not allowed: expected an identifier such as 'kfac'")

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Approximation)):
            raise TypeError(f"@register_approximation({name!r}) decorates Approximation subclasses, got {cls!r}")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"approximation {name!r} is registered twice: {old.__module__}.{old.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        cls.name = name
        cls.parametrised = parametrised
        _REGISTRY[name] = cls
        return cls

    return decorate


class Approximation(ABC):
    """Base class: validates the arguments, computes the Jacobian factors at ``X`` once.

    Subclasses set ``name`` and implement :meth:`_prepare` (consume options, build the dual
    system), :meth:`direction`, :meth:`operator` and :meth:`dense_matrix`.
    """

    name: ClassVar[str] = "base"
    parametrised: ClassVar[bool] = False

    def __init__(self, net: MLP, X, damping: float = 0.0, loss: str = "mse", **options: Any):
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a numerics.network.MLP, got {type(net).__name__}")
        self.net = net
        self.X = net.check_inputs(X)
        self.damping = check_nonnegative("damping", damping)
        # loss="cross_entropy": the factors of J~ = S J (numerics.losses), C - 1 rows per sample; the
        # subclass builds its squared-loss G from them, which is the same block of F = J^T H J / N
        self.loss = check_loss(loss)
        self.logit_factors: JacobianFactors = net.factors(self.X)
        self.cross_entropy: Optional[CrossEntropyGeometry] = None
        if self.loss == "cross_entropy":
            self.cross_entropy = CrossEntropyGeometry.at(self.logit_factors.outputs)
        self.factors: JacobianFactors = (self.logit_factors if self.cross_entropy is None
                                         else transform_factors(self.logit_factors, self.cross_entropy.S))
        self.diagnostics: Dict[str, Any] = {"approximation": self.name, "damping": self.damping,
                                            "failed_assumption": None, "flags": []}
        self.diagnostics["loss"] = self.loss
        # the dual system: layer Grams (N^2 M flops each, M / N times fewer than a forward GEMM) and N x N
        # factorisations -- small-matrix work that gains nothing from BLAS threads and collapses when the
        # cores are busy (numerics.threads); a subclass hands the threads back around any large GEMM with
        # all_blas_threads()
        with single_blas_thread():
            self._prepare(**options)

    # -- to implement ---------------------------------------------------------------------
    def _prepare(self, **options: Any) -> None:
        """Consume options and build the dual system (default: accept no options)."""
        reject_options(self.name, options)

    @abstractmethod
    def direction(self, residual) -> List[np.ndarray]:
        """``(G + rho I)^{-1} J^T r / N`` as L arrays shaped like ``net.params``."""

    @abstractmethod
    def operator(self, X2=None) -> np.ndarray:
        """``J(X2) (G + rho I)^{-1} J(X)^T / N``, shape ``(N2 C, N C)``."""

    @abstractmethod
    def dense_matrix(self) -> np.ndarray:
        """The explicit ``P x P`` matrix ``G`` (for small networks and tests)."""

    # -- shared helpers -------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        return self.factors.n_samples

    @property
    def n_outputs(self) -> int:
        return self.factors.n_outputs

    @property
    def depth(self) -> int:
        return self.factors.depth

    def residual_matrix(self, residual) -> np.ndarray:
        """Validate a residual ``f(X) - Y``: shape ``(N, C)`` (or ``N C`` sample-major), finite.

        Cross-entropy: ``p - Y`` (``(N, C)`` logits' classes, rows in ``range(H)``), returned transformed,
        ``M r`` (``(N, C - 1)``), so that ``J~^T (M r) = J^T r`` (:mod:`numerics.losses`)."""
        if self.cross_entropy is not None:
            r = np.asarray(residual, dtype=float)
            n, c = self.n_samples, self.cross_entropy.n_classes
            if r.shape == (n * c,):
                r = r.reshape(n, c)
            if r.shape != (n, c) or not np.all(np.isfinite(r)):
                raise ValueError(f"residual has shape {r.shape} (finite: {bool(np.all(np.isfinite(r)))}), expected "
                                 f"finite (N, C) = ({n}, {c}): p - Y for loss='cross_entropy'")
            self.cross_entropy.check_in_range("residual", r)
            return self.cross_entropy.transform_residual(r)
        r = np.asarray(residual, dtype=float)
        n, c = self.n_samples, self.n_outputs
        if r.shape == (n * c,) or (c == 1 and r.shape == (n,)):
            r = r.reshape(n, c)
        if r.shape != (n, c):
            raise ValueError(f"residual has shape {r.shape}, expected (N, C) = ({n}, {c})")
        if not np.all(np.isfinite(r)):
            raise ValueError("residual contains non-finite values")
        return r

    def factors_at(self, X2=None) -> JacobianFactors:
        """Factors at test inputs ``X2`` (the training factors when ``X2`` is None)."""
        if X2 is None:
            return self.factors
        if isinstance(X2, JacobianFactors):  # factors given directly (the cross-entropy logit operator)
            return X2
        if getattr(self, "cross_entropy", None) is not None:
            raise ValueError("X2 is not allowed with loss='cross_entropy' here: operator() is the squared-loss operator "
                             "of the transformed training factors ((N (C-1))^2); for test inputs use "
                             "logit_operator(X2), the map from p - y to the first-order logit change at X2")
        return self.net.factors(self.net.check_inputs(X2, "X2"))

    # -- the loss ---------------------------------------------------------------------------
    @property
    def outputs(self) -> np.ndarray:
        """The network outputs ``f(X)`` (logits for cross-entropy), ``(N, C)``, at the build parameters."""
        return self.logit_factors.outputs

    def loss_residual(self, Y) -> np.ndarray:
        """The residual of the loss at the build parameters: ``f(X) - Y`` or ``softmax(f(X)) - Y``."""
        return self.outputs - Y if self.cross_entropy is None else self.cross_entropy.residual(Y)

    def logit_operator(self, X2=None) -> np.ndarray:
        """``J(X2) (G + rho I)^{-1} J^T / N`` (``(N2 C, N C)``); for cross-entropy ``... J^T Pi_H / N``: the map
        from the residual ``p - y`` to the first-order logit change ``-Delta f / eta`` (``operator()`` is then the
        squared-loss operator of the transformed factors, ``(N (C-1))^2``)."""
        if self.cross_entropy is None:
            return self.operator(X2)
        if X2 is None:
            f2 = self.logit_factors
        elif isinstance(X2, JacobianFactors):
            f2 = X2
        else:
            f2 = self.net.factors(self.net.check_inputs(X2, "X2"))
        return self.cross_entropy.logit_operator(self.operator, f2)

    def probability_operator(self) -> np.ndarray:
        """Train set: ``H Theta_G Pi_H`` for cross-entropy (``= alpha Pi_H`` iff ``operator() = alpha I``),
        ``Theta_G`` for squared loss."""
        if self.cross_entropy is None:
            return self.operator()
        return self.cross_entropy.probability_operator(self.operator())

    def directions_from_dual(self, dual: List[np.ndarray]) -> List[np.ndarray]:
        """``x_l = J_l^T v_l`` for per-layer dual vectors ``v_l`` (``N C`` each), one GEMM per layer."""
        return [layer_vjp(self.factors, l, v) for l, v in enumerate(dual, start=1)]

    def gradient(self, residual) -> List[np.ndarray]:
        """``grad = J^T r / N`` per layer (the plain GD direction)."""
        r = self.residual_matrix(residual)
        return [layer_vjp(self.factors, l, r) / self.n_samples for l in range(1, self.depth + 1)]

    def set_flags(self, flags: List[Flag]) -> None:
        """``diagnostics["flags"] = flags`` and ``diagnostics["failed_assumption"]``, their messages."""
        self.diagnostics["flags"] = list(flags)
        self.diagnostics["failed_assumption"] = failed_assumption_text(flags)

    def layer_gram_failure(self, message: str, condition_number: float, assumption,
                           code: str = "layer_gram_singular", violated=None):
        """Record the flag of a singular layer system and return the :class:`SingularSystemError` to
        raise; the error carries the same flags (``err.flags``: the approximation object is lost).

        ``assumption`` is the sentence, or a :class:`numerics.diagnosis.Diagnosis` whose code (the named
        cause, e.g. ``zero_input_row``) replaces ``code``; the flag keeps the approximation's assumption
        ``violated``."""
        from theory.assumptions import FULL_ROW_RANK_JACOBIANS

        causes = ()
        if isinstance(assumption, Diagnosis):
            code, assumption, causes = assumption.code, assumption.message, assumption.roots
        self.set_flags([Flag(code, assumption, violated or FULL_ROW_RANK_JACOBIANS, causes)])
        err = SingularSystemError(message, condition_number, assumption)
        err.flags = list(self.diagnostics["flags"])
        return err

    def layer_gram_assumption(self, l: int, condition_number: float) -> Diagnosis:
        """Why the layer-``l`` Gram ``J_l J_l^T`` is (nearly) singular (:mod:`numerics.diagnosis`; ``str()``
        is the sentence, ``.code`` the cause)."""
        cut = 1.0 / float(getattr(self, "max_condition", 1e12))
        return diagnose_layer_gram(self.factors, self.X, l, condition_number, net=self.net, cut=cut)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(N={self.n_samples}, C={self.n_outputs}, L={self.depth}, damping={self.damping})"


def reject_options(name: str, options: Dict[str, Any]) -> None:
    """Unknown keyword options are an error (a typo must not be silently ignored)."""
    if options:
        raise TypeError(f"approximation {name!r} got unexpected option(s): {', '.join(sorted(options))}")


def diagnose_layer_gram(factors: JacobianFactors, X: np.ndarray, l: int, condition_number: float,
                        net: Optional[MLP] = None, cut: float = 1e-12):
    """Why ``J_l J_l^T`` is singular, as a :class:`numerics.diagnosis.Diagnosis` (``str()`` is the sentence):
    :func:`numerics.diagnosis.diagnose_layer_gram`, the one place the causes are named.  ``net`` is
    needed for the activation facts (homogeneity, ``phi(0)``, patterns); ``cut`` is ``1 / max_condition``."""
    if net is None:
        raise TypeError("diagnose_layer_gram needs net= (the MLP the factors come from)")
    return _diagnose_layer_gram(net, factors, X, l, condition_number, cut=cut)

