"""Claims list typed assumptions and Claim.run checks them in code on the claim's own setting: a stated
assumption that fails there, or a relaxed one that holds, makes the evidence say nothing about the
statement (inconclusive, the Assumption object reported); a relaxed one that fails is reported as the
failed assumption of a conditional / refuted result."""
import json

import pytest

from proofs.claim import ClaimResult, RunConfig, claim
from proofs.registry import load_claims
from theory import assumptions as A
from theory.assumptions import Assumption, Relaxed, Setting

NARROW = Setting(n_samples=12, input_dim=16, hidden_widths=(6, 6))
WIDE = Setting(n_samples=8, input_dim=12, hidden_widths=(48, 48))


def _verified(cfg):
    return ClaimResult.from_error(predicted=1.0, measured=1.0, tolerance=1e-9)


def _run(assumptions, setting):
    return claim("demo.a", title="t", statement="s", assumptions=assumptions, setting=setting,
                 register=False)(_verified).run(RunConfig())


def test_assumptions_that_hold_leave_the_verdict_and_are_recorded():
    r = _run([A.STANDARD_RELU_NET, A.HIDDEN_WIDTH, A.INFINITE_WIDTH_DYNAMICS], WIDE)
    assert r.verdict == "verified" and r.failed_assumptions == [] and r.failed_assumption is None
    # recorded by name (True/False; an unknown predicate is not recorded)
    assert r.details["assumptions_checked"] == {"standard relu network": True, "hidden width >= N": True}


def test_a_stated_assumption_failing_on_the_claims_own_setting_is_inconclusive_and_named():
    r = _run([A.STANDARD_RELU_NET, A.HIDDEN_WIDTH], NARROW)
    assert r.verdict == "inconclusive"
    assert r.failed_assumptions == [A.HIDDEN_WIDTH] and r.failed_assumptions[0] is A.HIDDEN_WIDTH
    assert r.failed_assumption == A.HIDDEN_WIDTH.message  # a string (what JSON and the reports keep)
    assert "assumption 'hidden width >= N' fails on the claim's own setting" in r.notes
    assert json.loads(json.dumps({"failed_assumption": r.failed_assumption}))


def test_a_relaxed_assumption_must_fail_on_the_setting():
    relaxed = A.HIDDEN_WIDTH.relaxed("hidden width N/2 < N")
    r = _run([relaxed], NARROW)
    assert r.verdict == "verified" and r.failed_assumptions == [A.HIDDEN_WIDTH]
    assert r.failed_assumption == A.HIDDEN_WIDTH.message  # filled in when the check left it empty
    r = _run([relaxed], WIDE)
    assert r.verdict == "inconclusive" and "is said to be relaxed but holds" in r.notes

    def crashing(cfg):
        raise RuntimeError("boom")
    r = claim("demo.c", title="t", statement="s", assumptions=[relaxed], setting=NARROW,
              register=False)(crashing).run(RunConfig())
    # a crash keeps its own reason (cli prints failed_assumption first): the relaxed object is still reported
    assert r.verdict == "inconclusive" and r.failed_assumption is None and r.failed_assumptions == [A.HIDDEN_WIDTH]


def test_several_settings_fail_if_any_fails_and_callable_settings_get_the_config():
    seen = []

    def settings(cfg):
        seen.append(cfg.mode)
        return [WIDE, NARROW]
    r = _run([A.HIDDEN_WIDTH], settings)
    assert seen == ["quick"] and r.verdict == "inconclusive"
    assert _run([A.HIDDEN_WIDTH], [WIDE, WIDE]).verdict == "verified"


def test_no_setting_checks_nothing_and_a_broken_setting_is_not_a_pass():
    assert _run([A.HIDDEN_WIDTH], None).details.get("assumptions_checked") is None

    def broken(cfg):
        raise KeyError("n")
    r = _run([A.HIDDEN_WIDTH], broken)
    assert r.verdict == "inconclusive" and "assumption checks raised KeyError" in r.notes


def test_strings_become_catalogue_objects_or_stated_assumptions():
    c = claim("demo.s", title="t", statement="s", assumptions=["C = 1", "the sky is blue"], register=False)(_verified)
    assert c.assumptions[0] is A.SINGLE_OUTPUT
    assert isinstance(c.assumptions[1], Assumption) and str(c.assumptions[1]) == "the sky is blue"
    with pytest.raises(TypeError, match="assumptions='C = 1'"):
        claim("demo.t", title="t", statement="s", assumptions="C = 1", register=False)(_verified)


# ----------------------------------------------------------------------------- the registered claims
CLAIMS = load_claims()


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_every_claim_setting_satisfies_its_stated_assumptions_and_violates_its_relaxed_ones(mode):
    checked = 0
    for c in CLAIMS:
        for a, holds in c.check_assumptions(RunConfig(mode=mode)):
            checked += holds is not None
            if isinstance(a, Relaxed):
                assert holds is not True, (c.id, a.name)
            else:
                assert holds is not False, (c.id, a.name)
    assert checked >= 60  # most claims check several assumptions in code


def test_most_claims_provide_a_setting_and_use_catalogue_objects():
    with_setting = [c.id for c in CLAIMS if c.setting is not None]
    assert len(with_setting) >= 24, with_setting
    typed = [a for c in CLAIMS for a in c.assumptions
             if (a.assumption if isinstance(a, Relaxed) else a) in A.CATALOGUE.values()]
    assert len(typed) >= 80
    # the deliberately relaxed ones
    relaxed = {c.id: a.assumption for c in CLAIMS for a in c.assumptions if isinstance(a, Relaxed)}
    assert relaxed["ngd.unit_wise.multi_output"] is A.SINGLE_OUTPUT
    assert relaxed["ngd.kfac.no_forster"] is A.KFAC_INPUTS
    assert relaxed["ngd.width_below_n"] is A.FULL_ROW_RANK_JACOBIANS
