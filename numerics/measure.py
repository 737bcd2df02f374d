"""Measurements on finite networks: isotropy error, spectra, one-step loss ratios, kernel errors, width sweeps.

>>> import numpy as np
>>> isotropy_error(np.diag([2.0, 2.0, 2.0]))
IsotropyError(error=0.0, alpha=2.0)
>>> round(isotropy_error(np.diag([1.0, 3.0])).error, 6)     # a = 2: ||diag(-1, 1)|| / ||2 I|| = 1/2
0.5
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from .factors import layer_grams
from .network import MLP, make_rng
from .sweeps import PowerLawFit, fit_power_law

__all__ = [
    "IsotropyError", "isotropy_error", "spectrum", "KernelError", "layer_ntk_error", "WidthSweep",
    "width_sweep", "unit_norm_inputs"
]


def _square(name: str, A) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.size == 0:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains non-finite values")
    return A


class IsotropyError(NamedTuple):
    """How far a function-space operator is from ``a I``: ``error = ||Theta_G - a I||_F / ||a I||_F``
    with ``alpha = a`` its mean diagonal (the measured isotropy constant).  Unpacks as ``(error, alpha)``."""

    error: float
    alpha: float


def isotropy_error(theta_g) -> IsotropyError:
    """``IsotropyError(||Theta_G - a I||_F / ||a I||_F, a)`` with ``a`` = mean diagonal of ``Theta_G``.

    Zero iff ``Theta_G = a I`` (Karakida & Osawa 2020, arXiv:2010.00879, Sec. 3: isotropy of the gradient
    in function space).  ``Theta_G``: square ``(N C, N C)``, finite.  Raises ``ValueError`` if
    ``a = 0`` (nothing to be isotropic about).

    >>> err, a = isotropy_error(np.array([[2.0, 0.0], [0.0, 4.0]]))
    >>> round(err, 6), a
    (0.333333, 3.0)
    """
    T = _square("theta_g", theta_g)
    a = float(np.mean(np.diag(T)))
    if a == 0.0:
        raise ValueError("theta_g has zero mean diagonal: the isotropy error relative to a I is undefined")
    return IsotropyError(float(np.linalg.norm(T - a * np.eye(len(T))) / (abs(a) * np.sqrt(len(T)))), a)


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
    """A width sweep, the project's one record of "an error measured over widths".

    ``errors[i]``: the mean error at ``widths[i]`` over its replicates (initialisations);
    ``replicates[i]``: every replicate's error there (``[[e] for e in errors]`` when only means exist,
    or read from ``adaptive``); ``fit``: the log-log power-law fit of the means (``None`` if not fitted);
    ``quantity``: what was measured (a label); ``extra``: further per-width columns (e.g. the measured
    ``alpha``); ``seeds``: the replicate seeds when a fixed list was used; ``adaptive``: the
    :class:`proofs.adaptive.AdaptiveSweep` when the sweep was judged adaptively (its ``parts`` are the
    sub-verdicts).  Figures: :func:`proofs.figures.width_sweep_series`.
    """

    quantity: str
    widths: List[int]
    errors: List[float]
    fit: Optional[PowerLawFit]
    extra: Dict[str, List[float]] = field(default_factory=dict)
    adaptive: Any = None
    seeds: List[int] = field(default_factory=list)
    table: Optional[List[List[float]]] = None
    notes: List[str] = field(default_factory=list)

    @property
    def slope(self) -> Optional[float]:
        return None if self.fit is None else self.fit.slope

    @property
    def slope_stderr(self) -> Optional[float]:
        return None if self.fit is None else self.fit.slope_stderr

    @property
    def parts(self) -> list:
        """The sweep's sub-verdicts (empty when it was not judged)."""
        return list(self.adaptive.parts) if self.adaptive is not None else []

    @property
    def replicates(self) -> List[List[float]]:
        """Errors of every replicate at each width (their means are ``errors``)."""
        if self.table is not None:
            return [list(map(float, row)) for row in self.table]
        if self.adaptive is not None:
            name = self.adaptive.parts[0].name
            return [list(self.adaptive.errors[name][w]) for w in self.widths]
        return [[float(e)] for e in self.errors]

    def to_dict(self) -> Dict[str, Any]:
        return {"quantity": self.quantity, "widths": list(self.widths), "errors": list(self.errors),
                "replicates": self.replicates, "seeds": list(self.seeds), "slope": self.slope,
                "slope_stderr": self.slope_stderr, "fit": None if self.fit is None else self.fit.to_dict(),
                "extra": {k: list(map(float, v)) for k, v in self.extra.items()}, "notes": list(self.notes)}


def width_sweep(fn: Callable[[int, int], float], widths: Sequence[int], seeds: Sequence[int],
                quantity: str = "error") -> WidthSweep:
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
    return WidthSweep(quantity, widths, means, fit_power_law(widths, means), seeds=seeds, table=table)


def unit_norm_inputs(n: int, dim: int, seed) -> np.ndarray:
    """``n`` Gaussian inputs scaled to unit Euclidean norm (the paper's preprocessing), seeded.

    >>> X = unit_norm_inputs(3, 5, 0)
    >>> np.allclose(np.linalg.norm(X, axis=1), 1.0)
    True
    """
    X = make_rng(seed).standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)
