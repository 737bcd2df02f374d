"""``report.tex``: the derivation report as a standalone pdflatex document (amsmath/amssymb,
graphicx, booktabs, longtable, geometry, hyperref) with the same content as ``report.md``.

Text is escaped (:func:`tex_escape`), math kept (:func:`tex_math`, :func:`tex_mixed`), common
Unicode mapped to commands and the rest transliterated, so the file is pure ASCII.

It fits the page: statements and derivation steps are broken into lines by
:func:`theory.derivation.fit_lines` (``gathered`` / ``aligned`` displays), matrices too large to
print are summarised, table columns are fractions of the line width, and underscores in text
allow a line break.  Each claim starts on its own page with its verdict in words, the statement,
the assumptions and what failed (:func:`proofs.report.common.verdict_sentence`,
:func:`proofs.report.common.what_failed`).

>>> tex_escape("a_b & 50% ≥ α")
'a\\\\_b \\\\& 50\\\\% $\\\\ge$ $\\\\alpha$'
>>> tex_mixed(r"rank $J_l$ = N_C")
'rank $J_l$ = N\\\\_C'
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, List, Mapping, Sequence

from proofs.claim import Claim, ClaimResult
from proofs.conventions import CONVENTIONS, SECTION_TITLES
from proofs.report.common import (Pair, check_reason, env_rows, fit_row, flat_details, fmt, statement_kind,
                                  verdict_sentence, what_failed)
from theory.derivation import display_formula

__all__ = ["latex_report", "tex_escape", "tex_math", "tex_mixed"]

_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_UNICODE_TEX = {"–": "--", "—": "---", "±": r"$\pm$", "×": r"$\times$", "≤": r"$\le$", "≥": r"$\ge$",
                "≠": r"$\neq$", "≈": r"$\approx$", "→": r"$\to$", "∞": r"$\infty$", "−": "-", "·": r"$\cdot$",
                "✔": "[ok]", "✘": "[x]", "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "η": r"$\eta$",
                "θ": r"$\theta$", "Θ": r"$\Theta$", "ρ": r"$\rho$", "σ": r"$\sigma$", "Σ": r"$\Sigma$",
                "λ": r"$\lambda$", "δ": r"$\delta$", "Δ": r"$\Delta$", "φ": r"$\phi$", "⊗": r"$\otimes$",
                "∘": r"$\circ$", "√": r"$\surd$", "…": r"\ldots{}", "’": "'", "“": "``", "”": "''", "§": r"\S{}",
                "²": r"$^2$", "⁺": r"$^+$", "ᵀ": r"$^T$",
                "▼": r"$\blacktriangledown$"}


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
        elif ch == "/":
            out.append(r"/\allowbreak{}")  # paths and lists such as Dense/Relu/Erf may end a line here
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
        return display_formula(tex_math(statement.strip()))
    return tex_mixed(statement.strip()) if kind == "mixed" else tex_escape(statement.strip())


def _tex_cell(value: Any) -> str:
    text = tex_escape(fmt(value) if not isinstance(value, str) else " ".join(value.split()))
    # identifiers (ForsterResult.transform, proofs.verdicts.sweep) may end a line of a narrow column at a dot
    return re.sub(r"(?<=[A-Za-z)])\.(?=[A-Za-z])", r".\\allowbreak{}", text)


def _columns(fractions: Sequence[float]) -> str:
    """A longtable column spec of ragged-right paragraph columns whose widths (column padding
    included) are the given fractions of the line width -- fractions summing to 1 fill it exactly."""
    cols = [r">{\raggedright\arraybackslash}p{\dimexpr %.3f\linewidth-2\tabcolsep\relax}" % f for f in fractions]
    return "@{}" + "".join(cols) + "@{}"


def _tex_table(header: Sequence[str], rows: Sequence[Sequence[Any]], fractions: Sequence[float]) -> List[str]:
    lines = [r"\begin{longtable}{" + _columns(fractions) + "}", r"\toprule",
             " & ".join(r"\textbf{" + tex_escape(h) + "}" for h in header) + r" \\", r"\midrule", r"\endhead"]
    lines += [" & ".join(_tex_cell(v) for v in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{longtable}"]
    return lines


def _tex_derivation(derivation) -> List[str]:
    return [derivation.to_latex(text=tex_mixed, heading=r"\subsection*{Derivation: %s}")]


PREAMBLE = [r"\documentclass[10pt,a4paper]{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage[T1]{fontenc}",
            r"\usepackage{lmodern}", r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
            r"\usepackage{graphicx}", r"\usepackage{booktabs}", r"\usepackage{longtable}", r"\usepackage{array}",
            r"\usepackage[hidelinks]{hyperref}", r"\setlength{\parindent}{0pt}", r"\setlength{\parskip}{4pt}",
            r"\setlength{\emergencystretch}{3em}",
            # an underscore in text (identifiers such as ngd.unit_wise.relu_one_step) may end a line
            r"\makeatletter\DeclareRobustCommand{\_}{\ifmmode\nfss@text{\textunderscore}\else"
            r"\textunderscore\allowbreak\fi}\makeatother"]


def _png_size(path) -> tuple:
    """(width, height) in pixels of a PNG file (its IHDR chunk); (0, 0) when unreadable."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    except OSError:
        return 0, 0


def _tex_figure(fig: Mapping[str, str], out_dir, size: str) -> List[str]:
    """A figure float; a wide grid of panels (more than 9 in wide and landscape) is turned by 90
    degrees so that it is printed at nearly its own size."""
    width, height = _png_size(out_dir / fig["path"]) if out_dir is not None else (0, 0)
    if width > 990 and width > 1.2 * height:
        size = r"angle=90,height=0.85\textheight,width=\linewidth,keepaspectratio"
    return [r"\begin{figure}[htbp]\centering", r"\includegraphics[" + size + "]{" + fig["path"] + "}",
            r"\caption{" + tex_mixed(fig["caption"]) + "}", r"\end{figure}"]


def latex_report(doc: Mapping, pairs: Sequence[Pair], figures: Mapping[str, List[Dict[str, str]]],
                 out_dir=None) -> str:
    """A standalone LaTeX document with the same content as
    :func:`proofs.report.markdown.markdown_report` (``out_dir``: where the figures are, to turn wide
    ones)."""
    from pathlib import Path

    out_dir = Path(out_dir) if out_dir is not None else None
    summary = doc["summary"]
    out = PREAMBLE + [
        r"\title{ngd-verifier report}", r"\date{" + tex_escape(doc.get("environment", {}).get("timestamp", "")) + "}",
        r"\begin{document}", r"\maketitle",
        tex_escape("Verification of Karakida & Osawa (NeurIPS 2020), Understanding Approximate Fisher Information "
                   "for Fast Convergence of Natural Gradient Descent in Wide Neural Networks: each claim is derived "
                   "symbolically, measured on finite-width networks, and given a verdict computed from the evidence. "
                   "Each claim has its own section, starting on a new page with its verdict in words."),
        r"\tableofcontents", r"\clearpage", r"\section*{Run}", r"{\small"]
    out += _tex_table(["", "value"], env_rows(doc), [0.22, 0.78])
    out += ["}", r"\section*{Conventions}", r"{\small\raggedright", r"\begin{itemize}"]
    for key, entries in CONVENTIONS.items():
        out.append(r"\item \textbf{" + tex_escape(SECTION_TITLES[key]) + "}")
        out.append(r"\begin{itemize}")
        out += [r"\item \textit{" + tex_escape(name.replace("_", " ")) + ":} " + tex_escape(text)
                for name, text in entries.items()]
        out.append(r"\end{itemize}")
    out += [r"\end{itemize}", r"\par}"]
    counts = ", ".join(f"{n} {v}" for v, n in summary["counts"].items())
    verdict_line = ("every verdict is the one its claim expects" if summary["all_as_expected"]
                    else f"verdicts differing from the expected one: {', '.join(summary['unexpected'])}")
    out += [r"\section*{Summary}", tex_escape(f"{summary['claims']} claims: {counts}; {verdict_line}. "
                                             f"Total check time {summary['seconds']:.1f} s."), r"{\footnotesize"]
    out += _tex_table(["claim", "verdict", "expected", "predicted", "measured", "error", "width"],
                      [[c.id, r.verdict, c.expected, r.predicted, r.measured, r.error, r.width] for c, r in pairs],
                      [0.29, 0.11, 0.11, 0.15, 0.15, 0.11, 0.08])
    out.append("}")
    overview = [f for f in figures.get("__overview__", []) if "path" in f]
    if overview:
        out += [r"\clearpage", r"\section{Overview figures}"]
        for fig in overview:
            out += _tex_figure(fig, out_dir, r"width=\linewidth,height=0.8\textheight,keepaspectratio")
    for claim, result in pairs:
        out += _tex_claim(claim, result, figures.get(claim.id, []), out_dir)
    from proofs.verdicts import rules_text

    rules = "".join(ch if 32 <= ord(ch) < 127 or ch == "\n" else "?" for ch in rules_text())
    out += [r"\clearpage", r"\section*{Appendix: verdict rules}", r"\addcontentsline{toc}{section}{Appendix: verdict rules}",
            r"How every verdict above was computed (\texttt{proofs/verdicts.py}, the same text as its documentation):",
            r"{\footnotesize", r"\begin{verbatim}", _wrap_verbatim(rules, 104), r"\end{verbatim}", "}"]
    out.append(r"\end{document}")
    return "\n".join(out) + "\n"


def _wrap_verbatim(text: str, width: int) -> str:
    """Verbatim lines wrapped at ``width`` characters (continuations keep the indentation + 2)."""
    import textwrap

    lines = []
    for line in text.splitlines():
        if len(line) <= width:
            lines.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_long_words=True,
                               break_on_hyphens=False)
    return "\n".join(lines)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _tex_claim(claim: Claim, result: ClaimResult, figs: List[Dict[str, str]], out_dir=None) -> List[str]:
    title = tex_mixed(claim.title)
    out = [r"\clearpage", r"\section{\texorpdfstring{" + title + "}{" + claim.id.replace("_", r"\_") + "}}",
           r"\texttt{" + tex_escape(claim.id) + "}" + tex_escape(f" -- checked in {result.seconds:.2f} s")
           + (". Reference: " + tex_mixed(claim.reference) + "." if claim.reference else "."), "",
           r"\textbf{Verdict: " + tex_escape(result.verdict) + r".} " + tex_escape(_capital(verdict_sentence(claim, result)
                                                                                       .split(": ", 1)[1]))
           + (r" \textbf{(differs from the expected verdict)}" if result.verdict != claim.expected else ""), ""]
    out += [r"\subsection*{Statement}", _tex_statement(claim.statement), ""]
    if claim.assumptions:
        out += [r"\subsection*{Assumptions}", r"\begin{itemize}"] + [r"\item " + tex_mixed(a) for a in claim.assumptions]
        out += [r"\end{itemize}"]
    failed = what_failed(result)
    out += [r"\subsection*{What failed}"]
    if failed:
        out += [r"\begin{itemize}"] + [r"\item " + tex_escape(f) for f in failed] + [r"\end{itemize}"]
    else:
        out += ["Nothing: every check and every derivation step held.", ""]
    if result.derivation is not None:
        out += _tex_derivation(result.derivation) + [""]
    out += [r"\subsection*{Evidence}", r"{\small"]
    out += _tex_table(["quantity", "value"], [["predicted", result.predicted], ["measured", result.measured],
                                               ["error", result.error], ["tolerance", result.tolerance],
                                               ["width", result.width]], [0.2, 0.8])
    checks = result.details.get("checks") if isinstance(result.details, Mapping) else None
    if checks:
        out += _tex_table(["check", "verdict", "relaxed assumption", "reason"],
                          [[c.get("name"), c.get("verdict"), c.get("assumption"), check_reason(c)] for c in checks],
                          [0.20, 0.14, 0.16, 0.50])  # "conditional" fits the verdict column in \small
    if result.sweeps:
        out += _tex_table(["sweep", "widths", "errors", "slope", "stderr", "prefactor"],
                          [fit_row(name, f) for name, f in result.sweeps.items()],
                          [0.2, 0.22, 0.22, 0.11, 0.11, 0.14])
    rows = flat_details(result.details or {})
    if rows:
        out += _tex_table(["key", "value"], rows, [0.36, 0.64])
    out.append("}")
    for fig in figs:
        if "path" in fig:
            out += _tex_figure(fig, out_dir, r"width=0.8\linewidth,height=0.6\textheight,keepaspectratio")
        else:
            out.append(r"\textit{" + tex_escape(f"Figure {fig['name']} could not be drawn: {fig['error']}") + "}")
    if result.notes:
        out.append(r"\textbf{Notes.} " + tex_escape(" ".join(result.notes.split())))
    return out
