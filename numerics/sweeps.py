"""Width sweeps: fit ``error ~ C * M^slope`` on log-log axes, with the slope's standard error.

>>> import numpy as np
>>> fit = fit_power_law([100, 400, 1600, 6400], [0.2, 0.1, 0.05, 0.025])
>>> round(fit.slope, 6), round(fit.slope_stderr, 6)
(-0.5, 0.0)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ["PowerLawFit", "fit_power_law"]


@dataclass(frozen=True)
class PowerLawFit:
    """Least-squares fit of ``log(error) = log(prefactor) + slope * log(width)``."""

    widths: tuple
    errors: tuple
    slope: float
    slope_stderr: float
    prefactor: float

    def predict(self, width) -> np.ndarray:
        return self.prefactor * np.asarray(width, dtype=float) ** self.slope

    def slope_within(self, expected: float, n_stderr: float = 3.0, abs_tol: float = 0.0) -> bool:
        """Whether the fitted slope agrees with ``expected`` within ``n_stderr`` standard errors
        plus an absolute allowance ``abs_tol`` (for finite-width bias of a short sweep)."""
        return abs(self.slope - expected) <= n_stderr * self.slope_stderr + abs_tol

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["errors"] = list(self.widths), list(self.errors)
        return d


def fit_power_law(widths: Sequence[float], errors: Sequence[float]) -> PowerLawFit:
    """Fit a power law to a width sweep (at least 3 points, all positive).

    The standard error is the usual OLS one, ``sqrt(s^2 / sum (x - xbar)^2)`` with
    ``s^2 = RSS / (n - 2)``.
    """
    w = np.asarray(widths, dtype=float)
    e = np.asarray(errors, dtype=float)
    if w.ndim != 1 or w.shape != e.shape:
        raise ValueError(f"widths and errors must be 1-D of equal length, got shapes {w.shape} and {e.shape}")
    if w.size < 3:
        raise ValueError(f"a width sweep needs at least 3 widths to fit a slope with an error, got {w.size}")
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ValueError(f"widths must be finite and positive, got {w.tolist()}")
    if not (np.all(np.isfinite(e)) and np.all(e > 0)):
        raise ValueError(f"errors must be finite and positive for a log-log fit, got {e.tolist()}")
    x, y = np.log(w), np.log(e)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        raise ValueError(f"widths must not all be equal, got {w.tolist()}")
    slope = float(xc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * x.mean())
    resid = y - (intercept + slope * x)
    s2 = float(resid @ resid) / (w.size - 2)
    return PowerLawFit(tuple(w.tolist()), tuple(e.tolist()), slope, float(np.sqrt(s2 / sxx)), float(np.exp(intercept)))
