"""Helpers shared by every output format of the report: strict JSON values, atomic writes, and the
short renderings of numbers, names and tables' rows.

* :func:`to_jsonable` / :func:`dumps_strict` -- strict JSON: no NaN/Infinity tokens.  Non-finite
  floats become the strings ``"nan"``, ``"inf"``, ``"-inf"`` (a singular system's condition number
  stays legible), numpy/SymPy values become plain numbers (exact SymPy integers stay integers; other
  SymPy expressions become their string), unknown objects their ``str``.
* :func:`atomic_write_text` / :func:`atomic_write_bytes` -- write a temporary file in the target's
  directory, flush + fsync, then ``os.replace``: readers never see a half-written file.
* :func:`fmt`, :func:`slug`, :func:`statement_kind` and the row builders the Markdown and LaTeX
  writers share (:func:`flat_details`, :func:`fit_row`, :func:`check_reason`, :func:`env_rows`).

>>> dumps_strict({"x": float("nan"), "y": [1.0, float("inf")]})
'{"x": "nan", "y": [1.0, "inf"]}'
>>> fmt(0.000123456), fmt(list(range(10))), slug("ngd.kfac: alpha")
('0.0001235', '[10 values, 0 .. 9]', 'ngd-kfac-alpha')
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import sympy as sp

from numerics.sweeps import PowerLawFit
from proofs.claim import Claim, ClaimResult

__all__ = ["Pair", "to_jsonable", "dumps_strict", "atomic_write_bytes", "atomic_write_text", "fmt", "slug",
           "statement_kind", "flat_details", "fit_row", "check_reason", "env_rows", "CONTROL", "VERDICT_WORDS",
           "verdict_sentence", "what_failed", "tidy_key"]

Pair = Tuple[Claim, ClaimResult]

#: Control characters: never valid in a report; shown as "?".
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# ----------------------------------------------------------------------------- strict JSON
def to_jsonable(obj: Any) -> Any:
    """A structure of dict/list/str/int/float/bool/None with only finite floats (see module doc)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        if math.isfinite(x):
            return x
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(obj, (complex, np.complexfloating)):
        return {"real": to_jsonable(obj.real), "imag": to_jsonable(obj.imag)}
    if isinstance(obj, sp.Basic):
        if obj.is_Integer:
            return int(obj)
        if obj.is_number and obj.is_real and not obj.is_Rational:
            try:
                return to_jsonable(float(obj))
            except (TypeError, ValueError):
                return str(obj)
        if isinstance(obj, sp.MatrixBase):
            return [[to_jsonable(e) for e in obj.row(i)] for i in range(obj.rows)]
        return str(obj)  # rationals keep their exact form ("1/3"); symbolic expressions their text
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()] if obj.ndim else to_jsonable(obj.item())
    if isinstance(obj, PowerLawFit):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    return str(obj)


def dumps_strict(obj: Any, indent: Optional[int] = None) -> str:
    """``json.dumps`` of :func:`to_jsonable` with ``allow_nan=False`` (strict RFC 8259 JSON)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)


# ----------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    The directory must exist (``ValueError`` naming it otherwise); on any error the temp file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- formatting
def fmt(value: Any, limit: int = 160) -> str:
    """A short human rendering of a number / list / value for tables."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    if isinstance(value, sp.Basic):
        return str(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        seq = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(seq) <= 6:
            text = "[" + ", ".join(fmt(v, 40) for v in seq) + "]"
        else:
            try:
                arr = np.asarray(seq, dtype=float)
                text = f"[{len(seq)} values, {np.nanmin(arr):.4g} .. {np.nanmax(arr):.4g}]"
            except (TypeError, ValueError):
                text = f"[{len(seq)} values]"
    elif isinstance(value, Mapping):
        text = json.dumps(to_jsonable(value), ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def slug(text: str) -> str:
    """A file-name-safe slug (letters, digits, hyphens) -- safe for LaTeX \\includegraphics too."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-")
    return s or "x"


_MATHY = re.compile(r"[\\^_=<>{}]")


def statement_kind(statement: str) -> str:
    """How a statement string is meant: ``"mixed"`` (text with ``$...$`` math), ``"math"`` (one
    LaTeX formula, shown as a display) or ``"text"`` (plain prose)."""
    if "$" in statement:
        return "mixed"
    return "math" if _MATHY.search(statement) else "text"


# ----------------------------------------------------------------------------- rows shared by the writers
_LONG_FLOAT = re.compile(r"\d+\.\d{7,}")


def tidy_key(key: Any) -> str:
    """A details key as printed: float round-off in names shortened (``eta_2.0999999999999996`` ->
    ``eta_2.1``).

    >>> tidy_key("linearised_growth_eta_2.0999999999999996_over_alpha")
    'linearised_growth_eta_2.1_over_alpha'
    """
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group()):.6g}", str(key))


def flat_details(details: Mapping, skip=("checks", "assumptions_checked")) -> List[Tuple[str, Any]]:
    """``(key, value)`` rows of a claim's details, one level of nesting flattened, at most 60."""
    rows: List[Tuple[str, Any]] = []
    for key, value in details.items():
        if key in skip:
            continue
        if isinstance(value, Mapping) and value and len(value) <= 12:
            rows += [(tidy_key(f"{key}.{k}"), v) for k, v in value.items()]
        else:
            rows.append((tidy_key(key), value))
    return rows[:60]


#: Each verdict in words (the first sentence of a claim's page).
VERDICT_WORDS = {
    "verified": "the evidence supports the statement: every derivation step holds and every measurement agrees "
                "with the prediction within its stated tolerance",
    "refuted": "the evidence contradicts the statement",
    "conditional": "the statement holds only where its assumptions hold; here an assumption fails, and the "
                   "failure is shown",
    "inconclusive": "the evidence decides neither way (a sweep could not separate the statement from its "
                    "alternative within its budget)",
}


def verdict_sentence(claim: Claim, result: ClaimResult) -> str:
    """``"Verified: the evidence supports ... As expected."`` -- the verdict in words and how it
    relates to the verdict the claim expects.

    >>> from proofs.claim import claim as make
    >>> c = make("d.x", title="t", statement="s", expected="refuted", register=False)(lambda cfg: None)
    >>> verdict_sentence(c, ClaimResult("refuted")).split(". ")[1][:62]
    'This is the expected verdict: the registry lists the statement'
    """
    text = f"{result.verdict.capitalize()}: {VERDICT_WORDS.get(result.verdict, result.verdict)}."
    if result.verdict != claim.expected:
        return text + f" This differs from the expected verdict ({claim.expected})."
    if claim.expected == "refuted":
        return text + (" This is the expected verdict: the registry lists the statement as false (a coefficient the "
                       "literature disagrees on, or a deliberately false control).")
    if claim.expected == "conditional":
        return text + " This is the expected verdict: the claim is run where its assumption fails."
    return text + " As expected."


def what_failed(result: ClaimResult) -> List[str]:
    """What failed, in words: the failed assumption, then every sub-verdict that is not verified
    (its name, verdict and reason); an empty list when nothing failed."""
    out = []
    if result.failed_assumption:
        out.append(f"Assumption: {result.failed_assumption}")
    checks = result.details.get("checks") if isinstance(result.details, Mapping) else None
    for c in checks or []:
        if isinstance(c, Mapping) and c.get("verdict") not in (None, "verified"):
            role = " (control)" if c.get("role") == "control" else ""
            out.append(f"{c.get('name')}{role}: {c.get('verdict')} -- {check_reason(c)}")
    if result.derivation is not None:
        out += [f"Derivation step '{s.name}': {s.status}" + (f" ({s.detail})" if s.detail else "")
                for s in result.derivation.failed_steps()]
    return out


def fit_row(name: str, fit: Any) -> List[Any]:
    """A sweep-table row from a PowerLawFit (or a mapping with the same fields)."""
    get = (lambda k: fit.get(k)) if isinstance(fit, Mapping) else (lambda k: getattr(fit, k, None))
    return [name, list(get("widths") or []), list(get("errors") or []), get("slope"), get("slope_stderr"),
            get("prefactor")]


def check_reason(check: Mapping) -> str:
    """A sub-verdict's reason without the leading "name: " the verdict helpers prefix."""
    reason, name = str(check.get("reason") or ""), str(check.get("name") or "")
    return reason[len(name) + 2:] if name and reason.startswith(name + ": ") else reason


def env_rows(doc: Mapping) -> List[List[Any]]:
    """The "Run" table: mode, seed, timestamp, git commit, machine, BLAS and package versions."""
    env = doc.get("environment", {})
    machine = env.get("machine", {})
    blas = "; ".join(f"{b.get('library')} {b.get('version')} ({b.get('threads')} threads"
                     + (f", idle spin 2^{b['thread_timeout']} cycles" if b.get("thread_timeout") else "") + ")"
                     for b in env.get("blas", []))
    rows = [["mode", doc.get("mode")], ["seed", doc.get("seed")], ["timestamp (UTC)", env.get("timestamp")],
            ["git commit", env.get("git_commit")], ["machine", f"{machine.get('platform')}, {machine.get('cpu_count')} CPUs"],
            ["BLAS", blas or "unknown"]]
    rows += [[name, version] for name, version in env.get("versions", {}).items()]
    return rows
