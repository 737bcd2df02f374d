"""proofs.strategies: scenarios respect the size relations they promise, data recipes do what
they say, builds are deterministic, and shrinking reaches the smallest structure."""
import numpy as np
import pytest
from hypothesis import find, given, settings  # noqa: F401
from hypothesis import strategies as st

from proofs.hypothesis_profiles import examples
from proofs.strategies import (MAX_WIDTH, Scenario, architectures, block_patterns, datasets, depths_mod3,
                               scenarios)

FAST = settings(max_examples=examples(30), deadline=None)


@FAST
@given(scenarios("kfac", depth=st.integers(1, 6), n=st.integers(2, 12), n_outputs=st.integers(1, 2)))
def test_wide_scenarios_have_hidden_widths_at_least_2nc_and_input_dim_at_least_n(s):
    assert all(min(MAX_WIDTH, 2 * s.n_samples * s.n_outputs + 4) <= m <= MAX_WIDTH for m in s.hidden_widths)
    assert s.input_dim >= s.n_samples and s.depth == len(s.widths) - 1


@FAST
@given(scenarios("block_diagonal", depth=st.integers(2, 6), hidden="narrow", input_dim="narrow", n=st.integers(4, 12)))
def test_narrow_scenarios_break_exactly_the_promised_bounds(s):
    assert 1 <= s.hidden_widths[-1] < s.n_samples        # the output layer's Gram is rank-deficient
    assert 3 <= s.input_dim < s.n_samples                 # M_0 < N, at least 3 directions


@FAST
@given(datasets(kind=st.sampled_from(("sphere", "raw", "duplicate", "near_duplicate", "positive"))))
def test_data_recipes(d):
    X, recipe = d
    norms = np.linalg.norm(X, axis=1)
    kind = recipe["inputs"]
    assert X.shape == (recipe["n_samples"], recipe["input_dim"]) and np.all(np.isfinite(X))
    if kind == "raw":
        assert np.all((norms >= 0.3) & (norms <= 3.0))
    else:  # unit norm up to the 1e-13 nudge of the near-duplicate
        assert np.allclose(norms, 1.0, atol=1e-12)
    if kind == "duplicate":
        assert np.array_equal(X[-1], X[0])
    if kind == "near_duplicate":
        assert 0 < np.linalg.norm(X[-1] - X[0]) <= 2e-13
    if kind == "positive":
        assert np.all(X >= 0)


@FAST
@given(scenarios("unit_wise", inputs=st.just("positive"), dead_units=st.integers(1, 4)))
def test_dead_units_are_dead_relu_units_on_every_input(s):
    net = s.build_network()
    X = s.build_inputs()
    u1 = net.factors(X).Z[1][:, :-1] if net.has_bias else net.factors(X).Z[1]
    # h_1 = relu(u_1) is exactly 0 for the dead units on every input (layer 2's input columns)
    assert np.all(u1[:, :s.dead_units] == 0.0)
    delta = net.factors(X).Delta[0]
    assert np.all(delta[:, :, :s.dead_units] == 0.0)


@FAST
@given(scenarios(st.sampled_from(("exact", "kfac")), inputs=st.sampled_from(("sphere", "raw", "duplicate"))))
def test_builds_are_deterministic_from_the_fields(s):
    a, b = s.with_(), s.with_()
    assert np.array_equal(a.build_inputs(), b.build_inputs())
    for p, q in zip(a.build_network().params, b.build_network().params):
        assert np.array_equal(p, q)
    assert f"widths {list(s.widths)}" in s.describe() and f"N = {s.n_samples}" in s.describe()
    other = s.with_(weight_seed=s.weight_seed + 1)
    assert not np.array_equal(other.build_network().params[0], a.build_network().params[0])


@FAST
@given(st.integers(2, 6).flatmap(lambda L: block_patterns(L, one_in_range=True)))
def test_block_patterns_are_symmetric_01_with_unit_diagonal_and_1_in_range(S):
    from theory.patterns import analyze_pattern

    A = np.array(S)
    assert np.array_equal(A, A.T) and set(np.unique(A)) <= {0, 1} and np.all(np.diag(A) == 1)
    assert analyze_pattern(A.tolist()).one_in_range


@FAST
@given(architectures(depth=st.integers(1, 5), width_extra=st.integers(0, 200), n_outputs=st.integers(1, 3),
                     activation=st.sampled_from(("relu", "tanh")), bias=st.booleans()))
def test_architectures_stay_in_bounds(arch):
    widths, activation, sigma_b2 = arch
    assert 2 <= len(widths) <= 6 and all(1 <= w <= MAX_WIDTH for w in widths[1:-1])
    assert activation in ("relu", "tanh") and sigma_b2 in (0.0, 1.0)


@FAST
@given(st.integers(0, 2).flatmap(lambda r: st.tuples(st.just(r), depths_mod3(r, 2, 9))))
def test_depths_mod3_stay_in_their_class(pair):
    r, L = pair
    assert L % 3 == r and 2 <= L <= 9


def test_shrinking_reaches_the_smallest_structure():
    # the minimal scenario with depth >= 4 and N >= 5: depth exactly 4, N exactly 5, hidden widths
    # at their lower bound 2 N + 4, input dimension N, seeds 0
    s = find(scenarios("exact", depth=st.integers(2, 6), n=st.integers(2, 12)),
             lambda s: s.depth >= 4 and s.n_samples >= 5, settings=settings(database=None, max_examples=500))
    assert s.depth == 4 and s.n_samples == 5 and s.hidden_widths == (14, 14, 14) and s.input_dim == 5
    assert s.data_seed == 0 and s.weight_seed == 0
    assert s == Scenario("exact", (5, 14, 14, 14, 1), 5)


def test_profiles_registered_and_env_selects_them(monkeypatch):
    import pytest
    from hypothesis import settings as hs

    from proofs.hypothesis_profiles import example_database, load_for_tests

    previous = hs.get_current_profile_name()
    try:
        monkeypatch.setenv("NGD_HYPOTHESIS_PROFILE", "thorough")
        assert load_for_tests() == "thorough" and hs.default.max_examples == 500 and examples(3) == 15
        monkeypatch.setenv("NGD_HYPOTHESIS_PROFILE", "ci")
        assert load_for_tests() == "ci" and hs.default.derandomize and hs.default.database is None
        assert examples(3) == 3
        monkeypatch.setenv("NGD_HYPOTHESIS_PROFILE", "nightly")
        with pytest.raises(ValueError, match="allowed: ci, dev, thorough"):
            load_for_tests()
    finally:
        hs.load_profile(previous)
    assert example_database(None) is None


def test_example_database_is_a_directory(tmp_path):
    import pytest

    from proofs.hypothesis_profiles import example_database

    db = example_database(tmp_path / "kept")
    db.save(b"key", b"value")
    assert list(db.fetch(b"key")) == [b"value"] and (tmp_path / "kept").is_dir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        example_database(tmp_path / "f")


def test_assumption_set_delegates_to_the_claim_spaces():
    import pytest

    from proofs.strategies import assumption_set

    s = find(assumption_set("ngd.kfac.forster"), lambda s: True, settings=settings(database=None))
    assert s.inputs == "forster" and s.input_dim < s.n_samples
    with pytest.raises(ValueError, match="has no assumption space"):
        assumption_set("nonsense.claim")
    with pytest.raises(ValueError, match="allowed: 'none', 'Forster inputs'"):
        assumption_set("ngd.kfac.forster", "C = 1")


@pytest.mark.parametrize("module", ["proofs.strategies", "proofs.assumption_spaces", "proofs.falsify",
                                    "proofs.hypothesis_profiles", "proofs.claim", "proofs.verdicts", "proofs.evidence",
                                    "proofs.report", "proofs.figures", "proofs.registry", "proofs.experiments.digits",
                                    "proofs.claims.ngd_unit_wise", "proofs.claims.sanity"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
