"""Record a seed audit of every claim: ``benchmarks/results/audit-{mode}.txt`` and ``.json``.

    python benchmarks/audit.py --mode quick --seeds 20 [--start S] [--workers 2]
    python benchmarks/audit.py --mode full --seeds 5 [--start S] [--workers 2]

Without ``--start`` a start is drawn at random (and recorded), so the audit is not run on the seeds
the rules were developed on.  The table is the one ``ngd-verify audit`` prints; the JSON holds every
claim's verdict at every seed, the wall time, and the machine.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from proofs.audit import format_audit, run_audit
from proofs.registry import load_claims
from proofs.report import atomic_write_text, conventions, environment_record, to_jsonable, write_json

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("quick", "full"), default="quick")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--start", type=int, default=None, help="first master seed (default: drawn at random)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    start = args.start if args.start is not None else random.SystemRandom().randrange(10**6)
    audit = run_audit(load_claims(), args.seeds, start, args.mode, args.workers)
    table = format_audit(audit)
    env = environment_record()
    header = (f"# ngd-verify audit --seeds {args.seeds} --start {start} --{args.mode} --workers {args.workers}\n"
              f"# start {'given' if args.start is not None else 'drawn at random'}; "
              f"{env.get('machine', {}).get('cpu_count', '?')} cores, one BLAS thread per worker\n")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"audit-{args.mode}.txt", header + table + "\n")
    write_json(RESULTS / f"audit-{args.mode}.json",
               to_jsonable({**audit.to_dict(), "conventions": conventions(), "environment": env}))
    print(header + table)
    return 0 if audit.all_as_expected else 1


if __name__ == "__main__":
    sys.exit(main())
