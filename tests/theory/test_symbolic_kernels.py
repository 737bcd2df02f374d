"""Symbolic kernels: agreement with the numeric recursion, sphere forms, LaTeX, and the general-depth
telescoping derivation."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from theory.kernels import analytic_kernels
from theory.symbolic_kernels import (M0, cosine, kernels_on_sphere, sigma_b2, sigma_w2, symbolic_kernels,
                                     telescoping_derivation, xx, xy, yy)


@pytest.mark.parametrize("activation,depth", [("relu", 3), ("erf", 3), ("gelu", 2), ("sin", 3), ("leaky_relu", 2)])
def test_symbolic_equals_numeric_off_diagonal(activation, depth):
    # off-diagonal entries (|cos| < 1), evaluated at 30 digits: the float64 recursion agrees to
    # rounding (~10 operations per layer: 1e-13)
    X = np.random.default_rng(0).standard_normal((4, 3))
    k = analytic_kernels(X, depth=depth, activation=activation, sigma_w2=1.7, sigma_b2=0.2)
    sk = symbolic_kernels(depth, activation, simplify_diagonals=False)
    subs = {sigma_w2: sp.Rational(17, 10), sigma_b2: sp.Rational(1, 5), M0: 3}
    f = sp.lambdify((xx, xy, yy), sk.ntk.subs(subs), modules="mpmath")
    g = sp.lambdify((xx, xy, yy), sk.nngp.subs(subs), modules="mpmath")
    G = X @ X.T
    for i, j in ((0, 1), (0, 3), (2, 3)):
        with mpmath.workdps(30):
            args = [mpmath.mpf(repr(float(v))) for v in (G[i, i], G[i, j], G[j, j])]
            ntk, nngp = float(f(*args)), float(g(*args))
        assert abs(ntk - k.ntk[i, j]) <= 1e-13 * np.abs(k.ntk).max()
        assert abs(nngp - k.nngp[i, j]) <= 1e-13 * np.abs(k.nngp).max()


def test_layer_ntks_sum_symbolically():
    sk = symbolic_kernels(3, "erf")
    assert sp.simplify(sum(sk.layer_ntk) - sk.ntk) == 0
    assert len(sk.nngp_layers) == 3 and len(sk.derivative_layers) == 2


def test_relu_diagonal_simplifies_to_the_known_recursion():
    sk = symbolic_kernels(4, "relu")
    for l in range(3):   # Sigma^(l+1)(x,x) = sigma_w2/2 Sigma^(l)(x,x) + sigma_b2
        assert sp.simplify(sk.diag_x[l + 1] - (sigma_w2 / 2 * sk.diag_x[l] + sigma_b2)) == 0


def test_sphere_forms():
    # relu, sigma_w2 = 2, no bias: the arc-cosine map of the cosine; Theta(x, x) = 2L
    k = kernels_on_sphere(3, "relu", sigma_w2=2, sigma_b2=0)
    assert k.ntk.free_symbols == {cosine}
    assert sp.simplify(k.ntk.subs(cosine, 1)) == 6
    num = analytic_kernels(np.array([[1.0, 0.0], [0.6, 0.8]]) * np.sqrt(2), depth=3, activation="relu").ntk
    assert abs(float(k.ntk.subs(cosine, sp.Rational(3, 5))) - num[0, 1]) < 1e-13
    # erf, depth 1: Sigma^(1) = sigma_w2 c + sigma_b2
    assert sp.simplify(kernels_on_sphere(1, "erf").ntk - (sigma_w2 * cosine + sigma_b2)) == 0
    assert k.latex().startswith(r"\Theta^{(3)}(x, x') = ")


def test_no_closed_form_is_an_error():
    with pytest.raises(ValueError, match="activation='tanh' has no closed-form dual"):
        symbolic_kernels(2, "tanh")
    with pytest.raises(ValueError, match="depth=0"):
        symbolic_kernels(0, "relu")


def test_telescoping_derivation_general_depth():
    d = telescoping_derivation(max_numeric_depth=8)
    assert d.check() and d.verified
    names = [s.name for s in d.steps]
    assert names[0] == "base case L = 1" and "inductive step" in names
    L = sp.Symbol("L", integer=True, positive=True)
    induct = d.steps[names.index("inductive step")]
    assert L in induct.lhs.free_symbols and L in induct.rhs.free_symbols   # symbolic depth, not enumerated
    # the rendered proof shows the general-depth sum and marks every step as checked (the old
    # '"\\sum" in tex or "sum" in tex' held for any text containing "sum")
    tex = d.to_latex()
    assert r"\sum_{l=1}^{L}" in tex and r"\textbf{inductive step} (checked)" in tex
    assert tex.count("(checked)") == len(d.steps) and "(unchecked)" not in tex and "(failed)" not in tex


def test_telescoping_checks_can_fail():
    # the same machinery rejects a wrong recursion: Theta^(L+1) = Theta^(L) + Sigma^(L+1) (no dotSigma)
    from sympy.simplify.simplify import sum_simplify

    L = sp.Symbol("L", integer=True, positive=True)
    l, k = sp.symbols("l k", integer=True, positive=True)
    S, D = sp.IndexedBase("S"), sp.IndexedBase("D")
    T = lambda n: sp.Sum(S[l] * sp.Product(D[k], (k, l + 1, n)), (l, 1, n))  # noqa: E731
    wrong = sum_simplify(T(L) + sp.Sum(S[l] * sp.Product(D[k], (k, l + 1, L + 1)), (l, L + 1, L + 1)))
    assert wrong != T(L + 1)
    d = telescoping_derivation(3)
    d.steps[0].rhs = 2 * d.steps[0].rhs         # corrupt the base case
    assert not d.check() and d.failed_steps()[0].name == "base case L = 1"
