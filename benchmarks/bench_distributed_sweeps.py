"""Sweep points as Dask tasks: one sweep-heavy claim, serial vs ``--workers W``, back to back.

    python benchmarks/bench_distributed_sweeps.py [--claim ngd.block_diagonal] [--mode full] [--workers 2]
                                                  [--out benchmarks/results/sweep-distributed.txt]

Runs ``ngd-verify verify CLAIM --MODE --no-progress --json ...`` serially and with ``--workers W`` (one
claim: the claim runs in the main process, its sweep points are tasks on a local cluster of W
processes, proofs.distributed), each as a subprocess timed from outside (wall time includes the
interpreter start, imports and, distributed, the cluster start).  Writes the command lines, wall
times, the ratio, the load average (``/proc/loadavg``) before and after each run, the points run as
tasks (``details.spent.execution`` of every sweep in the JSON), and whether the two JSON documents
agree (:func:`proofs.distributed.json_differences`, 1e-9 relative; timings ignored).  The machine may be
shared: read the ratio next to the load.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def timed(argv):
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    return {"argv": argv, "seconds": seconds, "load_before": before, "load_after": loadavg(),
            "code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def executions(doc) -> list:
    """``details.spent.execution`` of every sweep recorded anywhere in the claims' details."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("execution"), dict) and "point_tasks" in x["execution"]:
                found.append(x["execution"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk([c.get("details") for c in doc.get("claims", [])])
    return found


def main(argv=None) -> int:
    from proofs.distributed import json_differences

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claim", default="ngd.block_diagonal")
    ap.add_argument("--mode", choices=("quick", "full"), default="full")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep-distributed.txt"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    stem = out.with_suffix("")
    base = ["ngd-verify", "verify", args.claim, f"--{args.mode}", "--seed", str(args.seed), "--no-progress"]
    serial_json, dist_json = Path(f"{stem}-serial.json"), Path(f"{stem}-workers{args.workers}.json")
    serial = timed(base + ["--json", str(serial_json)])
    dist = timed(base + ["--workers", str(args.workers), "--json", str(dist_json)])
    a, b = json.loads(serial_json.read_text()), json.loads(dist_json.read_text())
    diffs = json_differences(a, b, rel=1e-9)
    lines = [f"# sweep points as Dask tasks: {args.claim} --{args.mode}, serial vs --workers {args.workers}",
             f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; one run each, back to back; wall time "
             "of the whole command (interpreter, imports, cluster start included)", ""]
    for name, run in (("serial", serial), (f"--workers {args.workers}", dist)):
        summary = run["stdout"].strip().splitlines()[-1] if run["stdout"].strip() else run["stderr"][-300:]
        lines += [f"{name}: {' '.join(run['argv'])}",
                  f"  wall {run['seconds']:.1f} s, exit {run['code']}, load average before {run['load_before']}, "
                  f"after {run['load_after']}",
                  f"  summary: {summary}"]
    lines += ["", f"ratio serial / --workers {args.workers}: {serial['seconds'] / dist['seconds']:.2f}x",
              f"sweeps (points as tasks, rounds run serially): {executions(b)}",
              f"claim seconds inside the run: serial {a['claims'][0].get('seconds')}, "
              f"distributed {b['claims'][0].get('seconds')}",
              f"peak RSS per worker (MB): {b['environment']['execution'].get('peak_rss_mb_per_worker')}",
              f"JSON agreement (json_differences, 1e-9 relative, timings ignored): "
              f"{'identical' if not diffs else f'{len(diffs)} differences'}"]
    lines += [f"  {d}" for d in diffs[:20]]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if serial["code"] == dist["code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
