"""Claim registry: loading every claim module, stable order, selection, import errors surfaced."""
import sys
import textwrap

import pytest

from proofs.claim import Claim, ClaimResult, claim
from proofs.registry import ClaimModuleError, get_claim, load_claims, ordered, select_claims


def make(claim_id, module="m"):
    c = claim(claim_id, title=claim_id, statement="x = x", register=False)(lambda cfg: ClaimResult("verified"))
    c.module = module
    return c


CLAIMS = [make("kfac.alpha"), make("kfac.forster"), make("exact.one_step"), make("bd.alpha"), make("kfacx.other")]


def ids(claims):
    return [c.id for c in claims]


def test_select_everything_when_no_pattern_keeps_order():
    assert ids(select_claims([], CLAIMS)) == ids(CLAIMS)


def test_select_exact_prefix_and_glob():
    assert ids(select_claims(["bd.alpha"], CLAIMS)) == ["bd.alpha"]
    # a topic prefix stops at the dot: "kfac" does not select "kfacx.other"
    assert ids(select_claims(["kfac"], CLAIMS)) == ["kfac.alpha", "kfac.forster"]
    assert ids(select_claims(["kfac."], CLAIMS)) == ["kfac.alpha", "kfac.forster"]
    assert ids(select_claims(["kfac*"], CLAIMS)) == ["kfac.alpha", "kfac.forster", "kfacx.other"]
    assert ids(select_claims(["*.alpha"], CLAIMS)) == ["kfac.alpha", "bd.alpha"]


def test_select_deduplicates_and_keeps_registry_order():
    assert ids(select_claims(["bd.alpha", "kfac.*", "kfac.alpha"], CLAIMS)) == ["kfac.alpha", "kfac.forster", "bd.alpha"]


def test_unknown_id_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown claim id 'kfac.alpah'.*kfac.alpha"):
        select_claims(["kfac.alpah"], CLAIMS)
    with pytest.raises(ValueError, match="known topics: bd, exact, kfac, kfacx"):
        select_claims(["zzz"], CLAIMS)
    with pytest.raises(ValueError, match="did you mean exact.one_step"):
        get_claim("exact.one_stp", CLAIMS)
    with pytest.raises(ValueError, match="non-empty"):
        select_claims([""], CLAIMS)


def test_get_claim_is_exact_and_accepts_mapping():
    assert get_claim("bd.alpha", {c.id: c for c in CLAIMS}).id == "bd.alpha"
    with pytest.raises(ValueError):
        get_claim("kfac", CLAIMS)  # a prefix is not an id here


def test_ordered_groups_by_module_then_definition_order():
    a1, b1, a2 = make("z.first", "mod_a"), make("a.second", "mod_b"), make("y.third", "mod_a")
    assert ids(ordered([b1, a1, a2])) == ["z.first", "y.third", "a.second"]
    assert ids(ordered([a1, b1, a2], module_order=["mod_b", "mod_a"])) == ["a.second", "z.first", "y.third"]


def test_load_claims_finds_the_sanity_claims_in_module_order():
    claims = load_claims()
    found = ids(claims)
    assert {"sanity.diagonal_fisher_isotropic", "sanity.pinv_product_rule"} <= set(found)
    assert all(isinstance(c, Claim) for c in claims)
    modules = [c.module for c in claims]
    assert modules == sorted(modules)  # proofs.claims.* modules in sorted order, contiguous
    assert load_claims() == claims  # stable across calls


def test_broken_claim_module_is_an_error_naming_it(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_claims_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a_good.py").write_text("X = 1\n")
    (pkg / "b_broken.py").write_text(textwrap.dedent("""
        import numpy
        raise ImportError("cannot import name 'frobnicate' from 'theory.nowhere'")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ClaimModuleError, match=r"fake_claims_pkg.b_broken failed to import: ImportError: "
                                                    r"cannot import name 'frobnicate'"):
            load_claims("fake_claims_pkg")
    finally:
        for name in [m for m in sys.modules if m.startswith("fake_claims_pkg")]:
            del sys.modules[name]


def test_non_claim_objects_are_rejected():
    with pytest.raises(TypeError, match="Claim objects"):
        select_claims([], ["not a claim"])
