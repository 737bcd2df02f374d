"""The kernel claims: registered, verified in quick mode with their numbers, and able to refute."""
import numpy as np
import pytest

import proofs.claims.kernels as K
from proofs import verdicts as V
from proofs.claim import REGISTRY, RunConfig

IDS = ("kernels.dual_closed_forms", "kernels.layerwise_telescoping", "kernels.symbolic_ntk",
       "kernels.empirical_ntk_limit", "kernels.neural_tangents_agreement")


@pytest.fixture(scope="module")
def results():
    return {cid: REGISTRY[cid].run(RunConfig(mode="quick", seed=0)) for cid in IDS}


def test_registered_with_statements():
    for cid in IDS:
        c = REGISTRY[cid]
        assert c.expected == "verified" and c.statement and c.assumptions and "kernels" in c.tags


@pytest.mark.parametrize("cid", IDS)
def test_quick_verdicts(results, cid):
    r = results[cid]
    assert r.verdict == "verified", r.notes


def test_numbers(results):
    dual = results["kernels.dual_closed_forms"]
    assert dual.details["max_closed_form_error"] < 1e-13 and dual.details["max_quadrature_error"] < 1e-12
    tele = results["kernels.layerwise_telescoping"]
    assert tele.error < 1e-13 and tele.derivation is not None and tele.derivation.verified
    sweep = results["kernels.empirical_ntk_limit"]
    assert abs(sweep.measured + 0.5) < 0.2 and sweep.width == 2048
    assert set(sweep.sweeps) == {"NTK", "layer-wise NTK Theta_1", "layer-wise NTK Theta_2", "layer-wise NTK Theta_3"}
    nt = results["kernels.neural_tangents_agreement"]
    assert nt.error < 1e-12 and nt.details["neural_tangents"]


def test_sweep_refutes_a_wrong_kernel(monkeypatch):
    # compare the empirical NTK to an analytic NTK that is 30 % off (e.g. a wrong sigma_w2 power):
    # the error plateaus at ~0.3, so the sweep must say "does not shrink" (refuted)
    real = K.analytic_kernels

    def off(*args, **kwargs):
        k = real(*args, **kwargs)
        k.ntk = 1.3 * k.ntk
        k.layer_ntk = [1.3 * t for t in k.layer_ntk]
        return k

    monkeypatch.setattr(K, "analytic_kernels", off)
    res = K.empirical_ntk_limit.run(RunConfig())
    assert res.verdict == "refuted", res.notes
    ntk = next(c for c in res.details["checks"] if c["name"] == "NTK")
    assert "levels off" in ntk["reason"] or "decays slower" in ntk["reason"], ntk["reason"]


def test_closed_form_check_refutes_a_wrong_formula():
    # the relu value kernel without its sqrt(1 - rho^2) term is off by O(1) at rho = 0.4:
    # the comparison against the 30-digit reference must refute it
    from theory.dual import reference_expectation

    q11, q12, q22 = 1.3, 0.4, 0.8
    rho = q12 / np.sqrt(q11 * q22)
    wrong = np.sqrt(q11 * q22) * (np.pi - np.arccos(rho)) * rho / (2 * np.pi)
    ref = float(reference_expectation("relu", "value", q11, q12, q22))
    err = abs(wrong - ref) / abs(ref)
    assert V.compare("wrong relu", 0.0, err, K.CLOSED_FORM_TOLERANCE, error=err).verdict == "refuted"
