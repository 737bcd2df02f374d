"""``ngd-verify falsify`` as a hypothesis search (the only engine): finds and shrinks the known
counterexamples, finds none where the theory says none exist, is seed-deterministic, replays a kept
database, reaches every claim with a search space (the spaces sit next to their claims) and says
in one line when a claim has none."""
import io
import re

import pytest
from hypothesis import strategies as st

from proofs import cli
from proofs.assumption_spaces import AssumptionSpace, Outcome
from proofs.claim import RunConfig, claim
from proofs.falsify import falsify, format_outcome, spaces
from proofs.registry import get_claim
from theory.assumptions import Assumption, Flag


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


def test_the_counterexample_carries_the_relaxed_assumption_and_typed_flags():
    from theory.assumptions import INPUT_WIDTH, KFAC_INPUTS

    out = falsify(get_claim("ngd.kfac.alpha_definition", None), RunConfig(), max_examples=10, relax=INPUT_WIDTH)
    ex = out.counterexample
    assert ex is not None and ex.relaxed == "M_0 >= N" and ex.relaxed_assumption is INPUT_WIDTH
    assert any(f.violates(KFAC_INPUTS) for f in ex.flags)  # theory and numerics name the K-FAC input condition


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


#: the claims whose falsifier draws the CLI could not reach before the single engine (plus the one it could)
FORMERLY_DRAWS = {"ngd.kfac.alpha_definition": ["M_0 >= N"], "ngd.kfac.forster": ["Forster inputs"],
                  "ngd.block_diagonal": ["hidden width >= N"], "ngd.block_tridiagonal.alpha": ["hidden width >= N"],
                  "ngd.unit_wise.tanh_exact": ["C = 1", "M_0 >= N"], "sanity.diagonal_fisher_isotropic": [],
                  "sanity.pinv_product_rule": ["B invertible"], "sanity.pinv_product_rule_invertible": ["B invertible"]}


@pytest.mark.parametrize("claim_id", sorted(FORMERLY_DRAWS))
def test_formerly_draw_based_claims_have_spaces_with_the_same_relaxations(claim_id):
    space = get_claim(claim_id, None).space
    assert space is not None and space.claim_id == claim_id
    assert set(FORMERLY_DRAWS[claim_id]) <= set(space.relaxed)


def test_pinv_invertible_is_falsified_only_when_b_invertible_is_relaxed():
    code, out, _ = run(["falsify", "sanity.pinv_product_rule_invertible", "--relax", "B invertible",
                        "--max-examples", "20"])
    assert code == 1 and "relaxed assumption: B invertible" in out and "minimal counterexample (shrunk)" in out
    assert "rank check: B has rank 1 < 2" in out  # shrunk to the smallest singular B
    code, out, _ = run(["falsify", "sanity.pinv_product_rule_invertible", "--max-examples", "30"])
    assert code == 0 and "no counterexample in 30 examples" in out


def test_claim_without_a_space_is_one_line_exit_2_naming_those_with_one():
    code, out, err = run(["falsify", "ngd.lemmas"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "'ngd.lemmas' has no falsify search space" in err and "ngd.kfac.alpha_definition" in err
    assert set(spaces()) >= set(FORMERLY_DRAWS)


DEMO_FLAG = Assumption("x < 20", "x < 20")


@pytest.fixture
def fake_space():
    space = AssumptionSpace("x < 7", st.integers(0, 1000),
                            lambda x: Outcome(x < 7, float(x), 7.0, None, None,
                                              [Flag("demo_large", "demo: x >= 20", DEMO_FLAG)] if x >= 20 else []),
                            relaxed={Assumption("x small", "x is small"): st.integers(0, 1000)})
    return claim("demo.shrink", title="t", statement="x < 7", register=False, space=space)(lambda cfg: None)


def test_shrinks_to_the_boundary_and_marks_silent_failures(fake_space):
    out = falsify(fake_space, RunConfig(seed=0), max_examples=100, relax=["x small"])
    assert out.search == "hypothesis" and out.counterexample is not None
    text = format_outcome(out)
    assert "example: 7" in text  # shrunk from a random draw to the smallest failing integer
    assert "SILENT failure" in text  # x = 7 fails and no check fired


def test_search_requires_a_space():
    with pytest.raises(ValueError, match="has no falsify search space; claims with one: .*ngd.patterns"):
        falsify(get_claim("ngd.lemmas", None))


def test_list_names_the_relaxations():
    code, out, _ = run(["list", "ngd.kfac.alpha_definition"])
    assert code == 0 and "falsify: hypothesis search; --relax 'none', 'M_0 >= N', 'hidden width >= N'" in out


def test_a_search_whose_every_example_is_flagged_is_reported_not_passed():
    space = AssumptionSpace("s", st.integers(0, 10),
                            lambda x: Outcome(True, flags=[Flag("layer_gram_singular", "numerics: layer Gram singular")]))
    demo = claim("demo.flagged", title="t", statement="s", register=False, space=space)(lambda cfg: None)
    out = falsify(demo, RunConfig(), max_examples=10)
    # not a counterexample, not an internal error (exit 3): an inconclusive search, said so
    assert out.counterexample is None and out.error is None
    assert out.inconclusive and "the search says nothing" in out.inconclusive
    assert "inconclusive after 10 examples" in format_outcome(out)


def test_every_example_rejected_exits_0_with_inconclusive_not_3():
    space = AssumptionSpace("s", st.integers(0, 10),
                            lambda x: Outcome(True, flags=[Flag("layer_gram_singular", "numerics: layer Gram singular")]))
    demo = claim("demo.flagged_cli", title="t", statement="s", register=False, space=space)(lambda cfg: None)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["falsify", "demo.flagged_cli", "--max-examples", "5"], claims=[demo], out=out, err=err)
    out, err = out.getvalue(), err.getvalue()
    assert code == 0 and "inconclusive after 5 examples" in out, out + err


def test_relaxing_width_rejects_a_silent_input_and_finds_a_width_only_counterexample():
    """widths [3, 2, 1] at N = 3: data seed 0 has an input on which both layer-1 relu units are inactive
    (a silent input: "no silent inputs" fails, not the width); the search must move on to an example
    whose only numerics finding is the width (P_2 = 2 < N C = 3)."""
    from theory.assumptions import HIDDEN_WIDTH, NO_SILENT_INPUTS

    out = falsify(get_claim("ngd.block_tridiagonal.alpha", None), RunConfig(), max_examples=30, relax=HIDDEN_WIDTH)
    ex = out.counterexample
    assert ex is not None and out.rejected >= 1 and "silent" not in " ".join(f.message for f in ex.flags)
    assert all(f.explained_by(HIDDEN_WIDTH) for f in ex.flags if f.attributed), [f.to_dict() for f in ex.flags]
    assert not any(NO_SILENT_INPUTS in f.causes for f in ex.flags)
    assert "found at example" in format_outcome(out)


def test_relaxing_phi_prime_finds_the_relu_counterexample_to_tanh_exactness():
    """Dead relu units are a consequence of phi' = 0 on an interval: relaxing "phi' != 0 almost
    everywhere" must not reject every example for its dead units (it did: exit 3)."""
    code, out, err = run(["falsify", "ngd.unit_wise.tanh_exact", "--relax", "phi' != 0 almost everywhere",
                          "--max-examples", "20"])
    assert code == 1 and "relu" in out and "minimal counterexample" in out, out + err


def test_relaxing_dead_units_finds_a_counterexample():
    """Every dead-unit finding is attributed to "no dead relu units" (Flag.causes), whatever assumption
    the approximation's own flag names (NTK positive definite, layer Jacobians of full row rank)."""
    code, out, err = run(["falsify", "ngd.block_diagonal", "--relax", "no dead relu units", "--max-examples", "30"])
    assert code == 1 and "relaxed assumption: no dead relu units" in out and "dead" in out, out + err


def test_a_crashing_check_is_shrunk_and_reported_as_an_error():
    def check(x):
        if x >= 5:
            raise ZeroDivisionError("boom")
        return Outcome(True)
    demo = claim("demo.crash", title="t", statement="s", register=False,
                 space=AssumptionSpace("s", st.integers(0, 100), check))(lambda cfg: None)
    out = falsify(demo, RunConfig(seed=2), max_examples=50)
    assert out.counterexample is None and "raised ZeroDivisionError: boom on (minimal example) 5" in out.error
    code, text, _ = (lambda o: (2 if o.error else 0, format_outcome(o), ""))(out)
    assert code == 2 and "stopped after" in text


def test_relaxed_search_rejects_examples_that_break_another_assumption():
    """Relaxing A searches "the claim without A": an example the verifier flags for a different, non-relaxed
    assumption (one that does not stem from A) is outside that space, not a counterexample.  Issue 13's case:
    exact NGD with 'hidden width >= N' relaxed found widths [3, 2, 1] whose NTK is singular because every
    layer-1 relu unit is inactive on one input -- 'NTK positive definite' failing, not the width."""
    from proofs.falsify import falsify_hypothesis
    from theory.assumptions import DISTINCT_INPUTS, HIDDEN_WIDTH, KFAC_INPUTS, NTK_POSITIVE_DEFINITE, INPUT_WIDTH

    assert KFAC_INPUTS.stems_from(INPUT_WIDTH) and NTK_POSITIVE_DEFINITE.stems_from(DISTINCT_INPUTS)
    assert not NTK_POSITIVE_DEFINITE.stems_from(HIDDEN_WIDTH)

    def check(x):
        if x % 2:      # odd: breaks an assumption the search did not relax
            return Outcome(False, flags=[Flag("silent_inputs", "NTK singular", NTK_POSITIVE_DEFINITE)])
        if x >= 6:     # even and large: a genuine consequence of the relaxation
            return Outcome(False, flags=[Flag("rank", "Z_1 rank deficient", KFAC_INPUTS)])
        return Outcome(True)

    space = AssumptionSpace("toy", st.just(0), check, relaxed={INPUT_WIDTH: st.integers(0, 40),
                                                               HIDDEN_WIDTH: st.integers(0, 40)})
    found = falsify_hypothesis("toy", space, RunConfig(seed=1), max_examples=60, relax=["M_0 >= N"])
    assert found.counterexample is not None and found.rejected > 0
    assert "6" in found.counterexample.description   # shrunk to the smallest even x >= 6, odd ones rejected
    # relaxing the width: the rank flag does not stem from it either, so nothing is a counterexample
    none = falsify_hypothesis("toy", space, RunConfig(seed=1), max_examples=60, relax=["hidden width >= N"])
    assert none.counterexample is None


def test_exact_one_step_relaxing_the_width_is_not_falsified_by_a_silent_input():
    code, out, _ = run(["falsify", "ngd.exact.one_step", "--relax", "hidden width >= N", "--max-examples", "30"])
    # exact NGD is isotropic whenever the NTK is positive definite: no counterexample, the silent-input draws
    # are rejected (and said so)
    assert code == 0 and "no counterexample" in out and "rejected" in out, out


def test_relaxing_input_width_is_not_blocked_by_an_infinite_condition_bound():
    """tanh, widths [3, 12, 1], N = 4: Z_1 Z_1^T is singular by construction (M_0 < N); the unit-block
    condition bound used its infinite condition number and flagged "ill-conditioned unit blocks" on every
    example, so the search was inconclusive.  On the kept range the blocks are fine: a counterexample."""
    code, out, err = run(["falsify", "ngd.unit_wise.tanh_exact", "--relax", "M_0 >= N", "--max-examples", "30"])
    assert code == 1 and "relaxed assumption: M_0 >= N" in out and "ill-conditioned unit blocks" not in out, out + err


def test_an_inconclusive_relaxation_does_not_stop_the_next_one():
    """Relaxation A's every example is flagged (by an assumption that does not stem from A); relaxation B
    has a counterexample.  Both orders must report B's counterexample (A first used to stop the search)."""
    other = Assumption("other", "another assumption")
    a, b = Assumption("A", "a"), Assumption("B", "b")

    def check(x):
        if x < 0:          # A's examples: flagged by "other", outside A's relaxed space
            return Outcome(False, flags=[Flag("other_fails", "other fails", other)])
        return Outcome(x < 5)

    space = AssumptionSpace("x < 5", st.integers(0, 4), check, relaxed={a: st.integers(-10, -1), b: st.integers(0, 10)})
    demo = claim("demo.order", title="t", statement="s", register=False, space=space)(lambda cfg: None)
    for order in (["A", "B"], ["B", "A"]):
        out = falsify(demo, RunConfig(), max_examples=15, relax=order)
        assert out.counterexample is not None and out.counterexample.relaxation == "B", (order, format_outcome(out))
    out = falsify(demo, RunConfig(), max_examples=15, relax=["A"])
    assert out.counterexample is None and out.inconclusive and "relaxation 'A'" in out.inconclusive


def test_shards_do_not_repeat_the_minimal_example():
    """Hypothesis checks the minimal example first whatever its seed; shards after the first skip it, so
    20 shards of one example each check 20 different scenarios and find the width counterexample."""
    from proofs.falsify import falsify as run_falsify

    out = run_falsify(get_claim("ngd.block_diagonal", None), RunConfig(), max_examples=20, relax=["hidden width >= N"],
                      shards=20)
    assert out.counterexample is not None, format_outcome(out)
