"""Figures for the report, drawn from ``ClaimResult.series`` (matplotlib, Agg backend, PNG).

The figure-series schema
------------------------
``ClaimResult.series`` maps a series name to ONE figure, a :class:`FigureSeries` dict::

    {"kind": one of SERIES_KINDS,
     "curves": [Curve, ...],                  # non-empty; labels unique within the series (or group)
     "title"?, "caption"?, "xlabel"?, "ylabel"?: str,
     "logy"?: bool,                           # loss_curves (default True) and xy (default False)
     "logx"?: bool,                           # xy only (default False)
     "normalise"?: bool,                      # spectrum only: divide each curve by its mean
     "expected_slope"?: float,                # width_sweep only: a reference line of that slope
     "autofit"?: bool,                        # width_sweep only: fit a power law when no fit is given
                                              # (default True; False when the data is no power law)
     "vlines"?: [{"x": float, "label": str}], # eta_scan and xy: marked x positions (e.g. singular depths)
     "data"?: {str: value}}                   # numbers for readers of results.json, never drawn

and every curve is a :class:`Curve` dict::

    {"label": str,                            # the legend text
     "x": [numbers], "y": [numbers],          # same length, non-empty
     "role": "measured" | "predicted",        # predicted curves are drawn dashed (default measured)
     "approximation"?: str,                   # the registry name ("kfac", "block_diagonal", ...)
     "split"?: "train" | "test",              # required for loss_curves
     "width"?: int,                           # the network width the curve was measured at
     "fit"?: {"slope", "slope_stderr", "prefactor"},   # width_sweep only
     "alpha"?: float,                         # spectrum only: predicted isotropy constant
     "replicates"?: [[numbers], ...],         # per x, every initialisation's
                                              # value (drawn as dots: the spread behind y)
     "group"?: str,                           # width_sweep only: the panel of a small-multiples figure
     "autofit"?: bool}                        # width_sweep only: this curve's own autofit (the overview
                                              # keeps a series' autofit=False on its curves)

What the kinds mean (x / y):

``loss_curves``  step / loss (log y by default); a predicted 0 is marked at the axis floor.
``width_sweep``  width / error on log-log axes with the fitted power law (fitted here when
                 ``fit`` is absent and there are >= 3 positive points).
``spectrum``     eigenvalue index / eigenvalue of Theta_G (drawn sorted, descending; log y when all
                 positive), ``alpha`` as a dashed line.
``eta_scan``     eta/eta* / loss after one step (log y), a vertical line at eta = eta*.
``xy``           any x / y (linear axes unless ``logx``/``logy``): e.g. alpha against depth, or
                 measured against predicted.

Drawing rules every kind follows: a predicted curve has the colour of the measured curve it
predicts (:func:`colour_key`); a predicted value of exactly 0 on a log axis (one-step convergence)
is drawn as a dashed line down to the axis floor and marked there with a downward triangle (the
caption says so, :func:`explanations`); curves at round-off level (below :data:`ROUNDOFF`, exact
identities) next to ordinary errors get their own panel instead of stretching the axis; log axes
label at most three ticks per decade, width axes the measured widths.

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
           "colour_key", "render_png", "caption_of", "legend_columns", "ALPHA_LINE_RTOL", "approximation_label",
           "xy_curve", "explanations", "describe", "ROUNDOFF", "ZERO_MARK", "render_figure", "printed", "figure_text",
           "METHOD_COLOURS", "split_quantity", "has_diverged"]

SERIES_KINDS = ("loss_curves", "width_sweep", "spectrum", "eta_scan", "xy")
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
    replicates: List[List[float]]
    group: str


class FigureSeries(TypedDict, total=False):
    """One figure: a kind and its curves (see the module docstring)."""

    kind: str
    curves: List[Curve]
    title: str
    caption: str
    xlabel: str
    ylabel: str
    logy: bool
    logx: bool
    normalise: bool
    expected_slope: float
    autofit: bool
    vlines: List[Dict[str, Any]]
    data: Dict[str, Any]


#: Optional top-level fields: the kinds that may have them and their type check.
_TEXT = ("title", "caption", "xlabel", "ylabel")
_SERIES_OPTIONS = {"logy": ("loss_curves", "xy"), "logx": ("xy",), "normalise": ("spectrum",),
                   "expected_slope": ("width_sweep",), "autofit": ("width_sweep",), "vlines": ("eta_scan", "xy"),
                   "panel_ylabels": ("width_sweep", "loss_curves")}
#: Optional curve fields and the kinds that may have them (None: every kind).
_CURVE_OPTIONS = {"role": None, "approximation": None, "split": None, "width": None, "fit": ("width_sweep",),
                  "alpha": ("spectrum",), "replicates": ("width_sweep", "eta_scan", "xy", "loss_curves"),
                  "group": ("width_sweep", "loss_curves"), "autofit": ("width_sweep",)}


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
    replicates = curve.get("replicates")
    if replicates is not None:
        if isinstance(replicates, (str, bytes, Mapping)) or not hasattr(replicates, "__len__") or \
                len(replicates) != len(x):
            check.fail(f"{where}.replicates", f"must be a list of {len(x)} lists (one per x), got {replicates!r:.80}")
        out["replicates"] = [check.floats(f"{where}.replicates[{i}]", rep) for i, rep in enumerate(replicates)]
    if curve.get("autofit") is not None:
        if not isinstance(curve["autofit"], (bool, np.bool_)):
            check.fail(f"{where}.autofit", f"must be True or False, got {curve['autofit']!r}")
        out["autofit"] = bool(curve["autofit"])
    group = curve.get("group")
    if group is not None:
        if not isinstance(group, str) or not group.strip():
            check.fail(f"{where}.group", f"must be a non-empty string, got {group!r}")
        out["group"] = group
    if kind == "width_sweep" and not all(math.isfinite(v) and v > 0 for v in x):
        check.fail(f"{where}.x", f"must hold positive widths, got {x}")
    return out


def check_series(series: Any, name: Any = "series") -> FigureSeries:
    """Validate ``series`` against the schema (module docstring) and return its canonical copy.

    ``ValueError`` names the series (``name``), the field and what is allowed:

    >>> check_series({"kind": "histogram", "curves": []}, name="h")
    Traceback (most recent call last):
    ...
    ValueError: series 'h': field kind is 'histogram'; allowed: loss_curves, width_sweep, spectrum, eta_scan, xy
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
    seen: Dict[tuple, int] = {}
    for i, c in enumerate(out["curves"]):
        key = (c.get("group"), c["label"])
        if key in seen:
            check.fail(f"curves[{i}].label", f"{c['label']!r} repeats curves[{seen[key]}].label; "
                                             "labels must be unique within a series (within a group)")
        seen[key] = i
    for key in _TEXT:
        if series.get(key) is not None:
            if not isinstance(series[key], str):
                check.fail(key, f"must be a string, got {type(series[key]).__name__}")
            out[key] = series[key]
    for key in ("logy", "logx", "normalise", "autofit"):
        if key in series:
            if not isinstance(series[key], (bool, np.bool_)):
                check.fail(key, f"must be True or False, got {series[key]!r}")
            out[key] = bool(series[key])
    if series.get("expected_slope") is not None:
        out["expected_slope"] = check.number("expected_slope", series["expected_slope"])
    if series.get("vlines") is not None:
        marks = series["vlines"]
        if not isinstance(marks, (list, tuple)):
            check.fail("vlines", f"must be a list of {{'x', 'label'}} dicts, got {type(marks).__name__}")
        out["vlines"] = []
        for i, mark in enumerate(marks):
            if not isinstance(mark, Mapping) or not isinstance(mark.get("label"), str):
                check.fail(f"vlines[{i}]", f"must be a dict with 'x' (a number) and 'label' (a string), got {mark!r:.80}")
            out["vlines"].append({"x": check.number(f"vlines[{i}].x", mark.get("x")), "label": mark["label"]})
    if series.get("panel_ylabels") is not None:
        labels = series["panel_ylabels"]
        if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in labels.items()):
            check.fail("panel_ylabels", f"must be a dict of panel (group) -> y label strings, got {labels!r:.80}")
        out["panel_ylabels"] = dict(labels)
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
                 replicates: Optional[Sequence[Sequence[float]]] = None, label: Optional[str] = None,
                 approximation: Optional[str] = None, **options) -> FigureSeries:
    """A one-curve ``width_sweep`` series: ``quantity`` (the curve's label and the y label) vs width;
    ``replicates`` (per width, the errors of every initialisation) go to the curve and are drawn as
    dots around it.

    >>> s = sweep_series("isotropy error", [64, 128], [0.2, 0.14], replicates=[[0.2], [0.1, 0.18]])
    >>> s["ylabel"], s["curves"][0]["replicates"]
    ('isotropy error', [[0.2], [0.1, 0.18]])
    """
    options.setdefault("xlabel", "width M")
    options.setdefault("ylabel", quantity)
    curve = sweep_curve(label or quantity, widths, errors, fit, approximation=approximation)
    if replicates is not None:
        curve["replicates"] = [[float(v) for v in rep] for rep in replicates]
    return figure_series("width_sweep", [curve], name=name or quantity, **options)


def width_sweep_series(sweep, name: Any = None, **options) -> FigureSeries:
    """The figure series of a :class:`numerics.measure.WidthSweep`: its means vs width with the fit,
    labelled by its quantity, every initialisation's error as ``replicates`` (when there are several
    per width); its extra per-width columns go to ``data``.

    >>> from numerics.measure import WidthSweep
    >>> width_sweep_series(WidthSweep("q", [1, 2], [1.0, 0.5], None, {"alpha": [3, 4]}))["data"]
    {'alpha': [3.0, 4.0]}
    """
    data = {k: list(map(float, v)) for k, v in sweep.extra.items()} or None
    try:
        replicates = [list(map(float, r)) for r in sweep.replicates]
    except (AttributeError, KeyError, IndexError, TypeError):
        replicates = None
    if replicates is not None and (len(replicates) != len(sweep.widths) or all(len(r) <= 1 for r in replicates)):
        replicates = None  # one value per width: nothing to spread
    quantity, approximation = split_quantity(sweep.quantity)
    if approximation is not None:  # "isotropy error of kfac": label "K-FAC", y label "isotropy error"
        options.setdefault("ylabel", quantity)
        options.setdefault("label", approximation_label(approximation))
        options.setdefault("approximation", approximation)
    return sweep_series(sweep.quantity, sweep.widths, sweep.errors, sweep.fit, name=name, data=data,
                        replicates=replicates, **options)


def split_quantity(quantity: str) -> tuple:
    """``"test-output error of kfac vs analytic predictor"`` -> ``("test-output error vs analytic predictor",
    "kfac")``: a quantity naming a registry approximation (``... of <name>``) and that name, else
    ``(quantity, None)``.

    >>> split_quantity("one-step linearisation error of block_diagonal")
    ('one-step linearisation error', 'block_diagonal')
    >>> split_quantity("isotropy error vs width")
    ('isotropy error vs width', None)
    """
    import re

    from theory.registry import theory_names

    names = "|".join(sorted(theory_names(), key=len, reverse=True))
    m = re.fullmatch(rf"(.*?) of ({names})\b(.*)", str(quantity))
    if not m:
        return str(quantity), None
    return (m.group(1) + m.group(3)).strip(), m.group(2)


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


def xy_curve(label: Optional[str], x: Sequence, y: Sequence, *, role: str = "measured",
             approximation: Optional[str] = None, replicates: Optional[Sequence[Sequence[float]]] = None) -> Curve:
    """A curve of an ``xy`` (or ``eta_scan``) series; ``label=None`` prints the approximation's name.

    >>> xy_curve(None, [2, 3], [1, 1], approximation="block_tridiagonal", role="predicted")["label"]
    'block tri-diagonal'
    """
    if label is None and approximation is None:
        raise ValueError("xy_curve needs a label or approximation=; got neither")
    curve: Curve = {"label": approximation_label(approximation) if label is None else label, "x": list(x),
                    "y": [float(v) for v in y], "role": role}
    if approximation is not None:
        curve["approximation"] = approximation
    if replicates is not None:
        curve["replicates"] = [[float(v) for v in rep] for rep in replicates]
    return curve


def series_from_fits(fits: Mapping[str, PowerLawFit], title: str = "") -> FigureSeries:
    """A ``width_sweep`` series drawing the fitted sweeps of a ClaimResult (``result.sweeps``)."""
    return figure_series("width_sweep", [sweep_curve(name, f.widths, f.errors, f) for name, f in fits.items()],
                         name=title or "sweeps", title=title or None)


# ----------------------------------------------------------------------------- drawing
#: Curves whose every value is below this are at round-off level (the residual of an exact identity):
#: next to ordinary errors they get their own panel instead of stretching the log axis.
ROUNDOFF = 1e-9
#: The marker of a predicted 0 at the floor of a log axis (and its printed form in captions).
ZERO_MARK = "v"
#: The marker of a diverged (NaN / inf) measured value, drawn at the top edge of the axes.
DIVERGED_MARK = "x"
#: A predicted value below this fraction of the largest value of its axis counts as 0 (a stand-in
#: such as 1e-300 for an exact 0).
_ZERO_RANGE = 1e-18
#: Normalised spectra: an alpha/mean within this of 1 is drawn as the one shared isotropic line.
ALPHA_LINE_RTOL = 1e-6
#: Two curves whose values differ by less than this (relative, at every point) are drawn as coinciding.
COINCIDE_RTOL = 0.03
#: Two measured curves this close (relative, at 4 in 5 points and both ends) lie on top of each other as drawn.
OVERLAP_RTOL = 0.05
#: One colour per approximation in every figure (tab10 order); curves of other quantities take the tab10
#: colours no approximation of the same figure uses, then :data:`_EXTRA_COLOURS`.
METHOD_COLOURS = {"exact": "#1f77b4", "block_diagonal": "#ff7f0e", "block_tridiagonal": "#2ca02c",
                  "kfac": "#d62728", "unit_wise": "#9467bd", "diagonal": "#8c564b", "ekfac": "#e377c2",
                  "banded": "#17becf", "pattern": "#bcbd22"}
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
_EXTRA_COLOURS = ("#000000", "#e6ab02", "#542788", "#b35806", "#01665e", "#c51b7d", "#4d4d4d", "#8073ac")
#: One marker per approximation (print in grey still tells them apart); widths / damping values of one
#: approximation or quantity (variants) take :data:`_VARIANT_MARKERS` in order.
METHOD_MARKERS = {"exact": "o", "block_diagonal": "s", "block_tridiagonal": "D", "kfac": "^", "unit_wise": "p",
                  "diagonal": "h", "ekfac": "<", "banded": ">", "pattern": "d"}
_VARIANT_MARKERS = ("o", "s", "D", "^", "<", ">", "p", "h")
_DASHES = ("--", ":", "-.")
_ROLE_WORDS = ("predicted", "measured", "derived")


def colour_key(curve: Mapping) -> Any:
    """The key a curve's colour is chosen by: a predicted curve shares the colour of the measured
    curve it predicts.  The approximation when the curve names one (one colour per method, train and
    test alike), else the label without its ``predicted`` / ``measured`` / ``derived`` words and ``M=`` part.

    >>> colour_key({"label": "K-FAC train M=512", "approximation": "kfac", "split": "train"})
    'kfac'
    >>> colour_key({"label": "NTK predicted"}), colour_key({"label": "C=2 derived"}) == colour_key({"label": "C=2 measured"})
    ('NTK', True)
    """
    if curve.get("approximation"):
        return curve["approximation"]
    label = str(curve["label"]).split(" M=")[0]
    return " ".join(w for w in label.split() if w.strip("()") not in _ROLE_WORDS).strip()


def _variant(curve: Mapping) -> str:
    """What tells curves of one colour apart: the text from ``M=`` on (width, damping), role words removed."""
    label = str(curve["label"])
    if " M=" not in label:
        return ""
    return " ".join(w for w in label.split(" M=", 1)[1].split() if w.strip("()") not in _ROLE_WORDS)


def _quantity(curve: Mapping) -> str:
    """A curve's label without its split, width and role words: what it measures."""
    return " ".join(w for w in _strip_split(str(curve["label"]).split(" M=")[0]).split()
                    if w.strip("()") not in _ROLE_WORDS)


def _numbers_blanked(text: str) -> str:
    import re

    return re.sub(r"\d+(?:\.\d+)?(?:e-?\d+)?", "#", text)


class _Styles:
    """Colour, marker and dash of every curve of one figure (all its panels): a fixed colour per
    approximation (:data:`METHOD_COLOURS`), other quantities the colours left over; variants of one
    colour (several widths) different markers; several predictions of one curve different dashes."""

    def __init__(self, curves: Sequence[Mapping]):
        import re

        keys = list(dict.fromkeys(colour_key(c) for c in curves))
        used = {METHOD_COLOURS[k] for k in keys if k in METHOD_COLOURS}
        # a family of runs that differ only in a number (damping c = 0.001, 0.003, 0.01): one ramp of
        # greys, light to dark in the order given, never a colour that could be read as a method
        families: Dict[str, List[Any]] = {}
        for k in keys:
            if k not in METHOD_COLOURS and isinstance(k, str) and re.search(r"=\s*\d", k):  # a parameter value
                families.setdefault(_numbers_blanked(k), []).append(k)
        ramps = {k: i for members in families.values() if len(members) >= 3 for i, k in enumerate(members)}
        sizes = {k: len(members) for members in families.values() for k in members}
        free = [c for c in _TAB10 if c not in used and not (ramps and c == "#7f7f7f")] + list(_EXTRA_COLOURS)
        # a prediction with no measured curve of its own (one isotropic prediction for relu and tanh): neutral
        measured_keys = {colour_key(c) for c in curves if c["role"] == "measured"}
        self.colour: Dict[Any, str] = {}
        for k in keys:
            if k not in measured_keys and k not in METHOD_COLOURS:
                self.colour[k] = "#555555"
            elif k in METHOD_COLOURS:
                self.colour[k] = METHOD_COLOURS[k]
            elif k in ramps:
                shade = 0.62 * (1 - ramps[k] / (sizes[k] - 1))
                self.colour[k] = "#" + f"{int(round(255 * shade)):02x}" * 3
            else:
                self.colour[k] = free.pop(0) if free else "#333333"
        self.variants: Dict[Any, List[str]] = {}
        for c in curves:
            v = _variant(c)
            if v:
                lst = self.variants.setdefault(colour_key(c), [])
                if v not in lst:
                    lst.append(v)
        # several quantities of one approximation in one panel (its test-output and linearisation errors):
        # one colour, a marker each
        self.quantities: Dict[Any, List[str]] = {}
        for c in curves:
            if c["role"] == "measured":
                lst = self.quantities.setdefault(colour_key(c), [])
                if _quantity(c) not in lst:
                    lst.append(_quantity(c))

    def __getitem__(self, curve: Mapping) -> tuple:
        """``(colour, marker)`` of a curve."""
        key = colour_key(curve)
        colour = self.colour.get(key, "#333333")
        variants = self.variants.get(key, [])
        if len(variants) > 1:
            v = _variant(curve)
            return colour, _VARIANT_MARKERS[(variants.index(v) if v in variants else 0) % len(_VARIANT_MARKERS)]
        own = METHOD_MARKERS.get(key, "o") if isinstance(key, str) else "o"
        quantities = self.quantities.get(key, [])
        if len(quantities) > 1 and curve["role"] == "measured" and _quantity(curve) in quantities:
            others = [m for m in _VARIANT_MARKERS if m != own]
            i = quantities.index(_quantity(curve))
            return colour, own if i == 0 else others[(i - 1) % len(others)]
        return colour, own

    def several(self, curve: Mapping) -> bool:
        """True when the curve's colour has several variants (its markers tell them apart)."""
        return len(self.variants.get(colour_key(curve), [])) > 1


def _palette(curves: Sequence[Mapping]) -> Dict[Any, tuple]:
    """``{colour key: (colour, marker)}`` (the first curve of each key; :class:`_Styles` per curve)."""
    styles = _Styles(curves)
    out: Dict[Any, tuple] = {}
    for c in curves:
        out.setdefault(colour_key(c), styles[c])
    return out


def _values(curves: Sequence[Mapping]) -> np.ndarray:
    vals = [np.asarray(c["y"], dtype=float) for c in curves]
    vals += [np.asarray(v, dtype=float) for c in curves for v in c.get("replicates") or []]
    return np.concatenate(vals) if vals else np.zeros(0)


def _top(curves: Sequence[Mapping]) -> float:
    v = _values(curves)
    v = v[np.isfinite(v) & (v > 0)]
    return float(v.max()) if v.size else 1.0


def _zeros(curve: Mapping, top: float) -> np.ndarray:
    """Where a predicted curve is 0 for a log axis (exactly 0, or a stand-in far below everything)."""
    y = np.asarray(curve["y"], dtype=float)
    if curve.get("role") != "predicted":
        return np.zeros(y.shape, dtype=bool)
    return np.isfinite(y) & ((y <= 0) | (y < top * _ZERO_RANGE))


def has_zero_predictions(series: Mapping) -> bool:
    """True when a log-axis series has a predicted value of 0 (drawn at the axis floor)."""
    if not _log_y(series):
        return False
    top = _top(series["curves"])
    return any(_zeros(c, top).any() for c in series["curves"])


def has_diverged(series: Mapping) -> bool:
    """True when a measured curve has a NaN / inf value (marked at the top edge as diverged)."""
    return any(c.get("role", "measured") == "measured" and not np.all(np.isfinite(np.asarray(c["y"], dtype=float)))
               for c in series["curves"])


def _log_y(series: Mapping) -> bool:
    kind = series["kind"]
    if kind in ("loss_curves",):
        return bool(series.get("logy", True))
    if kind == "xy":
        return bool(series.get("logy", False))
    if kind == "spectrum":
        return all(np.all(np.asarray(c["y"], dtype=float) > 0) for c in series["curves"])
    return True  # width_sweep, eta_scan


def _positive(y: np.ndarray, zero: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(y) & (y > 0) & ~zero, y, np.nan)


def _log_ticks(lo: float, hi: float) -> List[float]:
    """Between 3 and 7 ticks in ``[lo, hi]`` where possible: powers of ten when the range is long, else
    1-3, 1-2-5 (or finer) multiples of them; under about half a decade evenly spaced round numbers."""
    import math as _m

    decades = _m.log10(hi / lo)
    if decades < 0.75:
        for step_m in (1, 2, 2.5, 5):
            for e in range(_m.floor(_m.log10(hi - lo)) - 2, _m.floor(_m.log10(hi)) + 1):
                step = step_m * 10.0 ** e
                ticks = [k * step for k in range(_m.ceil(lo / step), _m.floor(hi / step) + 1)]
                if 3 <= len(ticks) <= 6:
                    return ticks
    choices = [(1,), (1, 3), (1, 2, 5), (1, 2, 3, 5, 7), tuple(range(1, 10))]
    best: List[float] = []
    for subs in choices:
        ticks = [m * 10.0 ** e for e in range(_m.floor(_m.log10(lo)) - 1, _m.ceil(_m.log10(hi)) + 1) for m in subs
                 if lo * (1 - 1e-9) <= m * 10.0 ** e <= hi * (1 + 1e-9)]
        if len(ticks) >= 3:
            best = ticks
            break
        if len(ticks) > len(best):
            best = ticks
    step = max(1, -(-len(best) // 7))
    return best[::step]


def _tick_label(value: float, _pos=None) -> str:
    """``0.5``, ``20``, ``$5\\times10^{-7}$``: plain between 1e-3 and 1e4, else scientific."""
    if value <= 0:
        return ""
    if 1e-3 <= value < 1e4:
        return f"{value:.4g}"
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = value / 10.0 ** exponent
    return (f"$10^{{{exponent}}}$" if abs(mantissa - 1) < 1e-9
            else f"${mantissa:g}\\times10^{{{exponent}}}$")


def _tidy_log(axis, lo: float, hi: float, set_limits: bool = True) -> None:
    """Log-axis limits with a small margin (at least a factor 2.6 in all, so a flat curve still gets
    ticks), 3..7 labelled ticks (:func:`_log_ticks`) and unlabelled minor ticks."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if not (lo > 0 and np.isfinite(lo) and np.isfinite(hi)):
        return
    hi = max(hi, lo)
    if set_limits:
        lo, hi = lo / 1.3, hi * 1.3
        if hi / lo < 2.6:
            centre = np.sqrt(lo * hi)
            lo, hi = centre / 1.62, centre * 1.62
        axis.axes.set_ylim(lo, hi) if axis.axis_name == "y" else axis.axes.set_xlim(lo, hi)
    axis.set_major_locator(FixedLocator(_log_ticks(lo, hi)))
    axis.set_major_formatter(FuncFormatter(_tick_label))
    axis.set_minor_locator(LogLocator(base=10, subs="auto"))
    axis.set_minor_formatter(NullFormatter())


def _width_ticks(axis, widths: Sequence[float], most: int = 8) -> None:
    """Major ticks at the measured widths (at most ``most``, thinned evenly), labelled as integers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ws = sorted({float(w) for w in widths if w > 0})
    chars = max((len(f"{w:g}") for w in ws), default=1) + 2
    most = max(2, min(most, (52 if most > 4 else 26) // chars))  # labels never run into each other
    step = max(1, -(-len(ws) // most))
    axis.set_major_locator(FixedLocator(ws[::step]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}" if v < 1e6 else f"{v:.0e}"))
    axis.set_minor_locator(NullLocator())


def _finish_log_y(ax, curves: Sequence[Mapping], styles, margin: float = 1.5) -> None:
    """Log y: the floor just below the smallest drawn value (every measured value is inside: nothing
    is clipped), a predicted 0 drawn as a dashed line to a floor a little lower and marked there,
    tidy tick labels."""
    top = _top(curves)
    kept = []
    for c in curves:
        y = np.asarray(c["y"], dtype=float)
        kept.append(y[np.isfinite(y) & (y > 0) & ~_zeros(c, top)])
        kept += [np.asarray(r, dtype=float) for r in c.get("replicates") or []]
    v = np.concatenate(kept) if kept else np.zeros(0)
    v = v[np.isfinite(v) & (v > 0)]
    zero_any = any(_zeros(c, top).any() for c in curves)
    lo = float(v.min()) if v.size else top / 10
    floor = lo / (6.0 if zero_any else margin)
    ceiling = top * margin
    ax.set_yscale("log")
    if ceiling / floor < 2.6:
        floor = ceiling / 2.6
    ax.set_ylim(bottom=floor, top=ceiling)
    with_zeros = [c for c in curves if _zeros(c, top).any()]
    xs_all = np.concatenate([np.asarray(c["x"], dtype=float) for c in curves])
    spread = (float(xs_all.max() - xs_all.min()) or 1.0) * 0.018 if ax.get_xscale() == "linear" else 0.0
    for k, c in enumerate(with_zeros):
        zero = _zeros(c, top)
        colour = styles[c][0]
        x, y = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
        # several predicted zeros at the same steps: side by side, so every triangle shows
        shift = (k - (len(with_zeros) - 1) / 2) * spread
        ax.plot(x, np.where(zero, floor, y), ls="--", lw=1.2, color=colour, label="_nolegend_")
        ax.plot(x[zero] + shift, np.full(int(zero.sum()), floor), ls="none", marker=ZERO_MARK, ms=7, color=colour,
                clip_on=False, zorder=5, label="_nolegend_")
    if zero_any:
        ax.plot([], [], ls="none", marker=ZERO_MARK, color="0.3", label="predicted 0 (drawn at the axis floor)")
    _tidy_log(ax.yaxis, floor, ceiling, set_limits=False)


def _mark_diverged(ax, curves: Sequence[Mapping], styles) -> None:
    """A measured NaN / inf (a diverged run) as an ``x`` at the top edge, with the word "diverged"."""
    from matplotlib.transforms import blended_transform_factory

    transform = blended_transform_factory(ax.transData, ax.transAxes)
    any_mark = False
    for c in curves:
        if c.get("role", "measured") != "measured":
            continue
        x, y = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
        bad = ~np.isfinite(y)
        if not bad.any():
            continue
        any_mark = True
        ax.plot(x[bad], np.full(int(bad.sum()), 0.97), ls="none", marker=DIVERGED_MARK, ms=8, mew=2,
                color=styles[c][0], transform=transform, clip_on=False, zorder=6, label="_nolegend_")
        ax.annotate("diverged", (x[bad][0], 0.97), xycoords=transform, xytext=(-4, -3), textcoords="offset points",
                    ha="right", va="top", fontsize=6.5, color=styles[c][0])
    if any_mark:
        ax.plot([], [], ls="none", marker=DIVERGED_MARK, mew=2, color="0.3", label="diverged (NaN / inf, at the top)")
        if ax.get_yscale() == "linear":  # room above the data for the marks
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi + 0.12 * (hi - lo))


def _replicate_dots(ax, curve: Mapping, colour, logx: bool = True) -> None:
    reps = curve.get("replicates")
    if not reps:
        return
    for x, values in zip(curve["x"], reps):
        values = np.asarray(values, dtype=float)
        n = values.size
        offsets = (np.arange(n) - (n - 1) / 2) * (0.012 if n > 1 else 0.0)
        xs = x * np.power(10.0, offsets) if logx else x + offsets * 2
        ax.plot(xs, np.where(values > 0, values, np.nan), ls="none", marker=".", ms=4, alpha=0.45, color=colour,
                label="_nolegend_")


def _paired_keys(curves: Sequence[Mapping]) -> set:
    """Colour keys with both a measured and a predicted curve."""
    roles: Dict[Any, set] = {}
    for c in curves:
        roles.setdefault((colour_key(c), c.get("split")), set()).add(c["role"])
    return {k for k, r in roles.items() if r == {"measured", "predicted"}}


def _coincide(a: Mapping, b: Mapping, rtol: float = COINCIDE_RTOL) -> bool:
    """True when two curves have the same x and values within ``rtol`` (relative) wherever both are finite."""
    xa, xb = np.asarray(a["x"], dtype=float), np.asarray(b["x"], dtype=float)
    if xa.shape != xb.shape or not np.allclose(xa, xb):
        return False
    ya, yb = np.asarray(a["y"], dtype=float), np.asarray(b["y"], dtype=float)
    ok = np.isfinite(ya) & np.isfinite(yb) & (np.abs(ya) > 0) & (np.abs(yb) > 0)
    if ok.sum() < 2:
        return False
    close = np.abs(ya[ok] - yb[ok]) <= rtol * np.maximum(np.abs(ya[ok]), np.abs(yb[ok]))
    # "coincide" as drawn: at least 4 in 5 points on top of each other (e.g. two eta scans that part
    # only at their minimum, 1.5e-4 against 1.8e-4)
    # only at a point or two in the middle: the two ends must coincide too (a nearly flat spectrum 7 % off
    # at both ends is a different curve)
    return bool(close.all()) if close.size < 5 else bool(close.mean() >= 0.8 and close[0] and close[-1])


def _fit_of(curve: Mapping, w: np.ndarray, e: np.ndarray, autofit: bool = True) -> Optional[Dict[str, float]]:
    if curve.get("fit") is not None:
        return dict(curve["fit"])
    if _is_roundoff(curve) or curve.get("role") == "predicted":
        return None  # the slope of round-off noise means nothing; a prediction is its own line
    if autofit and w.size >= 3 and np.all(e > 0) and np.all(np.isfinite(e)) and np.unique(w).size > 1:
        f = fit_power_law(w, e)
        return {"slope": f.slope, "slope_stderr": f.slope_stderr, "prefactor": f.prefactor}
    return None


def _strip_split(label: str) -> str:
    return " ".join(w for w in str(label).split() if w not in SPLITS)


def _legend_entries(ax, series: Mapping, curves: Sequence[Mapping], styles) -> None:
    """The legend of a loss-curve panel, compact: one entry per measured curve (its split is the
    panel's), a prediction only when it needs its own name (several predictions of one curve, or none
    measured), then one key for the line styles.  Stored on ``ax`` for :func:`_legend`."""
    from matplotlib.lines import Line2D

    entries: List[tuple] = []
    groups: Dict[Any, List[Mapping]] = {}
    for c in curves:
        groups.setdefault((colour_key(c), _variant(c) if styles.several(c) else "", c.get("split")), []).append(c)
    dashed_key = same_key = False
    for c in curves:
        colour, marker = styles[c]
        group = groups[(colour_key(c), _variant(c) if styles.several(c) else "", c.get("split"))]
        predicted = [g for g in group if g["role"] == "predicted"]
        measured = [g for g in group if g["role"] == "measured"]
        text = _strip_split(c["label"])
        if c["role"] == "measured":
            same = bool(predicted) and _coincide(c, predicted[0])  # drawn as markers on the dashes (_draw)
            same_key = same_key or same
            entries.append((Line2D([], [], color=colour, marker=marker, ms=4, lw=1.6, ls="none" if same else "-"),
                            text))
        elif not measured or len(predicted) > 1:
            i = predicted.index(c)
            entries.append((Line2D([], [], color=colour, ls=_DASHES[i % len(_DASHES)], lw=1.4), text))
        else:
            dashed_key = True
    if dashed_key:
        entries.append((Line2D([], [], color="0.3", ls="--", lw=1.2), "dashed: predicted (colour of its curve)"))
    if same_key:
        entries.append((Line2D([], [], color="0.3", ls="none", marker="o", ms=4),
                        "markers on the dashed line: measured = predicted (within 3 %)"))
    for line in ax.get_lines():
        label = line.get_label()
        if label.startswith("predicted 0") or label.startswith("diverged") or label.startswith("dots:"):
            entries.append((line, label))
    ax._ngd_legend = entries


def _draw(ax, series: FigureSeries, compact: bool = False, styles: Optional[_Styles] = None) -> None:
    """Draw one series on ``ax`` (``compact``: a small panel of a grid, fewer tick labels; ``styles``:
    the colours of the whole figure, so a curve keeps its colour in every panel)."""
    kind, curves = series["kind"], series["curves"]
    styles = styles or _Styles(curves)
    replicated = any(c.get("replicates") for c in curves)
    paired = _paired_keys(curves)
    if kind == "loss_curves":
        logy = series.get("logy", True)
        top = _top(curves)
        dash_index: Dict[tuple, int] = {}
        for c in curves:
            colour, marker = styles[c]
            dashed = c["role"] == "predicted"
            _replicate_dots(ax, c, colour, logx=False)
            ys = np.asarray(c["y"], dtype=float)
            shown = _positive(ys, _zeros(c, top)) if logy else np.where(np.isfinite(ys), ys, np.nan)
            key = (colour_key(c), _variant(c) if styles.several(c) else "", c.get("split"))
            if dashed:
                i = dash_index.get(key, 0)
                dash_index[key] = i + 1
                ax.plot(np.asarray(c["x"], dtype=float), shown, ls=_DASHES[i % len(_DASHES)],
                        marker=marker if styles.several(c) else None, mfc="none", ms=5, lw=1.4 if i else 1.2,
                        label=c["label"], color=colour, zorder=5)
            else:
                twins = [o for o in curves if o["role"] == "predicted" and
                         (colour_key(o), _variant(o) if styles.several(o) else "", o.get("split")) == key]
                same = len(twins) >= 1 and _coincide(c, twins[0])
                ax.plot(np.asarray(c["x"], dtype=float), shown, ls="none" if same else "-", marker=marker,
                        lw=1.6, ms=5 if same else 4, label=c["label"], color=colour, zorder=4)
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(series.get("xlabel", "step t"))
        ax.set_ylabel(series.get("ylabel", "train loss"))
        if replicated:
            ax.plot([], [], ls="none", marker=".", color="0.4", alpha=0.6, label="dots: every initialisation")
        if logy:
            _finish_log_y(ax, curves, styles)
        _mark_diverged(ax, curves, styles)
        _legend_entries(ax, series, curves, styles)
    elif kind == "width_sweep":
        autofit = series.get("autofit", True)
        first = None
        for c in curves:
            w, e = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
            colour, marker = styles[c]
            _replicate_dots(ax, c, colour)
            fit = _fit_of(c, w, e, c.get("autofit", autofit))
            text = f" (slope {fit['slope']:.3f} ± {fit['slope_stderr']:.3f})" if fit is not None else ""
            predicted = c["role"] == "predicted"
            ax.plot(w, np.where(np.isfinite(e) & (e > 0), e, np.nan), marker=None if predicted else marker,
                    ms=6 if replicated else 5,
                    ls="--" if predicted else ("-" if replicated and fit is None else "none"),
                    lw=1.3 if predicted else 1, color=colour, label=c["label"] + text, zorder=3 if predicted else 4)
            if fit is not None and not predicted:  # a predicted curve is its own line
                grid = np.geomspace(w.min(), w.max(), 50)
                ax.plot(grid, fit["prefactor"] * grid ** fit["slope"], "-", color=colour, lw=1, label="_nolegend_")
            if first is None and np.all(e > 0) and not predicted:
                first = (w, e)
        if series.get("expected_slope") is not None and first is not None:
            w, e = first
            s = series["expected_slope"]
            grid = np.geomspace(w.min(), w.max(), 20)
            ax.plot(grid, e[0] * (grid / w[0]) ** s, ":", color="0.4", lw=1.2,
                    label=f"stated rate: slope {s:g} (through the first point)")
        if replicated:
            ax.plot([], [], ls="none", marker=".", color="0.4", alpha=0.6, label="dots: every initialisation")
        ax.set_xscale("log")
        _finish_log_y(ax, curves, styles, margin=1.4)
        _mark_diverged(ax, curves, styles)
        _width_ticks(ax.xaxis, [x for c in curves for x in c["x"]], most=4 if compact else 8)
        ax.set_xlabel(series.get("xlabel", "width M"))
        ax.set_ylabel(series.get("ylabel", "error"))
    elif kind == "spectrum":
        normalise = series.get("normalise", False)
        eig = [np.sort(np.asarray(c["y"], dtype=float))[::-1] for c in curves]
        alphas: List[Optional[float]] = [c.get("alpha") for c in curves]
        if normalise:
            means = [float(np.mean(v)) for v in eig]
            eig = [v / m if m != 0 else v for v, m in zip(eig, means)]
            alphas = [a / m if a is not None and m else None for a, m in zip(alphas, means)]
        positive = all(np.all(v > 0) for v in eig)
        name = "alpha / mean" if normalise else "alpha"
        if normalise and any(abs(a - 1.0) <= ALPHA_LINE_RTOL for a in alphas if a is not None):
            # normalised: every isotropic prediction is the same line alpha/mean = 1; draw it once
            ax.axhline(1.0, color="grey", ls="--", lw=1, label="alpha / mean = 1 (isotropic prediction)")
        shown = [dict(c, y=list(v)) for c, v in zip(curves, eig)]
        cluster = _coincident_clusters(shown)
        for i, (c, vals, alpha) in enumerate(zip(curves, eig, alphas)):
            colour, marker = styles[c]
            predicted = c["role"] == "predicted"
            style = "--" if predicted else ("none" if (colour_key(c), c.get("split")) in paired else "-")
            label, ms, mfc, lw = c["label"], 4.5, colour, 1.5
            rank, size = cluster.get(i, (0, 1))
            if size > 1 and not predicted:  # coinciding curves: nested hollow markers, all visible
                ms, mfc, lw = 4.5 + 2.6 * (size - 1 - rank), "none", 1.0
                label = f"{label} (curves coincide)"
            ax.plot(np.arange(1, vals.size + 1), vals, ls=style, marker=None if predicted else marker,
                    color=colour, ms=ms, mfc=mfc, lw=1.4 if predicted else lw, label=label,
                    zorder=3 if predicted else 4 + rank)
            if alpha is not None and not (normalise and abs(alpha - 1.0) <= ALPHA_LINE_RTOL):
                ax.axhline(alpha, color=colour, ls=":", lw=1, label=f"{c['label']}: {name} = {alpha:.4g}")
        if positive:
            ax.set_yscale("log")
            v = np.concatenate(eig + [np.asarray([a]) for a in alphas if a is not None and a > 0])
            _tidy_log(ax.yaxis, float(v.min()), float(v.max()))
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(series.get("xlabel", "eigenvalue index (sorted, largest first)"))
        ax.set_ylabel(series.get("ylabel", r"eigenvalue of $\Theta_G$" + (" / mean" if normalise else "")))
    elif kind in ("eta_scan", "xy"):
        logy = _log_y(series)
        logx = series.get("logx", False)
        top = _top(curves)
        cluster = _coincident_clusters(curves)
        for i, c in enumerate(curves):
            colour, marker = styles[c]
            x, y = np.asarray(c["x"], dtype=float), np.asarray(c["y"], dtype=float)
            _replicate_dots(ax, c, colour, logx=logx)
            shown = _positive(y, _zeros(c, top)) if logy else y
            if c["role"] == "predicted":
                ax.plot(x, shown, "--", color=colour, lw=1.3, label=c["label"], zorder=3)
            else:  # markers only when the dashed prediction in the same colour gives the shape
                rank, size = cluster.get(i, (0, 1))
                label, ms, mfc = c["label"], 5.5, colour
                if size > 1:
                    ms, mfc, label = 5.5 + 2.6 * (size - 1 - rank), "none", f"{label} (curves coincide)"
                ax.plot(x, shown, marker=marker, ls="-" if x.size > 1 and (colour_key(c), None) not in paired
                        else "none", ms=ms, mfc=mfc, lw=1.3, color=colour, label=label, zorder=4 + rank)
        if kind == "eta_scan":
            ax.axvline(1.0, color="grey", ls=":", lw=1, label="_nolegend_")
        seen: Dict[str, int] = {}
        for mark in series.get("vlines") or []:
            if mark["label"] not in seen:
                seen[mark["label"]] = len(seen)
            i = seen[mark["label"]]
            ax.axvline(mark["x"], color=("0.35", "0.1", "0.55")[i % 3], ls=("-.", ":", (0, (6, 2)))[i % 3],
                       lw=1.1 + 0.3 * (i % 2),
                       label=mark["label"] if sum(1 for line in ax.get_lines() if line.get_label() == mark["label"])
                       == 0 else "_nolegend_")
        if replicated:
            ax.plot([], [], ls="none", marker=".", color="0.4", alpha=0.6, label="dots: every initialisation")
        if logx:
            ax.set_xscale("log")
        from matplotlib.ticker import MaxNLocator
        xs = np.concatenate([np.asarray(c["x"], dtype=float) for c in curves])
        ys = np.concatenate([np.asarray(c["y"], dtype=float) for c in curves])
        if kind == "xy" and not logx and np.allclose(xs, np.round(xs)):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if kind == "xy" and not logy and np.allclose(ys, np.round(ys), atol=1e-9):
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if logy:
            _finish_log_y(ax, curves, styles)
        _mark_diverged(ax, curves, styles)
        default_x, default_y = ((r"$\eta / \eta^*$", "loss ratio L1 / L0 after one step") if kind == "eta_scan"
                                else ("x", "y"))
        ax.set_xlabel(series.get("xlabel", default_x))
        ax.set_ylabel(series.get("ylabel", default_y))


def _coincident_clusters(curves: Sequence[Mapping]) -> Dict[int, tuple]:
    """``{index: (rank, size)}`` of measured curves that coincide with another measured curve (same x,
    values within :data:`OVERLAP_RTOL`): drawn as nested hollow markers so none hides another."""
    out: Dict[int, tuple] = {}
    measured = [i for i, c in enumerate(curves) if c["role"] == "measured"]
    done: set = set()
    for i in measured:
        if i in done:
            continue
        group = [i] + [j for j in measured if j > i and j not in done
                       and _coincide(curves[i], curves[j], rtol=OVERLAP_RTOL)]
        if len(group) > 1:
            for rank, j in enumerate(group):
                out[j] = (rank, len(group))
                done.add(j)
    return out


def legend_columns(labels: Sequence[str], width_chars: int = 100) -> int:
    """Columns for a legend below the axes: as many (up to 3) as fit ``width_chars`` characters of the
    longest label plus the 6-character handle.

    >>> legend_columns(["exact train M=4096"] * 10), legend_columns(["x" * 70] * 10)
    (3, 1)
    """
    longest = max((len(str(label)) for label in labels), default=0) + 6
    return int(max(1, min(3, width_chars // max(longest, 1))))


def _is_roundoff(curve: Mapping) -> bool:
    """A measured curve at round-off level (a predicted 0 is not round-off: it is drawn at the floor)."""
    if curve.get("role", "measured") == "predicted":
        return False
    y = np.abs(np.asarray(curve["y"], dtype=float))
    y = y[np.isfinite(y)]
    return bool(y.size) and bool(np.all(y < ROUNDOFF))


ROUNDOFF_PANEL = "exact identities (round-off level)"


def panels(series: Mapping) -> List[tuple]:
    """``[(panel title, series)]``: one panel, except for width sweeps whose curves name a
    ``group`` (one panel per group: small multiples) or mix round-off curves with ordinary errors
    (those go to a panel of their own, :data:`ROUNDOFF_PANEL`), and loss curves with a ``group``
    or with both splits (one panel per group and split: train and test side by side)."""
    series = check_series(series)
    ylabels = series.get("panel_ylabels") or {}
    if series["kind"] == "loss_curves":
        splits = [s for s in SPLITS if any(c["split"] == s for c in series["curves"])]
        groups: Dict[str, list] = {}
        for c in series["curves"]:
            title = c.get("group", "")
            if len(splits) > 1:
                title = f"{title}: {c['split']}" if title else c["split"]
            groups.setdefault(title, []).append(c)
        if len(groups) == 1:
            return [("", series)]
        out = []
        for title, curves in groups.items():
            sub = dict(series, curves=curves)
            group = curves[0].get("group", "")
            if ylabels.get(group):
                sub["ylabel"] = ylabels[group]
            elif len(splits) > 1 and series.get("ylabel") and not any(s in series["ylabel"] for s in SPLITS):
                sub["ylabel"] = f"{curves[0]['split']} {series['ylabel']}"
            out.append((title, sub))
        return out
    if series["kind"] != "width_sweep":
        return [("", series)]
    groups = {}
    roundoff = []
    ordinary = [c for c in series["curves"] if not _is_roundoff(c)]
    for c in series["curves"]:
        if ordinary and _is_roundoff(c):
            roundoff.append(dict(c, label=f"{c['group']}: {c['label']}" if c.get("group") else c["label"]))
        else:
            groups.setdefault(c.get("group", ""), []).append(c)
    out = []
    for title, curves in groups.items():
        sub = dict(series, curves=curves)
        if ylabels.get(title):
            sub["ylabel"] = ylabels[title]
        out.append((title, sub))
    if roundoff:
        out.append((ROUNDOFF_PANEL, dict(series, curves=roundoff, expected_slope=None, ylabel="residual")))
    return out


# ----------------------------------------------------------------------------- printed text
#: Internal names that must never reach a figure, and how they are printed.
INTERNAL_IDS = {"block_tridiagonal": "block tri-diagonal", "block_diagonal": "block-diagonal",
                "cross_entropy": "cross-entropy", "unit_wise": "unit-wise", "kfac": "K-FAC", "ekfac": "EKFAC",
                "mse": "squared loss", "[forster]": "(Forster inputs)"}
_GREEK = {"Theta": r"\Theta", "Sigma": r"\Sigma", "Pi": r"\Pi", "theta": r"\theta", "eta": r"\eta",
          "alpha": r"\alpha", "rho": r"\rho", "lambda": r"\lambda", "gamma": r"\gamma", "delta": r"\delta",
          "sigma": r"\sigma", "Θ": r"\Theta", "ρ": r"\rho", "λ": r"\lambda", "η": r"\eta", "α": r"\alpha",
          "γ": r"\gamma", "sum": r"\Sigma", "prod": r"\Pi", "Hbar": r"\bar{H}"}
_SUFFIX = (r"(?:_\{[^{}\s$]*\}|_\([^()\s$]*\)|_[A-Za-z0-9]+|\^\{[^{}\s$]*\}|\^\([^()\s$]*\)"
           r"|\^[-+]?[0-9A-Za-z]+(?:/[0-9]+)?|\^[+*T])+")
#: Names that become symbols only with a sub- or superscript (``sum_l``; the word "sum" stays a word).
_ONLY_WITH_SUFFIX = ("sum", "prod")


def _math_token(base: str, suffix: str) -> str:
    import re

    def brace(m):
        op, body = m.group(1), m.group(2)
        return f"{op}{{{body}}}" if len(body) > 1 and not body.startswith("{") else op + body

    suffix = re.sub(r"_\(([^()]*)\)", r"_{\1}", suffix or "")
    suffix = re.sub(r"\^\(([^()]*)\)", r"^{(\1)}", suffix)
    suffix = re.sub(r"([_^])(\{[^{}]*\}|[-+]?[0-9A-Za-z]+(?:/[0-9]+)?|[+*T])", brace, suffix)
    return "$" + _GREEK.get(base, base) + suffix + "$"


def printed(text: Any) -> str:
    """Text as a figure prints it: internal ids as words (:data:`INTERNAL_IDS`; ``of exact`` ->
    ``of exact NGD``), and TeX-like symbols (``Theta_l^{-1}``, ``p_{t+1}``, ``eta*``, ``alpha``) as
    matplotlib mathtext (outside the ``$...$`` formulas a line already has).

    >>> printed("error of kfac vs analytic predictor; sum_l c_l Theta_l^{-1}")
    'error of K-FAC vs analytic predictor; $\\\\Sigma_l$ $c_l$ $\\\\Theta_l^{-1}$'
    >>> printed("eta / eta* = 1/alpha, p_{t+1}, mse, block_diagonal")
    '$\\\\eta$ / $\\\\eta^*$ = 1/$\\\\alpha$, $p_{t+1}$, squared loss, block-diagonal'
    >>> printed("M_0 >= N (rho -> 0+)")
    '$M_0$ ≥ N ($\\\\rho$ → 0⁺)'
    """
    import re

    lines = []
    for line in str(text or "").split("\n"):
        line = re.sub(r"\bof (exact|diagonal)\b(?! NGD| Fisher)",
                      lambda m: "of " + {"exact": "exact NGD", "diagonal": "diagonal Fisher"}[m.group(1)], line)
        line = re.sub(r"^exact (train|test)\b", r"exact NGD \1", line)
        for key, value in INTERNAL_IDS.items():
            if key.startswith("["):
                line = line.replace(" " + key, " " + value).replace(key, value)
            else:
                line = re.sub(rf"(?<![\w.$\\-]){re.escape(key)}(?![\w-])", value, line)
        line = line.replace(" -> ", " → ").replace("→ infinity", "→ ∞").replace("1^T T^+ 1", r"$\mathbf{1}^\top T^+ \mathbf{1}$")
        line = line.replace(" >= ", " ≥ ").replace(" <= ", " ≤ ").replace("0+)", "0⁺)")
        line = re.sub(r"1\^T ([A-Z])\^\+ 1", lambda m: rf"$\mathbf{{1}}^\top {m.group(1)}^+ \mathbf{{1}}$", line)
        greek = "|".join(sorted(_GREEK, key=len, reverse=True))

        def symbols(part: str) -> str:
            part = re.sub(rf"(?<![A-Za-z\\])({greek})(\*|{_SUFFIX})?(?![A-Za-z])",
                          lambda m: m.group(0) if m.group(1) in _ONLY_WITH_SUFFIX and not m.group(2) else
                          _math_token(m.group(1), "^*" if m.group(2) == "*" else m.group(2)), part)
            part = re.sub(r"\)\^(\(([^()\s]*)\)|[-+]?[0-9A-Za-z]+)",
                          lambda m: ")$^{" + (m.group(2) if m.group(2) is not None else m.group(1)) + "}$", part)
            return "".join(p if p.startswith("$") else
                           re.sub(rf"(?<![A-Za-z\\$])([A-Za-z])({_SUFFIX})(?![A-Za-z])",
                                  lambda m: _math_token(m.group(1), m.group(2)), p)
                           for p in re.split(r"(\$[^$]*\$)", part))

        if line.count("$") % 2 == 0:  # only outside the formulas already in mathtext
            line = "".join(part if part.startswith("$") else symbols(part)
                           for part in re.split(r"(\$[^$]*\$)", line))
        lines.append(line)
    return "\n".join(lines)


def _wrap(text: str, width: int) -> str:
    """Each line of ``text`` wrapped at ``width`` characters, never inside ``$...$`` nor inside a short
    parenthesised formula such as ``(1 - eta alpha)``; no line is cut short."""
    import re
    import textwrap

    def keep(m):
        return m.group(0).replace(" ", "\x00")

    out = []
    for part in str(text or "").split("\n"):
        part = re.sub(r"\$[^$]*\$", keep, part)
        # one formula printed as neighbouring tokens ("$\alpha$ = $\Sigma_l$ $M_l$ + 2", "M → ∞") stays on one line
        part = re.sub(r"\$((?: [=+\-/×<>→]+)? )(?=\$)", lambda m: "$" + m.group(1).replace(" ", "\x00"), part)
        part = re.sub(r"\$ ([+\-=/]) (\w{1,3})\b", lambda m: f"$\x00{m.group(1)}\x00{m.group(2)}", part)
        part = re.sub(r" → (∞|0\+?)", lambda m: "\x00→\x00" + m.group(1), part)
        part = re.sub(r"\$ (\w{1,4}) (?=\$)", lambda m: f"$\x00{m.group(1)}\x00", part)
        part = re.sub(r"\([^()]{1,24}\)", lambda m: keep(m) if re.search(r"[-+=/*^]", m.group(0)) else m.group(0),
                      part)
        out += [line.replace("\x00", " ") for line in (textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False) or [""])]
    return "\n".join(out)


def _legend(fig, ax, single: bool, fontsize: float = 7, entries: Optional[List[tuple]] = None,
            below: bool = False) -> None:
    """A legend that never covers data: to the right of the axes (a single panel, up to 12 entries),
    below them in columns (more entries, or ``below``: a panel of small multiples)."""
    if entries is None:
        entries = getattr(ax, "_ngd_legend", None)
        if entries is None:
            handles, labels = ax.get_legend_handles_labels()
            entries = list(zip(handles, labels))
    seen: set = set()
    unique = []
    for handle, label in entries:
        if label.startswith("_") or label in seen:
            continue
        seen.add(label)
        unique.append((handle, printed(label)))
    if not unique:
        return
    handles = [h for h, _ in unique]
    if single and not below and len(unique) <= 12:
        labels = [_wrap(label, 34) for _, label in unique]
        ax.legend(handles, labels, fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, frameon=False)
    elif single and not below:
        labels = [label for _, label in unique]
        ncol = legend_columns(labels)
        rows = -(-len(labels) // ncol)
        fig.set_size_inches(fig.get_size_inches()[0], fig.get_size_inches()[1] + 0.16 * rows)
        ax.legend(handles, labels, fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol,
                  frameon=False)
    else:  # a panel of small multiples: below the panel, labels wrapped to its width
        ax.legend(handles, [_wrap(label, 50) for _, label in unique], fontsize=fontsize, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)


def _finish_text(ax, width: int) -> None:
    """Printed (:func:`printed`) and wrapped axis labels: a y label is never taller than its axes."""
    ax.set_xlabel(_wrap(printed(ax.get_xlabel()), 60))
    ax.set_ylabel(_wrap(printed(ax.get_ylabel()), width))


def render_figure(series: Mapping, title: str = "", name: Any = None):
    """Draw one series (schema above) and return the matplotlib ``Figure`` (Agg; the tests inspect it);
    ``ValueError`` (naming the series ``name``, default ``title``, and the field) for a series that
    breaks the schema.  Width sweeps with groups or round-off curves, and loss curves with groups or
    both splits, become several panels (:func:`panels`)."""
    series = check_series(series, name if name is not None else (title or "series"))
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # object API: no global pyplot state, thread/test safe

    parts = panels(series)
    styles = _Styles(series["curves"])
    heading = printed(series.get("title") or title)
    if len(parts) == 1:
        fig = Figure(figsize=(6.4, 4.2), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        _draw(ax, parts[0][1], styles=styles)
        ax.set_title(_wrap(heading, 78), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        _finish_text(ax, 42)
        _legend(fig, ax, single=True)
        fig.tight_layout()
    elif len(parts) == 2 and parts[1][0] == ROUNDOFF_PANEL and not parts[0][0]:
        fig = Figure(figsize=(6.4, 5.4), dpi=110)
        axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1.4]})
        for ax, (panel, sub) in zip(axes, parts):
            _draw(ax, sub, styles=styles)
            ax.grid(True, which="major", alpha=0.3)
            _finish_text(ax, 30 if ax is axes[1] else 42)
            _legend(fig, ax, single=True, fontsize=6.5)
            if panel:
                ax.set_title(panel, fontsize=8)
        axes[0].set_xlabel("")
        axes[0].set_title(_wrap(heading, 78), fontsize=10)
        fig.tight_layout()
    elif series["kind"] == "loss_curves" and not any(c.get("group") for c in series["curves"]):
        # train | test side by side, one legend to the right of both
        fig = Figure(figsize=(3.6 * len(parts), 3.9), dpi=120, layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(parts)))
        entries: List[tuple] = []
        for ax, (panel, sub) in zip(axes, parts):
            _draw(ax, sub, styles=styles)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(panel, fontsize=9)
            _finish_text(ax, 38)
            entries += getattr(ax, "_ngd_legend", [])
        # the style keys last, after every curve
        keys = [e for e in entries if e[1].startswith(("dashed:", "markers on", "predicted 0", "diverged", "dots:"))]
        _legend(fig, axes[-1], single=True, fontsize=7,
                entries=[e for e in entries if e not in keys] + keys)
        fig.suptitle(_wrap(heading, 100), fontsize=10)
    else:
        ncols = 3 if len(parts) > 4 else len(parts) if series["kind"] == "loss_curves" else 2
        nrows = -(-len(parts) // ncols)
        tallest = max(len(getattr(sub, "get", dict().get)("curves", [])) for _, sub in parts)
        fig = Figure(figsize=(3.5 * ncols, (2.5 + 0.13 * (tallest + 2)) * nrows + 0.6), dpi=150,
                     layout="constrained")  # sharper: printed smaller than drawn
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for ax, (panel, sub) in zip(axes, parts):
            # width sweeps: each panel its own colours (approximations keep theirs: METHOD_COLOURS); loss
            # curves: one set of colours over the whole figure (a colour means one run in every panel)
            _draw(ax, sub, compact=True, styles=_Styles(sub["curves"]) if series["kind"] == "width_sweep" else styles)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(_wrap(printed(panel), 44), fontsize=7.5)
            ax.tick_params(labelsize=7)
            _finish_text(ax, 34)
            ax.xaxis.label.set_size(7.5)
            ax.yaxis.label.set_size(7.5)
            _legend(fig, ax, single=False, fontsize=5.5)
        for ax in axes[len(parts):]:
            ax.set_visible(False)
        if heading:
            fig.suptitle(_wrap(heading, 110), fontsize=10)
    return fig


def render_png(series: Mapping, title: str = "", name: Any = None) -> bytes:
    """:func:`render_figure` as PNG bytes."""
    fig = render_figure(series, title=title, name=name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def figure_text(fig) -> List[str]:
    """Every piece of text a rendered figure prints: titles, axis labels, tick labels, legend entries
    and annotations (the tests search it for internal ids, ``...`` and raw TeX)."""
    out = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text()]
    return out


def describe(series: Mapping) -> str:
    """What a series shows, in words (when it has no title): the curves' approximations and the
    axes, e.g. ``"K-FAC: train and test loss per step, measured and predicted"``.

    >>> describe(figure_series("loss_curves", loss_curves("kfac", [0, 1], {"train": [1, .1]}, {"train": [1, 0]})))
    'K-FAC: train loss per step, measured (solid) and predicted (dashed)'
    """
    series = check_series(series)
    kind, curves = series["kind"], series["curves"]
    names = list(dict.fromkeys(approximation_label(c["approximation"]) for c in curves if c.get("approximation")))
    who = ", ".join(names) + ": " if names else ""
    roles = {c["role"] for c in curves}
    both = " measured (solid) and predicted (dashed)" if roles == {"measured", "predicted"} else ""
    if kind == "loss_curves":
        splits = " and ".join(s for s in SPLITS if any(c.get("split") == s for c in curves))
        return f"{who}{splits} loss per step," + both if both else f"{who}{splits} loss per step"
    if kind == "width_sweep":
        quantity = series.get("ylabel") or ", ".join(c["label"] for c in curves)
        return f"{who}{quantity} against width (log-log, fitted slopes)"
    if kind == "spectrum":
        return f"{who}eigenvalues of Theta_G" + (" divided by their mean" if series.get("normalise") else "")
    marks = " measured (markers) and predicted (dashed)" if both else ""
    if kind == "eta_scan":
        return f"{who}loss after one step against eta / eta*" + ("," + marks if marks else "")
    return f"{who}{series.get('ylabel', 'y')} against {series.get('xlabel', 'x')}" + ("," + marks if marks else "")


def explanations(series: Mapping) -> List[str]:
    """Sentences a caption needs to read the figure: predicted zeros at the axis floor, round-off
    panels, replicate dots, normalisation."""
    series = check_series(series)
    out = []
    if has_zero_predictions(series):
        out.append("A predicted value of exactly 0 (convergence in one step) has no place on a log axis: its dashed "
                   "line runs down to the axis floor, where a downward triangle marks it.")
    if has_diverged(series):
        out.append("A measured value that is not finite (the run diverged) is marked x at the top edge.")
    if any(title == ROUNDOFF_PANEL for title, _ in panels(series)):
        out.append("Curves at round-off level (exact identities, below 1e-9) are in a panel of their own.")
    if any(c.get("replicates") for c in series["curves"]):
        out.append("Small dots are the individual initialisations, large markers their median or mean.")
    if series["kind"] == "spectrum" and series.get("normalise"):
        out.append("Each spectrum is divided by its mean, so an isotropic operator is the flat line at 1 and the "
                   "alpha lines show alpha / mean.")
    return out


def caption_of(series: Mapping[str, Any], default: str) -> str:
    """The caption of a figure: the series' ``caption``, else its ``title``, else ``default``; then
    the :func:`explanations` it needs."""
    text = str(series.get("caption") or series.get("title") or default).rstrip()
    extra = explanations(series) if isinstance(series, Mapping) and series.get("kind") in SERIES_KINDS else []
    return " ".join([text if text.endswith(".") else text + "."] + extra)
