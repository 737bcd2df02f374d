"""The unit-wise claims (proofs.claims.ngd_unit_wise): the gated refutation of the rho -> 0+ relu
step, its positive controls and the mutations they must catch, the damped step, the C = 1 control of
the multi-output refutation, and the single alpha formula every claim uses.

Each claim runs whole at quick settings (about 1-2 s each)."""
import numpy as np
import pytest

from proofs.claim import REGISTRY, RunConfig
from proofs.claims import ngd_unit_wise as U

CFG = RunConfig(seed=0)


def controls(result):
    return [c for c in result.details["checks"] if c["role"] == "control"]


def test_relu_one_step_is_refuted_behind_verified_controls():
    result = REGISTRY["ngd.unit_wise.relu_one_step"].run(CFG)
    assert result.verdict == "refuted", result.notes
    ctrl = controls(result)
    assert len(ctrl) == 4 and all(c["verdict"] == "verified" for c in ctrl), ctrl
    names = " ".join(c["name"] for c in ctrl)
    assert "tanh" in names and "linearised" in names and "layer-2-only" in names
    # the reason text says what was measured (mechanism numbers), not just the verdict
    for word in ("tanh", "layer-1-only", "layer-2-only", "sign flips", "reverting"):
        assert word in result.notes, word
    mech = result.details["mechanism"]["relu"][str(result.width)]
    assert mech["ratio"]["min"] > 10 * U.ONE_STEP_TOL          # every initialisation fails, not just the median
    assert mech["flip_layer2"]["median"] > 0.2                  # a large share of layer-2 patterns flip


def test_eta_mutation_two_over_alpha_makes_the_claim_inconclusive(monkeypatch):
    """The claim's step at eta = 2/alpha (edge of stability) must not read as the refutation of the
    eta = 1/alpha statement: its controls fail, so the verdict is inconclusive (verify exits 1)."""
    monkeypatch.setattr(U, "ETA_FACTOR", 2.0)
    assert U.step_learning_rate(10.0) == pytest.approx(0.2)
    result = REGISTRY["ngd.unit_wise.relu_one_step"].run(CFG)
    assert result.verdict == "inconclusive", result.notes
    failed = {c["name"] for c in controls(result) if c["verdict"] != "verified"}
    assert any("linearised" in n for n in failed) and any("tanh" in n for n in failed), failed


def test_hidden_damping_in_the_step_is_caught_by_the_linearised_control(monkeypatch):
    monkeypatch.setattr(U, "STEP_RELATIVE_DAMPING", 0.1)   # 1e-1 of each unit's Gram scale
    result = REGISTRY["ngd.unit_wise.relu_one_step"].run(CFG)
    assert result.verdict == "inconclusive", result.notes
    lin = next(c for c in controls(result) if "linearised" in c["name"])
    assert lin["verdict"] == "refuted", lin


def test_step_record_is_a_pure_function_of_its_coordinates():
    a = U.step_record(CFG, "relu", 64, 1, mechanism=False)
    b = U.step_record(CFG, "relu", 64, 1, mechanism=False)
    c = U.step_record(CFG, "relu", 64, 2, mechanism=False)
    assert a == b and a["ratio"] != c["ratio"]
    assert a["eta"] == pytest.approx(1.0 / U.predicted_alpha([U.STEP_DIM, 64, 64, 1], "relu"))


def test_step_record_layer_linearisations_add_up_to_the_operator():
    """lin_layer{1,2} use J_l d_l; with the output layer they sum to Theta_G r0 (the operator the
    linearised control uses): for tanh at eta = 1/alpha the full linearised residual is 0."""
    r = U.step_record(CFG, "tanh", 64, 0)
    assert r["lin"] < 1e-20
    # each hidden layer carries M of alpha = 2M + 1: (1 - M/alpha)^2 ~ 1/4
    assert r["lin_layer1"] == pytest.approx((1 - 64 / 129) ** 2, rel=1e-9)
    assert r["lin_layer2"] == pytest.approx((1 - 64 / 129) ** 2, rel=1e-9)


def test_relu_damped_one_step_verified():
    result = REGISTRY["ngd.unit_wise.relu_damped_one_step"].run(CFG)
    assert result.verdict == "verified", result.notes
    assert result.width >= 2048 and result.measured <= U.DAMPED_TOL


def test_multi_output_refutation_has_a_verified_c1_control():
    result = REGISTRY["ngd.unit_wise.multi_output"].run(CFG)
    assert result.verdict == "refuted"
    ctrl = controls(result)
    assert len(ctrl) == 2 and all(c["verdict"] == "verified" for c in ctrl)


def test_one_alpha_formula_feeds_every_claim(monkeypatch):
    """A mutation of theory.unit_wise_theory.active_count_moments (THE formula) changes the claims'
    prediction, theory's isotropy constant and the numerics diagnostic, and refutes tanh_exact."""
    import theory.unit_wise_theory as T
    from numerics.approximations.unit_wise import UnitWiseApproximation
    from numerics.network import MLP
    from theory.isotropy import isotropy_constant

    original = T.active_count_moments
    widths = [12, 32, 32, 1]
    before = (U.predicted_alpha(widths, "tanh"), float(isotropy_constant("unit_wise", widths=widths,
                                                                         activation="tanh")))
    assert before == (65.0, 65.0)

    def mutated(hidden, gamma, n_outputs=1):
        mean, var = original(hidden, gamma, n_outputs)
        return mean + 1, var

    monkeypatch.setattr(T, "active_count_moments", mutated)
    assert U.predicted_alpha(widths, "tanh") == 66.0
    assert float(isotropy_constant("unit_wise", widths=widths, activation="tanh")) == 66.0
    assert float(T.unit_wise_isotropy([12, 32, 32, 2], "tanh", allow_multi_output_asymptotic=True).value) == 34.0
    net = MLP(widths, activation="tanh", seed=0)
    X = np.random.default_rng(0).standard_normal((6, 12))
    assert UnitWiseApproximation(net, X).diagnostics["predicted_alpha_limit"] == 66.0
    assert REGISTRY["ngd.unit_wise.tanh_exact"].run(CFG).verdict == "refuted"


def test_step_size_tampered_only_in_the_full_relu_step_is_caught(monkeypatch):
    """A mutation that doubles eta in the full step alone (the controls' linearisation keeps the
    intended eta) is caught by the applied-step control: the parameters did not move by -eta d."""
    from numerics.network import MLP

    real = MLP.apply_update

    def doubled(self, directions, learning_rate):
        tampered = self.activation.name == "relu" and all(np.any(d != 0) for d in directions)
        return real(self, directions, learning_rate * (2.0 if tampered else 1.0))

    monkeypatch.setattr(MLP, "apply_update", doubled)
    result = REGISTRY["ngd.unit_wise.relu_one_step"].run(CFG)
    assert result.verdict == "inconclusive", result.notes
    failed = {c["name"] for c in controls(result) if c["verdict"] != "verified"}
    assert any("applied step" in n for n in failed), failed
