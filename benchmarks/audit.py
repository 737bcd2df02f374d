"""Record a seed audit of every claim: ``benchmarks/results/audit-{mode}.txt`` and ``.json``.

    python benchmarks/audit.py --mode quick --seeds 20 [--start S] [--workers 2 | --scheduler ADDRESS]
    python benchmarks/audit.py --mode full --seeds 5 [--start S] [--workers 2]
    python benchmarks/audit.py --mode quick --seeds 20 --start 973883 --workers 2 --versus-serial
    python benchmarks/audit.py --mode full --seeds 1 --start 973883 --workers 2 --out audit-distributed-full

Without ``--start`` a start is drawn at random (and recorded), so the audit is not run on the seeds
the rules were developed on.  The table is the one ``ngd-verify audit`` prints; the JSON holds every
claim's verdict and headline numbers at every seed, the wall time, the machine and the execution (serial,
local Dask cluster with the peak memory of each worker, or scheduler).

``--versus-serial`` runs the audit serially and then distributed, back to back, and writes
``results/{out}.txt`` (default ``audit-distributed[-full].txt``): both wall times (cluster start-up
included), their ratio, the load average (``uptime``) before and during each run, the peak memory per
worker, and whether the two JSON documents agree (same verdicts, numbers within 1e-9 relative;
:func:`proofs.distributed.json_differences`); the two documents go to ``results/{out}-serial.json`` and
``results/{out}-workers{W}.json``.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from proofs.audit import format_audit, run_audit
from proofs.registry import select_claims
from proofs.report import atomic_write_text, conventions, environment_record, to_jsonable, write_json

RESULTS = Path(__file__).resolve().parent / "results"
#: numbers closer than this (absolute) are rounding noise: residuals of exact identities, ~1e-16..1e-12
ROUNDING_NOISE = 1e-10


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


class LoadSampler:
    """The 1-minute load average sampled every few seconds while a run goes on: mean and max."""

    def __init__(self, every: float = 5.0):
        self.samples = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.every + 1)
        return False

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        return (f"1-min load during the run: mean {sum(self.samples) / len(self.samples):.2f}, "
                f"max {max(self.samples):.2f} ({len(self.samples)} samples)")


def audit_document(audit) -> dict:
    return to_jsonable({**audit.to_dict(), "conventions": conventions(),
                        "environment": {**environment_record(), "execution": audit.execution}})


def timed_audit(claims, args, start, workers, scheduler):
    before = uptime()
    with LoadSampler() as load:
        t0 = time.perf_counter()
        audit = run_audit(claims, args.seeds, start, args.mode, workers, scheduler=scheduler)
        wall = time.perf_counter() - t0
    return audit, wall, before, load.summary()


def peak_lines(execution: dict) -> list:
    peaks = execution.get("peak_rss_mb_per_worker") or {}
    return [f"#   peak RSS of worker {w}: {mb:.0f} MB" for w, mb in peaks.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ids", nargs="*", metavar="CLAIM_ID", help="claims to audit (default: every claim)")
    p.add_argument("--mode", choices=("quick", "full"), default="quick")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--start", type=int, default=None, help="first master seed (default: drawn at random)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", default=None, help="a running Dask scheduler's address (instead of --workers)")
    p.add_argument("--versus-serial", action="store_true",
                   help="run serially, then distributed, back to back; record both wall times and their ratio")
    p.add_argument("--out", default=None,
                   help="results file name without extension (default audit-{mode}; with --versus-serial "
                        "audit-distributed, audit-distributed-full for --mode full)")
    args = p.parse_args(argv)
    start = args.start if args.start is not None else random.SystemRandom().randrange(10**6)
    workers, scheduler = (1, args.scheduler) if args.scheduler else (args.workers, None)
    where = f"--scheduler {scheduler}" if scheduler else f"--workers {workers}"
    claims = select_claims(args.ids or None)
    env = environment_record()
    cores = env.get("machine", {}).get("cpu_count", "?")
    RESULTS.mkdir(exist_ok=True)

    if not args.versus_serial:
        name = args.out or f"audit-{args.mode}"
        audit, wall, before, load = timed_audit(claims, args, start, workers, scheduler)
        table = format_audit(audit)
        header = (f"# ngd-verify audit --seeds {args.seeds} --start {start} --{args.mode} {where}\n"
                  f"# start {'given' if args.start is not None else 'drawn at random'}; "
                  f"{cores} cores, one BLAS thread per worker\n"
                  f"# wall time {wall:.1f} s; before: {before}; {load}\n"
                  + "".join(line + "\n" for line in peak_lines(audit.execution)))
        atomic_write_text(RESULTS / f"{name}.txt", header + table + "\n")
        write_json(RESULTS / f"{name}.json", audit_document(audit))
        print(header + table)
        return 0 if audit.all_as_expected else 1

    from proofs.distributed import json_differences

    name = args.out or ("audit-distributed" if args.mode == "quick" else "audit-distributed-full")
    serial, t_serial, up_serial, load_serial = timed_audit(claims, args, start, 1, None)
    dist, t_dist, up_dist, load_dist = timed_audit(claims, args, start, workers, scheduler)
    doc_serial, doc_dist = audit_document(serial), audit_document(dist)
    tag = "scheduler" if scheduler else f"workers{workers}"
    write_json(RESULTS / f"{name}-serial.json", doc_serial)
    write_json(RESULTS / f"{name}-{tag}.json", doc_dist)
    diffs = json_differences(doc_serial, doc_dist)
    beyond_noise = json_differences(doc_serial, doc_dist, atol=ROUNDING_NOISE)
    ratio = t_serial / t_dist
    n_verdicts = sum(len(r.verdicts) for r in serial.rows)
    lines = [
        f"# ngd-verify audit --seeds {args.seeds} --start {start} --{args.mode}: serial vs {where}, back to back",
        f"# {len(claims)} claims x {args.seeds} seeds = {n_verdicts} tasks; {cores} cores; "
        f"git {env.get('git_commit')}; {env.get('timestamp')}",
        f"serial:       {t_serial:8.1f} s wall   before: {up_serial}",
        f"              {load_serial}",
        f"{where}: {t_dist:8.1f} s wall   before: {up_dist}",
        f"              {load_dist}",
        f"speed-up serial / distributed: {ratio:.2f}x (target >= 1.6x on 2 cores)",
        *[line.lstrip("# ") for line in peak_lines(dist.execution)],
        f"serial: {sum(len(r.verdicts) - len(r.deviations) for r in serial.rows)}/{n_verdicts} as expected; "
        f"distributed: {sum(len(r.verdicts) - len(r.deviations) for r in dist.rows)}/{n_verdicts} as expected",
        ("JSON documents agree: same verdicts, every number within 1e-9 relative (timings and environment aside)"
         if not diffs else f"JSON documents differ beyond 1e-9 relative in {len(diffs)} place(s): "
         + "; ".join(diffs[:10])),
        *([] if not diffs else [
            f"of these, {len(beyond_noise)} differ by more than {ROUNDING_NOISE:g} absolute (the others are residuals "
            "at rounding level, e.g. an error of 4e-16 against 9e-16)"
            + (": " + "; ".join(beyond_noise[:10]) if beyond_noise else "")]),
        f"documents: results/{name}-serial.json, results/{name}-{tag}.json",
        "",
        "distributed audit table:",
        format_audit(dist),
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / f"{name}.txt", text)
    print(text)
    return 0 if (serial.all_as_expected and dist.all_as_expected and not beyond_noise) else 1


if __name__ == "__main__":
    sys.exit(main())
