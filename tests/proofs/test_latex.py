"""report.tex compiles and fits the page: pdflatex on a small report built from a few real claims
(the symbolic ones with the widest derivations, and some with figures), plus every registered
claim's title, statement and assumptions; the log must show no overfull box wider than 10 pt and
no undefined control sequence, and no math group of the .tex may hold words (prose set in math mode
prints as run-together italics).  Skipped when pdflatex is not installed (.ci/run installs it).

The renderer's own rules (no tautologies, words out of math, lines that fit, summarised matrices,
SymPy's printer instead of str) are tested without pdflatex below."""
import re
import shutil

import pytest
import sympy as sp

from proofs.claim import RunConfig
from proofs.registry import select_claims
from proofs.report import (PdfError, PdfUnavailable, check_pdf_toolchain, latex_log_problems, prose_in_math,
                           write_pdf, write_report)
from proofs.report.latex import PREAMBLE, tex_escape, tex_math, tex_mixed, _tex_statement
from theory.derivation import (LINE_WIDTH, Derivation, display_formula, fit_lines, is_prose, latex_width,
                               printable)

HAS_PDFLATEX = shutil.which("pdflatex") is not None
needs_pdflatex = pytest.mark.skipif(not HAS_PDFLATEX, reason="pdflatex is not installed (.ci/run installs TeX Live)")

#: Fast claims (each a few seconds at most) with the derivations that used to overflow the page
#: (the K-FAC mixed product, EKFAC's rational matrices, the block tri-diagonal correction, the
#: unit-wise binomial moments) and some figures (eta scans, damping spectra).
SMALL_REPORT = ["kernels.layerwise_telescoping", "ngd.ekfac.finite_width_frame", "ngd.isotropy_lemma",
                "ngd.lr_stability", "ngd.kfac.alpha_authors", "ngd.kfac.no_forster", "ngd.damping.eigenvalues",
                "ngd.width_below_n", "ngd.unit_wise.tanh_exact", "ngd.unit_wise.multi_output",
                "ngd.block_tridiagonal.moving_layers", "ngd.finite_width_exactness", "sanity.pinv_product_rule"]

MAX_OVERFULL_PT = 10.0


def _problems(out_dir):
    log = latex_log_problems((out_dir / "report.log").read_text(errors="replace"))
    tex = (out_dir / "report.tex").read_text()
    return {"overfull > 10pt": [o for o in log["overfull"] if o[0] > MAX_OVERFULL_PT],
            "undefined control sequences": log["undefined"], "errors": log["errors"],
            "prose in math": prose_in_math(tex)}


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    cfg = RunConfig(seed=0)
    pairs = [(c, c.run(cfg)) for c in select_claims(SMALL_REPORT)]
    out = tmp_path_factory.mktemp("latex") / "report"
    paths = write_report(pairs, cfg, out, pdf=HAS_PDFLATEX)
    return out, paths, pairs


def test_small_report_claims_all_ran(small_report):
    _, _, pairs = small_report
    assert [c.id for c, _ in pairs] == [c.id for c in select_claims(SMALL_REPORT)]
    assert sum(r.derivation is not None for _, r in pairs) >= 10  # the derivations are what this report is for


@needs_pdflatex
def test_small_report_compiles_and_fits_the_page(small_report):
    out, paths, pairs = small_report
    assert paths["pdf"] == out / "report.pdf" and paths["pdf"].stat().st_size > 10000
    problems = _problems(out)
    assert not any(problems.values()), problems
    # one page per claim at least: each starts on its own page
    pages = int(re.search(r"Output written on report\.pdf \((\d+) pages", (out / "report.log").read_text()).group(1))
    assert pages >= len(pairs) + 2


def test_small_report_tex_has_no_prose_in_math_and_no_raw_sympy(small_report):
    out, _, _ = small_report
    tex = (out / "report.tex").read_text()
    md = (out / "report.md").read_text()
    assert prose_in_math(tex) == []
    for text in (tex, md):
        assert "**" not in re.sub(r"\*\*[^*\n]+\*\*", "", text.split("Appendix: verdict rules")[0])  # no k1**2*k2
        assert not re.search(r"\\\(\s*1 = 1\s*\\\)|\$1 = 1\$", text)
        assert "dense = Hadamard" not in text and "Hadamard form" not in text.replace("Hadamard frame", "")


def test_each_claim_has_its_own_page_with_verdict_statement_assumptions_and_failures(small_report):
    out, _, pairs = small_report
    tex = (out / "report.tex").read_text()
    md = (out / "report.md").read_text()
    sections = [s for s in tex.split(r"\clearpage" + "\n" + r"\section{")[1:] if not s.startswith("Overview")]
    assert len(sections) == len(pairs)
    for (claim, result), section in zip(pairs, sections):
        assert section.index(r"\textbf{Verdict: " + result.verdict + ".}") < section.index(r"\subsection*{Statement}")
        assert r"\subsection*{What failed}" in section
        if claim.assumptions:
            assert r"\subsection*{Assumptions}" in section
    authors = md.split("### The authors' code")[1].split("\n---\n")[0]
    assert "**Verdict: refuted.** The evidence contradicts the statement" in authors
    assert "**What failed.**\n\n- alpha = N L = 36 vs measured" in authors


@needs_pdflatex
def test_every_registered_statement_compiles(tmp_path):
    """Titles, statements and assumptions of every claim (no claim is run): an undefined macro or
    words in math anywhere in the registry fails here."""
    body = []
    for c in select_claims([]):
        body += [r"\section*{" + tex_mixed(c.title) + "}", _tex_statement(c.statement), r"\begin{itemize}"]
        body += [r"\item " + tex_mixed(a) for a in c.assumptions] + [r"\item " + tex_escape(c.id), r"\end{itemize}"]
    tex = "\n".join(PREAMBLE + [r"\begin{document}"] + body + [r"\end{document}"]) + "\n"
    (tmp_path / "report.tex").write_text(tex)
    write_pdf(tmp_path, runs=1)
    problems = _problems(tmp_path)
    assert not any(problems.values()), problems


@needs_pdflatex
def test_write_pdf_reports_latex_errors_with_the_log(tmp_path):
    (tmp_path / "report.tex").write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(PdfError, match=r"pdflatex failed on .*report\.tex.*Undefined control sequence"):
        write_pdf(tmp_path, runs=1, timeout=60)


def test_pdf_without_pdflatex_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PdfUnavailable, match="pdflatex, which is not on PATH.*texlive-latex-base"):
        check_pdf_toolchain()
    # probed before anything is written
    with pytest.raises(PdfUnavailable):
        write_report([], RunConfig(), tmp_path / "r", pdf=True)
    assert not (tmp_path / "r").exists()


def test_log_and_prose_scanners_find_what_they_should():
    log = ("Overfull \\hbox (178.5pt too wide) in paragraph at lines 10--11\n"
           "Overfull \\hbox (3.0pt too wide) detected at line 12\n"
           "./report.tex:40: Undefined control sequence.\n! Undefined control sequence.\n")
    found = latex_log_problems(log)
    assert found["overfull"] == [(178.5, "in paragraph at lines 10--11"), (3.0, "detected at line 12")]
    assert len(found["undefined"]) == 2
    tex = r"a \( dense = Hadamard form \) b \[ N P_Delta o P_Z = N I \] c $\frac{N-1}{NL}$ \[ \text{words} + x \]"
    assert prose_in_math(tex) == ["dense = Hadamard form", "N P_Delta o P_Z = N I"]
    assert prose_in_math(r"\begin{verbatim} $ a word $ \end{verbatim} \$5 and \$6") == []


# ----------------------------------------------------------------------------- the renderer's rules
def test_tautologies_show_the_stated_equation_not_one_equals_one():
    d = Derivation("demo")
    d.add_step("layer 1 moves (c_1 != 0)", sp.Integer(1), 1, "indicator")
    d.add_step("trace = number of pairs", sp.Integer(9), 9, "3 x 3 pairs")
    d.check()
    tex, md = d.to_latex(), d.to_markdown()
    assert "1 = 1" not in tex and "9 = 9" not in tex and "$1 = 1$" not in md
    assert r"\textbf{layer 1 moves (c\_1 != 0)} (checked). indicator." in tex
    assert r"Both sides evaluate to \(9\)." in tex and "Both sides evaluate to $9$." in md


def test_words_stay_out_of_math_and_latex_strings_stay_in():
    d = Derivation("demo")
    d.add_step("numeric check", "dense", "Hadamard form", "random instance", checker=lambda: True)
    d.add_step("numeric identity", r"J G^{+} J^\top / N", "2 I", "pinv", checker=lambda: True)
    d.check()
    tex = d.to_latex()
    assert prose_in_math(tex) == [] and "Compares dense with Hadamard form." in tex
    assert r"\[ J G^{+} J^\top / N = 2 I \]" in tex
    assert is_prose("N P_Delta o P_Z") and not is_prose(r"\frac{N-1}{NL} + u_{ji}")


def test_long_expressions_are_broken_into_lines_that_fit():
    from theory.kfac_theory import kfac_derivation

    step = kfac_derivation().steps[0]  # the mixed product: a 16-term polynomial = a product of two sums
    assert len(sp.latex(step.lhs)) > 500
    (kind, rows), = [p for p in step.parts() if p[0] == "display"]
    assert len(rows) >= 4 and all(latex_width(re.sub(r"^&(\\quad)?|&", "", r)) <= LINE_WIDTH for r in rows)
    tex = Derivation("x", steps=[step]).to_latex()
    assert r"\begin{aligned}" in tex and tex.count(r"\\") >= len(rows) - 1
    # a statement with \quad separators becomes centred lines
    statement = r"a = b,\quad " + " + ".join(f"x_{{{i}}}" for i in range(60))
    assert r"\begin{gathered}" in display_formula(statement)
    lines, cut = fit_lines(" + ".join(f"y_{{{i}}}" for i in range(400)))
    assert cut and len(lines) == 8


def test_large_matrices_and_long_numbers_are_summarised_with_sympy_latex():
    big = sp.Matrix(9, 9, lambda i, j: sp.Rational(10**20 + i, 3 * 10**20 + j))
    p = printable(big)
    assert p.tex.startswith(r"\approx \begin{bmatrix}") and r"\ddots" in p.tex
    assert p.note == "a 9 x 9 matrix; its top-left corner is shown, entries rounded to 3 digits"
    assert latex_width(p.tex) <= LINE_WIDTH
    assert printable(sp.Rational(2**200, 3**120)).tex.startswith(r"\approx ")
    x = sp.Symbol("x")
    assert printable(x**2 / 2).tex == r"\frac{x^{2}}{2}"  # SymPy's printer, not str() (x**2/2)
    huge = sp.Matrix([[sum(x**k for k in range(80))]])
    assert printable(huge).tex is None and "too long to print" in printable(huge).note


def test_tex_math_and_statements_keep_labels_upright():
    assert r"G_{\mathrm{unit}}" in _tex_statement(r"J G_{unit}^+ J^T/N = \alpha I")
    assert tex_math("α") == r" \alpha "
