"""theory.metrics.relative_error: the project's one relative error, in its two named norms."""
import numpy as np
import pytest

from theory.metrics import relative_error


def test_frobenius_and_max_norms_differ_as_defined():
    m, r = np.array([[1.0, 0.0], [0.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    assert relative_error(m, r) == pytest.approx(2.0 / np.sqrt(5.0), rel=1e-15)     # ||diag(0,2)|| / ||diag(1,2)||
    assert relative_error(m, r, norm="max") == pytest.approx(1.0, rel=1e-15)        # 2 / 2


def test_zero_reference_gives_the_absolute_error():
    assert relative_error([3.0, 4.0], [0.0, 0.0]) == pytest.approx(5.0, rel=1e-15)
    assert relative_error([3.0, -4.0], [0.0, 0.0], norm="max") == pytest.approx(4.0, rel=1e-15)


def test_scalars_stand_for_constant_arrays():
    assert relative_error([2.0, 2.0], 1.0, norm="max") == pytest.approx(1.0, rel=1e-15)
    assert relative_error(1.0, [2.0, 4.0], norm="max") == pytest.approx(0.75, rel=1e-15)


def test_rejects_broadcasting_non_finite_and_unknown_norms():
    """A (P,) vs (P, 1) pair would broadcast to P x P and a NaN fast path would give a NaN error."""
    with pytest.raises(ValueError, match=r"measured has shape \(3,\) but reference has shape \(3, 1\)"):
        relative_error(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"^measured contains a non-finite value nan at index \(1,\)"):
        relative_error([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^reference contains a non-finite value inf at index \(0,\)"):
        relative_error([1.0, 1.0], [np.inf, 1.0])
    with pytest.raises(ValueError, match="norm='l1' is not allowed"):
        relative_error([1.0], [1.0], norm="l1")
