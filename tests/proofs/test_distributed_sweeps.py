"""Sweep points as Dask tasks (issue 14: "tasks are claims, the seeds of an audit, and the (width,
initialisation) points of sweeps"; proofs.distributed.PointExecutor, proofs.adaptive).

On a LocalCluster of 2 processes on 127.0.0.1 (one thread, one BLAS thread each, as ``--workers 2``):

* (a) an adaptive sweep with a seeded synthetic measure gives the serial result exactly (every
  sub-verdict, fit and replicate error), its progress wrapper sees every point as it completes, and a
  measure carrying a large array (scattered once per round) gives it too;
* (b) one real sweep claim, ``ngd-verify verify <claim> --workers 2`` (the claim in this process, its
  points as tasks), gives the serial JSON within 1e-9 relative;
* (c) a point that raises names its task, width and rep (:class:`proofs.distributed.PointFailed`); in a
  claim that is an ``inconclusive`` verdict whose notes name the point (serially: the same verdict); a
  point that keeps killing its worker stops the run naming claim, seed, width and rep;
* (d) nested: sweeps inside claim tasks on the cluster submit their points as tasks from those tasks;
  two claim tasks on two one-thread workers, both waiting on points, complete (no deadlock) within a
  timeout with the serial numbers; with claims waiting for a worker, a claim task keeps its rounds;
* ``NGD_VERIFY_POINT_TASKS=0`` keeps the points in their claim.

Skipped only when ``distributed`` cannot be imported (the ``[distributed]`` extra).
"""
from __future__ import annotations

import io
import json
import logging
import re
import time

import numpy as np
import pytest

from proofs import cli
from proofs.adaptive import Budget, SweepSpec, adaptive_sweep
from proofs.claim import ClaimResult, RunConfig, claim
from proofs.distributed import (BLAS_ENV, SCATTER_BYTES, Execution, PointFailed, _run_task, active_point_executor,
                                json_differences, point_executor, run_claims_on)

try:
    import distributed  # noqa: F401
    HAVE_DISTRIBUTED = True
except ImportError:  # pragma: no cover -- CI installs the extra
    HAVE_DISTRIBUTED = False

pytestmark = pytest.mark.skipif(not HAVE_DISTRIBUTED,
                                reason="the [distributed] extra (dask[distributed]) is not installed")

WIDTHS = [64, 128, 256, 512]
SPECS = [SweepSpec("iso", expected_slope=-0.5), SweepSpec("flat", expected_slope=None, final_tolerance=0.5)]
#: 4 initialisations per width, doubled to 16, then 1024: several rounds of points
BUDGET = Budget(4, 16, (1024,))


def synthetic(seed: int = 0, payload=None):
    """``measure(width, rep)``: a power law times a fluctuation seeded from (seed, width, rep) only,
    and a quantity that does not decay; ``payload`` (an array) is captured and used."""
    def measure(width, rep):
        rng = np.random.default_rng([seed, width, rep])
        extra = 0.0 if payload is None else float(payload[width % payload.size]) * 0.0
        return {"iso": width ** -0.5 * float(np.exp(0.3 * rng.standard_normal())) + extra,
                "flat": 0.2 + 0.05 * float(rng.standard_normal()), "tag": f"{width}/{rep}"}
    return measure


def failing(width, rep):
    if (width, rep) == (128, 1):
        raise ValueError("singular system at this draw")
    return {"iso": width ** -0.5}


def sweep_summary(run):
    """Everything a sweep result says (timings aside)."""
    return {"widths": run.widths, "errors": run.errors, "records": {f"{k}": v for k, v in run.records.items()},
            "order": list(run.records), "verdicts": [(p.name, p.verdict, p.reason, p.numbers) for p in run.parts],
            "fits": [None if p.fit is None else p.fit.to_dict() for p in run.parts],
            "history": run.spent["history"], "networks": run.spent["networks"]}


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.CRITICAL, env=dict(BLAS_ENV), memory_limit=0)
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


# ----------------------------------------------------------------------------- (a) synthetic sweep
def test_a_sweep_with_points_as_tasks_gives_the_serial_result_and_reports_each_point(client):
    serial = adaptive_sweep(synthetic(), WIDTHS, SPECS, BUDGET)
    assert active_point_executor() is None and "execution" not in serial.spent  # serial: as before
    seen = []

    def wrap(points, desc):
        total = len(points)
        for item in points:
            seen.append((desc, total, item[0]))
            yield item

    with point_executor(client, "demo.synthetic at seed 0") as ex:
        assert active_point_executor() is ex
        dist = adaptive_sweep(synthetic(), WIDTHS, SPECS, BUDGET, progress=wrap)
    assert active_point_executor() is None
    assert sweep_summary(dist) == sweep_summary(serial)
    assert serial.spent["looks"] >= 2  # more than one round went through the executor
    assert dist.spent["execution"] == {"point_tasks": serial.spent["networks"], "rounds_here": 0}
    # every point was reported, once, with the round's size, as its task completed
    per_round = {}
    for desc, total, i in seen:
        per_round.setdefault(desc, (total, []))[1].append(i)
    assert sum(total for total, _ in per_round.values()) == serial.spent["networks"]
    assert all(sorted(ix) == list(range(total)) for total, ix in per_round.values())


def test_a_measure_carrying_a_large_array_is_scattered_and_gives_the_serial_result(client):
    payload = np.random.default_rng(1).standard_normal(SCATTER_BYTES // 8 + 1000)  # > SCATTER_BYTES pickled
    measure = synthetic(seed=5, payload=payload)
    serial = adaptive_sweep(measure, WIDTHS, SPECS[:1], Budget(2, 2))
    with point_executor(client, "demo.large at seed 0"):
        dist = adaptive_sweep(measure, WIDTHS, SPECS[:1], Budget(2, 2))
    assert sweep_summary(dist) == sweep_summary(serial) and dist.spent["execution"]["point_tasks"] == 8


def test_an_unpicklable_measure_runs_its_rounds_here(client):
    import threading

    lock = threading.Lock()
    base = synthetic(seed=2)

    def measure(width, rep):
        with lock:
            return base(width, rep)

    serial = adaptive_sweep(measure, WIDTHS, SPECS[:1], Budget(2, 2))
    with point_executor(client, "demo.local at seed 0"):
        dist = adaptive_sweep(measure, WIDTHS, SPECS[:1], Budget(2, 2))
    assert sweep_summary(dist) == sweep_summary(serial)
    assert dist.spent["execution"] == {"point_tasks": 0, "rounds_here": 1}


# ----------------------------------------------------------------------------- (b) a real sweep claim
CLAIM = "sanity.diagonal_fisher_isotropic"  # quick: 64 networks over 3 rounds, about a second serially


def run_json(tmp_path, name, argv):
    path = tmp_path / f"{name}.json"
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv + ["--json", str(path), "--no-progress"], out=out, err=err)
    assert code == 0, err.getvalue()
    return json.loads(path.read_text())


def test_a_real_sweep_claim_with_its_points_as_tasks_gives_the_serial_json(tmp_path):
    serial = run_json(tmp_path, "serial", ["verify", CLAIM, "--seed", "11"])
    dist = run_json(tmp_path, "dist", ["verify", CLAIM, "--seed", "11", "--workers", "2"])
    assert json_differences(serial, dist, rel=1e-9) == []
    (claim,) = dist["claims"]
    assert claim["details"]["spent"]["execution"] == {"point_tasks": claim["details"]["spent"]["networks"],
                                                      "rounds_here": 0}
    assert "execution" not in serial["claims"][0]["details"]["spent"]
    assert dist["environment"]["execution"]["kind"] == "local cluster"


def test_training_and_isotropy_sweeps_with_points_as_tasks_give_the_serial_numbers(client):
    from proofs import evidence as ev

    cfg = RunConfig(seed=3)
    task = ev.synthetic_task(cfg, ("dist",), 6, 8, 3)
    test_op = ev.analytic_test_operator("exact", task.X, task.X_test, 3)

    def both():
        t = ev.training_sweep(cfg, ("dist",), "exact", task.X, task.Y, task.X_test, task.Y_test, [32, 64, 128], 3,
                              1.0, 0.5, 2, test_operator=test_op, budget=Budget(2, 2))
        i = ev.isotropy_sweep(cfg, ("dist",), "diagonal", task.X, [32, 64, 128], 3, budget=Budget(2, 2))
        return {"lin": t.linearisation.errors, "test": t.test_error.errors, "curves": t.curves,
                "changes": t.layer_change, "parts": [(p.verdict, p.reason) for p in t.parts + i.adaptive.parts],
                "iso": i.errors, "alpha": i.extra, "records": {f"{k}": v for k, v in t.adaptive.records.items()}}, \
            [t.spent.get("execution"), i.adaptive.spent.get("execution")]

    serial, ran_here = both()
    with point_executor(client, "demo.evidence at seed 3"):
        dist, ran_there = both()
    assert ran_here == [None, None] and ran_there == [{"point_tasks": 6, "rounds_here": 0}] * 2
    # one BLAS thread per point task against the default here: rounding-level differences at most
    assert json_differences(json.loads(json.dumps(serial, default=float)),
                            json.loads(json.dumps(dist, default=float)), rel=1e-9) == []


# ----------------------------------------------------------------------------- (c) a failing point
def test_a_failing_point_names_its_task_width_and_rep(client):
    with point_executor(client, "demo.failing at seed 4"):
        with pytest.raises(PointFailed) as info:
            adaptive_sweep(failing, WIDTHS, SPECS[:1], Budget(2, 2))
    exc = info.value
    assert (exc.task, exc.width, exc.rep) == ("demo.failing at seed 4", 128, 1)
    assert str(exc).startswith("sweep point (width 128, rep 1) of demo.failing at seed 4 failed: "
                               "ValueError: singular system at this draw; the sweep was stopped")
    assert isinstance(exc.__cause__, ValueError)


def _claim_with_a_failing_point(kill: bool):
    """A claim (pickled by value) whose sweep point (128, 1) raises -- or kills its worker process."""
    @claim("demo.point_failure", title="failing point", statement="x", register=False)
    def check(cfg):
        def measure(width, rep):
            if (width, rep) == (128, 1):
                if kill:
                    import os as _os
                    _os._exit(1)
                raise ValueError("singular system at this draw")
            return {"iso": width ** -0.5}
        adaptive_sweep(measure, WIDTHS, SPECS[:1], Budget(2, 2))
        return ClaimResult("verified")
    return check


def test_a_claim_whose_point_raises_is_inconclusive_naming_the_point(client):
    c = _claim_with_a_failing_point(kill=False)
    serial = c.run(RunConfig(seed=4))
    with point_executor(client, "demo.point_failure at seed 4"):
        dist = c.run(RunConfig(seed=4))
    assert serial.verdict == dist.verdict == "inconclusive"  # as serially: a check that raised
    assert serial.notes == "check raised ValueError: singular system at this draw"
    assert dist.notes.startswith("check raised PointFailed: sweep point (width 128, rep 1) of demo.point_failure "
                                 "at seed 4 failed: ValueError: singular system at this draw")


def test_a_point_that_keeps_killing_its_worker_stops_the_run_naming_claim_seed_width_and_rep():
    import dask

    c = _claim_with_a_failing_point(kill=True)
    t0 = time.perf_counter()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        try:
            results = run_claims_on(Execution(workers=2), [c], "quick", 4)
        except PointFailed as failed:
            exc = failed
        else:
            pytest.fail(f"the run completed: {results[0].verdict}: {results[0].notes[:400]}")
    # Dask blames every task that was on a worker when it died, so the point named is (128, 1) or one
    # that shared both killed workers with it
    assert exc.task == "demo.point_failure at seed 4" and (exc.width, exc.rep) in [(w, r) for w in WIDTHS
                                                                                   for r in range(2)]
    # KilledWorker (the scheduler's verdict), or TaskLost when the result went with a dying worker first
    assert re.search(rf"sweep point \(width {exc.width}, rep {exc.rep}\) of demo.point_failure at seed 4 failed: "
                     r"(KilledWorker|TaskLost): ", str(exc)), str(exc)
    assert time.perf_counter() - t0 < 60


# ----------------------------------------------------------------------------- (d) nested
def claim_like(seed):
    """What a claim task does: a sweep (its points become tasks launched from this task)."""
    run = adaptive_sweep(synthetic(seed), WIDTHS, SPECS, BUDGET)
    return sweep_summary(run), run.spent.get("execution")


def test_sweeps_inside_claim_tasks_launch_their_points_as_tasks_without_deadlock(client):
    # two claim tasks on two one-thread workers, both waiting for their points at once: each seceded
    # task frees its slot for points, so both complete (without seceding this would deadlock)
    futures = [client.submit(_run_task, f"demo.nested at seed {s}", claim_like, s, pure=False) for s in range(2)]
    results = [f.result(timeout=60) for f in futures]
    for s, (summary, execution) in enumerate(results):
        serial = adaptive_sweep(synthetic(s), WIDTHS, SPECS, BUDGET)
        assert summary == sweep_summary(serial)
        assert execution == {"point_tasks": serial.spent["networks"], "rounds_here": 0}


def test_while_claims_wait_for_a_worker_a_claim_task_runs_its_rounds_itself(client):
    # six claim tasks on two threads: the first ones see claims waiting and keep their rounds (no
    # second claim started in a seceded slot); the last ones, with nothing waiting, launch points
    futures = [client.submit(_run_task, f"demo.busy at seed {s}", claim_like, s, pure=False) for s in range(6)]
    results = [f.result(timeout=60) for f in futures]
    for s, (summary, execution) in enumerate(results):
        assert summary == sweep_summary(adaptive_sweep(synthetic(s), WIDTHS, SPECS, BUDGET))
    executions = [e for _, e in results]
    assert executions[0]["point_tasks"] == 0 and executions[0]["rounds_here"] >= 2
    assert sum(e["point_tasks"] for e in executions) > 0


def test_point_tasks_can_be_turned_off_by_the_environment(monkeypatch):
    """NGD_VERIFY_POINT_TASKS=0: a claim task keeps its points (no executor inside it)."""
    monkeypatch.setenv("NGD_VERIFY_POINT_TASKS", "0")
    assert _run_task("demo at seed 0", active_point_executor) is None
    monkeypatch.setenv("NGD_VERIFY_POINT_TASKS", "1")
    inside = _run_task("demo at seed 0", active_point_executor)
    assert inside.nested and inside.task == "demo at seed 0" and active_point_executor() is None


def test_a_claim_task_whose_point_was_lost_fails_naming_the_point():
    """Inside a claim task, a point lost to the cluster fails the task once the claim has returned
    (the check turned it into an inconclusive verdict; the run must stop instead)."""
    def claim_body():
        ex = active_point_executor()
        ex.lost = PointFailed(ex.task, 256, 3, RuntimeError("KilledWorker stand-in"), 5, 8)
        return "inconclusive"

    with pytest.raises(PointFailed, match=r"^sweep point \(width 256, rep 3\) of demo.lost at seed 2 failed"):
        _run_task("demo.lost at seed 2", claim_body)
