"""EKFAC theory (theory.approximations.ekfac): the checked derivation, the Hadamard-frame identity against
the definition, the flat cases, the registered isotropy decisions, and the infinite-width operator from
the analytic kernels (train and test rows)."""
import numpy as np
import pytest
import sympy as sp

from theory.approximations import ekfac as E
from theory.isotropy import NotIsotropic, isotropy_constant, isotropy_result
from theory.kernels import analytic_kernels
from theory.kfac_theory import kfac_layer_operator
from theory.registry import approximation_label, theory_entry, theory_names
from theory.tolerances import EXACT_TOL


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def iso(T):
    a = np.mean(np.diag(T))
    return float(np.linalg.norm(T - a * np.eye(len(T))) / (a * np.sqrt(len(T))))


def sphere(rng, n, dim):
    X = rng.standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# the derivation and the finite identities
# ---------------------------------------------------------------------------------------------
def test_derivation_is_checked_step_by_step():
    d = E.ekfac_derivation()
    assert d.verified and len(d.steps) >= 15
    names = " ".join(s.name for s in d.steps)
    for word in ("eigenvalue correction", "sum_ji u_ji u_ji^T", "trace identity", "not isotropic", "K-FAC",
                 "test kernel", "flat W", "N = 2", "relu", "output layer", "infinite width"):
        assert word in names, word
    assert sp.simplify(d.conclusion - (sp.Symbol("N", positive=True, integer=True)
                                       * (sp.Symbol("L", positive=True, integer=True) - 1) + 1)) == 0


def test_a_broken_step_fails():
    d = E.ekfac_derivation()                       # an independent copy (cached_derivation)
    step = next(s for s in d.steps if s.name.startswith("trace identity"))
    step.rhs = sp.Integer(3)                       # K-FAC's value per sample, not EKFAC's pair count
    assert not d.check() and step.status == "failed"
    assert E.ekfac_derivation().verified           # the cache is untouched


@pytest.mark.parametrize("shape", [(4, 1, 9, 6), (4, 2, 11, 5), (3, 1, 2, 7), (5, 1, 8, 3)])
def test_frame_equals_definition(shape):
    # (N, C, M_l, m): generic; C = 2; a narrow layer M_l < N C; a narrow input m < N
    n, c, M, m = shape
    rng = np.random.default_rng(sum(shape))
    D, Z = rng.standard_normal((n, c, M)), rng.standard_normal((n, m))
    frame = E.ekfac_layer_operator(D, Z)
    assert rel(frame, E.ekfac_layer_operator_dense(D, Z)) < 1e-9
    pairs = min(n * c, M) * min(n, m)
    assert abs(np.trace(frame) - pairs) < EXACT_TOL * pairs
    assert np.allclose(frame, frame.T, atol=1e-12)
    lam = np.linalg.eigvalsh(frame)
    assert lam.min() > -1e-10                                          # a sum of projections is PSD


def test_frame_is_not_kfac_for_generic_bases_but_is_for_flat_ones():
    rng = np.random.default_rng(0)
    D, Z = rng.standard_normal((4, 1, 9)), rng.standard_normal((4, 6))
    assert rel(E.ekfac_layer_operator(D, Z), kfac_layer_operator(D, Z)) > 0.05
    H = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], float) / 2
    Zf = H @ np.diag([2.0, 1.3, 0.7, 0.2]) @ np.linalg.qr(rng.standard_normal((6, 4)))[0].T   # flat W
    assert E.flatness(np.linalg.eigh(Zf @ Zf.T)[1], np.ones((4, 1)) / 2, 4)[0] < 1e-12
    assert rel(E.ekfac_layer_operator(D, Zf), kfac_layer_operator(D, Zf)) < 1e-10
    assert rel(E.ekfac_layer_operator(D, Zf), 4 * np.eye(4)) < 1e-10


def test_hadamard_weights_and_flatness():
    W = np.eye(3)
    V = np.full((3, 1), 1 / np.sqrt(3))
    np.testing.assert_allclose(E.hadamard_weights(V, W), np.full((1, 3), 1 / 3))
    assert E.flatness(W, V, 3) == pytest.approx((2.0, 0.0))
    # C = 2: the per-sample mass of a backward eigenvector sums over outputs
    V2 = np.kron(np.ones((3, 1)) / np.sqrt(3), np.array([[0.6], [0.8]]))
    assert E.flatness(W, V2, 3, 2)[1] < 1e-15
    np.testing.assert_allclose(E.frame_operator(V2, W, 2), np.kron(np.eye(3), np.outer([0.6, 0.8], [0.6, 0.8])),
                               atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the registered isotropy decisions
# ---------------------------------------------------------------------------------------------
def test_registry_entry():
    entry = theory_entry("ekfac")
    assert "ekfac" in theory_names() and entry.label == "EKFAC" == approximation_label("ekfac")
    assert entry.citation == "arXiv:1806.03884" and entry.test_kernel is not None
    assert entry.module == "theory.approximations.ekfac"


def test_isotropic_cases():
    assert isotropy_constant("ekfac", depth=1, n_samples=10) == 1
    assert isotropy_constant("ekfac", depth=4, n_samples=1) == 4
    res = isotropy_result("ekfac", depth=3, n_samples=2)
    assert res.value == 5 and not res.exact_at_finite_width
    assert "distinct inputs (relu-type" in res.conditions[0]
    assert "equal-norm inputs" in isotropy_result("ekfac", depth=3, n_samples=2, activation="tanh").conditions[0]
    L = sp.Symbol("L", positive=True, integer=True)
    assert sp.simplify(isotropy_constant("ekfac", depth=L, n_samples=2) - (2 * L - 1)) == 0
    lin = isotropy_result("ekfac", depth=4, n_samples=7, activation="linear")
    assert lin.value == 4 and lin.exact_at_finite_width


@pytest.mark.parametrize("n", [3, 8, sp.Symbol("N", positive=True, integer=True)])
def test_generic_settings_are_not_isotropic(n):
    with pytest.raises(NotIsotropic) as info:
        isotropy_constant("ekfac", depth=3, n_samples=n)
    assert info.value.failed_assumption == E.FAILED_ASSUMPTION
    assert info.value.derivation is not None and info.value.derivation.verified
    assert "Hadamard frame" in info.value.reason


def test_bad_or_narrow_settings():
    with pytest.raises(ValueError, match="needs n_samples"):
        isotropy_constant("ekfac", depth=3)
    with pytest.raises(NotIsotropic, match="rho"):
        isotropy_constant("ekfac", depth=3, n_samples=2, damping=0.1)
    with pytest.raises(NotIsotropic, match="M_1 = 3 < N C = 4"):
        isotropy_constant("ekfac", widths=[6, 3, 5, 2], n_samples=2)
    with pytest.raises(NotIsotropic, match="M_0 \\+ bias = 3 < N"):
        isotropy_constant("ekfac", depth=1, n_samples=5, input_dim=3)
    with pytest.raises(NotIsotropic, match="linear net"):
        isotropy_constant("ekfac", widths=[8, 4, 6, 1], n_samples=6, activation="linear")


# ---------------------------------------------------------------------------------------------
# infinite width
# ---------------------------------------------------------------------------------------------
def test_limit_operator_has_kfac_trace_but_is_not_isotropic():
    X = sphere(np.random.default_rng(1), 8, 16)
    k = analytic_kernels(X, depth=3, activation="relu")
    T = E.ekfac_limit_operator(k)
    assert abs(np.mean(np.diag(T)) - (8 * 2 + 1)) < 1e-9      # the trace identity in the limit
    assert iso(T) > 0.05


def test_two_samples_are_flat_in_the_limit():
    rng = np.random.default_rng(2)
    X = sphere(rng, 2, 5) * np.array([[1.0], [2.5]])
    assert iso(E.ekfac_limit_operator(analytic_kernels(X, depth=3, activation="relu"))) < 1e-12
    assert iso(E.ekfac_limit_operator(analytic_kernels(X, depth=3, activation="leaky_relu"))) < 1e-12
    # tanh: the backward diagonal depends on the norms -- not flat, unless the norms are equal
    assert iso(E.ekfac_limit_operator(analytic_kernels(X, depth=3, activation="tanh", sigma_w2=1.5))) > 0.01
    Xe = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert iso(E.ekfac_limit_operator(analytic_kernels(Xe, depth=3, activation="tanh", sigma_w2=1.5))) < 1e-12


def test_test_kernel_on_training_rows_is_the_frame_and_registered():
    from proofs.evidence import analytic_test_operator

    rng = np.random.default_rng(3)
    X, Xt = sphere(rng, 5, 6), sphere(rng, 3, 6)
    k = analytic_kernels(X, depth=3)
    assert rel(E.ekfac_test_kernel_from_analytic(k, k), E.ekfac_limit_operator(k)) < 1e-12
    T = analytic_test_operator("ekfac", X, Xt, 3)
    assert T.shape == (3, 5)
    assert rel(T, E.ekfac_test_kernel_from_analytic(k, analytic_kernels(Xt, X, depth=3))) < 1e-14
    with pytest.raises(ValueError, match="L entries"):
        E.ekfac_test_kernel(k.nngp_layers, k.backward[:2], k.nngp_layers, k.backward)


def test_finite_width_operator_approaches_the_limit():
    """A fixed draw (seeded): the relative error to the analytic operator falls with width."""
    from numerics.approximations.ekfac import EKFACApproximation
    from numerics.network import MLP

    rng = np.random.default_rng(4)
    X, Xt = sphere(rng, 3, 4), sphere(rng, 2, 4)
    k = analytic_kernels(X, depth=2)
    assert min(min(g) for g in E.limit_eigengaps(k)[:-1]) > 0.05
    T, Tt = E.ekfac_limit_operator(k), E.ekfac_test_kernel_from_analytic(k, analytic_kernels(Xt, X, depth=2))
    errs = []
    for M in (256, 65536):
        e = [rel(EKFACApproximation(MLP([4, M, 1], seed=s), X).operator(Xt), Tt) for s in range(4)]
        errs.append(np.mean(e))
    assert errs[1] < 0.25 * errs[0]                             # 256x the width: M^-1/2 predicts 1/16


def test_limit_eigengaps():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])                      # orthogonal, equal norms: Sigma^(1) = I
    gaps = E.limit_eigengaps(analytic_kernels(X, depth=2))
    assert gaps[0][0] == 0.0 and gaps[0][1] > 0.1 and gaps[1][1] == float("inf")
