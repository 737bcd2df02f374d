"""Figures for the report, drawn from ``ClaimResult.series`` (matplotlib, Agg backend, PNG).

The figure-series schema
------------------------
``ClaimResult.series`` maps a series name to ONE figure, a :class:`FigureSeries` dict::

    {"kind": one of SERIES_KINDS,
     "curves": [Curve, ...],                  # non-empty; labels unique within the series
     "title"?, "caption"?, "xlabel"?, "ylabel"?: str,
     "logy"?: bool,                           # loss_curves only (default True)
     "normalise"?: bool,                      # spectrum only: divide each curve by its mean
     "expected_slope"?: float,                # width_sweep only: shown in the legend
     "data"?: {str: value}}                   # numbers for readers of results.json, never drawn

and every curve is a :class:`Curve` dict::

    {"label": str,                            # the legend text
     "x": [numbers], "y": [numbers],          # same length, non-empty
     "role": "measured" | "predicted",        # predicted curves are drawn dashed (default measured)
     "approximation"?: str,                   # the registry name ("kfac", "block_diagonal", ...)
     "split"?: "train" | "test",              # required for loss_curves
     "width"?: int,                           # the network width the curve was measured at
     "fit"?: {"slope", "slope_stderr", "prefactor"},   # width_sweep only
     "alpha"?: float}                         # spectrum only: predicted isotropy constant

What the kinds mean (x / y):

``loss_curves``  step / loss (log y by default); a predicted 0 is marked at the axis floor.
``width_sweep``  width / error on log-log axes with the fitted power law (fitted here when
                 ``fit`` is absent and there are >= 3 positive points).
``spectrum``     eigenvalue index / eigenvalue of Theta_G (drawn sorted, descending; log y when all
                 positive), ``alpha`` as a dashed line.
``eta_scan``     eta/eta* / loss after one step (log y), a vertical line at eta = eta*.

Colours pair a predicted curve with the measured one it predicts: the key is
``(approximation, split)`` when the curve names its approximation.  The printed name of an
approximation is :func:`theory.registry.approximation_label` -- the builders below
(:func:`loss_curves`, :func:`sweep_curve`, :func:`spectrum_curve`, :func:`eta_curves`) put it in
the label, and report code groups curves by the ``approximation`` field, never by parsing labels.

:func:`check_series` is the one gate: it validates a series (``ValueError`` naming the series and
the field) and returns its canonical copy (numbers as plain floats); :func:`figure_series` builds
and checks one.  Producers build their series with these, so a malformed one fails where it is made.

>>> s = figure_series("width_sweep", [sweep_curve("error", [1, 2, 4], [1, .7, .5])], name="demo")
>>> s["kind"], s["curves"][0]["x"], s["curves"][0]["role"]
('width_sweep', [1.0, 2.0, 4.0], 'measured')
>>> check_series({"kind": "spectrum", "curves": [{"label": "kfac", "x": [1, 2], "y": [1.0]}]}, name="spec")
Traceback (most recent call last):
...
ValueError: series 'spec': field curves[0].y has 1 values, expected 2 (the length of its x)
"""
from __future__ import annotations

import io
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, TypedDict

import numpy as np

from numerics.sweeps import PowerLawFit, fit_power_law

__all__ = ["SERIES_KINDS", "ROLES", "SPLITS", "Fit", "Curve", "FigureSeries", "check_series", "figure_series",
           "sweep_curve", "sweep_series", "loss_curves", "spectrum_curve", "eta_curves", "series_from_fits",
           "colour_key", "render_png", "caption_of", "legend_columns", "ALPHA_LINE_RTOL", "approximation_label"]

SERIES_KINDS = ("loss_curves", "width_sweep", "spectrum", "eta_scan")
ROLES = ("measured", "predicted")
SPLITS = ("train", "test")


class Fit(TypedDict):
    """A fitted power law ``error = prefactor * width^slope``."""

    slope: float
    slope_stderr: float
    prefactor: float


class Curve(TypedDict, total=False):
    """One curve of a figure (see the module docstring for the fields)."""

    label: str
    x: List[float]
    y: List[float]
    role: str
    approximation: str
    split: str
    width: int
    fit: Fit
    alpha: float


class FigureSeries(TypedDict, total=False):
    """One figure: a kind and its curves (see the module docstring)."""

    kind: str
    curves: List[Curve]
    title: str
    caption: str
    xlabel: str
    ylabel: str
    logy: bool
    normalise: bool
    expected_slope: float
    data: Dict[str, Any]


#: Optional top-level fields: the kinds that may have them and their type check.
_TEXT = ("title", "caption", "xlabel", "ylabel")
_SERIES_OPTIONS = {"logy": ("loss_curves",), "normalise": ("spectrum",), "expected_slope": ("width_sweep",)}
#: Optional curve fields and the kinds that may have them (None: every kind).
_CURVE_OPTIONS = {"role": None, "approximation": None, "split": None, "width": None, "fit": ("width_sweep",),
                  "alpha": ("spectrum",)}


class _Check:
    """Error messages that name the series and the field."""

    def __init__(self, name: Any):
        self.name = str(name)

    def fail(self, field: str, problem: str):
        raise ValueError(f"series {self.name!r}: field {field} {problem}")

    def floats(self, field: str, values: Any) -> List[float]:
        if isinstance(values, (str, bytes, Mapping)) or values is None:
            self.fail(field, f"must be a non-empty list of numbers, got {type(values).__name__} {values!r:.80}")
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            self.fail(field, f"must be a non-empty list of numbers, got {values!r:.80}")
        if arr.ndim != 1 or arr.size == 0:
            self.fail(field, f"must be a non-empty 1-D list of numbers, got shape {arr.shape}")
        return [float(v) for v in arr]

    def number(self, field: str, value: Any, finite: bool = True) -> float:
        if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
            self.fail(field, f"must be a number, got {type(value).__name__} {value!r:.80}")
        try:
            x = float(value)  # numpy and SymPy numbers too
        except (TypeError, ValueError):
            self.fail(field, f"must be a number, got {type(value).__name__} {value!r:.80}")
        if finite and not math.isfinite(x):
            self.fail(field, f"must be finite, got {x}")
        return x


def _check_curve(check: _Check, kind: str, i: int, curve: Any) -> Curve:
    where = f"curves[{i}]"
    if not isinstance(curve, Mapping):
        check.fail(where, f"must be a dict with 'label', 'x', 'y', got {type(curve).__name__}")
    allowed = ("label", "x", "y") + tuple(_CURVE_OPTIONS)
    for key in curve:
        if key not in allowed:
            check.fail(f"{where}.{key}", f"is not allowed; allowed: {', '.join(allowed)}")
        kinds = _CURVE_OPTIONS.get(key)
        if kinds is not None and kind not in kinds and curve[key] is not None:
            check.fail(f"{where}.{key}", f"is only allowed in {', '.join(kinds)} series, not in {kind!r}")
    for key in ("label", "x", "y"):
        if key not in curve:
            check.fail(f"{where}.{key}", "is missing")
    label = curve["label"]
    if not isinstance(label, str) or not label.strip():
        check.fail(f"{where}.label", f"must be a non-empty string, got {label!r}")
    x = check.floats(f"{where}.x", curve["x"])
    y = check.floats(f"{where}.y", curve["y"])
    if len(y) != len(x):
        check.fail(f"{where}.y", f"has {len(y)} values, expected {len(x)} (the length of its x)")
    out: Curve = {"label": label, "x": x, "y": y}
    role = curve.get("role", "measured")
    if role not in ROLES:
        check.fail(f"{where}.role", f"is {role!r}; allowed: {', '.join(ROLES)}")
    out["role"] = role
    approximation = curve.get("approximation")
    if approximation is not None:
        if not isinstance(approximation, str) or not approximation.isidentifier():
            check.fail(f"{where}.approximation", f"must be a registry name such as 'kfac', got {approximation!r}")
        out["approximation"] = approximation
    split = curve.get("split")
    if split is None and kind == "loss_curves":
        check.fail(f"{where}.split", f"is missing; a loss curve needs one of {', '.join(SPLITS)}")
    if split is not None:
        if split not in SPLITS:
            check.fail(f"{where}.split", f"is {split!r}; allowed: {', '.join(SPLITS)}")
        out["split"] = split
    width = curve.get("width")
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
            check.fail(f"{where}.width", f"must be a positive integer, got {width!r}")
        out["width"] = int(width)
    fit = curve.get("fit")
    if fit is not None:
        if isinstance(fit, PowerLawFit):
            fit = {"slope": fit.slope, "slope_stderr": fit.slope_stderr, "prefactor": fit.prefactor}
        if not isinstance(fit, Mapping) or not {"slope", "prefactor"} <= set(fit):
            check.fail(f"{where}.fit", f"must be a dict with 'slope', 'slope_stderr', 'prefactor', got {fit!r:.80}")
        out["fit"] = {"slope": check.number(f"{where}.fit.slope", fit["slope"]),
                      "slope_stderr": check.number(f"{where}.fit.slope_stderr", fit.get("slope_stderr", math.nan),
                                                   finite=False),
                      "prefactor": check.number(f"{where}.fit.prefactor", fit["prefactor"])}
    if curve.get("alpha") is not None:
        out["alpha"] = check.number(f"{where}.alpha", curve["alpha"])
    if kind == "width_sweep" and not all(math.isfinite(v) and v > 0 for v in x):
        check.fail(f"{where}.x", f"must hold positive widths, got {x}")
    return out


def check_series(series: Any, name: Any = "series") -> FigureSeries:
    """Validate ``series`` against the schema (module docstring) and return its canonical copy.

    ``ValueError`` names the series (``name``), the field and what is allowed:

    >>> check_series({"kind": "histogram", "curves": []}, name="h")
    Traceback (most recent call last):
    ...
    ValueError: series 'h': field kind is 'histogram'; allowed: loss_curves, width_sweep, spectrum, eta_scan
    """
    check = _Check(name)
    if not isinstance(series, Mapping):
        check.fail("(the series itself)", f"must be a dict with 'kind' and 'curves', got {type(series).__name__}")
    kind = series.get("kind")
    if kind not in SERIES_KINDS:
        check.fail("kind", f"is {kind!r}; allowed: {', '.join(SERIES_KINDS)}")
    allowed = ("kind", "curves", "data") + _TEXT + tuple(k for k, kinds in _SERIES_OPTIONS.items() if kind in kinds)
    for key in series:
        if key not in allowed:
            check.fail(str(key), f"is not allowed in a {kind!r} series; allowed: {', '.join(allowed)}")
    curves = series.get("curves")
    if not isinstance(curves, (list, tuple)) or not curves:
        check.fail("curves", f"must be a non-empty list of curves, got {curves!r:.80}")
    out: FigureSeries = {"kind": kind, "curves": [_check_curve(check, kind, i, c) for i, c in enumerate(curves)]}
    seen: Dict[str, int] = {}
    for i, c in enumerate(out["curves"]):
        if c["label"] in seen:
            check.fail(f"curves[{i}].label", f"{c['label']!r} repeats curves[{seen[c['label']]}].label; "
                                             "labels must be unique within a series")
        seen[c["label"]] = i
    for key in _TEXT:
        if series.get(key) is not None:
            if not isinstance(series[key], str):
                check.fail(key, f"must be a string, got {type(series[key]).__name__}")
            out[key] = series[key]
    for key in ("logy", "normalise"):
        if key in series:
            if not isinstance(series[key], (bool, np.bool_)):
                check.fail(key, f"must be True or False, got {series[key]!r}")
            out[key] = bool(series[key])
    if series.get("expected_slope") is not None:
        out["expected_slope"] = check.number("expected_slope", series["expected_slope"])
    if "data" in series:
        if not isinstance(series["data"], Mapping):
            check.fail("data", f"must be a dict of named values, got {type(series['data']).__name__}")
        out["data"] = {str(k): v for k, v in series["data"].items()}
    return out


def figure_series(kind: str, curves: Sequence[Mapping], *, name: Any = "series", **options) -> FigureSeries:
    """Build and check one series: ``figure_series(kind, curves, title=..., data=..., ...)``
    (``options`` are the optional top-level fields; ``None`` values are left out)."""
    return check_series({"kind": kind, "curves": list(curves), **{k: v for k, v in options.items() if v is not None}},
                        name)


def approximation_label(name: str) -> str:
    """The printed name of an approximation: :func:`theory.registry.approximation_label`.

    >>> approximation_label("kfac"), approximation_label("block_tridiagonal")
    ('K-FAC', 'block tri-diagonal')
    """
    from theory.registry import approximation_label as registry_label

    return registry_label(name)


def sweep_curve(label: Optional[str], widths: Sequence, errors: Sequence, fit: Any = None, *,
                approximation: Optional[str] = None, role: str = "measured") -> Curve:
    """A width-sweep curve; ``fit`` a :class:`~numerics.sweeps.PowerLawFit`, a dict with ``slope``,
    ``slope_stderr``, ``prefactor``, or ``None``.  ``label=None`` prints the approximation's name.

    >>> sweep_curve(None, [1, 2], [0.5, 0.3], approximation="kfac")["label"]
    'K-FAC'
    """
    if label is None and approximation is None:
        raise ValueError("sweep_curve needs a label or approximation=; got neither")
    if isinstance(fit, PowerLawFit):
        fit = {"slope": fit.slope, "slope_stderr": fit.slope_stderr, "prefactor": fit.prefactor}
    curve: Curve = {"label": approximation_label(approximation) if label is None else label, "x": list(widths),
                    "y": [float(e) for e in errors], "role": role}
    if approximation is not None:
        curve["approximation"] = approximation
    if fit is not None:
        curve["fit"] = dict(fit)
    return curve


def sweep_series(quantity: str, widths: Sequence, errors: Sequence, fit: Any = None, *, name: Any = None,
                 replicates: Optional[Sequence[Sequence[float]]] = None, **options) -> FigureSeries:
    """A one-curve ``width_sweep`` series: ``quantity`` (the curve's label and the y label) vs width;
    ``replicates`` (per width, the errors of every initialisation) go to ``data``.

    >>> s = sweep_series("isotropy error", [64, 128], [0.2, 0.14], replicates=[[0.2], [0.1, 0.18]])
    >>> s["ylabel"], s["data"]["replicates"]
    ('isotropy error', [[0.2], [0.1, 0.18]])
    """
    data = dict(options.pop("data", None) or {})
    if replicates is not None:
        data["replicates"] = [[float(v) for v in rep] for rep in replicates]
    options.setdefault("xlabel", "width M")
    options.setdefault("ylabel", quantity)
    return figure_series("width_sweep", [sweep_curve(quantity, widths, errors, fit)], name=name or quantity,
                         data=data or None, **options)


def width_sweep_series(sweep, name: Any = None, **options) -> FigureSeries:
    """The figure series of a :class:`numerics.measure.WidthSweep`: its means vs width with the fit,
    labelled by its quantity; its extra per-width columns go to ``data``.

    >>> from numerics.measure import WidthSweep
    >>> width_sweep_series(WidthSweep("q", [1, 2], [1.0, 0.5], None, {"alpha": [3, 4]}))["data"]
    {'alpha': [3.0, 4.0]}
    """
    data = {k: list(map(float, v)) for k, v in sweep.extra.items()} or None
    return sweep_series(sweep.quantity, sweep.widths, sweep.errors, sweep.fit, name=name, data=data, **options)


def loss_curves(approximation: str, steps: Sequence, measured: Mapping[str, Sequence],
                predicted: Optional[Mapping[str, Sequence]] = None, width: Optional[int] = None) -> List[Curve]:
    """Loss-vs-step curves of one approximation: ``measured``/``predicted`` map a split (``"train"``,
    ``"test"``) to the losses per step.  Labels: ``"<name> <split> M=<width>"`` (measured) and
    ``"<name> <split> predicted"``, ``<name>`` from the registry; order: per split measured then predicted.

    >>> [c["label"] for c in loss_curves("kfac", [0, 1], {"train": [1, .1]}, {"train": [1, 0]}, width=64)]
    ['K-FAC train M=64', 'K-FAC train predicted']
    """
    name, predicted = approximation_label(approximation), dict(predicted or {})
    for split in list(measured) + list(predicted):
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not allowed; allowed: {', '.join(SPLITS)}")
    curves: List[Curve] = []
    for split in SPLITS:
        common = {"x": list(steps), "approximation": approximation, "split": split}
        if split in measured:
            curves.append({"label": f"{name} {split}" + (f" M={width}" if width is not None else ""),
                           "y": [float(v) for v in measured[split]], "role": "measured", **common,
                           **({"width": int(width)} if width is not None else {})})
        if split in predicted:
            curves.append({"label": f"{name} {split} predicted", "y": [float(v) for v in predicted[split]],
                           "role": "predicted", **common})
    return curves


def spectrum_curve(eigenvalues: Sequence, *, approximation: Optional[str] = None, label: Optional[str] = None,
                   alpha: Optional[float] = None, width: Optional[int] = None) -> Curve:
    """A spectrum curve (x = index 1..n); ``label=None`` prints the approximation's name."""
    if label is None and approximation is None:
        raise ValueError("spectrum_curve needs label= or approximation=; got neither")
    y = [float(v) for v in np.real(np.asarray(eigenvalues, dtype=complex)).ravel()]
    curve: Curve = {"label": approximation_label(approximation) if label is None else label,
                    "x": list(range(1, len(y) + 1)), "y": y, "role": "measured"}
    for key, value in (("approximation", approximation), ("alpha", alpha), ("width", width)):
        if value is not None:
            curve[key] = value
    return curve


def eta_curves(approximation: str, ratios: Sequence, measured: Sequence,
               predicted: Optional[Sequence] = None) -> List[Curve]:
    """One-step loss vs ``eta/eta*`` of one approximation: the measured curve and, when given, the
    predicted one (label ``"<name> predicted"``)."""
    name = approximation_label(approximation)
    curves: List[Curve] = [{"label": name, "x": list(ratios), "y": [float(v) for v in measured], "role": "measured",
                            "approximation": approximation}]
    if predicted is not None:
        curves.append({"label": f"{name} predicted", "x": list(ratios), "y": [float(v) for v in predicted],
                       "role": "predicted", "approximation": approximation})
    return curves


def series_from_fits(fits: Mapping[str, PowerLawFit], title: str = "") -> FigureSeries:
    """A ``width_sweep`` series drawing the fitted sweeps of a ClaimResult (``result.sweeps``)."""
    return figure_series("width_sweep", [sweep_curve(name, f.widths, f.errors, f) for name, f in fits.items()],
                         name=title or "sweeps", title=title or None)


def colour_key(curve: Mapping) -> Any:
    """The key a curve's colour is chosen by: a predicted curve shares the colour of the measured
    curve it predicts.  ``(approximation, split)`` when the curve names its approximation, else the
    label without its ``predicted`` / ``M=`` parts.

    >>> colour_key({"label": "K-FAC train M=512", "approximation": "kfac", "split": "train"})
    ('kfac', 'train')
    >>> colour_key({"label": "NTK predicted"})
    'NTK'
    """
    if curve.get("approximation"):
        return curve["approximation"], curve.get("split")
    return str(curve["label"]).replace(" predicted", "").replace("predicted", "").split(" M=")[0].strip()


def _fit_of(curve: Mapping, w: np.ndarray, e: np.ndarray) -> Optional[Dict[str, float]]:
    if curve.get("fit") is not None:
        return dict(curve["fit"])
    if w.size >= 3 and np.all(e > 0) and np.all(np.isfinite(e)) and np.unique(w).size > 1:
        f = fit_power_law(w, e)
        return {"slope": f.slope, "slope_stderr": f.slope_stderr, "prefactor": f.prefactor}
    return None


def _log_safe(values: np.ndarray, dynamic_range: float = 1e-18) -> np.ndarray:
    """Values for a log axis: non-positive values and values below ``dynamic_range`` times the
    largest (e.g. a predicted loss of exactly 0 stored as 1e-300) become gaps (NaN), so the axis
    does not span hundreds of decades."""
    v = np.asarray(values, dtype=float)
    top = np.nanmax(np.where(np.isfinite(v), v, np.nan)) if np.any(np.isfinite(v)) else np.nan
    keep = np.isfinite(v) & (v > 0) & (v >= (top * dynamic_range if np.isfinite(top) else 0))
    return np.where(keep, v, np.nan)


def _mark_exact_zeros(ax, curves: Sequence[Curve], palette) -> None:
    """A predicted loss of exactly 0 (one-step convergence at eta = 1/alpha) has no place on a log
    axis: draw the dashed prediction down to the axis floor and mark the zero steps with a
    downward triangle there, so the prediction stays visible next to the measured curve."""
    floor = ax.get_ylim()[0]
    for c in curves:
        if c["role"] != "predicted":
            continue
        steps, ys = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
        zero = np.isfinite(ys) & (ys <= 0)
        if not zero.any():
            continue
        colour = palette.get(colour_key(c), ("k", "o"))[0]
        shown = np.where(zero, floor, ys)
        ax.plot(steps, shown, ls="--", lw=1.2, color=colour)
        ax.plot(steps[zero], np.full(int(zero.sum()), floor), ls="none", marker="v", ms=6, color=colour,
                clip_on=False)
    ax.set_ylim(bottom=floor)


#: Normalised spectra: an alpha/mean within this of 1 is drawn as the one shared isotropic line.
ALPHA_LINE_RTOL = 1e-6


def _draw(ax, series: FigureSeries) -> None:
    colours = iter(__import__("matplotlib").rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    kind, curves = series["kind"], series["curves"]
    if kind == "loss_curves":
        palette: Dict[Any, tuple] = {}
        logy = series.get("logy", True)
        for c in curves:
            dashed = c["role"] == "predicted"
            key = colour_key(c)
            if key not in palette:
                # colours repeat after 10 keys: the marker changes with each round of colours
                palette[key] = (next(colours), "osD^v"[(len(palette) // 10) % 5])
            colour, marker = palette[key]
            ys = np.asarray(c["y"], dtype=float)
            ax.plot(np.asarray(c["x"], dtype=float), _log_safe(ys) if logy else ys, ls="--" if dashed else "-",
                    marker=None if dashed else marker, lw=1.2 if dashed else 1.6, ms=3, label=c["label"],
                    color=colour)
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(series.get("xlabel", "step t"))
        ax.set_ylabel(series.get("ylabel", "train loss"))
        if logy:
            ax.set_yscale("log")
            _mark_exact_zeros(ax, curves, palette)
    elif kind == "width_sweep":
        for i, c in enumerate(curves):
            w, e = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
            colour, marker = next(colours), "osD^v"[(i // 10) % 5]  # colours repeat after 10: vary the marker
            fit = _fit_of(c, w, e)
            text = f" (slope {fit['slope']:.3f} ± {fit['slope_stderr']:.3f})" if fit is not None else ""
            ax.plot(w, _log_safe(e), marker, ls="--" if c["role"] == "predicted" else "none", color=colour,
                    label=c["label"] + text)
            if fit is not None:
                grid = np.geomspace(w.min(), w.max(), 50)
                ax.plot(grid, fit["prefactor"] * grid ** fit["slope"], "-", color=colour, lw=1, label="_nolegend_")
        if series.get("expected_slope") is not None:
            ax.plot([], [], " ", label=f"expected slope {series['expected_slope']}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(series.get("xlabel", "width M"))
        ax.set_ylabel(series.get("ylabel", "error"))
    elif kind == "spectrum":
        normalise = series.get("normalise", False)
        eig = [np.asarray(c["y"], dtype=float) for c in curves]
        alphas: List[Optional[float]] = [c.get("alpha") for c in curves]
        if normalise:
            means = [float(np.mean(v)) for v in eig]
            eig = [v / m if m != 0 else v for v, m in zip(eig, means)]
            alphas = [a / m if a is not None and m else None for a, m in zip(alphas, means)]
        positive = all(np.all(v > 0) for v in eig)
        if normalise and any(abs(a - 1.0) <= ALPHA_LINE_RTOL for a in alphas if a is not None):
            # normalised: every isotropic prediction is the same line alpha/mean = 1; draw it once
            ax.axhline(1.0, color="grey", ls="--", lw=1, label="alpha / mean = 1 (isotropic prediction)")
        for i, (c, vals, alpha) in enumerate(zip(curves, eig, alphas)):
            colour, marker = next(colours), ".osD^v"[(i // 10) % 6]  # colours repeat after 10: vary the marker
            vals = np.sort(vals)[::-1]
            ax.plot(np.arange(1, vals.size + 1), vals, "--" if c["role"] == "predicted" else "-", marker=marker,
                    color=colour, ms=4, label=c["label"])
            if alpha is not None and not (normalise and abs(alpha - 1.0) <= ALPHA_LINE_RTOL):
                ax.axhline(alpha, color=colour, ls="--", lw=1, label=f"{c['label']}: alpha = {alpha:.4g}")
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel(series.get("xlabel", "eigenvalue index"))
        ax.set_ylabel(series.get("ylabel", r"eigenvalue of $\Theta_G$" + (" / mean" if normalise else "")))
    elif kind == "eta_scan":
        palette = {}
        for c in curves:
            key = colour_key(c)
            if key not in palette:
                palette[key] = next(colours)
            x = np.asarray(c["x"], dtype=float)
            if c["role"] == "predicted":
                ax.plot(x, _log_safe(c["y"]), "--", color=palette[key], lw=1, label=c["label"])
            else:
                ax.plot(x, _log_safe(c["y"]), "o-", ms=3, color=palette[key], label=c["label"])
        ax.axvline(1.0, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel(series.get("xlabel", r"$\eta / \eta^*$"))
        ax.set_ylabel(series.get("ylabel", "loss after one step"))


def legend_columns(labels: Sequence[str], width_chars: int = 100) -> int:
    """Columns for a legend below the axes: as many (up to 3) as fit ``width_chars`` characters of the
    longest label plus the 6-character handle.

    >>> legend_columns(["exact train M=4096"] * 10), legend_columns(["x" * 70] * 10)
    (3, 1)
    """
    longest = max((len(str(label)) for label in labels), default=0) + 6
    return int(max(1, min(3, width_chars // max(longest, 1))))


def render_png(series: Mapping, title: str = "", name: Any = None) -> bytes:
    """Draw one series (schema above) and return the PNG bytes; ``ValueError`` (naming the series
    ``name``, default ``title``, and the field) for a series that breaks the schema."""
    series = check_series(series, name if name is not None else (title or "series"))
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # object API: no global pyplot state, thread/test safe

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    _draw(ax, series)
    ax.set_title(series.get("title") or title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) > 8:
        # a crowded legend goes below the axes in as many columns as its longest label allows (7 pt text
        # is ~0.055 in per character: 3 columns of <= 32 characters fit 6.4 in), and the figure grows
        # by one legend row (0.16 in) per row
        ncol = legend_columns(labels)
        rows = -(-len(labels) // ncol)
        fig.set_size_inches(6.4, 4.2 + 0.16 * rows)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, frameon=False)
    elif labels:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def caption_of(series: Mapping[str, Any], default: str) -> str:
    """The caption of a figure: the series' ``caption``, else its ``title``, else ``default``."""
    return str(series.get("caption") or series.get("title") or default)
