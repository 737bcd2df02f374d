"""kernels.accuracy_grid and kernels.raw_digits_ntk_limit: registered, verified in quick mode with their
numbers, and able to refute (the issue's unstable gelu form is caught)."""
import numpy as np
import pytest
import sympy as sp

import proofs.claims.kernels as K
import theory.dual as D
from proofs.claim import REGISTRY, RunConfig


@pytest.fixture(scope="module")
def grid_result():
    return REGISTRY["kernels.accuracy_grid"].run(RunConfig(mode="quick", seed=0))


def test_registered():
    for cid in ("kernels.accuracy_grid", "kernels.raw_digits_ntk_limit"):
        c = REGISTRY[cid]
        assert c.expected == "verified" and c.statement and c.assumptions and "kernels" in c.tags


def test_accuracy_grid_verified_with_its_numbers(grid_result):
    r = grid_result
    assert r.verdict == "verified", r.notes
    assert r.error < K.ACCURACY_TOLERANCE and "worst relative error" in r.notes
    variances = r.details["variances"]
    assert min(variances) <= 1e-12 and max(variances) >= 1e300           # 24+ orders and the edge
    rows = r.details["dual_rows"]
    assert {row["activation"] for row in rows} == set(D.available_closed_forms()) | {"tanh", "softplus"}
    assert {row["q"][1] / np.sqrt(row["q"][0] * row["q"][2]) for row in rows if row["q"][0] == 1.0
            and row["q"][2] == 1.0} >= {-1.0, 1.0, 0.0}
    assert max(rec["depth"] for rec in r.details["recursion"]) == 50
    phases = " ".join(rec["case"] for rec in r.details["recursion"])
    assert "ordered" in phases and "chaotic" in phases
    assert r.details["negative_derivative_kernels"] == []


def test_accuracy_grid_refutes_the_unstable_gelu_form(monkeypatch):
    form = D.closed_form("gelu")
    raw_v = sp.lambdify((D.q11, D.q12, D.q22), form.value, modules=D._NUMPY_MODULES)
    raw_d = sp.lambdify((D.q11, D.q12, D.q22), form.derivative, modules=D._NUMPY_MODULES)

    def raw(params, a, c, b, geo, want):
        with np.errstate(all="ignore"):
            v = raw_v(a, c, b) if want[0] else None
            d = raw_d(a, c, b) if want[1] else None
        # keep it finite so that the claim measures the error instead of stopping at the finiteness check
        return (None if v is None else np.nan_to_num(v), None if d is None else np.nan_to_num(d), None)

    monkeypatch.setitem(D._NUMERIC_FAMILIES, "gelu", raw)
    r = REGISTRY["kernels.accuracy_grid"].run(RunConfig(mode="quick", seed=0))
    assert r.verdict == "refuted"
    gelu = [c for c in r.details["checks"] if c["name"].startswith("gelu") and c["verdict"] == "refuted"]
    assert gelu, [c["name"] for c in r.details["checks"]]


def test_raw_digits_ntk_limit():
    r = REGISTRY["kernels.raw_digits_ntk_limit"].run(RunConfig(mode="quick", seed=0))
    assert r.verdict == "verified", r.notes
    assert abs(r.measured + 0.5) < 0.2
    X = K.raw_digits_inputs()
    assert X.max() == 16.0 and X.min() == 0.0                          # raw pixel values, not normalised
    assert min(r.details["first_layer_variances"]) > 20                 # beyond the trapezoid tier
