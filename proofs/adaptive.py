"""Adaptive width sweeps: gather evidence until the verdict rule decides, or the budget is spent.

A width-sweep statement ("the error tends to 0 like ``M^-1/2``") is judged by
:func:`proofs.verdicts.sweep` at a stated level.  A short sweep may be too noisy to decide; instead
of reporting ``inconclusive`` after a fixed amount of work, :func:`adaptive_sweep` measures more:

1. ``repeats`` independent initialisations at every width of ``widths``;
2. while some quantity is still inconclusive: double the initialisations per width (up to
   ``max_repeats``), then add the next of ``extra_widths`` (one wider net at a time);
3. stop when every quantity is decided (verified or refuted) or nothing is left in the budget.

Every evaluation is one *look*; the number of possible looks is known in advance
(:meth:`Budget.looks`) and the verdict rule spends its level over them (Bonferroni), so the
probability of refuting a true statement stays below ``level`` however many looks are taken.

Every measurement is a pure function of its coordinates ``(width, replicate)`` (the caller seeds
its network from them, e.g. ``cfg.sub_seed(claim, width, replicate)``), never of the order in
which they are taken: a run that stops after more or fewer looks, or runs the points in parallel,
gives the same numbers at the points it shares.

In a distributed run (``--workers`` / ``--scheduler``) the points of each round (the first sweep, one
doubling of the initialisations, one wider net) are Dask tasks: when a
:class:`proofs.distributed.PointExecutor` is active, :func:`adaptive_sweep` submits the round, lets the
``progress`` wrapper count the points as they complete, and records them in point order, so the
verdicts and numbers are the serial ones.  ``spent["execution"]`` then says how many points ran as
tasks (``point_tasks``) and how many rounds ran here, one point after the other (``rounds_here``:
``measure`` could not be pickled, or, in a claim task, other claims were waiting for the workers;
see :meth:`proofs.distributed.PointExecutor.map`).  Serially (no executor) the points are measured
here one after the other.

>>> import numpy as np
>>> def measure(width, rep):                     # error ~ M^-1/2 with a seeded 20 % fluctuation
...     rng = np.random.default_rng([width, rep])
...     return {"iso": width ** -0.5 * np.exp(0.2 * rng.standard_normal())}
>>> run = adaptive_sweep(measure, [64, 128, 256, 512], [SweepSpec("iso", expected_slope=-0.5)],
...                      Budget(repeats=2, max_repeats=8, extra_widths=(1024,)))
>>> run.parts[0].verdict, run.spent["looks"] >= 1
('verified', True)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from proofs import verdicts as V


@dataclass(frozen=True)
class SweepSpec:
    """One quantity of a sweep and the statement about it (arguments of :func:`proofs.verdicts.sweep`)."""

    name: str
    expected_slope: Optional[float] = -0.5
    final_tolerance: Optional[float] = None
    slope_band: float = V.DEFAULT_SLOPE_BAND
    assumption: Optional[str] = None
    key: Optional[str] = None  # the measurement's dict key, if not ``name``

    @property
    def field(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Budget:
    """How much evidence a sweep may gather: ``repeats`` initialisations per width at first, doubled
    up to ``max_repeats``, then ``extra_widths`` added one at a time."""

    repeats: int = 2
    max_repeats: int = 8
    extra_widths: Tuple[int, ...] = ()

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not (is_int(self.repeats) and is_int(self.max_repeats)) or not 1 <= self.repeats <= self.max_repeats:
            raise ValueError(f"Budget(repeats={self.repeats!r}, max_repeats={self.max_repeats!r}) is not allowed: "
                             "expected integers with 1 <= repeats <= max_repeats")
        if not all(is_int(w) and w > 0 for w in self.extra_widths):
            raise ValueError(f"extra_widths={self.extra_widths!r} is not allowed: expected positive integers")
        object.__setattr__(self, "extra_widths", tuple(int(w) for w in self.extra_widths))

    def schedule(self) -> List[int]:
        """The initialisations per width at each doubling look, e.g. ``[2, 4, 8]``."""
        out = [int(self.repeats)]
        while out[-1] < self.max_repeats:
            out.append(min(2 * out[-1], int(self.max_repeats)))
        return out

    @property
    def looks(self) -> int:
        """The most evaluations an adaptive sweep can take (the rule's Bonferroni divisor)."""
        return len(self.schedule()) + len(self.extra_widths)


@dataclass
class AdaptiveSweep:
    """Outcome: ``parts`` (one :class:`proofs.verdicts.SubVerdict` per spec), ``errors[name][width]``
    the replicate errors, ``records[(width, rep)]`` everything each measurement returned, and
    ``spent`` (looks, networks, widths, repeats per width, seconds)."""

    parts: List[V.SubVerdict]
    widths: List[int]
    errors: Dict[str, Dict[int, List[float]]]
    records: Dict[Tuple[int, int], Mapping[str, Any]]
    spent: Dict[str, Any] = field(default_factory=dict)

    def part(self, name: str) -> V.SubVerdict:
        return next(p for p in self.parts if p.name == name)

    def mean_errors(self, name: str) -> List[float]:
        """Per-width mean error (the headline numbers and figures)."""
        return [float(np.mean(self.errors[name][w])) for w in self.widths]


def adaptive_sweep(measure: Callable[[int, int], Mapping[str, Any]], widths: Sequence[int],
                   specs: Sequence[SweepSpec], budget: Budget = Budget(), *,
                   level: float = V.DEFAULT_LEVEL, progress: Optional[Callable] = None) -> AdaptiveSweep:
    """Run ``measure(width, replicate) -> {quantity: error, ...}`` over a width sweep until every
    spec is decided by :func:`proofs.verdicts.sweep` or ``budget`` is spent (module docstring).

    ``measure`` must be a pure function of its arguments (seed from them).  Extra keys it returns
    are kept in ``records``.  ``progress(iterable, desc)`` wraps the loops (e.g. a tqdm bar): serially
    the iterable is the round's ``(width, rep)`` points; when the round runs as Dask tasks it is a
    sized iterable of ``(index, record)`` in completion order, so a bar moves as points finish.
    Raises ``ValueError`` for fewer than 3 widths, unsorted or repeated widths, or no specs.
    """
    widths = [int(w) for w in widths]
    if len(widths) < 3 or sorted(set(widths)) != widths:
        raise ValueError(f"widths={widths!r} is not allowed: expected at least 3 distinct increasing widths")
    extra = [w for w in budget.extra_widths]
    if extra and (sorted(set(extra)) != extra or extra[0] <= widths[-1]):
        raise ValueError(f"extra_widths={extra!r} is not allowed: expected increasing widths above {widths[-1]}")
    if widths[0] < 1:
        raise ValueError(f"widths={widths!r} is not allowed: expected positive widths")
    specs = list(specs)
    if not specs:
        raise ValueError("specs must name at least one quantity")
    if len({s.name for s in specs}) != len(specs):
        raise ValueError(f"specs must have distinct names, got {[s.name for s in specs]}")
    looks_total = budget.looks
    records: Dict[Tuple[int, int], Mapping[str, Any]] = {}
    start = time.perf_counter()
    wrap = progress or (lambda it, desc: it)
    from proofs.distributed import active_point_executor  # no Dask import: that happens only in a distributed run

    executor = active_point_executor()  # None in a serial run
    ran = {"point_tasks": 0, "rounds_here": 0}

    def keep(w, r, rec):
        if not isinstance(rec, Mapping):
            raise TypeError(f"measure({w}, {r}) returned {type(rec).__name__}, expected a mapping")
        missing = [s.field for s in specs if s.field not in rec]
        if missing:
            raise ValueError(f"measure({w}, {r}) returned no value for {missing}; it returned keys {sorted(rec)}")
        records[(w, r)] = dict(rec)

    def take(points, desc):
        points = list(points)
        todo = [p for p in dict.fromkeys(points) if p not in records]
        tasks = executor.map(measure, todo) if executor is not None and todo else None
        if tasks is None:  # serial: one point after the other, here
            ran["rounds_here"] += executor is not None and bool(todo)
            for w, r in wrap(points, desc):
                if (w, r) not in records:
                    keep(w, r, measure(w, r))
            return
        # the round's points as Dask tasks (proofs.distributed): the progress wrapper sees them in
        # completion order; they are checked and recorded in point order, as a serial run does
        got = {}
        ran["point_tasks"] += len(tasks)
        for i, rec in wrap(tasks, desc):
            got[i] = rec
        for i, (w, r) in enumerate(todo):
            keep(w, r, got[i])

    def judge(current, reps):
        errors = {s.name: {w: [float(records[(w, r)][s.field]) for r in range(reps[w])] for w in current}
                  for s in specs}
        parts = [V.sweep(s.name, current, [errors[s.name][w] for w in current], expected_slope=s.expected_slope,
                         final_tolerance=s.final_tolerance, slope_band=s.slope_band, level=level,
                         looks=looks_total, assumption=s.assumption) for s in specs]
        return parts, errors

    current = list(widths)
    schedule = budget.schedule()
    reps = {w: schedule[0] for w in current}
    looks, history = 0, []
    take(((w, r) for w in current for r in range(reps[w])), "sweep")
    while True:
        parts, errors = judge(current, reps)
        looks += 1
        history.append({"widths": list(current), "repeats": dict(reps),
                        "verdicts": {p.name: p.verdict for p in parts}})
        if all(p.verdict != "inconclusive" for p in parts):
            break
        level_idx = schedule.index(min(reps.values())) if min(reps.values()) in schedule else len(schedule) - 1
        if level_idx + 1 < len(schedule):  # more initialisations everywhere
            new = schedule[level_idx + 1]
            take(((w, r) for w in current for r in range(reps[w], new)), f"more initialisations ({new}/width)")
            reps = {w: new for w in current}
        elif extra:  # one wider net
            w = extra.pop(0)
            current.append(w)
            reps[w] = schedule[-1]
            take(((w, r) for r in range(reps[w])), f"wider net M = {w}")
        else:
            break
    spent = {"looks": looks, "max_looks": looks_total, "networks": len(records), "widths": list(current),
             "repeats": {str(w): reps[w] for w in current}, "seconds": time.perf_counter() - start,
             "history": history, "level": level,
             "budget": {"repeats": budget.repeats, "max_repeats": budget.max_repeats,
                        "extra_widths": list(budget.extra_widths)}}
    if executor is not None:  # where the points ran (distributed runs only; a serial run's record is unchanged)
        spent["execution"] = dict(ran)
    for p in parts:
        p.numbers["spent"] = {k: spent[k] for k in ("looks", "max_looks", "networks", "widths")}
    return AdaptiveSweep(parts, current, errors, records, spent)


__all__ = ["SweepSpec", "Budget", "AdaptiveSweep", "adaptive_sweep"]
