"""Results as strict JSON, and the derivation report (Markdown + LaTeX + JSON + PNG figures).

* :func:`results_document` -- the JSON document of a run, per ``shared/interface.md``:
  ``{"conventions", "seed", "claims": [{"id", "title", "verdict", "predicted", "measured", "error",
  "width", "details", ...}]}`` plus ``mode``, ``environment`` (versions, BLAS, machine, git commit,
  timestamp), ``summary``; each claim also carries ``expected``, ``as_expected``, ``tolerance``,
  ``failed_assumption``, ``notes``, ``seconds``, ``statement``, ``assumptions``, ``reference``,
  ``sweeps`` (fits), ``derivation`` (steps with status) and ``series`` (figure data).
* :func:`dumps_strict` -- strict JSON: no NaN/Infinity tokens.  Non-finite floats become the
  strings ``"nan"``, ``"inf"``, ``"-inf"`` (a singular system's condition number stays legible),
  numpy/SymPy values become plain numbers (exact SymPy integers stay integers; other SymPy
  expressions become their string), unknown objects their ``str``.
* :func:`atomic_write_text` / :func:`atomic_write_bytes` -- write a temporary file in the target's
  directory, flush + fsync, then ``os.replace``: readers never see a half-written file.
* :func:`write_report` -- ``report.md`` (GitHub Markdown with ``$...$``/``$$...$$`` math),
  ``report.tex`` (pdflatex with amsmath/amssymb/graphicx/booktabs/longtable/geometry/hyperref),
  ``results.json`` and ``figures/*.png``, every number taken from the results of this run.

>>> dumps_strict({"x": float("nan"), "y": [1.0, float("inf")]})
'{"x": "nan", "y": [1.0, "inf"]}'
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import sympy as sp

from numerics.sweeps import PowerLawFit
from proofs.claim import VERDICTS, Claim, ClaimResult, RunConfig
from proofs.conventions import CONVENTIONS, SECTION_TITLES, conventions, conventions_markdown
from proofs.environment import environment_record

Pair = Tuple[Claim, ClaimResult]


# ----------------------------------------------------------------------------- strict JSON
def to_jsonable(obj: Any) -> Any:
    """A structure of dict/list/str/int/float/bool/None with only finite floats (see module doc)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(obj, (complex, np.complexfloating)):
        return {"real": to_jsonable(obj.real), "imag": to_jsonable(obj.imag)}
    if isinstance(obj, sp.Basic):
        if obj.is_Integer:
            return int(obj)
        if obj.is_number and obj.is_real and not obj.is_Rational:
            try:
                return to_jsonable(float(obj))
            except (TypeError, ValueError):
                return str(obj)
        if isinstance(obj, sp.MatrixBase):
            return [[to_jsonable(e) for e in obj.row(i)] for i in range(obj.rows)]
        return str(obj)  # rationals keep their exact form ("1/3"); symbolic expressions their text
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()] if obj.ndim else to_jsonable(obj.item())
    if isinstance(obj, PowerLawFit):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    return str(obj)


def dumps_strict(obj: Any, indent: Optional[int] = None) -> str:
    """``json.dumps`` of :func:`to_jsonable` with ``allow_nan=False`` (strict RFC 8259 JSON)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)


# ----------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    The directory must exist (``ValueError`` naming it otherwise); on any error the temp file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- results document
def claim_record(claim: Claim, result: ClaimResult) -> Dict[str, Any]:
    """One claim's JSON entry (interface keys first, then the extras)."""
    record = {
        "id": claim.id,
        "title": claim.title,
        "verdict": result.verdict,
        "predicted": result.predicted,
        "measured": result.measured,
        "error": result.error,
        "width": result.width,
        "details": result.details,
        "expected": claim.expected,
        "as_expected": result.verdict == claim.expected,
        "tolerance": result.tolerance,
        "failed_assumption": result.failed_assumption,
        "notes": result.notes,
        "seconds": round(float(result.seconds), 4),
        "statement": claim.statement,
        "assumptions": list(claim.assumptions),
        "reference": claim.reference,
        "tags": list(claim.tags),
        "sweeps": {name: fit.to_dict() if isinstance(fit, PowerLawFit) else fit for name, fit in result.sweeps.items()},
        "derivation": result.derivation.to_dict() if result.derivation is not None else None,
        "series": result.series,
    }
    return to_jsonable(record)


def summarize(pairs: Sequence[Pair]) -> Dict[str, Any]:
    counts = {v: 0 for v in VERDICTS}
    for _, result in pairs:
        counts[result.verdict] += 1
    unexpected = [c.id for c, r in pairs if r.verdict != c.expected]
    return {"claims": len(pairs), "counts": counts, "unexpected": unexpected, "all_as_expected": not unexpected,
            "seconds": round(sum(float(r.seconds) for _, r in pairs), 3)}


def results_document(pairs: Sequence[Pair], cfg: RunConfig, environment: Optional[dict] = None) -> Dict[str, Any]:
    """The JSON document of a run (see the module docstring)."""
    environment = environment if environment is not None else environment_record()
    return to_jsonable({
        "conventions": conventions(),
        "seed": int(cfg.seed),
        "mode": cfg.mode,
        "environment": environment,
        "versions": environment.get("versions", {}),
        "verdict_rules": _rules_parameters(),
        "summary": summarize(pairs),
        "claims": [claim_record(c, r) for c, r in pairs],
    })


def _rules_parameters() -> Dict[str, Any]:
    from proofs.verdicts import rules_parameters

    return rules_parameters()


def write_json(path, document: Mapping) -> Path:
    return atomic_write_text(path, dumps_strict(document, indent=2) + "\n")


# ----------------------------------------------------------------------------- formatting
def fmt(value: Any, limit: int = 160) -> str:
    """A short human rendering of a number / list / value for tables."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    if isinstance(value, sp.Basic):
        return str(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        seq = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(seq) <= 6:
            text = "[" + ", ".join(fmt(v, 40) for v in seq) + "]"
        else:
            try:
                arr = np.asarray(seq, dtype=float)
                text = f"[{len(seq)} values, {np.nanmin(arr):.4g} .. {np.nanmax(arr):.4g}]"
            except (TypeError, ValueError):
                text = f"[{len(seq)} values]"
    elif isinstance(value, Mapping):
        text = json.dumps(to_jsonable(value), ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def slug(text: str) -> str:
    """A file-name-safe slug (letters, digits, hyphens) -- safe for LaTeX \\includegraphics too."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-")
    return s or "x"


_MATHY = re.compile(r"[\\^_=<>{}]")


def statement_kind(statement: str) -> str:
    """How a statement string is meant: ``"mixed"`` (text with ``$...$`` math), ``"math"`` (one
    LaTeX formula, shown as a display) or ``"text"`` (plain prose)."""
    if "$" in statement:
        return "mixed"
    return "math" if _MATHY.search(statement) else "text"


def _flat_details(details: Mapping, skip=("checks", "assumptions_checked")) -> List[Tuple[str, Any]]:
    rows: List[Tuple[str, Any]] = []
    for key, value in details.items():
        if key in skip:
            continue
        if isinstance(value, Mapping) and value and len(value) <= 12:
            rows += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            rows.append((str(key), value))
    return rows[:60]


# ----------------------------------------------------------------------------- figures
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
                png = render_png(s, title=f"{claim.id}: {name}")
            except Exception as exc:  # noqa: BLE001 -- one bad figure is reported, it must not stop the report
                entries.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            atomic_write_bytes(out_dir / rel, png)
            entries.append({"name": name, "path": rel, "caption": caption_of(s, f"{claim.title}: {name}")})
        figures[claim.id] = entries
    return figures


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


def curve_approximation(label: str) -> str:
    """The approximation a loss-curve label belongs to: its first word if that names an approximation
    (``"exact train M=512"``, ``"kfac (alpha=149)"``, ``"block_diagonal predicted"``), else the label
    without its ``predicted``/``M=`` parts.

    >>> curve_approximation("kfac (alpha=149)"), curve_approximation("NTK train predicted")
    ('kfac', 'NTK train')
    """
    from numerics.approximations import APPROXIMATIONS

    first = re.split(r"[\s(:,]", label.strip(), maxsplit=1)[0]
    if first in APPROXIMATIONS or first == "pattern":
        return first
    return label.replace(" predicted", "").replace("predicted", "").split(" M=")[0].strip()


def curve_split(label: str, series: Mapping[str, Any]) -> str:
    """``"test"`` or ``"train"``: from the curve label if it says so, else from the series' y label/title.

    >>> curve_split("exact measured", {"ylabel": "test loss"}), curve_split("kfac train", {"ylabel": "test loss"})
    ('test', 'train')
    """
    words = f" {label.lower()}"
    if " test" in words:
        return "test"
    if " train" in words:
        return "train"
    context = f" {series.get('ylabel') or ''} {series.get('title') or ''}".lower()
    return "test" if " test" in context and " train" not in context else "train"


def overview_series(pairs: Sequence[Pair]) -> Dict[str, dict]:
    """One merged series per kind over all claims (only kinds that occur in >= 2 series): the
    report's overview figures.  Labels that clash between claims get the claim id prefixed."""
    from proofs.figures import normalise_series, validate_series

    merged: Dict[str, dict] = {}
    sources: Dict[str, set] = {}  # overview name -> the (claim, series) pairs that fed it
    for claim, result in pairs:
        for name, raw in (result.series or {}).items():
            try:
                kind = validate_series(raw)
                s = normalise_series(raw)
            except (ValueError, TypeError):
                continue
            if kind != "loss_curves":
                sources.setdefault(kind, set()).add((claim.id, name))
                m = merged.setdefault(kind, {"kind": kind, "title": OVERVIEW_SHORT[kind],
                                             "caption": OVERVIEW_TITLES[kind]})

            def label(text):
                return f"{claim.id}: {text}"

            if kind == "loss_curves":
                steps = list(np.asarray(s["steps"], dtype=float))
                predicted = set(s.get("predicted") or [k for k in s["curves"] if "predict" in k.lower()])
                for k, v in s["curves"].items():
                    # train and test curves go to separate overview figures: by the label, else by the
                    # series' axis label / title ("exact measured" in a test-loss series is a test curve)
                    split = curve_split(k, s)
                    sub = merged.setdefault(f"loss_curves-{split}", {
                        "kind": kind, "title": f"{split} loss vs step, every approximation at eta = 1/alpha",
                        "caption": OVERVIEW_TITLES[f"loss_curves-{split}"], "steps": steps, "curves": {},
                        "predicted": [], "ylabel": f"{split} loss"})
                    # one approximation = ONE series of one claim (its measured and predicted curves): the
                    # overview shows each approximation once; every claim's own figure shows all its curves
                    owner = sub.setdefault("_owners", {}).setdefault(curve_approximation(k), (claim.id, name))
                    if len(sub["steps"]) != len(steps) or k in sub["curves"] or owner != (claim.id, name):
                        continue
                    sub["curves"][k] = v
                    if k in predicted:
                        sub["predicted"].append(k)
                    sources.setdefault(f"loss_curves-{split}", set()).add((claim.id, name))
            elif kind == "width_sweep":
                sweeps = s["sweeps"] if "sweeps" in s else {str(s.get("ylabel") or name): s}
                for k, v in sweeps.items():
                    m.setdefault("sweeps", {})[label(k)] = v
                m["ylabel"] = "error"
            elif kind == "spectrum":
                for k, v in s["eigenvalues"].items():
                    key = k if k not in m.setdefault("eigenvalues", {}) else label(k)
                    m["eigenvalues"][key] = v
                    if k in (s.get("alpha") or {}):
                        m.setdefault("alpha", {})[key] = s["alpha"][k]
                m["normalise"] = True  # different approximations have alphas from 1 to N L
            elif kind == "eta_scan":
                ratios = list(np.asarray(s["ratios"], dtype=float))
                if "ratios" in m and m["ratios"] != ratios:
                    continue
                m.setdefault("ratios", ratios)
                for k, v in s["losses"].items():
                    key = k if k not in m.setdefault("losses", {}) else label(k)
                    m["losses"][key] = v
                    if k in (s.get("predicted") or {}):
                        m.setdefault("predicted", {})[key] = s["predicted"][k]
    for m in merged.values():
        m.pop("_owners", None)
    return {f"overview-{kind}": m for kind, m in merged.items() if len(sources.get(kind, ())) >= 2}



def draw_overview(pairs: Sequence[Pair], out_dir: Path) -> List[Dict[str, str]]:
    from proofs.figures import render_png

    entries = []
    for name, s in overview_series(pairs).items():
        rel = f"figures/{slug(name)}.png"
        try:
            png = render_png(s)
        except Exception as exc:  # noqa: BLE001 -- reported in place of the figure
            entries.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_dir / rel, png)
        entries.append({"name": name, "path": rel, "caption": s["caption"]})
    return entries


# ----------------------------------------------------------------------------- Markdown
def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|") if not isinstance(value, str) else " ".join(value.split()).replace("|", "\\|")


def _md_statement(statement: str) -> str:
    kind = statement_kind(statement)
    if kind == "math":
        return f"$$\n{statement.strip()}\n$$"
    return statement.strip()


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return lines


def _env_rows(doc: Mapping) -> List[List[Any]]:
    env = doc.get("environment", {})
    machine = env.get("machine", {})
    blas = "; ".join(f"{b.get('library')} {b.get('version')} ({b.get('threads')} threads)" for b in env.get("blas", []))
    rows = [["mode", doc.get("mode")], ["seed", doc.get("seed")], ["timestamp (UTC)", env.get("timestamp")],
            ["git commit", env.get("git_commit")], ["machine", f"{machine.get('platform')}, {machine.get('cpu_count')} CPUs"],
            ["BLAS", blas or "unknown"]]
    rows += [[name, version] for name, version in env.get("versions", {}).items()]
    return rows


def markdown_report(doc: Mapping, pairs: Sequence[Pair], figures: Mapping[str, List[Dict[str, str]]]) -> str:
    """The Markdown report (every number from ``doc``/``pairs``, i.e. from this run)."""
    summary = doc["summary"]
    out = ["# ngd-verifier report", "",
           "Verification of Karakida & Osawa (NeurIPS 2020), *Understanding Approximate Fisher Information for Fast "
           "Convergence of Natural Gradient Descent in Wide Neural Networks*: each claim is derived symbolically, "
           "measured on finite-width networks, and given a verdict computed from the evidence.", "",
           "## Run", ""]
    out += _md_table(["", "value"], _env_rows(doc)) + [""]
    out += ["## Conventions", "", conventions_markdown(), ""]
    counts = ", ".join(f"{n} {v}" for v, n in summary["counts"].items())
    verdict_line = ("every verdict is the one its claim expects" if summary["all_as_expected"]
                    else f"verdicts differing from the expected one: {', '.join(summary['unexpected'])}")
    out += ["## Summary", "", f"{summary['claims']} claims: {counts}; {verdict_line}. "
            f"Total check time {summary['seconds']:.1f} s.", ""]
    out += _md_table(["claim", "verdict", "expected", "predicted", "measured", "error", "width", "failed assumption"],
                     [[f"[`{c.id}`](#{slug(c.id).lower()})", r.verdict, c.expected, r.predicted, r.measured, r.error,
                       r.width, r.failed_assumption] for c, r in pairs]) + [""]
    overview = figures.get("__overview__", [])
    if overview:
        out += ["## Overview figures", ""]
        for fig in overview:
            if "path" in fig:
                out += [f"![{fig['caption']}]({fig['path']})", "", f"*{fig['caption']}*", ""]
    out += ["## Claims", ""]
    for claim, result in pairs:
        out += _md_claim(claim, result, figures.get(claim.id, []))
    from proofs.verdicts import rules_text

    out += ["## Appendix: verdict rules", "",
            "How every verdict above was computed (`proofs/verdicts.py`, the same text as its documentation):", "",
            "```text", rules_text(), "```", ""]
    return "\n".join(out).rstrip() + "\n"


def _fit_row(name: str, fit: Any) -> List[Any]:
    """A sweep-table row from a PowerLawFit (or a mapping with the same fields)."""
    get = (lambda k: fit.get(k)) if isinstance(fit, Mapping) else (lambda k: getattr(fit, k, None))
    return [name, list(get("widths") or []), list(get("errors") or []), get("slope"), get("slope_stderr"),
            get("prefactor")]


def _reason(check: Mapping) -> str:
    """A sub-verdict's reason without the leading "name: " the verdict helpers prefix."""
    reason, name = str(check.get("reason") or ""), str(check.get("name") or "")
    return reason[len(name) + 2:] if name and reason.startswith(name + ": ") else reason


def _md_claim(claim: Claim, result: ClaimResult, figs: List[Dict[str, str]]) -> List[str]:
    mark = "" if result.verdict == claim.expected else " — **differs from the expected verdict**"
    out = [f'<a id="{slug(claim.id).lower()}"></a>', f"### `{claim.id}`: {claim.title}", "",
           f"**Verdict: {result.verdict}** (expected: {claim.expected}){mark}. "
           f"Checked in {result.seconds:.2f} s." + (f" Reference: {claim.reference}." if claim.reference else ""), ""]
    if result.failed_assumption:
        out += [f"**Failed assumption:** {result.failed_assumption}", ""]
    out += ["**Statement.**", "", _md_statement(claim.statement), ""]
    if claim.assumptions:
        out += ["**Assumptions.**", ""] + [f"- {a}" for a in claim.assumptions] + [""]
    if result.derivation is not None:
        out += ["**Derivation.**", "", result.derivation.to_markdown(), ""]
    out += ["**Evidence.**", ""]
    out += _md_table(["quantity", "value"], [["predicted", result.predicted], ["measured", result.measured],
                                              ["error", result.error], ["tolerance", result.tolerance],
                                              ["width", result.width]]) + [""]
    checks = result.details.get("checks") if isinstance(result.details, Mapping) else None
    if checks:
        out += _md_table(["check", "verdict", "relaxed assumption", "reason"],
                         [[c.get("name"), c.get("verdict"), c.get("assumption"), _reason(c)] for c in checks]) + [""]
    if result.sweeps:
        out += ["**Width sweeps.**", ""]
        out += _md_table(["sweep", "widths", "errors", "slope", "stderr", "prefactor"],
                         [_fit_row(name, f) for name, f in result.sweeps.items()]) + [""]
    rows = _flat_details(result.details or {})
    if rows:
        out += ["**Details.**", ""] + _md_table(["key", "value"], rows) + [""]
    for fig in figs:
        if "path" in fig:
            out += [f"![{fig['caption']}]({fig['path']})", "", f"*{fig['caption']}*", ""]
        else:
            out += [f"*Figure `{fig['name']}` could not be drawn: {fig['error']}*", ""]
    if result.notes:
        out += [f"**Notes.** {' '.join(result.notes.split())}", ""]
    return out


# ----------------------------------------------------------------------------- LaTeX
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_UNICODE_TEX = {"–": "--", "—": "---", "±": r"$\pm$", "×": r"$\times$", "≤": r"$\le$", "≥": r"$\ge$",
                "≠": r"$\neq$", "≈": r"$\approx$", "→": r"$\to$", "∞": r"$\infty$", "−": "-", "·": r"$\cdot$",
                "✔": "[ok]", "✘": "[x]", "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "η": r"$\eta$",
                "θ": r"$\theta$", "Θ": r"$\Theta$", "ρ": r"$\rho$", "σ": r"$\sigma$", "Σ": r"$\Sigma$",
                "λ": r"$\lambda$", "δ": r"$\delta$", "Δ": r"$\Delta$", "φ": r"$\phi$", "⊗": r"$\otimes$",
                "∘": r"$\circ$", "√": r"$\surd$", "…": r"\ldots{}", "’": "'", "“": "``", "”": "''", "§": r"\S{}",
                "²": r"$^2$", "⁺": r"$^+$", "ᵀ": r"$^T$"}


def _is_control(ch: str) -> bool:
    return (ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127


def tex_math(text: Any) -> str:
    """Math-mode content made pdflatex-safe: control characters (e.g. from a non-raw Python string
    where "\\t" became a TAB) become ``?``, common Unicode symbols their commands, other
    non-ASCII characters are transliterated."""
    out = []
    for ch in str(text):
        if ch == "\t" or _is_control(ch):
            out.append("?")
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in _UNICODE_TEX:
            out.append(_UNICODE_TEX[ch].replace("$", " ") if "$" in _UNICODE_TEX[ch] else r"\text{" + _UNICODE_TEX[ch] + "}")
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ if ascii_ else "?")
    return "".join(out)


def tex_escape(text: Any) -> str:
    """Plain text -> LaTeX text (specials escaped, common Unicode mapped, the rest transliterated,
    control characters shown as ``?``)."""
    out = []
    for ch in str(text):
        if _is_control(ch):
            out.append("?")
        elif ch in _TEX_SPECIAL:
            out.append(_TEX_SPECIAL[ch])
        elif ch in _UNICODE_TEX:
            out.append(_UNICODE_TEX[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(tex_escape(ascii_) if ascii_ else "?")
    return "".join(out)


def tex_mixed(text: str) -> str:
    """Text with ``$...$`` / ``$$...$$`` math: the text parts escaped, the math kept verbatim."""
    parts = re.split(r"(\$\$.+?\$\$|\$[^$]+?\$)", str(text), flags=re.S)
    return "".join(tex_math(p) if p.startswith("$") and p.endswith("$") and len(p) > 1 else tex_escape(p)
                   for p in parts)


def _tex_statement(statement: str) -> str:
    kind = statement_kind(statement)
    if kind == "math":
        return "\\[ " + tex_math(statement.strip()) + " \\]"
    return tex_mixed(statement.strip()) if kind == "mixed" else tex_escape(statement.strip())


def _tex_cell(value: Any) -> str:
    return tex_escape(fmt(value) if not isinstance(value, str) else " ".join(value.split()))


def _tex_table(header: Sequence[str], rows: Sequence[Sequence[Any]], spec: str) -> List[str]:
    lines = [r"\begin{longtable}{" + spec + "}", r"\toprule",
             " & ".join(r"\textbf{" + tex_escape(h) + "}" for h in header) + r" \\", r"\midrule", r"\endhead"]
    lines += [" & ".join(_tex_cell(v) for v in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{longtable}"]
    return lines


def _tex_derivation(derivation) -> List[str]:
    out = [r"\textbf{Derivation: " + tex_mixed(derivation.title) + "}"]
    if derivation.statement:
        out.append(r"\[ " + tex_math(derivation.statement) + r" \]")
    if derivation.assumptions:
        out.append(r"\textit{Assumptions:} " + tex_mixed("; ".join(derivation.assumptions)) + ".")
    if derivation.steps:
        out.append(r"\begin{enumerate}")
        for s in derivation.steps:
            out.append(r"\item \textbf{" + tex_escape(s.name) + "} (" + tex_escape(s.status) + r"): \( "
                       + tex_math(s.latex()) + r" \). " + tex_mixed(s.justification)
                       + (r" \textit{" + tex_escape(s.detail) + "}" if s.detail else ""))
        out.append(r"\end{enumerate}")
    return out


def latex_report(doc: Mapping, pairs: Sequence[Pair], figures: Mapping[str, List[Dict[str, str]]]) -> str:
    """A standalone LaTeX document with the same content as :func:`markdown_report`."""
    summary = doc["summary"]
    out = [r"\documentclass[10pt]{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage[T1]{fontenc}",
           r"\usepackage{lmodern}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
           r"\usepackage{graphicx}", r"\usepackage{booktabs}", r"\usepackage{longtable}", r"\usepackage{array}",
           r"\usepackage[hidelinks]{hyperref}", r"\setlength{\parindent}{0pt}", r"\setlength{\parskip}{4pt}",
           r"\title{ngd-verifier report}", r"\date{" + tex_escape(doc.get("environment", {}).get("timestamp", "")) + "}",
           r"\begin{document}", r"\maketitle",
           tex_escape("Verification of Karakida & Osawa (NeurIPS 2020): each claim is derived symbolically, measured "
                      "on finite-width networks, and given a verdict computed from the evidence."),
           r"\section*{Run}", r"{\small"]
    out += _tex_table(["", "value"], _env_rows(doc), r">{\raggedright}p{3.5cm}>{\raggedright\arraybackslash}p{12.5cm}")
    out += ["}", r"\section*{Conventions}", r"{\small\raggedright", r"\begin{itemize}"]
    for key, entries in CONVENTIONS.items():
        out.append(r"\item \textbf{" + tex_escape(SECTION_TITLES[key]) + "}")
        out.append(r"\begin{itemize}")
        out += [r"\item " + tex_escape(name.replace("_", " ")) + r": \texttt{" + tex_escape(text) + "}"
                for name, text in entries.items()]
        out.append(r"\end{itemize}")
    out += [r"\end{itemize}", r"\par}"]
    counts = ", ".join(f"{n} {v}" for v, n in summary["counts"].items())
    verdict_line = ("every verdict is the one its claim expects" if summary["all_as_expected"]
                    else f"verdicts differing from the expected one: {', '.join(summary['unexpected'])}")
    out += [r"\section*{Summary}", tex_escape(f"{summary['claims']} claims: {counts}; {verdict_line}. "
                                             f"Total check time {summary['seconds']:.1f} s."), r"{\scriptsize"]
    out += _tex_table(["claim", "verdict", "expected", "predicted", "measured", "error", "width"],
                      [[c.id, r.verdict, c.expected, r.predicted, r.measured, r.error, r.width] for c, r in pairs],
                      r">{\raggedright}p{4.6cm}p{1.5cm}p{1.5cm}>{\raggedright}p{2.6cm}>{\raggedright}p{2.6cm}p{1.2cm}"
                      r">{\raggedright\arraybackslash}p{1cm}")
    out.append("}")
    overview = [f for f in figures.get("__overview__", []) if "path" in f]
    if overview:
        out.append(r"\section*{Overview figures}")
        for fig in overview:
            out += [r"\begin{figure}[htbp]\centering",
                    r"\includegraphics[width=0.8\linewidth]{" + fig["path"] + "}",
                    r"\caption{" + tex_mixed(fig["caption"]) + "}", r"\end{figure}"]
        out.append(r"\clearpage")
    out += [r"\section*{Claims}"]
    for claim, result in pairs:
        out += _tex_claim(claim, result, figures.get(claim.id, []))
    from proofs.verdicts import rules_text

    rules = "".join(ch if 32 <= ord(ch) < 127 or ch == "\n" else "?" for ch in rules_text())
    out += [r"\clearpage", r"\section*{Appendix: verdict rules}",
            r"How every verdict above was computed (\texttt{proofs/verdicts.py}, the same text as its documentation):",
            r"{\footnotesize", r"\begin{verbatim}", rules, r"\end{verbatim}", "}"]
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def _tex_claim(claim: Claim, result: ClaimResult, figs: List[Dict[str, str]]) -> List[str]:
    out = [r"\subsection*{" + tex_escape(claim.id) + ": " + tex_mixed(claim.title) + "}",
           r"\textbf{Verdict: " + tex_escape(result.verdict) + "} (expected: " + tex_escape(claim.expected) + ")"
           + (r" \textbf{--- differs from the expected verdict}" if result.verdict != claim.expected else "")
           + tex_escape(f". Checked in {result.seconds:.2f} s.")
           + (" Reference: " + tex_mixed(claim.reference) + "." if claim.reference else "")]
    out.append("")
    if result.failed_assumption:
        out += [r"\textbf{Failed assumption:} " + tex_mixed(result.failed_assumption), ""]
    out += [r"\textbf{Statement.} " + _tex_statement(claim.statement), ""]
    if claim.assumptions:
        out += [r"\textbf{Assumptions.}", r"\begin{itemize}"] + [r"\item " + tex_mixed(a) for a in claim.assumptions]
        out += [r"\end{itemize}", ""]
    if result.derivation is not None:
        out += _tex_derivation(result.derivation) + [""]
    out += [r"\textbf{Evidence.}", r"{\small"]
    out += _tex_table(["quantity", "value"], [["predicted", result.predicted], ["measured", result.measured],
                                               ["error", result.error], ["tolerance", result.tolerance],
                                               ["width", result.width]],
                      r"p{3cm}>{\raggedright\arraybackslash}p{13cm}")
    checks = result.details.get("checks") if isinstance(result.details, Mapping) else None
    if checks:
        out += _tex_table(["check", "verdict", "relaxed assumption", "reason"],
                          [[c.get("name"), c.get("verdict"), c.get("assumption"), _reason(c)] for c in checks],
                          r">{\raggedright}p{3cm}p{1.6cm}>{\raggedright}p{2.8cm}>{\raggedright\arraybackslash}p{8.4cm}")
    if result.sweeps:
        out += _tex_table(["sweep", "widths", "errors", "slope", "stderr", "prefactor"],
                          [_fit_row(name, f) for name, f in result.sweeps.items()],
                          r">{\raggedright}p{2.6cm}>{\raggedright}p{4cm}>{\raggedright}p{4cm}p{1.4cm}p{1.4cm}"
                          r">{\raggedright\arraybackslash}p{1.6cm}")
    rows = _flat_details(result.details or {})
    if rows:
        out += _tex_table(["key", "value"], rows, r">{\raggedright}p{5cm}>{\raggedright\arraybackslash}p{11cm}")
    out.append("}")
    for fig in figs:
        if "path" in fig:
            out += [r"\begin{figure}[htbp]\centering", r"\includegraphics[width=0.72\linewidth]{" + fig["path"] + "}",
                    r"\caption{" + tex_mixed(fig["caption"]) + "}", r"\end{figure}"]
        else:
            out.append(r"\textit{" + tex_escape(f"Figure {fig['name']} could not be drawn: {fig['error']}") + "}")
    if result.notes:
        out.append(r"\textbf{Notes.} " + tex_escape(" ".join(result.notes.split())))
    out.append(r"\clearpage" if figs else "")
    return out


# ----------------------------------------------------------------------------- the report
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # never valid in a report; shown as "?"

def write_report(pairs: Sequence[Pair], cfg: RunConfig, out_dir, environment: Optional[dict] = None) -> Dict[str, Any]:
    """Write ``report.md``, ``report.tex``, ``results.json`` and ``figures/*.png`` into ``out_dir``
    (created if missing) atomically; return ``{"markdown", "latex", "json", "figures": [paths]}``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    doc = results_document(pairs, cfg, environment)
    figures = draw_figures(pairs, out)
    figures["__overview__"] = draw_overview(pairs, out)
    paths = {
        "json": write_json(out / "results.json", doc),
        "markdown": atomic_write_text(out / "report.md", _CONTROL.sub("?", markdown_report(doc, pairs, figures))),
        "latex": atomic_write_text(out / "report.tex", _CONTROL.sub("?", latex_report(doc, pairs, figures))),
        "figures": [out / f["path"] for figs in figures.values() for f in figs if "path" in f],
    }
    return paths
