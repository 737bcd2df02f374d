"""Counterexample search with a claim's assumptions relaxed (``ngd-verify falsify``).

Two search engines:

* **hypothesis** (claims with a search space in :data:`proofs.assumption_spaces.SPACES`): the
  space's strategy -- every assumption holding (``relax`` ``"none"``, the default) or one relaxed --
  is searched with :func:`hypothesis.find` outside pytest, seeded from the run's seed (so a run is
  reproducible), for a scenario on which the claim's statement fails; the first one found is
  **shrunk** to a minimal counterexample (smallest depth, N, widths, outputs, seeds), printed with
  its architecture, data summary, measured vs predicted numbers, and what the verifier's own
  assumption checks flagged.  With every assumption holding, a scenario the verifier flags (e.g.
  relu killing the rank of a layer Gram at width >= 2N) is outside the assumptions: it is rejected
  and counted, not reported as a counterexample.  ``database`` (a directory) keeps the minimal
  counterexamples as JSON (one file per claim and relaxation); they are replayed first on the next
  run, whatever its seed, and reported if they still fail.  (Hypothesis' own example database is
  not used here: it is disabled for seeded runs, and ``falsify`` runs are seeded.)
* **draws** (fallback, claims without a space): the claim's own falsifier, described below.

A claim may carry a *falsifier* (``@claim(..., falsifier=fn)`` or ``my_claim.set_falsifier(fn,
relaxes="M_0 >= N")``): a function ``fn(rng, config)`` that draws **one** example -- an
architecture, a data set, an approximation -- from a space where some of the claim's assumptions
are relaxed, evaluates the claim's statement on it and returns

    ``(description, holds, numbers)``   or   ``(description, holds, numbers, relaxed)``

with ``description`` a one-line summary of the example, ``holds`` whether the statement held on
it, ``numbers`` a dict of the measured/predicted numbers, and ``relaxed`` (optional) the assumption
this particular draw violates (``None`` if it satisfies them all).  ``claim.falsifier`` may also be
a mapping ``{relaxed assumption: fn}``; draws then cycle through the mapping (``--relax`` picks).

:func:`falsify` makes up to ``max_examples`` draws, draw ``k`` of relaxation ``name`` using the
generator ``config.rng("falsify", claim.id, name, k)`` -- so a run is reproducible from its seed --
and stops at the first counterexample (``holds`` false).  A falsifier that raises is reported as
such (draw, exception), never counted as a pass.

>>> from proofs.claim import claim, ClaimResult, RunConfig
>>> def draws(rng, cfg):
...     x = float(rng.normal())
...     return f"x = {x:.3f}", x * x >= 0, {"x": x}
>>> @claim("demo.square", title="squares are >= 0", statement="x^2 >= 0", register=False, falsifier=draws)
... def _sq(cfg):
...     return ClaimResult("verified")
>>> falsify(_sq, RunConfig(), max_examples=5).counterexample is None
True
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from proofs.claim import Claim, RunConfig
from proofs.report import fmt


@dataclass
class Example:
    """One drawn example and whether the statement held on it."""

    draw: int
    relaxation: str
    description: str
    holds: bool
    numbers: Dict[str, Any] = field(default_factory=dict)
    relaxed: Optional[str] = None


@dataclass
class FalsifyOutcome:
    claim_id: str
    draws: int
    seconds: float
    counterexample: Optional[Example] = None
    examples: List[Example] = field(default_factory=list)
    error: Optional[str] = None
    relaxations: List[str] = field(default_factory=list)
    stopped_by_time: bool = False
    max_examples: int = 0
    search: str = "draws"        # "hypothesis" (shrinking search over a space) or "draws" (claim falsifier)
    rejected: int = 0            # hypothesis, nothing relaxed: examples the verifier flagged (outside assumptions)
    rejected_reason: str = ""
    seed: int = 0


def falsifiers_of(claim: Claim) -> Dict[str, Callable]:
    """``{relaxation name: fn}`` of a claim (``ValueError`` if it has none)."""
    f = claim.falsifier
    if f is None:
        raise ValueError(f"claim {claim.id!r} has no falsifier; `ngd-verify list` marks the claims that have one")
    if isinstance(f, Mapping):
        return {str(k): v for k, v in f.items()}
    return {getattr(f, "relaxes", None) or "(unnamed)": f}


def _normalise(value, draw: int, relaxation: str) -> Example:
    if not isinstance(value, (tuple, list)) or len(value) not in (3, 4):
        raise TypeError(f"a falsifier must return (description, holds, numbers[, relaxed]), got {value!r:.120}")
    description, holds, numbers = value[0], value[1], value[2]
    relaxed = value[3] if len(value) == 4 else (None if relaxation.startswith("(") else relaxation)
    if not isinstance(numbers, Mapping):
        raise TypeError(f"a falsifier's numbers must be a dict, got {type(numbers).__name__}")
    return Example(draw, relaxation, str(description), bool(holds), dict(numbers), relaxed)


def _check_max_examples(max_examples) -> None:
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples={max_examples!r} is not allowed: expected an integer >= 1")


def falsify(claim: Claim, config: Optional[RunConfig] = None, max_examples: int = 50,
            relax: Optional[Sequence[str]] = None, max_seconds: float = 120.0,
            database=None, search: str = "auto") -> FalsifyOutcome:
    """Search for a counterexample to ``claim``: a hypothesis search with shrinking when the claim
    has a search space (``search="auto"`` or ``"hypothesis"``), else its falsifier draws
    (``"draws"``).  ``relax``: assumption names (default: none relaxed for hypothesis, every
    falsifier for draws); ``database``: a directory keeping counterexamples (hypothesis only).
    """
    from proofs.assumption_spaces import space_for

    config = config or RunConfig()
    _check_max_examples(max_examples)
    if search not in ("auto", "hypothesis", "draws"):
        raise ValueError(f"search={search!r} is not allowed: expected 'auto', 'hypothesis' or 'draws'")
    space = space_for(claim.id)
    if search == "hypothesis" and space is None:
        raise ValueError(f"claim {claim.id!r} has no hypothesis search space (proofs.assumption_spaces.SPACES)")
    if space is not None and search != "draws":
        return falsify_hypothesis(claim.id, space, config, max_examples, relax, max_seconds, database)
    if database is not None:
        raise ValueError(f"--database applies to the hypothesis search; claim {claim.id!r} has only falsifier draws")
    return _falsify_draws(claim, config, max_examples, relax, max_seconds)


def falsify_hypothesis(claim_id: str, space, config: RunConfig, max_examples: int = 50,
                       relax: Optional[Sequence[str]] = None, max_seconds: float = 120.0,
                       database=None) -> FalsifyOutcome:
    """Hypothesis search over ``space`` (an :class:`~proofs.assumption_spaces.AssumptionSpace`)
    with each relaxation in ``relax`` in turn (default ``["none"]``); stops at the first
    relaxation with a counterexample, shrunk to a minimal one.

    Deterministic for a given ``config.seed`` (and empty database).  ``max_seconds`` bounds the
    search and the shrinking: past it, examples not yet evaluated count as passing, evaluated ones
    keep their cached verdict (so the minimal example found so far is still reported).
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    _check_max_examples(max_examples)
    names = list(relax) if relax else ["none"]
    strategies = {name: space.strategy(name) for name in names}  # ValueError naming the allowed ones
    db = _database_dir(database)
    outcome = FalsifyOutcome(claim_id, 0, 0.0, relaxations=names, max_examples=max_examples, search="hypothesis",
                             seed=int(config.seed))
    start = time.perf_counter()
    stop = start + max_seconds
    for name in names:
        cache = {}
        relaxed = name != "none"

        def is_counterexample(scenario, cache=cache, relaxed=relaxed):
            if scenario in cache:
                return cache[scenario][0]
            if time.perf_counter() > stop:
                outcome.stopped_by_time = True
                return False
            outcome.draws += 1
            try:
                result = space.check(scenario)
            except Exception as exc:  # noqa: BLE001 -- a crash is searched for (and shrunk), never a pass
                from proofs.assumption_spaces import Outcome

                cache[scenario] = (True, Outcome(False, numbers={"crash": f"{type(exc).__name__}: {exc}"}))
                return True
            unexpected = space.unexpected_flags(result)
            if not relaxed and unexpected:  # the verifier says an assumption fails: outside the space
                outcome.rejected += 1
                outcome.rejected_reason = outcome.rejected_reason or unexpected[0]
                verdict = False
            else:
                verdict = not result.holds
            cache[scenario] = (verdict, result)
            return verdict

        replayed = _replay(db, claim_id, name, is_counterexample)
        if replayed is not None:
            result = cache[replayed][1]
            outcome.counterexample = Example(outcome.draws, name, _describe(replayed) + " [replayed from the database]",
                                             False, _with_data(result.summary(), replayed),
                                             None if name == "none" else name)
            break
        options = settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                           suppress_health_check=list(HealthCheck), print_blob=False,
                           phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
        rng = random.Random(config.sub_seed("falsify", claim_id, name))
        try:
            found = find(strategies[name], is_counterexample, settings=options, random=rng,
                         database_key=f"ngd-verify falsify {claim_id} relax={name}".encode())
        except NoSuchExample:
            if outcome.draws and outcome.rejected == outcome.draws:
                outcome.error = (f"every one of the {outcome.draws} examples of relaxation {name!r} was flagged by the "
                                 f"verifier as outside the assumptions (e.g. {outcome.rejected_reason[:160]}): "
                                 "the search says nothing")
                break
            continue
        except Unsatisfiable as exc:
            outcome.error = f"hypothesis could not generate valid examples for relaxation {name!r} ({exc})"
            break
        result = cache[found][1]
        if "crash" in result.numbers:
            outcome.error = (f"the check raised {result.numbers['crash']} on (minimal example) {_describe(found)}")
            break
        _store(db, claim_id, name, found)
        outcome.counterexample = Example(outcome.draws, name, _describe(found), False,
                                         _with_data(result.summary(), found), None if name == "none" else name)
        break
    outcome.seconds = time.perf_counter() - start
    return outcome


def _with_data(numbers: dict, example) -> dict:
    """``numbers`` with a ``data`` summary of the example's inputs first (when it has one)."""
    summary = getattr(example, "data_summary", None)
    return {"data": summary(), **numbers} if callable(summary) else numbers


def _describe(example) -> str:
    describe = getattr(example, "describe", None)
    return describe() if callable(describe) else repr(example)


def _database_dir(database):
    """``Path`` of the counterexample directory (created), ``None`` for none; ``ValueError`` naming
    the path when it exists and is not a directory."""
    if database is None:
        return None
    from pathlib import Path

    if not str(database).strip():
        raise ValueError("--database '' is empty: expected a directory path")
    path = Path(database).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--database {str(database)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--database {str(database)!r}: cannot create the directory ({exc.strerror or exc})") from None
    return path


def _database_file(db, claim_id: str, relaxation: str):
    import re

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{claim_id}__relax_{relaxation}")
    return db / f"{safe}.json"


def _encode(example):
    import dataclasses

    if dataclasses.is_dataclass(example):
        return {"type": type(example).__name__, "fields": dataclasses.asdict(example)}
    if isinstance(example, (int, float, str, bool)):
        return {"type": type(example).__name__, "value": example}
    return None


def _decode(item):
    from proofs.assumption_spaces import KernelCase, MatrixCase
    from proofs.strategies import Scenario

    kinds = {"Scenario": Scenario, "KernelCase": KernelCase, "MatrixCase": MatrixCase}
    if item.get("type") in kinds:
        fields = dict(item["fields"])
        for key, value in fields.items():  # JSON lists back to the tuples the dataclasses hold
            if isinstance(value, list):
                fields[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        return kinds[item["type"]](**fields)
    if item.get("type") in ("int", "float", "str", "bool"):
        return item["value"]
    raise ValueError(f"unknown example type {item.get('type')!r}")


def _store(db, claim_id, relaxation, example) -> None:
    import json

    if db is None or _encode(example) is None:
        return
    path = _database_file(db, claim_id, relaxation)
    items = json.loads(path.read_text()) if path.exists() else []
    encoded = _encode(example)
    if encoded not in items:
        items.insert(0, encoded)
    path.write_text(json.dumps(items, indent=1))


def _replay(db, claim_id, relaxation, is_counterexample):
    """The first stored example that is still a counterexample (``None`` if none)."""
    import json

    if db is None:
        return None
    path = _database_file(db, claim_id, relaxation)
    if not path.exists():
        return None
    try:
        items = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--database: {str(path)!r} is not valid JSON ({exc})") from None
    for item in items:
        try:
            example = _decode(item)
        except (TypeError, ValueError):  # an example of an older format: skip it
            continue
        if is_counterexample(example):
            return example
    return None


def _falsify_draws(claim: Claim, config: RunConfig, max_examples: int, relax: Optional[Sequence[str]],
                   max_seconds: float) -> FalsifyOutcome:
    """Draw up to ``max_examples`` examples (cycling through the relaxations) and stop at the first
    counterexample or when ``max_seconds`` have passed."""
    table = falsifiers_of(claim)
    if relax:
        unknown = [r for r in relax if r not in table]
        if unknown:
            raise ValueError(f"--relax {unknown[0]!r} is not a relaxation of {claim.id}; "
                             f"allowed: {', '.join(repr(k) for k in table)}")
        table = {k: table[k] for k in relax}
    names = list(table)
    outcome = FalsifyOutcome(claim.id, 0, 0.0, relaxations=names, max_examples=max_examples)
    start = time.perf_counter()
    for k in range(max_examples):
        if time.perf_counter() - start > max_seconds:
            outcome.stopped_by_time = True
            break
        name = names[k % len(names)]
        rng = config.rng("falsify", claim.id, name, k)
        try:
            example = _normalise(table[name](rng, config), k + 1, name)
        except Exception as exc:  # noqa: BLE001 -- reported with the draw, never a pass
            outcome.error = f"draw {k + 1} ({name}) raised {type(exc).__name__}: {exc}"
            outcome.draws = k + 1
            break
        outcome.draws = k + 1
        outcome.examples.append(example)
        if not example.holds:
            outcome.counterexample = example
            break
    outcome.seconds = time.perf_counter() - start
    return outcome


def format_outcome(outcome: FalsifyOutcome) -> str:
    """Human-readable lines for the CLI."""
    if outcome.search == "hypothesis":
        return _format_hypothesis(outcome)
    relaxing = ", ".join(r for r in outcome.relaxations if r != "(unnamed)") or "as stated by each draw"
    head = f"falsify {outcome.claim_id} (relaxing: {relaxing})"
    if outcome.counterexample is not None:
        ex = outcome.counterexample
        lines = [f"{head}: counterexample at draw {ex.draw} (of at most {outcome.max_examples}), "
                 f"after {outcome.seconds:.1f} s",
                 f"  relaxed assumption: {ex.relaxed or 'none: the statement fails within its own assumptions'}",
                 f"  example: {ex.description}"]
        lines += [f"  {key} = {fmt(value)}" for key, value in ex.numbers.items()]
        return "\n".join(lines)
    if outcome.error is not None:
        return f"{head}: stopped, {outcome.error}; no counterexample in the {outcome.draws - 1} draws before it"
    budget = " (time budget reached)" if outcome.stopped_by_time else ""
    return f"{head}: no counterexample found in {outcome.draws} draws{budget} ({outcome.seconds:.1f} s)"


def _format_hypothesis(outcome: FalsifyOutcome) -> str:
    relaxing = ", ".join(outcome.relaxations)
    head = f"falsify {outcome.claim_id} (relaxing: {relaxing}; hypothesis search, seed {outcome.seed})"
    budget = " (time budget reached)" if outcome.stopped_by_time else ""
    rejected = (f"; {outcome.rejected} example(s) rejected because the verifier flagged an assumption, e.g. "
                f"{outcome.rejected_reason[:200]}" if outcome.rejected else "")
    if outcome.counterexample is None and outcome.error is not None:
        return f"{head}: stopped after {outcome.draws} examples: {outcome.error}"
    if outcome.counterexample is None:
        return (f"{head}: no counterexample in {outcome.draws} examples{budget} "
                f"({outcome.seconds:.1f} s){rejected}")
    ex = outcome.counterexample
    numbers = dict(ex.numbers)
    flagged = numbers.pop("flagged", "")
    data = numbers.pop("data", None)
    lines = [f"{head}: minimal counterexample (shrunk) after {outcome.draws} examples, {outcome.seconds:.1f} s{budget}",
             f"  relaxed assumption: {ex.relaxed or 'none: the statement fails within its own assumptions'}",
             f"  example: {ex.description}"]
    if data:
        lines.append(f"  data: {data}")
    lines += [f"  {key} = {fmt(value)}" for key, value in numbers.items() if value is not None]
    silent = flagged.startswith("nothing")
    lines.append(f"  verifier flagged: {flagged}" + ("  <-- SILENT failure: no assumption check fired" if silent
                                                     and ex.relaxed else ""))
    return "\n".join(lines)
