"""Diagnoses of singular Fisher/NTK systems name the real cause (numerics.diagnosis), for every approximation.

Regressions from issue 10 (a new user's measurements), each on the exact scenario reported:

* a zero input row without a bias (N = 4, M_0 = 5, widths 256): K-FAC printed "(M_0 + bias = 5 < N)" and
  "(M_1 + bias = 256 < N)" -- both false -- and suggested the Forster transform; exact NGD on a TANH net
  blamed "dead relu patterns"; block-diagonal said every one of layer 1's 256 units "is inactive there";
  none named X[2];
* parallel inputs x and 2x (relu, no bias: by positive homogeneity the Jacobian rows are proportional):
  exact said "no near-duplicate inputs ... degenerate activation patterns", block-diagonal "layer 1 is
  narrower than the batch" (M_1 = 512, N = 6), K-FAC "(M_2 + bias = 512 < N)"; with sigma_b2 = 0.1 the
  same inputs are fine.

Plus the earlier regressions (narrow relu layers, silent inputs, duplicates, dead units) and
hypothesis-driven checks: positive multiples are named exactly when the activation is positively
homogeneous (as ``theory.activations`` derives it, not a list of names) and there is no bias; zero rows
exactly when there is no bias; duplicates always.
"""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from numerics.approximations import get_approximation
from numerics.approximations.base import closest_pair, diagnose_layer_gram, zero_signal_samples
from numerics.diagnosis import Evidence, Target, parallel_inputs, zero_input_rows
from numerics.factors import layer_gram
from numerics.linalg import SingularSystemError
from numerics.network import MLP
from proofs.hypothesis_profiles import examples
from theory.activations import Activation, u

ALL = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal", "ekfac")


def _unit_rows(n, dim, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _singular_assumption(name, net, X):
    with pytest.raises(SingularSystemError) as info:
        get_approximation(name)(net, X)
    return info.value.assumption


def outcome(name, net, X, **kw):
    """``(text, codes)``: the failed assumption and flag codes, whether the approximation raised or not."""
    try:
        approx = get_approximation(name)(net, X, **kw)
    except SingularSystemError as err:
        return err.assumption, [f.code for f in err.flags]
    return approx.diagnostics["failed_assumption"] or "", [f.code for f in approx.diagnostics["flags"]]


# -- issue 10: a zero input row without a bias ---------------------------------------------------
def zero_row_case(activation):
    X = np.random.default_rng(0).standard_normal((4, 5))
    X[2] = 0.0
    return MLP([5, 256, 256, 1], activation=activation, seed=0), X


FALSE_FOR_ZERO_ROW = ("M_0 + bias = 5 < N", "M_1 + bias = 256 < N", "forster", "dead relu", "is inactive there",
                      "linearly dependent", "duplicate", "narrower than the batch")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", ALL)
def test_zero_input_row_is_named_by_every_approximation(name, activation):
    net, X = zero_row_case(activation)
    text, codes = outcome(name, net, X)
    assert "X[2] = 0 (a zero input row) and the network has no bias (sigma_b2 = 0)" in text, text
    assert "zero_input_row" in codes, codes
    for false in FALSE_FOR_ZERO_ROW:
        assert false not in text.lower() if false == "forster" else false not in text, (false, text)


def test_zero_input_row_sentences_per_target():
    """Exact NGD on tanh: the row of J vanishes in EVERY layer because tanh(0) = 0 (no relu talk);
    block-diagonal: z_1 = 0 makes row 2 of J_1 zero; K-FAC: rows of Z_1, Z_2, Z_3 (each verified)."""
    net, X = zero_row_case("tanh")
    text, _ = outcome("exact", net, X)
    assert text.endswith("every pre-activation vanishes there and phi(0) = tanh(0) = 0, so row 2 of J is zero in "
                         "every layer"), text
    text, _ = outcome("block_diagonal", net, X)
    assert text.endswith("z_1 = sigma_w x / sqrt(M_0) vanishes there, so row 2 of J_1 is zero"), text
    text, codes = outcome("kfac", net, X)
    assert codes == ["zero_input_row"] * 3
    assert all(f"row 2 of Z_{l} is zero" in text for l in (1, 2, 3)) and "Delta" not in text, text


def test_zero_input_row_with_bias_is_not_a_cause():
    """With sigma_b2 > 0 a zero input has z_1 = (0, sigma_b) != 0: nothing is singular, nothing is named."""
    X = np.random.default_rng(0).standard_normal((4, 5))
    X[2] = 0.0
    net = MLP([5, 256, 256, 1], activation="tanh", sigma_b2=0.1, seed=0)
    for name in ("exact", "block_diagonal", "kfac"):
        text, codes = outcome(name, net, X)
        assert "zero_input_row" not in codes and "X[2]" not in text, (name, text)


def test_softplus_zero_row_names_layer_1_but_not_the_ntk():
    """softplus(0) = log 2 != 0: a zero input silences J_1 (named for block-diagonal) but not layers >= 2,
    so J's row is not zero and exact NGD is fine -- the zero-row cause is verified per target, not assumed."""
    X = np.random.default_rng(0).standard_normal((4, 5))
    X[2] = 0.0
    net = MLP([5, 64, 64, 1], activation="softplus", sigma_w2=1.0, seed=0)
    text, codes = outcome("block_diagonal", net, X)
    assert codes == ["zero_input_row"] and "row 2 of J_1 is zero" in text, text
    text, codes = outcome("exact", net, X)
    assert "zero_input_row" not in codes, text


# -- issue 10: parallel inputs x and 2x under relu without a bias ----------------------------------
def parallel_case(sigma_b2=0.0):
    X = np.random.default_rng(0).standard_normal((6, 8))
    X[3] = 2.0 * X[1]
    return MLP([8, 512, 512, 1], activation="relu", sigma_b2=sigma_b2, seed=0), X


FALSE_FOR_PARALLEL = ("no near-duplicate", "degenerate activation patterns", "narrower than the batch",
                      "M_2 + bias = 512 < N", "M_1 + bias = 512 < N", "inputs are distinct", "linearly dependent")


@pytest.mark.parametrize("name", ALL)
def test_parallel_inputs_are_named_by_every_approximation(name):
    net, X = parallel_case()
    text, codes = outcome(name, net, X)
    assert "X[3] = 2 X[1] (positive multiples; relu is positively homogeneous and the network has no bias" in text
    assert "parallel_inputs" in codes, codes
    for false in FALSE_FOR_PARALLEL:
        assert false not in text, (false, text)


def test_parallel_inputs_rows_per_target():
    net, X = parallel_case()
    assert _singular_assumption("exact", net, X).endswith("row 3 of J is 2 x row 1 (a bias, a positive sigma_b2, removes "
                                                          "this; normalising the inputs would make them duplicates)")
    text, codes = outcome("kfac", net, X)
    assert "rows 1 and 3 of Delta_1 are equal" in text and "row 3 of Z_2 is 2 x row 1" in text
    assert set(codes) == {"parallel_inputs"}


@pytest.mark.parametrize("name", ["exact", "block_diagonal", "block_tridiagonal", "kfac"])
def test_parallel_inputs_with_bias_are_fine(name):
    net, X = parallel_case(sigma_b2=0.1)
    approx = get_approximation(name)(net, X)
    assert approx.diagnostics["failed_assumption"] is None


def test_homogeneity_comes_from_theory_not_a_name():
    """A positively homogeneous activation the diagnosis has never heard of (3 relu) is recognised through
    theory.activations; a non-homogeneous one with relu-like shape (softplus) is not."""
    X = np.random.default_rng(0).standard_normal((5, 8))
    X[4] = 0.5 * X[0]
    relu3 = Activation("relu3", sp.Piecewise((0, u < 0), (3 * u, True)), "3 max(0, u)")
    net = MLP([8, 64, 64, 1], activation=relu3, sigma_w2=0.2, seed=1)
    text, codes = outcome("exact", net, X)
    assert codes == ["parallel_inputs"] and "X[0] = 2 X[4]" in text and "relu3 is positively homogeneous" in text
    soft = MLP([8, 64, 64, 1], activation="softplus", seed=1)
    assert parallel_inputs(Evidence(soft, soft.factors(X), X), Target("jacobian")) is None


# -- earlier regressions ----------------------------------------------------------------------------
def test_narrow_relu_layer_names_the_widths_not_duplicates():
    """M_1 = M_2 = 5 < N = 16: layer 2's Gram has rank 15 (measured), every row non-zero, no dead unit;
    the cause is the width: rank(Delta_2) = rank(Z_2) = 5 < 16, the product bound 25 >= 16 does not force
    it, the relu patterns complete the dependence."""
    X = _unit_rows(16, 10)
    net = MLP([10, 5, 5, 1], activation="relu", seed=0)
    msg = _singular_assumption("block_diagonal", net, X)
    assert msg.startswith("layer 2 Gram J_2 J_2^T (16 x 16) is singular"), msg
    assert "rank(Delta_2) = 5 < N C = 16 (M_2 = 5 < N C = 16 (layer narrower than the batch" in msg, msg
    assert "rank(Z_2) = 5 < N = 16 (M_1 + bias = 5 < N = 16" in msg, msg
    assert "measured rank(J_2) = 15" in msg, msg
    assert "duplicate" not in msg and "dead" not in msg, msg


def test_inputs_where_a_layer_is_silent_are_named():
    """Seed 2, width 5: on inputs 3 and 11 every layer-1 unit is inactive -> zero rows of J_1."""
    X = _unit_rows(16, 10)
    net = MLP([10, 5, 5, 1], activation="relu", seed=2)
    f = net.factors(X)
    assert zero_signal_samples(f, 1).tolist() == [3, 11]
    lam = np.linalg.eigvalsh(layer_gram(f, 1))
    d = diagnose_layer_gram(f, X, 1, lam[-1] / max(lam[0], 1e-300), net=net)
    assert d.code == "silent_inputs"
    assert ("J_1 is zero on 2 nonzero inputs (rows 3, 11 of J_1); on X[3]: Delta_1 row is zero: every unit of layer 1 "
            "has relu'(u) = 0 on it (inactive)") in str(d), d
    assert "duplicate" not in str(d), d


def test_duplicated_inputs_are_named():
    X = _unit_rows(12, 10)
    X[5] = X[2]
    net = MLP([10, 64, 64, 1], activation="relu", seed=0)
    for name in ("block_diagonal", "exact", "kfac"):
        text, codes = outcome(name, net, X)
        assert "duplicate inputs (rows 2&5 of X are equal)" in text and "duplicate_inputs" in codes, (name, text)


def test_near_duplicates_are_named_with_both_distances_and_not_called_equal():
    X = _unit_rows(8, 10)
    X[5] = X[2] + 1e-9 * _unit_rows(1, 10, seed=9)[0]
    net = MLP([10, 64, 64, 1], activation="tanh", seed=0)
    text, codes = outcome("exact", net, X)
    assert codes == ["near_duplicate_inputs"], text
    assert "near-duplicate inputs (rows 2&5 of X at relative distance 1e-09; rows 2 and 5 of J at relative" in text
    assert "are equal" not in text


def test_dead_units_are_named():
    """60 of 64 layer-2 units forced dead (their incoming weights <= 0 on relu outputs >= 0, no bias):
    the output layer's inputs Z_3 have rank 4 < N = 12."""
    X = _unit_rows(12, 10)
    net = MLP([10, 64, 64, 1], activation="relu", seed=1)
    net.params[1][:60] = -np.abs(net.params[1][:60])
    text, codes = outcome("block_diagonal", net, X)
    assert codes == ["dead_units"], text
    assert "layer 3" in text and "60 of 64 units of layer 2 are dead" in text, text
    assert "rank(Z_3) = 4 < N = 12" in text and "live units of layer 2 = 4 < N = 12" in text, text
    assert "duplicate" not in text, text


def test_tanh_saturation_is_not_called_dead():
    """tanh' vanishes only on a null set; at |u| ~ 1e3 it rounds to 0 in float64: 'saturated', never 'dead'."""
    X = 1e3 * _unit_rows(6, 8)
    net = MLP([8, 32, 32, 1], activation="tanh", seed=0)
    net.params[0][:30] *= 1e2                    # 30 of 32 layer-1 units saturate on every input
    text, codes = outcome("kfac", net, X)
    assert "saturated_units" in codes, text
    assert "saturated: tanh'(u) rounds to 0 in float64 on every input" in text and " dead" not in text, text


def test_exact_ngd_names_inputs_without_gradient():
    """[3, 5, 5, 1] relu, N = 4: on input 2 every unit of layer 2 is inactive, so J's row 2 is zero."""
    net = MLP([3, 5, 5, 1], activation="relu", seed=0)
    X = np.random.default_rng(0).standard_normal((4, 3))
    text, codes = outcome("exact", net, X)
    assert codes == ["silent_inputs"], text
    assert ("J is zero on 1 nonzero input (row 2 of J); on X[2]: every unit of layer 2 outputs relu(u) = 0 on it "
            "(all inactive: non-positive pre-activations)") in text, text


def test_closest_pair_reports_relative_distance():
    X = np.array([[3.0, 4.0], [0.0, 5.0], [3.0, 4.0 + 5e-7]])
    i, j, d = closest_pair(X)
    assert (i, j) == (0, 2) and d == pytest.approx(1e-7, rel=1e-8)   # 5e-7 / ||x||_max = 5e-7 / 5; direct difference: exact to ~eps/1e-7


# -- hypothesis: each input-level cause is named exactly when it is one ----------------------------
HOMOGENEOUS = ("relu", "leaky_relu", "linear")
NOT_HOMOGENEOUS = ("tanh", "erf", "gelu", "softplus", "sin")


@settings(max_examples=examples(25), deadline=None)
@given(activation=st.sampled_from(HOMOGENEOUS + NOT_HOMOGENEOUS), bias=st.booleans(),
       c=st.floats(0.05, 20.0).filter(lambda c: abs(c - 1) > 0.01), n=st.integers(3, 6),
       pair=st.tuples(st.integers(0, 5), st.integers(0, 5)).filter(lambda p: p[0] != p[1]),
       seed=st.integers(0, 10_000))
def test_positive_multiples_named_iff_homogeneous_without_bias(activation, bias, c, n, pair, seed):
    i, j = pair[0] % n, pair[1] % n
    if i == j:
        j = (i + 1) % n
    X = np.random.default_rng(seed).standard_normal((n, 8))
    X[j] = c * X[i]
    net = MLP([8, 48, 48, 1], activation=activation, sigma_w2=1.5, sigma_b2=0.2 if bias else 0.0, seed=seed)
    text, codes = outcome("exact", net, X)
    if activation in HOMOGENEOUS and not bias:
        assert codes == ["parallel_inputs"], text
        lo, hi = (i, j) if c > 1 else (j, i)
        assert f"X[{hi}] = " in text and f" X[{lo}] (positive multiples; {activation} is positively homogeneous" in text
    else:
        assert "parallel_inputs" not in codes and "positive multiples" not in text, text


@settings(max_examples=examples(25), deadline=None)
@given(activation=st.sampled_from(("relu", "tanh", "erf", "gelu", "sin", "linear")), bias=st.booleans(),
       n=st.integers(2, 6), row=st.integers(0, 5), seed=st.integers(0, 10_000),
       name=st.sampled_from(("exact", "block_diagonal", "kfac")))
def test_zero_rows_named_iff_no_bias(activation, bias, n, row, seed, name):
    """phi(0) = 0 for these activations: without a bias a zero input zeroes its row of J, J_1 and Z_l, and
    every approximation names X[row]; with a bias a zero input is an ordinary input."""
    row = row % n
    X = np.random.default_rng(seed).standard_normal((n, 8))
    X[row] = 0.0
    net = MLP([8, 48, 48, 1], activation=activation, sigma_w2=1.5, sigma_b2=0.2 if bias else 0.0, seed=seed)
    text, codes = outcome(name, net, X)
    if bias:
        assert "zero_input_row" not in codes, text
    else:
        # (K-FAC on a linear net also reports rank(Delta_l) = C: its backward signals do not depend on x)
        assert codes[0] == "zero_input_row" or (name == "kfac" and "zero_input_row" in codes), text
        assert f"X[{row}] = 0 (a zero input row)" in text, text
    ev = Evidence(net, net.factors(X), X)
    assert (zero_input_rows(ev, Target("input_factor", 1)) is None) == bias


@settings(max_examples=examples(15), deadline=None)
@given(activation=st.sampled_from(HOMOGENEOUS + NOT_HOMOGENEOUS), bias=st.booleans(), n=st.integers(2, 6),
       pair=st.tuples(st.integers(0, 5), st.integers(0, 5)).filter(lambda p: p[0] != p[1]),
       seed=st.integers(0, 10_000))
def test_duplicates_named_for_any_activation_and_bias(activation, bias, n, pair, seed):
    i, j = sorted((pair[0] % n, pair[1] % n))
    if i == j:
        i, j = 0, 1
    X = np.random.default_rng(seed).standard_normal((n, 8))
    X[j] = X[i]
    net = MLP([8, 48, 48, 1], activation=activation, sigma_w2=1.5, sigma_b2=0.2 if bias else 0.0, seed=seed)
    text, codes = outcome("exact", net, X)
    assert codes == ["duplicate_inputs"] and f"duplicate inputs (rows {i}&{j} of X are equal)" in text, text


# -- the root cause travels with the flag (Flag.causes), whatever assumption the approximation names --------
def flags_of(name, net, X, **kw):
    try:
        approx = get_approximation(name)(net, X, **kw)
    except SingularSystemError as err:
        return list(err.flags)
    return list(approx.diagnostics["flags"])


@pytest.mark.parametrize("name", ["block_diagonal", "block_tridiagonal", "kfac"])   # exact NGD: J J^T stays PD
def test_dead_unit_flags_carry_the_dead_unit_cause(name):
    """The dead-unit case above: each approximation keeps its own assumption on the flag (NTK positive
    definite, layer Jacobians of full row rank, the K-FAC rank condition) but attributes the failure to
    "no dead relu units" -- the relaxed search relies on it (relaxing the width must reject it)."""
    from theory.assumptions import HIDDEN_WIDTH, NO_DEAD_UNITS, PHI_PRIME_NONZERO

    X = _unit_rows(12, 10)
    net = MLP([10, 64, 64, 1], activation="relu", seed=1)
    net.params[1][:60] = -np.abs(net.params[1][:60])
    flags = [f for f in flags_of(name, net, X) if f.code == "dead_units"]
    assert flags, [f.to_dict() for f in flags_of(name, net, X)]
    for f in flags:
        assert f.causes == (NO_DEAD_UNITS,), f.to_dict()
        assert f.explained_by(NO_DEAD_UNITS) and f.explained_by(PHI_PRIME_NONZERO) and not f.explained_by(HIDDEN_WIDTH)
        assert f.to_dict()["causes"] == ["no dead relu units"]


def test_silent_input_flags_are_attributed_to_silent_inputs_not_the_width():
    from theory.assumptions import FULL_ROW_RANK_JACOBIANS, HIDDEN_WIDTH, NO_DEAD_UNITS, NO_SILENT_INPUTS

    X = _unit_rows(16, 10)
    net = MLP([10, 5, 5, 1], activation="relu", seed=2)       # inputs 3 and 11 silent on layer 1
    flags = flags_of("block_diagonal", net, X)
    silent = [f for f in flags if f.code == "silent_inputs"]
    assert silent and all(f.assumption is FULL_ROW_RANK_JACOBIANS for f in silent), [f.to_dict() for f in flags]
    for f in silent:
        assert f.causes == (NO_SILENT_INPUTS,)
        # the approximation's assumption stems from the width, the named cause does not
        assert f.assumption.stems_from(HIDDEN_WIDTH) and not f.explained_by(HIDDEN_WIDTH)
        assert f.explained_by(NO_SILENT_INPUTS) and f.explained_by(NO_DEAD_UNITS)


def test_a_narrow_layer_is_attributed_to_the_width():
    from theory.assumptions import HIDDEN_WIDTH

    X = _unit_rows(16, 10)
    net = MLP([10, 64, 3, 1], activation="tanh", seed=0)      # P_2 = 3 x 65 >= N, but rank(Z_3) <= 3 < N
    flags = flags_of("block_diagonal", net, X)
    assert flags and all(f.explained_by(HIDDEN_WIDTH) for f in flags), [f.to_dict() for f in flags]
