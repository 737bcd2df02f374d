"""Report writer: atomic writes, strict JSON, Markdown/LaTeX content, PNG figures per series kind."""
import json
import os

import numpy as np
import pytest
import sympy as sp

from numerics.sweeps import fit_power_law
from proofs import cli
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.figures import normalise_series, render_png, validate_series
from proofs.report import (atomic_write_text, dumps_strict, fmt, results_document, statement_kind, tex_escape,
                           tex_mixed, to_jsonable, write_report)
from theory.derivation import Derivation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDTHS = [64, 128, 256, 512]

SERIES = {
    "loss": {"kind": "loss_curves", "steps": [0, 1, 2, 3],
             "curves": {"exact M=512": [0.5, 1e-3, 2e-6, 4e-9], "exact predicted": [0.5, 1e-3, 2e-6, 4e-9]}},
    "sweep": {"kind": "width_sweep", "widths": WIDTHS, "errors": [0.2, 0.14, 0.1, 0.07], "expected_slope": -0.5},
    "spectrum": {"kind": "spectrum", "eigenvalues": {"bd": [3.1, 3.0, 2.9], "kfac": [40.0, 30.0, 1.0]},
                 "alpha": {"bd": 3.0}},
    "eta": {"kind": "eta_scan", "ratios": [0.5, 1.0, 1.5], "losses": {"exact": [0.25, 1e-6, 0.25]},
            "predicted": {"exact": [0.25, 1e-12, 0.25]}},
    "broken": {"kind": "histogram", "values": [1, 2]},
}


def _symbolic_claim(cfg):
    a, b = sp.symbols("a b")
    d = Derivation("binomial", r"(a+b)^2 = a^2 + 2ab + b^2", ["a, b commute"])
    d.add_step("expand_square", (a + b) ** 2, a**2 + 2 * a * b + b**2, "50% of the work & more_than $x_1$")
    d.check()
    return ClaimResult(verdict="verified", predicted=sp.Rational(1, 3), measured=1 / 3, derivation=d)


def _numeric_claim(cfg):
    fit = fit_power_law(WIDTHS, [0.2, 0.14, 0.1, 0.07])
    return ClaimResult(verdict="conditional", predicted=1.0, measured=np.float64(1.02), error=0.02, width=512,
                       tolerance=0.05, failed_assumption="M_0 >= N (here M_0 = 64 < N = 100)",
                       sweeps={"isotropy_error": fit}, series=SERIES,
                       details={"condition_number": float("inf"), "alpha_hat": np.array([1.0, 1.01]),
                                "nested": {"a_b": 1, "c%": float("nan")}},
                       notes="measured_with 100% effort ~ # of $samples$")


CLAIMS = [
    claim("demo.symbolic", title="Binomial_theorem (squares)", statement=r"(a+b)^2 = a^2 + 2ab + b^2",
          assumptions=["commutative ring", "rank $J_l$ = NC"], register=False)(_symbolic_claim),
    claim("demo.numeric_1", title="K-FAC & friends: alpha = N(L-1)+1", statement="The error is 5% at width $M$.",
          expected="verified", register=False)(_numeric_claim),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "nested" / "out"
    pairs = [(c, c.run(RunConfig(seed=11))) for c in CLAIMS]
    paths = write_report(pairs, RunConfig(seed=11), out)
    return out, paths, pairs


def test_report_writes_all_files(report):
    out, paths, _ = report
    assert {p.name for p in out.iterdir()} == {"report.md", "report.tex", "results.json", "figures"}
    names = sorted(p.name for p in (out / "figures").iterdir())
    # four valid series + the automatic sweep figure is NOT added (a width_sweep series exists); broken skipped
    assert names == ["demo-numeric-1--eta.png", "demo-numeric-1--loss.png", "demo-numeric-1--spectrum.png",
                     "demo-numeric-1--sweep.png"]
    for p in paths["figures"]:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000  # a real drawn figure, not an empty file
    assert not [p for p in out.rglob(".*tmp")]  # no temporary files left


def test_results_json_is_strict_and_same_shape_as_verify(report):
    out, _, pairs = report
    text = (out / "results.json").read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert doc["seed"] == 11 and set(doc["conventions"]) >= {"parameterisation", "fisher", "update"}
    numeric = doc["claims"][1]
    assert numeric["details"]["condition_number"] == "inf" and numeric["details"]["nested"]["c%"] == "nan"
    assert numeric["sweeps"]["isotropy_error"]["slope"] == pytest.approx(fit_power_law(WIDTHS, [0.2, 0.14, 0.1, 0.07]).slope)
    assert doc["claims"][0]["predicted"] == "1/3"  # exact rationals keep their exact form
    assert doc["claims"][0]["derivation"]["steps"][0]["status"] == "checked"
    assert doc["summary"]["unexpected"] == ["demo.numeric_1"]
    assert set(doc["environment"]) == {"versions", "blas", "machine", "git_commit", "timestamp"}
    assert set(doc) == set(results_document(pairs, RunConfig(seed=11)))


def test_markdown_has_header_math_evidence_and_figures(report):
    out, _, _ = report
    md = (out / "report.md").read_text()
    for needle in ["## Conventions", "NTK parameterisation", "| seed | 11 |", "numpy", "## Summary",
                   "$$\n(a+b)^2 = a^2 + 2ab + b^2\n$$",            # math statement as a display
                   "The error is 5% at width $M$.",                 # mixed statement kept as text
                   "**Failed assumption:** M_0 >= N (here M_0 = 64 < N = 100)",
                   "![", "(figures/demo-numeric-1--loss.png)", "| isotropy_error |",
                   "Figure `broken` could not be drawn", "differs from the expected verdict",
                   "1 verified, 0 refuted, 1 conditional, 0 inconclusive"]:
        assert needle in md, needle
    slope = fit_power_law(WIDTHS, [0.2, 0.14, 0.1, 0.07]).slope
    assert f"{slope:.4g}" in md  # the number in the text is the one of this run


def test_latex_is_escaped_and_balanced(report):
    out, _, _ = report
    tex = (out / "report.tex").read_text()
    assert tex.startswith(r"\documentclass") and tex.rstrip().endswith(r"\end{document}")
    assert r"Binomial\_theorem" in tex and r"K-FAC \& friends" in tex
    assert r"50\% of the work \& more\_than $x_1$" in tex       # text escaped, inline math kept
    assert r"\[ (a+b)^2 = a^2 + 2ab + b^2 \]" in tex
    assert r"\includegraphics[width=0.72\linewidth]{figures/demo-numeric-1--loss.png}" in tex
    body = tex.split(r"\begin{document}")[1].split(r"\end{document}")[0]
    assert body.count(r"\begin{") == body.count(r"\end{")  # environments balanced
    assert "\\_" not in tex.split("\\[ (a+b)")[1].split("\\]")[0]  # math is not escaped
    # no raw specials outside math/commands in the notes
    assert r"measured\_with 100\% effort \textasciitilde{} \# of \$samples\$" in tex
    assert not any(ord(ch) > 127 for ch in tex)  # pdflatex-safe: Unicode mapped or transliterated


def test_report_out_must_be_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_report([], RunConfig(), f)


def test_report_cli_writes_files_and_exits_with_verdict_status(tmp_path):
    out = tmp_path / "r"
    code = cli.main(["report", "--out", str(out), "--seed", "2"], claims=CLAIMS[:1])
    assert code == 0 and (out / "report.md").exists() and (out / "report.tex").exists()
    assert json.loads((out / "results.json").read_text())["seed"] == 2
    wrong = claim("demo.wrong", title="t", statement="s", expected="refuted", register=False)(_symbolic_claim)
    assert cli.main(["report", "--out", str(out)], claims=[wrong]) == 1  # verified, but refuted was expected


# ----------------------------------------------------------------------------- atomic writes & JSON
def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "first")
    atomic_write_text(p, "second")
    assert p.read_text() == "second" and os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_missing_directory_names_it(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        atomic_write_text(tmp_path / "no" / "a.txt", "x")


def test_strict_json_conversions():
    x = sp.Symbol("L")
    obj = {"nan": np.nan, "ninf": -np.inf, "arr": np.array([1.0, np.inf]), "i": np.int64(3), "b": np.bool_(True),
           "int": sp.Integer(4), "rat": sp.Rational(2, 3), "sqrt": sp.sqrt(2), "expr": sp.ceiling(x / 3),
           "tuple": (1, 2), "c": 1 + 2j}
    out = json.loads(dumps_strict(obj))
    assert out == {"nan": "nan", "ninf": "-inf", "arr": [1.0, "inf"], "i": 3, "b": True, "int": 4, "rat": "2/3",
                   "sqrt": pytest.approx(2 ** 0.5, rel=1e-15), "expr": "ceiling(L/3)", "tuple": [1, 2],
                   "c": {"real": 1.0, "imag": 2.0}}
    assert to_jsonable(fit_power_law([1, 2, 4], [1, 0.5, 0.25]))["slope"] == pytest.approx(-1.0, abs=1e-12)


def test_formatting_helpers():
    assert fmt(None) == "–" and fmt(0.000123456) == "0.0001235" and fmt(list(range(10))) == "[10 values, 0 .. 9]"
    assert statement_kind(r"\alpha = 1") == "math" and statement_kind("text $x$") == "mixed"
    assert statement_kind("Exact NGD converges in one step") == "text"
    assert tex_escape("a_b & 50% ≥ α") == r"a\_b \& 50\% $\ge$ $\alpha$"
    assert tex_mixed(r"rank $J_l$ = N_C") == r"rank $J_l$ = N\_C"


# ----------------------------------------------------------------------------- figures
@pytest.mark.parametrize("name", ["loss", "sweep", "spectrum", "eta"])
def test_each_series_kind_renders(name):
    assert render_png(SERIES[name]).startswith(PNG_MAGIC)


def test_series_schema_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind 'histogram' is not allowed"):
        validate_series(SERIES["broken"])
    with pytest.raises(ValueError, match="has 2 values, expected 4"):
        validate_series({"kind": "loss_curves", "steps": [0, 1, 2, 3], "curves": {"x": [1, 2]}})
    with pytest.raises(ValueError, match="needs the key 'errors'"):
        validate_series({"kind": "width_sweep", "widths": [1, 2, 3]})
    with pytest.raises(ValueError, match="3 widths but 2 errors"):
        validate_series({"kind": "width_sweep", "widths": [1, 2, 3], "errors": [1, 2]})


def test_alternative_evidence_form_is_normalised():
    s = normalise_series({"kind": "loss_curve", "approximation": "kfac", "width": 512, "x": [0, 1],
                          "train_measured": [1.0, 0.1], "train_predicted": [1.0, 0.09], "test_measured": [1.0, 0.2]})
    assert s["kind"] == "loss_curves" and s["predicted"] == ["kfac train predicted"]
    assert set(s["curves"]) == {"kfac train M=512", "kfac train predicted", "kfac test M=512"}
    eta = normalise_series({"kind": "eta_scan", "approximation": "bd", "x": [0.5, 1.0], "measured": [0.3, 0.01],
                            "predicted": [0.25, 0.0]})
    assert eta["losses"] == {"bd": [0.3, 0.01]} and eta["predicted"] == {"bd": [0.25, 0.0]}
    assert validate_series({"kind": "width_sweep", "x": [1, 2, 4], "y": [1, 0.7, 0.5]}) == "width_sweep"
    assert render_png(eta).startswith(PNG_MAGIC)


def test_overview_merges_series_of_the_same_kind_across_claims(tmp_path):
    from proofs.report import overview_series

    def with_series(series):
        return lambda cfg: ClaimResult("verified", series=series)
    loss_a = {"kind": "loss_curve", "approximation": "exact", "x": [0, 1], "train_measured": [1, 1e-3],
              "train_predicted": [1, 0]}
    loss_b = {"kind": "loss_curve", "approximation": "kfac", "x": [0, 1], "train_measured": [1, 0.1],
              "train_predicted": [1, 0.05]}
    cl = [claim(f"o.{i}", title="t", statement="s", register=False)(with_series({"loss": s}))
          for i, s in enumerate([loss_a, loss_b])]
    pairs = [(c, c.run()) for c in cl]
    merged = overview_series(pairs)
    assert list(merged) == ["overview-loss_curves-train"]  # no test curves were given
    assert set(merged["overview-loss_curves-train"]["curves"]) == {"exact train", "exact train predicted",
                                                                   "kfac train", "kfac train predicted"}
    assert merged["overview-loss_curves-train"]["predicted"] == ["exact train predicted", "kfac train predicted"]
    # a second claim with exact curves does not add a second "exact" to the overview
    dup = claim("o.dup", title="t", statement="s", register=False)(with_series({"loss": loss_a}))
    again = overview_series(pairs + [(dup, dup.run())])["overview-loss_curves-train"]["curves"]
    assert len(again) == 4
    paths = write_report(pairs, RunConfig(), tmp_path)
    assert tmp_path / "figures" / "overview-loss-curves-train.png" in paths["figures"]
    assert "## Overview figures" in (tmp_path / "report.md").read_text()


def test_control_characters_from_non_raw_strings_do_not_break_latex(tmp_path):
    # "\alpha" and "\theta" in a non-raw Python string become BEL and TAB: the report must still
    # be valid pdflatex input (shown as "?"), never a fatal "Unicode character ^^G" error
    bad = claim("c.bad", title="bad \theta", statement="\\eta = 1/\alpha \u2265 0", register=False)(
        lambda cfg: ClaimResult("verified"))
    write_report([(bad, bad.run())], RunConfig(), tmp_path)
    tex = (tmp_path / "report.tex").read_text()
    md = (tmp_path / "report.md").read_text()
    assert "\a" not in tex and "\a" not in md
    assert r"\[ \eta = 1/?lpha  \ge  0 \]" in tex


def test_sweeps_given_as_mappings_do_not_break_the_report(tmp_path):
    odd = claim("c.odd", title="t", statement="s", register=False)(
        lambda cfg: ClaimResult("verified", sweeps={"iso": {"widths": [1, 2, 4], "errors": [1, .5, .25],
                                                            "slope": -1.0, "slope_stderr": 0.0, "prefactor": 1.0}}))
    write_report([(odd, odd.run())], RunConfig(), tmp_path)
    assert "| iso | [1, 2, 4] | [1, 0.5, 0.25] | -1 | 0 | 1 |" in (tmp_path / "report.md").read_text()


def _png_size(png: bytes):
    """(width, height) in pixels from the PNG IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_crowded_legend_goes_below_in_columns_and_keeps_the_figure_compact():
    """Regression: 20 curves gave a one-column legend 20 rows tall (figure ~ 830 px high at 110 dpi).
    Short labels now take 3 columns (7 rows): 4.2 in + 7 x 0.16 in = 5.3 in ~ 590 px (+ tight bbox)."""
    from proofs.figures import legend_columns

    curves = {f"approx{i} train M=4096": [1.0, 0.1 / (i + 1), 0.01 / (i + 1)] for i in range(20)}
    png = render_png({"kind": "loss_curves", "steps": [0, 1, 2], "curves": curves})
    width, height = _png_size(png)
    assert legend_columns(list(curves)) == 3
    assert height < 700, (width, height)
    assert width < 800, (width, height)      # the columns fit the 6.4 in (704 px) figure, no overflow sideways


def test_overview_loss_curves_show_each_approximation_once_and_split_test_by_series_label():
    """Regression (digits-like claim): the same runs published as per-approximation series AND as
    all-approximation series with labels like 'exact (alpha=1)' / 'exact measured' (test loss) made
    the train overview 20 curves with test curves among them.  Now: one series per approximation,
    test-loss series go to the test overview."""
    from proofs.report import overview_series

    steps = [0, 1, 2]
    series = {}
    for name in ("exact", "kfac"):
        series[f"curve_{name}"] = {"kind": "loss_curve", "approximation": name, "width": 4096, "x": steps,
                                   "train_measured": [1, 1e-3, 1e-6], "train_predicted": [1, 0, 0],
                                   "test_measured": [1, 0.1, 0.09], "test_predicted": [1, 0.1, 0.1]}
    series["train_all"] = {"kind": "loss_curves", "steps": steps, "ylabel": "train loss",
                           "curves": {"exact (alpha=1)": [1, 1e-3, 1e-6], "kfac (alpha=13)": [1, 1e-3, 1e-6]}}
    series["test_all"] = {"kind": "loss_curves", "steps": steps, "ylabel": "test loss",
                          "curves": {"exact measured": [1, 0.1, 0.09], "exact predicted": [1, 0.1, 0.1]},
                          "predicted": ["exact predicted"]}
    c = claim("o.digits_like", title="t", statement="s", register=False)(lambda cfg: ClaimResult("verified",
                                                                                               series=series))
    merged = overview_series([(c, c.run())])
    train = merged["overview-loss_curves-train"]["curves"]
    test = merged["overview-loss_curves-test"]["curves"]
    assert set(train) == {"exact train M=4096", "exact train predicted", "kfac train M=4096", "kfac train predicted"}
    assert set(test) == {"exact test M=4096", "exact test predicted", "kfac test M=4096", "kfac test predicted"}
