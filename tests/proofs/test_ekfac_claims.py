"""The EKFAC claims (proofs.claims.ngd_ekfac): discovered by the registry, their verdicts at quick
settings (the whole topic runs in a few seconds), the positive controls that gate the refutation, the
sweep data's design criteria, and mutants the claims must catch."""
import numpy as np

from numerics.approximations import ekfac as ekfac_numerics
from proofs.claim import REGISTRY, RunConfig
from proofs.claims import ngd_ekfac as C
from proofs.registry import load_claims, select_claims

CFG = RunConfig(seed=0)
IDS = ("ngd.ekfac.finite_width_frame", "ngd.ekfac.not_isotropic", "ngd.ekfac.infinite_width_limit",
       "ngd.ekfac.two_samples")


def checks(result, role=None):
    return [c for c in result.details["checks"] if role is None or c["role"] == role]


def test_claims_are_discovered_with_their_expectations():
    ids = [c.id for c in load_claims()]
    assert all(i in ids for i in IDS)
    assert [c.id for c in select_claims(["ngd.ekfac"])] == list(IDS)
    assert REGISTRY["ngd.ekfac.not_isotropic"].expected == "refuted"
    assert all(REGISTRY[i].expected == "verified" for i in IDS if i != "ngd.ekfac.not_isotropic")


def test_sweep_data_meets_the_design_criteria():
    task = C.ekfac_task(CFG)
    assert task["gap"] >= C.GAP_MIN and task["plateau"] >= C.PLATEAU_MIN
    assert task["X"].shape == (C.N_SWEEP, C.DIM_SWEEP)
    np.testing.assert_allclose(np.linalg.norm(task["X"], axis=1), 1.0)
    assert C.ekfac_task(RunConfig(seed=1))["X"][0, 0] != task["X"][0, 0]        # seeded by the master seed


def test_finite_width_frame_is_verified_at_float64_precision():
    result = REGISTRY["ngd.ekfac.finite_width_frame"].run(CFG)
    assert result.verdict == "verified", result.notes
    assert result.measured < 1e-11
    assert all(row["frame_vs_dense"] < 1e-11 and row["trace_error"] < 1e-12 for row in result.details["table"])


def test_not_isotropic_is_refuted_behind_verified_controls():
    result = REGISTRY["ngd.ekfac.not_isotropic"].run(CFG)
    assert result.verdict == "refuted", result.notes
    ctrl = checks(result, "control")
    assert len(ctrl) == 3 and all(c["verdict"] == "verified" for c in ctrl)
    assert "K-FAC on the same networks" in ctrl[0]["name"] and "analytic infinite-width value" in ctrl[1]["name"]
    evidence = checks(result, "evidence")
    assert len(evidence) == 1 and evidence[0]["verdict"] == "refuted" and "levels off above" in evidence[0]["reason"]
    assert result.details["levels_off"]["verdict"] == "verified"
    d = result.details
    assert abs(d["ekfac_isotropy_errors"][-1] - d["predicted_plateau"]) < 0.25 * d["predicted_plateau"]
    assert d["kfac_worst_isotropy_error"] < 1e-12
    ref = d["theory_N8_L3"]
    assert ref["N"] == 8 and ref["L"] == 3 and ref["min"] > 0.05


def test_infinite_width_limit_and_two_samples_are_verified():
    for cid in ("ngd.ekfac.infinite_width_limit", "ngd.ekfac.two_samples"):
        result = REGISTRY[cid].run(CFG)
        assert result.verdict == "verified", (cid, result.notes)
    fit = REGISTRY["ngd.ekfac.infinite_width_limit"].run(CFG).sweeps
    assert all(-0.8 < f.slope < -0.3 for f in fit.values())


def test_broken_kfac_control_makes_the_refutation_inconclusive(monkeypatch):
    """If the instrument misreads an isotropic operator, the refutation must not stand."""
    C.ekfac_sweep.cache_clear()
    real = C.isotropy_error

    def noisy(T):
        err = real(T)
        return type(err)(err.error + 1e-3, err.alpha)              # every operator looks 1e-3 off

    monkeypatch.setattr(C, "isotropy_error", noisy)
    cfg = RunConfig(seed=3)
    result = REGISTRY["ngd.ekfac.not_isotropic"].run(cfg)
    assert result.verdict == "inconclusive", result.notes
    C.ekfac_sweep.cache_clear()


def test_kfac_eigenvalues_mutant_is_caught_by_the_claims(monkeypatch):
    """EKFAC with K-FAC's eigenvalue products: the frame claim's dense oracle refutes it, the limit claim
    refutes it, and the refutation of isotropy does not happen (the measured operator is isotropic to
    round-off, which is never read as "levels off", and the plateau control fails)."""
    def kfac_products(gb, ga, n_samples, n_outputs=1):
        return np.outer(gb.lam, ga.lam) / n_samples ** 2

    monkeypatch.setattr(ekfac_numerics, "ekfac_eigenvalues", kfac_products)
    C.ekfac_sweep.cache_clear()
    cfg = RunConfig(seed=5)
    assert REGISTRY["ngd.ekfac.finite_width_frame"].run(cfg).verdict == "refuted"
    assert REGISTRY["ngd.ekfac.not_isotropic"].run(cfg).verdict != "refuted"
    assert REGISTRY["ngd.ekfac.infinite_width_limit"].run(cfg).verdict == "refuted"
    C.ekfac_sweep.cache_clear()


def test_quick_topic_is_fast():
    import time

    C.ekfac_sweep.cache_clear()
    C.ekfac_task.cache_clear()
    cfg = RunConfig(seed=11)
    start = time.perf_counter()
    verdicts = [REGISTRY[i].run(cfg).verdict for i in IDS]
    assert verdicts == ["verified", "refuted", "verified", "verified"]
    assert time.perf_counter() - start < 20          # ~3 s on an idle 2-core box; generous under load


def test_isotropy_limit_verdict_reads_round_off_plateaus_as_isotropic_not_as_levelling_off():
    from proofs import verdicts as V

    widths = [256, 1024, 4096]
    flat = [[2e-16, 3e-16, 2.5e-16], [3e-16, 2e-16, 2.2e-16], [2.4e-16, 2.9e-16, 2e-16]]
    refuting_sweep = V.SubVerdict("iso", "refuted", "levels off")     # what the bare plateau rule may say
    assert C.isotropy_limit_verdict(widths, flat, refuting_sweep).verdict == "inconclusive"
    plateau = [[0.11, 0.12, 0.1], [0.1, 0.105, 0.11], [0.1, 0.102, 0.099]]
    assert C.isotropy_limit_verdict(widths, plateau, V.sweep("iso", widths, plateau, expected_slope=-0.5)).verdict == "refuted"
    widths = [256, 512, 1024, 2048, 4096, 8192]
    noise = np.array([1.0, 1.05, 0.95, 1.02, 0.98, 1.04])
    decay = [list(3.0 * w ** -0.5 * np.roll(noise, k)) for k, w in enumerate(widths)]
    sweep = V.sweep("iso", widths, decay, expected_slope=-0.5)
    assert sweep.verdict == "verified"
    assert C.isotropy_limit_verdict(widths, decay, sweep).verdict == "verified"
