"""Measurements on finite networks: isotropy error, spectra, one-step loss ratios, kernel errors, width sweeps.

>>> import numpy as np
>>> isotropy_error(np.diag([2.0, 2.0, 2.0]))
0.0
>>> round(isotropy_error(np.diag([1.0, 3.0])), 6)     # a = 2: ||diag(-1, 1)|| / ||2 I|| = 1/2
0.5
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .factors import layer_grams
from .network import MLP, make_rng
from .sweeps import PowerLawFit, fit_power_law


def _square(name: str, A) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.size == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains non-finite values")
    return A


def isotropy_error(theta_g) -> float:
    """``||Theta_G - a I||_F / ||a I||_F`` with ``a`` = mean diagonal of ``Theta_G``.

    Zero iff ``Theta_G = a I``; raises if ``a = 0`` (nothing to be isotropic about).
    """
    T = _square("theta_g", theta_g)
    a = float(np.mean(np.diag(T)))
    if a == 0.0:
        raise ValueError("theta_g has zero mean diagonal: the isotropy error is undefined")
    return float(np.linalg.norm(T - a * np.eye(len(T))) / (abs(a) * np.sqrt(len(T))))


def spectrum(theta_g, symmetry_rtol: float = 1e-8) -> np.ndarray:
    """Eigenvalues of ``Theta_G``, descending.

    ``Theta_G = J G^+ J^T / N`` is symmetric in exact arithmetic; it is symmetrised (and ``eigvalsh``
    used) when its asymmetry is below ``symmetry_rtol`` relative, otherwise the general eigenvalues
    are returned (complex if they are).

    >>> spectrum(np.diag([1.0, 3.0, 2.0])).tolist()
    [3.0, 2.0, 1.0]
    """
    T = _square("theta_g", theta_g)
    scale = max(float(np.abs(T).max()), np.finfo(float).tiny)
    if np.abs(T - T.T).max() <= symmetry_rtol * scale:
        return np.linalg.eigvalsh((T + T.T) / 2)[::-1]
    lam = np.linalg.eigvals(T)
    lam = lam[np.argsort(-lam.real)]
    return lam.real if np.all(np.abs(lam.imag) <= symmetry_rtol * scale) else lam


def one_step_loss_ratio(net: MLP, X, Y, approximation="exact", learning_rate: Optional[float] = None,
                        damping: float = 0.0, **options: Any) -> float:
    """``loss(theta_1) / loss(theta_0)`` after one real NGD step on a COPY of ``net``.

    ``learning_rate=None`` uses ``1 / alpha`` from ``theory.isotropy`` (see :func:`numerics.training.train_ngd`).
    Isotropy with ``eta = 1 / alpha`` predicts 0 (linearised); the finite-width value measures the
    linearisation error.
    """
    from .training import train_ngd

    history = train_ngd(net.copy(), X, Y, approximation, learning_rate=learning_rate, steps=1,
                        damping=damping, gd=False, **options)
    if history.train_loss[0] == 0.0:
        raise ValueError("the initial loss is zero: the loss ratio is undefined")
    return history.train_loss[1] / history.train_loss[0]


@dataclass
class KernelError:
    """Relative Frobenius errors of the empirical layer-wise NTKs against the analytic ones."""

    layer_errors: List[float]
    ntk_error: float
    width: int


def layer_ntk_error(net: MLP, X, X2=None, **analytic_options: Any) -> KernelError:
    """``||K_l - Theta_l (x) I_C||_F / ||Theta_l (x) I_C||_F`` per layer and for the sum.

    ``K_l = J_l(X2) J_l(X)^T`` (no 1/N, :func:`numerics.factors.layer_gram`; ``X2 = None`` means X)
    converges to the analytic layer-wise NTK of ``theory.kernels.analytic_kernels`` (same depth,
    activation, variances) at rate O(M^-1/2).
    """
    from theory.kernels import analytic_kernels

    X = net.check_inputs(X)
    f = net.factors(X)
    if X2 is None:
        k = analytic_kernels(X, depth=net.depth, activation=net.activation.name, sigma_w2=net.sigma_w2,
                             sigma_b2=net.sigma_b2, **analytic_options)
        empirical = layer_grams(f)
    else:
        X2 = net.check_inputs(X2, "X2")
        # analytic kernels are rows x columns = X2 x X, matching J(X2) J(X)^T
        k = analytic_kernels(X2, X, depth=net.depth, activation=net.activation.name, sigma_w2=net.sigma_w2,
                             sigma_b2=net.sigma_b2, **analytic_options)
        empirical = layer_grams(f, net.factors(X2))
    eye = np.eye(net.n_outputs)
    errs = []
    for K, theta in zip(empirical, k.layer_ntk):
        ref = np.kron(theta, eye)
        errs.append(float(np.linalg.norm(K - ref) / np.linalg.norm(ref)))
    total_ref = np.kron(k.ntk, eye)
    total = float(np.linalg.norm(sum(empirical) - total_ref) / np.linalg.norm(total_ref))
    return KernelError(layer_errors=errs, ntk_error=total, width=int(max(net.widths[1:-1], default=net.widths[0])))


@dataclass
class WidthSweep:
    """A width sweep: mean error per width (over seeds), all errors, and the log-log fit."""

    widths: List[int]
    seeds: List[int]
    errors: List[float]
    errors_by_seed: List[List[float]]
    fit: PowerLawFit
    notes: List[str] = field(default_factory=list)

    @property
    def slope(self) -> float:
        return self.fit.slope

    @property
    def slope_stderr(self) -> float:
        return self.fit.slope_stderr

    def to_dict(self) -> Dict[str, Any]:
        return {"widths": self.widths, "seeds": self.seeds, "errors": self.errors,
                "errors_by_seed": self.errors_by_seed, "slope": self.slope,
                "slope_stderr": self.slope_stderr, "fit": self.fit.to_dict(), "notes": self.notes}


def width_sweep(fn: Callable[[int, int], float], widths: Sequence[int], seeds: Sequence[int]) -> WidthSweep:
    """Evaluate ``fn(width, seed) -> error`` on a grid, average over seeds, fit ``error ~ width^slope``.

    The fit (``numerics.sweeps.fit_power_law``) is on the seed-averaged errors, so its standard error
    reflects the scatter of those means around the power law.

    >>> sweep = width_sweep(lambda m, s: 3.0 / m ** 0.5, [100, 400, 1600], [0, 1])
    >>> round(sweep.slope, 9), round(sweep.slope_stderr, 9)
    (-0.5, 0.0)
    """
    widths = [int(w) for w in widths]
    seeds = [int(s) for s in seeds]
    if len(widths) < 3:
        raise ValueError(f"widths={widths} is not allowed: a sweep needs at least 3 widths to fit a slope")
    if not seeds:
        raise ValueError("seeds must not be empty")
    table = []
    for w in widths:
        row = []
        for s in seeds:
            e = float(fn(w, s))
            if not np.isfinite(e) or e <= 0:
                raise ValueError(f"fn({w}, {s}) = {e!r}: errors must be finite and positive for a log-log fit")
            row.append(e)
        table.append(row)
    means = [float(np.mean(r)) for r in table]
    return WidthSweep(widths=widths, seeds=seeds, errors=means, errors_by_seed=table,
                      fit=fit_power_law(widths, means))


def unit_norm_inputs(n: int, dim: int, seed) -> np.ndarray:
    """``n`` Gaussian inputs scaled to unit Euclidean norm (the paper's preprocessing), seeded.

    >>> X = unit_norm_inputs(3, 5, 0)
    >>> np.allclose(np.linalg.norm(X, axis=1), 1.0)
    True
    """
    X = make_rng(seed).standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)
