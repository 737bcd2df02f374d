"""EKFAC in dual form: the dense oracle (explicit P x P definition), the rho -> 0+ limit of the damped
operator, the exact finite-width Hadamard-frame form, the cases where EKFAC equals K-FAC (N = 1, the output
layer, a flat eigenbasis, deep linear nets), diagnostics, bad input, the registry, and a mutation: K-FAC's
eigenvalue products in place of EKFAC's second moments must be caught."""
import numpy as np
import pytest

import numerics
from numerics.approximations import APPROXIMATIONS, get_approximation
from numerics.approximations import ekfac as ekfac_module
from numerics.approximations.ekfac import EKFACApproximation, ekfac_eigenvalues
from numerics.approximations.kfac import KFACApproximation
from numerics.dense import compare_with_dense, dense_jacobian, dense_layer_jacobian
from numerics.measure import isotropy_error
from numerics.network import MLP
from theory.approximations import ekfac as theory_ekfac
from theory.tolerances import EXACT_TOL

# The dual path and the dense P x P definition compute the same exact identity in float64; the dense side
# solves with G (condition number <= ~1e6 on its range here, checked), so 1e-8 relative is the oracle.
DENSE_RTOL = 1e-8


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def flat(dirs):
    return np.concatenate([np.asarray(d).ravel() for d in dirs])


def make_problem(widths, activation="relu", sigma_b2=0.0, n=4, n2=3, seed=0):
    net = MLP(widths, activation=activation, sigma_w2=2.0 if activation == "relu" else 1.5, sigma_b2=sigma_b2,
              seed=seed)
    rng = np.random.default_rng(seed + 100)
    return (net, rng.standard_normal((n, widths[0])), rng.standard_normal((n2, widths[0])),
            rng.standard_normal((n, widths[-1])))


def hadamard_inputs(lams, dim, seed=0):
    """N = 4 inputs whose Gram X X^T = H diag(lams) H^T / 4 has the flat (Hadamard) eigenvectors."""
    H = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], float) / 2
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, 4)))
    return H @ np.diag(np.sqrt(lams)) @ Q.T


# ---------------------------------------------------------------------------------------------
# the dense oracle
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("damping", [0.0, 0.3])
@pytest.mark.parametrize("activation,sigma_b2", [("relu", 0.0), ("tanh", 0.1)])
def test_fast_equals_dense(n_outputs, damping, activation, sigma_b2):
    net, X, X2, r = make_problem([5, 14, 12, n_outputs], activation, sigma_b2, seed=3)
    approx = EKFACApproximation(net, X, damping=damping)
    errors = compare_with_dense(approx, r, X2=X2)
    assert errors["condition_number"] < 1e6, errors            # the fixed 1e-8 below is meaningful
    assert max(v for k, v in errors.items() if k != "condition_number") < DENSE_RTOL, errors


def test_dense_matrix_is_the_definition():
    """G_l = (U_B (x) U_A) diag(s) (U_B (x) U_A)^T: in its own eigenbasis-of-the-factors coordinates G is
    diagonal with the second moments of the rotated Jacobian rows on the diagonal."""
    net, X, _, _ = make_problem([4, 9, 7, 2], "tanh", 0.2, n=3, seed=1)
    approx = EKFACApproximation(net, X)
    G = approx.dense_matrix()
    offset, n = 0, 3
    for l in range(1, 4):
        Jl = dense_layer_jacobian(approx.factors, l)
        P = Jl.shape[1]
        B, A = KFACApproximation(net, X).kronecker_factors(l)
        Q = np.kron(np.linalg.eigh(B)[1], np.linalg.eigh(A)[1])
        block = Q.T @ G[offset:offset + P, offset:offset + P] @ Q
        s = np.sum((Jl @ Q) ** 2, axis=0) / n
        assert np.max(np.abs(block - np.diag(s))) < 1e-12 * s.max()
        assert np.all(G[offset:offset + P, offset + P:] == 0)            # block-diagonal over layers
        offset += P


def test_small_damping_tends_to_the_pseudo_inverse():
    """(G + rho I)^{-1} -> G^+ on the range the gradient reaches: the operator moves by O(rho / s_min)."""
    net, X, X2, r = make_problem([5, 16, 16, 1], "tanh", 0.1, seed=7)
    limit = EKFACApproximation(net, X)
    s_min = min(float(s[s > 0].min()) for s in limit.eigenvalues)
    errs = []
    for rho in (1e-4 * s_min, 1e-6 * s_min):
        damped = EKFACApproximation(net, X, damping=rho)
        errs.append(rel(damped.operator(X2), limit.operator(X2)))
        assert rel(flat(damped.direction(r)), flat(limit.direction(r))) < 10 * rho / s_min
    assert errs[0] < 1e-3 and errs[1] < 1e-5 and errs[1] < 0.02 * errs[0]


def test_direction_moves_function_by_operator():
    net, X, _, r = make_problem([7, 16, 16, 2], "relu", 0.2, n=3, seed=8)
    for damping in (0.0, 0.05):
        approx = EKFACApproximation(net, X, damping=damping)
        assert rel(dense_jacobian(net, X) @ flat(approx.direction(r)), approx.operator() @ r.ravel()) < 1e-10


# ---------------------------------------------------------------------------------------------
# the exact finite-width structure
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_layer_blocks_are_hadamard_frames_with_trace_equal_to_the_pairs(n_outputs):
    n = 5
    net, X, _, _ = make_problem([6, 30, 30, n_outputs], "tanh", 0.1, n=n, seed=4)
    approx = EKFACApproximation(net, X)
    for l in range(1, 4):
        block = approx.layer_operator(l)
        D, Z = approx.factors.Delta[l - 1], approx.factors.Z[l - 1]
        frame = theory_ekfac.ekfac_layer_operator(D, Z)
        assert rel(block, frame) < EXACT_TOL
        assert rel(block, theory_ekfac.ekfac_layer_operator_dense(D, Z)) < 1e-8
        pairs = (n * n_outputs if l < 3 else n_outputs) * n
        assert abs(np.trace(block) - pairs) < EXACT_TOL * pairs
        assert approx.diagnostics["layers"][l - 1]["frame_trace"] == pairs
    # hence the mean diagonal is K-FAC's alpha N(L-1)+1, though EKFAC is not isotropic
    err, a = isotropy_error(approx.operator())
    assert abs(a - (n * 2 + 1)) < EXACT_TOL * a
    assert err > 0.02


def test_generic_ekfac_differs_from_kfac_and_says_why():
    net, X, _, _ = make_problem([8, 40, 40, 1], "relu", 0.0, n=6, seed=2)
    approx = EKFACApproximation(net, X)
    kfac = KFACApproximation(net, X).operator()
    assert np.max(np.abs(kfac - 13 * np.eye(6))) < 1e-9
    assert rel(approx.operator(), kfac) > 0.02
    d = approx.diagnostics
    assert d["predicted_alpha"] is None
    assert "neither Kronecker factor has a flat eigenbasis" in d["failed_assumption"]
    assert any(f.assumption is theory_ekfac.EKFAC_FLAT for f in d["flags"])
    assert d["layers"][2]["equals_kfac"] and d["layers"][2]["backward_basis_flatness"] < 1e-12   # output layer
    assert not d["layers"][0]["equals_kfac"]


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_one_sample_ekfac_is_kfac_is_the_exact_block(n_outputs):
    # N = 1: W = [1] is flat, so s = b a and G_l = B (x) A = F_ll (K-FAC is exact for one sample)
    net, X, _, _ = make_problem([4, 9, 7, n_outputs], "relu", 0.2, n=1, seed=4)
    G = EKFACApproximation(net, X).dense_matrix()
    assert np.max(np.abs(G - KFACApproximation(net, X).dense_matrix())) < 1e-12 * np.abs(G).max()
    offset = 0
    for l in range(1, 4):
        Jl = dense_layer_jacobian(net.factors(X), l)
        P = Jl.shape[1]
        assert np.max(np.abs(G[offset:offset + P, offset:offset + P] - Jl.T @ Jl)) < 1e-12 * np.abs(G).max()
        offset += P


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_output_layer_is_kfac_and_contributes_identity(n_outputs):
    net, X, _, _ = make_problem([6, 20, 20, n_outputs], "tanh", 0.0, n=5, seed=9)
    approx = EKFACApproximation(net, X)
    last = approx.layer_operator(3)
    assert np.max(np.abs(last - np.eye(5 * n_outputs))) < EXACT_TOL
    info = approx.diagnostics["layers"][2]
    assert info["equals_kfac"] and info["contribution"] == 1.0


def test_depth_one_is_isotropic_with_alpha_one():
    net, X, X2, r = make_problem([6, 2], "relu", 0.0, n=5, seed=1)
    approx = EKFACApproximation(net, X)
    assert np.max(np.abs(approx.operator() - np.eye(10))) < EXACT_TOL
    assert approx.diagnostics["predicted_alpha"] == 1.0 and approx.diagnostics["failed_assumption"] is None


def test_flat_input_eigenbasis_makes_ekfac_equal_to_kfac():
    """Inputs whose Gram has Hadamard (flat) eigenvectors: W_1 is flat at every width, so layer 1 of EKFAC is
    K-FAC's and, with the exact output layer, Theta = (N + 1) I; directions equal K-FAC's."""
    X = hadamard_inputs([4.0, 2.0, 1.0, 0.5], dim=8)
    net = MLP([8, 64, 1], activation="relu", seed=3)
    approx, kfac = EKFACApproximation(net, X), KFACApproximation(net, X)
    assert approx.diagnostics["layers"][0]["input_basis_flatness"] < 1e-12
    assert np.max(np.abs(approx.operator() - 5 * np.eye(4))) < EXACT_TOL * 5
    assert approx.diagnostics["predicted_alpha"] == 5.0 and approx.diagnostics["failed_assumption"] is None
    r = np.random.default_rng(0).standard_normal((4, 1))
    assert rel(flat(approx.direction(r)), flat(kfac.direction(r))) < 1e-10
    X2 = np.random.default_rng(1).standard_normal((3, 8))
    assert rel(approx.operator(X2), kfac.operator(X2)) < 1e-10
    # the same network on generic inputs: EKFAC and K-FAC differ
    Xg = np.random.default_rng(2).standard_normal((4, 8))
    assert rel(EKFACApproximation(net, Xg).operator(), KFACApproximation(net, Xg).operator()) > 0.01


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_deep_linear_nets_are_isotropic_with_alpha_L(n_outputs):
    # delta_{n,c} does not depend on n: V is flat in every layer and each layer contributes P_Z (x) I_C = I
    net, X, _, _ = make_problem([9, 12, 12, 12, n_outputs], "linear", 0.3, n=6, seed=1)
    theta = EKFACApproximation(net, X).operator()
    assert np.max(np.abs(theta - 4 * np.eye(6 * n_outputs))) < 1e-8


def test_test_operator_equals_the_theory_kernel_on_finite_grams():
    # the test-kernel formula of theory, fed the finite-width Grams, is J(x') G^+ J^T / N exactly (C = 1)
    net, X, X2, _ = make_problem([6, 24, 24, 1], "tanh", 0.1, n=5, n2=4, seed=5)
    approx = EKFACApproximation(net, X)
    f, f2 = approx.factors, net.factors(X2)
    grams = lambda A, B: [a[:, 0, :] @ b[:, 0, :].T for a, b in zip(A.Delta, B.Delta)]
    T = theory_ekfac.ekfac_test_kernel([z @ z.T for z in f.Z], grams(f, f), [z2 @ z.T for z2, z in zip(f2.Z, f.Z)],
                                       grams(f2, f))
    assert rel(T, approx.operator(X2)) < 1e-9


def test_operator_chunks_agree(monkeypatch):
    net, X, _, _ = make_problem([5, 16, 16, 2], "relu", 0.1, n=4, seed=6)
    X2 = np.random.default_rng(3).standard_normal((37, 5))
    whole = EKFACApproximation(net, X).operator(X2)
    monkeypatch.setattr(theory_ekfac, "CHUNK_ENTRIES", 200)           # several chunks of rows
    assert np.max(np.abs(EKFACApproximation(net, X).operator(X2) - whole)) < 1e-12 * np.abs(whole).max()


# ---------------------------------------------------------------------------------------------
# the mutation the oracle must catch
# ---------------------------------------------------------------------------------------------
def test_kfac_eigenvalues_in_place_of_ekfac_second_moments_are_caught(monkeypatch):
    net, X, X2, r = make_problem([5, 14, 12, 1], "tanh", 0.1, seed=3)
    assert max(v for k, v in compare_with_dense(EKFACApproximation(net, X), r, X2=X2).items()
               if k != "condition_number") < DENSE_RTOL

    def kfac_products(gb, ga, n_samples, n_outputs=1):        # b_j a_i instead of s_ji
        return np.outer(gb.lam, ga.lam) / n_samples ** 2

    monkeypatch.setattr(ekfac_module, "ekfac_eigenvalues", kfac_products)
    mutant = EKFACApproximation(net, X)
    errors = compare_with_dense(mutant, r, X2=X2)
    assert min(errors["direction"], errors["operator"], errors["test_operator"]) > 1e-3, errors
    # the mutant is K-FAC, which the frame identity (trace aside) tells apart
    assert rel(mutant.operator(), KFACApproximation(net, X).operator()) < 1e-9
    assert rel(mutant.layer_operator(1), theory_ekfac.ekfac_layer_operator(net.factors(X).Delta[0], net.factors(X).Z[0])) > 1e-3


def test_ekfac_eigenvalues_are_second_moments_of_rotated_rows():
    net, X, _, _ = make_problem([4, 10, 8, 2], "relu", 0.3, n=3, seed=2)
    approx = EKFACApproximation(net, X)
    n = 3
    for l in range(1, 4):
        gb, ga = approx.backward_grams[l - 1], approx.input_grams[l - 1]
        D = approx.factors.Delta[l - 1].reshape(6, -1)
        Z = approx.factors.Z[l - 1]
        UB, UA = D.T @ gb.V / np.sqrt(gb.lam), Z.T @ ga.V / np.sqrt(ga.lam)
        s = np.sum((dense_layer_jacobian(approx.factors, l) @ np.kron(UB, UA)) ** 2, axis=0).reshape(
            UB.shape[1], UA.shape[1]) / n
        np.testing.assert_allclose(ekfac_eigenvalues(gb, ga, n, 2), s, rtol=1e-9, atol=1e-12 * s.max())


# ---------------------------------------------------------------------------------------------
# diagnostics, bad input, registry
# ---------------------------------------------------------------------------------------------
def test_damping_is_flagged_and_zero_pairs_counted():
    net, X, _, _ = make_problem([5, 12, 12, 1], "tanh", 0.0, seed=2)
    approx = EKFACApproximation(net, X, damping=0.1)
    assert "rho = 0.1 > 0" in approx.diagnostics["failed_assumption"]
    for info in EKFACApproximation(net, X).diagnostics["layers"]:
        assert info["zero_pairs"] == 0 and info["pairs"] == info["frame_trace"]
        assert np.isfinite(info["eigenvalue_condition"]) and info["eigenvalue_condition"] >= 1


def test_narrow_layer_is_diagnosed_and_still_matches_dense():
    net, X, X2, r = make_problem([6, 3, 9, 2], "tanh", 0.0, n=4, seed=5)   # M_1 = 3 < N C = 8
    approx = EKFACApproximation(net, X)
    errors = compare_with_dense(approx, r, X2=X2)
    assert max(v for k, v in errors.items() if k != "condition_number") < DENSE_RTOL, errors
    assert "rank(Delta_1) = 3 (needs 8)" in approx.diagnostics["failed_assumption"]
    assert approx.diagnostics["layers"][0]["frame_trace"] == 3 * 4


def test_bad_input():
    net, X, _, _ = make_problem([5, 8, 1], "relu", seed=0)
    with pytest.raises(TypeError, match="unexpected option"):
        EKFACApproximation(net, X, damping_mode="exact")
    with pytest.raises(ValueError, match="damping"):
        EKFACApproximation(net, X, damping=-1.0)
    with pytest.raises(ValueError, match="rank_rtol"):
        EKFACApproximation(net, X, rank_rtol=0.0)
    with pytest.raises(TypeError, match="MLP"):
        EKFACApproximation("net", X)
    with pytest.raises(ValueError):
        EKFACApproximation(net, X[:, :3])
    approx = EKFACApproximation(net, X)
    with pytest.raises(ValueError, match="residual has shape"):
        approx.direction(np.ones((3, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        approx.direction(np.full((4, 1), np.nan))
    with pytest.raises(ValueError, match="l=0"):
        approx.layer_operator(0)


def test_registry_finds_it():
    assert get_approximation("ekfac") is EKFACApproximation and EKFACApproximation.name == "ekfac"
    assert "ekfac" in APPROXIMATIONS
    net, X, _, r = make_problem([5, 24, 24, 1], "relu", seed=1)
    T = numerics.function_space_operator(net, X, approximation="ekfac")
    assert rel(T, EKFACApproximation(net, X).operator()) < 1e-12
    Y = np.zeros((4, 1))
    hist = numerics.train_ngd(net, X, Y, approximation="ekfac", learning_rate=0.05, steps=2)
    assert hist.train_loss[2] < hist.train_loss[0]
