"""Counterexample search with a claim's assumptions relaxed (``ngd-verify falsify``).

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


def falsify(claim: Claim, config: Optional[RunConfig] = None, max_examples: int = 50,
            relax: Optional[Sequence[str]] = None, max_seconds: float = 120.0) -> FalsifyOutcome:
    """Draw up to ``max_examples`` examples (cycling through the relaxations) and stop at the first
    counterexample or when ``max_seconds`` have passed."""
    config = config or RunConfig()
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples={max_examples!r} is not allowed: expected an integer >= 1")
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
