"""``figures/*.png``: one figure per series of every claim, and the overview figures that merge the
series of one kind over all claims.

Every series is a :class:`proofs.figures.FigureSeries` (one schema, checked by
:func:`proofs.figures.check_series`); a series that breaks it is reported in place of its figure
(name and error), it does not stop the report.  The overview groups loss curves by their
``approximation`` and ``split`` fields -- labels are printed, never parsed.

>>> sorted(OVERVIEW_TITLES)
['eta_scan', 'loss_curves-test', 'loss_curves-train', 'spectrum', 'width_sweep']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from numerics.sweeps import PowerLawFit
from proofs.report.common import Pair, atomic_write_bytes, slug

__all__ = ["draw_figures", "overview_series", "draw_overview", "OVERVIEW_TITLES", "OVERVIEW_SHORT"]

OVERVIEW_TITLES = {
    "loss_curves-train": "Train loss vs step for every approximation at its eta = 1/alpha: measured (solid) against "
                         "the infinite-width prediction (dashed; a predicted 0 is off the log axis)",
    "loss_curves-test": "Test loss vs step for every approximation at its eta = 1/alpha: measured (solid) against "
                        "the infinite-width prediction (dashed)",
    "width_sweep": "Errors vs width on log-log axes with fitted slopes, all claims",
    "spectrum": "Spectra of Theta_G per approximation",
    "eta_scan": "One-step loss vs eta/eta*, every approximation",
}


OVERVIEW_SHORT = {"width_sweep": "errors vs width, all claims", "spectrum": "spectra of Theta_G / mean",
                  "eta_scan": "one-step loss vs eta/eta*"}


def draw_figures(pairs: Sequence[Pair], out_dir: Path) -> Dict[str, List[Dict[str, str]]]:
    """PNG figures for every claim's series (and its sweep fits when no series draws them).

    Returns ``{claim id: [{"name", "path" (relative to out_dir), "caption"} or {"name", "error"}]}``;
    a series that breaks the schema is reported with its error, it does not stop the report.
    """
    from proofs.figures import caption_of, render_png, series_from_fits

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: Dict[str, List[Dict[str, str]]] = {}
    for claim, result in pairs:
        entries = []
        series = dict(result.series or {})
        fits = {k: f for k, f in (result.sweeps or {}).items() if isinstance(f, PowerLawFit)}
        if fits and not any(isinstance(s, Mapping) and s.get("kind") == "width_sweep" for s in series.values()):
            series["sweeps"] = series_from_fits(fits, title=f"{claim.id}: width sweeps")
        for name, s in series.items():
            rel = f"figures/{slug(claim.id)}--{slug(name)}.png"
            try:
                png = render_png(s, title=f"{claim.id}: {name}", name=f"{claim.id}: {name}")
            except Exception as exc:  # noqa: BLE001 -- one bad figure is reported, it must not stop the report
                entries.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            atomic_write_bytes(out_dir / rel, png)
            entries.append({"name": name, "path": rel, "caption": caption_of(s, f"{claim.title}: {name}")})
        figures[claim.id] = entries
    return figures


def _curve(curve: Mapping, **changes: Any) -> dict:
    out = dict(curve)
    out.update(changes)
    return out


def overview_series(pairs: Sequence[Pair]) -> Dict[str, dict]:
    """One merged series per kind over all claims (only kinds fed by >= 2 series): the report's
    overview figures, ``{"overview-<kind>": series}``.

    Loss curves go to ``loss_curves-train`` / ``loss_curves-test`` by their ``split``; each
    approximation is shown once, from the first series that has it (its measured and predicted
    curves; every claim's own figure shows all of its curves).  Width-sweep curves are labelled
    ``"<claim id>: <label>"``; spectrum and eta-scan labels get the claim id only when they clash.
    Series that break the schema are left out (their own figure reports the error).
    """
    from proofs.figures import check_series

    merged: Dict[str, dict] = {}
    sources: Dict[str, set] = {}  # overview name -> the (claim, series) pairs that fed it
    owners: Dict[tuple, tuple] = {}  # (split, approximation or label) -> the (claim, series) shown for it
    for claim, result in pairs:
        for name, raw in (result.series or {}).items():
            try:
                s = check_series(raw, f"{claim.id}: {name}")
            except ValueError:
                continue
            kind = s["kind"]
            if kind == "loss_curves":
                for c in s["curves"]:
                    split = c["split"]
                    sub = merged.setdefault(f"loss_curves-{split}", {
                        "kind": kind, "title": f"{split} loss vs step, every approximation at eta = 1/alpha",
                        "caption": OVERVIEW_TITLES[f"loss_curves-{split}"], "ylabel": f"{split} loss", "curves": []})
                    owner = owners.setdefault((split, c.get("approximation") or c["label"]), (claim.id, name))
                    if owner != (claim.id, name) or any(c["label"] == o["label"] for o in sub["curves"]):
                        continue
                    sub["curves"].append(c)
                    sources.setdefault(f"loss_curves-{split}", set()).add((claim.id, name))
                continue
            sources.setdefault(kind, set()).add((claim.id, name))
            m = merged.setdefault(kind, {"kind": kind, "title": OVERVIEW_SHORT[kind], "caption": OVERVIEW_TITLES[kind],
                                         "curves": []})
            taken = {c["label"] for c in m["curves"]}
            for c in s["curves"]:
                if kind == "width_sweep":
                    m["curves"].append(_curve(c, label=f"{claim.id}: {c['label']}"))
                else:
                    m["curves"].append(c if c["label"] not in taken else _curve(c, label=f"{claim.id}: {c['label']}"))
            if kind == "width_sweep":
                m["ylabel"] = "error"
            elif kind == "spectrum":
                m["normalise"] = True  # different approximations have alphas from 1 to N L
    return {f"overview-{kind}": m for kind, m in merged.items() if len(sources.get(kind, ())) >= 2}


def draw_overview(pairs: Sequence[Pair], out_dir: Path) -> List[Dict[str, str]]:
    """Draw :func:`overview_series` into ``out_dir/figures``; entries as in :func:`draw_figures`."""
    from proofs.figures import render_png

    entries = []
    for name, s in overview_series(pairs).items():
        rel = f"figures/{slug(name)}.png"
        try:
            png = render_png(s, name=name)
        except Exception as exc:  # noqa: BLE001 -- reported in place of the figure
            entries.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / rel, png)
        entries.append({"name": name, "path": rel, "caption": s["caption"]})
    return entries
