"""theory.assumptions: typed assumptions (name, message, predicate), flags, settings, the catalogue and
the exact-name lookup; and the flags numerics approximations record with the assumption they violate."""
import numpy as np
import pytest

from theory import assumptions as A
from theory.assumptions import Assumption, Flag, Relaxed, Setting, fact, failed_assumption_text, lookup


# ----------------------------------------------------------------------------- the types
def test_assumption_prints_its_message_and_checks_its_predicate():
    a = Assumption("x > 0", "x is positive", lambda s: None if fact(s, "x") is None else fact(s, "x") > 0)
    assert str(a) == "x is positive" and f"- {a}" == "- x is positive"
    assert a.check({"x": 2}) is True and a.check({"x": -1}) is False and a.check({}) is None
    assert a.check(None) is None and Assumption("y", "y").check({"y": 1}) is None  # no predicate: unknown
    assert a.to_dict() == {"name": "x > 0", "message": "x is positive"}


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"name": "", "message": "m"}, TypeError, "Assumption name="),
    ({"name": "n", "message": 3}, TypeError, "Assumption message="),
    ({"name": "n", "message": "m", "predicate": 5}, TypeError, "predicate=5"),
])
def test_bad_assumptions_name_the_argument(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        Assumption(**kwargs)


def test_flag_validates_and_compares_by_identity():
    f = Flag("multiple_outputs", "C = 2 > 1", A.SINGLE_OUTPUT)
    assert f.violates(A.SINGLE_OUTPUT) and f.violates(A.SINGLE_OUTPUT.relaxed("C = 2"))
    # same name and message, different object: not the catalogue's assumption
    assert not f.violates(Assumption("C = 1", "C = 1 (single output)"))
    assert not Flag("x", "no assumption").violates(A.SINGLE_OUTPUT)
    assert f.with_prefix("numerics: ").message == "numerics: C = 2 > 1" and f.with_prefix("n: ").code == f.code
    assert f.to_dict() == {"code": "multiple_outputs", "message": "C = 2 > 1", "assumption": "C = 1"}
    with pytest.raises(ValueError, match="Flag code='Layer Gram'"):
        Flag("Layer Gram", "m")
    with pytest.raises(TypeError, match="Flag assumption='C = 1'"):
        Flag("c", "m", "C = 1")
    assert failed_assumption_text([]) is None
    assert failed_assumption_text([f, Flag("dead_units", "dead")]) == "C = 2 > 1; dead"


def test_relaxed_keeps_the_object_and_says_so():
    r = A.SINGLE_OUTPUT.relaxed("C = 2")
    assert r.assumption is A.SINGLE_OUTPUT and r.name == "C = 1"
    assert str(r) == "C = 1 (single output) (relaxed here: C = 2)"
    assert r.check(Setting(n_samples=4, input_dim=4, hidden_widths=(8,), n_outputs=2)) is False
    with pytest.raises(TypeError, match="Relaxed assumption='C = 1'"):
        Relaxed("C = 1")


# ----------------------------------------------------------------------------- settings and predicates
def test_fact_reads_mappings_objects_and_derived_facts():
    s = Setting(n_samples=8, input_dim=12, hidden_widths=(48, 48), inputs="forster")
    assert fact(s, "widths") == (12, 48, 48, 1) and fact(s, "depth") == 3 and fact(s, "forster") is True
    assert fact({"N": 5}, "n_samples") == 5 and fact({"widths": [3, 7, 2]}, "n_outputs") == 2
    assert fact({"input_dim": 3, "hidden_widths": (9,)}, "widths") == (3, 9, 1)
    assert fact({"sigma_b2": 0.0}, "bias") is False and fact({}, "bias") is None and fact(None, "x", 1) == 1


@pytest.mark.parametrize("assumption, setting, expected", [
    (A.INPUT_WIDTH, dict(n_samples=8, input_dim=8), True),
    (A.INPUT_WIDTH, dict(n_samples=8, input_dim=7), False),
    (A.INPUT_WIDTH, dict(n_samples=8, input_dim=7, bias=True), True),      # M_0 + bias >= N
    (A.INPUT_WIDTH, dict(input_dim=7), None),
    (A.KFAC_INPUTS, dict(n_samples=20, input_dim=8, inputs="forster"), True),
    (A.KFAC_INPUTS, dict(n_samples=20, input_dim=8, inputs="raw"), False),
    (A.HIDDEN_WIDTH, dict(n_samples=8, hidden_widths=(16, 8)), True),
    (A.HIDDEN_WIDTH, dict(n_samples=8, hidden_widths=(16, 8), n_outputs=2), False),   # M_l >= N C
    (A.DISTINCT_INPUTS, dict(inputs="near_duplicate"), False),
    (A.DISTINCT_INPUTS, dict(inputs="dataset"), None),
    (A.FULL_ROW_RANK_JACOBIANS, dict(n_samples=12, input_dim=16, hidden_widths=(6, 6), inputs="sphere"), False),
    (A.FULL_ROW_RANK_JACOBIANS, dict(n_samples=8, input_dim=12, hidden_widths=(48, 48), inputs="sphere",
                                     dead_units=0), True),
    (A.KFAC_RANK, dict(n_samples=8, input_dim=12, hidden_widths=(48, 48), inputs="sphere", dead_units=0), None),
    (A.KFAC_RANK, dict(n_samples=8, input_dim=12, hidden_widths=(4, 48), inputs="sphere"), False),
    (A.RHO_TO_ZERO, dict(damping=0.0), True),
    (A.RHO_TO_ZERO, dict(damping=0.1), False),
    (A.PHI_PRIME_NONZERO, dict(activation="tanh"), True),
    (A.PHI_PRIME_NONZERO, dict(activation="relu"), False),                   # gamma = 1/2, derived
    (A.LINEARLY_INDEPENDENT_INPUTS, dict(n_samples=100, input_rank=47), False),
    (A.B_INVERTIBLE, dict(k=2, rank_b=1), False),
    (A.STANDARD_RELU_NET, dict(activation="relu", sigma_w2=2.0, bias=False), True),
    (A.STANDARD_RELU_NET, dict(activation="tanh", sigma_w2=2.0, bias=False), False),
    (A.STANDARD_RELU_NET, dict(sigma_w2=2.0, bias=False), None),            # activation unknown
])
def test_predicates(assumption, setting, expected):
    assert assumption.check(setting) is expected


def test_all_of_is_false_on_any_failure_and_unknown_otherwise():
    both = A.all_of("both", "both", A.RELU, A.NO_BIAS)
    assert both.check({"activation": "relu", "bias": False}) is True
    assert both.check({"activation": "relu"}) is None
    assert both.check({"activation": "tanh"}) is False
    with pytest.raises(TypeError, match="all_of parts"):
        A.all_of("x", "x", "relu")


# ----------------------------------------------------------------------------- catalogue and lookup
def test_catalogue_names_are_unique_and_lookup_is_exact():
    names = [a.name for a in A.CATALOGUE.values()]
    assert len(names) == len(set(names)) and len(names) >= 30
    assert lookup("C = 1 (single output)") is A.SINGLE_OUTPUT          # the theory's spelling
    assert lookup("M_0 + bias >= N") is A.INPUT_WIDTH
    assert lookup("M_3 + bias >= N") is A.HIDDEN_WIDTH and lookup("M_2 >= N C") is A.HIDDEN_WIDTH
    assert lookup("1 in range(S)") is A.ONE_IN_RANGE and lookup("rho -> 0+") is A.RHO_TO_ZERO
    assert lookup(A.KFAC_RANK.message) is A.KFAC_RANK                  # by message
    assert lookup("M_0 >= N or Forster") is None                       # no substring matching
    assert lookup("relu, isotropy only as M") is None
    with pytest.raises(TypeError, match="name=3"):
        lookup(3)
    assert A.as_assumption("C = 1") is A.SINGLE_OUTPUT
    stated = A.as_assumption("a free-text assumption")
    assert stated.name == stated.message == "a free-text assumption" and stated.predicate is None
    with pytest.raises(TypeError, match="expected an Assumption"):
        A.as_assumption(5)


def test_every_theory_failed_assumption_name_is_in_the_catalogue():
    """Every ``NotIsotropic(..., failed_assumption)`` literal raised under theory/ resolves by lookup."""
    import ast
    from pathlib import Path

    names = set()
    for path in (Path(__file__).resolve().parents[2] / "theory").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "NotIsotropic" and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
                elif isinstance(arg, ast.JoinedStr):  # f"M_{l} + bias >= N": try l = 1
                    names.add("".join(v.value if isinstance(v, ast.Constant) else "1" for v in arg.values))
    assert names, "no NotIsotropic calls found"
    assert {n for n in names if lookup(n) is None} == set()


# ----------------------------------------------------------------------------- numerics flags
def _net(widths, activation="relu", seed=0):
    from numerics.network import MLP

    return MLP(list(widths), activation=activation, seed=seed)


def _inputs(n, m, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, m))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def test_unit_wise_flags_name_their_assumptions_and_make_the_text():
    from numerics.approximations import get_approximation

    approx = get_approximation("unit_wise")(_net([6, 32, 32, 2], "tanh"), _inputs(4, 6))
    flags = approx.diagnostics["flags"]
    assert any(f.code == "multiple_outputs" and f.violates(A.SINGLE_OUTPUT) for f in flags)
    assert approx.diagnostics["failed_assumption"] == "; ".join(f.message for f in flags)
    clean = get_approximation("unit_wise")(_net([6, 32, 32, 1], "tanh"), _inputs(4, 6))
    assert clean.diagnostics["flags"] == [] and clean.diagnostics["failed_assumption"] is None


def test_kfac_narrow_input_flags_the_kfac_input_assumption():
    from numerics.approximations import get_approximation

    approx = get_approximation("kfac")(_net([3, 24, 24, 1]), _inputs(6, 3) * np.arange(1, 7)[:, None])
    assert [f.code for f in approx.diagnostics["flags"]] == ["leverage_spread"]
    assert approx.diagnostics["flags"][0].violates(A.KFAC_INPUTS)


def test_singular_layer_gram_raises_with_the_flag_attached():
    from numerics.approximations import get_approximation
    from numerics.linalg import SingularSystemError

    with pytest.raises(SingularSystemError) as info:
        get_approximation("block_diagonal")(_net([8, 16, 3, 1]), _inputs(6, 8))
    (flag,) = info.value.flags
    assert flag.code == "silent_inputs" and flag.violates(A.FULL_ROW_RANK_JACOBIANS)  # x_2: layer 2 all inactive
    assert flag.message == info.value.assumption


def test_diagonal_fisher_flags_the_block_structure():
    from numerics.approximations import get_approximation

    approx = get_approximation("diagonal")(_net([6, 16, 16, 1]), _inputs(4, 6))
    assert approx.diagnostics["flags"][0].violates(A.BLOCK_STRUCTURE)
