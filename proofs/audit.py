"""Seed audit: run claims over many master seeds and count their verdicts.

A verdict is only worth its false-verdict rate.  :func:`run_audit` runs each selected claim at the
seeds ``start, start + 1, ..., start + n - 1`` (every draw of a claim is seeded from the master seed
and the claim's own coordinates, so a seed's results do not depend on which other seeds run, or in
which process) and :func:`format_audit` prints, per claim, the verdict counts and the rate at which
the verdict equals the claim's expected one, with the seeds that deviated.

``ngd-verify audit [CLAIM_ID ...] --seeds N [--start S] [--quick | --full] [--workers W | --scheduler ADDRESS] [--json PATH]``
exits 0 when every verdict at every seed is the expected one and 1 otherwise.  With ``workers > 1`` or a
``scheduler`` the (seed, claim) pairs run as Dask tasks (:mod:`proofs.distributed`); the audit is the
serial one, reassembled in the serial order.

>>> from proofs.claim import claim, ClaimResult
>>> @claim("demo.even", title="seed parity", statement="s even", register=False)
... def _even(cfg):
...     return ClaimResult("verified" if cfg.seed % 2 == 0 else "inconclusive")
>>> a = run_audit([_even], seeds=4, start=0)
>>> a.rows[0].counts["verified"], a.rows[0].as_expected_rate, a.all_as_expected
(2, 0.5, False)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from proofs.claim import VERDICTS, Claim, RunConfig


@dataclass
class AuditRow:
    """One claim over the audited seeds: ``verdicts[seed]``, counts, and the deviating seeds."""

    id: str
    expected: str
    verdicts: Dict[int, str] = field(default_factory=dict)
    reasons: Dict[int, str] = field(default_factory=dict)
    seconds: Dict[int, float] = field(default_factory=dict)
    #: the headline numbers per seed, JSON-ready: ``{"predicted", "measured", "error"}``
    values: Dict[int, dict] = field(default_factory=dict)

    @property
    def counts(self) -> Dict[str, int]:
        return {v: sum(1 for x in self.verdicts.values() if x == v) for v in VERDICTS}

    @property
    def deviations(self) -> List[int]:
        return sorted(s for s, v in self.verdicts.items() if v != self.expected)

    @property
    def as_expected_rate(self) -> float:
        return 1.0 - len(self.deviations) / max(len(self.verdicts), 1)

    def to_dict(self) -> dict:
        return {"id": self.id, "expected": self.expected, "counts": self.counts,
                "as_expected_rate": self.as_expected_rate,
                "deviations": [{"seed": s, "verdict": self.verdicts[s], "reason": self.reasons.get(s, "")}
                               for s in self.deviations],
                "mean_seconds": sum(self.seconds.values()) / max(len(self.seconds), 1)}


@dataclass
class Audit:
    """The audit: mode, seeds, one :class:`AuditRow` per claim, wall time."""

    mode: str
    seeds: List[int]
    rows: List[AuditRow]
    seconds: float = 0.0
    #: where it ran (:meth:`proofs.distributed.Execution.describe`): serial, local cluster, scheduler
    execution: Dict[str, object] = field(default_factory=lambda: {"kind": "serial"})

    @property
    def all_as_expected(self) -> bool:
        return all(not r.deviations for r in self.rows)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "seeds": self.seeds, "start": self.seeds[0] if self.seeds else None,
                "claims": [r.to_dict() for r in self.rows], "seconds": self.seconds,
                "all_as_expected": self.all_as_expected,
                "verdicts": {r.id: {str(s): v for s, v in sorted(r.verdicts.items())} for r in self.rows},
                "values": {r.id: {str(s): v for s, v in sorted(r.values.items())} for r in self.rows},
                "execution": self.execution}


def _result_row(c: Claim, r) -> tuple:
    """``(id, verdict, reason, seconds, numbers)``; ``numbers`` the JSON form of the headline numbers."""
    from proofs.report import to_jsonable

    why = r.failed_assumption or " ".join((r.notes or "").split())[:300]
    numbers = to_jsonable({"predicted": r.predicted, "measured": r.measured, "error": r.error})
    return (c.id, r.verdict, why, r.seconds, numbers)


def _run_seed(claims: Sequence[Claim], mode: str, seed: int) -> List[tuple]:
    """All claims at one seed, serially: ``[(id, verdict, reason, seconds, numbers)]``."""
    cfg = RunConfig(mode=mode, seed=seed)
    return [_result_row(c, c.run(cfg)) for c in claims]


def _audit_task(ref, mode: str, seed: int) -> tuple:
    """One claim at one seed (a Dask task): ``(id, verdict, reason, seconds, numbers)``."""
    from proofs.distributed import resolve_claim

    c = resolve_claim(ref)
    return _result_row(c, c.run(RunConfig(mode=mode, seed=int(seed))))


def run_audit(claims: Sequence[Claim], seeds: int, start: int = 0, mode: str = "quick", workers: int = 1,
              on_seed=None, scheduler: Optional[str] = None) -> Audit:
    """Run ``claims`` at ``seeds`` consecutive master seeds from ``start``.

    ``workers > 1`` runs the (seed, claim) pairs as tasks on an embedded Dask ``LocalCluster`` of that
    many processes (one BLAS thread each), ``scheduler`` (an address such as ``tcp://host:8786``) on a
    running Dask cluster; both need the ``[distributed]`` extra (:mod:`proofs.distributed`).  The
    result is the serial one: rows filled in the serial order, whatever the completion order.
    ``on_seed(seed, results)`` is called as each seed finishes (``results``: ``[(id, verdict, reason,
    seconds)]`` in the claims' order).  Raises ``ValueError`` for ``seeds < 1``, ``start < 0``,
    ``workers < 1`` or both ``workers > 1`` and ``scheduler``; a task that fails for good raises
    :class:`proofs.distributed.TaskFailed` naming the claim and the seed.
    """
    if int(seeds) < 1 or int(start) < 0 or int(workers) < 1:
        raise ValueError(f"seeds={seeds!r}, start={start!r}, workers={workers!r} are not allowed: expected "
                         "seeds >= 1, start >= 0, workers >= 1")
    if scheduler is not None and int(workers) > 1:
        raise ValueError(f"workers={workers!r} and scheduler={scheduler!r} are mutually exclusive")
    RunConfig(mode=mode)  # validates the mode
    claims = list(claims)
    rows = {c.id: AuditRow(c.id, c.expected) for c in claims}
    seed_list = list(range(int(start), int(start) + int(seeds)))
    t0 = time.perf_counter()

    def record(seed, results):
        for cid, verdict, why, secs, numbers in results:
            rows[cid].verdicts[seed] = verdict
            rows[cid].seconds[seed] = secs
            rows[cid].values[seed] = numbers
            if verdict != rows[cid].expected:
                rows[cid].reasons[seed] = why

    execution = {"kind": "serial"}
    if int(workers) == 1 and scheduler is None:
        for seed in seed_list:
            results = _run_seed(claims, mode, seed)
            record(seed, results)
            if on_seed is not None:
                on_seed(seed, [t[:4] for t in results])
    else:
        from proofs.distributed import Execution, claim_ref, run_tasks

        ex = Execution(workers=int(workers), scheduler=scheduler)
        refs = [claim_ref(c) for c in claims]
        tasks = [(f"{c.id} at seed {seed}", (ref, mode, seed)) for seed in seed_list for c, ref in zip(claims, refs)]
        n = len(claims)
        pending = {seed: n for seed in seed_list}
        gathered: Dict[int, tuple] = {}

        def on_result(i, result):
            gathered[i] = result
            seed = seed_list[i // n]
            pending[seed] -= 1
            if pending[seed] == 0 and on_seed is not None:
                k = seed_list.index(seed) * n
                on_seed(seed, [gathered[j][:4] for j in range(k, k + n)])

        results = run_tasks(ex, _audit_task, tasks, on_result)
        for k, seed in enumerate(seed_list):  # the serial order, not the completion order
            record(seed, results[k * n:(k + 1) * n])
        execution = ex.describe()
    return Audit(mode, seed_list, [rows[c.id] for c in claims], time.perf_counter() - t0, execution)


def format_audit(audit: Audit) -> str:
    """The audit table: claim, expected, counts per verdict, as-expected rate, deviating seeds."""
    header = ["claim", "expected", "verified", "refuted", "conditional", "inconclusive", "as expected", "deviations"]
    rows = []
    for r in audit.rows:
        c = r.counts
        dev = ", ".join(f"{s}:{r.verdicts[s]}" for s in r.deviations[:6]) + (" ..." if len(r.deviations) > 6 else "")
        rows.append([r.id, r.expected, str(c["verified"]), str(c["refuted"]), str(c["conditional"]),
                     str(c["inconclusive"]), f"{len(r.verdicts) - len(r.deviations)}/{len(r.verdicts)}", dev or "-"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    total = sum(len(r.verdicts) for r in audit.rows)
    bad = sum(len(r.deviations) for r in audit.rows)
    seeds = audit.seeds
    plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
    lines.append(f"{plural(len(audit.rows), 'claim')} x {plural(len(seeds), 'seed')} ({seeds[0]}..{seeds[-1]}, {audit.mode}): "
                 f"{total - bad}/{total} verdicts as expected in {audit.seconds:.0f} s"
                 + ("" if not bad else f"; {bad} deviation(s)"))
    return "\n".join(lines)


__all__ = ["Audit", "AuditRow", "run_audit", "format_audit"]
