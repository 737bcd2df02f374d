"""Activations: derivative derived symbolically, numeric forms agree, active fraction gamma."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from theory.activations import available_activations, get_activation, u

NAMES = available_activations()


@pytest.mark.parametrize("name", NAMES)
def test_numeric_derivative_matches_finite_difference(name):
    # central differences have O(h^2) error; h = 1e-5 gives ~1e-10, away from relu's kink at 0
    act = get_activation(name)
    x = np.linspace(-3.1, 2.9, 41)
    h = 1e-5
    fd = (act.phi(x + h) - act.phi(x - h)) / (2 * h)
    np.testing.assert_allclose(act.dphi(x), fd, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(x=st.floats(-30, 30))
def test_numeric_phi_matches_sympy(name, x):
    act = get_activation(name)
    exact = float(act.expr.subs(u, sp.Float(x, 30)).evalf(30))
    assert act.phi(np.array([x]))[0] == pytest.approx(exact, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_stable_forms_are_finite_at_extremes(name):
    act = get_activation(name)
    x = np.array([-800.0, 800.0])
    assert np.all(np.isfinite(act.phi(x))) and np.all(np.isfinite(act.dphi(x)))


@pytest.mark.parametrize("name,gamma", [("relu", sp.Rational(1, 2)), ("tanh", 1), ("erf", 1),
                                        ("linear", 1), ("gelu", 1), ("leaky_relu", 1), ("sin", 1)])
def test_active_fraction(name, gamma):
    assert get_activation(name).active_fraction() == gamma


def test_active_fraction_matches_monte_carlo_for_relu():
    # 1e6 draws: binomial std of the fraction is 5e-4, so 3e-3 is a 6-sigma band
    z = np.random.default_rng(0).standard_normal(1_000_000)
    frac = np.mean(get_activation("relu").dphi(z) != 0)
    assert abs(frac - 0.5) < 3e-3


def test_homogeneity_detected():
    assert get_activation("relu").is_positively_homogeneous
    assert get_activation("linear").is_positively_homogeneous
    assert not get_activation("tanh").is_positively_homogeneous


def test_unknown_activation_names_the_allowed_ones():
    with pytest.raises(ValueError, match="activation='swish' is unknown; allowed: .*relu"):
        get_activation("swish")
    with pytest.raises(TypeError, match="activation must be a name .* got int"):
        get_activation(3)
