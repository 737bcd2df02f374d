"""Block-pattern algebra: exact S^+ 1, alpha, null space, moving layers, and 1 in range(S) <=> isotropy."""
import itertools

import numpy as np
import pytest
import scipy.linalg
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from theory.patterns import (analyze_pattern, banded_pattern, block_diagonal_pattern, exact_pattern,
                             isotropy_constant_of_pattern, pinv_apply, tridiagonal_pattern, validate_pattern)

# Smallest patterns with 1 NOT in range(S): none exist for L <= 5 (exhaustive test below); these are
# two of the 90 at L = 6 and one at L = 7 (found by exhaustive / random search).
NON_RANGE_6 = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0],
               [0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]]
NON_RANGE_6B = [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1],
                [0, 0, 0, 1, 1, 0], [1, 1, 0, 1, 0, 1]]
NON_RANGE_7 = [[1, 0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 0, 1], [0, 1, 1, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0, 1],
               [0, 1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0, 1]]


def _pattern_from_bits(L, bits):
    S = np.eye(L, dtype=int)
    for b, (i, j) in zip(bits, itertools.combinations(range(L), 2)):
        S[i, j] = S[j, i] = b
    return S


def _one_in_range_float(S):
    S = np.asarray(S, float)
    return np.linalg.matrix_rank(np.hstack([S, np.ones((len(S), 1))])) == np.linalg.matrix_rank(S)


def _dense_train_operator(S, seed, n=3):
    """J G_S^+ J^T / N from an explicit P x P matrix and numpy's pinv (the independent reference)."""
    rng = np.random.default_rng(seed)
    L = len(S)
    Js = [rng.standard_normal((n, int(p))) for p in rng.integers(n + 1, n + 4, size=L)]
    D = scipy.linalg.block_diag(*Js)
    G = D.T @ np.kron(np.asarray(S, float), np.eye(n)) @ D / n
    J = np.hstack(Js)
    return J @ np.linalg.pinv(G, hermitian=True, rtol=1e-12) @ J.T / n


def test_constructors():
    assert exact_pattern(3) == sp.ones(3, 3)
    assert block_diagonal_pattern(4) == sp.eye(4)
    T = tridiagonal_pattern(4)
    assert T == sp.Matrix([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]])
    assert banded_pattern(5, 4) == sp.ones(5, 5)
    with pytest.raises(ValueError, match="depth"):
        banded_pattern(0, 1)
    with pytest.raises(ValueError, match="bandwidth"):
        banded_pattern(3, -1)


@pytest.mark.parametrize("bad, match", [
    ([[1, 0], [1, 1]], "not symmetric"),
    ([[1, 2], [2, 1]], "entries must be 0 or 1"),
    ([[0, 1], [1, 1]], "diagonal must be 1"),
    ([[1, 0, 0], [0, 1, 0]], "square"),
    ([1, 0, 1], "square"),
    ([[1, 0.5], [0.5, 1]], "entries must be 0 or 1"),
])
def test_validate_pattern_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_pattern(bad)


def test_validate_pattern_rejects_bools_and_strings():
    with pytest.raises(TypeError, match="pattern"):
        validate_pattern([[True, False], [False, True]])
    with pytest.raises(TypeError, match="pattern"):
        validate_pattern([["1", "0"], ["0", "1"]])


@pytest.mark.parametrize("L, weights, alpha, moving", [
    (3, [0, 1, 0], 1, (2,)),
    (4, [1, 0, 0, 1], 2, (1, 4)),
    (5, [sp.Rational(1, 2)] * 2 + [0] + [sp.Rational(1, 2)] * 2, 2, (1, 2, 4, 5)),
    (6, [0, 1, 0, 0, 1, 0], 2, (2, 5)),
])
def test_tridiagonal_weights_and_moving_layers(L, weights, alpha, moving):
    a = analyze_pattern(tridiagonal_pattern(L))
    assert list(a.weights) == weights
    assert a.alpha == alpha
    assert a.moving_layers == moving
    assert a.derivation.verified
    assert a.one_in_range


def test_exact_and_block_diagonal():
    for L in range(1, 7):
        assert analyze_pattern(exact_pattern(L)).alpha == 1
        assert list(analyze_pattern(exact_pattern(L)).weights) == [sp.Rational(1, L)] * L
        assert analyze_pattern(block_diagonal_pattern(L)).alpha == L
    # exact pattern: null space is all of 1-perp, every layer moves
    a = analyze_pattern(exact_pattern(4))
    assert a.rank == 1 and a.null_basis.cols == 3 and a.moving_layers == (1, 2, 3, 4)


def test_pinv_apply_matches_sympy_pinv():
    """Our range/null route for S^+ b equals SymPy's own Moore-Penrose pinv (exact rationals)."""
    for S in (tridiagonal_pattern(5), tridiagonal_pattern(8), exact_pattern(3), sp.Matrix(NON_RANGE_6),
              banded_pattern(7, 2)):
        b = sp.Matrix([1, 2, -1, 3, 0, 1, 2, 5][:S.rows])
        assert pinv_apply(S, b) == S.pinv() * b


def test_isotropy_constant_of_pattern_custom():
    first_last = sp.Matrix([[1, 0, 1], [0, 1, 0], [1, 0, 1]])  # first and last layers coupled
    assert isotropy_constant_of_pattern(first_last) == 2
    a = analyze_pattern(first_last)
    assert list(a.weights) == [sp.Rational(1, 2), 1, sp.Rational(1, 2)]


def test_non_range_pattern_is_flagged_and_not_isotropic():
    for S in (NON_RANGE_6, NON_RANGE_6B, NON_RANGE_7):
        a = analyze_pattern(S)
        assert not a.one_in_range
        assert a.derivation.verified  # the "1 has a null-space component" step is checked
        op = _dense_train_operator(S, seed=1)
        # generic layer kernels: off-diagonal entries are O(1), far above float64 noise (~1e-12)
        assert np.abs(op - np.mean(np.diag(op)) * np.eye(len(op))).max() > 1e-3


def test_no_small_pattern_breaks_range_condition():
    """Exhaustive: every symmetric 0/1 unit-diagonal pattern with L <= 5 has 1 in range(S)."""
    for L in range(1, 6):
        n_pairs = L * (L - 1) // 2
        bad = [bits for bits in itertools.product([0, 1], repeat=n_pairs)
               if not _one_in_range_float(_pattern_from_bits(L, bits))]
        assert bad == []


def test_derivation_steps_can_fail():
    """A wrong c makes the characterising step fail: the checks are not vacuous."""
    a = analyze_pattern(tridiagonal_pattern(5))
    T5 = tridiagonal_pattern(5)
    code = sp.Matrix([1, 0, 0, 1, 0])  # solves T c = 1 but is not the min-norm solution
    in_range, solves = a.derivation.steps[0], a.derivation.steps[1]
    in_range.lhs = a.null_basis.T * code
    assert in_range.check() is False
    solves.lhs = T5 * sp.Matrix([1, 0, 0, 0, 0])
    assert solves.check() is False


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7).flatmap(lambda L: st.tuples(st.just(L), st.lists(st.integers(0, 1),
                                                                          min_size=L * (L - 1) // 2,
                                                                          max_size=L * (L - 1) // 2))),
       st.integers(0, 2**16))
@example((6, [int(NON_RANGE_6[i][j]) for i, j in itertools.combinations(range(6), 2)]), 3)
@example((7, [int(NON_RANGE_7[i][j]) for i, j in itertools.combinations(range(7), 2)]), 4)
def test_range_condition_iff_isotropic(case, seed):
    """1 in range(S)  <=>  J G_S^+ J^T / N = alpha I (dense pinv, random full-row-rank J_l)."""
    L, bits = case
    S = _pattern_from_bits(L, bits)
    a = analyze_pattern(S.tolist())
    op = _dense_train_operator(S, seed)
    # float64 pinv of a ~20 x 20 matrix: entries accurate to ~1e-10; O(1) deviations when not isotropic
    if a.one_in_range:
        assert np.abs(op - float(a.alpha) * np.eye(len(op))).max() < 1e-8
    else:
        assert np.abs(op - np.mean(np.diag(op)) * np.eye(len(op))).max() > 1e-3
    # alpha = 1^T S^+ 1 against numpy's float pinv
    assert abs(float(a.alpha) - np.linalg.pinv(S.astype(float)).sum()) < 1e-9
