"""ngd.finite_width_exactness: a draw violating the rank premise is rejected, redrawn and reported,
never a silent refutation; with one draw allowed it is `conditional` with the failed assumption named.

Seed 8 (quick mode) is the regression: its K-FAC, L = 5, relu, width 3N = 30 draw has
rank(Delta_4) = 9 < N C = 10 (inputs sharing the relu activation pattern of layer 4) and used to
come out `refuted` (measured alpha 40 vs 41) with no assumption named.
"""
from proofs.claim import REGISTRY, RunConfig
from proofs.claims import ngd_general

CASE = "kfac, L=5, relu, width 30"


def test_seed_8_rank_deficient_draw_is_redrawn_and_reported():
    result = REGISTRY["ngd.finite_width_exactness"].run(RunConfig(seed=8))
    assert result.verdict == "verified", result.notes
    rejected = result.details["rejected_draws"]
    assert list(rejected) == [CASE]
    first = rejected[CASE][0]
    assert first["failed_assumption"].startswith("layer 4: rank(Delta_4) = 9 < N C = 10")
    assert abs(first["alpha_measured"] - 41) > 0.5          # the premise mattered on that draw
    case = result.details["cases"][CASE]
    assert case["draws_rejected"] == 1 and abs(case["alpha_measured"] - 41) < 41e-9
    assert "1 draw(s) rejected" in result.notes


def test_seed_8_with_a_single_draw_is_conditional_with_the_assumption_named(monkeypatch):
    monkeypatch.setattr(ngd_general, "MAX_DRAWS", 1)
    result = REGISTRY["ngd.finite_width_exactness"].run(RunConfig(seed=8))
    assert result.verdict == "conditional", result.notes
    assert ngd_general.RANK_ASSUMPTION in result.failed_assumption
    assert "rank(Delta_4) = 9 < N C = 10" in result.failed_assumption


# ---------------------------------------------------------------------------------------------
# the falsifier finds the relu rank failure and the verifier's check fires (never SILENT)
# ---------------------------------------------------------------------------------------------
from proofs.falsify import falsify, format_outcome, spaces  # noqa: E402
from theory.assumptions import KFAC_RANK  # noqa: E402

KFAC_RANK_ASSUMPTION = KFAC_RANK.name
SPACES = spaces()


def _search(claim_id, seed=0):
    from proofs.registry import get_claim

    return falsify(get_claim(claim_id, None), RunConfig(seed=seed), max_examples=20, relax=[KFAC_RANK_ASSUMPTION],
                   max_seconds=60)


def test_falsifier_finds_relu_rank_failure_at_width_3n_and_the_check_fires():
    out = _search("ngd.finite_width_exactness")
    ex = out.counterexample
    assert ex is not None, format_outcome(out)
    assert ex.relaxed == KFAC_RANK_ASSUMPTION
    assert ex.description.startswith("kfac:") and "relu" in ex.description
    n = int(ex.description.split("N = ")[1].split()[0])
    widths = [int(w) for w in ex.description.split("widths [")[1].split("]")[0].split(", ")]
    assert all(w >= 3 * n for w in widths[1:-1])                 # every dimension condition holds
    assert ex.numbers["error"] > 1e-3                               # a real failure of N(L-1)+1
    assert ex.numbers["flagged"].startswith("numerics: layer") and "rank(Delta_" in ex.numbers["flagged"]
    assert any(f.violates(KFAC_RANK) and f.code == "rank_deficient" for f in ex.flags)  # the typed flag
    text = format_outcome(out)
    assert "SILENT" not in text and "verifier flagged: numerics: layer" in text
    again = _search("ngd.finite_width_exactness")                  # deterministic for a seed
    assert again.counterexample.description == ex.description


def test_kfac_alpha_definition_space_has_the_same_relaxation():
    assert KFAC_RANK_ASSUMPTION in SPACES["ngd.kfac.alpha_definition"].relaxed
    out = _search("ngd.kfac.alpha_definition")
    assert out.counterexample is not None and "rank(Delta_" in out.counterexample.numbers["flagged"]
