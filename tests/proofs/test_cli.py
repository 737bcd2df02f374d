"""The ``ngd-verify`` command line on injected claims: list / verify / falsify, exit codes 0/1/2,
one-line errors, strict JSON per interface.md; and one real run of the sanity claims."""
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hypothesis import strategies as st

from proofs import cli
from proofs.assumption_spaces import AssumptionSpace, Outcome
from proofs.claim import ClaimResult, claim
from proofs.registry import ClaimModuleError
from theory.assumptions import Assumption, Flag


def _true_claim(cfg):
    return ClaimResult.from_error(predicted=2.0, measured=2.0 + 1e-12, tolerance=1e-9, width=64,
                                  details={"seed_seen": cfg.seed, "mode_seen": cfg.mode, "cond": float("inf")})


def _false_claim(cfg):
    from proofs import verdicts as V

    measured = float(cfg.rng("x").uniform(1.5, 2.0))
    parts = [V.compare("one equals two", 1.0, measured, tolerance=0.1),
             V.control(V.compare("one equals one", 1.0, 1.0, tolerance=0.1), "the same comparison where it holds")]
    return V.to_result(parts, predicted=1.0, measured=measured, error=abs(measured - 1.0), tolerance=0.1)


def _ungated_false_claim(cfg):
    return ClaimResult.from_error(predicted=1.0, measured=1.7, tolerance=0.1)


def _crashing(cfg):
    raise RuntimeError("numerics blew up")


X_SMALL = Assumption("x <= 5", "x <= 5")
#: the statement "x < 9": holds where x <= 5, fails (loudly) once that assumption is relaxed
FALSE_SPACE = AssumptionSpace(
    "x < 9", st.integers(-100, 5),
    lambda x: Outcome(x < 9, x, 9, flags=[] if x <= 5 else [Flag("x_large", f"x = {x} > 5", X_SMALL)]),
    relaxed={X_SMALL: st.integers(-100, 100)})


FAKE = {
    "demo.true": claim("demo.true", title="a true claim", statement=r"\alpha = 2", assumptions=["A1", "A2"],
                       register=False)(_true_claim),
    "demo.false": claim("demo.false", title="a false claim", statement="one equals two", expected="refuted",
                        register=False, space=FALSE_SPACE)(_false_claim),
    "other.crash": claim("other.crash", title="crashes", statement="x", register=False)(_crashing),
}
UNGATED = {"demo.ungated": claim("demo.ungated", title="a refutation without a positive control",
                                 statement="one equals two", expected="refuted", register=False)(_ungated_false_claim)}


def test_refutation_without_positive_control_is_inconclusive_and_exits_1():
    code, out, _ = run(["verify"], claims=UNGATED)
    assert code == 1 and "inconclusive" in out and "positive control" in out


def test_audit_counts_verdicts_over_seeds_and_writes_json(tmp_path):
    path = tmp_path / "audit.json"
    code, out, _ = run(["audit", "demo", "--seeds", "3", "--start", "7", "--json", str(path)])
    assert code == 0, out
    assert re.search(r"demo\.false\s+refuted\s+0\s+3\s+0\s+0\s+3/3", out), out
    doc = json.loads(path.read_text())
    assert doc["seeds"] == [7, 8, 9] and doc["all_as_expected"]
    assert {c["id"]: c["counts"]["verified"] for c in doc["claims"]} == {"demo.true": 3, "demo.false": 0}
    code, out, _ = run(["audit", "--seeds", "2"], claims=UNGATED)
    assert code == 1 and "0/2" in out


@pytest.mark.parametrize("argv", [["audit", "demo"], ["audit", "demo", "--seeds", "0"],
                                  ["audit", "demo", "--seeds", "2", "--start", "-1"]])
def test_audit_bad_usage_is_one_line(argv):
    code, _, err = run(argv)
    assert_one_line_error(code, err)


def run(argv, claims=FAKE):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, claims=claims, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ngd-verify: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------- list
def test_list_shows_id_statement_assumptions():
    code, out, _ = run(["list"])
    assert code == 0
    assert "demo.true  [expects verified]  a true claim" in out
    assert "assumptions: A1; A2" in out and "statement: alpha = 2" in out  # plain text, not LaTeX
    assert "falsify: hypothesis search; --relax 'none', 'x <= 5'" in out  # demo.false has a space


# ----------------------------------------------------------------------------- verify
def test_verify_exit_0_when_every_verdict_is_expected():
    code, out, err = run(["verify", "demo"])
    assert code == 0, out + err
    assert "demo.true" in out and "demo.false" in out and "all verdicts as expected" in out
    header = out.splitlines()[0].split()
    assert header == ["claim", "predicted", "measured", "error", "width", "verdict", "expected"]


def test_verify_exit_1_when_some_verdict_differs_and_says_why():
    code, out, _ = run(["verify"])
    assert code == 1
    assert "other.crash: inconclusive: check raised RuntimeError: numerics blew up" in out
    assert "1 verdict differs from the expected: other.crash" in out


def test_verify_passes_seed_and_mode(tmp_path):
    path = tmp_path / "r.json"
    assert run(["verify", "demo.true", "--full", "--seed", "7", "--json", str(path)])[0] == 0
    details = json.loads(path.read_text())["claims"][0]["details"]
    assert details["seed_seen"] == 7 and details["mode_seen"] == "full"


def test_verify_json_schema_and_strictness(tmp_path):
    path = tmp_path / "results.json"
    code, out, err = run(["verify", "--seed", "3", "--json", str(path)])
    assert code == 1 and f"results written to {path}" in err and str(path) not in out
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["seed"] == 3
    assert doc["conventions"]["fisher"]["F"] == "F = J^T J / N"
    assert [c["id"] for c in doc["claims"]] == ["demo.true", "demo.false", "other.crash"]
    for c in doc["claims"]:
        assert {"id", "title", "verdict", "predicted", "measured", "error", "width", "details"} <= set(c)
        assert c["verdict"] in ("verified", "refuted", "conditional", "inconclusive")
    true = doc["claims"][0]
    assert true["verdict"] == "verified" and true["expected"] == "verified" and true["width"] == 64
    assert true["details"]["cond"] == "inf"  # non-finite numbers become strings, not bare Infinity
    assert doc["summary"]["unexpected"] == ["other.crash"]
    assert not list(tmp_path.glob(".results.json.*"))  # no temp file left behind


@pytest.mark.parametrize("argv, needles", [
    (["verify", "demo.nope"], ["unknown claim id 'demo.nope'", "did you mean"]),
    (["verify", "--seed", "abc"], ["--seed", "'abc'"]),
    (["verify", "--seed", "-3"], ["--seed", "'-3'"]),
    (["verify", "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
    (["verify", "--quick", "--full"], ["not allowed with"]),
    (["bogus"], ["invalid choice: 'bogus'"]),
    (["report"], ["--out"]),
    (["falsify"], ["CLAIM_ID"]),
    (["falsify", "demo.false", "--max-examples", "0"], ["--max-examples", "expected an integer >= 1"]),
    (["falsify", "demo.false", "--max-examples", "-3"], ["--max-examples", "expected an integer >= 1"]),
    (["falsify", "demo.true"], ["'demo.true' has no falsify search space", "claims with one: demo.false"]),
    (["verify", "--json", ""], ["--json ''", "is empty"]),  # Path("") is ".": would silently write nothing
    (["report", "--out", ""], ["--out ''", "is empty"]),    # ... or write the report into the cwd
    (["falsify", "demo.false", "--relax", "nonsense"], ["--relax 'nonsense'", "allowed: 'none', 'x <= 5'"]),
])
def test_bad_usage_exits_2_with_one_line(argv, needles):
    code, out, err = run(argv)
    assert_one_line_error(code, err, *needles)


def test_json_path_problems_are_caught_before_running(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = run(["verify", "--json", str(blocker / "sub" / "r.json")])
    assert_one_line_error(code, err, "--json", "exists and is not a directory")
    assert out == ""  # nothing was run
    code, _, err = run(["verify", "--json", str(tmp_path)])
    assert_one_line_error(code, err, "is a directory")


def test_unwritable_output_directory_is_caught_before_running(tmp_path, monkeypatch):
    """A directory that passes os.access but refuses new files (root on /proc, a read-only mount):
    one line naming the option, and no claim is run."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse)
    code, out, err = run(["verify", "demo.true", "--json", str(tmp_path / "r.json")])
    assert_one_line_error(code, err, "--json", "cannot create files", "Read-only file system")
    assert out == ""
    for target in (tmp_path / "new_report", tmp_path):  # missing (parent probed) and existing directory
        code, out, err = run(["report", "demo.true", "--out", str(target)])
        assert_one_line_error(code, err, "--out", "cannot create files")
        assert out == "" and not (tmp_path / "new_report").exists()


def test_bad_falsify_database_is_one_line_before_searching(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for db, needle in (("", "is empty"), (str(blocker / "db"), "cannot create the directory")):
        code, out, err = run(["falsify", "ngd.kfac.alpha_definition", "--database", db, "--max-examples", "1"],
                             claims=None)
        assert_one_line_error(code, err, "--database", needle)
        assert out == ""


def assert_internal_error(code, err, *needles):
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ngd-verify: internal error:"), err
    assert "(a bug; rerun with --debug for the traceback)" in lines[0] and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_library_value_and_type_errors_after_validation_are_internal_errors_exit_3(monkeypatch):
    """A ValueError/TypeError raised inside a run is a bug, not bad usage: exit 3, one line."""
    def boom(*a, **k):
        raise ValueError("depth=0 is not allowed: expected an integer >= 1\n(second line)")
    monkeypatch.setattr(cli, "run_claims", boom)
    code, _, err = run(["verify"])
    assert_internal_error(code, err, "ValueError: depth=0 is not allowed")

    def bad_type(*a, **k):
        raise TypeError("widths must be a list")
    monkeypatch.setattr(cli, "run_claims", bad_type)
    assert_internal_error(*run(["verify"])[::2], "TypeError: widths must be a list")


def test_broken_claim_module_is_an_internal_error_exit_3(monkeypatch):
    def broken(*a, **k):
        raise ClaimModuleError("proofs.claims.kernels", ImportError("no module named theory.kernels"))
    monkeypatch.setattr("proofs.registry.load_claims", broken)
    code, _, err = run(["list"], claims=None)
    assert_internal_error(code, err, "proofs.claims.kernels failed to import")


def test_help_exits_0():
    with pytest.raises(SystemExit):  # argparse prints help to the real stdout; main maps the exit
        raise SystemExit(cli.main(["--help"]))


# ----------------------------------------------------------------------------- falsify
def test_falsify_finds_the_shrunk_counterexample_deterministically():
    argv = ["falsify", "demo.false", "--relax", "x <= 5", "--max-examples", "200", "--seed", "5"]
    (code1, out1, _), (code2, out2, _) = run(argv), run(argv)
    untimed = [re.sub(r"[0-9.]+ s\b", "", o) for o in (out1, out2)]
    assert code1 == code2 == 1 and untimed[0] == untimed[1]  # same seed, same search, same counterexample
    assert "relaxed assumption: x <= 5" in out1 and "minimal counterexample (shrunk)" in out1
    assert "example: 9\n" in out1 and "verifier flagged: x = 9 > 5" in out1  # shrunk to the boundary


def test_falsify_no_counterexample_exits_0():
    code, out, _ = run(["falsify", "demo.false", "--max-examples", "20", "--seed", "0"])
    assert code == 0 and "relaxing: none" in out and "no counterexample in 20 examples" in out


def test_check_that_raises_is_reported_not_passed():
    def raising(x):
        raise np.linalg.LinAlgError("singular matrix")
    space = AssumptionSpace("s", st.integers(0, 3), raising)
    claims = {"d.x": claim("d.x", title="t", statement="s", register=False, space=space)(_true_claim)}
    code, out, _ = run(["falsify", "d.x"], claims=claims)
    assert code == 3 and "raised LinAlgError: singular matrix" in out  # the check's bug, not the user's input


# ----------------------------------------------------------------------------- the real registry
def test_real_sanity_claims_come_out_as_expected(tmp_path):
    # the deliberately false claims must be refuted from real numbers, the true companion verified
    path = tmp_path / "sanity.json"
    code, out, err = run(["verify", "sanity", "--json", str(path)], claims=None)
    assert code == 0, out + err
    verdicts = {c["id"]: c["verdict"] for c in json.loads(path.read_text())["claims"]}
    assert verdicts == {"sanity.diagonal_fisher_isotropic": "refuted", "sanity.pinv_product_rule": "refuted",
                        "sanity.pinv_product_rule_invertible": "verified"}


def test_real_falsify_relaxing_b_invertible_finds_the_counterexample():
    code, out, _ = run(["falsify", "sanity.pinv_product_rule_invertible", "--relax", "B invertible"], claims=None)
    assert code == 1 and "relaxed assumption: B invertible" in out
    code, out, _ = run(["falsify", "sanity.pinv_product_rule_invertible", "--relax", "none",
                        "--max-examples", "30"], claims=None)
    assert code == 0 and "no counterexample in 30 examples" in out


def test_set_space_attaches_once_and_names_the_claim():
    c = claim("d.y", title="t", statement="s", register=False)(_true_claim)
    space = c.set_space(AssumptionSpace("s", st.integers(0, 3), lambda x: Outcome(x < 2, flags=[])))
    assert c.space is space and space.claim_id == "d.y"
    other = claim("d.z", title="t", statement="s", register=False)(_true_claim)
    with pytest.raises(ValueError, match="space of claim 'd.y' cannot be attached to claim 'd.z'"):
        other.set_space(space)
    with pytest.raises(TypeError, match="expected a proofs.assumption_spaces.AssumptionSpace"):
        other.set_space(lambda x: x)
    code, out, _ = run(["falsify", "d.y"], claims={"d.y": c})
    assert code == 1 and "none: the statement fails within its own assumptions" in out and "example: 2" in out


def test_crashing_check_keeps_a_traceback_in_details(tmp_path):
    path = tmp_path / "r.json"
    run(["verify", "other.crash", "--json", str(path)])
    details = json.loads(path.read_text())["claims"][0]["details"]
    assert any("numerics blew up" in line for line in details["traceback"])


def test_progress_is_quiet_unless_asked():
    from proofs.claim import RunConfig
    from proofs.progress import progress
    items = [1, 2, 3]
    assert progress(items, RunConfig(), "x") is items          # progress off: the iterable itself
    assert progress(items, None, "x") is items
    bar = progress(items, RunConfig(progress=True), "x")
    assert list(bar) == items and hasattr(bar, "set_postfix_str")  # a tqdm bar when asked


def test_json_dash_writes_the_document_alone_to_stdout():
    code, out, err = run(["verify", "demo", "--json", "-"])
    assert code == 0
    doc = json.loads(out)  # nothing but the JSON on stdout
    assert {c["id"] for c in doc["claims"]} == {"demo.true", "demo.false"}
    assert "demo.true" in err and not (Path("-").exists())
    code, out, _ = run(["audit", "demo", "--seeds", "2", "--json", "-"])
    assert code == 0 and json.loads(out)["seeds"] == [0, 1]


def _conditional_without_failure(cfg):
    from proofs import verdicts as V

    return V.to_result([V.compare("holds", 1.0, 1.0, tolerance=1e-9)], assumptions={"A": False})


def test_conditional_needs_evidence_of_the_failure():
    claims = {"demo.cond": claim("demo.cond", title="c", statement="s", expected="conditional",
                                 register=False)(_conditional_without_failure)}
    code, out, _ = run(["verify"], claims=claims)
    assert code == 1 and "conditional without evidence" in out


@pytest.mark.parametrize("argv", [["audit", "demo", "--seeds", "99999999999999999999"],
                                  ["verify", "demo", "--seed", str(2**64)]])
def test_huge_seed_arguments_are_one_line_errors(argv):
    code, _, err = run(argv)
    assert_one_line_error(code, err)


def test_audit_has_no_seed_option_and_no_abbreviations():
    """`audit --seed 5` would silently run seed 0 (or, abbreviated, 5 seeds): it is an error."""
    code, _, err = run(["audit", "demo", "--seeds", "1", "--seed", "5"])
    assert_one_line_error(code, err, "--seed")
