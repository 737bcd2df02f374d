"""``figures/*.png``: one figure per series of every claim, and the overview figures that merge the
series of one kind over all claims.

Every series is a :class:`proofs.figures.FigureSeries` (one schema, checked by
:func:`proofs.figures.check_series`); a series that breaks it is reported in place of its figure
(name and error), it does not stop the report.  A figure's title is its claim's title and what it
shows (the series' own title, or :func:`proofs.figures.describe`); its caption adds what the reader
needs (:func:`proofs.figures.explanations`: predicted zeros at the axis floor, round-off panels,
initialisation dots, normalisation).  The overview groups loss curves by their ``approximation``
and ``split`` fields -- labels are printed, never parsed -- and draws the width sweeps of all
claims as small multiples, one panel per claim, exact identities (round-off) in a panel of their own.

>>> sorted(OVERVIEW_TITLES)
['eta_scan', 'loss_curves-test', 'loss_curves-train', 'spectrum', 'width_sweep']
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from numerics.sweeps import PowerLawFit
from proofs.report.common import Pair, atomic_write_bytes, slug

__all__ = ["draw_figures", "overview_series", "draw_overview", "OVERVIEW_TITLES", "OVERVIEW_SHORT"]

OVERVIEW_TITLES = {
    "loss_curves-train": "Train loss relative to step 0 for every approximation at its eta = 1/alpha (each from the "
                         "first claim that shows it): measured (solid) against the infinite-width prediction (dashed)",
    "loss_curves-test": "Test loss relative to step 0 for every approximation at its eta = 1/alpha: measured (solid) "
                        "against the infinite-width prediction (dashed)",
    "width_sweep": "Errors against width on log-log axes with fitted slopes: one panel per topic (its own y "
                   "scale; quantities that are not power laws, e.g. loss ratios, in a panel of their own)",
    "spectrum": "Spectra of Theta_G per approximation, each divided by its mean (isotropic: the flat line at 1)",
    "eta_scan": "One-step loss vs eta/eta*, every approximation",
}


OVERVIEW_SHORT = {"width_sweep": "Every width sweep: errors against width M, one panel per topic",
                  "spectrum": "Spectra of Theta_G divided by their mean, per approximation",
                  "eta_scan": "One-step loss ratio against eta / eta*, per approximation"}


def figure_title(claim_title: str, series: Mapping) -> str:
    """A figure's title: the claim's title (whole: the renderer wraps it, never cuts it) over what the
    figure shows."""
    from proofs.figures import describe

    what = series.get("title") or describe(series)
    return str(claim_title) + "\n" + str(what)


def verdict_prefix(result) -> str:
    """``"REFUTED: "`` (``"CONDITIONAL: "``, ``"INCONCLUSIVE: "``) before the claim's title in a figure whose
    claim was not verified, so that a title stating a claim is never read as a result; ``""`` for verified.

    >>> from types import SimpleNamespace as R
    >>> verdict_prefix(R(verdict="refuted")), verdict_prefix(R(verdict="verified"))
    ('REFUTED: ', '')
    """
    verdict = str(getattr(result, "verdict", "verified"))
    return "" if verdict == "verified" else f"{verdict.upper()}: "


def figure_caption(claim_title: str, series: Mapping) -> str:
    """A figure's caption: the series' caption or "claim title: what is shown", then the
    explanations the reader needs (:func:`proofs.figures.caption_of`)."""
    from proofs.figures import caption_of, describe

    own = str(series.get("caption") or series.get("title") or describe(series))
    return caption_of(dict(series, caption=f"{claim_title}. {own[:1].upper()}{own[1:]}"), own)


def draw_figures(pairs: Sequence[Pair], out_dir: Path) -> Dict[str, List[Dict[str, str]]]:
    """PNG figures for every claim's series (and its sweep fits when no series draws them).

    Returns ``{claim id: [{"name", "path" (relative to out_dir), "caption"} or {"name", "error"}]}``;
    a series that breaks the schema is reported with its error, it does not stop the report.
    """
    from proofs.figures import check_series, render_png, series_from_fits

    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: Dict[str, List[Dict[str, str]]] = {}
    for claim, result in pairs:
        entries = []
        series = dict(result.series or {})
        fits = {k: f for k, f in (result.sweeps or {}).items() if isinstance(f, PowerLawFit)}
        if fits and not any(isinstance(s, Mapping) and s.get("kind") == "width_sweep" for s in series.values()):
            series["sweeps"] = series_from_fits(fits)
        for name, s in series.items():
            rel = f"figures/{slug(claim.id)}--{slug(name)}.png"
            try:
                s = check_series(s, f"{claim.id}: {name}")
                png = render_png({k: v for k, v in s.items() if k != "title"},
                                 title=figure_title(verdict_prefix(result) + claim.title, s), name=f"{claim.id}: {name}")
            except Exception as exc:  # noqa: BLE001 -- one bad figure is reported, it must not stop the report
                entries.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            atomic_write_bytes(out_dir / rel, png)
            entries.append({"name": name, "path": rel, "caption": figure_caption(verdict_prefix(result) + claim.title, s)})
        figures[claim.id] = entries
    return figures


def _relative(curve: Mapping) -> dict:
    """A loss curve divided by its value at step 0 (the overview compares runs of different tasks;
    a curve that starts at 0 or below is kept as it is)."""
    first = float(curve["y"][0])
    if not first > 0:
        return dict(curve)
    out = _curve(curve, y=[v / first for v in curve["y"]])
    if curve.get("replicates"):
        out["replicates"] = [[v / first for v in rep] for rep in curve["replicates"]]
    return out


def _curve(curve: Mapping, **changes: Any) -> dict:
    out = dict(curve)
    out.update(changes)
    return out


def overview_series(pairs: Sequence[Pair]) -> Dict[str, dict]:
    """One merged series per kind over all claims (only kinds fed by >= 2 series): the report's
    overview figures, ``{"overview-<kind>": series}``.

    Loss curves go to ``loss_curves-train`` / ``loss_curves-test`` by their ``split``; each
    approximation is shown once, from the first series that has it (its measured and predicted
    curves; every claim's own figure shows all of its curves).  Width-sweep curves keep their label
    and get their claim's (shortened) title as ``group``: one panel per claim.  Spectra: measured
    curves only, normalised by their mean; spectrum and eta-scan labels get the claim id only when
    they clash.  Series that break the schema are left out (their own figure reports the error).
    """
    from proofs.figures import check_series

    merged: Dict[str, dict] = {}
    seen_spectra: set = set()
    sources: Dict[str, set] = {}  # overview name -> the (claim, series) pairs that fed it
    settings: Dict[str, List[str]] = {}  # overview kind -> the settings (width, depth, N) its sources state
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
                        "kind": kind, "title": f"{split} loss relative to step 0, every approximation at eta = 1/alpha "
                                               "(widths M in the legends)",
                        "caption": OVERVIEW_TITLES[f"loss_curves-{split}"], "ylabel": f"{split} loss L_t / L_0",
                        "curves": []})
                    owner = owners.setdefault((split, c.get("approximation") or c["label"]), (claim.id, name))
                    if owner != (claim.id, name) or any(c["label"] == o["label"] for o in sub["curves"]):
                        continue
                    sub["curves"].append(_curve(_relative(c), group=loss_family(c, claim.id)))
                    sources.setdefault(f"loss_curves-{split}", set()).add((claim.id, name))
                continue
            if kind not in OVERVIEW_SHORT:
                continue  # e.g. xy: quantities of one claim, nothing to merge
            sources.setdefault(kind, set()).add((claim.id, name))
            setting = _setting_of(s.get("title"))
            if setting and setting not in settings.setdefault(kind, []):
                settings[kind].append(setting)
            m = merged.setdefault(kind, {"kind": kind, "title": OVERVIEW_SHORT[kind], "caption": OVERVIEW_TITLES[kind],
                                         "curves": []})
            taken = {c["label"] for c in m["curves"]}
            for c in s["curves"]:
                if kind == "width_sweep":
                    group = topic_title(claim.id)
                    if s.get("autofit") is False:  # not a power-law error: its own panel, no fitted slope
                        group = f"{group}: {s.get('ylabel') or c['label']}"
                        c = _curve(c, autofit=False)
                    label = c["label"]
                    quantity = s.get("ylabel")
                    core = re.sub(r"\s*\([^)]*\)", "", quantity or "").strip()
                    if quantity and core not in label and label not in quantity and s.get("autofit") is not False:
                        label = f"{label}: {quantity}"  # the panel mixes quantities: say which one this is
                    if any(o.get("group") == group and o["label"] == label for o in m["curves"]):
                        tail = claim.id.rsplit(".", 1)[-1]
                        label = f"{label} ({_CLAIM_TAILS.get(tail, tail.replace('_', ' '))})"
                    ylabels = m.setdefault("panel_ylabels", {})
                    wanted = quantity or "error"
                    if s.get("autofit") is False or quantity is None:
                        wanted = quantity or "relative error"
                    have = ylabels.get(group, wanted)
                    if have != wanted:  # "isotropy error" and "isotropy error (C = 2, tanh)": the shared quantity
                        same = re.sub(r"\s*\([^)]*\)", "", have).strip() == re.sub(r"\s*\([^)]*\)", "", wanted).strip()
                        wanted = re.sub(r"\s*\([^)]*\)", "", wanted).strip() if same else "relative error (see legend)"
                    ylabels[group] = wanted
                    m["curves"].append(_curve(c, group=group, label=label))
                elif kind == "spectrum" and (c["role"] == "predicted" or not c.get("approximation")
                                             or c["approximation"] in seen_spectra):
                    continue  # one measured spectrum per approximation (damped or predicted ones: their claim's figure)
                else:
                    if kind == "spectrum":
                        seen_spectra.add(c["approximation"])
                    m["curves"].append(c if c["label"] not in taken else _curve(c, label=f"{claim.id}: {c['label']}"))
            if kind == "width_sweep":
                m["ylabel"] = "relative error"
            elif kind == "spectrum":
                m["normalise"] = True  # different approximations have alphas from 1 to N L
    for kind, m in merged.items():
        if kind.startswith("loss_curves"):
            _say_where_runs_stop(m["curves"])
        if kind in ("spectrum", "eta_scan") and settings.get(kind):
            m["title"] = f"{m['title']} ({'; '.join(settings[kind])})"
    return {f"overview-{kind}": m for kind, m in merged.items() if len(sources.get(kind, ())) >= 2}


def _say_where_runs_stop(curves: List[dict]) -> None:
    """A run that stops before the others of its panel says so in its label ("one step only",
    "steps 0-2"): a curve that ends early is the run's length, not missing data."""
    last: Dict[Any, float] = {}
    for c in curves:
        last[c.get("group")] = max(last.get(c.get("group"), 0.0), max(c["x"]))
    for c in curves:
        end = max(c["x"])
        if end < last[c.get("group")] and "step" not in c["label"]:  # predictions too: they keep their pairing
            c["label"] += " (one step only)" if end == 1 else f" (steps 0-{end:g} only)"


def _setting_of(title: Any) -> Optional[str]:
    """The parenthesised setting in a series title that names a width, e.g. ``"relu, depth 3, width 256, N = 16"``.

    >>> _setting_of("spectrum of Theta_G per approximation (relu, depth 3, width 256, N = 16)")
    'relu, depth 3, width 256, N = 16'
    """
    import re

    found = re.findall(r"\(([^()]*width[^()]*)\)", str(title or ""))
    return found[-1] if found else None


#: How the overview names a claim when two of one topic draw the same quantity.
_CLAIM_TAILS = {"forster": "Forster inputs", "test_kernel": "L = 5", "alpha_definition": "from its definition"}

_TOPIC_TITLES = {"kernels": "kernels: empirical NTKs -> analytic NTKs", "sanity": "sanity checks and controls",
                 "digits": "real digits", "exact": "exact NGD", "ekfac": "EKFAC", "cross_entropy": "cross-entropy"}


#: The panels of the loss-curve overviews: approximation -> family (small multiples, one per family).
LOSS_FAMILIES = {"exact": "layer-wise: exact NGD, block-diagonal, block tri-diagonal, K-FAC",
                 "block_diagonal": "layer-wise: exact NGD, block-diagonal, block tri-diagonal, K-FAC",
                 "block_tridiagonal": "layer-wise: exact NGD, block-diagonal, block tri-diagonal, K-FAC",
                 "kfac": "layer-wise: exact NGD, block-diagonal, block tri-diagonal, K-FAC",
                 "unit_wise": "unit-wise",
                 "diagonal": "not isotropic: diagonal Fisher and EKFAC",
                 "ekfac": "not isotropic: diagonal Fisher and EKFAC"}


def loss_family(curve: Mapping, claim_id: str) -> str:
    """The overview panel of a loss curve: its approximation's family (:data:`LOSS_FAMILIES`), else that
    of its claim's topic (``ngd.unit_wise.relu_one_step`` -> unit-wise), else "other".

    >>> loss_family({"approximation": "kfac"}, "x"), loss_family({"label": "relu"}, "ngd.unit_wise.relu_one_step")
    ('layer-wise: exact NGD, block-diagonal, block tri-diagonal, K-FAC', 'unit-wise')
    """
    if curve.get("approximation") in LOSS_FAMILIES:
        return LOSS_FAMILIES[curve["approximation"]]
    parts = str(claim_id).split(".")
    return LOSS_FAMILIES.get(parts[1] if len(parts) > 1 else "", "other")


def topic_title(claim_id: str) -> str:
    """The panel of a claim in the overview of width sweeps: its topic (``ngd.kfac.forster`` ->
    ``kfac``, ``kernels.empirical_ntk_limit`` -> ``kernels``) printed by the registry when it is an
    approximation (``K-FAC``).

    >>> topic_title("ngd.kfac.forster"), topic_title("kernels.empirical_ntk_limit"), topic_title("ngd.block_diagonal")
    ('K-FAC', 'kernels: empirical NTKs -> analytic NTKs', 'block-diagonal')
    >>> topic_title("ngd.cross_entropy.kfac_spread")
    'cross-entropy'
    """
    parts = str(claim_id).split(".")
    topic = parts[1] if parts[0] == "ngd" and len(parts) > 1 else parts[0]
    if topic in _TOPIC_TITLES:
        return _TOPIC_TITLES[topic]
    try:
        from theory.registry import approximation_label

        label = approximation_label(topic)
    except (KeyError, ValueError):
        label = topic
    return label.replace("_", " ") if label == topic else label


def draw_overview(pairs: Sequence[Pair], out_dir: Path) -> List[Dict[str, str]]:
    """Draw :func:`overview_series` into ``out_dir/figures``; entries as in :func:`draw_figures`."""
    from proofs.figures import caption_of, render_png

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
        entries.append({"name": name, "path": rel, "caption": caption_of(s, s["caption"])})
    return entries
