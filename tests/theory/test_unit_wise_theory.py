"""Unit-wise NGD: per-unit projections, alpha = gamma sum M_l + 1, binomial spread, C > 1 failure."""
import numpy as np
import pytest
import sympy as sp

from numerics.sweeps import fit_power_law
from theory.activations import get_activation
from theory.non_isotropic import NotIsotropic
from theory.unit_wise_theory import (active_count_moments, multi_output_derivation, unit_wise_alpha,
                                     unit_wise_derivation, unit_wise_isotropy, unit_wise_operator,
                                     unit_wise_operator_predicted)

# exact finite-width identities: SVD projections of <= 16 x 16 blocks summed over <= ~100 units:
# float64 error ~1e-12 per entry relative to O(M) entries; 1e-9 is safe and far below violations.
TOL = 1e-9


def _factors(X, widths, activation, rng):
    """One random NTK-parameterised MLP (no bias): Z_l (N, M_{l-1}) and Delta_l (N, C, M_l), backprop."""
    act = get_activation(activation)
    L, N, C = len(widths) - 1, X.shape[0], widths[-1]
    Ws = [rng.standard_normal((widths[l + 1], widths[l])) for l in range(L)]
    Zs, us, h = [], [], X
    for l in range(L):
        Zs.append(h / np.sqrt(widths[l]))
        u = Zs[-1] @ Ws[l].T
        us.append(u)
        h = act.phi(u)
    Ds = [None] * L
    Ds[-1] = np.broadcast_to(np.eye(C), (N, C, C)).copy()
    for l in range(L - 2, -1, -1):  # delta_l = phi'(u_l) * (W_{l+1}^T delta_{l+1}) / sqrt(M_l)
        back = np.einsum("ncj,ji->nci", Ds[l + 1], Ws[l + 1]) / np.sqrt(widths[l + 1])
        Ds[l] = act.dphi(us[l])[:, None, :] * back
    return Ds, Zs


def _inputs(N, M0, rng):
    X = rng.standard_normal((N, M0))
    return X / np.linalg.norm(X, axis=1, keepdims=True) * np.sqrt(M0)


def test_relu_operator_is_diagonal_count():
    rng = np.random.default_rng(0)
    N, widths = 6, [8, 12, 10, 1]
    Ds, Zs = _factors(_inputs(N, 8, rng), widths, "relu", rng)
    op = unit_wise_operator(Ds, Zs)
    pred = unit_wise_operator_predicted(Ds)
    assert np.abs(op - pred).max() < TOL
    counts = 1 + sum((np.abs(D[:, 0, :]) > 0).sum(axis=1) for D in Ds[:-1])
    assert np.abs(op - np.diag(counts)).max() < TOL
    assert np.std(counts) > 0  # relu: sample-dependent counts, not exactly isotropic


@pytest.mark.parametrize("activation", ["tanh", "erf", "leaky_relu"])
def test_nonvanishing_derivative_is_exact(activation):
    rng = np.random.default_rng(1)
    N, widths = 6, [8, 11, 9, 1]
    Ds, Zs = _factors(_inputs(N, 8, rng), widths, activation, rng)
    alpha = unit_wise_alpha(widths, activation)
    assert alpha == 11 + 9 + 1
    assert np.abs(unit_wise_operator(Ds, Zs) - float(alpha) * np.eye(N)).max() < TOL
    assert unit_wise_isotropy(widths, activation).exact_at_finite_width


def test_relu_count_is_binomial():
    """Active-unit count of one sample over 400 independent relu nets: mean gamma sum M + 1, variance
    gamma(1-gamma) sum M (= 33 and 16 here).  Tolerances: 4 standard errors (mean: sqrt(16/400) = 0.2;
    sample variance: 16 sqrt(2/399) = 1.13)."""
    rng = np.random.default_rng(2)
    widths, R = [8, 32, 32, 1], 400
    X = _inputs(3, 8, rng)
    counts = []
    for _ in range(R):
        Ds, _ = _factors(X, widths, "relu", rng)
        counts.append(1 + sum(int((np.abs(D[0, 0]) > 0).sum()) for D in Ds[:-1]))
    mean, var = active_count_moments([32, 32], sp.Rational(1, 2))
    assert abs(np.mean(counts) - float(mean)) < 4 * 0.2
    assert abs(np.var(counts, ddof=1) - float(var)) < 4 * 1.13


def test_relu_isotropy_error_shrinks_like_inverse_sqrt_width():
    """Relative spread of the diagonal (the only deviation: off-diagonals are exactly 0) ~ M^-1/2."""
    rng = np.random.default_rng(3)
    widths_sweep = [64, 128, 256, 512, 1024, 2048]
    errors = []
    for M in widths_sweep:
        errs = []
        for _ in range(6):
            Ds, _ = _factors(_inputs(8, 16, rng), [16, M, M, 1], "relu", rng)
            diag = unit_wise_operator_predicted(Ds).diagonal()
            errs.append(np.std(diag) / np.mean(diag))
        errors.append(np.mean(errs))
    fit = fit_power_law(widths_sweep, errors)
    # predicted slope -1/2 (binomial spread / linear mean); 6 widths x 6 nets: stderr of slope ~0.05
    assert -0.75 < fit.slope < -0.3


def test_multi_output_fails_at_finite_width():
    rng = np.random.default_rng(4)
    N, C, widths = 4, 2, [6, 9, 8, 2]
    Ds, Zs = _factors(_inputs(N, 6, rng), widths, "tanh", rng)
    op = unit_wise_operator(Ds, Zs)
    assert np.abs(op - unit_wise_operator_predicted(Ds)).max() < TOL  # blockdiag of rank-one projections
    # trace per sample = (#units) + C, so the mean diagonal is sum M / C + 1 exactly (tanh: all active)
    assert abs(np.mean(np.diag(op)) - ((9 + 8) / C + 1)) < TOL
    assert np.abs(op - np.mean(np.diag(op)) * np.eye(N * C)).max() > 1e-2  # not alpha I
    with pytest.raises(NotIsotropic, match="C = 2") as info:
        unit_wise_alpha(widths, "tanh")
    assert info.value.failed_assumption == "C = 1 (single output)"
    assert info.value.derivation.verified
    asym = unit_wise_isotropy(widths, "tanh", allow_multi_output_asymptotic=True)
    assert asym.value == sp.Rational(17, 2) + 1 and not asym.exact_at_finite_width


def test_multi_output_relative_deviation_shrinks():
    """C = 2: the C x C blocks approach (sum M / C + 1) I with relative error ~ M^-1/2 (rotation
    invariance of the output weights) -- isotropy is lost at finite width, recovered only as M -> oo."""
    rng = np.random.default_rng(5)
    widths_sweep = [64, 128, 256, 512, 1024]
    errors = []
    for M in widths_sweep:
        errs = []
        for _ in range(8):
            Ds, _ = _factors(_inputs(4, 8, rng), [8, M, M, 2], "tanh", rng)
            op = unit_wise_operator_predicted(Ds)
            a = np.mean(np.diag(op))
            errs.append(np.abs(op - a * np.eye(len(op))).max() / a)
        errors.append(np.mean(errs))
    fit = fit_power_law(widths_sweep, errors)
    # predicted slope -1/2 (O(sqrt M) off-diagonal sums over O(M) diagonal); 8 nets per width
    assert -0.8 < fit.slope < -0.3


def test_narrow_input_breaks_projection_form():
    rng = np.random.default_rng(6)
    N, widths = 8, [4, 12, 12, 1]  # M_0 = 4 < N: Z_1 has rank 4
    Ds, Zs = _factors(_inputs(N, 4, rng), widths, "tanh", rng)
    op = unit_wise_operator(Ds, Zs)
    assert np.abs(op - unit_wise_operator_predicted(Ds)).max() > 1e-2
    with pytest.raises(NotIsotropic, match="M_0"):
        unit_wise_alpha(widths, "tanh", n_samples=N)


def test_symbolic_and_gamma():
    M, L = sp.symbols("M L", positive=True, integer=True)
    assert sp.expand(unit_wise_alpha(M, "relu", depth=L) - (M * (L - 1) / 2 + 1)) == 0
    assert sp.expand(unit_wise_alpha(M, "tanh", depth=L) - (M * (L - 1) + 1)) == 0
    assert unit_wise_alpha([784, 512, 512, 1], "relu") == 513
    res = unit_wise_isotropy([784, 512, 512, 1], "relu")
    assert not res.exact_at_finite_width and any("infinite width" in c for c in res.conditions)


def test_derivations_verified():
    for act in ("relu", "tanh", "erf"):
        d = unit_wise_derivation(act)
        assert d.verified, [s.name for s in d.failed_steps()]
    assert multi_output_derivation().verified


def test_argument_errors():
    with pytest.raises(ValueError, match="n_outputs"):
        unit_wise_alpha([8, 10, 3], "relu", n_outputs=2)
    with pytest.raises(ValueError, match="depth"):
        unit_wise_alpha(512, "relu")
    with pytest.raises(ValueError, match="widths"):
        unit_wise_alpha([8], "relu")
    with pytest.raises(ValueError, match="activation"):
        unit_wise_alpha([8, 10, 1], "nope")


def test_operators_reject_bad_factors_by_name():
    """NaN factors, mismatched sample counts or no layers raise naming the argument (never NaN out)."""
    D = np.array([[1.0, 0.0], [0.5, 2.0]])
    Z = np.eye(2)
    bad = D.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"^Deltas\[1\] contains a non-finite value nan at index \(1, 0\)"):
        unit_wise_operator_predicted([D, bad])
    with pytest.raises(ValueError, match=r"^Deltas\[0\] contains a non-finite value nan"):
        unit_wise_operator([bad], [Z])
    with pytest.raises(ValueError, match=r"^Zs\[0\] contains a non-finite value .*nan.* at index \(1, 0\)"):
        unit_wise_operator([D], [bad])
    with pytest.raises(ValueError, match=r"Deltas\[0\] has N = 2 samples, expected 3 \(the rows of the layer inputs\)"):
        unit_wise_operator([D], [np.eye(3)])
    with pytest.raises(ValueError, match="one entry per layer, got 1 and 2"):
        unit_wise_operator([D], [Z, Z])
    with pytest.raises(ValueError, match=r"Deltas\[0\] must be a non-empty \(N, M\) or \(N, C, M\) array"):
        unit_wise_operator_predicted([np.ones(3)])
    for empty in (lambda: unit_wise_operator([], []), lambda: unit_wise_operator_predicted([])):
        with pytest.raises(ValueError, match="at least one layer"):
            empty()
    # C = 2: the block-diagonal assembly places sample n's C x C block at rows/cols [2n, 2n + 2)
    D3 = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])     # (N=2, C=2, M=2)
    expected = np.zeros((4, 4))
    expected[:2, :2] = np.eye(2)                      # two orthogonal unit-norm deltas
    expected[2:, 2:] = np.ones((2, 2))                # both units project onto (1, 1)/sqrt 2, twice
    np.testing.assert_allclose(unit_wise_operator_predicted([D3]), expected, rtol=0, atol=1e-15)


def test_active_count_moments_is_the_one_alpha_formula(monkeypatch):
    """unit_wise_isotropy (C = 1 and the C > 1 asymptotic constant) takes alpha from active_count_moments:
    a mutation there moves every value, so no second copy of the formula can drift."""
    import theory.unit_wise_theory as T

    M, L = sp.symbols("M L", positive=True)
    assert active_count_moments([512, 512], 1, n_outputs=2) == (513, 0)
    assert active_count_moments((L - 1) * M, sp.Rational(1, 2))[0] == sp.expand((L - 1) * M / 2 + 1)
    assert unit_wise_isotropy(M, "relu", depth=3).value == M + 1
    original = T.active_count_moments
    monkeypatch.setattr(T, "active_count_moments", lambda h, g, n_outputs=1: (original(h, g, n_outputs)[0] * 2,
                                                                             original(h, g, n_outputs)[1]))
    assert unit_wise_alpha([784, 512, 512, 1], "relu") == 1026
    assert unit_wise_isotropy([12, 64, 64, 2], "tanh", allow_multi_output_asymptotic=True).value == 130
    assert unit_wise_isotropy(M, "relu", depth=3).value == 2 * M + 2
