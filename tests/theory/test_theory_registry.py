"""theory.registry: one entry per approximation, found by pkgutil, looked up by isotropy_constant."""
import numpy as np
import pytest
import sympy as sp

from theory import registry
from theory.isotropy import NotIsotropic, isotropy_constant, isotropy_result


def test_every_numerics_approximation_has_a_theory_entry_and_a_label():
    from numerics.approximations import registered_names

    names = set(registry.theory_names())
    assert set(registered_names()) <= names
    for name in names:
        entry = registry.theory_entry(name)
        assert entry.name == name and entry.label and entry.module.startswith("theory.approximations.")
    assert registry.approximation_label("kfac") == "K-FAC"
    assert registry.approximation_label("not-registered") == "not-registered"


def test_registering_a_name_twice_from_another_module_is_an_error():
    def derive(setting):  # pragma: no cover - never called
        raise AssertionError
    derive.__module__ = "somewhere.else"
    with pytest.raises(ValueError, match="registered twice in theory"):
        registry.register_theory("exact", label="x")(derive)
    assert registry.theory_entry("exact").module == "theory.approximations.exact"
    with pytest.raises(ValueError, match="name='not an id' is not allowed"):
        registry.register_theory("not an id", label="x")


def test_isotropy_constant_is_a_lookup_with_the_derived_values():
    L = sp.Symbol("L", positive=True, integer=True)
    assert isotropy_constant("exact", depth=7) == 1
    assert isotropy_constant("block_diagonal", depth=L) == L
    assert isotropy_constant("block_tridiagonal", depth=8) == 3
    assert isotropy_constant("banded", depth=10, bandwidth=2) == 2
    assert isotropy_constant("kfac", depth=4, n_samples=10, input_dim=20) == 31
    assert isotropy_constant("pattern", pattern=np.eye(3, dtype=int).tolist()) == 3
    with pytest.raises(NotIsotropic, match="diagonal Fisher"):
        isotropy_constant("diagonal", depth=2)


def test_contradictory_arguments_are_rejected_not_resolved():
    """issue 10: depth=4 with widths of a 3-layer net used to return 4 for block-diagonal, and K-FAC
    with depth=5 and 3-layer widths returned 41 (the widths say alpha = 21)."""
    with pytest.raises(ValueError, match="depth=4 contradicts widths"):
        isotropy_constant("block_diagonal", depth=4, widths=[64, 100, 100, 1])
    with pytest.raises(ValueError, match="depth=5 contradicts widths"):
        isotropy_constant("kfac", depth=5, n_samples=10, widths=[64, 100, 100, 1])
    with pytest.raises(ValueError, match="input_dim=32 contradicts widths"):
        isotropy_constant("kfac", depth=3, n_samples=10, input_dim=32, widths=[64, 100, 100, 1])
    with pytest.raises(ValueError, match="n_outputs=3 contradicts widths"):
        isotropy_constant("exact", depth=3, n_outputs=3, widths=[64, 100, 100, 1])
    assert isotropy_constant("kfac", n_samples=10, widths=[64, 100, 100, 1]) == 21   # consistent: fine


def test_options_of_other_approximations_are_rejected():
    with pytest.raises(ValueError, match="pattern=.* is not an option of approximation='exact'"):
        isotropy_constant("exact", depth=2, pattern=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="bandwidth=1 is not an option of approximation='kfac'"):
        isotropy_constant("kfac", depth=2, n_samples=3, bandwidth=1)
    with pytest.raises(ValueError, match="approximation='nonsense'"):
        isotropy_result("nonsense", depth=2)


def test_kfac_on_a_deep_linear_net_has_alpha_L_as_measured():
    """Linear nets: the backward signals are the same for every sample, so each layer contributes
    P_Z (x) P_D = I and alpha = L, not N (L - 1) + 1 (found by the EKFAC derivation)."""
    from numerics import MLP, function_space_operator

    X = np.random.default_rng(0).standard_normal((6, 10))
    for L in (2, 3, 4):
        widths = [10] + [40] * (L - 1) + [1]
        alpha = isotropy_constant("kfac", n_samples=6, widths=widths, activation="linear")
        assert alpha == L
        T = function_space_operator(MLP(widths, activation="linear", seed=1), X, approximation="kfac")
        assert np.abs(T - float(alpha) * np.eye(6)).max() < 1e-9 * L
    assert isotropy_constant("kfac", n_samples=6, widths=[10, 40, 40, 1], activation="relu") == 13
