"""Figures for the report, drawn from ``ClaimResult.series`` (matplotlib, Agg backend, PNG).

Series schema
-------------
``ClaimResult.series`` maps a series name to a dict with a ``"kind"`` and the data of that kind.
All numbers are plain floats/ints or lists of them (numpy arrays are accepted).  Optional keys:
``"title"``, ``"xlabel"``, ``"ylabel"``, ``"caption"`` (one sentence for the report), ``"logy"``.

``{"kind": "loss_curves", "steps": [0, 1, ...], "curves": {label: [loss per step], ...}, "predicted": [labels]}``
    Train (or test) loss vs NGD step, one curve per approximation/width.  Curves whose label is
    listed in ``"predicted"`` (default: labels containing "predict") are drawn dashed: they are the
    infinite-width predictions the measured curves are compared with.  Log y-axis by default.

``{"kind": "width_sweep", "widths": [...], "errors": [...], "fit": {"slope", "slope_stderr", "prefactor"}}``
    An error vs width on log-log axes with the fitted power law (``"fit"`` optional: fitted here
    when absent and there are >= 3 positive points).  Several sweeps on one plot:
    ``{"kind": "width_sweep", "sweeps": {label: {"widths", "errors", "fit"?}, ...}}``.
    ``"expected_slope"`` (optional) is shown in the legend.

``{"kind": "spectrum", "eigenvalues": {label: [...]}, "alpha": {label: value}, "normalise": False}``
    Sorted eigenvalues of Theta_G per approximation (index on x), with the predicted isotropy
    constant ``alpha`` (optional per label) as a dashed horizontal line.  Log y when all positive.
    ``"normalise": True`` divides each spectrum (and its alpha) by its mean eigenvalue, so
    approximations of very different scale share one axis (isotropic = flat at 1).

``{"kind": "eta_scan", "ratios": [eta/eta*, ...], "losses": {label: [...]}, "predicted": {label: [...]}}``
    One-step loss (or loss ratio) vs ``eta/eta*`` per approximation, with optional predicted
    curves (dashed) and a vertical line at ``eta = eta*``.

Alternative single-curve form (as written by :mod:`proofs.evidence`), converted by
:func:`normalise_series`: ``{"kind": "width_sweep", "x": widths, "y": errors, "fit"?, "quantity"?}``;
``{"kind": "loss_curve", "x": steps, "train_measured", "train_predicted", "test_measured"?,
"test_predicted"?, "approximation"?, "width"?}``; ``{"kind": "spectrum", "x": index, "y": eigenvalues,
"approximation"?}``; ``{"kind": "eta_scan", "x": ratios, "measured": [...], "predicted"?: [...],
"approximation"?}``.

>>> validate_series({"kind": "width_sweep", "widths": [1, 2, 4], "errors": [1, .7, .5]})
'width_sweep'
>>> normalise_series({"kind": "spectrum", "x": [1, 2], "y": [1.0, 0.9], "approximation": "kfac"})["eigenvalues"]
{'kfac': [1.0, 0.9]}
"""
from __future__ import annotations

import io
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from numerics.sweeps import PowerLawFit, fit_power_law

SERIES_KINDS = ("loss_curves", "width_sweep", "spectrum", "eta_scan")


def _floats(name: str, values) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"series field {name!r} must be a list of numbers, got {values!r:.80}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"series field {name!r} must be a non-empty 1-D list, got shape {arr.shape}")
    return arr


def _need(series: Mapping, key: str):
    if key not in series:
        raise ValueError(f"{series.get('kind')!r} series needs the key {key!r}; it has {sorted(series)}")
    return series[key]


def _curves(series: Mapping, key: str, length: Optional[int] = None) -> Dict[str, np.ndarray]:
    table = _need(series, key)
    if not isinstance(table, Mapping) or not table:
        raise ValueError(f"series field {key!r} must be a non-empty mapping label -> list of numbers")
    out = {}
    for label, values in table.items():
        arr = _floats(f"{key}[{label!r}]", values)
        if length is not None and arr.size != length:
            raise ValueError(f"series field {key}[{label!r}] has {arr.size} values, expected {length}")
        out[str(label)] = arr
    return out


def _sweeps(series: Mapping) -> Dict[str, Mapping]:
    if "sweeps" in series:
        table = series["sweeps"]
        if not isinstance(table, Mapping) or not table:
            raise ValueError("series field 'sweeps' must be a non-empty mapping label -> {widths, errors}")
        return {str(k): v for k, v in table.items()}
    return {"error": series}


def normalise_series(series: Mapping) -> dict:
    """The canonical form (schema above) of a series given in the alternative single-curve form;
    canonical series are returned as a shallow copy."""
    if not isinstance(series, Mapping):
        raise ValueError(f"a series must be a dict with a 'kind', got {type(series).__name__}")
    s = dict(series)
    kind = s.get("kind")
    label = str(s.get("approximation") or s.get("quantity") or "measured")
    if kind == "width_sweep" and "x" in s and "widths" not in s and "sweeps" not in s:
        sw = {"widths": s.pop("x"), "errors": _need(s, "y")}
        if "fit" in s:
            sw["fit"] = s.pop("fit")
        s.pop("y")
        s["sweeps"] = {label: sw}  # extra list-valued keys are data for the claim's text, not curves
        s.setdefault("ylabel", s.get("quantity", "error"))
    elif kind == "loss_curve":
        width = f" M={s['width']}" if s.get("width") is not None else ""
        curves, predicted = {}, []
        for split in ("train", "test"):
            if f"{split}_measured" in s:
                curves[f"{label} {split}{width}"] = s[f"{split}_measured"]
            if f"{split}_predicted" in s:
                curves[f"{label} {split} predicted"] = s[f"{split}_predicted"]
                predicted.append(f"{label} {split} predicted")
        s = {k: v for k, v in s.items() if k in ("title", "caption", "xlabel", "ylabel", "logy")}
        s.update(kind="loss_curves", steps=series.get("x", series.get("steps")), curves=curves, predicted=predicted)
    elif kind == "spectrum" and "eigenvalues" not in s and "y" in s:
        s["eigenvalues"] = {label: s.pop("y")}
        s.pop("x", None)
    elif kind == "eta_scan" and "ratios" not in s and "x" in s:
        s["ratios"] = s.pop("x")
        s["losses"] = {label: _need(s, "measured")}
        if isinstance(s.get("predicted"), (list, tuple, np.ndarray)):
            s["predicted"] = {label: s["predicted"]}
        s.pop("measured")
    return s


def validate_series(series: Mapping) -> str:
    """Check a series against the schema above (either form); return its canonical kind or raise
    ``ValueError`` naming the problem."""
    series = normalise_series(series)
    kind = series.get("kind")
    if kind not in SERIES_KINDS:
        raise ValueError(f"series kind {kind!r} is not allowed: expected one of {', '.join(SERIES_KINDS)}")
    if kind == "loss_curves":
        steps = _floats("steps", _need(series, "steps"))
        _curves(series, "curves", steps.size)
    elif kind == "width_sweep":
        for label, sw in _sweeps(series).items():
            w = _floats(f"{label} widths", _need(sw, "widths"))
            e = _floats(f"{label} errors", _need(sw, "errors"))
            if w.size != e.size:
                raise ValueError(f"width sweep {label!r}: {w.size} widths but {e.size} errors")
    elif kind == "spectrum":
        _curves(series, "eigenvalues")
    elif kind == "eta_scan":
        ratios = _floats("ratios", _need(series, "ratios"))
        _curves(series, "losses", ratios.size)
        if "predicted" in series:
            _curves(series, "predicted", ratios.size)
    return kind


def series_from_fits(fits: Mapping[str, PowerLawFit], title: str = "") -> dict:
    """A ``width_sweep`` series drawing the fitted sweeps of a ClaimResult (``result.sweeps``)."""
    return {"kind": "width_sweep", "title": title,
            "sweeps": {name: {"widths": list(f.widths), "errors": list(f.errors),
                              "fit": {"slope": f.slope, "slope_stderr": f.slope_stderr, "prefactor": f.prefactor}}
                       for name, f in fits.items()}}


def _fit_of(sw: Mapping, w: np.ndarray, e: np.ndarray) -> Optional[Dict[str, float]]:
    fit = sw.get("fit")
    if isinstance(fit, PowerLawFit):
        return {"slope": fit.slope, "slope_stderr": fit.slope_stderr, "prefactor": fit.prefactor}
    if isinstance(fit, Mapping) and {"slope", "prefactor"} <= set(fit):
        return {"slope": float(fit["slope"]), "slope_stderr": float(fit.get("slope_stderr", float("nan"))),
                "prefactor": float(fit["prefactor"])}
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


def _mark_exact_zeros(ax, steps, curves, predicted, palette) -> None:
    """A predicted loss of exactly 0 (one-step convergence at eta = 1/alpha) has no place on a log
    axis: draw the dashed prediction down to the axis floor and mark the zero steps with a
    downward triangle there, so the prediction stays visible next to the measured curve."""
    floor = ax.get_ylim()[0]
    for label in predicted:
        ys = np.asarray(curves.get(label, []), dtype=float)
        zero = np.isfinite(ys) & (ys <= 0)
        if not zero.any():
            continue
        key = label.replace(" predicted", "").replace("predicted", "").split(" M=")[0].strip()
        colour = palette.get(key, ("k", "o"))[0]
        shown = np.where(zero, floor, ys)
        ax.plot(steps, shown, ls="--", lw=1.2, color=colour)
        ax.plot(steps[zero], np.full(int(zero.sum()), floor), ls="none", marker="v", ms=6, color=colour,
                clip_on=False)
    ax.set_ylim(bottom=floor)


#: Normalised spectra: an alpha/mean within this of 1 is drawn as the one shared isotropic line.
ALPHA_LINE_RTOL = 1e-6


def _draw(ax, series: Mapping, kind: str) -> None:
    colours = iter(__import__("matplotlib").rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    if kind == "loss_curves":
        steps = _floats("steps", series["steps"])
        curves = _curves(series, "curves", steps.size)
        predicted = set(series.get("predicted") or [k for k in curves if "predict" in k.lower()])
        palette: Dict[str, str] = {}
        for label, ys in curves.items():
            dashed = label in predicted
            # a prediction shares the colour of the measured curves it predicts ("kfac train M=512"
            # and "kfac train predicted" -> key "kfac train")
            key = label.replace(" predicted", "").replace("predicted", "").split(" M=")[0].strip()
            if key not in palette:
                # colours repeat after 10 keys: the marker changes with each round of colours
                palette[key] = (next(colours), "osD^v"[(len(palette) // 10) % 5])
            colour, marker = palette[key]
            ax.plot(steps, _log_safe(ys) if series.get("logy", True) else ys, ls="--" if dashed else "-",
                    marker=None if dashed else marker, lw=1.2 if dashed else 1.6, ms=3, label=label, color=colour)
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(series.get("xlabel", "step t"))
        ax.set_ylabel(series.get("ylabel", "train loss"))
        if series.get("logy", True):
            ax.set_yscale("log")
            _mark_exact_zeros(ax, steps, curves, predicted, palette)
    elif kind == "width_sweep":
        for i, (label, sw) in enumerate(_sweeps(series).items()):
            w, e = _floats("widths", sw["widths"]), _floats("errors", sw["errors"])
            colour, marker = next(colours), "osD^v"[(i // 10) % 5]  # colours repeat after 10: vary the marker
            fit = _fit_of(sw, w, e)
            text = f" (slope {fit['slope']:.3f} ± {fit['slope_stderr']:.3f})" if fit is not None else ""
            ax.plot(w, _log_safe(e), marker, ls="none", color=colour, label=label + text)
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
        eig = _curves(series, "eigenvalues")
        alphas = dict(series.get("alpha") or {})
        if series.get("normalise"):
            means = {k: float(np.mean(v)) for k, v in eig.items()}
            eig = {k: v / means[k] if means[k] != 0 else v for k, v in eig.items()}
            alphas = {k: float(a) / means[k] for k, a in alphas.items() if a is not None and means.get(k)}
        positive = all(np.all(v > 0) for v in eig.values())
        if series.get("normalise") and any(abs(a - 1.0) <= ALPHA_LINE_RTOL for a in alphas.values() if a is not None):
            # normalised: every isotropic prediction is the same line alpha/mean = 1; draw it once
            ax.axhline(1.0, color="grey", ls="--", lw=1, label="alpha / mean = 1 (isotropic prediction)")
        for i, (label, vals) in enumerate(eig.items()):
            colour, marker = next(colours), ".osD^v"[(i // 10) % 6]  # colours repeat after 10: vary the marker
            vals = np.sort(vals)[::-1]
            ax.plot(np.arange(1, vals.size + 1), vals, "-", marker=marker, color=colour, ms=4, label=label)
            alpha = alphas.get(label)
            if alpha is not None and not (series.get("normalise") and abs(float(alpha) - 1.0) <= ALPHA_LINE_RTOL):
                ax.axhline(float(alpha), color=colour, ls="--", lw=1, label=f"{label}: alpha = {float(alpha):.4g}")
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel(series.get("xlabel", "eigenvalue index"))
        ax.set_ylabel(series.get("ylabel", r"eigenvalue of $\Theta_G$" + (" / mean" if series.get("normalise") else "")))
    elif kind == "eta_scan":
        ratios = _floats("ratios", series["ratios"])
        losses = _curves(series, "losses", ratios.size)
        predicted = _curves(series, "predicted", ratios.size) if "predicted" in series else {}
        for label, ys in losses.items():
            colour = next(colours)
            ax.plot(ratios, _log_safe(ys), "o-", ms=3, color=colour, label=label)
            if label in predicted:
                ax.plot(ratios, _log_safe(predicted[label]), "--", color=colour,
                        lw=1, label=f"{label} predicted")
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


def render_png(series: Mapping, title: str = "") -> bytes:
    """Draw one series (schema above) and return the PNG bytes; ``ValueError`` for a bad series."""
    kind = validate_series(series)
    series = normalise_series(series)
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # object API: no global pyplot state, thread/test safe

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    _draw(ax, series, kind)
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
    return str(series.get("caption") or series.get("title") or default)
