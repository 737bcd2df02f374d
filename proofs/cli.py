"""``ngd-verify``: list, verify, report, falsify and audit the claims.

::

    ngd-verify list [CLAIM_ID ...]
    ngd-verify verify [CLAIM_ID ...] [--quick | --full] [--seed S] [--workers W | --scheduler ADDRESS] [--json PATH]
    ngd-verify report --out DIR [CLAIM_ID ...] [--pdf] [--quick | --full] [--seed S] [--workers W | --scheduler ADDRESS]
    ngd-verify falsify CLAIM_ID [--max-examples N] [--relax ASSUMPTION] [--seed S] [--max-seconds T] [--database DIR]
                       [--shards K] [--workers W | --scheduler ADDRESS]
    ngd-verify audit [CLAIM_ID ...] --seeds N [--start S] [--quick | --full] [--workers W | --scheduler ADDRESS]
                     [--json PATH]
    ngd-verify --version | --help          (a bare ``ngd-verify`` prints the help)

CLAIM_ID may be an exact id, a topic prefix (``ngd.kfac`` = ``ngd.kfac.*``) or a glob (``*.alpha``).
``--workers W`` (W > 1) runs the claims (``audit``: each claim at each seed; ``falsify``: each of ``--shards``
independent searches) as tasks on an embedded Dask cluster of W processes, one BLAS thread each;
``--scheduler ADDRESS`` on a running Dask cluster (:mod:`proofs.distributed`; both need the ``[distributed]``
extra).  The results are the serial run's (``falsify``: the serial run with the same ``--shards``).

Exit status:

* 0 -- every verdict equals the claim's expected verdict (``falsify``: no counterexample in the budget, or an
  inconclusive search -- every example outside the relaxed space -- said on its line;
  ``list``, ``--help``, ``--version``, a bare call);
* 1 -- some verdict differs (``falsify``: a counterexample was found);
* 2 -- bad usage or bad input, i.e. a :class:`UsageError` or :class:`InputError`: argument
  validation, an unknown claim id, an output path that cannot be written (probed before the run),
  a ``--relax`` or ``--database`` that does not fit.  One line on stderr naming the option, the value
  and what is allowed; no traceback;
* 3 -- an internal error: any other exception (a bug, a claim module that fails to import), or a
  distributed task that failed for good (the line names the claim and the seed).  One
  line ``internal error: ... (a bug; rerun with --debug for the traceback)``; ``--debug`` prints the
  traceback first.  Results computed before the failure are kept: the table is printed before any
  file is written, and a document that cannot be written where asked is saved to a temporary file
  whose name is printed.

Output: the table goes to standard output, every message (``results written to ...``, progress,
errors) to standard error; ``--json -`` writes the JSON document alone to standard output and the
table to standard error.  A stream whose encoding cannot carry a character gets an ASCII rendering
(``–`` -> ``-``, ``α`` -> ``alpha``) instead of a ``UnicodeEncodeError``.

:func:`main` takes ``argv`` (default ``sys.argv[1:]``) and, for tests and embedding, ``claims``
(a mapping or list of :class:`~proofs.claim.Claim` used instead of the loaded registry) and
``out``/``err`` streams; it returns the exit status instead of exiting.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Sequence, TextIO

from proofs.claim import Claim, RunConfig
from proofs.plaintext import latex_to_text, to_ascii
from proofs.progress import status_line
from proofs.registry import ClaimSource, get_claim, select_claims

__all__ = [
    "main", "entry_point", "build_parser", "run_claims", "format_table", "format_error_legend", "error_meaning",
    "summary_line", "UsageError", "InputError", "COMMANDS", "PROG", "TIMINGS", "version"
]

PROG = "ngd-verify"

#: measured in one run on the project's idle 2-core machine (README "Timings": 53 s, 304 s, 64 s, 157 s);
#: the help texts quote these, and tests/test_readme.py holds the README's table to them
TIMINGS = {"verify": "about 1 min", "verify_full": "about 5 min", "report": "about 1 min",
           "tests": "about 3 min"}


class UsageError(Exception):
    """Bad command-line usage: exit 2 with one line.  ``prog`` is the (sub)command whose ``--help``
    the message points to (``None``: no pointer)."""

    def __init__(self, message: str, prog: Optional[str] = PROG):
        super().__init__(message)
        self.prog = prog


class InputError(UsageError):
    """Bad input found before (or instead of) running: an unknown claim id, an output path that
    cannot be written, a ``--relax`` the claim does not have.  Exit 2 with one line."""

    def __init__(self, message: str):
        super().__init__(message, prog=None)


def version() -> str:
    """The installed distribution's version (``unknown`` when running from an uninstalled tree)."""
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version
        return dist_version("ngd-verifier")
    except (ImportError, PackageNotFoundError):  # pragma: no cover -- the CLI runs from an install
        return "unknown"


# ----------------------------------------------------------------------------- streams
class _SafeStream:
    """A text stream whose ``write`` falls back to an ASCII rendering (:func:`proofs.plaintext.to_ascii`)
    when the stream's encoding cannot carry the text (``PYTHONIOENCODING=ascii``, a C locale)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            return self._stream.write(to_ascii(text).encode(encoding, "replace").decode(encoding))

    def isatty(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except (ValueError, OSError):  # a closed stream
            return False

    def __getattr__(self, name):
        return getattr(self._stream, name)


# ----------------------------------------------------------------------------- the parser
EXAMPLES = f"""\
examples:
  ngd-verify list ngd.kfac                     # the K-FAC claims: statement, assumptions, --relax choices
  ngd-verify verify                            # every claim, quick budget ({TIMINGS['verify']} on 2 cores)
  ngd-verify verify ngd.kfac --json r.json     # one topic; also write the results as JSON
  ngd-verify verify --json - | jq .summary     # the JSON alone on standard output
  ngd-verify verify --full                     # large widths ({TIMINGS['verify_full']} on 2 cores)
  ngd-verify report --out report/              # report.md, report.tex, results.json, figures/ ({TIMINGS['report']})
  ngd-verify falsify ngd.kfac.alpha_definition --relax "M_0 >= N"    # exit 1: a minimal counterexample
  ngd-verify audit sanity --seeds 20           # verdict counts over master seeds 0..19

exit status: 0 every verdict as expected (falsify: no counterexample; an inconclusive search says so on its line),
1 some verdict differs (falsify: counterexample found),
2 bad usage or bad input (one line naming the option), 3 internal error (a bug; --debug shows the traceback)
"""

CLAIM_ID_HELP = ("claim id, topic prefix (ngd.kfac selects every ngd.kfac.* claim) or glob ('*.alpha'); "
                 "default: every claim; `ngd-verify list` shows them")


class _Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps text with line breaks (the examples) as written."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    stream: Optional[TextIO] = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `audit --seed 5` must not silently mean --seeds 5
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # argparse would print the usage block and exit; we want one line
        raise UsageError(message, prog=self.prog)

    def _print_message(self, message, file=None):  # --help / --version into main's stream
        if message:
            (self.stream or file or sys.stdout).write(message)


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


def build_parser(stream: Optional[TextIO] = None) -> argparse.ArgumentParser:
    """The argument parser; ``--help``/``--version`` text goes to ``stream`` (default standard output)."""
    parser = _Parser(prog=PROG, epilog=EXAMPLES,
                     description="Verify, by derivation and by measurement, the claims of Karakida & Osawa "
                                 "(NeurIPS 2020, arXiv:2010.00879) on approximate-Fisher NGD in wide networks.")
    parser.stream = stream
    common = dict(version=f"{PROG} {version()}")
    parser.add_argument("--version", action="version", **common)
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an internal error (exit 3) or a usage error")
    sub = parser.add_subparsers(dest="command", metavar="{list,verify,report,falsify,audit}", parser_class=_Parser)

    def add(name: str, **kwargs) -> argparse.ArgumentParser:
        p = sub.add_parser(name, **kwargs)
        p.stream = stream
        p.add_argument("--version", action="version", **common)
        # SUPPRESS: `ngd-verify --debug verify` must not be reset to False by the subcommand's default
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="print the traceback of an internal error (exit 3)")
        return p

    def budget(p, seed: bool = True, what: str = "verify"):
        group = p.add_mutually_exclusive_group()
        per = {"verify": "", "report": f"; `report` {TIMINGS['report']} plus the figures",
               "audit": "; `audit`: that times the number of seeds, divided by the workers",
               "falsify": ""}.get(what, "")
        if what == "falsify":   # the spaces draw small networks whatever the budget
            quick_help = full_help = "accepted for symmetry with verify; the search space does not depend on it"
        else:
            quick_help = f"small widths (default; every claim: {TIMINGS['verify']} on 2 cores{per})"
            full_help = (f"the large-width sweeps, widths to 8192 (every claim: {TIMINGS['verify_full']} on 2 "
                         f"cores{'' if what == 'report' else per})")
        group.add_argument("--quick", dest="mode", action="store_const", const="quick", help=quick_help)
        group.add_argument("--full", dest="mode", action="store_const", const="full", help=full_help)
        p.set_defaults(mode="quick")
        if seed:
            p.add_argument("--seed", type=_seed, default=0, metavar="S",
                           help="master seed, an integer in [0, 2^63) (default 0); every draw is derived from it")
        p.add_argument("--no-progress", action="store_true",
                       help="no progress line (it is shown only when standard error is a terminal)")

    def execution(p, what: str):
        group = p.add_mutually_exclusive_group()
        group.add_argument("--workers", type=_positive_int, default=1, metavar="W",
                           help=f"run {what} as tasks on an embedded Dask cluster of W local processes, one BLAS "
                                "thread each (default 1: serially, in this process; needs the [distributed] extra)")
        group.add_argument("--scheduler", metavar="ADDRESS", default=None,
                           help=f"run {what} on the running Dask cluster at ADDRESS (tcp://HOST:PORT; start it "
                                "with `dask scheduler` and `dask worker ADDRESS --nthreads 1`)")

    p_list = add("list", help="every claim: id, statement, assumptions, expected verdict",
                 description="List claims: id, expected verdict, title, the statement in plain text (LaTeX in the "
                             "report), assumptions and the falsify --relax choices.",
                 epilog="examples:\n  ngd-verify list\n  ngd-verify list ngd.kfac '*.alpha'\n")
    p_list.add_argument("ids", nargs="*", metavar="CLAIM_ID", help=CLAIM_ID_HELP)

    p_verify = add("verify", help=f"check claims and print a table of verdicts ({TIMINGS['verify']})",
                   description="Check claims (derivation + finite-width measurement) and print one row per claim, "
                               "a legend of what each row's error measures, and a summary line.",
                   epilog="examples:\n  ngd-verify verify\n  ngd-verify verify ngd.kfac --seed 3 --json r.json\n"
                          "  ngd-verify verify kernels --full\n  ngd-verify verify --json - > results.json\n\n"
                          "exit status: 0 every verdict as expected, 1 some differs, 2 bad usage/input, 3 bug\n")
    p_verify.add_argument("ids", nargs="*", metavar="CLAIM_ID", help=CLAIM_ID_HELP)
    budget(p_verify)
    execution(p_verify, "the claims")
    p_verify.add_argument("--json", metavar="PATH",
                          help="also write the results as JSON to PATH, written atomically; the path is checked "
                               "before the run and missing parent directories are created ('-': the JSON alone on "
                               "standard output, the table on standard error)")

    p_report = add("report", help=f"write report.md, report.tex, results.json and figures to DIR ({TIMINGS['report']})",
                   description="Run the claims and write the derivation report into DIR: report.md, report.tex, "
                               "results.json and figures/*.png (figures of an earlier report that this run does not "
                               "draw are removed).",
                   epilog="examples:\n  ngd-verify report --out report/\n"
                          "  ngd-verify report --out runs/seed3/kfac ngd.kfac --seed 3\n")
    p_report.add_argument("ids", nargs="*", metavar="CLAIM_ID", help=CLAIM_ID_HELP)
    p_report.add_argument("--out", required=True, metavar="DIR",
                          help="output directory (created with its parents; checked before the run)")
    p_report.add_argument("--pdf", action="store_true",
                          help="also compile report.pdf with pdflatex (checked for before the run)")
    budget(p_report, what="report")
    execution(p_report, "the claims")

    p_fals = add("falsify", help="search for a counterexample with the claim's assumptions relaxed",
                 description="Search the claim's assumption space with hypothesis for an example on which its "
                             "statement fails, and print the minimal (shrunk) one. Leaves no files behind unless "
                             "--database is given.",
                 epilog="examples:\n  ngd-verify falsify ngd.kfac.alpha_definition --relax \"M_0 >= N\"   "
                        "# exit 1: minimal counterexample\n"
                        "  ngd-verify falsify ngd.block_tridiagonal.alpha                     "
                        "# exit 0: none in 50 examples\n\n"
                        "exit status: 1 counterexample found, 0 none in the budget, 2 bad usage/input, 3 bug\n")
    p_fals.add_argument("claim_id", metavar="CLAIM_ID",
                        help="one claim id with a search space (`ngd-verify list` marks them with 'falsify:')")
    p_fals.add_argument("--max-examples", type=_positive_int, default=50, metavar="N",
                        help="examples to try per relaxation before giving up (integer >= 1, default 50)")
    p_fals.add_argument("--relax", action="append", metavar="ASSUMPTION",
                        help="search with this assumption relaxed (repeatable; default 'none': the claim's own "
                             "assumptions; `ngd-verify list CLAIM_ID` names the choices)")
    p_fals.add_argument("--max-seconds", type=_positive_float, default=120.0, metavar="T",
                        help="stop searching after T seconds (default 120; with --shards, each shard gets T)")
    p_fals.add_argument("--database", metavar="DIR", default=None,
                        help="keep counterexamples in DIR (created) and replay them first next time")
    p_fals.add_argument("--shards", type=_positive_int, default=None, metavar="K",
                        help="split the budget into K independent searches, each seeded from (claim, relaxation, "
                             "shard): the result depends on K and --seed, not on where the shards run (default: W "
                             "with --workers W, else 1; required with --scheduler)")
    budget(p_fals, what="falsify")
    execution(p_fals, "the search shards")

    p_audit = add("audit", help="run claims over many seeds: verdict counts and as-expected rate per claim",
                  description="Run the claims at master seeds S .. S+N-1 and print, per claim, the verdict counts, "
                              "the as-expected rate and the seeds that deviated.",
                  epilog="examples:\n  ngd-verify audit sanity --seeds 20\n"
                         "  ngd-verify audit --seeds 20 --start 973883 --workers 2 --json audit.json\n"
                         "  ngd-verify audit sanity --seeds 20 --scheduler tcp://127.0.0.1:8786\n")
    p_audit.add_argument("ids", nargs="*", metavar="CLAIM_ID", help=CLAIM_ID_HELP)
    p_audit.add_argument("--seeds", type=_int_between(1, 100_000), required=True, metavar="N",
                         help="number of master seeds (1 .. 100000)")
    p_audit.add_argument("--start", type=_int_between(0, 2**63 - 100_001), default=0, metavar="S",
                         help="first master seed (default 0); the audit runs S .. S+N-1")
    execution(p_audit, "each claim at each seed")
    p_audit.add_argument("--json", metavar="PATH",
                         help="also write the audit as JSON to PATH (checked before the run; '-': standard output)")
    budget(p_audit, seed=False, what="audit")  # the seeds are --start .. --start + --seeds - 1
    return parser


# ----------------------------------------------------------------------------- running
def run_claims(claims: Sequence[Claim], cfg: RunConfig, file: Optional[TextIO] = None, execution=None) -> List[tuple]:
    """Run each claim (exceptions inside a check become ``inconclusive``, see ``Claim.run``), with a
    progress line on ``file`` (default standard error) when ``cfg.progress`` is true: the claim
    running and the sweep points inside it (:mod:`proofs.progress`).  ``execution`` (a
    :class:`proofs.distributed.Execution`) that is distributed runs one Dask task per claim; the line
    then counts the claims as they complete and names the last one."""
    claims = list(claims)
    if execution is not None and execution.distributed:
        from proofs.distributed import run_claims_on

        with status_line(cfg, "claims", total=len(claims), file=file, unit="claim") as line:
            def done(i, result):
                if line is not None:
                    line.item(f"{claims[i].id} done")
                    line.advance()
            results = run_claims_on(execution, claims, cfg.mode, cfg.seed, done, cfg=cfg)
        return list(zip(claims, results))
    pairs = []
    with status_line(cfg, "claims", total=len(claims), file=file, unit="claim") as line:
        for c in claims:
            if line is not None:
                line.item(c.id)
            pairs.append((c, c.run(cfg)))
            if line is not None:
                line.advance()
    return pairs


def _short(value, width: int = 14) -> str:
    from proofs.report import fmt
    return fmt(value, limit=width)


def _plural(n: int, word: str, plural: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


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


#: "error = <phrase>" in a result's notes: up to ";" or the " | " that separates the notes' parts
_ERROR_IS = re.compile(r"\berror\s*=\s*(?!O\()((?:(?! \| )[^;])+)")
_MEASURED_IS = re.compile(r"\bmeasured\s*=\s*((?:(?! \| )[^;])+)")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b)) or a == b


def error_meaning(claim: Claim, result) -> str:
    """What ``result.error`` measures, in a few words: the result's or the claim's ``error_meaning``
    when given, else the ``error = ...`` phrase of the result's notes, else inferred from the numbers
    (``|measured - predicted| / |predicted|``, ``|measured - predicted|``, the measured value itself
    when the prediction is 0, with the notes' ``measured = ...`` phrase when they have one); ``""``
    when there is no error."""
    given = (getattr(result, "error_meaning", "") or getattr(claim, "error_meaning", "") or "").strip()
    if given:
        return " ".join(given.split())
    if result.error is None:
        return ""
    head = (result.notes or "").split(" | ")[0]
    found = _ERROR_IS.search(head)
    text = " ".join(found.group(1).split()).rstrip(".,: ") if found else ""
    if text:
        return re.sub(r"^its\b", "the", text)
    measured = _MEASURED_IS.search(head)
    measured = " ".join(measured.group(1).split()).rstrip(".,: ") if measured else ""
    try:
        m, e = float(result.measured), float(result.error)
        if measured and _close(e, abs(m)):
            return f"the measured value: {measured}"
        p = float(result.predicted)
    except (TypeError, ValueError):
        return "claim-specific: see the claim's notes and details (--json)"
    if p == 0 and _close(e, abs(m)):
        return "the measured value itself (its prediction is 0)"
    if p == -0.5 and _close(e, abs(m - p)):
        return "|fitted log-log slope of the width sweep - (-1/2)|"
    if p != 0 and _close(e, abs(m - p) / abs(p)):
        return "relative error |measured - predicted| / |predicted|"
    if _close(e, abs(m - p)):
        return "|measured - predicted|"
    return "claim-specific (not |measured - predicted|): see the claim's notes and details (--json)"


def format_error_legend(pairs: Sequence[tuple], limit: int = 150) -> str:
    """The legend under the table: what each row's ``error`` measures (rows with an error)."""
    rows = [(c.id, error_meaning(c, r)) for c, r in pairs]
    rows = [(cid, text) for cid, text in rows if text]
    if not rows:
        return ""
    width = max(len(cid) for cid, _ in rows)
    lines = ["error column, per claim:"]
    for cid, text in rows:
        line = f"  {cid.ljust(width)}  {text}"
        lines.append(line if len(line) <= limit else line[: limit - 3] + "...")
    return "\n".join(lines)


def summary_line(pairs: Sequence[tuple], seconds: float) -> str:
    from proofs.report import summarize
    s = summarize(pairs)
    counts = ", ".join(f"{n} {v}" for v, n in s["counts"].items() if n)
    bad = len(s["unexpected"])
    tail = ("all verdicts as expected" if s["all_as_expected"]
            else f"{_plural(bad, 'verdict')} {'differs' if bad == 1 else 'differ'} from the expected: "
                 f"{', '.join(s['unexpected'])}")
    return f"{_plural(s['claims'], 'claim')} ({counts or 'none'}) in {seconds:.1f} s; {tail}"


def _write_outcome(pairs: Sequence[tuple], seconds: float, out: TextIO) -> None:
    """The table, its error legend, one line of reasons per surprising or qualified verdict, and the
    summary line."""
    out.write(format_table(pairs) + "\n")
    legend = format_error_legend(pairs)
    if legend:
        out.write(legend + "\n")
    for c, r in pairs:
        if r.verdict != c.expected or r.verdict in ("conditional", "inconclusive"):
            why = r.failed_assumption or " ".join((r.notes or "").split())[:300]
            if why:
                out.write(f"  {c.id}: {r.verdict}: {why}\n")
    out.write(summary_line(pairs, seconds) + "\n")
    if hasattr(out, "flush"):
        out.flush()


# ----------------------------------------------------------------------------- input checks
def _select(ids, claims: ClaimSource) -> List[Claim]:
    try:
        return select_claims(ids, claims)
    except ValueError as exc:  # unknown id / bad pattern: the user's input
        raise InputError(str(exc)) from None


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _check_writable_dir(directory: Path, what: str) -> None:
    """The directory must exist and accept a new file (a temporary file is created and removed:
    ``os.access`` alone passes root on read-only or virtual file systems such as ``/proc``)."""
    if not directory.is_dir():
        raise InputError(f"{what}: {str(directory)!r} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise InputError(f"{what}: cannot create files in directory {str(directory)!r} ({_strerror(exc)})") from None


def _ensure_dir(directory: Path, what: str) -> None:
    """Create ``directory`` with its parents, after probing the nearest existing ancestor (so that a
    refused probe creates nothing); ``InputError`` naming ``what`` on any failure."""
    ancestor = directory
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise InputError(f"{what}: {str(ancestor)!r} exists and is not a directory")
    _check_writable_dir(ancestor, what)
    if ancestor != directory:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{what}: cannot create the directory {str(directory)!r} ({_strerror(exc)})") from None
        _check_writable_dir(directory, what)


def _check_replaceable(path: Path, what: str) -> None:
    """An existing output file must be a regular file that an atomic ``os.replace`` can replace:
    ``--json /dev/null`` would replace the device node, an immutable (``chattr +i``) or append-only
    file refuses with EPERM only after the run."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise InputError(f"{what}: {str(path)!r} exists and is not a regular file (use '-' for standard output)"
                         if what.startswith("--json") else f"{what}: {str(path)!r} exists and is not a regular file")
    try:
        with open(path, "ab"):
            pass
    except PermissionError as exc:
        if exc.errno == errno.EPERM:  # immutable or append-only: os.replace would fail too
            raise InputError(f"{what}: the existing file {str(path)!r} cannot be replaced ({_strerror(exc)}; "
                             "is it immutable or append-only?)") from None
        # EACCES (mode bits): os.replace needs only the directory's permission, probed separately
    except OSError as exc:
        raise InputError(f"{what}: the existing file {str(path)!r} cannot be replaced ({_strerror(exc)})") from None


def _nonempty(option: str, text: Optional[str], expected: str) -> Optional[Path]:
    """``Path(text)``, ``None`` when the option was not given; an empty string is an error (``Path("")``
    is the current directory: ``--json ''`` would silently write nothing, ``--out ''`` write into ``.``)."""
    if text is None:
        return None
    if not text.strip():
        raise InputError(f"{option} {text!r} is empty: expected {expected}")
    return Path(text).expanduser()


def _json_target(args) -> Optional[Path]:
    """The ``--json`` file, probed (and its parent directories created) before a long run; ``None``
    when not given or ``-``."""
    if args.json == "-":
        return None
    path = _nonempty("--json", args.json, "a file path, or '-' for standard output")
    if path is None:
        return None
    what = f"--json {args.json!r}"
    if path.is_dir():
        raise InputError(f"{what} is a directory; expected a file path")
    _ensure_dir(path.parent if str(path.parent) else Path("."), what)
    _check_replaceable(path, what)
    return path


REPORT_FILES = ("report.md", "report.tex", "results.json")


def _check_pdf_toolchain() -> None:
    """``--pdf``: pdflatex must be installed (checked before the run, not after it)."""
    import proofs.report as report

    check = getattr(report, "check_pdf_toolchain", None)
    if check is None:
        raise InputError("--pdf: this version of proofs.report cannot compile a PDF")
    try:
        check()
    except Exception as exc:  # noqa: BLE001 -- PdfUnavailable: the message says what to install
        if type(exc).__name__ != "PdfUnavailable":
            raise
        raise InputError(str(exc)) from None


def _report_target(args) -> Path:
    """The ``--out`` directory, created (with its parents) and probed before the run: the directory,
    its ``figures/`` and the files the report replaces."""
    if getattr(args, "pdf", False):
        _check_pdf_toolchain()
    target = _nonempty("--out", args.out, "a directory path")
    what = f"--out {args.out!r}"
    if target.exists() and not target.is_dir():
        raise InputError(f"{what} exists and is not a directory")
    _ensure_dir(target, what)
    figures = target / "figures"
    if figures.exists() and not figures.is_dir():
        raise InputError(f"{what}: {str(figures)!r} exists and is not a directory")
    if figures.is_dir():
        _check_writable_dir(figures, what)
    for name in REPORT_FILES + (("report.pdf",) if getattr(args, "pdf", False) else ()):
        _check_replaceable(target / name, what)
    return target


# ----------------------------------------------------------------------------- writing results
def _save_elsewhere(document_text: str, kind: str) -> Optional[str]:
    """Save a document that could not be written where asked into a temporary file; its path, or
    ``None`` when that fails too."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"ngd-verify-{kind}-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document_text)
        return name
    except OSError:
        return None


def _document_text(document) -> str:
    from proofs.report import dumps_strict
    return dumps_strict(document, indent=2) + "\n"


def _write_json_output(args, make_document: Callable[[], object], json_stream: TextIO, err: TextIO,
                       kind: str) -> None:
    """Write the document to the ``--json`` target: a file (atomically), or standard output for ``-``.
    A file that cannot be written (it passed the probe, then failed) is an input error whose message
    names the temporary file the document was saved to instead."""
    from proofs.report import to_jsonable, write_json

    document = make_document()
    if args.json == "-":
        text = _document_text(document)
        try:
            json_stream.write(text)
        except UnicodeEncodeError:  # the JSON alone, in ASCII escapes: still the same document
            json_stream.write(json.dumps(to_jsonable(document), indent=2, allow_nan=False, ensure_ascii=True) + "\n")
        return
    try:
        write_json(Path(args.json).expanduser(), document)
    except (OSError, ValueError) as exc:
        reason = _strerror(exc) if isinstance(exc, OSError) else str(exc)
        saved = _save_elsewhere(_document_text(document), kind)
        where = f"; the {kind} were saved to {saved} instead" if saved else ""
        raise InputError(f"--json {args.json!r}: cannot write the {kind} ({reason}){where}") from None
    err.write(f"{kind} written to {args.json}\n")


def _count_new_figures(directory: Path, since: float) -> int:
    try:
        return sum(1 for p in directory.glob("*.png") if not p.name.startswith(".") and p.stat().st_mtime >= since)
    except OSError:
        return 0


def _remove_stale_figures(figures_dir: Path, written: Sequence, since: float, err: TextIO) -> int:
    """Remove the PNGs in ``figures_dir`` that this report did not write (neither listed nor modified
    since ``since``): figures of an earlier report into the same directory."""
    if not figures_dir.is_dir():
        return 0
    keep = {Path(p).resolve() for p in written}
    removed = 0
    for png in figures_dir.glob("*.png"):
        try:
            if png.resolve() in keep or png.stat().st_mtime >= since:
                continue
            png.unlink()
            removed += 1
        except OSError as exc:
            err.write(f"{PROG}: warning: could not remove the stale figure {str(png)!r} ({_strerror(exc)})\n")
    return removed


# ----------------------------------------------------------------------------- commands
def _config(args, err: TextIO) -> RunConfig:
    """The run configuration; the progress line goes to standard error, so it is shown when that is
    a terminal."""
    tty = hasattr(err, "isatty") and err.isatty()
    return RunConfig(mode=args.mode, seed=args.seed, progress=bool(tty and not args.no_progress))


def _cmd_list(args, claims: ClaimSource, out: TextIO, err: TextIO) -> int:
    from theory.assumptions import Relaxed

    for c in _select(args.ids, claims):
        out.write(f"{c.id}  [expects {c.expected}]  {c.title}\n")
        out.write(f"    statement: {latex_to_text(c.statement)}\n")
        out.write(f"    assumptions: {'; '.join(map(str, c.assumptions)) if c.assumptions else 'none'}\n")
        if c.space is not None:
            relaxed = [a.name for a in c.assumptions if isinstance(a, Relaxed)]
            note = (f" ('none' keeps the statement's own relaxation of {', '.join(repr(r) for r in relaxed)})"
                    if relaxed else "")
            out.write(f"    falsify: hypothesis search; --relax {', '.join(repr(r) for r in c.space.relaxations)}"
                      f"{note}\n")
    return 0


def _execution(args, claims: ClaimSource):
    """The :class:`proofs.distributed.Execution` of ``--workers``/``--scheduler``; for a distributed
    one, the ``[distributed]`` extra must be installed (checked before the run)."""
    from proofs.distributed import DistributedUnavailable, Execution, require_distributed

    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and not scheduler.strip():
        raise InputError(f"--scheduler {scheduler!r} is empty: expected an address such as tcp://127.0.0.1:8786")
    if scheduler is not None:
        import re

        port = re.search(r":(\d+)/?$", scheduler.strip())
        if port is not None and not 1 <= int(port.group(1)) <= 65535:
            raise InputError(f"--scheduler {scheduler!r}: port {int(port.group(1))} is not allowed: expected a TCP "
                             "port in 1 .. 65535, e.g. tcp://127.0.0.1:8786")
    ex = Execution(workers=getattr(args, "workers", 1), scheduler=scheduler)
    if ex.distributed:
        if claims is not None:
            raise InputError(f"{ex.option.split()[0]} runs the registered claims by id; it cannot run claims "
                             "passed in-process")
        try:
            require_distributed(ex.option)
        except DistributedUnavailable as exc:
            raise InputError(str(exc)) from None
    return ex


def _distributed_errors(ex):
    """Map the distributed run's errors: an unreachable scheduler is bad input (exit 2); a task that
    failed for good is reported by :func:`main` as exit 3 with its message (claim id and seed)."""
    from proofs.distributed import SchedulerUnavailable

    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if isinstance(exc, SchedulerUnavailable):
                raise InputError(str(exc)) from None
            return False
    return _Guard()


def _environment(ex) -> dict:
    from proofs.report import environment_record
    return {**environment_record(), "execution": ex.describe()}


def _cmd_verify(args, claims: ClaimSource, out: TextIO, err: TextIO) -> int:
    chosen = _select(args.ids, claims)
    _json_target(args)
    ex = _execution(args, claims)
    cfg = _config(args, err)
    start = time.perf_counter()
    with _distributed_errors(ex):
        pairs = run_claims(chosen, cfg, file=err, execution=ex)
    seconds = time.perf_counter() - start
    _write_outcome(pairs, seconds, out)
    if args.json is not None:
        from proofs.report import results_document
        _write_json_output(args, lambda: results_document(pairs, cfg, _environment(ex)), args.json_stream, err,
                           "results")
    return 0 if all(r.verdict == c.expected for c, r in pairs) else 1


def _cmd_report(args, claims: ClaimSource, out: TextIO, err: TextIO) -> int:
    from proofs.report import results_document, write_report

    chosen = _select(args.ids, claims)
    target = _report_target(args)
    ex = _execution(args, claims)
    cfg = _config(args, err)
    start = time.perf_counter()
    with _distributed_errors(ex):
        pairs = run_claims(chosen, cfg, file=err, execution=ex)
    environment = _environment(ex)
    seconds = time.perf_counter() - start
    _write_outcome(pairs, seconds, out)  # first: a report that cannot be written must not lose the table
    since = time.time() - 0.001
    figures_dir = target / "figures"
    try:
        with status_line(cfg, "report: figures written", file=err, unit="figure") as line:
            stop = threading.Event()
            poller = None
            if line is not None:
                def poll():
                    while not stop.wait(0.5):
                        line.set_count(_count_new_figures(figures_dir, since))
                poller = threading.Thread(target=poll, name="ngd-verify-figures", daemon=True)
                poller.start()
            try:
                paths = write_report(pairs, cfg, target, **({"environment": environment} if ex.distributed else {}),
                                     **({"pdf": True} if args.pdf else {}))
            finally:
                stop.set()
                if poller is not None:
                    poller.join(timeout=2.0)
    except Exception as exc:
        if type(exc).__name__ == "PdfError":  # the other files are written; the LaTeX did not compile: our bug
            err.write(f"{PROG}: report.md, report.tex, results.json and the figures were written to {target}; "
                      "report.pdf was not\n")
            raise
        try:
            saved = _save_elsewhere(_document_text(results_document(pairs, cfg, environment)), "results")
        except Exception:  # noqa: BLE001 -- the original error is the one to report
            saved = None
        where = f"; the results were saved to {saved}" if saved else ""
        if isinstance(exc, OSError):
            name = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
            raise InputError(f"--out {args.out!r}: cannot write the report{name} ({_strerror(exc)}){where}") from None
        if saved:
            err.write(f"{PROG}: writing the report failed; the results were saved to {saved}\n")
        raise
    removed = _remove_stale_figures(figures_dir, paths.get("figures", []), since, err)
    stale = f"; removed {_plural(removed, 'stale figure')} of an earlier report" if removed else ""
    pdf = f", {paths['pdf']}" if paths.get("pdf") else ""
    err.write(f"report written to {paths['markdown']}, {paths['latex']}{pdf}, {paths['json']} "
              f"and {_plural(len(paths['figures']), 'figure')} in {figures_dir}{stale}\n")
    return 0 if all(r.verdict == c.expected for c, r in pairs) else 1


def _falsify_target(claim_id: str, claims: ClaimSource) -> Claim:
    """The one claim to search; for a topic prefix, a glob or an unknown id, an ``InputError`` that
    lists the claims of that topic with a search space (:func:`proofs.falsify.suggestions`)."""
    from proofs.falsify import suggestions

    try:
        return get_claim(claim_id, claims)
    except ValueError:
        pass
    raise InputError(suggestions(claim_id, select_claims(None, claims)))


def _cmd_falsify(args, claims: ClaimSource, out: TextIO, err: TextIO) -> int:
    from proofs.falsify import _database_dir, falsifiable, falsify, format_outcome
    from theory.assumptions import Relaxed

    target = _falsify_target(args.claim_id, claims)
    if target.space is None:
        names = falsifiable(select_claims(None, claims))
        raise InputError(f"claim {target.id!r} has no falsify search space; claims with one: "
                         + (", ".join(names) if names else "none"))
    for name in args.relax or []:
        try:
            target.space.strategy(name)
        except ValueError as exc:  # names the allowed relaxations
            raise InputError(str(exc)) from None
    try:
        _database_dir(args.database)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    ex = _execution(args, claims)
    shards = args.shards
    if shards is None:
        if ex.scheduler is not None:
            raise InputError("--scheduler needs --shards K for falsify: the search is split into K independent "
                             "searches, and the result depends on K, not on the size of the cluster")
        shards = ex.workers
    if shards > args.max_examples:
        raise InputError(f"--shards {shards} is not allowed with --max-examples {args.max_examples}: every shard "
                         "needs at least one example (K <= N)")
    cfg = _config(args, err)
    with _distributed_errors(ex):
        outcome = falsify(target, cfg, max_examples=args.max_examples, relax=args.relax, max_seconds=args.max_seconds,
                          database=args.database, others=select_claims(None, claims), shards=shards,
                          execution=ex if ex.distributed else None)
    out.write(format_outcome(outcome) + "\n")
    relaxed = [a.name for a in target.assumptions if isinstance(a, Relaxed)]
    if relaxed and "none" in outcome.relaxations:
        out.write(f"  note: relaxing 'none' keeps what the statement itself relaxes: "
                  f"{', '.join(repr(r) for r in relaxed)}\n")
    if outcome.counterexample is not None:
        return 1
    return 3 if outcome.error is not None else 0  # the check could not be evaluated: the claim's bug


def _cmd_audit(args, claims: ClaimSource, out: TextIO, err: TextIO) -> int:
    from proofs.audit import format_audit, run_audit
    from proofs.report import conventions, environment_record, to_jsonable

    chosen = _select(args.ids, claims)
    _json_target(args)
    ex = _execution(args, claims)
    show = err.isatty() and not args.no_progress
    expected = {c.id: c.expected for c in chosen}

    def on_seed(seed, results):
        if show:
            bad = [cid for cid, v, *_ in results if v != expected[cid]]
            err.write(f"  seed {seed}: {len(results) - len(bad)}/{len(results)} as expected"
                      + (f" ({', '.join(bad)})" if bad else "") + "\n")

    with _distributed_errors(ex):
        audit = run_audit(chosen, args.seeds, args.start, args.mode, ex.workers, on_seed=on_seed,
                          scheduler=ex.scheduler)
    out.write(format_audit(audit) + "\n")
    if args.json is not None:
        _write_json_output(args, lambda: to_jsonable({**audit.to_dict(), "conventions": conventions(),
                                                      "environment": {**environment_record(),
                                                                      "execution": audit.execution}}),
                           args.json_stream, err, "audit")
    return 0 if audit.all_as_expected else 1


COMMANDS = {"list": _cmd_list, "verify": _cmd_verify, "report": _cmd_report, "falsify": _cmd_falsify,
            "audit": _cmd_audit}


def main(argv: Optional[Sequence[str]] = None, *, claims: ClaimSource = None,
         out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run the command line; return the exit status (see the module docstring)."""
    raw_out = out if out is not None else sys.stdout
    out = _SafeStream(raw_out)
    err = _SafeStream(err if err is not None else sys.stderr)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser(stream=out)
        if not argv:  # a bare call: the help, not an error
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        if args.command is None:  # only options such as --debug
            parser.print_help()
            return 0
        args.json_stream = raw_out
        if getattr(args, "json", None) == "-":  # the JSON alone on standard output, the table on stderr
            out = err
        return COMMANDS[args.command](args, claims, out, err)
    except UsageError as exc:
        if debug:
            err.write("".join(traceback.format_exception(exc)))
        hint = f" (see {exc.prog} --help)" if exc.prog else ""
        err.write(f"{PROG}: error: {' '.join(str(exc).split())}{hint}\n")
        return 2
    except SystemExit as exc:  # --help / --version from argparse
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # the reader went away (`ngd-verify list | head`): nothing left to say
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except Exception as exc:  # noqa: BLE001 -- anything else is a bug: say so, exit 3
        if debug:
            err.write("".join(traceback.format_exception(exc)))
        if type(exc).__name__ == "TaskFailed":  # proofs.distributed: a task lost or failed for good, named
            err.write(f"{PROG}: error: {' '.join(str(exc).split())}\n")
            return 3
        message = " ".join(str(exc).split()) or "(no message)"
        hint = "the traceback is above" if debug else f"rerun with --debug for the traceback"
        err.write(f"{PROG}: internal error: {type(exc).__name__}: {message} (a bug; {hint})\n")
        return 3


def entry_point() -> None:  # pragma: no cover -- console scripts call main() and exit with its status
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
