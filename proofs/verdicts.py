"""Verdict logic: from evidence to ``verified`` / ``refuted`` / ``conditional`` / ``inconclusive``.

A claim's check gathers pieces of evidence, turns each into a :class:`SubVerdict` with one of the
functions below, combines them with :func:`combine` and returns :func:`to_result`.  The rules:

**Comparison** (:func:`compare`) -- one number (or array) against its prediction:
    error = ``relative_error(measured, predicted)`` unless given;
    ``error <= tolerance`` -> verified; ``error > tolerance`` -> refuted;
    non-finite error (or measurement) -> inconclusive (a NaN is never a pass).

**Width sweep** (:func:`sweep`) -- the statement "the error is ``O(M^s*)`` and tends to 0" (``s*`` =
``expected_slope``, usually ``-1/2``: an upper bound on the error, so a faster decay satisfies it),
measured at widths ``M_1 < ... < M_k`` with ``n_i >= 1`` independent initialisations each, errors
``e_ij``.  ``s_max = s* + slope_band`` is the slowest decay the statement allows over the sweep's
range: ``slope_band = 0.2`` is what a sub-leading ``O(1/M)`` term of up to half the leading one at the
narrowest width does to the average slope of a 16x width range (``[log(1 - 1/8) - log(1 - 1/2)] /
log 16 = 0.20``).

Model.  ``log e_ij = log A + s log M_i + eps_ij`` with i.i.d. Gaussian ``eps`` (finite-width
fluctuations are relative: their spread is width-independent on a log scale).  The slope ``s`` and
its standard error ``se`` come from least squares on all ``n = sum n_i`` points (``n - 2`` degrees
of freedom, so ``(s - s_true) / se`` is Student-t).  The plateau test fits ``e(M) = c + a M^s_max``
to the per-width means by weighted least squares (weights from one pooled coefficient of variation,
``n - k`` degrees of freedom; plain least squares with ``k - 2`` when there are no replicates); a
vanishing error that decays at least like ``M^s_max`` gives ``c <= 0``.  Thresholds are Student-t
quantiles (:func:`sweep_threshold`): ``k`` at ``1 - level / (2 looks)`` for refutations (``level =
1e-4``), ``k_v`` at ``1 - verify_level / (2 looks)`` for verifications (``verify_level = 1e-2``),
Bonferroni over the two tests of each kind and the ``looks`` an adaptive sweep may take.

Rules, in order:
    1. fewer than 3 distinct widths, a non-finite or negative error, zeros mixed with non-zeros, or
       identical replicates at a width (not independent initialisations) -> inconclusive
       (all errors exactly 0 -> verified: the identity holds exactly at every width);
    2. plateau: ``c - k se_c > plateau_fraction * ebar(M_k)`` (fraction 1/2: a significant limit
       that explains at least half the error at the widest width) -> refuted, "levels off";
    3. too slow: ``s - k se > s_max`` -> refuted;
    4. ``se > max_stderr`` (0.5) -> inconclusive (too noisy to say anything);
    5. verification needs positive evidence -- ``s + k_v se < s_max`` (the decay is shown to be at
       least as fast as allowed) and ``c + k_v se_c < plateau_fraction * ebar(M_k)`` (a plateau of
       half the widest error is excluded) -- and, if ``final_tolerance`` is given, the widest mean error
       within it; otherwise inconclusive.
Without a stated rate (``expected_slope=None``; then ``final_tolerance`` is required) rules 2-3
become "``s - k se > -min_decay`` -> refuted (the error does not shrink)" and rule 5 "``s + k_v se <
-min_decay`` and the widest error within tolerance".

False-verdict probabilities (under the model; simulated in ``tests/proofs/test_verdicts.py``):
    * a TRUE statement (true slope <= ``s_max``, no plateau) is refuted with probability at most
      ``level = 1e-4`` per sweep, whatever the number of looks (simulated: 0 of 2000);
    * a FALSE statement is verified with probability at most ``verify_level = 1e-2`` at the boundary
      of what is excluded (a true slope exactly ``s_max``, or a plateau exactly half the widest error:
      measured 9 of 500 there, the weighted fit's t-approximation under skewed noise), and far less
      beyond it: a plateau of 0.7 x the widest error or a flat error was verified 0 times in 1000;
    * a true statement comes out *inconclusive* when the data are too few (rules 4-5); the adaptive
      sweeps (:mod:`proofs.adaptive`) then add initialisations and one wider width until a rule decides
      or the claim's budget is spent, and record what was spent.
    * "the error does NOT vanish" is judged by :func:`levels_off`: the plateau fitted at the slowest
      rate must exceed an absolute floor (round-off-level plateaus never count).

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

__all__ = [
    "SubVerdict", "compare", "sweep", "levels_off", "control", "combine", "derivation_verdict", "to_result",
    "sweep_threshold", "plateau_fit", "rules_text", "rules_parameters", "ROLES", "DEFAULT_LEVEL",
    "DEFAULT_VERIFY_LEVEL", "SWEEP_TESTS", "DEFAULT_MAX_STDERR", "DEFAULT_MIN_DECAY", "DEFAULT_SLOPE_BAND",
    "DEFAULT_PLATEAU_FRACTION"
]

DEFAULT_LEVEL = 1e-4
DEFAULT_VERIFY_LEVEL = 1e-2
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
    return {"level": DEFAULT_LEVEL, "verify_level": DEFAULT_VERIFY_LEVEL, "sweep_tests": SWEEP_TESTS,
            "slope_band": DEFAULT_SLOPE_BAND,
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
    of freedom -- the number of standard errors a sweep test uses (Bonferroni over the ``tests``
    tests that share ``level`` and over the ``looks`` of an adaptive sweep).

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
    """``(w_i, [e_ij])`` grouped by given width, from 1-D errors (one per width) or a ragged 2-D list
    (replicates per width); raises ``TypeError``/``ValueError`` naming what is wrong."""
    w = np.asarray(widths)
    if w.ndim != 1 or w.dtype == bool or not np.issubdtype(w.dtype, np.number):
        raise TypeError(f"widths must be a 1-D sequence of numbers, got {widths!r}")
    w = w.astype(float)
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ValueError(f"widths must be finite and positive, got {w.tolist()}")
    rows = list(errors)
    if len(rows) != w.size:
        raise ValueError(f"widths and errors must have equal length, got {w.size} widths and {len(rows)} errors")
    groups = []
    for r in rows:
        g = np.atleast_1d(np.asarray(r))
        if g.dtype == bool or not np.issubdtype(g.dtype, np.number):
            raise TypeError(f"errors must be numbers, got {r!r}")
        if g.size == 0:
            raise ValueError("every width needs at least one error")
        groups.append(g.astype(float).ravel())
    return w, groups


def plateau_fit(widths, groups, rate: float):
    """Weighted least squares ``e(M) = c + a M^rate`` on the per-width mean errors: ``(c, se_c, dof)``.

    With replicates the variance of a mean is ``cv^2 mean_i^2 / n_i`` with one pooled coefficient of
    variation (relative fluctuations are width-independent when the error scales; ``dof = n - k``);
    with one error per width it is the ordinary least-squares residual (``dof = k - 2``).  The errors
    are divided by their geometric mean first (no overflow or underflow at extreme scales); ``c`` and
    ``se_c`` are returned in the original units.  ``dof = 0`` when neither estimate exists.
    """
    w = np.asarray(widths, dtype=float)
    scale = float(np.exp(np.mean(np.log(np.concatenate(groups)))))
    groups = [g / scale for g in groups]
    means = np.array([g.mean() for g in groups])
    counts = np.array([g.size for g in groups], dtype=float)
    design = np.column_stack([np.ones_like(w), (w / w.max()) ** rate])
    n, k = int(counts.sum()), w.size
    if n - k >= 2:
        cv2 = sum(float(np.sum((g - g.mean()) ** 2)) / g.mean() ** 2 for g in groups) / (n - k)
        weights = counts / means ** 2
        normal = np.linalg.inv(design.T @ (weights[:, None] * design))
        coef = normal @ (design.T @ (weights * means))
        return float(coef[0]) * scale, float(np.sqrt(max(normal[0, 0] * cv2, 0.0))) * scale, n - k
    if k >= 3:
        coef, *_ = np.linalg.lstsq(design, means, rcond=None)
        resid = means - design @ coef
        s2 = float(resid @ resid) / (k - 2)
        cov = np.linalg.inv(design.T @ design) * s2
        return float(coef[0]) * scale, float(np.sqrt(max(cov[0, 0], 0.0))) * scale, k - 2
    return float("nan"), float("nan"), 0


def _check_sweep_parameters(**values):
    for key in ("slope_band", "max_stderr", "min_decay", "plateau_fraction"):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"{key}={v!r} is not allowed: expected a finite number >= 0")
    ft = values["final_tolerance"]
    if ft is not None and (isinstance(ft, bool) or not np.isfinite(ft) or ft <= 0):
        raise ValueError(f"final_tolerance={ft!r} is not allowed: expected a finite number > 0 or None")
    looks = values["looks"]
    if isinstance(looks, bool) or not isinstance(looks, (int, np.integer)) or looks < 1:
        raise ValueError(f"looks={looks!r} is not allowed: expected an integer >= 1")
    for key in ("level", "verify_level"):
        if not (0 < values[key] < 1):
            raise ValueError(f"{key}={values[key]!r} is not allowed: expected a probability in (0, 1)")


def sweep(name: str, widths: Sequence[float], errors, *, expected_slope: Optional[float] = None,
          slope_band: float = DEFAULT_SLOPE_BAND, final_tolerance: Optional[float] = None,
          level: float = DEFAULT_LEVEL, verify_level: float = DEFAULT_VERIFY_LEVEL, looks: int = 1,
          max_stderr: float = DEFAULT_MAX_STDERR, min_decay: float = DEFAULT_MIN_DECAY,
          plateau_fraction: float = DEFAULT_PLATEAU_FRACTION, assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of a width sweep of the statement "error = O(M^expected_slope) -> 0" (rules and their
    false-verdict probabilities in the module docstring); the log-log fit is kept in ``.fit``.

    ``errors[i]`` is the error at ``widths[i]``: one number, or a list of replicates (independent
    initialisations), which the statistics use directly.  ``looks`` is the number of times an
    adaptive sweep may evaluate this rule (:mod:`proofs.adaptive`), spent from both levels.

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
    _check_sweep_parameters(slope_band=slope_band, max_stderr=max_stderr, min_decay=min_decay,
                            plateau_fraction=plateau_fraction, final_tolerance=final_tolerance, looks=looks,
                            level=level, verify_level=verify_level)
    w, groups = _replicates(widths, errors)
    flat = np.concatenate(groups)
    numbers: Dict[str, Any] = {"widths": w.tolist(), "errors": [g.tolist() if g.size > 1 else float(g[0])
                                                                for g in groups],
                               "level": level, "verify_level": verify_level, "looks": looks,
                               "max_stderr": max_stderr, "min_decay": min_decay, "expected_slope": expected_slope,
                               "slope_band": slope_band, "final_tolerance": final_tolerance,
                               "plateau_fraction": plateau_fraction}

    def sub(verdict, reason, fit=None):
        return SubVerdict(name, verdict, f"{name}: {reason}", assumption, numbers=numbers, fit=fit)

    if np.unique(w).size < 3:
        return sub("inconclusive", f"{np.unique(w).size} widths; a slope with an error needs at least 3")
    if not np.all(np.isfinite(flat)):
        return sub("inconclusive", f"non-finite errors {numbers['errors']}")
    if np.all(flat == 0):
        return sub("verified", "error is exactly 0 at every width")
    if np.any(flat < 0):
        return sub("inconclusive", f"negative errors {flat[flat < 0].tolist()}: an error is a norm, >= 0")
    if np.any(flat == 0):
        return sub("inconclusive", f"errors {numbers['errors']} mix zeros and non-zeros: no power law to fit")
    copies = [float(wi) for wi, g in zip(w, groups) if g.size > 1 and np.all(g == g[0])]
    if copies:
        return sub("inconclusive", f"the replicates at width(s) {copies} are identical: not independent "
                                   "initialisations (a seed that ignores the replicate index?)")
    x = np.concatenate([np.full(g.size, wi) for wi, g in zip(w, groups)])
    fit = fit_power_law(x, flat / float(np.exp(np.mean(np.log(flat)))))
    fit = PowerLawFit(tuple(x.tolist()), tuple(flat.tolist()), fit.slope, fit.slope_stderr,
                      fit.prefactor * float(np.exp(np.mean(np.log(flat)))))
    s, se = fit.slope, fit.slope_stderr
    dof = flat.size - 2
    k = sweep_threshold(dof, level, looks)
    kv = sweep_threshold(dof, verify_level, looks)
    order = np.argsort(w)
    widest = float(groups[order[-1]].mean())
    numbers.update(slope=s, slope_stderr=se, prefactor=fit.prefactor, dof=dof, k=k, k_verify=kv,
                   widest_error=widest, n_errors=int(flat.size))
    slope_text = f"slope {s:.3f} +- {se:.3f} ({flat.size} errors)"
    if expected_slope is None:  # only a tolerance: the error must shrink and end within it
        if s - k * se > -min_decay:
            return sub("refuted", f"error does not shrink with width: {slope_text} (needs slope < -{min_decay} "
                                  f"at {k:.2f} stderr)", fit)
        if se > max_stderr:
            return sub("inconclusive", f"{slope_text}: too noisy (stderr > {max_stderr})", fit)
        if s + kv * se >= -min_decay:
            return sub("inconclusive", f"decrease not significant: {slope_text}", fit)
        if widest > final_tolerance:
            return sub("inconclusive", f"shrinking ({slope_text}) but the mean error {widest:.3g} at width "
                                       f"{w.max():g} > tolerance {final_tolerance:.3g}; larger widths needed", fit)
        return sub("verified", f"error shrinks with width: {slope_text}, {widest:.3g} at width {w.max():g}", fit)
    slowest = expected_slope + slope_band  # the slowest decay the statement allows over this range
    c, se_c, dof_c = plateau_fit(w, groups, slowest)
    numbers.update(slowest_rate=slowest, plateau=c, plateau_stderr=se_c, plateau_dof=dof_c)
    plateau_text = ""
    if dof_c >= 1 and np.isfinite(se_c):
        k_c, kv_c = sweep_threshold(dof_c, level, looks), sweep_threshold(dof_c, verify_level, looks)
        numbers.update(plateau_k=k_c, plateau_upper=c + kv_c * se_c)
        plateau_text = f"plateau c = {c:.3g} +- {se_c:.3g}"
        if c - k_c * se_c > plateau_fraction * widest:
            return sub("refuted", f"the error levels off: fit c + a M^{slowest:g} has {plateau_text} "
                                  f"(> {plateau_fraction:g} x the widest mean error {widest:.3g} at {k_c:.2f} "
                                  "stderr)", fit)
    if s - k * se > slowest:
        return sub("refuted", f"decays slower than stated: {slope_text}, stated O(M^{expected_slope:g}) "
                              f"with allowance {slope_band:g} (slope - {k:.2f} stderr > {slowest:g})", fit)
    if se > max_stderr:
        return sub("inconclusive", f"{slope_text}: too noisy (stderr > {max_stderr})", fit)
    if s + kv * se >= min(slowest, -min_decay):
        return sub("inconclusive", f"not yet shown to decay at least like M^{slowest:g}: {slope_text} "
                                   f"(needs slope + {kv:.2f} stderr < {min(slowest, -min_decay):g})", fit)
    if "plateau_upper" not in numbers or numbers["plateau_upper"] >= plateau_fraction * widest:
        bound = numbers.get("plateau_upper", float("nan"))
        return sub("inconclusive", f"{slope_text}, but a plateau of {plateau_fraction:g} x the widest error is not "
                                   f"excluded yet ({plateau_text}, upper bound {bound:.3g})", fit)
    if final_tolerance is not None and widest > final_tolerance:
        return sub("inconclusive", f"decaying ({slope_text}) but the mean error {widest:.3g} at width "
                                   f"{w.max():g} > tolerance {final_tolerance:.3g}; larger widths needed", fit)
    return sub("verified", f"error = O(M^{expected_slope:g}) over the sweep: {slope_text}, {plateau_text} "
                           f"(upper bound {numbers['plateau_upper']:.3g}), {widest:.3g} at width {w.max():g}", fit)


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


def levels_off(name: str, widths: Sequence[float], errors, *, floor: float, rate: float = -0.5,
               slope_band: float = DEFAULT_SLOPE_BAND, level: float = DEFAULT_LEVEL,
               verify_level: float = DEFAULT_VERIFY_LEVEL, assumption: Optional[str] = None) -> SubVerdict:
    """Verdict of "the error does NOT vanish as M -> infinity: its limit exceeds ``floor``".

    Fits ``e(M) = c + a M^(rate + slope_band)`` (the slowest decay a vanishing error could show over
    the sweep, which gives the smallest plateau: conservative) like :func:`plateau_fit`; verified iff
    ``c - k se_c > floor`` (``k`` at ``verify_level``), refuted iff ``c + k se_c < floor`` (``k`` at
    ``level``), inconclusive otherwise.  ``floor`` is an absolute error level that counts as
    "clearly not 0" for the claim (round-off-level plateaus, 1e-16, never pass).

    >>> levels_off("diag(F)", [64, 256, 1024], [[0.41, 0.39], [0.40, 0.42], [0.40, 0.39]], floor=0.02).verdict
    'verified'
    >>> levels_off("exact", [64, 256, 1024], [[2e-16, 3e-16], [2.5e-16, 2e-16], [3e-16, 2e-16]], floor=0.02).verdict
    'refuted'
    """
    if not (np.isfinite(floor) and floor > 0):
        raise ValueError(f"floor={floor!r} is not allowed: expected a finite number > 0")
    w, groups = _replicates(widths, errors)
    flat = np.concatenate(groups)
    numbers: Dict[str, Any] = {"widths": w.tolist(), "floor": floor, "rate": rate + slope_band,
                               "level": level, "verify_level": verify_level}
    if not (np.all(np.isfinite(flat)) and np.all(flat > 0)):
        return SubVerdict(name, "inconclusive", f"{name}: errors must be finite and positive", assumption,
                          numbers=numbers)
    c, se_c, dof = plateau_fit(w, groups, rate + slope_band)
    numbers.update(plateau=c, plateau_stderr=se_c, dof=dof)
    if dof < 1 or not np.isfinite(se_c):
        return SubVerdict(name, "inconclusive", f"{name}: too few errors for a plateau with an error", assumption,
                          numbers=numbers)
    k, kv = sweep_threshold(dof, level, 1, 1), sweep_threshold(dof, verify_level, 1, 1)
    text = f"fit c + a M^{rate + slope_band:g}: plateau c = {c:.3g} +- {se_c:.3g}, floor {floor:g}"
    if c - kv * se_c > floor:
        return SubVerdict(name, "verified", f"{name}: levels off above the floor, {text}", assumption, numbers=numbers)
    if c + k * se_c < floor:
        return SubVerdict(name, "refuted", f"{name}: its limit is below the floor, {text}", assumption,
                          numbers=numbers)
    return SubVerdict(name, "inconclusive", f"{name}: undecided, {text}", assumption, numbers=numbers)


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
