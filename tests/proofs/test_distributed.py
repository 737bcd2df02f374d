"""Dask execution (proofs.distributed, ``--workers`` / ``--scheduler``; issue 14).

* a LocalCluster of 2 processes on 127.0.0.1: ``verify`` and ``audit`` give the serial JSON (same
  verdicts, numbers within 1e-9 relative, timings aside), gathered in the serial order;
* an external ``dask scheduler`` and two ``dask worker`` processes started here: ``audit --scheduler``
  gives the serial JSON; a worker killed mid-run: the run completes (its tasks are rescheduled on
  the other worker) with the serial results;
* a task that kills its worker every time stops the run cleanly, naming the claim and the seed;
* the CLI's one-line errors: the extra missing, a bad ``--scheduler`` address, both options given.

The cluster tests are skipped only when ``distributed`` cannot be imported (the ``[distributed]``
extra; CI installs it with the ``[test]`` extra).
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from proofs import cli
from proofs.audit import run_audit
from proofs.claim import ClaimResult, claim
from proofs.distributed import Execution, TaskFailed, json_differences

try:
    import distributed  # noqa: F401
    HAVE_DISTRIBUTED = True
except ImportError:  # pragma: no cover -- CI installs the extra
    HAVE_DISTRIBUTED = False

needs_distributed = pytest.mark.skipif(
    not HAVE_DISTRIBUTED, reason="the [distributed] extra (dask[distributed]) is not installed")

FAST = ["sanity"]  # three claims, about a second each


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_json(tmp_path, name, argv):
    path = tmp_path / f"{name}.json"
    code, out, err = run(argv + ["--json", str(path), "--no-progress"])
    assert code == 0, err
    return json.loads(path.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- claims shipped by value
def _slow_claim():
    """A claim defined here (pickled by value to the workers): 0.3 s, a number from the seed."""
    @claim("demo.slow", title="slow", statement="x", register=False)
    def slow(cfg):
        import time as _time
        _time.sleep(0.3)
        return ClaimResult("verified", measured=float(cfg.rng("demo.slow").standard_normal()))
    return slow


def _crashing_claim():
    """A claim whose check kills its worker process at seed 1 (every time it is retried)."""
    @claim("demo.crash", title="crash", statement="x", register=False)
    def crash(cfg):
        import os as _os
        if cfg.seed == 1:
            _os._exit(1)
        return ClaimResult("verified")
    return crash


# ----------------------------------------------------------------------------- serial references
@pytest.fixture(scope="module")
def serial_audit(tmp_path_factory):
    return run_json(tmp_path_factory.mktemp("serial"), "audit", ["audit", *FAST, "--seeds", "2", "--start", "7"])


# ----------------------------------------------------------------------------- local cluster
@needs_distributed
def test_verify_on_a_local_cluster_gives_the_serial_json(tmp_path):
    serial = run_json(tmp_path, "serial", ["verify", *FAST, "--seed", "3"])
    dist = run_json(tmp_path, "dist", ["verify", *FAST, "--seed", "3", "--workers", "2"])
    assert json_differences(serial, dist) == []
    assert [c["id"] for c in dist["claims"]] == [c["id"] for c in serial["claims"]]  # the serial order
    assert serial["environment"]["execution"] == {"kind": "serial"}
    ex = dist["environment"]["execution"]
    assert ex["kind"] == "local cluster" and ex["workers"] == 2 and ex["threads_per_worker"] == 1
    assert len(ex["peak_rss_mb_per_worker"]) == 2 and all(mb > 10 for mb in ex["peak_rss_mb_per_worker"].values())


@needs_distributed
def test_audit_on_a_local_cluster_gives_the_serial_json(tmp_path, serial_audit):
    dist = run_json(tmp_path, "dist", ["audit", *FAST, "--seeds", "2", "--start", "7", "--workers", "2"])
    assert json_differences(serial_audit, dist) == []
    assert dist["verdicts"] == serial_audit["verdicts"] and dist["values"] == serial_audit["values"]
    assert dist["environment"]["execution"]["kind"] == "local cluster"
    assert dist["execution"] == dist["environment"]["execution"]


@needs_distributed
def test_results_are_reassembled_in_serial_order_and_progress_follows_completion():
    slow = _slow_claim()
    serial = run_audit([slow], seeds=4, start=0)
    seen = []
    dist = run_audit([slow], seeds=4, start=0, workers=2, on_seed=lambda seed, results: seen.append((seed, results)))
    assert sorted(s for s, _ in seen) == [0, 1, 2, 3]
    assert all(len(r) == 1 and r[0][:2] == ("demo.slow", "verified") for _, r in seen)
    assert list(dist.rows[0].verdicts) == [0, 1, 2, 3] and dist.rows[0].values == serial.rows[0].values
    assert len({v["measured"] for v in dist.rows[0].values.values()}) == 4  # seeded per seed, not per order


@needs_distributed
def test_a_task_that_keeps_killing_its_worker_stops_the_run_naming_claim_and_seed():
    import dask

    crash = _crashing_claim()
    t0 = time.perf_counter()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with pytest.raises(TaskFailed) as info:
            run_audit([crash], seeds=3, start=0, workers=2)
    message = str(info.value)
    assert info.value.task == "demo.crash at seed 1"
    assert "task demo.crash at seed 1 failed: KilledWorker" in message and "the run was stopped" in message
    assert time.perf_counter() - t0 < 60


def test_cli_reports_a_failed_task_in_one_line_with_exit_3(monkeypatch):
    import proofs.audit

    def failing(*args, **kwargs):
        raise TaskFailed("sanity.pinv_product_rule at seed 4", RuntimeError("worker lost"), 5, 6)

    monkeypatch.setattr(proofs.audit, "run_audit", failing)
    monkeypatch.setattr(cli, "_execution", lambda args, claims: Execution(workers=2))
    code, out, err = run(["audit", "sanity", "--seeds", "6", "--workers", "2"])
    assert code == 3 and out == ""
    assert err.strip().splitlines() == [
        "ngd-verify: error: task sanity.pinv_product_rule at seed 4 failed: RuntimeError: worker lost; the run was "
        "stopped (5 of 6 tasks had finished; their results were discarded)"]


# ----------------------------------------------------------------------------- CLI errors
def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ngd-verify: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", [["verify", "sanity"], ["audit", "sanity", "--seeds", "2"],
                                     ["report", "sanity", "--out", "{tmp}"]])
def test_missing_extra_is_a_one_line_usage_error(monkeypatch, tmp_path, command):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    argv = [a.replace("{tmp}", str(tmp_path / "rep")) for a in command] + ["--workers", "2"]
    code, _, err = run(argv)
    assert_one_line_error(code, err, "--workers 2 needs the [distributed] extra: "
                                     "pip install 'ngd-verifier[distributed]'")


def test_workers_and_scheduler_are_mutually_exclusive():
    code, _, err = run(["audit", "sanity", "--seeds", "2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert_one_line_error(code, err, "--workers", "--scheduler")


@needs_distributed
@pytest.mark.parametrize("address, cause", [("tcp://127.0.0.1:{port}", "Connection refused"),
                                            ("nonsense", "not an address")])
def test_bad_scheduler_address_is_a_one_line_error_naming_it(address, cause):
    address = address.format(port=free_port())
    t0 = time.perf_counter()
    code, _, err = run(["audit", "sanity", "--seeds", "2", "--scheduler", address])
    assert_one_line_error(code, err, "--scheduler", repr(address), cause)
    assert time.perf_counter() - t0 < 15


# ----------------------------------------------------------------------------- an external cluster
@pytest.fixture(scope="module")
def external_cluster():
    """``dask scheduler`` on a free loopback port and two ``dask worker --nthreads 1``, as processes of
    their own (own sessions, so that one can be killed with everything it started)."""
    if not HAVE_DISTRIBUTED:
        pytest.skip("the [distributed] extra (dask[distributed]) is not installed")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cli = [sys.executable, "-m", "distributed.cli.dask_worker"]
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    procs = [subprocess.Popen(dask_cli + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet)]
    try:
        procs += [subprocess.Popen(worker_cli + [address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                                 "--host", "127.0.0.1"], **quiet) for _ in range(2)]
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5, set_as_default=False) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address, procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


@needs_distributed
def test_audit_on_an_external_scheduler_gives_the_serial_json(tmp_path, serial_audit, external_cluster):
    address, _ = external_cluster
    dist = run_json(tmp_path, "sched", ["audit", *FAST, "--seeds", "2", "--start", "7", "--scheduler", address])
    assert json_differences(serial_audit, dist) == []
    ex = dist["environment"]["execution"]
    assert ex["kind"] == "scheduler" and ex["address"] == address and ex["workers"] == 2


@needs_distributed
def test_one_sweep_claim_on_an_external_scheduler_sends_its_points_and_gives_the_serial_json(tmp_path, external_cluster):
    """A single claim runs here and its sweep points go to the external cluster (the path `--workers` tests in
    test_distributed_sweeps.py, here through `--scheduler`)."""
    address, _ = external_cluster
    claim_id = "sanity.diagonal_fisher_isotropic"          # 64 networks over 3 rounds
    serial = run_json(tmp_path, "serial-sweep", ["verify", claim_id, "--seed", "5"])
    dist = run_json(tmp_path, "sched-sweep", ["verify", claim_id, "--seed", "5", "--scheduler", address])
    assert json_differences(serial, dist) == []
    (result,) = dist["claims"]
    assert result["details"]["spent"]["execution"] == {"point_tasks": result["details"]["spent"]["networks"],
                                                       "rounds_here": 0}
    assert dist["environment"]["execution"]["kind"] == "scheduler"


@needs_distributed
def test_a_worker_killed_mid_run_its_tasks_are_rerun_and_the_audit_completes(external_cluster):
    address, procs = external_cluster
    slow = _slow_claim()
    serial = run_audit([slow], seeds=10, start=100)
    victim = procs[1]
    killed = []

    def on_seed(seed, results):
        if not killed:  # the first result is in; the other tasks are queued or running on both workers
            os.killpg(victim.pid, signal.SIGKILL)
            killed.append(seed)

    dist = run_audit([slow], seeds=10, start=100, scheduler=address, on_seed=on_seed)
    assert killed and victim.wait(timeout=10) is not None
    # completed: the lost worker's tasks were rescheduled on the survivor, with the serial results
    assert dist.rows[0].verdicts == serial.rows[0].verdicts and dist.rows[0].values == serial.rows[0].values
    assert len(dist.execution["peak_rss_mb_per_worker"]) == 1  # one worker left at the end
