"""Non-isotropic cases with their derived reasons: diagonal Fisher, damping, singular layer Grams."""
import numpy as np
import sympy as sp

from theory.non_isotropic import (IsotropyResult, NotIsotropic, damping_derivation, diagonal_fisher_derivation,
                                  singular_layer_gram_derivation)


def test_diagonal_fisher_symbolic_counterexample():
    d = diagonal_fisher_derivation()
    assert d.verified, [s.name for s in d.failed_steps()]
    assert d.steps[-1].rhs == sp.Rational(194, 85)  # the sample-dependent diagonal gap at the chosen point


def test_diagonal_fisher_numeric():
    """Random wide Jacobian: J diag(F)^{-1} J^T / N has O(1) relative off-diagonals and diagonal spread."""
    rng = np.random.default_rng(0)
    N, P = 6, 400
    J = rng.standard_normal((N, P)) * rng.uniform(0.5, 2.0, size=(N, 1))  # sample-dependent scales
    F = (J ** 2).sum(axis=0) / N
    op = J @ (J / F).T / N
    a = np.mean(np.diag(op))
    assert np.std(np.diag(op)) / a > 0.05
    assert np.abs(op - np.diag(np.diag(op))).max() / a > 0.01


def test_damping():
    d = damping_derivation()
    assert d.verified
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5))
    Theta, rho = A @ A.T + 0.1 * np.eye(5), 0.3
    op = Theta @ np.linalg.inv(Theta + rho * np.eye(5))
    lam = np.linalg.eigvalsh(Theta)
    # eigenvalues lambda/(lambda + rho): float64 eig of a 5 x 5 matrix, ~1e-14
    assert np.abs(np.sort(np.linalg.eigvals(op).real) - np.sort(lam / (lam + rho))).max() < 1e-10
    assert np.ptp(lam / (lam + rho)) > 1e-2  # not flat: not isotropic
    flat = 2.0 * np.eye(5)
    assert np.abs(flat @ np.linalg.inv(flat + rho * np.eye(5)) - 2 / 2.3 * np.eye(5)).max() < 1e-12


def test_singular_layer_gram():
    assert singular_layer_gram_derivation().verified


def test_not_isotropic_is_value_error_with_fields():
    err = NotIsotropic("why", "assumption", damping_derivation())
    assert isinstance(err, ValueError) and err.reason == "why" and err.failed_assumption == "assumption"
    assert err.derivation.verified


def test_result_learning_rate():
    assert IsotropyResult("block_diagonal", sp.Integer(4)).learning_rate == sp.Rational(1, 4)


def test_cached_derivations_are_independent_copies():
    a, b = damping_derivation(), damping_derivation()
    a.add_step("extra", 1, 2, "")
    assert len(b.steps) == len(a.steps) - 1


def test_derivation_seeds_are_required_ints():
    """seed=None would reach default_rng(None), an unseeded draw; every seeded derivation refuses it."""
    import pytest
    from theory.kfac_theory import kfac_derivation
    from theory.symbolic_kernels import telescoping_derivation
    for build in (singular_layer_gram_derivation, kfac_derivation, lambda seed: telescoping_derivation(seed=seed)):
        with pytest.raises(TypeError, match="seed=None is not allowed"):
            build(None)
