"""``report.md``: the derivation report as GitHub Markdown with ``$...$`` / ``$$...$$`` math.

Run table, conventions, summary table, overview figures, then per claim (a section of its own,
after a rule) its verdict in words, statement, assumptions, what failed, derivation (each step
shows the equation it checks, broken into lines like the LaTeX report), evidence, checks, width
sweeps, details, figures and notes; an appendix with the verdict rules.  Every number is taken
from the results of this run.

>>> md_table(["a", "b"], [[1, "x | y"]])
['| a | b |', '|---|---|', '| 1 | x \\\\| y |']
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

from proofs.claim import Claim, ClaimResult
from proofs.conventions import conventions_markdown
from proofs.report.common import (Pair, check_reason, env_rows, fit_row, flat_details, fmt, slug, statement_kind,
                                  verdict_sentence, what_failed)
from theory.derivation import display_formula

__all__ = ["markdown_report", "md_table"]


def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|") if not isinstance(value, str) else " ".join(value.split()).replace("|", "\\|")


def _md_statement(statement: str) -> str:
    kind = statement_kind(statement)
    if kind == "math":
        return display_formula(statement.strip(), markdown=True)
    return statement.strip()


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    """The lines of a Markdown table (cells through :func:`~proofs.report.common.fmt`, ``|`` escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return lines


def markdown_report(doc: Mapping, pairs: Sequence[Pair], figures: Mapping[str, List[Dict[str, str]]]) -> str:
    """The Markdown report (every number from ``doc``/``pairs``, i.e. from this run)."""
    summary = doc["summary"]
    out = ["# ngd-verifier report", "",
           "Verification of Karakida & Osawa (NeurIPS 2020), *Understanding Approximate Fisher Information for Fast "
           "Convergence of Natural Gradient Descent in Wide Neural Networks*: each claim is derived symbolically, "
           "measured on finite-width networks, and given a verdict computed from the evidence.", "",
           "## Run", ""]
    out += md_table(["", "value"], env_rows(doc)) + [""]
    out += ["## Conventions", "", conventions_markdown(), ""]
    counts = ", ".join(f"{n} {v}" for v, n in summary["counts"].items())
    verdict_line = ("every verdict is the one its claim expects" if summary["all_as_expected"]
                    else f"verdicts differing from the expected one: {', '.join(summary['unexpected'])}")
    out += ["## Summary", "", f"{summary['claims']} claims: {counts}; {verdict_line}. "
            f"Total check time {summary['seconds']:.1f} s.", ""]
    out += md_table(["claim", "verdict", "expected", "predicted", "measured", "error", "width", "failed assumption"],
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


def _md_claim(claim: Claim, result: ClaimResult, figs: List[Dict[str, str]]) -> List[str]:
    mark = "" if result.verdict == claim.expected else " — **differs from the expected verdict**"
    words = verdict_sentence(claim, result).split(": ", 1)[1]
    words = words[:1].upper() + words[1:]
    out = ["---", "", f'<a id="{slug(claim.id).lower()}"></a>', f"### {claim.title}", "",
           f"`{claim.id}` — checked in {result.seconds:.2f} s." + (f" Reference: {claim.reference}." if claim.reference
                                                                  else ""), "",
           f"**Verdict: {result.verdict}.** {words}{mark}", ""]
    out += ["**Statement.**", "", _md_statement(claim.statement), ""]
    if claim.assumptions:
        out += ["**Assumptions.**", ""] + [f"- {a}" for a in claim.assumptions] + [""]
    failed = what_failed(result)
    if failed:
        out += ["**What failed.**", ""] + [f"- {f}" for f in failed] + [""]
    else:
        out += ["**What failed.** Nothing: every check and every derivation step held.", ""]
    if result.derivation is not None:
        out += ["**Derivation.**", "", result.derivation.to_markdown(), ""]
    out += ["**Evidence.**", ""]
    out += md_table(["quantity", "value"], [["predicted", result.predicted], ["measured", result.measured],
                                            ["error", result.error], ["tolerance", result.tolerance],
                                            ["width", result.width]]) + [""]
    checks = result.details.get("checks") if isinstance(result.details, Mapping) else None
    if checks:
        out += md_table(["check", "verdict", "relaxed assumption", "reason"],
                        [[c.get("name"), c.get("verdict"), c.get("assumption"), check_reason(c)] for c in checks]) + [""]
    if result.sweeps:
        out += ["**Width sweeps.**", ""]
        out += md_table(["sweep", "widths", "errors", "slope", "stderr", "prefactor"],
                        [fit_row(name, f) for name, f in result.sweeps.items()]) + [""]
    rows = flat_details(result.details or {})
    if rows:
        out += ["**Details.**", ""] + md_table(["key", "value"], rows) + [""]
    for fig in figs:
        if "path" in fig:
            out += [f"![{fig['caption']}]({fig['path']})", "", f"*{fig['caption']}*", ""]
        else:
            out += [f"*Figure `{fig['name']}` could not be drawn: {fig['error']}*", ""]
    if result.notes:
        out += [f"**Notes.** {' '.join(result.notes.split())}", ""]
    return out
