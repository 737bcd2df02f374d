"""The command line as a new user meets it (issue 13, item 3): output paths probed before the run and
their parents created, stale figures removed, results never lost to a write failure, ``--json -``,
``--version``, help on a bare call, help texts and examples, exit 2 only for the user's input and 3
(with ``--debug`` tracebacks) for bugs, ASCII fallback for the table, progress inside claims and in
the figure phase, ``falsify`` leaving no files, its suggestions, the error legend, plurals, plain-text
statements.  Subprocess tests where exit codes and streams matter."""
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

from proofs import cli
from proofs.assumption_spaces import AssumptionSpace, Outcome
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.progress import progress, status_line, terminal_columns

# ----------------------------------------------------------------------------- fakes


def _true(cfg):
    from proofs import figures as F

    series = {"sweep": F.figure_series("width_sweep", [F.sweep_curve("error", [8, 16, 32], [0.4, 0.28, 0.2])],
                                       name="sweep")}
    return ClaimResult.from_error(predicted=2.0, measured=2.0 + 1e-12, tolerance=1e-9, width=64, series=series)


def _slope(cfg):
    return ClaimResult("verified", predicted=-0.5, measured=-0.49, error=0.01, width=128)


def _noted(cfg):
    return ClaimResult("verified", predicted=1.0, measured=1.0, error=0.03,
                       notes="predicted/measured = alpha; error = test-output error at the widest net | all ok")


def _slow(cfg):
    import time

    total = 0
    for w in progress([8, 16, 32], cfg, "sweep"):
        time.sleep(0.12)  # the line is redrawn at most every 0.1 s
        total += w
    return ClaimResult("verified", predicted=56, measured=total, error=0.0)


def _unicode(cfg):
    return ClaimResult("verified", predicted="\u03b1 \u2265 1", measured="\u03b1 \u2212 1 \u00b1 0", error=None)


SPACE = AssumptionSpace("x < 99", st.integers(0, 5), lambda x: Outcome(x < 99, x, 99, flags=[]))

FAKE = {
    "demo.true": claim("demo.true", title="a true claim", statement=r"\alpha = \frac{1}{2}", register=False,
                       space=SPACE)(_true),
    "demo.slope": claim("demo.slope", title="a slope", statement="s", register=False)(_slope),
    "demo.noted": claim("demo.noted", title="noted", statement="s", register=False)(_noted),
    "demo.given": claim("demo.given", title="given", statement="s", register=False,
                        error_meaning="|alpha_measured - 3| / 3 at width 64")(_noted),
}
ONE = {"demo.true": FAKE["demo.true"]}


def run(argv, claims=FAKE, err=None):
    out, err = io.StringIO(), (err if err is not None else io.StringIO())
    code = cli.main(argv, claims=claims, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def one_line(code, err, *needles, status=2):
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


CLI = [sys.executable, "-m", "proofs.cli"]


def sh(args, cwd, env=None, timeout=300):
    environment = {**os.environ, **(env or {})}
    environment.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    return subprocess.run(CLI + list(args), cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


class TTY(io.StringIO):
    def isatty(self):
        return True


# ----------------------------------------------------------------------------- report: paths, stale figures
def test_report_creates_nested_out_and_removes_stale_figures(tmp_path):
    out_dir = tmp_path / "a" / "b" / "c"  # a/b does not exist
    code, out, err = run(["report", "demo.true", "--out", str(out_dir)])
    assert code == 0, err
    fresh = sorted(p.name for p in (out_dir / "figures").glob("*.png"))
    assert fresh and (out_dir / "report.md").is_file()
    assert "report written to" in err and "report written to" not in out  # messages on stderr
    stale = out_dir / "figures" / "old-claim--gone.png"
    stale.write_bytes(b"\x89PNG stale")
    os.utime(stale, (1e9, 1e9))
    code, out, err = run(["report", "demo.true", "--out", str(out_dir)])
    assert code == 0 and not stale.exists()
    assert sorted(p.name for p in (out_dir / "figures").glob("*.png")) == fresh
    assert "removed 1 stale figure of an earlier report" in err


@pytest.mark.parametrize("make, needles", [
    (lambda d: (d / "figures").write_text("x"), ["--out", "figures", "exists and is not a directory"]),
    (lambda d: (d / "report.md").mkdir(), ["--out", "report.md", "not a regular file"]),
])
def test_report_output_problems_are_caught_before_running(tmp_path, make, needles):
    d = tmp_path / "rep"
    d.mkdir()
    make(d)
    code, out, err = run(["report", "demo.true", "--out", str(d)])
    one_line(code, err, *needles)
    assert out == ""  # nothing ran


def test_unwritable_figures_dir_is_caught_before_running(tmp_path, monkeypatch):
    d = tmp_path / "rep"
    (d / "figures").mkdir(parents=True)
    real = cli.tempfile.TemporaryFile

    def refuse_in_figures(*args, **kwargs):
        if Path(kwargs.get("dir", ".")).name == "figures":
            raise PermissionError(errno.EROFS, "Read-only file system")
        return real(*args, **kwargs)

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse_in_figures)
    code, out, err = run(["report", "demo.true", "--out", str(d)])
    one_line(code, err, "--out", "figures", "cannot create files", "Read-only file system")
    assert out == ""


def test_immutable_json_target_is_caught_before_running(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("{}")
    real_open = open

    def fake_open(path, *args, **kwargs):
        if Path(path) == target and args and "a" in args[0]:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(cli, "open", fake_open, raising=False)
    code, out, err = run(["verify", "demo.true", "--json", str(target)])
    one_line(code, err, f"--json {str(target)!r}", "cannot be replaced", "Operation not permitted")
    assert out == ""


@pytest.mark.skipif(shutil.which("chattr") is None or os.geteuid() != 0, reason="needs chattr and root")
def test_really_immutable_json_target_exits_2_before_running(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("{}")
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
        pytest.skip("this file system does not support chattr +i")
    try:
        proc = sh(["verify", "sanity.pinv_product_rule_invertible", "--json", str(target)], cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True)
    assert proc.returncode == 2 and proc.stdout == ""
    one_line(proc.returncode, proc.stderr, "--json", "cannot be replaced", "Operation not permitted")


def test_json_to_a_device_is_refused(tmp_path):
    code, out, err = run(["verify", "demo.true", "--json", os.devnull])
    one_line(code, err, "--json", "not a regular file", "'-' for standard output")


def test_json_parent_directories_are_created(tmp_path):
    target = tmp_path / "x" / "y" / "r.json"
    code, _, err = run(["verify", "demo.true", "--json", str(target)])
    assert code == 0 and json.loads(target.read_text())["claims"][0]["id"] == "demo.true"
    assert f"results written to {target}" in err


def test_a_write_failure_after_the_run_keeps_the_table_and_saves_the_results(tmp_path, monkeypatch):
    def fail(path, document):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr("proofs.report.write_json", fail)
    code, out, err = run(["verify", "demo.true", "--json", str(tmp_path / "r.json")])
    line = one_line(code, err, "--json", "cannot write the results", "Operation not permitted", "saved to")
    assert "demo.true" in out and "all verdicts as expected" in out  # the table was printed first
    saved = Path(line.split("saved to ")[1].split(" instead")[0])
    try:
        assert json.loads(saved.read_text())["claims"][0]["id"] == "demo.true"
    finally:
        saved.unlink()


def test_a_report_write_failure_keeps_the_table_and_saves_the_results(tmp_path, monkeypatch):
    def fail(pairs, cfg, out_dir, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(Path(out_dir) / "figures" / "x.png"))

    monkeypatch.setattr("proofs.report.write_report", fail)
    code, out, err = run(["report", "demo.true", "--out", str(tmp_path / "rep")])
    line = one_line(code, err, "--out", "cannot write the report", "x.png", "Operation not permitted", "saved to")
    assert "demo.true" in out
    saved = Path(line.split("saved to ")[1])
    try:
        assert json.loads(saved.read_text())["summary"]["claims"] == 1
    finally:
        saved.unlink()


# ----------------------------------------------------------------------------- --json -
@pytest.mark.parametrize("argv", [["verify", "sanity.pinv_product_rule_invertible", "--json", "-"],
                                  ["audit", "sanity.pinv_product_rule_invertible", "--seeds", "2", "--json", "-"]])
def test_json_dash_writes_only_json_to_stdout(tmp_path, argv):
    proc = sh(argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert "sanity.pinv_product_rule_invertible" in proc.stderr  # the table went to stderr
    assert "written to" not in proc.stdout and not (tmp_path / "-").exists()
    assert doc["claims"][0]["id"] == "sanity.pinv_product_rule_invertible"


# ----------------------------------------------------------------------------- --version, help
def test_version_and_bare_call(tmp_path):
    from importlib.metadata import version

    for argv in (["--version"], ["verify", "--version"]):
        proc = sh(argv, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.strip() == f"ngd-verify {version('ngd-verifier')}"
    proc = sh([], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: ngd-verify") and "examples:" in proc.stdout and "exit status" in proc.stdout


@pytest.mark.parametrize("argv, needles", [
    (["--help"], ["examples:", "ngd-verify verify --json -", "ngd-verify report --out", "3 internal error"]),
    (["verify", "--help"], ["CLAIM_ID", "topic prefix", "examples:", "--json PATH"]),
    (["report", "--help"], ["--out DIR", "output directory", "created with its parents", "examples:"]),
    (["falsify", "--help"], ["--max-examples N", "examples to try", "default 50", "examples:"]),
    (["list", "--help"], ["CLAIM_ID", "examples:"]),
    (["audit", "--help"], ["--seeds N", "examples:"]),
])
def test_help_texts_and_examples(argv, needles):
    code, out, err = run(argv)
    assert code == 0 and err == ""
    for needle in needles:
        assert needle in out, (needle, out)


# ----------------------------------------------------------------------------- exit 2 vs exit 3, --debug
def test_input_errors_exit_2_internal_errors_exit_3_and_debug_shows_the_traceback(monkeypatch):
    one_line(*run(["verify", "demo.nope"])[::2], "unknown claim id 'demo.nope'")

    def bug(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "run_claims", bug)
    line = one_line(*run(["verify", "demo.true"])[::2], status=3)
    assert line == ("ngd-verify: internal error: KeyError: 'internal' "
                    "(a bug; rerun with --debug for the traceback)")
    for argv in (["verify", "demo.true", "--debug"], ["--debug", "verify", "demo.true"]):
        code, _, err = run(argv)
        assert code == 3 and "Traceback (most recent call last)" in err and "in bug" in err
        assert err.strip().splitlines()[-1].startswith("ngd-verify: internal error: KeyError")


def test_internal_error_exit_3_in_a_real_process(tmp_path):
    """A real process: a claim module that raises at import is a bug (exit 3), not bad usage."""
    pkg = tmp_path / "sitecustom"
    pkg.mkdir()
    (pkg / "sitecustomize.py").write_text(
        "import proofs.registry as r\n"
        "def broken(*a, **k):\n"
        "    raise ZeroDivisionError('division by zero in a claim module')\n"
        "r.load_claims = broken\n")
    env = {"PYTHONPATH": os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")])}
    proc = sh(["list"], cwd=tmp_path, env=env)
    assert proc.returncode == 3 and proc.stdout == ""
    one_line(proc.returncode, proc.stderr, "internal error: ZeroDivisionError", "--debug", status=3)
    proc = sh(["--debug", "list"], cwd=tmp_path, env=env)
    assert proc.returncode == 3 and "Traceback" in proc.stderr and "in broken" in proc.stderr


# ----------------------------------------------------------------------------- encodings
def test_ascii_stdout_keeps_the_table(tmp_path):
    proc = sh(["verify", "sanity.pinv_product_rule_invertible"], cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr
    assert "sanity.pinv_product_rule_invertible" in proc.stdout and "1 claim (1 verified)" in proc.stdout
    assert "UnicodeEncodeError" not in proc.stderr


def test_ascii_stream_gets_ascii_replacements():
    raw = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    code = cli.main(["verify", "demo.u"], claims={"demo.u": claim("demo.u", title="u", statement="s",
                                                                  register=False)(_unicode)},
                    out=raw, err=io.StringIO())
    raw.flush()
    text = raw.buffer.getvalue().decode("ascii")
    assert code == 0 and "alpha >= 1" in text and "alpha - 1 +- 0" in text and "1 claim" in text


# ----------------------------------------------------------------------------- progress
def test_progress_inside_a_claim_reports_each_sweep_point():
    stream = io.StringIO()
    pairs = cli.run_claims([claim("demo.slow", title="s", statement="s", register=False)(_slow)],
                           RunConfig(progress=True), file=stream)
    assert pairs[0][1].verdict == "verified"
    text = stream.getvalue()
    for k in (1, 2, 3):
        assert f"demo.slow: sweep {k}/3" in text, text
    assert "claims" in text


def test_progress_is_off_unless_stderr_is_a_terminal():
    _, _, err = run(["verify", "demo.true"])
    assert "claims" not in err  # a StringIO is not a terminal
    _, out, err = run(["verify", "demo.true"], err=TTY())
    assert "claims" in err and "demo.true" in err and "claims" not in out.split("\n", 2)[2]


def test_report_figure_phase_shows_progress(tmp_path):
    code, _, err = run(["report", "demo.true", "--out", str(tmp_path / "rep")], err=TTY())
    assert code == 0 and "figures written" in err


def test_terminal_without_a_size_gets_a_fixed_width():
    assert terminal_columns(io.StringIO()) == 100  # tqdm would draw nothing with its reported 0 columns
    stream = io.StringIO()
    with status_line(RunConfig(progress=True), "claims", total=2, file=stream, ticker=False) as line:
        line.item("x.y")
        line.advance()
    assert "claims" in stream.getvalue() and "x.y" in stream.getvalue()


# ----------------------------------------------------------------------------- falsify
def test_falsify_leaves_no_files_without_database(tmp_path):
    proc = sh(["falsify", "sanity.pinv_product_rule_invertible", "--max-examples", "5"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no .hypothesis/
    proc = sh(["falsify", "sanity.pinv_product_rule_invertible", "--relax", "B invertible", "--database", "db"],
              cwd=tmp_path)
    assert proc.returncode == 1
    assert [p.name for p in tmp_path.iterdir()] == ["db"]  # only what was asked for


def test_falsify_topic_prefix_lists_every_claim_of_the_topic_with_a_space():
    from proofs.falsify import falsifiable
    from proofs.registry import select_claims

    kfac = falsifiable(select_claims(["ngd.kfac"]))
    assert {"ngd.kfac.alpha_definition", "ngd.kfac.alpha_authors"} <= set(kfac)
    code, out, err = run(["falsify", "ngd.kfac"], claims=None)
    line = one_line(code, err, "'ngd.kfac' selects", "falsify takes one claim id")
    assert line.endswith(", ".join(kfac))
    code, _, err = run(["falsify", "ngd.kfac.alpha_defintion"], claims=None)  # a typo
    one_line(code, err, "unknown claim id", "ngd.kfac.alpha_definition")


def test_falsify_plurals():
    from proofs.falsify import FalsifyOutcome, format_outcome

    assert "no counterexample in 1 example " in format_outcome(FalsifyOutcome("d.x", 1, 0.1, relaxations=["none"]))
    assert "in 2 examples" in format_outcome(FalsifyOutcome("d.x", 2, 0.1, relaxations=["none"]))


# ----------------------------------------------------------------------------- the table
def test_error_legend_says_what_each_error_is():
    code, out, _ = run(["verify"])
    assert code == 0
    legend = out.split("error column, per claim:\n")[1]
    rows = dict(line.strip().split(None, 1) for line in legend.splitlines()[:4])
    assert rows == {"demo.true": "relative error |measured - predicted| / |predicted|",
                    "demo.slope": "|fitted log-log slope of the width sweep - (-1/2)|",
                    "demo.noted": "test-output error at the widest net",
                    "demo.given": "|alpha_measured - 3| / 3 at width 64"}


@pytest.mark.parametrize("notes, numbers, meaning", [
    ("error = ||r_1 - r_0|| / ||r_0|| at the widest net; more | all 5 checks verified", (1, 1, 0.01),
     "||r_1 - r_0|| / ||r_0|| at the widest net"),
    ("measured = smallest isotropy error over the sweep | error = O(M^-0.5)", ("not isotropic", 0.4, 0.4),
     "the measured value: smallest isotropy error over the sweep"),
    ("", (0, 3e-16, 3e-16), "the measured value itself (its prediction is 0)"),
    ("", (36, 25, 11 / 36), "relative error |measured - predicted| / |predicted|"),
    ("", (3, 3, 0.007), "claim-specific (not |measured - predicted|): see the claim's notes and details (--json)"),
    ("", (3, 3, None), ""),
])
def test_error_meaning_from_notes_and_numbers(notes, numbers, meaning):
    p, m, e = numbers
    c = claim("d.n", title="t", statement="s", register=False)(lambda cfg: None)
    assert cli.error_meaning(c, ClaimResult("verified", predicted=p, measured=m, error=e, notes=notes)) == meaning


def test_result_error_meaning_overrides_the_claim():
    def meant(cfg):
        return ClaimResult("verified", predicted=1, measured=1, error=0.0, error_meaning="max |T - alpha I|")
    c = claim("d.m", title="t", statement="s", register=False, error_meaning="ignored")(meant)
    assert cli.error_meaning(c, c.run()) == "max |T - alpha I|"


def test_summary_plurals():
    code, out, _ = run(["verify", "demo.true"])
    assert "1 claim (1 verified)" in out and "1 claims" not in out


def test_list_prints_plain_text_statements():
    code, out, _ = run(["list", "demo.true"])
    assert code == 0 and "statement: alpha = 1/2" in out and "\\" not in out
    code, out, _ = run(["list", "ngd.kfac", "kernels"], claims=None)
    statements = [line for line in out.splitlines() if line.strip().startswith("statement:")]
    assert len(statements) >= 8 and not any("\\" in s for s in statements)
    assert "statement: J G_KFAC^+ J^T/N = (N(L-1)+1) I" in out


# ----------------------------------------------------------------------------- report --pdf
def test_pdf_without_pdflatex_is_an_input_error_before_running(tmp_path, monkeypatch):
    report = pytest.importorskip("proofs.report")
    if not hasattr(report, "check_pdf_toolchain"):
        pytest.skip("proofs.report cannot compile PDFs in this tree")

    def missing():
        raise report.PdfUnavailable("--pdf needs pdflatex, which is not on PATH: install texlive-latex-base")

    monkeypatch.setattr(report, "check_pdf_toolchain", missing)
    code, out, err = run(["report", "demo.true", "--out", str(tmp_path / "rep"), "--pdf"])
    one_line(code, err, "--pdf needs pdflatex", "texlive-latex-base")
    assert out == "" and not (tmp_path / "rep").exists()


def test_pdf_is_passed_to_write_report(tmp_path, monkeypatch):
    report = pytest.importorskip("proofs.report")
    if not hasattr(report, "check_pdf_toolchain"):
        pytest.skip("proofs.report cannot compile PDFs in this tree")
    seen = {}

    def fake_write_report(pairs, cfg, out_dir, **kwargs):
        seen.update(kwargs)
        return {"markdown": out_dir / "report.md", "latex": out_dir / "report.tex", "json": out_dir / "results.json",
                "pdf": out_dir / "report.pdf", "figures": []}

    monkeypatch.setattr(report, "check_pdf_toolchain", lambda: "/usr/bin/pdflatex")
    monkeypatch.setattr(report, "write_report", fake_write_report)
    code, _, err = run(["report", "demo.true", "--out", str(tmp_path / "rep"), "--pdf"])
    assert code == 0 and seen == {"pdf": True} and "report.pdf" in err
    seen.clear()
    assert run(["report", "demo.true", "--out", str(tmp_path / "rep")])[0] == 0 and seen == {}
