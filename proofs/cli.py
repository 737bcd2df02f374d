"""``ngd-verify``: list, verify, report and falsify the claims.

::

    ngd-verify list [CLAIM_ID ...]
    ngd-verify verify [CLAIM_ID ...] [--quick | --full] [--seed S] [--json PATH]
    ngd-verify report --out DIR [CLAIM_ID ...] [--quick | --full] [--seed S]
    ngd-verify falsify CLAIM_ID [--max-examples N] [--relax ASSUMPTION] [--seed S] [--max-seconds T] [--database DIR]
    ngd-verify audit [CLAIM_ID ...] --seeds N [--start S] [--quick | --full] [--workers W] [--json PATH]

CLAIM_ID may be an exact id, a topic prefix (``kfac`` = ``kfac.*``) or a glob (``*.alpha``).

Exit status (``verify``, ``report``): 0 when every verdict equals the claim's expected verdict, 1
when some differs, 2 for bad usage or bad input -- one line on stderr naming the problem, no
traceback (this includes ``ValueError``/``TypeError`` raised by the library and a claim module
that fails to import).  ``falsify``: 1 when a counterexample is found, 0 when none is found in
the budget, 2 for bad usage, a claim without a search space, or a check that raised.  ``audit``: 0 when every verdict at every
seed is the expected one, 1 otherwise, 2 for bad usage.  ``list``: 0 (2 for bad input).

:func:`main` takes ``argv`` (default ``sys.argv[1:]``) and, for tests and embedding, ``claims``
(a mapping or list of :class:`~proofs.claim.Claim` used instead of the loaded registry) and
``out``/``err`` streams; it returns the exit status instead of exiting.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, TextIO

from proofs.claim import Claim, ClaimResult, RunConfig
from proofs.progress import progress
from proofs.registry import ClaimModuleError, ClaimSource, get_claim, select_claims

__all__ = [
    "main", "entry_point", "build_parser", "run_claims", "format_table", "summary_line", "UsageError",
    "COMMANDS", "PROG"
]

PROG = "ngd-verify"


class UsageError(Exception):
    """Bad command-line usage (argparse errors are turned into this, to print one line)."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `audit --seed 5` must not silently mean --seeds 5
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse would print the usage block and exit; we want one line
        raise UsageError(message)


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum`` (the message names the bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= {minimum}")
        return value
    return parse


def _int_between(minimum: int, maximum: int):
    """An argparse type: an integer in ``[minimum, maximum]`` (the message names the bounds)."""
    def parse(text: str) -> int:
        value = _int_at_least(minimum)(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer <= {maximum}")
        return value
    return parse


_nonnegative_int = _int_at_least(0)
_positive_int = _int_at_least(1)
#: master seeds are hashed with the claim's keys into a numpy SeedSequence: any integer below 2^63 works
_seed = _int_between(0, 2**63 - 1)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Verify, by derivation and by measurement, the claims of Karakida & "
                                            "Osawa (NeurIPS 2020) on approximate-Fisher NGD in wide networks.")
    sub = parser.add_subparsers(dest="command", metavar="{list,verify,report,falsify,audit}",
                                parser_class=_Parser)
    sub.required = True

    def budget(p, seed: bool = True):
        group = p.add_mutually_exclusive_group()
        group.add_argument("--quick", dest="mode", action="store_const", const="quick",
                           help="small widths, about a minute on 2 cores (default)")
        group.add_argument("--full", dest="mode", action="store_const", const="full", help="the large-width sweeps")
        p.set_defaults(mode="quick")
        if seed:
            p.add_argument("--seed", type=_seed, default=0, help="master seed (integer in [0, 2^63), default 0)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars even on a terminal")

    p_list = sub.add_parser("list", help="every claim: id, one-line statement, assumptions")
    p_list.add_argument("ids", nargs="*", metavar="CLAIM_ID")

    p_verify = sub.add_parser("verify", help="check claims and print a table of verdicts")
    p_verify.add_argument("ids", nargs="*", metavar="CLAIM_ID")
    budget(p_verify)
    p_verify.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': standard "
                                                         "output, the table then goes to standard error)")

    p_report = sub.add_parser("report", help="write report.md, report.tex, results.json and figures to DIR")
    p_report.add_argument("ids", nargs="*", metavar="CLAIM_ID")
    p_report.add_argument("--out", required=True, metavar="DIR")
    budget(p_report)

    p_fals = sub.add_parser("falsify", help="search for a counterexample with the claim's assumptions relaxed")
    p_fals.add_argument("claim_id", metavar="CLAIM_ID")
    p_fals.add_argument("--max-examples", type=_positive_int, default=50, metavar="N")
    p_fals.add_argument("--relax", action="append", metavar="ASSUMPTION",
                        help="search with this assumption relaxed (repeatable; default: none relaxed; "
                             "`ngd-verify list` names each claim's relaxations)")
    p_fals.add_argument("--max-seconds", type=_positive_float, default=120.0, metavar="T",
                        help="stop searching after T seconds (default 120)")
    p_fals.add_argument("--database", metavar="DIR", default=None,
                        help="keep counterexamples in DIR and replay them first next time")
    budget(p_fals)

    p_audit = sub.add_parser("audit", help="run claims over many seeds: verdict counts and as-expected rate per claim")
    p_audit.add_argument("ids", nargs="*", metavar="CLAIM_ID")
    p_audit.add_argument("--seeds", type=_int_between(1, 100_000), required=True, metavar="N",
                         help="number of master seeds (1 .. 100000)")
    p_audit.add_argument("--start", type=_int_between(0, 2**63 - 100_001), default=0, metavar="S",
                         help="first master seed (default 0); the audit runs S .. S+N-1")
    p_audit.add_argument("--workers", type=_positive_int, default=1, metavar="W",
                         help="run seeds in W local processes, one BLAS thread each (default 1)")
    p_audit.add_argument("--json", metavar="PATH", help="also write the audit as JSON to PATH ('-': standard output)")
    budget(p_audit, seed=False)  # the seeds are --start .. --start + --seeds - 1
    return parser


# ----------------------------------------------------------------------------- running
def run_claims(claims: Sequence[Claim], cfg: RunConfig) -> List[tuple]:
    """Run each claim (exceptions inside a check become ``inconclusive``, see ``Claim.run``)."""
    pairs = []
    bar = progress(claims, cfg, desc="claims", total=len(claims))
    for c in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(c.id)
        pairs.append((c, c.run(cfg)))
    return pairs


def _short(value, width: int = 14) -> str:
    from proofs.report import fmt
    text = fmt(value, limit=width)
    return text


def format_table(pairs: Sequence[tuple]) -> str:
    """The verify table: claim, predicted, measured, error, width, verdict, expected (``!`` marks
    a verdict that differs from the expected one)."""
    header = ["claim", "predicted", "measured", "error", "width", "verdict", "expected"]
    rows = [[c.id, _short(r.predicted), _short(r.measured), _short(r.error, 10), _short(r.width, 8),
             r.verdict + ("" if r.verdict == c.expected else " !"), c.expected] for c, r in pairs]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def summary_line(pairs: Sequence[tuple], seconds: float) -> str:
    from proofs.report import summarize
    s = summarize(pairs)
    counts = ", ".join(f"{n} {v}" for v, n in s["counts"].items() if n)
    tail = ("all verdicts as expected" if s["all_as_expected"]
            else f"{len(s['unexpected'])} verdict(s) differ from the expected: {', '.join(s['unexpected'])}")
    return f"{s['claims']} claims ({counts or 'none'}) in {seconds:.1f} s; {tail}"


def _write_outcome(pairs: Sequence[tuple], seconds: float, out: TextIO) -> None:
    """The table, one line of reasons per surprising or qualified verdict, and the summary line."""
    out.write(format_table(pairs) + "\n")
    for c, r in pairs:
        if r.verdict != c.expected or r.verdict in ("conditional", "inconclusive"):
            why = r.failed_assumption or " ".join((r.notes or "").split())[:300]
            if why:
                out.write(f"  {c.id}: {r.verdict}: {why}\n")
    out.write(summary_line(pairs, seconds) + "\n")


def _check_writable_dir(directory: Path, what: str) -> None:
    """Fail before a long run, not after it: the directory must exist and accept a new file.

    ``os.access`` alone is not enough (root passes it on read-only or virtual file systems such as
    ``/proc``), so a temporary file is created and removed.
    """
    if not directory.is_dir():
        raise ValueError(f"{what}: directory {str(directory)!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise ValueError(f"{what}: directory {str(directory)!r} is not writable")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ValueError(f"{what}: cannot create files in directory {str(directory)!r} "
                         f"({exc.strerror or exc})") from None


def _cmd_list(args, claims: ClaimSource, out: TextIO) -> int:
    for c in select_claims(args.ids, claims):
        out.write(f"{c.id}  [expects {c.expected}]  {c.title}\n")
        out.write(f"    statement: {' '.join(c.statement.split())}\n")
        out.write(f"    assumptions: {'; '.join(map(str, c.assumptions)) if c.assumptions else 'none'}\n")
        if c.space is not None:
            out.write(f"    falsify: hypothesis search; --relax {', '.join(repr(r) for r in c.space.relaxations)}\n")
    return 0


def _config(args, out: TextIO) -> RunConfig:
    tty = hasattr(out, "isatty") and out.isatty()
    return RunConfig(mode=args.mode, seed=args.seed, progress=bool(tty and not args.no_progress))


def _nonempty_path(option: str, text: Optional[str]) -> Optional[Path]:
    """``Path(text)``, ``None`` when the option was not given; an empty string is an error (``Path("")``
    is the current directory: ``--json ''`` would silently write nothing, ``--out ''`` write into ``.``)."""
    if text is None:
        return None
    if not text.strip():
        raise ValueError(f"{option} {text!r} is empty: expected a path")
    return Path(text)


def _json_target(args) -> Optional[Path]:
    """The ``--json`` file, checked before a long run (``None``: not given, or ``-``: standard output)."""
    if args.json == "-":
        return None
    json_path = _nonempty_path("--json", args.json)
    if json_path is not None:  # fail before a two-minute run, not after it
        if json_path.is_dir():
            raise ValueError(f"--json {args.json!r} is a directory; expected a file path")
        _check_writable_dir(json_path.parent if str(json_path.parent) else Path("."), f"--json {args.json!r}")
    return json_path


def _emit_json(args, document, out: TextIO, what: str) -> None:
    """Write ``document`` to the ``--json`` target: a file (atomically), or standard output for ``-``."""
    from proofs.report import dumps_strict, write_json

    if args.json == "-":
        args.json_stream.write(dumps_strict(document, indent=2) + "\n")
    elif args.json is not None:
        write_json(Path(args.json), document)
        out.write(f"{what} written to {args.json}\n")


def _cmd_verify(args, claims: ClaimSource, out: TextIO) -> int:
    chosen = select_claims(args.ids, claims)
    _json_target(args)
    cfg = _config(args, out)
    start = time.perf_counter()
    pairs = run_claims(chosen, cfg)
    seconds = time.perf_counter() - start
    _write_outcome(pairs, seconds, out)
    if args.json is not None:
        from proofs.report import results_document
        _emit_json(args, results_document(pairs, cfg), out, "results")
    return 0 if all(r.verdict == c.expected for c, r in pairs) else 1


def _cmd_report(args, claims: ClaimSource, out: TextIO) -> int:
    from proofs.report import write_report
    target = _nonempty_path("--out", args.out)
    if target.exists() and not target.is_dir():
        raise ValueError(f"--out {args.out!r} exists and is not a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if target.exists():
        _check_writable_dir(target, f"--out {args.out!r}")
    else:
        _check_writable_dir(parent.resolve() if parent.exists() else parent, f"--out {args.out!r}")
    chosen = select_claims(args.ids, claims)
    cfg = _config(args, out)
    start = time.perf_counter()
    pairs = run_claims(chosen, cfg)
    seconds = time.perf_counter() - start
    paths = write_report(pairs, cfg, target)
    _write_outcome(pairs, seconds, out)
    out.write(f"report written to {paths['markdown']}, {paths['latex']}, {paths['json']} "
              f"and {len(paths['figures'])} figure(s) in {target / 'figures'}\n")
    return 0 if all(r.verdict == c.expected for c, r in pairs) else 1


def _cmd_falsify(args, claims: ClaimSource, out: TextIO) -> int:
    from proofs.falsify import falsify, format_outcome

    target = get_claim(args.claim_id, claims)
    cfg = _config(args, out)
    # a claim without a search space: ValueError naming the claims that have one (exit 2, one line)
    outcome = falsify(target, cfg, max_examples=args.max_examples, relax=args.relax, max_seconds=args.max_seconds,
                      database=args.database, others=select_claims(None, claims))
    out.write(format_outcome(outcome) + "\n")
    if outcome.counterexample is not None:
        return 1
    return 2 if outcome.error is not None else 0


def _cmd_audit(args, claims: ClaimSource, out: TextIO) -> int:
    from proofs.audit import format_audit, run_audit
    from proofs.report import conventions, environment_record, to_jsonable

    chosen = select_claims(args.ids, claims)
    _json_target(args)
    if args.workers > 1 and claims is not None:
        raise ValueError("--workers > 1 runs the registered claims by id; it cannot run claims passed in-process")
    tty = hasattr(out, "isatty") and out.isatty()

    def on_seed(seed, results):
        if tty and not args.no_progress:
            bad = [cid for cid, v, _, _ in results if v != next(c.expected for c in chosen if c.id == cid)]
            out.write(f"  seed {seed}: {len(results) - len(bad)}/{len(results)} as expected"
                      + (f" ({', '.join(bad)})" if bad else "") + "\n")

    audit = run_audit(chosen, args.seeds, args.start, args.mode, args.workers, on_seed=on_seed)
    out.write(format_audit(audit) + "\n")
    if args.json is not None:
        _emit_json(args, to_jsonable({**audit.to_dict(), "conventions": conventions(),
                                      "environment": environment_record()}), out, "audit")
    return 0 if audit.all_as_expected else 1


COMMANDS = {"list": _cmd_list, "verify": _cmd_verify, "report": _cmd_report, "falsify": _cmd_falsify,
            "audit": _cmd_audit}


def main(argv: Optional[Sequence[str]] = None, *, claims: ClaimSource = None,
         out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "json", None) == "-":  # the JSON alone on standard output, the table on stderr
            args.json_stream, out = out, err
        return COMMANDS[args.command](args, claims, out)
    except UsageError as exc:
        err.write(f"{PROG}: error: {' '.join(str(exc).split())} (see {PROG} --help)\n")
        return 2
    except SystemExit as exc:  # --help / --version from argparse
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    except (ValueError, TypeError, ClaimModuleError, OSError) as exc:
        err.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
        return 2
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130


def entry_point() -> None:  # pragma: no cover -- console scripts call main() and exit with its status
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
