"""Report writer: atomic writes, strict JSON, Markdown/LaTeX content, PNG figures per series kind."""
import json
import os

import numpy as np
import pytest
import sympy as sp

from numerics.sweeps import fit_power_law
from proofs import cli
from proofs.claim import ClaimResult, RunConfig, claim
from proofs import figures as F
from proofs.report import (atomic_write_text, dumps_strict, fmt, results_document, statement_kind, tex_escape,
                           tex_mixed, to_jsonable, write_report)
from theory.derivation import Derivation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDTHS = [64, 128, 256, 512]

SERIES = {
    "loss": F.figure_series("loss_curves", F.loss_curves("exact", [0, 1, 2, 3], {"train": [0.5, 1e-3, 2e-6, 4e-9]},
                                                         {"train": [0.5, 1e-3, 2e-6, 4e-9]}, width=512), name="loss"),
    "sweep": F.sweep_series("error", WIDTHS, [0.2, 0.14, 0.1, 0.07], name="sweep", expected_slope=-0.5),
    "spectrum": F.figure_series("spectrum", [
        F.spectrum_curve([3.1, 3.0, 2.9], approximation="block_diagonal", alpha=3.0),
        F.spectrum_curve([40.0, 30.0, 1.0], approximation="kfac")], name="spectrum"),
    "eta": F.figure_series("eta_scan", F.eta_curves("exact", [0.5, 1.0, 1.5], [0.25, 1e-6, 0.25], [0.25, 1e-12, 0.25]),
                           name="eta"),
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
                   "$$ (a+b)^2 = a^2 + 2ab + b^2 $$",               # math statement as a display
                   "The error is 5% at width $M$.",                 # mixed statement kept as text
                   "**What failed.**", "- Assumption: M_0 >= N (here M_0 = 64 < N = 100)",
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
    assert r"keepaspectratio]{figures/demo-numeric-1--loss.png}" in tex
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


# ----------------------------------------------------------------------------- figures in the report
def _with_series(series):
    return lambda cfg: ClaimResult("verified", series=series)


def _claim_with(cid, series):
    c = claim(cid, title=f"title of {cid}", statement="s", register=False)(_with_series(series))
    return c, c.run()


def test_malformed_series_is_reported_by_name_and_field_not_drawn(report):
    out, _, _ = report
    md = (out / "report.md").read_text()
    assert ("*Figure `broken` could not be drawn: ValueError: series 'demo.numeric_1: broken': field kind is "
            "'histogram'; allowed: loss_curves, width_sweep, spectrum, eta_scan, xy*") in md


def test_overview_merges_series_of_the_same_kind_across_claims(tmp_path):
    from proofs.report import overview_series

    loss_a = F.figure_series("loss_curves", F.loss_curves("exact", [0, 1], {"train": [1, 1e-3]}, {"train": [1, 0]}))
    loss_b = F.figure_series("loss_curves", F.loss_curves("kfac", [0, 1], {"train": [1, 0.1]}, {"train": [1, 0.05]}))
    pairs = [_claim_with(f"o.{i}", {"loss": s}) for i, s in enumerate([loss_a, loss_b])]
    merged = overview_series(pairs)
    assert list(merged) == ["overview-loss_curves-train"]  # no test curves were given
    curves = merged["overview-loss_curves-train"]["curves"]
    # printed names come from the registry (exact -> "exact NGD", kfac -> "K-FAC")
    assert [c["label"] for c in curves] == ["exact NGD train", "exact NGD train predicted", "K-FAC train",
                                            "K-FAC train predicted"]
    assert [c["role"] for c in curves] == ["measured", "predicted"] * 2
    # a second claim with exact curves does not add a second "exact" to the overview
    again = overview_series(pairs + [_claim_with("o.dup", {"loss": loss_a})])["overview-loss_curves-train"]["curves"]
    assert len(again) == 4
    paths = write_report(pairs, RunConfig(), tmp_path)
    assert tmp_path / "figures" / "overview-loss-curves-train.png" in paths["figures"]
    assert "## Overview figures" in (tmp_path / "report.md").read_text()


def test_overview_groups_loss_curves_by_the_approximation_field_not_the_label():
    """Two claims publish curves of the same approximation under unrelated labels: the overview shows
    the approximation once (first claim), because it groups by ``approximation``; a curve whose label
    names another approximation is grouped by its field too."""
    from proofs.report import overview_series

    first = F.figure_series("loss_curves", [
        {"label": "kfac-looking label", "x": [0, 1], "y": [1, 0.1], "approximation": "exact", "split": "train"}])
    second = F.figure_series("loss_curves", [
        {"label": "exact, other claim", "x": [0, 1], "y": [1, 0.2], "approximation": "exact", "split": "train"},
        {"label": "kfac (alpha=25)", "x": [0, 1], "y": [1, 0.3], "approximation": "kfac", "split": "train"}])
    merged = overview_series([_claim_with("o.a", {"s": first}), _claim_with("o.b", {"s": second})])
    labels = [c["label"] for c in merged["overview-loss_curves-train"]["curves"]]
    assert labels == ["kfac-looking label", "kfac (alpha=25)"]


def test_overview_loss_curves_show_each_approximation_once_and_split_train_and_test_by_field():
    """Regression (digits-like claim): the same runs published as per-approximation series AND as
    all-approximation series made the train overview 20 curves with test curves among them.  Now:
    one series per approximation, curves go to the train/test overview by their ``split``."""
    from proofs.report import overview_series

    steps = [0, 1, 2]
    series = {}
    for name in ("exact", "kfac"):
        series[f"curve_{name}"] = F.figure_series("loss_curves", F.loss_curves(
            name, steps, {"train": [1, 1e-3, 1e-6], "test": [1, 0.1, 0.09]},
            {"train": [1, 0, 0], "test": [1, 0.1, 0.1]}, width=4096))
    series["train_all"] = F.figure_series("loss_curves", [
        {"label": f"{F.approximation_label(k)} (alpha={a})", "x": steps, "y": [1, 1e-3, 1e-6], "approximation": k,
         "split": "train"} for k, a in (("exact", 1), ("kfac", 13))])
    series["test_all"] = F.figure_series("loss_curves", [
        {"label": "exact NGD measured", "x": steps, "y": [1, 0.1, 0.09], "approximation": "exact", "split": "test"},
        {"label": "exact NGD predicted", "x": steps, "y": [1, 0.1, 0.1], "approximation": "exact", "split": "test",
         "role": "predicted"}])
    merged = overview_series([_claim_with("o.digits_like", series)])
    train = [c["label"] for c in merged["overview-loss_curves-train"]["curves"]]
    test = [c["label"] for c in merged["overview-loss_curves-test"]["curves"]]
    assert train == ["exact NGD train M=4096", "exact NGD train predicted", "K-FAC train M=4096",
                     "K-FAC train predicted"]
    assert test == ["exact NGD test M=4096", "exact NGD test predicted", "K-FAC test M=4096", "K-FAC test predicted"]


def test_overview_width_sweeps_spectra_and_eta_scans_label_by_claim():
    from proofs.report import overview_series

    sweep = F.sweep_series("isotropy error", [64, 128, 256], [0.2, 0.14, 0.1])
    spec = F.figure_series("spectrum", [F.spectrum_curve([2.0, 1.0], approximation="kfac", alpha=1.5)])
    eta = F.figure_series("eta_scan", F.eta_curves("exact", [0.5, 1.0], [0.25, 1e-6], [0.25, 0.0]))
    merged = overview_series([_claim_with("o.a", {"w": sweep, "s": spec, "e": eta}),
                              _claim_with("o.b", {"w": sweep, "s": spec, "e": eta})])
    # width sweeps: small multiples, one panel (group) per topic of the claim id; a repeated label gets the
    # claim's last id component in words, in parentheses (no "[id]" in a figure)
    from proofs.figures import panels
    assert [(c.get("group"), c["label"]) for c in merged["overview-width_sweep"]["curves"]] == [
        ("o", "isotropy error"), ("o", "isotropy error (b)")]
    assert [title for title, _ in panels(merged["overview-width_sweep"])] == ["o"]
    ratio = F.sweep_series("L1/L0", [64, 128, 256], [3.0, 0.1, 50.0], autofit=False)
    more = overview_series([_claim_with("o.a", {"w": sweep}), _claim_with("o.r", {"w": ratio})])["overview-width_sweep"]
    assert [(c["group"], c.get("autofit")) for c in more["curves"]] == [("o", None), ("o: L1/L0", False)]
    # spectra: one measured spectrum per approximation, alpha stays with its curve; eta-scan labels get the
    # claim id only when they clash
    assert [c["label"] for c in merged["overview-spectrum"]["curves"]] == ["K-FAC"]
    assert [c["alpha"] for c in merged["overview-spectrum"]["curves"]] == [1.5]
    assert merged["overview-spectrum"]["normalise"] is True
    damped = F.figure_series("spectrum", [F.spectrum_curve([0.9, 0.5], label="rho = 0.1"),
                                          dict(F.spectrum_curve([0.9, 0.5], label="rho = 0.1 predicted"),
                                               role="predicted"),
                                          F.spectrum_curve([3.0, 1.0], approximation="diagonal")])
    again = overview_series([_claim_with("o.a", {"s": spec}), _claim_with("o.d", {"s": damped})])
    assert [c["label"] for c in again["overview-spectrum"]["curves"]] == ["K-FAC", "diagonal Fisher"]
    assert [c["label"] for c in merged["overview-eta_scan"]["curves"]] == [
        "exact NGD", "exact NGD predicted", "o.b: exact NGD", "o.b: exact NGD predicted"]
    for s in merged.values():
        F.check_series(s)  # every overview series is itself in the schema
    # a kind fed by one series only has no overview figure
    assert overview_series([_claim_with("o.c", {"w": sweep})]) == {}


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


def test_sweeps_given_as_mappings_do_not_break_the_report(tmp_path):
    odd = claim("c.odd", title="t", statement="s", register=False)(
        lambda cfg: ClaimResult("verified", sweeps={"iso": {"widths": [1, 2, 4], "errors": [1, .5, .25],
                                                            "slope": -1.0, "slope_stderr": 0.0, "prefactor": 1.0}}))
    write_report([(odd, odd.run())], RunConfig(), tmp_path)
    assert "| iso | [1, 2, 4] | [1, 0.5, 0.25] | -1 | 0 | 1 |" in (tmp_path / "report.md").read_text()
