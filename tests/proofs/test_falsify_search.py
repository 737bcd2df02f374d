"""``ngd-verify falsify`` as a hypothesis search: finds and shrinks the known counterexamples, finds
none where the theory says none exist, is seed-deterministic, replays a kept database, and falls
back to the claims' own falsifier draws."""
import io
import re

import pytest
from hypothesis import strategies as st

from proofs import cli
from proofs import assumption_spaces as spaces
from proofs.assumption_spaces import AssumptionSpace, Outcome
from proofs.claim import RunConfig, claim
from proofs.falsify import falsify, format_outcome
from proofs.registry import get_claim


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def untimed(text):
    return re.sub(r"[0-9.]+ s\b", "", text)


def test_kfac_relaxing_m0_ge_n_finds_the_minimal_counterexample():
    code, out, err = run(["falsify", "ngd.kfac.alpha_definition", "--relax", "M_0 >= N", "--max-examples", "40"])
    assert code == 1, out + err
    assert "minimal counterexample (shrunk)" in out and "relaxed assumption: M_0 >= N" in out
    # the relaxed space draws N >= 4 and 3 <= M_0 < N: the minimal example is depth 2, M_0 = 3, N = 4
    assert "depth 2, widths [3, 12, 1]" in out and "N = 4" in out, out
    assert "verifier flagged: theory: M_0 >= N or Forster inputs" in out
    m = re.search(r"measured = ([0-9.]+)\s+predicted = ([0-9.]+)", out)
    assert m and float(m.group(1)) != float(m.group(2))  # alpha is N(L-1)+1 = 5, measured 4 (layer 1: rank 3)


def test_block_tridiagonal_relaxing_nothing_finds_none():
    code, out, _ = run(["falsify", "ngd.block_tridiagonal.alpha", "--max-examples", "30"])
    assert code == 0 and "relaxing: none" in out and "no counterexample in 30 examples" in out, out


def test_refuted_statement_is_falsified_within_its_own_assumptions():
    code, out, _ = run(["falsify", "ngd.kfac.no_forster", "--max-examples", "20"])
    assert code == 1 and "none: the statement fails within its own assumptions" in out


def test_same_seed_same_search_different_relaxation_names_checked():
    a = run(["falsify", "ngd.unit_wise.tanh_exact", "--relax", "C = 1", "--seed", "3", "--max-examples", "20"])
    b = run(["falsify", "ngd.unit_wise.tanh_exact", "--relax", "C = 1", "--seed", "3", "--max-examples", "20"])
    assert a[0] == b[0] == 1 and untimed(a[1]) == untimed(b[1])
    assert "widths [2, 12, 2]" in a[1]  # shrunk: depth 2, N = 2, C = 2, hidden 2 N C + 4 = 12
    code, _, err = run(["falsify", "ngd.unit_wise.tanh_exact", "--relax", "nonsense"])
    assert code == 2 and "--relax 'nonsense' is not a relaxation of ngd.unit_wise.tanh_exact" in err
    assert "'C = 1'" in err and "'none'" in err


def test_database_directory_keeps_and_replays_the_counterexample(tmp_path):
    db = tmp_path / "db"
    argv = ["falsify", "ngd.block_diagonal", "--relax", "hidden width >= N", "--database", str(db),
            "--max-examples", "20", "--seed", "1"]
    code1, out1, _ = run(argv)
    assert code1 == 1 and db.is_dir() and any(db.rglob("*"))
    code2, out2, _ = run(argv[:-1] + ["7"])  # another seed: the kept example is replayed first
    assert code2 == 1 and "[replayed from the database]" in out2
    example = re.search(r"example: (.*)", out1).group(1)
    assert example + " [replayed from the database]" == re.search(r"example: (.*)", out2).group(1)
    (tmp_path / "file").write_text("x")
    code, _, err = run(argv[:4] + ["--database", str(tmp_path / "file")])
    assert code == 2 and "is not a directory" in err


def test_time_budget_stops_the_search():
    code, out, _ = run(["falsify", "ngd.block_diagonal", "--relax", "hidden width >= N", "--max-seconds", "1e-9"])
    assert code == 0 and "time budget reached" in out


def test_claims_without_a_space_fall_back_to_their_draws():
    assert spaces.space_for("sanity.pinv_product_rule_invertible") is None
    code, out, _ = run(["falsify", "sanity.pinv_product_rule_invertible", "--relax", "B invertible"])
    assert code == 1 and "counterexample at draw" in out


@pytest.fixture
def fake_space(monkeypatch):
    demo = claim("demo.shrink", title="t", statement="x < 7", register=False)(lambda cfg: None)
    space = AssumptionSpace("demo.shrink", "x < 7", st.integers(0, 1000),
                            lambda x: Outcome(x < 7, float(x), 7.0, None, None, ["demo: x >= 7"] if x >= 20 else []),
                            relaxed={"x small": st.integers(0, 1000)})
    monkeypatch.setitem(spaces.SPACES, "demo.shrink", space)
    return demo


def test_shrinks_to_the_boundary_and_marks_silent_failures(fake_space):
    out = falsify(fake_space, RunConfig(seed=0), max_examples=100, relax=["x small"])
    assert out.search == "hypothesis" and out.counterexample is not None
    text = format_outcome(out)
    assert "example: 7" in text  # shrunk from a random draw to the smallest failing integer
    assert "SILENT failure" in text  # x = 7 fails and no check fired


def test_hypothesis_search_requires_a_space():
    with pytest.raises(ValueError, match="has no hypothesis search space"):
        falsify(get_claim("ngd.lemmas", None), search="hypothesis")


def test_list_names_the_relaxations():
    code, out, _ = run(["list", "ngd.kfac.alpha_definition"])
    assert code == 0 and "falsify: hypothesis search; --relax 'none', 'M_0 >= N', 'hidden width >= N'" in out


def test_a_search_whose_every_example_is_flagged_is_reported_not_passed(monkeypatch):
    demo = claim("demo.flagged", title="t", statement="s", register=False)(lambda cfg: None)
    space = AssumptionSpace("demo.flagged", "s", st.integers(0, 10),
                            lambda x: Outcome(True, flags=["numerics: layer Gram singular"]))
    monkeypatch.setitem(spaces.SPACES, "demo.flagged", space)
    out = falsify(demo, RunConfig(), max_examples=10)
    assert out.counterexample is None and out.error and "the search says nothing" in out.error
    assert "stopped after" in format_outcome(out)


def test_a_crashing_check_is_shrunk_and_reported_as_an_error(monkeypatch):
    demo = claim("demo.crash", title="t", statement="s", register=False)(lambda cfg: None)

    def check(x):
        if x >= 5:
            raise ZeroDivisionError("boom")
        return Outcome(True)
    monkeypatch.setitem(spaces.SPACES, "demo.crash", AssumptionSpace("demo.crash", "s", st.integers(0, 100), check))
    out = falsify(demo, RunConfig(seed=2), max_examples=50)
    assert out.counterexample is None and "raised ZeroDivisionError: boom on (minimal example) 5" in out.error
    code, text, _ = (lambda o: (2 if o.error else 0, format_outcome(o), ""))(out)
    assert code == 2 and "stopped after" in text
