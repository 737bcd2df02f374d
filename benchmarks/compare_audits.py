"""Compare two ``ngd-verify audit``/``verify`` JSON documents: same verdicts, numbers within 1e-9 relative.

    python benchmarks/compare_audits.py serial.json distributed.json [--rel 1e-9] [--atol 1e-10]

Timings, the environment and the execution record are ignored (:data:`proofs.distributed.VOLATILE_KEYS`);
numbers inside strings (the reasons of deviating verdicts) are compared as numbers.  Exit 0 when the two
agree, 1 with one line per difference otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys

from proofs.distributed import json_differences


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--rel", type=float, default=1e-9, help="relative tolerance for numbers (default 1e-9)")
    p.add_argument("--atol", type=float, default=0.0,
                   help="also accept numbers within ATOL absolute (rounding-level residuals; default 0)")
    args = p.parse_args(argv)
    with open(args.first, encoding="utf-8") as f:
        a = json.load(f)
    with open(args.second, encoding="utf-8") as f:
        b = json.load(f)
    diffs = json_differences(a, b, rel=args.rel, atol=args.atol)
    for line in diffs:
        print(line)
    verdicts = a.get("verdicts") or {c.get("id"): c.get("verdict") for c in a.get("claims", [])}
    print(f"{len(diffs)} difference(s) beyond {args.rel:g} relative"
          + (f" and {args.atol:g} absolute" if args.atol else "") + f" over {len(verdicts)} claims"
          + ("" if diffs else ": the documents agree"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
