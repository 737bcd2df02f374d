"""Counterexample search with a claim's assumptions relaxed (``ngd-verify falsify``): one engine,
hypothesis.

A claim's search space is declared next to the claim, in its module under ``proofs/claims/``
(``my_claim.set_space(AssumptionSpace(...))`` or ``@claim(..., space=...)``; see
:mod:`proofs.assumption_spaces` for the type and the checks, :mod:`proofs.strategies` for the
strategies).  The space's strategy -- every assumption holding (``relax`` ``"none"``, the default)
or one relaxed -- is searched with :func:`hypothesis.find` outside pytest, seeded from the run's
seed (so a run is reproducible), for an example on which the claim's statement fails; the first
one found is **shrunk** to a minimal counterexample (smallest depth, N, widths, outputs, seeds),
printed with its architecture, data summary, measured vs predicted numbers, and the flags the
verifier's own assumption checks raised.  With every assumption holding, an example the verifier
flags for an assumption outside the claim's statement (e.g. relu killing the rank of a layer Gram
at width >= 2N: :class:`theory.assumptions.Flag` of ``"layer Jacobians of full row rank"``) is
outside the assumptions: it is rejected and counted, not reported as a counterexample.
``database`` (a directory) keeps the minimal counterexamples as JSON (one file per claim and
relaxation); they are replayed first on the next run, whatever its seed, and reported if they still
fail.  (Hypothesis' own example database is not used here: it is disabled for seeded runs, and
``falsify`` runs are seeded; hypothesis' storage directory -- where it would create ``.hypothesis/``
-- points into a temporary directory during the search, so nothing is left behind unless asked.)
A claim without a space cannot be falsified: :func:`falsify` raises
``ValueError`` naming the claims that have one.

>>> from hypothesis import strategies as st
>>> from proofs.assumption_spaces import AssumptionSpace, Outcome
>>> from proofs.claim import claim, ClaimResult, RunConfig
>>> space = AssumptionSpace("x^2 >= 0", st.floats(-10, 10), lambda x: Outcome(x * x >= 0, x * x, 0.0))
>>> @claim("demo.square", title="squares are >= 0", statement="x^2 >= 0", register=False, space=space)
... def _sq(cfg):
...     return ClaimResult("verified")
>>> falsify(_sq, RunConfig(), max_examples=5).counterexample is None
True
"""
from __future__ import annotations

import functools
import os
import random
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from proofs.claim import Claim, RunConfig
from proofs.report import fmt


@dataclass
class Example:
    """The (shrunk) counterexample and what it measured."""

    draw: int
    relaxation: str
    description: str
    holds: bool
    numbers: Dict[str, Any] = field(default_factory=dict)
    relaxed: Optional[str] = None
    flags: List[Any] = field(default_factory=list)  # the theory.assumptions.Flag objects raised on it
    relaxed_assumption: Any = None                   # the theory.assumptions.Assumption relaxed (None: none)


@dataclass
class FalsifyOutcome:
    claim_id: str
    draws: int
    seconds: float
    counterexample: Optional[Example] = None
    error: Optional[str] = None
    relaxations: List[str] = field(default_factory=list)
    stopped_by_time: bool = False
    max_examples: int = 0
    rejected: int = 0            # nothing relaxed: examples the verifier flagged (outside the assumptions)
    rejected_reason: str = ""
    seed: int = 0
    search: str = "hypothesis"
    found_at: Optional[int] = None   # the draw at which the first counterexample was found (before shrinking)
    shards: int = 1                  # independent searches the budget was split into (falsify_sharded)
    shard: Optional[int] = None      # the shard whose counterexample is reported
    example: Any = field(default=None, repr=False)   # the shrunk scenario itself (for the database)
    relaxation_draws: Optional[int] = None  # checks made in the relaxation of the counterexample
    #: relaxation name -> why it says nothing: every example the verifier flagged as outside it
    inconclusive_relaxations: Dict[str, str] = field(default_factory=dict)
    #: the search ran but says nothing: every example fell outside the relaxed space (not an error)
    inconclusive: Optional[str] = None


def _check_max_examples(max_examples) -> None:
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples={max_examples!r} is not allowed: expected an integer >= 1")


def falsifiable(claims) -> List[str]:
    """Ids of the claims (an iterable of :class:`Claim`) that have a search space."""
    return sorted(c.id for c in claims if c.space is not None)


def suggestions(claim_id: str, claims) -> str:
    """The one-line message for a ``falsify`` CLAIM_ID that is not one claim's id: for a topic prefix
    or a glob (``ngd.kfac``, ``*.alpha``), *every* claim it selects that has a search space; for an
    unknown id, the closest ids among the claims with a space (all of them when none is close).

    >>> from proofs.claim import claim, ClaimResult
    >>> from proofs.assumption_spaces import AssumptionSpace, Outcome
    >>> from hypothesis import strategies as st
    >>> space = lambda: AssumptionSpace("s", st.just(0), lambda x: Outcome(True))
    >>> cs = [claim(i, title="t", statement="s", register=False, space=space() if i != "t.c" else None)(
    ...       lambda cfg: ClaimResult("verified")) for i in ("t.a", "t.b", "t.c", "u.d")]
    >>> suggestions("t", cs)
    "'t' selects 3 claims, falsify takes one claim id; those with a search space: t.a, t.b"
    """
    import difflib

    from proofs.registry import _matches

    claims = list(claims)
    names = falsifiable(claims)
    selected = [c for c in claims if _matches(str(claim_id), c.id)]
    if selected:
        with_space = falsifiable(selected)
        return (f"{claim_id!r} selects {len(selected)} claim{'s' if len(selected) != 1 else ''}, falsify takes one "
                f"claim id; " + (f"those with a search space: {', '.join(with_space)}" if with_space else
                                 f"none of them has a search space; claims with one: {', '.join(names) or 'none'}"))
    close = difflib.get_close_matches(str(claim_id), names, n=5, cutoff=0.5)
    topic = str(claim_id).rsplit(".", 1)[0]
    near = sorted(set(close) | {n for n in names if n.startswith(topic + ".")}) if "." in str(claim_id) else close
    return (f"unknown claim id {claim_id!r}; claims with a search space: "
            + (", ".join(near) if near else ", ".join(names) or "none"))


def spaces(claims=None) -> Dict[str, Any]:
    """``{claim id: AssumptionSpace}`` of the claims that have one (default: every registered claim)."""
    if claims is None:
        from proofs.registry import load_claims

        claims = load_claims()
    return {c.id: c.space for c in claims if c.space is not None}


def falsify(claim: Claim, config: Optional[RunConfig] = None, max_examples: int = 50,
            relax: Optional[Sequence[str]] = None, max_seconds: float = 120.0, database=None,
            others=None, shards: int = 1, execution=None) -> FalsifyOutcome:
    """Search for a counterexample to ``claim`` in its space (:attr:`Claim.space`): see
    :func:`falsify_hypothesis`.  ``relax``: assumption names (default: none relaxed); ``database``: a
    directory keeping counterexamples.  A claim without a space is a ``ValueError`` naming the claims
    of ``others`` (default: the registry) that have one.

    ``shards = K > 1`` splits the budget into ``K`` independent searches (:func:`falsify_sharded`), run
    serially or, with a distributed ``execution`` (:class:`proofs.distributed.Execution`), as Dask tasks;
    the outcome depends on ``K`` and the seed only, never on where or in which order the shards ran."""
    if not isinstance(claim, Claim):
        raise TypeError(f"claim={claim!r} is not allowed: expected a proofs.claim.Claim")
    config = config or RunConfig()
    _check_max_examples(max_examples)
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= max_examples:
        raise ValueError(f"shards={shards!r} is not allowed: expected an integer in 1 .. max_examples = {max_examples}")
    if claim.space is None:
        if others is None:
            from proofs.registry import load_claims

            others = load_claims()
        names = falsifiable(others)
        raise ValueError(f"claim {claim.id!r} has no falsify search space; claims with one: "
                         + (", ".join(names) if names else "none"))
    if shards > 1 or (execution is not None and getattr(execution, "distributed", False)):
        return falsify_sharded(claim, config, max_examples, relax, max_seconds, database, shards, execution)
    return falsify_hypothesis(claim.id, claim.space, config, max_examples, relax, max_seconds, database)


def shard_budgets(max_examples: int, shards: int) -> List[int]:
    """``max_examples`` split over ``shards`` searches as evenly as possible (the first ones get the
    remainder).

    >>> shard_budgets(50, 4)
    [13, 13, 12, 12]
    """
    return [max_examples // shards + (1 if i < max_examples % shards else 0) for i in range(shards)]


def _shard_task(ref, mode: str, seed: int, shard: int, shards: int, budget: int, relax, max_seconds: float):
    """One shard of a sharded search, on a Dask worker (the claim resolved there by id)."""
    from proofs.distributed import resolve_claim

    claim = resolve_claim(ref)
    return falsify_hypothesis(claim.id, claim.space, RunConfig(mode=mode, seed=seed), budget, relax, max_seconds,
                              None, shard=(shard, shards))


def falsify_sharded(claim: Claim, config: RunConfig, max_examples: int = 50, relax: Optional[Sequence[str]] = None,
                    max_seconds: float = 120.0, database=None, shards: int = 1, execution=None) -> FalsifyOutcome:
    """``shards`` independent hypothesis searches of :func:`shard_budgets` examples each, shard ``i`` seeded
    from ``(claim, relaxation, "shard", i)`` -- the same searches whether they run in this process (no
    ``execution``, or a serial one) or as Dask tasks (``--workers`` / ``--scheduler``).  With ``database``,
    kept counterexamples are replayed first (in this process) and a new one is stored.

    The reported counterexample is that of the earliest relaxation (in ``relax`` order) any shard found
    one for, from the lowest shard index among those; ``draws``/``rejected`` add up over the shards,
    ``seconds`` is the wall time.  A shard that crashed is reported like the serial search's crash."""
    names = _relaxation_names(relax)
    start = time.perf_counter()
    db = _database_dir(database)
    if db is not None:
        replayed = _replay_only(claim.id, claim.space, config, names, db)
        if replayed is not None:
            replayed.seconds = time.perf_counter() - start
            replayed.shards = shards
            return replayed
    budgets = shard_budgets(max_examples, shards)
    if execution is not None and getattr(execution, "distributed", False):
        from proofs.distributed import claim_ref, run_tasks

        ref = claim_ref(claim)
        tasks = [(f"{claim.id} falsify shard {i + 1}/{shards}",
                  (ref, config.mode, int(config.seed), i, shards, budgets[i], list(names), max_seconds))
                 for i in range(shards)]
        parts = [_rehydrate(o) for o in run_tasks(execution, _shard_task, tasks)]
    else:
        parts = [falsify_hypothesis(claim.id, claim.space, config, budgets[i], list(names), max_seconds, None,
                                    shard=(i, shards)) for i in range(shards)]
    merged = FalsifyOutcome(claim.id, sum(o.draws for o in parts), 0.0, relaxations=names,
                            max_examples=max_examples, seed=int(config.seed), shards=shards)
    merged.rejected = sum(o.rejected for o in parts)
    merged.rejected_reason = next((o.rejected_reason for o in parts if o.rejected_reason), "")
    merged.stopped_by_time = any(o.stopped_by_time for o in parts)
    crashed = [o for o in parts if o.error is not None]
    found = [(names.index(o.counterexample.relaxation) if o.counterexample.relaxation in names else len(names), i, o)
             for i, o in enumerate(parts) if o.counterexample is not None]
    if crashed and not found:
        merged.error = crashed[0].error
    elif found:
        _, index, best = min(found, key=lambda t: (t[0], t[1]))
        merged.counterexample = best.counterexample
        merged.found_at = best.found_at
        merged.relaxation_draws = best.relaxation_draws
        merged.shard = index if shards > 1 else None
        if db is not None and best.example is not None:
            _store(db, claim.id, best.counterexample.relaxation, best.example)
    else:   # no counterexample: a relaxation says nothing only if it said nothing in every shard
        merged.inconclusive_relaxations = {n: parts[0].inconclusive_relaxations[n] for n in names
                                           if all(n in o.inconclusive_relaxations for o in parts)}
        if len(merged.inconclusive_relaxations) == len(names):
            merged.inconclusive = (f"every one of the {merged.draws} examples (all shards) was flagged by the verifier "
                                   f"as outside the relaxed assumptions (e.g. {merged.rejected_reason[:160]}): the "
                                   "search says nothing about the claim")
    merged.seconds = time.perf_counter() - start
    return merged


def _replay_only(claim_id: str, space, config: RunConfig, names: List[str], db) -> Optional[FalsifyOutcome]:
    """The outcome of replaying the kept counterexamples of every relaxation (no search), ``None`` when
    none of them is still a counterexample."""
    with _private_hypothesis_storage():
        out = _falsify_hypothesis(claim_id, space, config, 1, names, float("inf"), db, search=False)
    return out if out.counterexample is not None else None


def _relaxation_names(relax) -> List[str]:
    if isinstance(relax, str) or hasattr(relax, "name"):
        relax = [relax]
    return [getattr(r, "name", r) for r in relax] if relax else ["none"]


def _rehydrate(outcome: FalsifyOutcome) -> FalsifyOutcome:
    """An outcome computed in another process: its assumptions are copies; put back this process's
    catalogue objects (by name) so identity checks (``Flag.violates``) keep working."""
    from theory.assumptions import CATALOGUE, Flag

    def same(a):
        return CATALOGUE.get(getattr(a, "name", None), a) if a is not None else None

    ex = outcome.counterexample
    if ex is not None:
        ex.relaxed_assumption = same(ex.relaxed_assumption)
        ex.flags = [Flag(f.code, f.message, same(f.assumption), tuple(same(a) for a in f.causes))
                    if isinstance(f, Flag) else f for f in ex.flags]
    return outcome


def falsify_hypothesis(claim_id: str, space, config: RunConfig, max_examples: int = 50,
                       relax: Optional[Sequence[str]] = None, max_seconds: float = 120.0,
                       database=None, shard: Optional[Tuple[int, int]] = None) -> FalsifyOutcome:
    """Hypothesis search over ``space`` (an :class:`~proofs.assumption_spaces.AssumptionSpace`)
    with each relaxation in ``relax`` in turn (default ``["none"]``); stops at the first
    relaxation with a counterexample, shrunk to a minimal one.

    Deterministic for a given ``config.seed`` (and empty database).  ``max_seconds`` bounds the
    search and the shrinking: past it, examples not yet evaluated count as passing, evaluated ones
    keep their cached verdict (so the minimal example found so far is still reported).
    ``shard = (i, K)`` with ``K > 1`` seeds the search from ``(claim, relaxation, "shard", i)`` instead
    (one of :func:`falsify_sharded`'s independent searches).
    """
    _check_max_examples(max_examples)
    with _private_hypothesis_storage():
        return _falsify_hypothesis(claim_id, space, config, max_examples, relax, max_seconds, database, shard)


@contextmanager
def _private_hypothesis_storage():
    """Point hypothesis' storage (its example database, the ``constants`` cache it writes while
    generating) into a temporary directory removed afterwards, so that a search leaves no
    ``.hypothesis/`` in the current directory.  Counterexamples are kept only where asked
    (``database``, a directory of JSON files).  Left alone when ``HYPOTHESIS_STORAGE_DIRECTORY`` is
    set (the user chose where hypothesis writes)."""
    import hypothesis.configuration as configuration

    setter = getattr(configuration, "set_hypothesis_home_dir", None)
    key = "__hypothesis_home_directory"
    if setter is None or os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") or key not in vars(configuration):
        yield
        return
    previous = vars(configuration)[key]
    with tempfile.TemporaryDirectory(prefix="ngd-verify-hypothesis-") as home:
        setter(home)
        try:
            yield
        finally:
            setter(previous)


def _falsify_hypothesis(claim_id: str, space, config: RunConfig, max_examples: int,
                        relax: Optional[Sequence[str]], max_seconds: float, database,
                        shard: Optional[Tuple[int, int]] = None, search: bool = True) -> FalsifyOutcome:
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    names = _relaxation_names(relax)  # Assumption objects or their names
    strategies = {name: space.strategy(name) for name in names}  # ValueError naming the allowed ones
    db = _database_dir(database)
    outcome = FalsifyOutcome(claim_id, 0, 0.0, relaxations=names, max_examples=max_examples, seed=int(config.seed),
                             shards=shard[1] if shard is not None else 1)
    start = time.perf_counter()
    stop = start + max_seconds
    for name in names:
        cache = {}
        relaxed = name != "none"
        counts = {"draws": 0, "rejected": 0}          # this relaxation's checks and rejections

        def is_counterexample(scenario, cache=cache, relaxed=relaxed, counts=counts):
            if scenario in cache:
                return cache[scenario][0]
            if time.perf_counter() > stop:
                outcome.stopped_by_time = True
                return False
            outcome.draws += 1
            counts["draws"] += 1
            try:
                result = space.check(scenario)
            except Exception as exc:  # noqa: BLE001 -- a crash is searched for (and shrunk), never a pass
                from proofs.assumption_spaces import Outcome

                cache[scenario] = (True, Outcome(False, numbers={"crash": f"{type(exc).__name__}: {exc}"}))
                return True
            unexpected = space.unexpected_flags(result)
            if relaxed:
                # a counterexample to "the claim holds without <relaxed>" must keep every other assumption:
                # a flag naming another (non-relaxed) assumption puts the example outside the relaxed space
                # (e.g. width < N relaxed, but an input on which every layer-1 relu unit is inactive makes
                # the NTK singular: that is the "NTK positive definite" assumption failing, not the width's)
                # the flag's named causes decide when the verifier found them (Flag.causes: e.g. a singular
                # layer Gram caused by a silent input is "no silent inputs", not the width)
                target = space.relaxed_assumptions.get(name)
                unexpected = [f for f in unexpected if f.attributed and not f.explained_by(target)]
            if unexpected:  # the verifier says a (non-relaxed) assumption fails: outside the space
                outcome.rejected += 1
                counts["rejected"] += 1
                counts.setdefault("reason", unexpected[0].message)
                outcome.rejected_reason = outcome.rejected_reason or unexpected[0].message
                verdict = False
            else:
                verdict = not result.holds
            if verdict and "found_at" not in counts:
                counts["found_at"] = counts["draws"]
            cache[scenario] = (verdict, result)
            return verdict

        replayed = _replay(db, claim_id, name, is_counterexample)
        if replayed is not None:
            result = cache[replayed][1]
            outcome.counterexample = Example(outcome.draws, name, _describe(replayed) + " [replayed from the database]",
                                             False, _with_data(result.summary(), replayed),
                                             None if name == "none" else name, list(result.flags),
                                             getattr(space, "relaxed_assumptions", {}).get(name))
            outcome.example = replayed
            outcome.found_at = outcome.relaxation_draws = counts["draws"]
            break
        if not search:   # replay only (falsify_sharded's first pass)
            continue
        strategy = strategies[name]
        if shard is not None and shard[0] > 0:
            # hypothesis tries the minimal example first whatever the seed: only shard 0 checks it
            strategy = strategy.filter(functools.partial(_differs, _minimal_example(strategy)))
        options = settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                           suppress_health_check=list(HealthCheck), print_blob=False,
                           phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
        keys = ("falsify", claim_id, name) + (("shard", shard[0]) if shard is not None and shard[1] > 1 else ())
        rng = random.Random(config.sub_seed(*keys))
        try:
            found = find(strategy, is_counterexample, settings=options, random=rng,
                         database_key=f"ngd-verify falsify {claim_id} relax={name}".encode())
        except NoSuchExample:
            if counts["draws"] and counts["rejected"] == counts["draws"]:
                # this relaxation says nothing; the next ones are still searched
                outcome.inconclusive_relaxations[name] = (
                    f"every one of the {counts['draws']} examples of relaxation {name!r} was flagged by the verifier "
                    f"as outside the assumptions (e.g. {counts['reason'][:160]})")
            continue
        except Unsatisfiable as exc:
            outcome.error = f"hypothesis could not generate valid examples for relaxation {name!r} ({exc})"
            break
        result = cache[found][1]
        if "crash" in result.numbers:
            outcome.error = (f"the check raised {result.numbers['crash']} on (minimal example) {_describe(found)}")
            break
        _store(db, claim_id, name, found)
        outcome.example = found
        outcome.found_at, outcome.relaxation_draws = counts.get("found_at"), counts["draws"]
        outcome.counterexample = Example(outcome.draws, name, _describe(found), False,
                                         _with_data(result.summary(), found), None if name == "none" else name,
                                         list(result.flags), getattr(space, "relaxed_assumptions", {}).get(name))
        break
    if (outcome.counterexample is None and outcome.error is None and search
            and len(outcome.inconclusive_relaxations) == len(names)):
        outcome.inconclusive = ("; ".join(outcome.inconclusive_relaxations.values())
                                + ": the search says nothing about the claim")
    outcome.seconds = time.perf_counter() - start
    return outcome


def _minimal_example(strategy):
    """The example hypothesis generates first (the shrink-minimal one), without checking anything."""
    from hypothesis import HealthCheck, Phase, find, settings

    return find(strategy, lambda _: True, settings=settings(max_examples=1, database=None, deadline=None,
                                                             phases=[Phase.generate, Phase.shrink],
                                                             suppress_health_check=list(HealthCheck)))


def _differs(minimal, example) -> bool:
    return example != minimal


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
    from proofs.strategies import KernelCase, MatrixCase, Scenario

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


def format_outcome(outcome: FalsifyOutcome) -> str:
    """Human-readable lines for the CLI."""
    return _format_hypothesis(outcome)


def _examples(n: int) -> str:
    return f"{n} example" + ("" if n == 1 else "s")


def _format_hypothesis(outcome: FalsifyOutcome) -> str:
    relaxing = ", ".join(outcome.relaxations)
    sizes = "/".join(map(str, sorted(set(shard_budgets(outcome.max_examples, outcome.shards)), reverse=True)))
    search = ("hypothesis search" if outcome.shards == 1 else
              f"{outcome.shards} independent hypothesis searches of {sizes} example{'s' if sizes != '1' else ''}")
    head = f"falsify {outcome.claim_id} (relaxing: {relaxing}; {search}, seed {outcome.seed})"
    budget = " (time budget reached)" if outcome.stopped_by_time else ""
    rejected = (f"; {outcome.rejected} example(s) rejected because the verifier flagged an assumption, e.g. "
                f"{outcome.rejected_reason[:200]}" if outcome.rejected else "")
    if outcome.counterexample is None and outcome.error is not None:
        return f"{head}: stopped after {_examples(outcome.draws)}: {outcome.error}"
    if outcome.counterexample is None and outcome.inconclusive is not None:
        return f"{head}: inconclusive after {_examples(outcome.draws)} ({outcome.seconds:.1f} s): {outcome.inconclusive}"
    if outcome.counterexample is None:
        partly = "".join(f"; inconclusive: {t}" for t in outcome.inconclusive_relaxations.values())
        return (f"{head}: no counterexample in {_examples(outcome.draws)}{budget} "
                f"({outcome.seconds:.1f} s){rejected}{partly}")
    ex = outcome.counterexample
    numbers = dict(ex.numbers)
    flagged = numbers.pop("flagged", "")
    data = numbers.pop("data", None)
    own = outcome.draws if outcome.relaxation_draws is None else outcome.relaxation_draws
    where = "" if outcome.shard is None else f" of shard {outcome.shard + 1}"
    if outcome.found_at is not None and own > outcome.found_at:
        when = (f"found at example {outcome.found_at}{where}, shrunk in {own - outcome.found_at} more "
                f"check{'s' if own - outcome.found_at != 1 else ''}")
    elif outcome.found_at is not None:
        when = f"found at example {outcome.found_at}{where}"
    else:
        when = f"after {_examples(outcome.draws)}"
    lines = [f"{head}: minimal counterexample (shrunk), {when}, {outcome.seconds:.1f} s{budget}",
             f"  relaxed assumption: {ex.relaxed or 'none: the statement fails within its own assumptions'}",
             f"  example: {ex.description}"]
    if data:
        lines.append(f"  data: {data}")
    lines += [f"  {key} = {fmt(value)}" for key, value in numbers.items() if value is not None]
    silent = flagged.startswith("nothing")
    lines.append(f"  verifier flagged: {flagged}" + ("  <-- SILENT failure: no assumption check fired" if silent
                                                     and ex.relaxed else ""))
    return "\n".join(lines)


__all__ = [
    "Example",
    "FalsifyOutcome",
    "falsifiable",
    "suggestions",
    "spaces",
    "falsify",
    "falsify_hypothesis",
    "format_outcome",
]
