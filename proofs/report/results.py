"""``results.json``: the JSON document of a run, per ``shared/interface.md``.

``{"conventions", "seed", "claims": [{"id", "title", "verdict", "predicted", "measured", "error",
"width", "details", ...}]}`` plus ``mode``, ``environment`` (versions, BLAS, machine, git commit,
timestamp), ``versions``, ``verdict_rules``, ``summary``; each claim also carries ``expected``,
``as_expected``, ``tolerance``, ``failed_assumption``, ``notes``, ``seconds``, ``statement``,
``assumptions``, ``reference``, ``tags``, ``sweeps`` (fits), ``derivation`` (steps with status) and
``series`` (figure data, the schema of :mod:`proofs.figures`).  Every value is strict JSON
(:func:`proofs.report.common.to_jsonable`); the file is written atomically.

>>> summarize([])["counts"]
{'verified': 0, 'refuted': 0, 'conditional': 0, 'inconclusive': 0}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from numerics.sweeps import PowerLawFit
from proofs.claim import VERDICTS, Claim, ClaimResult, RunConfig
from proofs.conventions import conventions
from proofs.environment import environment_record
from proofs.report.common import Pair, atomic_write_text, dumps_strict, to_jsonable

__all__ = ["claim_record", "summarize", "results_document", "write_json"]


def claim_record(claim: Claim, result: ClaimResult) -> Dict[str, Any]:
    """One claim's JSON entry (interface keys first, then the extras)."""
    record = {
        "id": claim.id,
        "title": claim.title,
        "verdict": result.verdict,
        "predicted": result.predicted,
        "measured": result.measured,
        "error": result.error,
        "width": result.width,
        "details": result.details,
        "expected": claim.expected,
        "as_expected": result.verdict == claim.expected,
        "tolerance": result.tolerance,
        "failed_assumption": result.failed_assumption,
        "notes": result.notes,
        "seconds": round(float(result.seconds), 4),
        "statement": claim.statement,
        "assumptions": list(claim.assumptions),
        "reference": claim.reference,
        "tags": list(claim.tags),
        "sweeps": {name: fit.to_dict() if isinstance(fit, PowerLawFit) else fit for name, fit in result.sweeps.items()},
        "derivation": result.derivation.to_dict() if result.derivation is not None else None,
        "series": result.series,
    }
    return to_jsonable(record)


def summarize(pairs: Sequence[Pair]) -> Dict[str, Any]:
    """Counts per verdict, the claims whose verdict differs from the expected one, total seconds."""
    counts = {v: 0 for v in VERDICTS}
    for _, result in pairs:
        counts[result.verdict] += 1
    unexpected = [c.id for c, r in pairs if r.verdict != c.expected]
    return {"claims": len(pairs), "counts": counts, "unexpected": unexpected, "all_as_expected": not unexpected,
            "seconds": round(sum(float(r.seconds) for _, r in pairs), 3)}


def results_document(pairs: Sequence[Pair], cfg: RunConfig, environment: Optional[dict] = None) -> Dict[str, Any]:
    """The JSON document of a run (see the module docstring)."""
    environment = environment if environment is not None else environment_record()
    return to_jsonable({
        "conventions": conventions(),
        "seed": int(cfg.seed),
        "mode": cfg.mode,
        "environment": environment,
        "versions": environment.get("versions", {}),
        "verdict_rules": _rules_parameters(),
        "summary": summarize(pairs),
        "claims": [claim_record(c, r) for c, r in pairs],
    })


def _rules_parameters() -> Dict[str, Any]:
    from proofs.verdicts import rules_parameters

    return rules_parameters()


def write_json(path, document: Mapping) -> Path:
    """Write ``document`` as indented strict JSON to ``path`` atomically."""
    return atomic_write_text(path, dumps_strict(document, indent=2) + "\n")
