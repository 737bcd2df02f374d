"""theory.lemmas: every lemma's symbolic derivation checks, and the numeric checks hold on large
random instances with tolerances c * eps * cond (constants justified in each check's docstring),
while a deliberately wrong variant of each identity is caught."""
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from numerics.sweeps import fit_power_law
from theory import lemmas as L

SEEDS = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def catalogue():
    return L.all_lemmas()


def _latex_unsafe(text):
    """Characters that break LaTeX text mode when they appear outside $...$ (escaped \\_ is fine)."""
    outside = re.sub(r"\$[^$]*\$", "", text).replace(r"\_", "")
    return [c for c in "^_&%#" if c in outside]


# ------------------------------------------------------------------------------ symbolic
def test_catalogue_has_every_lemma(catalogue):
    titles = [d.title for d in catalogue]
    assert titles == ["Push-through identity", "Pseudo-inverse as the damping limit",
                      "Kronecker pseudo-inverse and quadratic form", "Khatri-Rao Gram identity",
                      "Pseudo-inverse of a product", "Layer-wise NTK telescoping"]


@pytest.mark.parametrize("index", range(6))
def test_every_step_checked(catalogue, index):
    d = catalogue[index]
    assert len(d.steps) >= 2
    assert [s.status for s in d.steps] == ["checked"] * len(d.steps), [(s.name, s.status, s.detail) for s in d.steps]
    assert d.verified


@pytest.mark.parametrize("index", range(6))
def test_renders_latex_and_markdown(catalogue, index):
    d = catalogue[index]
    tex, md = d.to_latex(), d.to_markdown()
    assert d.title in tex and r"\begin{enumerate}" in tex and "(checked)" in tex and "(failed)" not in tex
    assert md.count("✔") == len(d.steps)
    assert d.to_dict()["verified"] is True


def test_polynomial_checker_rejects_a_wrong_identity():
    # the checker the lemmas rely on must be able to fail: A (rho I + AB) != (rho I + BA) A generically
    A, B = L._generic_matrix("a", 2, 2), L._generic_matrix("b", 2, 2)
    rho = sp.Symbol("rho")
    assert not L._expands_to_zero(A * (rho * sp.eye(2) + A * B) - (rho * sp.eye(2) + B * A) * A)
    assert L._expands_to_zero(A * (rho * sp.eye(2) + B * A) - (rho * sp.eye(2) + A * B) * A)


def test_penrose_symbolic_detects_a_non_pseudo_inverse():
    x, y = L._generic_vector("x", 2), L._generic_vector("y", 3)
    M = x * y.T
    assert L.penrose_symbolic(M, y * x.T, (x.T * x)[0] * (y.T * y)[0]) == (0, 0, 0, 0)
    assert max(L.penrose_symbolic(M, y * x.T, (x.T * x)[0])) == 1   # wrong normalisation


def test_counterexample_really_is_one():
    A, B, C = (L.COUNTEREXAMPLE[k] for k in "ABC")
    assert A.rank() == A.cols and C.rank() == C.rows       # hypotheses of the naive rule hold ...
    assert B.shape == (2, 1)                                # ... except B is not invertible
    true_pinv = (A * B * C).pinv()
    naive = C.pinv() * B.pinv() * A.pinv()
    assert true_pinv == sp.Matrix([[sp.Rational(1, 5), sp.Rational(2, 5)]])
    assert naive == sp.Matrix([[sp.Rational(1, 2), sp.Rational(1, 4)]])
    assert L.penrose_symbolic(A * B * C, naive) == (0, 0, 1, 0)   # (ABC) X = [[1/2,1/4],[1,1/2]] is not symmetric
    num = {k: np.array(v, dtype=float) for k, v in L.COUNTEREXAMPLE.items()}
    # exact gap |[1/2,1/4]-[1/5,2/5]|/|[1/5,2/5]| = sqrt(0.1125/0.2) = 0.75; SVD rounding ~1e-16
    assert L.triple_product_pinv_gap(num["A"], num["B"], num["C"]) == pytest.approx(0.75, abs=1e-14)


def test_counterexample_in_the_conclusion(catalogue):
    conc = catalogue[4].conclusion
    assert conc["counterexample_true"] != conc["counterexample_naive"]


@pytest.mark.parametrize("index", range(6))
def test_text_parts_are_latex_safe(catalogue, index):
    # report.tex puts names, assumptions and justifications in text mode: math must sit in $...$
    d = catalogue[index]
    for text in [*d.assumptions, *(s.name for s in d.steps), *(s.justification for s in d.steps)]:
        assert not _latex_unsafe(text), text


@pytest.mark.parametrize("p, n", [(2, 1), (3, 3)])
def test_push_through_other_sizes(p, n):
    # the size-dependent step (Sylvester factor rho^(p-n)) must hold for square and tall cases too
    assert L.push_through_lemma(p, n).verified


@pytest.mark.parametrize("rows, cols", [(1, 2), (1, 3)])
def test_pinv_limit_other_sizes(rows, cols):
    # (1, 3): P - N = 2 exercises the division by rho^(P-N) beyond a simple pole
    assert L.pinv_limit_lemma(rows, cols).verified


def test_symbolic_lemmas_reject_bad_sizes():
    with pytest.raises(ValueError, match="p=2 is not allowed"):
        L.push_through_lemma(2, 3)
    with pytest.raises(ValueError, match="rows=3 must be < cols=3"):
        L.pinv_limit_lemma(3, 3)
    with pytest.raises(TypeError, match="max_depth"):
        L.ntk_telescoping_lemma(max_depth=2.5)

# ------------------------------------------------------------------------------ push-through
@settings(max_examples=6, deadline=None)
@given(seed=SEEDS, p=st.integers(150, 250), n=st.integers(20, 60), log_rho=st.floats(-3, 1), psd=st.booleans())
def test_push_through_numeric(seed, p, n, log_rho, psd):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((p, n))
    if psd:   # the NGD case B = A^T / N: any rho > 0 is admissible
        B, rho = A.T / p, 10.0 ** log_rho
    else:     # general B; rho beyond ||A|| ||B|| keeps -rho outside spec(BA)
        B = rng.standard_normal((n, p)) / p
        rho = (1.5 + 10.0 ** log_rho) * np.linalg.norm(A, 2) * np.linalg.norm(B, 2)
    res = L.push_through_check(A, B, rho)
    assert res.passed, res
    assert res.tolerance < 1e-8     # tight enough to be a real test (see the perturbed variant below)


def test_push_through_tolerance_catches_a_wrong_variant():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((200, 50))
    B, rho = A.T / 200, 0.1
    res = L.push_through_check(A, B, rho)
    # same identity with rho off by 1e-6 relative on one side: error ~ 1e-6 * (rho / (rho + lambda)) >> tol
    wrong = np.linalg.solve(rho * (1 + 1e-6) * np.eye(200) + A @ B, A)
    right = A @ np.linalg.inv(rho * np.eye(50) + B @ A)
    assert L._rel_fro(wrong, right) > 100 * res.tolerance


def test_push_through_rejects_bad_input():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match="B has shape"):
        L.push_through_check(A, rng.standard_normal((3, 4)), 1.0)
    with pytest.raises(ValueError, match="condition number"):
        # rho = -(eigenvalue of B A) makes both systems singular
        B = A.T.copy()
        lam = np.linalg.eigvalsh(B @ A)[0]
        L.push_through_check(A, B, -lam)
    with pytest.raises(TypeError, match="rho"):
        L.push_through_check(A, A.T, "1")


# ------------------------------------------------------------------------------ pinv limit
RHOS = np.logspace(-5, -2, 7)


def _slope_band(J, rhos):
    """Exact error per singular value is (rho/s^3) / (1 + rho/s^2): the local log-log slope is
    1 - rho/(s^2 + rho) in [1 - rho_max/s_min^2, 1]."""
    s = np.linalg.svd(J, compute_uv=False)
    s_min = s[s > 1e-10 * s[0]].min()
    return 1.0 - rhos.max() / s_min ** 2, s_min


@pytest.mark.parametrize("rank_deficient", [False, True])
def test_pinv_limit_error_slope_is_one(rank_deficient):
    rng = np.random.default_rng(3)
    if rank_deficient:   # rank 20 < 50 rows: J J^T singular, the limit is still the Moore-Penrose J^+
        J = rng.standard_normal((50, 20)) @ rng.standard_normal((20, 200)) / np.sqrt(20 * 200)
    else:
        J = rng.standard_normal((50, 200)) / np.sqrt(200)
    errors = L.pinv_limit_errors(J, RHOS)
    fit = fit_power_law(RHOS, errors)
    lower, s_min = _slope_band(J, RHOS)
    # band: the exact curvature bound above, widened by 3 standard errors of the fit
    assert lower - 3 * fit.slope_stderr <= fit.slope <= 1.0 + 3 * fit.slope_stderr + 1e-3, (fit.slope, lower)
    assert abs(fit.slope - 1) < 0.05
    # first-order coefficient: error/rho -> ||V S^-3 U^T|| / ||J^+||; deviation <= rho/s_min^2 (second
    # order) plus rounding ~ 1e3 eps ||J||^2 / rho^2 relative (1e-6 at rho = 1e-4)
    rho = 1e-4
    ratio = L.pinv_limit_errors(J, [rho])[0] / rho / L.pinv_limit_first_order(J)
    assert abs(ratio - 1) <= rho / s_min ** 2 + 1e-6


@settings(max_examples=4, deadline=None)
@given(seed=SEEDS, n=st.integers(20, 60), p=st.integers(150, 220))
def test_pinv_limit_slope_random_instances(seed, n, p):
    J = np.random.default_rng(seed).standard_normal((n, p)) / np.sqrt(p)
    fit = fit_power_law(RHOS, L.pinv_limit_errors(J, RHOS))
    lower, _ = _slope_band(J, RHOS)
    assert lower - 3 * fit.slope_stderr <= fit.slope <= 1.0 + 3 * fit.slope_stderr + 1e-3


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, n=st.integers(20, 60), p=st.integers(120, 220))
def test_right_inverse_is_the_pseudo_inverse(seed, n, p):
    res = L.right_inverse_check(np.random.default_rng(seed).standard_normal((n, p)))
    assert res.passed, res


def test_right_inverse_refuses_rank_deficient_J():
    rng = np.random.default_rng(5)
    J = rng.standard_normal((30, 10)) @ rng.standard_normal((10, 80))
    with pytest.raises(ValueError, match="rank 10 < 30 rows"):
        L.right_inverse_check(J)


def test_numerical_pinv_refuses_ambiguous_rank():
    M = np.diag([1.0, 1e-14, 0.0])   # 1e-14 is neither clearly zero nor clearly non-zero
    with pytest.raises(ValueError, match="ambiguous"):
        L.numerical_pinv(M)


# ------------------------------------------------------------------------------ Kronecker
def _low_rank(rng, m, n, r):
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n))


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, mb=st.integers(8, 14), nb=st.integers(8, 14), ma=st.integers(10, 18), na=st.integers(10, 18),
       deficit=st.integers(0, 4))
def test_kronecker_pinv_numeric(seed, mb, nb, ma, na, deficit):
    rng = np.random.default_rng(seed)
    B = _low_rank(rng, mb, nb, min(mb, nb) - deficit)   # rank-deficient factors when deficit > 0
    A = _low_rank(rng, ma, na, min(ma, na) - deficit)
    res = L.kronecker_pinv_check(B, A)
    assert res.passed, res


def test_kronecker_pinv_wrong_order_is_caught():
    rng = np.random.default_rng(8)
    B, A = _low_rank(rng, 12, 15, 9), _low_rank(rng, 12, 15, 7)   # same shapes, so kron(A^+, B^+) is conformable
    res = L.kronecker_pinv_check(B, A)
    wrong = np.kron(L.numerical_pinv(A)[0], L.numerical_pinv(B)[0])
    assert L._rel_fro(wrong, L.numerical_pinv(np.kron(B, A))[0]) > 1e6 * res.tolerance


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, m=st.integers(20, 35), n=st.integers(20, 40))
def test_kronecker_quadratic_form_numeric(seed, m, n):
    rng = np.random.default_rng(seed)
    res = L.kronecker_quadratic_form_check(rng.standard_normal((m, m)), rng.standard_normal((n, n)),
                                           *rng.standard_normal((2, m)), *rng.standard_normal((2, n)))
    assert res.passed, res


# ------------------------------------------------------------------------------ Khatri-Rao
@settings(max_examples=4, deadline=None)
@given(seed=SEEDS, N=st.integers(30, 60), C=st.integers(1, 3), M=st.integers(60, 120), fan_in=st.integers(40, 80))
def test_khatri_rao_gram_numeric(seed, N, C, M, fan_in):
    rng = np.random.default_rng(seed)
    res = L.khatri_rao_gram_check(rng.standard_normal((N, C, M)), rng.standard_normal((N, fan_in)))
    assert res.passed, res


def test_khatri_rao_row_order_matters():
    # the identity is for sample-major rows (n, c); output-major rows give a different matrix
    rng = np.random.default_rng(9)
    Delta, Z = rng.standard_normal((20, 3, 30)), rng.standard_normal((20, 25))
    J = L.explicit_layer_jacobian(Delta, Z)
    output_major = J.reshape(20, 3, -1).transpose(1, 0, 2).reshape(60, -1)
    G = L.khatri_rao_gram(Delta, Z)
    assert np.max(np.abs(output_major @ output_major.T - G)) > 1.0
    assert np.max(np.abs(J @ J.T - G)) <= 1e-9 * np.max(np.abs(G))


def test_khatri_rao_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"Delta must have shape \(N, C, M\)"):
        L.khatri_rao_gram(np.ones((3, 4)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="Z has 2 rows but Delta has N=3"):
        L.khatri_rao_gram(np.ones((3, 1, 4)), np.ones((2, 2)))


# ------------------------------------------------------------------------------ products
@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, m=st.integers(120, 200), r=st.integers(20, 50), n=st.integers(60, 150))
def test_pinv_product_numeric(seed, m, r, n):
    rng = np.random.default_rng(seed)
    res = L.pinv_product_check(rng.standard_normal((m, r)), rng.standard_normal((r, n)))
    assert res.passed, res


def test_pinv_product_requires_full_rank_factors():
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=r"B \(shape \(20, 60\)\) has rank 15: full row rank 20"):
        L.pinv_product_check(rng.standard_normal((80, 20)), _low_rank(rng, 20, 60, 15))


def test_triple_product_rule_fails_for_singular_middle_and_holds_for_invertible():
    rng = np.random.default_rng(12)
    A, C = rng.standard_normal((200, 50)), rng.standard_normal((50, 100))
    singular = _low_rank(rng, 50, 50, 30)
    # generic singular middle factor: O(1) gap, far above any rounding level
    assert L.triple_product_pinv_gap(A, singular, C) > 0.05
    invertible = rng.standard_normal((50, 50))
    kappa = np.linalg.cond(A) * np.linalg.cond(invertible) * np.linalg.cond(C)
    # holds when B is invertible: SVD/Wedin tolerance c eps kappa with c = 6 * 200 (as in pinv_product_check)
    assert L.triple_product_pinv_gap(A, invertible, C) <= 6 * 200 * L.EPS * kappa


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS, k=st.integers(20, 50), n=st.integers(120, 200), deficit=st.integers(0, 15))
def test_orthonormal_conjugation_numeric(seed, k, n, deficit):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, k)))[0].T
    M = _low_rank(rng, k, k, k - deficit)
    res = L.orthonormal_conjugation_pinv_check(U, M)
    assert res.passed, res


def test_conjugation_needs_orthonormal_rows():
    rng = np.random.default_rng(13)
    with pytest.raises(ValueError, match="orthonormal rows"):
        L.orthonormal_conjugation_pinv_check(rng.standard_normal((5, 9)), np.eye(5))


# ------------------------------------------------------------------------------ NTK telescoping
@settings(max_examples=6, deadline=None)
@given(seed=SEEDS, depth=st.integers(1, 8), n=st.integers(50, 150))
def test_ntk_telescoping_numeric(seed, depth, n):
    rng = np.random.default_rng(seed)
    res = L.ntk_telescoping_check(rng.standard_normal((depth, n, n)), rng.standard_normal((depth - 1, n, n)))
    assert res.passed, res


def test_ntk_layer_sum_differs_from_a_wrong_recursion():
    # Theta^(l+1) = Theta^(l) + Sigma^(l+1) (no dotSigma) is not the NTK: the check must see it
    rng = np.random.default_rng(14)
    S, D = rng.uniform(0.5, 1.5, (3, 10, 10)), rng.uniform(0.5, 1.5, (2, 10, 10))
    assert np.max(np.abs(L.ntk_by_layer_sum(S, D) - S.sum(axis=0))) > 0.1
    with pytest.raises(ValueError, match="dot_sigmas must hold"):
        L.ntk_by_recursion(S, D[:1])


# ------------------------------------------------------------------------------ catalogue of numeric checks
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_lemma_checks_all_pass(seed):
    checks = L.numeric_lemma_checks(seed=seed)
    assert sorted(checks) == sorted(L.NUMERIC_CHECK_NAMES)
    for name, res in checks.items():
        assert res.passed, (name, res)
        # the tolerances stay meaningful (far below any O(1) failure of an identity)
        assert res.tolerance < 1e-8, (name, res)


def test_khatri_rao_lemma_agrees_with_numerics_layer_gram():
    # the lemma's explicit J_l (rows kron(delta_{n,c}, z_n)) against numerics.factors.layer_gram on a
    # real network: same matrix up to the rigorous dot-product rounding bound of khatri_rao_gram_check
    from numerics.factors import layer_gram
    from numerics.network import MLP

    rng = np.random.default_rng(15)
    net = MLP([12, 40, 30, 3], activation="tanh", sigma_w2=2.0, sigma_b2=0.1, seed=15)
    factors = net.factors(rng.standard_normal((9, 12)))
    for l in range(1, net.depth + 1):
        Delta, Z = factors.Delta[l - 1], factors.Z[l - 1]
        J = L.explicit_layer_jacobian(Delta, Z)
        check = L.khatri_rao_gram_check(Delta, Z)
        assert check.passed, (l, check)
        G = layer_gram(factors, l)
        norms = np.linalg.norm(J, axis=1)
        assert np.max(np.abs(G - J @ J.T) / np.outer(norms, norms)) <= check.tolerance, l
