"""theory.cross_entropy: the checked derivations, the registry hook (isotropy_constant(loss="cross_entropy")),
K-FAC's deviation formula, the unit-wise limit.  Exact identities at 1e-12..1e-9; Monte Carlo at 4 standard
errors (seeded)."""
import numpy as np
import pytest
import sympy as sp

from theory import cross_entropy as CE
from theory.isotropy import NotIsotropic, isotropy_constant, isotropy_result


def _hessians(p):
    return np.einsum("nc,cd->ncd", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]


def _softmax(f):
    e = np.exp(f - f.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("builder", [lambda: CE.factorisation_derivation(2), lambda: CE.factorisation_derivation(3),
                                     lambda: CE.factorisation_derivation(10), CE.probability_space_derivation,
                                     CE.newton_step_derivation, CE.no_one_step_derivation,
                                     CE.kfac_cross_entropy_derivation, CE.unit_wise_cross_entropy_derivation,
                                     CE.authors_variants_derivation])
def test_derivations_check(builder):
    d = builder()
    assert d.verified, [(s.name, s.status, s.detail) for s in d.failed_steps()]
    assert all(s.status == "checked" for s in d.steps) and len(d.steps) >= 3


def test_a_wrong_step_fails():
    """The derivation machinery is not vacuous: the residual-map identity with M = D^{-1/2} (no Pi) fails."""
    d = CE.factorisation_derivation(3)
    q = sp.symbols("q1:4", positive=True)
    Dh, Dih = sp.diag(*q), sp.diag(*[1 / x for x in q])
    P = sp.eye(3) - sp.Matrix(q) * sp.Matrix(q).T
    step = d.add_step("wrong", (Dh * P * Dih).applyfunc(sp.expand), sp.eye(3) - sp.ones(3, 3) / 3)
    assert not step.check()


@pytest.mark.parametrize("L", range(2, 9))
@pytest.mark.parametrize("C", (2, 3, 10))
def test_layerwise_constants_are_the_squared_loss_ones(L, C):
    for name in ("exact", "block_diagonal", "block_tridiagonal"):
        mse = isotropy_constant(name, L)
        ce = isotropy_constant(name, L, n_outputs=C, loss="cross_entropy")
        assert ce == mse
    assert isotropy_constant("block_tridiagonal", L, n_outputs=C, loss="cross_entropy") == sp.ceiling(sp.Rational(L, 3))


def test_symbolic_depth_and_conditions():
    Ls = sp.Symbol("L", positive=True, integer=True)
    assert isotropy_constant("block_tridiagonal", Ls, n_outputs=3, loss="cross_entropy") == sp.ceiling(Ls / 3)
    r = isotropy_result("block_diagonal", 4, n_outputs=3, loss="cross_entropy")
    assert any("probability space" in c for c in r.conditions)
    assert any("N (C - 1)" in c for c in r.conditions)
    assert r.derivation.verified


def test_kfac_value_and_transformed_width_condition():
    assert isotropy_constant("kfac", 3, n_samples=6, input_dim=12, n_outputs=3, loss="cross_entropy") == 13
    # hidden width 12 = N (C - 1): enough for cross-entropy (J~ has C - 1 rows per sample), not for mse (N C = 18)
    widths = [12, 12, 12, 3]
    assert isotropy_constant("kfac", 3, n_samples=6, widths=widths, loss="cross_entropy") == 13
    with pytest.raises(NotIsotropic):
        isotropy_constant("kfac", 3, n_samples=6, widths=widths, n_outputs=3)
    r = isotropy_result("kfac", 3, n_samples=6, input_dim=12, n_outputs=3, loss="cross_entropy")
    assert any("H_n equal" in c for c in r.conditions)


def test_unit_wise_binary_and_multiclass():
    assert isotropy_constant("unit_wise", widths=[8, 64, 64, 2], activation="tanh", loss="cross_entropy") == 130
    assert isotropy_constant("unit_wise", widths=[8, 64, 64, 2], activation="relu", loss="cross_entropy") == 66
    with pytest.raises(NotIsotropic, match="uniform"):
        isotropy_constant("unit_wise", widths=[8, 64, 64, 3], activation="tanh", loss="cross_entropy")


@pytest.mark.parametrize("name", ("diagonal", "ekfac"))
def test_not_isotropic_stays_not_isotropic(name):
    with pytest.raises(NotIsotropic, match="under cross-entropy"):
        isotropy_constant(name, 3, n_samples=6, input_dim=12, n_outputs=3, loss="cross_entropy")


def test_bad_arguments():
    with pytest.raises(ValueError, match="C >= 2"):
        isotropy_constant("exact", 3, n_outputs=1, loss="cross_entropy")
    with pytest.raises(ValueError, match="loss='hinge' is unknown"):
        isotropy_constant("exact", 3, loss="hinge")
    with pytest.raises(ValueError, match=r"hessians has shape"):
        CE.kfac_deviation(np.ones((3, 2)), 3)
    with pytest.raises(ValueError, match="eigenvalues"):
        CE.normalised_gaussian_moments([1.0, 0.0])


def test_kfac_formulas():
    rng = np.random.default_rng(0)
    for c in (2, 3, 5):
        p = _softmax(rng.standard_normal((7, c)))
        Hs = _hessians(p)
        P = CE.kfac_probability_operator(Hs, 3)
        Pi = CE.projector(7, c)
        a = np.trace(P) / (7 * (c - 1))
        assert abs(a - (7 * 2 + 1)) < 1e-10                       # mean eigenvalue N(L-1)+1, exactly
        dev = np.linalg.norm(P - a * Pi) / (a * np.linalg.norm(Pi))
        assert abs(dev - CE.kfac_deviation(Hs, 3)) < 1e-12 * max(1.0, dev) + 1e-14
        if c == 2:                                                  # closed form: CV(p0 p1) / alpha
            h = p[:, 0] * p[:, 1]
            assert abs(CE.kfac_deviation(Hs, 3) - h.std() / h.mean() / 15) < 1e-12
    same = np.repeat(_hessians(_softmax(rng.standard_normal((1, 4)))), 5, axis=0)
    assert CE.kfac_deviation(same, 3) < 1e-14
    # mutation: the deviation of H_n itself (not H_n - Hbar) would not vanish for equal H_n
    Hbar_pinv = np.linalg.pinv(same.mean(axis=0))
    assert np.linalg.norm(same @ Hbar_pinv) > 1.0


def test_kfac_first_order_in_the_output_spread():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((6, 4))
    ratios = [CE.kfac_deviation(_hessians(_softmax(s * g)), 3) / CE.kfac_deviation_first_order(s * g, 3)
              for s in (1e-2, 1e-3)]
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) < 2e-2          # -> 1, error O(s)
    g2 = rng.standard_normal((6, 2))
    dev = [CE.kfac_deviation(_hessians(_softmax(s * g2)), 3) for s in (1e-2, 2e-2)]
    assert abs(np.log2(dev[1] / dev[0]) - 2) < 0.05                # C = 2: quadratic in the spread


def test_normalised_gaussian_moments_monte_carlo():
    lam = np.array([0.05, 0.2, 1.0])
    m = CE.normalised_gaussian_moments(lam)
    assert abs(m.sum() - 1) < 1e-9 and np.all(np.diff(m) > 0)
    g = np.random.default_rng(42).standard_normal((200_000, 3))
    w = lam * g ** 2
    samples = w / w.sum(axis=1, keepdims=True)
    mc, se = samples.mean(axis=0), samples.std(axis=0) / np.sqrt(len(g))
    assert np.all(np.abs(mc - m) < 4 * se)


def test_unit_wise_limit_at_uniform_outputs():
    c, n, M = 4, 3, 100.0
    Hs = _hessians(np.full((n, c), 1.0 / c))
    T = CE.unit_wise_limit_operator(Hs, M)
    assert np.allclose(T, (M / (c - 1) + c / (c - 1)) * CE.projector(n, c), atol=1e-9)
    p = np.array([[0.7, 0.2, 0.1]])
    out = CE.unit_wise_output_operator(_hessians(p))
    assert abs(np.trace(out) - 3) < 1e-12          # three output units, one rank-one projection each


def test_binary_newton_margin():
    assert abs(CE.binary_newton_margin(0.0) - 2.0) < 1e-15
    m = sp.Symbol("m", real=True)
    assert sp.simplify(CE.binary_newton_margin(m) - (m + 1 + sp.exp(-m))) == 0
