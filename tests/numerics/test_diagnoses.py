"""Diagnoses of singular Fisher/NTK Grams name the real cause (regressions from review).

Before the fix, a relu layer narrower than the batch (``M_{l-1}, M_l < N``) fell through every check
and was reported as "near-duplicate inputs"; inputs on which a whole layer is inactive (zero rows of
``J_l``) likewise.  The cases below are small deterministic nets (seeded); each asserts the cause
that is actually present and that the wrong one is absent.
"""
import numpy as np
import pytest

from numerics.approximations import get_approximation
from numerics.approximations.base import closest_pair, diagnose_layer_gram, zero_signal_samples
from numerics.factors import layer_gram
from numerics.linalg import SingularSystemError
from numerics.network import MLP


def _unit_rows(n, dim, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _singular_assumption(name, net, X):
    with pytest.raises(SingularSystemError) as info:
        get_approximation(name)(net, X)
    return info.value.assumption


def test_narrow_relu_layer_names_the_width_rank_bound_not_duplicates():
    """M_1 = M_2 = 5 < N = 16: layer 2's Gram has rank 15 (measured), every row non-zero, no dead unit;
    the cause is the width: rank(Delta_2) = rank(Z_2) = 5 < 16."""
    X = _unit_rows(16, 10)
    net = MLP([10, 5, 5, 1], activation="relu", seed=0)
    msg = _singular_assumption("block_diagonal", net, X)
    assert "layer 2" in msg and "narrower than the batch" in msg, msg
    assert "rank(Delta_2) = 5 < N C = 16 (M_2 = 5 units)" in msg and "rank(Z_2) = 5 < N = 16" in msg, msg
    assert "measured rank(J_2) = 15" in msg, msg
    assert "duplicate" not in msg, msg


def test_inputs_where_a_layer_is_silent_are_named():
    """Seed 2, width 5: on inputs 3 and 11 every layer-1 unit is inactive -> zero rows of J_1."""
    X = _unit_rows(16, 10)
    net = MLP([10, 5, 5, 1], activation="relu", seed=2)
    f = net.factors(X)
    assert zero_signal_samples(f, 1).tolist() == [3, 11]
    lam = np.linalg.eigvalsh(layer_gram(f, 1))
    msg = diagnose_layer_gram(f, X, 1, lam[-1] / max(lam[0], 1e-300))
    assert "passes no signal on 2 input(s) (rows 3, 11 of J_1 are zero" in msg, msg
    assert "duplicate" not in msg, msg


def test_duplicated_inputs_are_named():
    X = _unit_rows(12, 10)
    X[5] = X[2]
    net = MLP([10, 64, 64, 1], activation="relu", seed=0)
    for name in ("block_diagonal", "exact"):
        msg = _singular_assumption(name, net, X)
        assert "duplicate inputs (rows 2&5 of X are equal)" in msg, (name, msg)


def test_dead_units_are_named():
    """60 of 64 layer-2 units forced dead (their incoming weights <= 0 on relu outputs >= 0, no bias):
    the output layer's inputs Z_3 have rank 4 < N = 12."""
    X = _unit_rows(12, 10)
    net = MLP([10, 64, 64, 1], activation="relu", seed=1)
    net.params[1][:60] = -np.abs(net.params[1][:60])
    msg = _singular_assumption("block_diagonal", net, X)
    assert "layer 3" in msg and "60 of 64 units of layer 2 are dead" in msg, msg
    assert "rank(Z_3) = 4 < N = 12" in msg, msg
    assert "duplicate" not in msg, msg


def test_exact_ngd_names_inputs_without_gradient():
    """[3, 5, 5, 1] relu, N = 4: on input 2 no gradient reaches any layer (J row 2 = 0)."""
    net = MLP([3, 5, 5, 1], activation="relu", seed=0)
    X = np.random.default_rng(0).standard_normal((4, 3))
    msg = _singular_assumption("exact", net, X)
    assert "passes no gradient on 1 input(s) (rows 2 of J are zero in every layer" in msg, msg


def test_closest_pair_reports_relative_distance():
    X = np.array([[3.0, 4.0], [0.0, 5.0], [3.0, 4.0 + 5e-7]])
    i, j, d = closest_pair(X)
    assert (i, j) == (0, 2) and d == pytest.approx(1e-7, rel=1e-8)   # 5e-7 / ||x||_max = 5e-7 / 5; direct difference: exact to ~eps/1e-7
