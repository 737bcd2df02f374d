"""The project's one relative error, on the lowest floor (theory, numerics and proofs all use it).

Two norms, named by the ``norm`` argument:

* ``"fro"`` (default): ``||measured - reference||_F / ||reference||_F`` -- the whole-matrix error
  (operators, kernels, parameter updates);
* ``"max"``: ``max |measured - reference| / max |reference|`` -- the worst entry against the largest
  one (headline numbers of a claim, where one bad entry must show).

Both fall back to the absolute error when the reference is exactly zero.  Shapes must agree (a
scalar on either side stands for a constant array): no silent broadcasting of ``(P,)`` against
``(P, 1)``.  Non-finite input is an error naming the array and the first bad index, never NaN out.

>>> round(relative_error([1.0, 2.0], [1.0, 1.0]), 12)              # ||(0, 1)|| / ||(1, 1)|| = 1/sqrt 2
0.707106781187
>>> relative_error([1.0, 3.0], [1.0, 2.0], norm="max")              # max |(0, 1)| / max |(1, 2)|
0.5
>>> relative_error([1.0, 2.0], [[1.0], [2.0]])
Traceback (most recent call last):
...
ValueError: measured has shape (2,) but reference has shape (2, 1): a relative error needs equal shapes
"""
from __future__ import annotations

import numpy as np

__all__ = ["relative_error", "NORMS"]

NORMS = ("fro", "max")


def relative_error(measured, reference, norm: str = "fro") -> float:
    """Relative error of ``measured`` against ``reference`` in the norm ``"fro"`` or ``"max"`` (module doc)."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not allowed: expected one of {', '.join(NORMS)}")
    m, r = np.asarray(measured, dtype=float), np.asarray(reference, dtype=float)
    if r.shape != m.shape:
        if r.ndim == 0:
            r = np.full(m.shape, float(r))
        elif m.ndim == 0:
            m = np.full(r.shape, float(m))
        else:
            raise ValueError(f"measured has shape {m.shape} but reference has shape {r.shape}: "
                             f"a relative error needs equal shapes")
    for name, arr in (("measured", m), ("reference", r)):
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"{name} contains a non-finite value {float(arr[bad])!r} at index {bad}")
    if m.size == 0:
        return 0.0
    if norm == "fro":
        scale, diff = float(np.linalg.norm(r)), float(np.linalg.norm(m - r))
    else:
        scale, diff = float(np.max(np.abs(r))), float(np.max(np.abs(m - r)))
    return diff / scale if scale > 0 else diff
