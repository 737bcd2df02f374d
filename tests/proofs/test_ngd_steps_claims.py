"""Tests of the ``ngd.steps.*`` claims (proofs/claims/ngd_steps.py): each is verified at a couple of
seeds, and each single-point bug it exists for -- applied here by monkeypatching the behaviour, not
the source (source-text mutants are in test_ngd_steps_mutations.py) -- makes it not verified.

Bugs (a)-(f) of the task: the damped dual systems of block-diagonal (a), block tri-diagonal (b) and
unit-wise (c) NGD damped by ``rho I`` instead of ``rho N I``; K-FAC's input factor without the bias
coordinate (d); Forster-mapped K-FAC not mapping test points (e); ``train_ngd``'s default learning
rate not ``1/alpha`` (f).
"""
import numpy as np
import pytest

from proofs.claim import RunConfig
from proofs.registry import get_claim, load_claims

load_claims()

IDS = ("ngd.steps.damped", "ngd.steps.kfac_bias", "ngd.steps.forster_test_points", "ngd.steps.default_learning_rate")


def run(claim_id, seed=0):
    return get_claim(claim_id).run(RunConfig(seed=seed))


def test_claims_are_well_formed():
    for cid in IDS:
        c = get_claim(cid)
        assert c.title and c.statement and c.assumptions and c.expected == "verified", cid
        assert "2010.00879" in c.reference and "paper.md" not in c.reference, cid
        assert c.module == "proofs.claims.ngd_steps", cid


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("claim_id", IDS)
def test_claim_is_verified(claim_id, seed):
    result = run(claim_id, seed)
    assert result.verdict == "verified", result.notes
    checks = result.details["checks"]
    assert checks and all(c["verdict"] == "verified" for c in checks)
    # every numeric comparison sits far inside its derived tolerance (not at its edge)
    ratios = [c["numbers"]["error"] / c["numbers"]["tolerance"] for c in checks
              if c["numbers"].get("tolerance") and "detects" not in c["name"]]
    assert ratios and max(ratios) < 0.5


def test_damped_covers_every_approximation_with_and_without_bias_and_two_outputs():
    result = run("ngd.steps.damped")
    names = [c["name"] for c in result.details["checks"]]
    for approx in ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise"):
        for setting in ("no bias, C=1", "bias, C=1", "bias, C=2"):
            for what in ("direction", "operator", "test_operator"):
                assert any(setting in n and f"/ {approx}: {what} " in n for n in names), (approx, setting, what)


# --------------------------------------------------------------------------------------------------
# behavioural mutants
# --------------------------------------------------------------------------------------------------
def _damped_by_rho_not_rho_n(monkeypatch, cls, method):
    """Run ``cls.method`` (which builds the damped dual system) with ``rho / N``: the dual system then has
    ``rho I`` where it needs ``rho N I``."""
    original = cls.__dict__[method]

    def mutated(self, *args, **kwargs):
        rho = self.damping
        self.damping = rho / self.n_samples
        try:
            return original(self, *args, **kwargs)
        finally:
            self.damping = rho

    monkeypatch.setattr(cls, method, mutated)


def _assert_caught(claim_id, needle=None):
    result = run(claim_id)
    assert result.verdict == "refuted", (result.verdict, result.notes[:300])
    if needle is not None:
        failing = [c["name"] for c in result.details["checks"] if c["verdict"] != "verified"]
        assert failing and all(needle in n for n in failing), failing
    return result


def test_a_block_diagonal_damped_by_rho_I_is_caught(monkeypatch):
    from numerics.approximations.block_diagonal import BlockDiagonalApproximation

    _damped_by_rho_not_rho_n(monkeypatch, BlockDiagonalApproximation, "_build_system")
    _assert_caught("ngd.steps.damped", "block_diagonal")


def test_b_block_tridiagonal_damped_by_rho_I_is_caught(monkeypatch):
    from numerics.approximations.block_tridiagonal import BlockTridiagonalApproximation
    from numerics.approximations.pattern import PatternApproximation

    original = PatternApproximation._build_system

    def only_btd(self):
        if isinstance(self, BlockTridiagonalApproximation) and self.damping > 0:
            rho = self.damping
            self.damping = rho / self.n_samples
            try:
                return original(self)
            finally:
                self.damping = rho
        return original(self)

    monkeypatch.setattr(PatternApproximation, "_build_system", only_btd)
    _assert_caught("ngd.steps.damped", "block_tridiagonal")


def test_c_unit_wise_damped_by_rho_I_is_caught(monkeypatch):
    from numerics.approximations.unit_wise import UnitWiseApproximation

    # every use of rho in the unit-wise code is the per-unit dual shift N rho: scaling rho by 1/N
    # for the whole object is exactly the rho I bug (and survives refactors of where the shift is added)
    original = UnitWiseApproximation._prepare

    def rho_not_rho_n(self, **kwargs):
        self.damping = self.damping / self.n_samples
        original(self, **kwargs)

    monkeypatch.setattr(UnitWiseApproximation, "_prepare", rho_not_rho_n)
    _assert_caught("ngd.steps.damped", "unit_wise")


def test_d_kfac_input_factor_without_bias_is_caught(monkeypatch):
    from numerics.approximations import kfac

    original = kfac.KFACApproximation._prepare

    def without_bias(self, **kwargs):
        original(self, **kwargs)
        if self.net.has_bias:
            self.input_grams = [kfac.thin_gram(Z[:, :-1], self.rank_rtol, self.damping > 0) for Z in self.factors.Z]

    monkeypatch.setattr(kfac.KFACApproximation, "_prepare", without_bias)
    result = _assert_caught("ngd.steps.kfac_bias")
    failing = {c["name"] for c in result.details["checks"] if c["verdict"] != "verified"}
    assert any(n.startswith("rho -> 0+") for n in failing) and any(n.startswith("rho = ") for n in failing)


def test_e_forster_test_points_not_mapped_is_caught(monkeypatch):
    """Forster is a transform of the data: if the fitted map is not applied to the test points, the
    operator at those points differs from the dense reference at the mapped points (rho > 0 and rho -> 0+)."""
    from numerics.forster import ForsterResult, _normalise_rows

    monkeypatch.setattr(ForsterResult, "transform", lambda self, X2: _normalise_rows(np.asarray(X2, float), "X2"))
    result = _assert_caught("ngd.steps.forster_test_points")
    failing = [c["name"] for c in result.details["checks"] if c["verdict"] == "refuted"]
    assert len([n for n in failing if "Theta_G(x', X) at mapped test points" in n]) == 2, failing  # both rho


def test_e_train_ngd_ignoring_the_radial_isotropic_position_is_caught(monkeypatch):
    """train_ngd must read the Forster position off the data for its default learning rate."""
    import numerics.forster

    monkeypatch.setattr(numerics.forster, "in_radial_isotropic_position", lambda X, tol=None: False)
    _assert_caught("ngd.steps.forster_test_points", "train_ngd")


def test_f_default_learning_rate_not_one_over_alpha_is_caught(monkeypatch):
    from numerics import training

    original = training.train_ngd

    def default_one(*args, learning_rate=None, **kwargs):
        return original(*args, learning_rate=1.0 if learning_rate is None else learning_rate, **kwargs)

    monkeypatch.setattr(training, "train_ngd", default_one)
    result = _assert_caught("ngd.steps.default_learning_rate")
    failing = {c["name"].split(":")[0] for c in result.details["checks"] if c["verdict"] != "verified"}
    # exact has alpha = 1, so eta = 1 is right there; every other approximation is caught
    assert failing == {"block_diagonal", "block_tridiagonal", "kfac", "kfac + forster", "unit_wise"}


def test_f_default_learning_rate_from_a_wrong_alpha_lookup_is_caught(monkeypatch):
    from numerics import training

    original = training.theory_alpha
    monkeypatch.setattr(training, "theory_alpha", lambda *a, **k: original(*a, **k) + 1.0)
    result = _assert_caught("ngd.steps.default_learning_rate")
    assert all(c["verdict"] == "refuted" for c in result.details["checks"] if "recorded eta" in c["name"])


def test_damping_scale_makes_the_bug_visible():
    """rho is on the scale of G's spectrum: the references at rho and rho / N differ by O(1)."""
    result = run("ngd.steps.damped")
    for setting in result.details.values():
        if not isinstance(setting, dict) or "exact" not in setting:
            continue
        for name, e in setting.items():
            assert e["bug_gap"] > 1e-3 and e["bug_gap"] > 1e6 * e["tolerance"], (name, e["bug_gap"])
            assert np.isfinite(e["kappa"]) and e["kappa"] < 1e8
