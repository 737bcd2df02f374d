"""No diagnosis ever prints a false inequality.

Issue 10: K-FAC printed "(M_0 + bias = 5 < N)" with N = 4 and "(M_1 + bias = 256 < N)".  Every
comparison a diagnosis prints now comes from ``numerics.diagnosis.relation`` and reads
``NAME = a OP NAME = b`` (or ``a OP b``) with both numbers printed.  This test generates failing cases with
hypothesis (zero, parallel, duplicate, near-duplicate, low-rank, huge and dead-unit inputs on narrow and
wide nets, every activation, with and without bias), collects every sentence every approximation writes
(flags, failed_assumption, SingularSystemError.assumption), and

* requires every comparison operator in them to be in that parseable form (an inequality whose right
  side names no number, like "< N", fails the test: it cannot be checked) -- except inside the statement
  of an assumption ("assumption M_1 >= N C"), which names a requirement, not a measurement -- and
* checks each parsed ``a OP b`` on the printed numbers.
"""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics.approximations import get_approximation
from numerics.diagnosis import relation
from numerics.linalg import SingularSystemError
from numerics.network import MLP
from proofs.hypothesis_profiles import examples
from theory.activations import available_activations

APPROXIMATIONS = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal", "ekfac")

_NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|inf|nan)"
#: an operator not part of an arrow ("->", "<-") or a longer token
OPERATOR = re.compile(r"(?<![-<>=])(<=|>=|<|>)(?![-<>=])")
#: "a OP b", "a OP NAME = b", "NAME = a unit OP ..." (a number, optionally a fraction p/q and one lowercase unit
#: word such as "parameters", then the operator, then a number or a name and "= number")
INEQUALITY = re.compile(rf"(?<![\w.])(?P<a>{_NUM})(?:/(?P<q>\d+))?(?:\s+[a-z]+)?\s*(?P<op><=|>=|<|>)\s*"
                        rf"(?:[A-Za-z][^=<>;:()]*?=\s*)?(?P<b>{_NUM})(?![\w.])")
_CHECK = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def stated_assumption(text, pos):
    """Whether the operator at ``pos`` is inside ``assumption <condition>`` (up to the next ``;:()``): a
    requirement named, not a measurement claimed (e.g. "assumption M_1 >= N C")."""
    k = text.rfind("assumption ", 0, pos)
    return k >= 0 and not re.search(r"[;:()]", text[k:pos])


def inequalities(text):
    """``[(a, op, b, snippet)]`` for every comparison in ``text``; ValueError for one that is not parseable."""
    found, covered = [], set()
    for m in INEQUALITY.finditer(text):
        a = float(m.group("a")) / (float(m.group("q")) if m.group("q") else 1.0)
        found.append((a, m.group("op"), float(m.group("b")), m.group(0)))
        covered.add(m.start("op"))
    for m in OPERATOR.finditer(text):
        if m.start() not in covered and not stated_assumption(text, m.start()):
            raise ValueError(f"unparseable comparison at {text[max(0, m.start() - 60):m.end() + 40]!r}")
    return found


def false_inequalities(text):
    return [snippet for a, op, b, snippet in inequalities(text) if not _CHECK[op](a, b)]


def texts(net, X):
    """Every sentence the approximations write on (net, X)."""
    out = []
    for name in APPROXIMATIONS:
        try:
            approx = get_approximation(name)(net, X)
        except SingularSystemError as err:
            out.append(err.assumption)
            out += [f.message for f in getattr(err, "flags", [])]
            continue
        out += [f.message for f in approx.diagnostics["flags"]]
        if approx.diagnostics["failed_assumption"]:
            out.append(approx.diagnostics["failed_assumption"])
    return out


# -- the checker itself can fail ------------------------------------------------------------------
def test_checker_parses_the_forms_and_catches_a_false_one():
    ok = ("layer 1: rank(Z_1) = 3 < N = 4: P_2 = M_2 (M_1 + bias) = 1 x 3 = 3 parameters < N C = 6; "
          "relative spread = 1.33 > tolerance = 8.94e-10; 1 - gamma = 1/2 > 0; rho -> 0+; (condition number "
          "2.5e+13 > limit = 1e+12); M_0 + bias = 8 >= N = 6")
    assert [(a, op, b) for a, op, b, _ in inequalities(ok)] == [
        (3, "<", 4), (3, "<", 6), (1.33, ">", 8.94e-10), (0.5, ">", 0), (2.5e13, ">", 1e12), (8, ">=", 6)]
    assert false_inequalities(ok) == []
    assert false_inequalities("(M_0 + bias = 5 < N = 4)") == ["5 < N = 4"]      # the sentence, with N
    with pytest.raises(ValueError, match="unparseable"):
        inequalities("(M_0 + bias = 5 < N)")                                  # the sentence as printed
    with pytest.raises(ValueError, match="unparseable"):
        inequalities("rank(Delta_2) < N C = 6")
    assert inequalities("M_1 = 3 < N C = 6 (layer narrower than the batch; assumption M_1 >= N C)") == [
        (3, "<", 6, "3 < N C = 6")]


@pytest.mark.parametrize("a, b", [(5, 4), (4, 5), (5, 5), (1.0001e12, 1e12), (1e12, 1.0001e12), (0.1 + 0.2, 0.3)])
def test_relation_prints_the_true_relation_even_after_rounding(a, b):
    text = relation("x", a, "y", b)
    assert false_inequalities(text) == [], text
    weak = relation("x", a, "y", b, weak=True)
    assert false_inequalities(weak) == [] and (">=" in weak) == (a >= b), weak


# -- hypothesis: failing cases of every kind --------------------------------------------------------
@st.composite
def failing_cases(draw):
    activation = draw(st.sampled_from(available_activations()))
    bias = draw(st.booleans())
    n = draw(st.integers(2, 7))
    m0 = draw(st.integers(2, 9))
    hidden = draw(st.lists(st.integers(2, 24), min_size=1, max_size=3))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m0))
    kind = draw(st.sampled_from(["zero", "parallel", "duplicate", "near", "low_rank", "huge", "dead", "plain"]))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    j = j if j != i else (i + 1) % n
    if kind == "zero":
        X[i] = 0.0
    elif kind == "parallel":
        X[j] = draw(st.floats(0.1, 10.0)) * X[i]
    elif kind == "duplicate":
        X[j] = X[i]
    elif kind == "near":
        X[j] = X[i] + draw(st.sampled_from([1e-12, 1e-9, 1e-7])) * rng.standard_normal(m0)
    elif kind == "low_rank" and n > 1:
        X = rng.standard_normal((n, 1)) @ rng.standard_normal((1, m0)) + 0 * X
    elif kind == "huge":
        X = X * 10.0 ** draw(st.integers(2, 40))
    net = MLP([m0, *hidden, 1], activation=activation, sigma_w2=draw(st.sampled_from([1.0, 2.0])),
              sigma_b2=0.1 if bias else 0.0, seed=seed)
    if kind == "dead" and hidden[0] > 1:
        X = np.abs(X)
        net.params[0][: hidden[0] - 1] = -np.abs(net.params[0][: hidden[0] - 1]) - 0.1
    return net, X


@settings(max_examples=examples(60), deadline=None)
@given(case=failing_cases())
def test_no_diagnosis_prints_a_false_inequality(case):
    net, X = case
    for text in texts(net, X):
        assert false_inequalities(text) == [], text
