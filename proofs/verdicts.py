"""Verdict logic: from evidence to ``verified`` / ``refuted`` / ``conditional`` / ``inconclusive``.

A claim's check gathers pieces of evidence, turns each into a :class:`SubVerdict` with one of the
functions below, combines them with :func:`combine` and returns :func:`to_result`.  The rules:

**Comparison** (:func:`compare`) -- one number (or array) against its prediction:
    error = ``relative_error(measured, predicted)`` unless given;
    ``error <= tolerance`` -> verified; ``error > tolerance`` -> refuted;
    non-finite error (or measurement) -> inconclusive (a NaN is never a pass).

**Width sweep** (:func:`sweep`) -- an infinite-width statement measured at widths ``M_1 < ... < M_k``
with errors ``e_i``; fit ``log e = log A + s log M`` (:func:`numerics.sweeps.fit_power_law`, slope
``s`` with OLS standard error ``se``), ``k`` = ``k_stderr`` (default 2, about a 95 % one-sided level):
    1. fewer than 3 widths, a non-finite error, or a zero error among non-zero ones -> inconclusive
       (all errors exactly 0 -> verified: the identity holds exactly at every width);
    2. ``se > max_stderr`` (default 0.5: such a slope cannot tell ``M^-1/2`` from flat) -> inconclusive;
    3. ``s - k se > -min_decay`` (default ``min_decay`` 0.1: the error is significantly *not*
       shrinking at least like ``M^-0.1``) -> refuted, "error does not shrink with width";
    4. ``expected_slope`` given and ``|s - expected| > slope_band + k se`` -> refuted, "wrong slope";
    5. ``s + k se >= 0`` (decrease not significant) -> inconclusive;
    6. ``final_tolerance`` given and the error at the largest width above it -> inconclusive
       ("shrinking but not yet within tolerance; run --full");
    7. otherwise verified.

**Derivation** (:func:`derivation_verdict`) -- a :class:`theory.derivation.Derivation`:
    every step checked -> verified; any step failed -> refuted (the failed steps named);
    a step whose checker raised (and none failed) -> inconclusive; no steps -> inconclusive.

**Combination** (:func:`combine`) of sub-verdicts.  A sub-verdict with ``assumption=None`` is
*in scope* (it tests the statement where all its assumptions hold); one with ``assumption="..."``
probes the statement where that assumption is relaxed.  ``assumptions`` maps the claim's
assumptions, checked on the measured setting, to True/False.  In order:
    1. any in-scope sub-verdict refuted -> refuted;
    2. any in-scope sub-verdict inconclusive -> inconclusive;
    3. any assumption False, any out-of-scope sub-verdict refuted, or any sub-verdict conditional
       -> conditional, with ``failed_assumption`` naming them (the statement holds where its
       assumptions hold and fails, or was not established, where the named one fails);
    4. no sub-verdicts at all -> inconclusive; otherwise verified.

>>> parts = [compare("alpha", 3, 3.0000000001, tolerance=1e-9),
...          sweep("isotropy", [64, 256, 1024], [0.2, 0.1, 0.05], expected_slope=-0.5)]
>>> combine(parts).verdict
'verified'
>>> sweep("flat", [64, 256, 1024], [0.5, 0.49, 0.51]).verdict
'refuted'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from numerics.sweeps import PowerLawFit, fit_power_law
from proofs.claim import VERDICTS, ClaimResult, _jsonable, relative_error
from theory.derivation import Derivation
from theory.validation import check_choice

DEFAULT_K_STDERR = 2.0
DEFAULT_MAX_STDERR = 0.5
DEFAULT_MIN_DECAY = 0.1
DEFAULT_SLOPE_BAND = 0.2


@dataclass
class SubVerdict:
    """One piece of evidence and what it says: ``verdict`` with its ``reason`` (a sentence with
    the numbers), the ``numbers`` behind it, and -- for evidence gathered where an assumption is
    relaxed -- that ``assumption``."""

    name: str
    verdict: str
    reason: str = ""
    assumption: Optional[str] = None
    failed_assumption: Optional[str] = None
    numbers: Dict[str, Any] = field(default_factory=dict)
    fit: Optional[PowerLawFit] = None

    def __post_init__(self):
        check_choice("verdict", self.verdict, VERDICTS)

    def to_dict(self) -> dict:
        d = {"name": self.name, "verdict": self.verdict, "reason": self.reason, "assumption": self.assumption,
             "failed_assumption": self.failed_assumption, "numbers": self.numbers}
        if self.fit is not None:
            d["fit"] = self.fit.to_dict()
        return d


def compare(name: str, predicted, measured, tolerance: float, error: Optional[float] = None,
            assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of one comparison: verified iff the (relative) error is within ``tolerance``.

    >>> compare("alpha", 2, 2.5, tolerance=0.1).verdict
    'refuted'
    """
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance={tolerance!r} is not allowed: expected a finite number >= 0")
    try:
        m = np.asarray(measured, dtype=float)
        finite_measure = bool(np.all(np.isfinite(m)))
    except (TypeError, ValueError):
        finite_measure = True  # non-numeric measurements are compared through the given error
    if error is None:
        error = relative_error(measured, predicted) if finite_measure else float("nan")
    error = float(error)
    numbers = {"predicted": _jsonable(predicted), "measured": _jsonable(measured), "error": error,
               "tolerance": float(tolerance)}
    if not (finite_measure and np.isfinite(error)):
        return SubVerdict(name, "inconclusive", f"{name}: non-finite measurement or error ({error})",
                          assumption, numbers=numbers)
    if error <= tolerance:
        return SubVerdict(name, "verified", f"{name}: error {error:.3g} <= tolerance {tolerance:.3g}",
                          assumption, numbers=numbers)
    return SubVerdict(name, "refuted", f"{name}: error {error:.3g} > tolerance {tolerance:.3g}",
                      assumption, numbers=numbers)


def sweep(name: str, widths: Sequence[float], errors: Sequence[float], *, expected_slope: Optional[float] = None,
          slope_band: float = DEFAULT_SLOPE_BAND, final_tolerance: Optional[float] = None,
          k_stderr: float = DEFAULT_K_STDERR, max_stderr: float = DEFAULT_MAX_STDERR,
          min_decay: float = DEFAULT_MIN_DECAY, assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of a width sweep (rules in the module docstring); the fit is kept in ``.fit``.

    >>> sweep("too noisy", [100, 200, 400], [0.1, 1.0, 0.01]).verdict
    'inconclusive'
    """
    w = np.asarray(widths, dtype=float)
    e = np.asarray(errors, dtype=float)
    numbers: Dict[str, Any] = {"widths": w.tolist(), "errors": e.tolist(), "k_stderr": k_stderr,
                               "max_stderr": max_stderr, "min_decay": min_decay,
                               "expected_slope": expected_slope, "slope_band": slope_band,
                               "final_tolerance": final_tolerance}
    if w.shape != e.shape or w.ndim != 1:
        raise ValueError(f"widths and errors must be 1-D of equal length, got shapes {w.shape} and {e.shape}")

    def sub(verdict, reason, fit=None):
        return SubVerdict(name, verdict, f"{name}: {reason}", assumption, numbers=numbers, fit=fit)

    if w.size < 3:
        return sub("inconclusive", f"{w.size} widths; a slope with an error needs at least 3")
    if not np.all(np.isfinite(e)):
        return sub("inconclusive", f"non-finite errors {e.tolist()}")
    if np.all(e == 0):
        return sub("verified", "error is exactly 0 at every width")
    if np.any(e <= 0):
        return sub("inconclusive", f"errors {e.tolist()} mix zeros and non-zeros: no power law to fit")
    fit = fit_power_law(w, e)
    s, se = fit.slope, fit.slope_stderr
    numbers.update(slope=s, slope_stderr=se, prefactor=fit.prefactor)
    slope_text = f"slope {s:.3f} +- {se:.3f}"
    if se > max_stderr:
        return sub("inconclusive", f"{slope_text}: too noisy (stderr > {max_stderr})", fit)
    if s - k_stderr * se > -min_decay:
        return sub("refuted", f"error does not shrink with width: {slope_text} "
                              f"(needs slope < -{min_decay} at {k_stderr} stderr)", fit)
    if expected_slope is not None and abs(s - expected_slope) > slope_band + k_stderr * se:
        return sub("refuted", f"wrong slope: {slope_text}, expected {expected_slope} +- {slope_band}", fit)
    if s + k_stderr * se >= 0:
        return sub("inconclusive", f"decrease not significant: {slope_text}", fit)
    largest = float(e[int(np.argmax(w))])
    if final_tolerance is not None and largest > final_tolerance:
        return sub("inconclusive", f"shrinking ({slope_text}) but error {largest:.3g} at width {w.max():g} "
                                   f"> tolerance {final_tolerance:.3g}; larger widths needed (--full)", fit)
    return sub("verified", f"error shrinks with width: {slope_text}, {largest:.3g} at width {w.max():g}", fit)


def derivation_verdict(derivation: Derivation, name: Optional[str] = None, recheck: bool = False,
                       assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of a symbolic derivation (checks its steps first if any is unchecked or ``recheck``)."""
    if not isinstance(derivation, Derivation):
        raise TypeError(f"derivation must be a theory.derivation.Derivation, got {type(derivation).__name__}")
    name = name or derivation.title
    if not derivation.steps:
        return SubVerdict(name, "inconclusive", f"{name}: derivation has no steps", assumption)
    if recheck or any(s.status == "unchecked" for s in derivation.steps):
        derivation.check()
    failed = [s.name for s in derivation.steps if s.status == "failed"]
    errored = [f"{s.name} ({s.detail})" for s in derivation.steps if s.status == "error"]
    numbers = {"steps": len(derivation.steps), "failed": failed, "errored": errored}
    if failed:
        return SubVerdict(name, "refuted", f"{name}: step(s) failed: {', '.join(failed)}", assumption, numbers=numbers)
    if errored:
        return SubVerdict(name, "inconclusive", f"{name}: step checker(s) raised: {', '.join(errored)}",
                          assumption, numbers=numbers)
    return SubVerdict(name, "verified", f"{name}: all {len(derivation.steps)} steps checked", assumption,
                      numbers=numbers)


def combine(parts: Sequence[SubVerdict], assumptions: Optional[Mapping[str, bool]] = None,
            name: str = "claim") -> SubVerdict:
    """Combine sub-verdicts (rules in the module docstring).

    >>> ok = SubVerdict("train isotropy", "verified")
    >>> bad = SubVerdict("test kernel", "refuted", assumption="T invertible")
    >>> r = combine([ok, bad]); r.verdict, r.failed_assumption
    ('conditional', 'T invertible')
    """
    parts = list(parts)
    for p in parts:
        if not isinstance(p, SubVerdict):
            raise TypeError(f"parts must be SubVerdict objects, got {type(p).__name__}")
    assumptions = dict(assumptions or {})
    in_scope = [p for p in parts if p.assumption is None]
    refuted = [p for p in in_scope if p.verdict == "refuted"]
    if refuted:
        return SubVerdict(name, "refuted", _first_reasons(refuted))
    unsure = [p for p in in_scope if p.verdict == "inconclusive"]
    if unsure:
        return SubVerdict(name, "inconclusive", _first_reasons(unsure))
    failed = [a for a, ok in assumptions.items() if not ok]
    failed += [p.assumption for p in parts if p.assumption is not None and p.verdict == "refuted"]
    failed += [p.failed_assumption or p.name for p in parts if p.verdict == "conditional"]
    failed = list(dict.fromkeys(failed))  # unique, in order
    if failed:
        relaxed = [p for p in parts if p.verdict in ("refuted", "conditional")]
        text = f"fails where assumption does not hold: {', '.join(failed)}"
        return SubVerdict(name, "conditional", text + (f"; {_first_reasons(relaxed)}" if relaxed else ""),
                          failed_assumption="; ".join(failed))
    if not parts:
        return SubVerdict(name, "inconclusive", "no evidence was gathered")
    if len(parts) > 3:
        return SubVerdict(name, "verified", f"all {len(parts)} checks verified")
    return SubVerdict(name, "verified", "; ".join(p.reason for p in parts if p.reason))


def _first_reasons(parts: Sequence[SubVerdict], limit: int = 3) -> str:
    """The reasons of the first ``limit`` parts (the checks table lists them all)."""
    text = "; ".join(p.reason or p.name for p in parts[:limit])
    return text + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")


def to_result(parts: Sequence[SubVerdict], *, assumptions: Optional[Mapping[str, bool]] = None,
              predicted=None, measured=None, error: Optional[float] = None, width: Optional[int] = None,
              tolerance: Optional[float] = None, derivation: Optional[Derivation] = None,
              series: Optional[dict] = None, details: Optional[dict] = None, notes: str = "") -> ClaimResult:
    """A :class:`ClaimResult` whose verdict is :func:`combine` of ``parts``; every part (with its
    numbers and fit) goes into ``details["checks"]``, sweep fits into ``sweeps``."""
    parts = list(parts)
    overall = combine(parts, assumptions)
    details = dict(details or {})
    details["checks"] = [p.to_dict() for p in parts]
    if assumptions:
        details["assumptions_checked"] = {k: bool(v) for k, v in assumptions.items()}
    sweeps = {p.name: p.fit for p in parts if p.fit is not None}
    text = overall.reason if not notes else f"{notes} | {overall.reason}"
    return ClaimResult(verdict=overall.verdict, predicted=_jsonable(predicted), measured=_jsonable(measured),
                       error=None if error is None else float(error), width=width,
                       tolerance=None if tolerance is None else float(tolerance), details=details,
                       derivation=derivation, sweeps=sweeps, series=dict(series or {}),
                       failed_assumption=overall.failed_assumption, notes=text)
