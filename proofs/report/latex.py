"""``report.tex``: the derivation report as a standalone pdflatex document (amsmath/amssymb,
graphicx, booktabs, longtable, geometry, hyperref) with the same content as ``report.md``.

Text is escaped (:func:`tex_escape`), math kept (:func:`tex_math`, :func:`tex_mixed`), common
Unicode mapped to commands and the rest transliterated, so the file is pure ASCII.

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
from proofs.report.common import Pair, check_reason, env_rows, fit_row, flat_details, fmt, statement_kind

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
    """A standalone LaTeX document with the same content as
    :func:`proofs.report.markdown.markdown_report`."""
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
    out += _tex_table(["", "value"], env_rows(doc), r">{\raggedright}p{3.5cm}>{\raggedright\arraybackslash}p{12.5cm}")
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
                          [[c.get("name"), c.get("verdict"), c.get("assumption"), check_reason(c)] for c in checks],
                          r">{\raggedright}p{3cm}p{1.6cm}>{\raggedright}p{2.8cm}>{\raggedright\arraybackslash}p{8.4cm}")
    if result.sweeps:
        out += _tex_table(["sweep", "widths", "errors", "slope", "stderr", "prefactor"],
                          [fit_row(name, f) for name, f in result.sweeps.items()],
                          r">{\raggedright}p{2.6cm}>{\raggedright}p{4cm}>{\raggedright}p{4cm}p{1.4cm}p{1.4cm}"
                          r">{\raggedright\arraybackslash}p{1.6cm}")
    rows = flat_details(result.details or {})
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
