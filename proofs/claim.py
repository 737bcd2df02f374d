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
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from numerics.sweeps import PowerLawFit
from theory.derivation import Derivation
from theory.metrics import relative_error as _relative_error
from theory.validation import check_choice
from proofs.progress import progress  # noqa: F401  -- re-exported for claim authors: progress(iterable, cfg, desc)

__all__ = [
    "Claim", "ClaimResult", "RunConfig", "claim", "REGISTRY", "VERDICTS", "MODES", "relative_error",
    "progress"
]

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
    #: the :class:`theory.assumptions.Assumption` objects that failed (``failed_assumption`` is their text
    #: or the check's own sentence; the JSON keeps that string)
    failed_assumptions: List[Any] = field(default_factory=list)
    #: what ``error`` measures, in a few words (the verify table's legend); "" = the claim's ``error_meaning``
    error_meaning: str = ""

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
    """The headline error of a claim: :func:`theory.metrics.relative_error` in the ``"max"`` norm,
    ``max |measured - predicted| / max |predicted|`` (absolute if predicted is 0), and NaN -- which
    :meth:`ClaimResult.from_error` turns into ``inconclusive`` -- when either side is not finite."""
    m, p = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(p))):
        return float("nan")
    return _relative_error(m, p, norm="max")


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
    #: :class:`theory.assumptions.Assumption` (or ``Relaxed``) objects; a plain string becomes its catalogue
    #: assumption or a stated one without a predicate (:func:`theory.assumptions.as_assumption`)
    assumptions: List[Any] = field(default_factory=list)
    expected: str = "verified"
    reference: str = ""  # a followable source, e.g. "Karakida & Osawa 2020, arXiv:2010.00879 (...)" or "derived here"
    tags: tuple = ()
    #: the architecture / data facts of the claim's own experiment (a ``theory.assumptions.Setting``, a
    #: mapping, or a function ``config -> setting``): :meth:`run` checks every assumption's predicate on it
    setting: Any = None
    #: the counterexample search space (``ngd-verify falsify``): a :class:`proofs.assumption_spaces.AssumptionSpace`
    space: Any = None
    module: str = ""  # the module that defined the check (the registry orders claims by it)
    #: what the result's ``error`` measures, in a few words, e.g. "|fitted slope + 1/2| of the NTK sweep"
    #: (the verify table's legend; a result's own ``error_meaning`` takes precedence)
    error_meaning: str = ""

    def __post_init__(self):
        from theory.assumptions import as_assumption

        check_choice("expected", self.expected, VERDICTS)
        if isinstance(self.assumptions, (str, bytes)) or not isinstance(self.assumptions, (list, tuple)):
            raise TypeError(f"assumptions={self.assumptions!r} is not allowed: expected a list of Assumption objects")
        self.assumptions = [as_assumption(a) for a in self.assumptions]
        if self.space is not None:
            self.set_space(self.space)

    def set_space(self, space):
        """Attach the counterexample search space (an ``AssumptionSpace``; its ``claim_id`` is set to
        this claim's id); returns it."""
        if not (callable(getattr(space, "strategy", None)) and callable(getattr(space, "check", None))):
            raise TypeError(f"space={space!r} is not allowed: expected a proofs.assumption_spaces.AssumptionSpace")
        owner = getattr(space, "claim_id", None)
        if owner not in (None, "", self.id):
            raise ValueError(f"space of claim {owner!r} cannot be attached to claim {self.id!r}")
        space.claim_id = self.id
        self.space = space
        return space

    def setting_for(self, config: RunConfig):
        """The claim's setting under ``config`` (``None`` when the claim provides none)."""
        return self.setting(config) if callable(self.setting) else self.setting

    def check_assumptions(self, config: Optional[RunConfig] = None) -> List[tuple]:
        """``[(assumption, holds)]`` on the claim's setting (``holds``: True/False, None = unknown; an
        empty list when the claim provides no setting).  A list of settings (several experiments)
        gives False if the assumption fails on any, None if unknown on some, True otherwise."""
        setting = self.setting_for(config or RunConfig())
        if setting is None:
            return []
        settings = list(setting) if isinstance(setting, (list, tuple)) else [setting]
        out = []
        for a in self.assumptions:
            values = [a.check(s) for s in settings]
            out.append((a, False if False in values else (None if None in values else True)))
        return out

    def _apply_assumption_checks(self, result: "ClaimResult", config: RunConfig) -> None:
        """Record the predicates on the claim's setting; a stated assumption that fails there (or a
        relaxed one that holds) makes the evidence say nothing about the statement: inconclusive."""
        from theory.assumptions import Relaxed

        try:
            checks = self.check_assumptions(config)
        except Exception as exc:  # noqa: BLE001 -- a broken setting is reported, never a pass
            result.verdict = "inconclusive"
            result.notes = f"assumption checks raised {type(exc).__name__}: {exc} | " + result.notes
            return
        if not checks:
            return
        recorded = result.details.setdefault("assumptions_checked", {})
        for a, holds in checks:
            if holds is not None:
                recorded.setdefault(a.name, bool(holds))
        violated = [a for a, holds in checks if holds is False and not isinstance(a, Relaxed)]
        unrelaxed = [a for a, holds in checks if holds is True and isinstance(a, Relaxed)]
        relaxed = [a.assumption for a, holds in checks if holds is False and isinstance(a, Relaxed)]
        result.failed_assumptions = list(dict.fromkeys([*result.failed_assumptions, *violated, *relaxed]))
        if violated or unrelaxed:
            why = [f"assumption '{a.name}' fails on the claim's own setting" for a in violated]
            why += [f"assumption '{a.name}' is said to be relaxed but holds on the claim's setting" for a in unrelaxed]
            result.verdict = "inconclusive"
            result.failed_assumption = "; ".join(a.message for a in violated) or result.failed_assumption
            result.notes = "; ".join(why) + ": the evidence is outside the statement | " + result.notes
        elif relaxed and not result.failed_assumption and result.verdict != "inconclusive":
            # (an inconclusive result keeps its own reason: e.g. a crash, whose notes cli prints instead)
            result.failed_assumption = "; ".join(a.message for a in relaxed)

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
        self._apply_assumption_checks(result, config)
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
          reference: str = "", tags=(), register: bool = True, setting=None, space=None, error_meaning: str = ""):
    """Decorator turning ``check(config) -> ClaimResult`` into a registered :class:`Claim`.

    ``assumptions``: :class:`theory.assumptions.Assumption` objects (``Relaxed`` for one the claim
    deliberately drops); ``setting``: the facts they are checked on (see :attr:`Claim.setting`);
    ``space``: the counterexample search space (:meth:`Claim.set_space`, :mod:`proofs.falsify`);
    ``error_meaning``: what the result's ``error`` measures (:attr:`Claim.error_meaning`).
    """

    if isinstance(assumptions, (str, bytes)):
        raise TypeError(f"assumptions={assumptions!r} is not allowed: expected a list of Assumption objects")

    def wrap(fn: Callable[[RunConfig], ClaimResult]) -> Claim:
        c = Claim(id=id, title=title, statement=statement, check=fn, assumptions=list(assumptions),
                  expected=expected, reference=reference, tags=tuple(tags), setting=setting, space=space,
                  module=getattr(fn, "__module__", "") or "", error_meaning=error_meaning)
        if register:
            if id in REGISTRY:
                raise ValueError(f"claim id {id!r} is registered twice")
            REGISTRY[id] = c
        return c

    return wrap
