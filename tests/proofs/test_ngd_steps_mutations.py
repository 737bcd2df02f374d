"""Mutation tests of the ``ngd.steps.*`` claims: each single-point bug in the numerics must turn the
claim that targets it from ``verified`` into something else.

The mutants are made from the *real source text* of the numerics, in memory: the function's source is
read with :mod:`inspect`, one exact snippet is replaced (it must occur exactly once, so a refactor of
the numerics makes this test fail loudly instead of silently testing nothing), the function is
re-compiled in its module's namespace and monkeypatched in.  No file is edited.  The same snippets,
applied to a scratch copy of the source tree, make ``ngd-verify verify ngd.steps`` exit 1.

Table (bug -> mutated code -> claim that must catch it):

(a) damped block-diagonal dual system ``K_l + rho N I`` written ``K_l + rho I``          -> ngd.steps.damped
(b) damped block-pattern (tri-diagonal) dual system ``rho N I`` written ``rho I``          -> ngd.steps.damped
(c) damped unit-wise per-unit systems ``K_i + N rho I`` written ``K_i + rho I``            -> ngd.steps.damped
(d) K-FAC input factor Gram built from ``Z`` without its bias column                       -> ngd.steps.kfac_bias
(e) K-FAC test points not mapped by the Forster map (operator), and in train_ngd           -> ngd.steps.forster_test_points
(f) train_ngd's default learning rate not ``1/alpha``                                       -> ngd.steps.default_learning_rate
(g) unit-wise damped path: C > 1 dual vectors read in the wrong (output-major) order;
    the last unit of every hidden layer dropped by the chunking                                                   -> ngd.steps.damped
plus the exact (dual) NGD system ``rho N I`` written ``rho I``                              -> ngd.steps.damped
"""
import inspect
import sys
import textwrap

import pytest

from proofs.claim import RunConfig
from proofs.registry import get_claim, load_claims

load_claims()


def mutant(owner, attr: str, old: str, new: str):
    """``owner.attr`` re-compiled from its source with ``old`` replaced by ``new`` (exactly once)."""
    fn = inspect.unwrap(owner.__dict__[attr])
    src = textwrap.dedent(inspect.getsource(fn))
    assert src.count(old) == 1, f"{fn.__qualname__}: snippet {old!r} found {src.count(old)} times (source changed?)"
    namespace = dict(sys.modules[fn.__module__].__dict__)
    exec(compile(src, "<original>", "exec"), namespace)
    fresh = namespace[fn.__name__].__code__
    assert (fresh.co_names, fresh.co_varnames) == (fn.__code__.co_names, fn.__code__.co_varnames), (
        f"{fn.__qualname__}: the source on disk is not the code that was imported (file edited meanwhile?)")
    exec(compile(src.replace(old, new), f"<mutant of {fn.__qualname__}>", "exec"), namespace)
    return namespace[fn.__name__]


def locate(alternatives):
    """The first ``(owner, attr, old, new)`` whose function exists and contains ``old`` exactly once.

    Several spellings are listed where the numerics have been refactored (e.g. the unit-wise shift
    moved from ``_chunk_system`` into ``unit_shifts``); none matching fails the test loudly."""
    for owner, attr, old, new in alternatives:
        fn = owner.__dict__.get(attr)
        if fn is not None and textwrap.dedent(inspect.getsource(inspect.unwrap(fn))).count(old) == 1:
            return owner, attr, old, new
    raise AssertionError(f"no mutation site found among {[(getattr(o, '__name__', o), a, x) for o, a, x, _ in alternatives]}"
                         " -- the numerics changed: update the snippet")


def _targets():
    from numerics import forster, training
    from numerics.approximations import block_diagonal, exact, kfac, pattern, unit_wise

    BD = block_diagonal.BlockDiagonalApproximation
    PA = pattern.PatternApproximation
    UW = unit_wise.UnitWiseApproximation
    KF = kfac.KFACApproximation
    EX = exact.ExactApproximation
    return {
        "a_block_diagonal_rho_I": (BD, "_build_system", "K + self.damping * self.n_samples * eye",
                                   "K + self.damping * eye", "ngd.steps.damped"),
        "b_pattern_rho_I": (PA, "_build_system", "A[np.diag_indices_from(A)] += self.damping * self.n_samples",
                            "A[np.diag_indices_from(A)] += self.damping", "ngd.steps.damped"),
        "c_unit_wise_rho_I": ([(UW, "unit_shifts", "shift = self.n_samples * self.damping",
                                "shift = self.damping"),
                               (UW, "_chunk_system", "K[:, idx, idx] += self.n_samples * self.damping",
                                "K[:, idx, idx] += self.damping")], "ngd.steps.damped"),
        "d_kfac_input_factor_without_bias": (
            KF, "_prepare", "thin_gram(Z, self.rank_rtol, keep_all)",
            "thin_gram(Z[:, :Z.shape[1] - int(self.net.has_bias)], self.rank_rtol, keep_all)",
            "ngd.steps.kfac_bias"),
        "e_forster_test_points_not_mapped": (forster.ForsterResult, "transform",
                                             'return _normalise_rows(X2 @ self.linear_map, "X2 @ T")',
                                             'return _normalise_rows(X2, "X2 @ T")', "ngd.steps.forster_test_points"),
        "e_forster_test_points_not_normalised": (forster.ForsterResult, "transform",
                                                 'return _normalise_rows(X2 @ self.linear_map, "X2 @ T")',
                                                 "return X2 @ self.linear_map", "ngd.steps.forster_test_points"),
        "f_default_lr_one": (training, "train_ngd", "learning_rate = 1.0 / alpha", "learning_rate = 1.0",
                             "ngd.steps.default_learning_rate"),
        "f_default_lr_two_over_alpha": (training, "train_ngd", "learning_rate = 1.0 / alpha",
                                        "learning_rate = 2.0 / alpha", "ngd.steps.default_learning_rate"),
        "f_theory_alpha_ignores_forster": (training, "theory_alpha",
                                           'kwargs["forster"] = in_radial_isotropic_position(X)', "pass",
                                           "ngd.steps.default_learning_rate"),
        # C > 1 solves N-sized per-unit systems on the projected residual delta_i[n] . r_n: read r output-major
        "g_unit_wise_output_major_dual": (UW, "_projected_rhs", 'np.einsum("nci,nc->ni", D, r)',
                                          'np.einsum("nci,nc->ni", D, r.ravel().reshape(r.shape[1], r.shape[0]).T)',
                                          "ngd.steps.damped"),
        "g_unit_wise_chunk_drops_last_unit": (UW, "_chunks", "(a, min(m_l, a + size))",
                                              "(a, min(m_l - (m_l > 1), a + size))", "ngd.steps.damped"),
        "exact_dual_rho_I": (EX, "_prepare", "self.gram + self.damping * self.n_samples * np.eye(self.block_size)",
                             "self.gram + self.damping * np.eye(self.block_size)", "ngd.steps.damped"),
    }


def _normalised():
    """Every target as ``(alternatives, claim_id)``."""
    out = {}
    for name, entry in _targets().items():
        out[name] = (entry[0], entry[1]) if isinstance(entry[0], list) else ([tuple(entry[:4])], entry[4])
    return out


TARGETS = _normalised()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a mutant may compute with garbage (e.g. np.empty)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_source_mutant_is_caught(name, monkeypatch):
    alternatives, claim_id = TARGETS[name]
    owner, attr, old, new = locate(alternatives)
    monkeypatch.setattr(owner, attr, mutant(owner, attr, old, new))
    result = get_claim(claim_id).run(RunConfig(seed=0))
    assert result.verdict != "verified", f"{name} survived {claim_id}: {result.notes[:300]}"
    if result.verdict == "inconclusive":  # a crash is not a detection worth the name: say what happened
        assert "raised" not in result.notes, f"{name}: the claim crashed instead of measuring: {result.notes[:300]}"


def test_unmutated_recompiled_sources_still_verify(monkeypatch):
    """Control: the re-compilation itself changes nothing (identity 'mutation' of every target)."""
    by_claim, done = {}, set()
    sites = {name: locate(alternatives) for name, (alternatives, _) in TARGETS.items()}  # before any patching
    for name, (_alternatives, claim_id) in TARGETS.items():
        owner, attr, old, _new = sites[name]
        if (owner, attr) in done:  # one re-compilation per function (a recompiled one has no source file)
            continue
        done.add((owner, attr))
        monkeypatch.setattr(owner, attr, mutant(owner, attr, old, old))
        by_claim.setdefault(claim_id, []).append(name)
    for claim_id in sorted(by_claim):
        result = get_claim(claim_id).run(RunConfig(seed=0))
        assert result.verdict == "verified", (claim_id, result.notes[:300])
