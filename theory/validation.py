"""Argument checks shared by every layer.

Each check raises ``ValueError`` (or ``TypeError`` for the wrong kind of object) with a message
that names the argument, the offending value and what is allowed, so the CLI can print it as
one line.

>>> check_positive_int("depth", 3)
3
>>> check_positive_int("depth", 0)
Traceback (most recent call last):
...
ValueError: depth=0 is not allowed: expected an integer >= 1
"""
from __future__ import annotations

import numbers
from typing import Iterable, Optional

import numpy as np

__all__ = ["check_positive_int", "check_nonnegative", "check_choice", "check_matrix", "check_signals"]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name}={_short(value)} is not allowed: expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value} is not allowed: expected an integer >= {minimum}")
    return int(value)


def check_nonnegative(name: str, value, allow_zero: bool = True) -> float:
    """A finite real number ``>= 0`` (``> 0`` when ``allow_zero`` is false)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}={_short(value)} is not allowed: expected a finite real number")
    value = float(value)
    bound = ">= 0" if allow_zero else "> 0"
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} is not allowed: expected a finite real number {bound}")
    return value


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """One of a fixed set of names."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={_short(value)} is unknown; allowed: {', '.join(allowed)}")
    return value


def check_matrix(name: str, value, ncols: Optional[int] = None, min_rows: int = 1) -> np.ndarray:
    """A finite 2-D float64 array (copied only when the dtype or layout demands it).

    Complex, object and string arrays are refused with a ``TypeError`` naming the dtype (numpy would
    drop imaginary parts with only a warning).

    >>> check_matrix("X", np.ones((2, 2), dtype=complex))
    Traceback (most recent call last):
    ...
    TypeError: X must be a 2-D array of real numbers, got dtype complex128
    """
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is not None and kind not in "biuf":
        raise TypeError(f"{name} must be a 2-D array of real numbers, got dtype {value.dtype}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 2-D array of real numbers, got {type(value).__name__}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples x features), got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"{name} has shape {arr.shape}: needs at least {min_rows} row(s) and 1 column")
    if ncols is not None and arr.shape[1] != ncols:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected {ncols} (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains a non-finite value {float(arr[tuple(bad)])} at index {tuple(int(i) for i in bad)}"
        )
    return arr


def check_signals(name: str, value, n_samples: Optional[int] = None) -> np.ndarray:
    """Backward signals ``Delta`` as a finite float64 ``(N, C, M)`` array; ``(N, M)`` means ``C = 1``.

    ``n_samples`` (if given) is the ``N`` the signals must match (the rows of the layer inputs ``Z``).

    >>> check_signals("Delta", np.ones((3, 2))).shape
    (3, 1, 2)
    >>> check_signals("Delta", np.ones((3, 2)), n_samples=4)
    Traceback (most recent call last):
    ...
    ValueError: Delta has N = 3 samples, expected 4 (the rows of the layer inputs)
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}") from None
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty (N, M) or (N, C, M) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains a non-finite value {float(arr[bad])!r} at index {bad}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(f"{name} has N = {arr.shape[0]} samples, expected {n_samples} (the rows of the layer inputs)")
    return arr[:, None, :] if arr.ndim == 2 else arr
