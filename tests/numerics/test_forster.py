"""Forster transform: convergence to radial isotropic position, constant leverage scores, the map
applies to new points, uniqueness up to rotations, and clear errors when it cannot work."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.forster import ForsterError, forster_transform, leverage_scores, radial_isotropy_error


def anisotropic_inputs(n, m, seed):
    rng = np.random.default_rng(seed)
    # very different scales per direction and a shared offset: far from isotropic position
    return rng.standard_normal((n, m)) * np.geomspace(0.05, 5.0, m) + 0.3


@pytest.mark.parametrize("n,m", [(40, 5), (64, 64), (100, 10), (40, 20)])
def test_converges_to_radial_isotropic_position(n, m):
    X = anisotropic_inputs(n, m, seed=n + m)
    res = forster_transform(X, tol=1e-12)
    Z = res.inputs
    assert res.initial_isotropy_error > 0.1                              # it had work to do
    assert res.isotropy_error < 1e-12 and res.iterations >= 1
    assert np.allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-14)      # unit rows
    target = n / m
    # ||Z^T Z - (N/M0) I||_F <= tol ||(N/M0) I||_F, recomputed independently
    assert np.linalg.norm(Z.T @ Z - target * np.eye(m)) <= 1e-12 * target * np.sqrt(m)
    # hence every leverage score is M0/N (relative spread bounded by ~ the isotropy error)
    assert np.max(np.abs(leverage_scores(Z) - m / n)) < 1e-10 * m / n


def test_transform_reproduces_inputs_and_maps_new_points():
    X = anisotropic_inputs(50, 6, seed=1)
    res = forster_transform(X)
    assert np.max(np.abs(res.transform(X) - res.inputs)) < 1e-13
    new = anisotropic_inputs(7, 6, seed=2)
    mapped = res.transform(new)
    assert np.allclose(np.linalg.norm(mapped, axis=1), 1.0, atol=1e-14)
    # same linear map: the directions are those of new @ T
    direct = new @ res.linear_map
    assert np.allclose(mapped, direct / np.linalg.norm(direct, axis=1, keepdims=True), atol=1e-14)


def test_radial_isotropic_position_is_unique_up_to_rotation():
    # Forster/Barthe: for points in general position the radial isotropic position is unique up to
    # an orthogonal map, so X and X A (A invertible) give the same Gram matrix Z Z^T
    X = anisotropic_inputs(30, 4, seed=3)
    A = np.random.default_rng(4).standard_normal((4, 4))
    Z1 = forster_transform(X, tol=1e-13).inputs
    Z2 = forster_transform(X @ A, tol=1e-13).inputs
    assert np.max(np.abs(Z1 @ Z1.T - Z2 @ Z2.T)) < 1e-10


def test_input_already_isotropic_needs_no_iteration():
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((8, 8)))
    X = np.vstack([Q, -Q])   # 16 unit rows with X^T X = 2 I = (N/M0) I
    res = forster_transform(X)
    assert res.iterations == 0 and res.isotropy_error < 1e-14


def test_isotropy_error_and_leverage_helpers():
    assert radial_isotropy_error(np.eye(3)) == 0.0
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Z^T Z = diag(2, 1), target 1.5 I: ||diag(0.5, -0.5)||_F / (1.5 sqrt 2) = 1/3
    assert radial_isotropy_error(X) == pytest.approx(1 / 3, rel=1e-14)
    lev = leverage_scores(X)
    assert np.allclose(lev, [0.5, 0.5, 1.0]) and lev.sum() == pytest.approx(2.0)


def test_errors():
    with pytest.raises(ForsterError, match="N = 3 rows < M_0 = 4"):
        forster_transform(np.random.default_rng(0).standard_normal((3, 4)))
    with pytest.raises(ForsterError, match="rank 2 < M_0 = 3") as info:
        X = np.random.default_rng(0).standard_normal((10, 2))
        forster_transform(np.hstack([X, X[:, :1]]))   # third column = first: rank 2
    assert "general position" in info.value.assumption
    with pytest.raises(ValueError, match="zero rows"):
        forster_transform(np.vstack([np.eye(3), np.zeros((1, 3))]))
    with pytest.raises(ForsterError, match="did not converge in 2 iterations") as info:
        forster_transform(anisotropic_inputs(40, 5, seed=6), tol=1e-14, max_iter=2)
    assert info.value.iterations == 2 and info.value.isotropy_error > 1e-14
    with pytest.raises(ValueError, match="tol"):
        forster_transform(np.eye(3), tol=0.0)
    with pytest.raises(TypeError, match="max_iter"):
        forster_transform(np.eye(3), max_iter=2.5)
    with pytest.raises(ValueError, match="non-finite"):
        forster_transform(np.array([[1.0, np.nan], [0.0, 1.0]]))
    res = forster_transform(np.eye(2))
    with pytest.raises(ValueError, match="3 columns, expected 2"):
        res.transform(np.ones((1, 3)))


def test_points_violating_forsters_condition_do_not_converge():
    # 8 of 10 points on one line in R^2 (> k N / M0 = 5 for k = 1): no radial isotropic position
    # exists; the iteration keeps shrinking the error but cannot reach it, and says so
    rng = np.random.default_rng(7)
    X = np.vstack([np.outer(rng.uniform(0.5, 2.0, 8) * rng.choice([-1, 1], 8), [1.0, 0.0]),
                   rng.standard_normal((2, 2))])
    with pytest.raises(ForsterError, match="did not converge"):
        forster_transform(X, max_iter=300)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 8), extra=st.integers(0, 30), seed=st.integers(0, 10 ** 6))
def test_property_gaussian_points_converge(m, extra, seed):
    # Gaussian points are in general position with probability 1: always converges
    n = m + 1 + extra
    X = anisotropic_inputs(n, m, seed)
    res = forster_transform(X, tol=1e-10, max_iter=5000)
    Z = res.inputs
    assert radial_isotropy_error(Z) < 1e-10
    assert np.max(np.abs(leverage_scores(Z) - m / n)) < 1e-8 * m / n + 1e-12
