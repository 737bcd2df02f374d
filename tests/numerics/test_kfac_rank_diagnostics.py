"""K-FAC's finite-width identity needs rank(Delta_l) = N C and rank(Z_l) = N SEPARATELY (an invertible
layer Gram J_l J_l^T is not enough): the diagnostics name which factor of which layer fails, with
its measured rank and the real cause, and agree with theory.isotropy on the dimension conditions.

Concrete seeded draws (N = 10, relu, widths [12, 30, 30, 30, 30, 1], weights MLP(seed=s),
inputs default_rng(s + 100).standard_normal): 11 of the seeds 0..199 give rank(Delta_4) = 9 --
10 of them because two inputs share the relu activation pattern of layer 4 (seed 5: inputs 0 and 6),
one (seed 21) because the 0/1 pattern matrix is singular without equal rows.
"""
import numpy as np
import pytest

import numerics.approximations.kfac as kfac_module
from numerics.approximations.kfac import KFACApproximation, diagnose_backward_rank, svd_rank
from numerics.factors import layer_gram
from numerics.network import MLP
from theory.isotropy import NotIsotropic, isotropy_constant, isotropy_result
from theory.kfac_theory import RANK_CONDITION

N = 10
WIDTHS = [12, 30, 30, 30, 30, 1]


def relu_draw(seed, widths=WIDTHS, n=N):
    net = MLP(widths, activation="relu", seed=seed)
    X = np.random.default_rng(seed + 100).standard_normal((n, widths[0]))
    return net, X


def isotropy_error(theta):
    a = np.mean(np.diag(theta))
    return float(np.linalg.norm(theta - a * np.eye(len(theta))) / (abs(a) * np.sqrt(len(theta)))), a


def check_names_delta_4(approx):
    """The diagnosis a correct rank check must give on the seed-5 draw."""
    text = approx.diagnostics["failed_assumption"]
    assert text is not None, "rank(Delta_4) = 9 < N C went unreported"
    assert "layer 4: rank(Delta_4) = 9 < N C = 10" in text
    assert "rows 0&6 of Delta_4 are equal" in text and "same relu activation pattern on layer 4" in text
    assert "Z_" not in text                    # the input factors are fine: no Z blamed
    assert "< N C (layer narrower" not in text  # M_4 = 30 >= N C: no dimension cause claimed
    assert approx.diagnostics["predicted_alpha"] is None
    assert approx.diagnostics["layers"][3]["contribution"] is None


def test_relu_pattern_makes_delta_rank_deficient_at_width_3n():
    net, X = relu_draw(5)
    approx = KFACApproximation(net, X)
    check_names_delta_4(approx)
    f = approx.factors
    assert svd_rank(f.Delta[3].reshape(N, -1))[0] == 9 and svd_rank(f.Z[3])[0] == N
    # the layer Gram J_4 J_4^T is invertible all the same: the Gram condition is not the K-FAC condition
    lam = np.linalg.eigvalsh(layer_gram(f, 4))
    assert lam[0] > 1e-8 * lam[-1]
    # and the operator really is off: alpha 40-ish, not N (L-1) + 1 = 41, not a multiple of I
    err, a = isotropy_error(approx.operator())
    assert err > 1e-3 and abs(a - 41) > 0.1
    # theory agrees on the dimension conditions (all hold) and states the per-draw rank condition
    res = isotropy_result("kfac", 5, n_samples=N, input_dim=12, widths=WIDTHS)
    assert res.value == 41 and any(RANK_CONDITION in c for c in res.conditions)


def test_singular_pattern_without_equal_rows_is_named():
    net, X = relu_draw(21)
    text = KFACApproximation(net, X).diagnostics["failed_assumption"]
    assert text.startswith("layer 4: rank(Delta_4) = 9 < N C = 10 although M_4 = 30 >= N C = 10")
    assert "relu activation pattern of layer 4" in text and "rank 9)" in text and "times W_5" in text
    assert "Z_" not in text


def test_mutation_rank_check_removed_is_caught(monkeypatch):
    # mutant: the factor-Gram rank always reported full -> the seed-5 diagnosis must fail
    real = kfac_module.thin_gram

    def full_rank_thin_gram(rows, rtol=kfac_module.PINV_RTOL, keep_positive=False):
        g = real(rows, rtol, keep_positive)
        return kfac_module.ThinGram(g.V, g.lam, g.size, g.size, g.condition_number, g.dropped_ratio)

    monkeypatch.setattr(kfac_module, "thin_gram", full_rank_thin_gram)
    net, X = relu_draw(5)
    with pytest.raises(AssertionError):
        check_names_delta_4(KFACApproximation(net, X))


def test_mutation_check_only_layer_gram_is_caught(monkeypatch):
    # mutant: a layer counts as fine when its Gram J_l J_l^T is invertible (the old, insufficient test)
    def gram_only(self, l, gb, ga):
        lam = np.linalg.eigvalsh(layer_gram(self.factors, l))
        ok = lam[0] > 1e-10 * lam[-1]
        return ((1.0 if l == self.depth else float(self.n_samples)), None) if ok else (None, "layer Gram singular")

    monkeypatch.setattr(KFACApproximation, "_layer_contribution", gram_only)
    net, X = relu_draw(5)
    with pytest.raises(AssertionError):
        check_names_delta_4(KFACApproximation(net, X))


def test_narrow_input_names_z1_and_its_dimension_only():
    n, m0 = 10, 5
    net = MLP([m0, 30, 30, 1], activation="relu", seed=3)
    X = np.random.default_rng(3).standard_normal((n, m0))
    text = KFACApproximation(net, X).diagnostics["failed_assumption"]
    assert text.startswith("layer 1: rank(Z_1) = 5 < N = 10: M_0 + bias = 5 < N")
    assert "Delta" not in text
    with pytest.raises(NotIsotropic) as info:  # theory: same condition, same layer
        isotropy_constant("kfac", 3, n_samples=n, input_dim=m0, widths=[m0, 30, 30, 1])
    assert info.value.failed_assumption == "M_0 >= N or Forster inputs"


def test_dependent_inputs_with_enough_dimensions_are_not_blamed_on_the_dimension():
    n, m0 = 10, 12
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, 5)) @ rng.standard_normal((5, m0))  # rank 5 inputs in R^12
    net = MLP([m0, 40, 40, 1], activation="tanh", seed=4)
    text = KFACApproximation(net, X).diagnostics["failed_assumption"]
    assert ("layer 1: rank(Z_1) = 5 < N = 10: inputs linearly dependent (rank X = 5 < N = 10, although "
            "M_0 + bias = 12 >= N = 10") in text
    assert "12 < N" not in text and [f.code for f in KFACApproximation(net, X).diagnostics["flags"]] == [
        "dependent_inputs"]


def test_dead_units_name_both_factors_with_counts():
    n = 10
    net = MLP([12, 30, 30, 1], activation="relu", seed=6)
    X = np.abs(np.random.default_rng(6).standard_normal((n, 12)))
    W = net.params[0]
    W[:25] = -np.abs(W[:25]) - 0.1       # 25 of 30 units of layer 1 dead on positive inputs
    text = KFACApproximation(net, X).diagnostics["failed_assumption"]
    assert ("layer 1: rank(Delta_1) = 5 < N C = 10: 25 of 30 units of layer 1 are dead (zero backward signal on "
            "every input: 25 with phi' = 0 on every input): live units of layer 1 = 5 < N C = 10") in text
    assert ("layer 2: rank(Z_2) = 5 < N = 10: 25 of 30 units of layer 1 are dead (zero output on every input, "
            "relu(u) = 0 there): live units of layer 1 = 5 < N = 10") in text


def test_narrow_hidden_layer_agrees_with_theory():
    n = 6
    widths = [8, 30, 5, 1]
    net = MLP(widths, activation="tanh", seed=2)
    X = np.random.default_rng(2).standard_normal((n, 8))
    text = KFACApproximation(net, X).diagnostics["failed_assumption"]
    with pytest.raises(NotIsotropic) as info:
        isotropy_constant("kfac", 3, n_samples=n, input_dim=8, widths=widths)
    assert info.value.failed_assumption == "M_2 >= N C"
    assert "layer 2: rank(Delta_2) = 5 < N C = 6: M_2 = 5 < N C" in text and "assumption M_2 >= N C" in text


@pytest.mark.parametrize("seed", range(6))
def test_where_the_ranks_hold_numerics_and_theory_give_the_same_alpha(seed):
    net, X = relu_draw(seed, [12, 30, 30, 30, 1])
    approx = KFACApproximation(net, X)
    alpha = float(isotropy_constant("kfac", 4, n_samples=N, input_dim=12, widths=[12, 30, 30, 30, 1]))
    if approx.diagnostics["failed_assumption"] is None:
        assert approx.diagnostics["predicted_alpha"] == alpha == 31
        err, a = isotropy_error(approx.operator())
        assert err < 1e-9 and abs(a - alpha) < 1e-9 * alpha
    else:
        assert "rank(" in approx.diagnostics["failed_assumption"]


def test_diagnose_backward_rank_output_layer_and_numerical_rank():
    # an ill-conditioned but full-rank Delta: named as numerically rank-deficient, not as a structural cause
    net, X = relu_draw(0, [12, 30, 1])
    f = net.factors(X)
    text = diagnose_backward_rank(net, f, X, 1, 9, rank_rtol=1e-10)
    assert "rank(Delta_1) = 9 < N C = 10" in text
    # f's Delta_1 has full rank at rounding level, so the only honest cause is the pseudo-inverse cut
    assert "full rank 10 at rounding level" in text
