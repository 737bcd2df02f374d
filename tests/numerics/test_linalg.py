"""Checked linear algebra: solves are accurate or raise with the condition number and the assumption."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.linalg import (SingularSystemError, cholesky_solve, condition_number_symmetric,
                             lu_solve_checked, psd_sqrt_and_inverse_sqrt, symmetric_pinv)


def _spd(n, cond, seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (Q * np.geomspace(1.0, 1.0 / cond, n)) @ Q.T


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 30), log_cond=st.floats(0, 8), seed=st.integers(0, 10_000))
def test_cholesky_solve_accuracy(n, log_cond, seed):
    """Relative residual-based error <= cond * eps * n * 10 (backward stable Cholesky)."""
    A = _spd(n, 10 ** log_cond, seed)
    x = np.random.default_rng(seed + 1).standard_normal(n)
    sol = cholesky_solve(A, A @ x)
    assert np.linalg.norm(sol - x) / np.linalg.norm(x) < 10 * n * 10 ** log_cond * np.finfo(float).eps + 1e-15


def test_singular_and_ill_conditioned_raise_with_condition_number():
    with pytest.raises(SingularSystemError) as info:
        cholesky_solve(np.ones((3, 3)), np.ones(3), name="Gram", assumption="inputs distinct")
    assert info.value.condition_number > 1e12 and info.value.assumption == "inputs distinct"
    assert isinstance(info.value, ValueError)
    with pytest.raises(SingularSystemError) as info:
        cholesky_solve(_spd(5, 1e14, 0), np.ones(5))
    assert 1e13 < info.value.condition_number < 1e16  # LAPACK's 1-norm estimate of 1e14
    with pytest.raises(SingularSystemError):
        cholesky_solve(-np.eye(2), np.ones(2))  # indefinite: not a Gram matrix
    with pytest.raises(SingularSystemError):
        lu_solve_checked(np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2))
    with pytest.raises(SingularSystemError):
        psd_sqrt_and_inverse_sqrt(np.diag([1.0, 0.0]))


def test_lu_solve_and_square_roots():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6)) + 6 * np.eye(6)
    b = rng.standard_normal(6)
    np.testing.assert_allclose(A @ lu_solve_checked(A, b), b, atol=1e-12)
    S = _spd(6, 1e3, 1)
    root, inv_root, cond = psd_sqrt_and_inverse_sqrt(S)
    np.testing.assert_allclose(root @ root, S, atol=1e-13)
    np.testing.assert_allclose(root @ inv_root, np.eye(6), atol=1e-10)
    assert abs(cond / 1e3 - 1) < 1e-8 and abs(condition_number_symmetric(S) / 1e3 - 1) < 1e-8


def test_symmetric_pinv_matches_numpy_for_indefinite_and_singular():
    T5 = (np.abs(np.subtract.outer(np.arange(5), np.arange(5))) <= 1).astype(float)  # singular, indefinite
    P, rank = symmetric_pinv(T5)
    assert rank == 4
    np.testing.assert_allclose(P, np.linalg.pinv(T5), atol=1e-12)
    P2, rank2 = symmetric_pinv(T5, rank=4)
    np.testing.assert_allclose(P2, P, atol=1e-12)


def test_pinv_product_rule_fails_for_singular_middle_factor():
    """(A B C)^+ != C^+ B^+ A^+ for A = diag(1,2), B = [1,1]^T, C = [1] (brief's counterexample):
    why the pattern code computes M^+ for M = K^{1/2} (S (x) I) K^{1/2} instead of using S^+."""
    A, B, C = np.diag([1.0, 2.0]), np.array([[1.0], [1.0]]), np.array([[1.0]])
    lhs = np.linalg.pinv(A @ B @ C)
    rhs = np.linalg.pinv(C) @ np.linalg.pinv(B) @ np.linalg.pinv(A)
    assert np.linalg.norm(lhs - rhs) > 0.1


def test_bad_matrices_are_named_not_passed_to_lapack():
    """NaN/inf, non-square or empty input raises a ValueError naming the matrix and the bad entry,
    instead of LAPACK's anonymous 'did not converge' (or NaN factors on some builds)."""
    bad = np.eye(3)
    bad[1, 2] = np.nan
    calls = [lambda A: cholesky_solve(A, np.ones(3), name="Gram K_1"),
             lambda A: lu_solve_checked(A, np.ones(3), name="Gram K_1"),
             lambda A: psd_sqrt_and_inverse_sqrt(A, name="Gram K_1"),
             lambda A: symmetric_pinv(A, name="Gram K_1"),
             lambda A: condition_number_symmetric(A, name="Gram K_1")]
    for call in calls:
        with pytest.raises(ValueError, match=r"^Gram K_1 contains a non-finite value nan at index \(1, 2\)"):
            call(bad)
        with pytest.raises(ValueError, match=r"^Gram K_1 must be a non-empty square matrix, got shape \(3, 2\)"):
            call(np.ones((3, 2)))
    with pytest.raises(TypeError, match="matrix must be a square matrix of real numbers"):
        symmetric_pinv([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match=r"rank=5 is not allowed: expected an integer in \[0, 3\]"):
        symmetric_pinv(np.eye(3), rank=5)
