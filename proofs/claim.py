"""The unit of verification: a :class:`Claim`, how it is run, and the :class:`ClaimResult` it gives.

A claim states something (LaTeX), lists its assumptions, and owns a ``check`` function that
derives the prediction symbolically (``theory``), measures it at finite width (``numerics``) and
*computes* a verdict from the evidence with stated tolerances.  ``expected`` is the verdict the
claim's own statement implies (``"verified"`` for the paper's statements; a registered statement
known to be false -- e.g. a coefficient the literature disagrees on -- says ``"refuted"``).
``ngd-verify verify`` exits 1 when any verdict differs from ``expected``.

Claims register themselves with the :func:`claim` decorator in modules under ``proofs/claims/``:

>>> from proofs.claim import claim, ClaimResult, RunConfig
>>> @claim("demo.two_plus_two", title="2 + 2 = 4", statement=r"2 + 2 = 4", register=False)
... def _demo(cfg):
...     return ClaimResult.from_error(predicted=4, measured=2 + 2, tolerance=0)
>>> _demo.run(RunConfig()).verdict
'verified'
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import numpy as np

from numerics.sweeps import PowerLawFit
from theory.derivation import Derivation
from theory.validation import check_choice
from proofs.progress import progress  # noqa: F401  -- re-exported for claim authors: progress(iterable, cfg, desc)

VERDICTS = ("verified", "refuted", "conditional", "inconclusive")
MODES = ("quick", "full")


@dataclass(frozen=True)
class RunConfig:
    """How a verification run is done: budget (``quick``/``full``), master seed, progress bars."""

    mode: str = "quick"
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not allowed: expected an integer >= 0")

    @property
    def full(self) -> bool:
        return self.mode == "full"

    def pick(self, quick, full):
        """The quick or the full variant of a setting."""
        return full if self.full else quick

    def rng(self, *keys) -> np.random.Generator:
        """A generator determined by the master seed and the string keys (claim id, purpose, width...).

        Different keys give independent streams; the same keys always give the same stream.
        """
        digest = hashlib.sha256("/".join(map(str, keys)).encode()).digest()
        words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
        return np.random.default_rng(np.random.SeedSequence([int(self.seed), *words]))

    def sub_seed(self, *keys) -> int:
        """An integer seed derived like :meth:`rng` (for APIs that take a seed, e.g. ``MLP``)."""
        return int(self.rng(*keys).integers(0, 2**31 - 1))


@dataclass
class ClaimResult:
    """The outcome of checking one claim.

    ``predicted``/``measured``/``error``/``width`` are the headline numbers of the table
    (``width`` is the largest width measured, ``None`` for purely symbolic claims).  ``details``
    holds every further number (JSON-serialisable); ``sweeps`` the width sweeps with their fitted
    slopes; ``series`` named numeric series for figures; ``failed_assumption`` says which
    assumption broke when the verdict is not ``verified``.
    """

    verdict: str
    predicted: Any = None
    measured: Any = None
    error: Optional[float] = None
    width: Optional[int] = None
    tolerance: Optional[float] = None
    details: Dict[str, Any] = field(default_factory=dict)
    derivation: Optional[Derivation] = None
    sweeps: Dict[str, PowerLawFit] = field(default_factory=dict)
    series: Dict[str, Any] = field(default_factory=dict)
    failed_assumption: Optional[str] = None
    notes: str = ""
    seconds: float = 0.0

    def __post_init__(self):
        check_choice("verdict", self.verdict, VERDICTS)

    @classmethod
    def from_error(cls, predicted, measured, tolerance: float, error: Optional[float] = None,
                   **kwargs) -> "ClaimResult":
        """Verdict from one comparison: ``verified`` iff ``error <= tolerance``.

        ``error`` defaults to the relative error ``|measured - predicted| / max(|predicted|, 1e-300)``
        (elementwise max for arrays).  A non-finite error is ``inconclusive``, never ``verified``.
        """
        if error is None:
            error = relative_error(measured, predicted)
        if not np.isfinite(error):
            verdict = "inconclusive"
        else:
            verdict = "verified" if error <= tolerance else "refuted"
        return cls(verdict=verdict, predicted=_jsonable(predicted), measured=_jsonable(measured),
                   error=float(error), tolerance=float(tolerance), **kwargs)


def relative_error(measured, predicted) -> float:
    """``max |measured - predicted| / max |predicted|`` (plain absolute error if predicted is 0)."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    scale = float(np.max(np.abs(p))) if p.size else 0.0
    diff = float(np.max(np.abs(m - p))) if m.size else 0.0
    return diff / scale if scale > 0 else diff


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{value.shape}"
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


@dataclass
class Claim:
    """A registered, checkable statement."""

    id: str
    title: str
    statement: str
    check: Callable[[RunConfig], ClaimResult]
    assumptions: List[str] = field(default_factory=list)
    expected: str = "verified"
    reference: str = ""  # where in the paper / paper.md it comes from (e.g. "R3", "paper.md §3")
    tags: tuple = ()
    # Optional counterexample search (``ngd-verify falsify``): a function ``(rng, config) ->
    # (example_description, holds, numbers)`` drawing one example over *relaxed* assumptions, or a
    # mapping ``{relaxed assumption: such a function}``; see :mod:`proofs.falsify`.
    falsifier: Union[None, Callable, Mapping[str, Callable]] = None
    module: str = ""  # the module that defined the check (the registry orders claims by it)

    def __post_init__(self):
        check_choice("expected", self.expected, VERDICTS)
        if self.falsifier is not None and not (callable(self.falsifier) or isinstance(self.falsifier, Mapping)):
            raise TypeError(f"falsifier={self.falsifier!r} is not allowed: expected a callable "
                            "(rng, config) -> (description, holds, numbers) or a mapping of them")

    def set_falsifier(self, fn: Callable, relaxes: Optional[str] = None) -> Callable:
        """Attach a falsifier after the claim is defined; usable as a decorator.

        ``relaxes`` names the assumption the draws relax; several calls with different
        ``relaxes`` accumulate (``falsify --relax NAME`` picks one).
        """
        if not callable(fn):
            raise TypeError(f"fn={fn!r} is not allowed: expected a callable (rng, config) -> (description, holds, numbers)")
        if relaxes is None and self.falsifier is None:
            self.falsifier = fn
        else:
            current = self.falsifier
            table = dict(current) if isinstance(current, Mapping) else ({} if current is None else {"(unnamed)": current})
            table[relaxes or "(unnamed)"] = fn
            self.falsifier = table
        return fn

    def run(self, config: Optional[RunConfig] = None) -> ClaimResult:
        """Check the claim; an exception inside the check becomes an ``inconclusive`` result
        whose notes carry the error (a crash is never a pass)."""
        config = config or RunConfig()
        start = time.perf_counter()
        try:
            result = self.check(config)
            if not isinstance(result, ClaimResult):
                raise TypeError(f"claim {self.id} check returned {type(result).__name__}, not ClaimResult")
        except Exception as exc:  # noqa: BLE001 -- reported, not swallowed
            import traceback  # the last frames say where, for the report's details
            result = ClaimResult(verdict="inconclusive", notes=f"check raised {type(exc).__name__}: {exc}",
                                 details={"traceback": traceback.format_exc(limit=-4).strip().splitlines()})
        if self.expected == "refuted" and result.verdict == "refuted" and not any(
                c.get("role") == "control" and c.get("verdict") == "verified"
                for c in result.details.get("checks", []) if isinstance(c, dict)):
            # a negative result without a positive control cannot tell a broken experiment from a
            # true refutation (proofs.verdicts.control)
            result.verdict = "inconclusive"
            result.notes = ("refutation not gated: the claim carries no verified positive control | "
                            + result.notes)
        if self.expected == "conditional" and result.verdict == "conditional" and not any(
                c.get("assumption") is not None and c.get("verdict") in ("refuted", "conditional")
                or c.get("verdict") == "conditional"
                for c in result.details.get("checks", []) if isinstance(c, dict)):
            # "holds where the assumption holds, fails where it does not" needs evidence of the failure,
            # not only an assumption flagged False
            result.verdict = "inconclusive"
            result.notes = ("conditional without evidence: no check shows the statement failing where the "
                            f"assumption ({result.failed_assumption}) fails | " + result.notes)
            result.failed_assumption = None
        result.seconds = time.perf_counter() - start
        return result

    @property
    def summary(self) -> str:
        return self.title


REGISTRY: Dict[str, Claim] = {}


def claim(id: str, *, title: str, statement: str, assumptions=(), expected: str = "verified",
          reference: str = "", tags=(), register: bool = True, falsifier=None):
    """Decorator turning ``check(config) -> ClaimResult`` into a registered :class:`Claim`.

    ``falsifier`` (optional): see :attr:`Claim.falsifier` and :mod:`proofs.falsify`.
    """

    def wrap(fn: Callable[[RunConfig], ClaimResult]) -> Claim:
        c = Claim(id=id, title=title, statement=statement, check=fn, assumptions=list(assumptions),
                  expected=expected, reference=reference, tags=tuple(tags), falsifier=falsifier,
                  module=getattr(fn, "__module__", "") or "")
        if register:
            if id in REGISTRY:
                raise ValueError(f"claim id {id!r} is registered twice")
            REGISTRY[id] = c
        return c

    return wrap
