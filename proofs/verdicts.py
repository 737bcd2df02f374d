"""Verdict logic: from evidence to ``verified`` / ``refuted`` / ``conditional`` / ``inconclusive``.

A claim's check gathers pieces of evidence, turns each into a :class:`SubVerdict` with one of the
functions below, combines them with :func:`combine` and returns :func:`to_result`.  The rules:

**Comparison** (:func:`compare`) -- one number (or array) against its prediction:
    error = ``relative_error(measured, predicted)`` unless given;
    ``error <= tolerance`` -> verified; ``error > tolerance`` -> refuted;
    non-finite error (or measurement) -> inconclusive (a NaN is never a pass).

**Width sweep** (:func:`sweep`) -- the statement "the error tends to 0 like ``M^s*``" (``s*`` =
``expected_slope``, the stated rate; usually ``-1/2``), measured at widths ``M_1 < ... < M_k`` with
``n_i >= 1`` independent initialisations each, errors ``e_ij``.

Model.  ``log e_ij = log A + s log M_i + eps_ij`` with i.i.d. Gaussian ``eps`` (finite-width
fluctuations are relative: their spread is width-independent on a log scale).  The slope ``s`` and
its standard error ``se`` come from least squares on all ``n = sum n_i`` points (``n - 2`` degrees
of freedom, so ``(s - s_true) / se`` is Student-t).  The plateau test fits ``e(M) = c + a M^s*``
to the per-width means by weighted least squares (weights from one pooled coefficient of variation,
``n - k`` degrees of freedom; plain least squares with ``k - 2`` when there are no replicates).
Every test uses ``k = t_dof^{-1}(1 - level / (2 looks))`` standard errors (:func:`sweep_threshold`:
``level = 1e-4`` split over the two refutation tests and over the ``looks`` an adaptive sweep may
take, Bonferroni).  ``slope_band`` (default 0.2) is a *systematic* allowance for the sub-leading
``O(1/M)`` terms of a sweep that starts at moderate widths; it is not a statistical quantity.

Rules, in order:
    1. fewer than 3 distinct widths, a non-finite error, or zeros mixed with non-zeros -> inconclusive
       (all errors exactly 0 -> verified: the identity holds exactly at every width);
    2. plateau: ``c - k se_c > plateau_fraction * ebar(M_k)`` (default fraction 1/2: a significant
       limit that explains at least half the error at the widest width) -> refuted, "levels off";
    3. wrong rate: ``|s - s*| > slope_band + k se`` -> refuted;
    4. ``se > max_stderr`` (0.5) -> inconclusive (too noisy to say anything);
    5. ``s + k se >= -min_decay`` (decrease not significant) -> inconclusive;
    6. ``final_tolerance`` given and the mean error at the widest width above it -> inconclusive
       ("shrinking but not yet within tolerance");
    7. otherwise verified.
Without a stated rate (``expected_slope=None``; then ``final_tolerance`` is required) rules 2-3
become "``s - k se > -min_decay`` -> refuted (the error does not shrink)".

False-verdict probabilities (under the model; measured by simulation in
``tests/proofs/test_sweep_statistics.py`` and ``benchmarks/bench_verdict_rules.py``):
    * a TRUE statement (rate within ``slope_band`` of ``s*``, no plateau) is refuted with probability
      at most ``level = 1e-4`` per sweep, whatever the number of looks;
    * a FALSE statement "-> 0" whose error levels off at ``c`` is verified only if rule 2 misses the
      plateau *and* rule 3 misses the rate *and* the widest mean error is within tolerance; for a
      flat error (``s = 0``) the rate test alone fails with probability ``P(t > (|s*| - band) / se -
      k)``, below 1e-12 for the quick-mode sweeps (``se`` about 0.05);
    * a true statement comes out *inconclusive* when the data are too few (rules 4-6); the
      adaptive sweeps (:mod:`proofs.adaptive`) then add initialisations and one wider width until a
      rule decides or the claim's budget is spent, and record what was spent.

**Derivation** (:func:`derivation_verdict`) -- a :class:`theory.derivation.Derivation`:
    every step checked -> verified; any step failed -> refuted (the failed steps named);
    a step whose checker raised (and none failed) -> inconclusive; no steps -> inconclusive.

**Positive controls** (:func:`control`): a sub-verdict with ``role="control"`` runs the same
experiment where the theory says it succeeds.  Any control that is not verified makes the claim
``inconclusive`` (checked before everything else); a claim registered as expected ``refuted`` must
carry a control, otherwise its refutation is reported ``inconclusive`` (``Claim.run``).

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
...          sweep("isotropy", [64, 256, 1024], [[0.2, 0.21], [0.1, 0.098], [0.05, 0.051]], expected_slope=-0.5)]
>>> combine(parts).verdict
'verified'
>>> sweep("flat", [64, 256, 1024], [[0.5, 0.48], [0.49, 0.5], [0.51, 0.5]], expected_slope=-0.5).verdict
'refuted'
>>> sweep("three points, no replicates", [64, 256, 1024], [0.5, 0.49, 0.51], expected_slope=-0.5).verdict
'inconclusive'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from numerics.sweeps import PowerLawFit, fit_power_law
from proofs.claim import VERDICTS, ClaimResult, _jsonable, relative_error
from theory.derivation import Derivation
from theory.validation import check_choice

DEFAULT_LEVEL = 1e-4
SWEEP_TESTS = 2
DEFAULT_MAX_STDERR = 0.5
DEFAULT_MIN_DECAY = 0.1
DEFAULT_SLOPE_BAND = 0.2
DEFAULT_PLATEAU_FRACTION = 0.5
ROLES = ("evidence", "control")


@dataclass
class SubVerdict:
    """One piece of evidence and what it says: ``verdict`` with its ``reason`` (a sentence with
    the numbers), the ``numbers`` behind it, and -- for evidence gathered where an assumption is
    relaxed -- that ``assumption``.  ``role="control"`` marks a positive control (:func:`control`):
    the same experiment where the theory says it succeeds, which must be verified for the claim's
    other evidence to count."""

    name: str
    verdict: str
    reason: str = ""
    assumption: Optional[str] = None
    failed_assumption: Optional[str] = None
    numbers: Dict[str, Any] = field(default_factory=dict)
    fit: Optional[PowerLawFit] = None
    role: str = "evidence"

    def __post_init__(self):
        check_choice("verdict", self.verdict, VERDICTS)
        check_choice("role", self.role, ROLES)

    def to_dict(self) -> dict:
        d = {"name": self.name, "verdict": self.verdict, "reason": self.reason, "assumption": self.assumption,
             "failed_assumption": self.failed_assumption, "numbers": self.numbers, "role": self.role}
        if self.fit is not None:
            d["fit"] = self.fit.to_dict()
        return d


def rules_text() -> str:
    """The verdict rules as written in this module's docstring (without its examples): the text of
    the report appendix, so that the rules are written down once."""
    lines = []
    for line in (__doc__ or "").splitlines():
        if line.startswith(">>>") or line.startswith("..."):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def rules_parameters() -> Dict[str, Any]:
    """The numbers the rules use by default (recorded in every results document)."""
    return {"level": DEFAULT_LEVEL, "sweep_tests": SWEEP_TESTS, "slope_band": DEFAULT_SLOPE_BAND,
            "max_stderr": DEFAULT_MAX_STDERR, "min_decay": DEFAULT_MIN_DECAY,
            "plateau_fraction": DEFAULT_PLATEAU_FRACTION}


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


@lru_cache(maxsize=4096)
def sweep_threshold(dof: int, level: float = DEFAULT_LEVEL, looks: int = 1, tests: int = SWEEP_TESTS) -> float:
    """``k``: the one-sided Student-t quantile at ``1 - level / (tests * looks)`` with ``dof`` degrees
    of freedom -- the number of standard errors every sweep test uses (Bonferroni over the
    ``tests`` refutation tests of one sweep and the ``looks`` of an adaptive sweep).

    >>> round(sweep_threshold(18), 2)
    4.97
    >>> sweep_threshold(38) < sweep_threshold(18) < sweep_threshold(8)
    True
    """
    from scipy import stats

    if not (0 < level < 1):
        raise ValueError(f"level={level!r} is not allowed: expected a probability in (0, 1)")
    if int(dof) < 1:
        raise ValueError(f"dof={dof!r} is not allowed: expected an integer >= 1")
    return float(stats.t.ppf(1.0 - level / (max(int(tests), 1) * max(int(looks), 1)), int(dof)))


def _replicates(widths, errors):
    """``(w_i, [e_ij])`` grouped by distinct width, from 1-D errors (one per width) or a ragged
    2-D list (replicates per width)."""
    w = np.asarray(widths, dtype=float)
    if w.ndim != 1:
        raise ValueError(f"widths must be 1-D, got shape {w.shape}")
    rows = list(errors)
    if len(rows) != w.size:
        raise ValueError(f"widths and errors must have equal length, got {w.size} widths and {len(rows)} errors")
    groups = [np.atleast_1d(np.asarray(r, dtype=float)).ravel() for r in rows]
    if any(g.size == 0 for g in groups):
        raise ValueError("every width needs at least one error")
    return w, groups


def plateau_fit(widths, groups, rate: float):
    """Weighted least squares ``e(M) = c + a M^rate`` on the per-width mean errors: returns
    ``(c, se_c, dof)``.

    With replicates the variance of a mean is ``cv^2 mean_i^2 / n_i`` with one pooled coefficient of
    variation (relative fluctuations are width-independent when the error scales; ``dof = n - k``);
    with one error per width it is the ordinary least-squares residual (``dof = k - 2``).  Returns
    ``dof = 0`` when neither estimate exists.
    """
    w = np.asarray(widths, dtype=float)
    means = np.array([g.mean() for g in groups])
    counts = np.array([g.size for g in groups], dtype=float)
    design = np.column_stack([np.ones_like(w), w ** rate])
    n, k = int(counts.sum()), w.size
    if n - k >= 2:
        cv2 = sum(float(np.sum((g - g.mean()) ** 2)) / g.mean() ** 2 for g in groups) / (n - k)
        weights = counts / means ** 2
        cov = np.linalg.inv(design.T @ (weights[:, None] * design)) * cv2
        coef = cov @ (design.T @ (weights * means)) / cv2 if cv2 > 0 else np.linalg.lstsq(design, means, rcond=None)[0]
        return float(coef[0]), float(np.sqrt(max(cov[0, 0], 0.0))), n - k
    if k >= 3:
        coef, *_ = np.linalg.lstsq(design, means, rcond=None)
        resid = means - design @ coef
        s2 = float(resid @ resid) / (k - 2)
        cov = np.linalg.inv(design.T @ design) * s2
        return float(coef[0]), float(np.sqrt(max(cov[0, 0], 0.0))), k - 2
    return float("nan"), float("nan"), 0


def sweep(name: str, widths: Sequence[float], errors, *, expected_slope: Optional[float] = None,
          slope_band: float = DEFAULT_SLOPE_BAND, final_tolerance: Optional[float] = None,
          level: float = DEFAULT_LEVEL, looks: int = 1, max_stderr: float = DEFAULT_MAX_STDERR,
          min_decay: float = DEFAULT_MIN_DECAY, plateau_fraction: float = DEFAULT_PLATEAU_FRACTION,
          assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of a width sweep of the statement "error -> 0 like M^expected_slope" (rules and their
    false-verdict probabilities in the module docstring); the log-log fit is kept in ``.fit``.

    ``errors[i]`` is the error at ``widths[i]``: one number, or a list of replicates (independent
    initialisations), which the statistics use directly.  ``looks`` is the number of times an
    adaptive sweep may evaluate this rule (:mod:`proofs.adaptive`), spent from ``level``.

    >>> sweep("too noisy", [100, 200, 400], [0.1, 1.0, 0.01], expected_slope=-0.5).verdict
    'inconclusive'
    >>> sweep("flat", [64, 256, 1024, 4096], [[0.41, 0.39], [0.40, 0.42], [0.40, 0.39], [0.41, 0.40]],
    ...       expected_slope=-0.5).verdict
    'refuted'
    """
    if expected_slope is None and final_tolerance is None:
        raise ValueError(f"sweep {name!r}: give the stated rate (expected_slope) or a final_tolerance; "
                         "'the error shrinks somehow' cannot be verified at a stated confidence")
    if expected_slope is not None and not (np.isfinite(expected_slope) and expected_slope < 0):
        raise ValueError(f"expected_slope={expected_slope!r} is not allowed: expected a finite negative rate")
    w, groups = _replicates(widths, errors)
    flat = np.concatenate(groups)
    numbers: Dict[str, Any] = {"widths": w.tolist(), "errors": [g.tolist() if g.size > 1 else float(g[0])
                                                                for g in groups],
                               "level": level, "looks": looks, "max_stderr": max_stderr, "min_decay": min_decay,
                               "expected_slope": expected_slope, "slope_band": slope_band,
                               "final_tolerance": final_tolerance, "plateau_fraction": plateau_fraction}

    def sub(verdict, reason, fit=None):
        return SubVerdict(name, verdict, f"{name}: {reason}", assumption, numbers=numbers, fit=fit)

    if np.unique(w).size < 3:
        return sub("inconclusive", f"{np.unique(w).size} widths; a slope with an error needs at least 3")
    if not np.all(np.isfinite(flat)):
        return sub("inconclusive", f"non-finite errors {numbers['errors']}")
    if np.all(flat == 0):
        return sub("verified", "error is exactly 0 at every width")
    if np.any(flat <= 0):
        return sub("inconclusive", f"errors {numbers['errors']} mix zeros and non-zeros: no power law to fit")
    x = np.concatenate([np.full(g.size, wi) for wi, g in zip(w, groups)])
    fit = fit_power_law(x, flat)
    s, se = fit.slope, fit.slope_stderr
    dof = flat.size - 2
    k = sweep_threshold(dof, level, looks)
    order = np.argsort(w)
    widest = float(groups[order[-1]].mean())
    numbers.update(slope=s, slope_stderr=se, prefactor=fit.prefactor, dof=dof, k=k, widest_error=widest,
                   n_errors=int(flat.size))
    slope_text = f"slope {s:.3f} +- {se:.3f} (k = {k:.2f}, {flat.size} errors)"
    if expected_slope is not None:
        c, se_c, dof_c = plateau_fit(w, groups, expected_slope)
        numbers.update(plateau=c, plateau_stderr=se_c, plateau_dof=dof_c)
        if dof_c >= 1:
            k_c = sweep_threshold(dof_c, level, looks)
            numbers["plateau_k"] = k_c
            if c - k_c * se_c > plateau_fraction * widest:
                return sub("refuted", f"the error levels off: fit c + a M^{expected_slope:g} has plateau "
                                      f"c = {c:.3g} +- {se_c:.3g} (> {plateau_fraction:g} x the widest error "
                                      f"{widest:.3g} at {k_c:.2f} stderr)", fit)
        if abs(s - expected_slope) > slope_band + k * se:
            return sub("refuted", f"wrong rate: {slope_text}, stated {expected_slope:g} +- {slope_band:g}", fit)
    elif s - k * se > -min_decay:
        return sub("refuted", f"error does not shrink with width: {slope_text} "
                              f"(needs slope < -{min_decay} at k stderr)", fit)
    if se > max_stderr:
        return sub("inconclusive", f"{slope_text}: too noisy (stderr > {max_stderr})", fit)
    if s + k * se >= -min_decay:
        return sub("inconclusive", f"decrease not significant: {slope_text} (needs slope + k stderr "
                                   f"< -{min_decay})", fit)
    if final_tolerance is not None and widest > final_tolerance:
        return sub("inconclusive", f"shrinking ({slope_text}) but the mean error {widest:.3g} at width "
                                   f"{w.max():g} > tolerance {final_tolerance:.3g}; larger widths needed", fit)
    return sub("verified", f"error shrinks with width: {slope_text}, {widest:.3g} at width {w.max():g}", fit)


def control(part: SubVerdict, why: str = "") -> SubVerdict:
    """Mark ``part`` as a positive control: the same experiment run where the theory says it
    succeeds.  :func:`combine` makes the claim ``inconclusive`` unless every control is verified,
    so a broken experiment cannot read as a refutation (a claim registered as expected
    ``refuted`` must carry at least one; :meth:`proofs.claim.Claim.run` enforces it).

    >>> c = control(compare("tanh converges", 0.0, 0.9, tolerance=0.01, error=0.9))
    >>> combine([SubVerdict("relu diverges", "refuted"), c]).verdict
    'inconclusive'
    """
    if not isinstance(part, SubVerdict):
        raise TypeError(f"part must be a SubVerdict, got {type(part).__name__}")
    from dataclasses import replace

    reason = f"positive control: {part.reason}" + (f" ({why})" if why else "")
    return replace(part, role="control", reason=reason, assumption=None)


def negate(part: SubVerdict, name: str, why: str = "") -> SubVerdict:
    """The sub-verdict of the negated statement: verified <-> refuted, inconclusive stays.

    For claims of the form "the error does NOT vanish": the evidence is the sweep of "the error
    -> 0", whose refutation (a significant plateau or a wrong rate, at the sweep's level) verifies
    the negation.

    >>> negate(SubVerdict("-> 0", "refuted", "plateau"), "does not vanish").verdict
    'verified'
    """
    flip = {"verified": "refuted", "refuted": "verified"}
    verdict = flip.get(part.verdict, part.verdict)
    from dataclasses import replace

    return replace(part, name=name, verdict=verdict,
                   reason=f"{name}: {verdict} because '{part.reason}' is {part.verdict}" + (f" ({why})" if why else ""))


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
    failed_controls = [p for p in parts if p.role == "control" and p.verdict != "verified"]
    if failed_controls:
        return SubVerdict(name, "inconclusive", "positive control failed, so the experiment itself is in doubt: "
                          + _first_reasons(failed_controls))
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
