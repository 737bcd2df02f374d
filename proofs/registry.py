"""The claim registry: load every claim module under ``proofs/claims/`` and select claims by id.

Loading (:func:`load_claims`) imports each module of the :mod:`proofs.claims` package
(found with :mod:`pkgutil`, in sorted module-name order) and returns the registered claims in a
stable order: by defining module (sorted), then in definition order inside the module.

**A module that fails to import is an error, never hidden.**  Decision: loading is all or
nothing -- if any claim module raises on import, :func:`load_claims` raises
:class:`ClaimModuleError` naming the module and the exception, and the CLI prints that one line
and exits 2.  Rationale: claim ids come from the modules, so a silently skipped module would let
``verify`` exit 0 while a whole topic of claims was never checked.

Selection (:func:`select_claims`) accepts, per pattern: an exact id (``sanity.pinv_product``),
a prefix ending at a dot or the bare topic (``kfac`` or ``kfac.`` selects ``kfac.*``), or a
shell glob (``kfac.*``, ``*.alpha``).  A pattern matching nothing raises ``ValueError`` listing
the closest ids.  Tests pass their own claims as a mapping or list instead of the global registry:

>>> from proofs.claim import claim, ClaimResult
>>> @claim("demo.a", title="A", statement="a = a", register=False)
... def _a(cfg):
...     return ClaimResult("verified")
>>> [c.id for c in select_claims(["demo"], {"demo.a": _a})]
['demo.a']
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

from proofs.claim import REGISTRY, Claim

__all__ = [
    "load_claims", "select_claims", "get_claim", "ordered", "claim_module_names", "import_claim_modules",
    "ClaimModuleError", "ClaimSource", "CLAIMS_PACKAGE"
]

CLAIMS_PACKAGE = "proofs.claims"

ClaimSource = Union[None, Mapping[str, Claim], Sequence[Claim]]


class ClaimModuleError(RuntimeError):
    """A module under ``proofs/claims/`` failed to import (the message names it and the error)."""

    def __init__(self, module: str, exc: BaseException):
        self.module = module
        self.exception = exc
        first_line = (str(exc).strip().splitlines() or [""])[0]
        super().__init__(f"claim module {module} failed to import: {type(exc).__name__}: {first_line}")


def claim_module_names(package: str = CLAIMS_PACKAGE) -> List[str]:
    """Fully qualified names of the modules in ``package``, sorted."""
    pkg = importlib.import_module(package)
    return sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(pkg.__path__)
                  if not info.name.startswith("_"))


def import_claim_modules(package: str = CLAIMS_PACKAGE) -> List[str]:
    """Import every claim module; raise :class:`ClaimModuleError` for the first that fails."""
    names = claim_module_names(package)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- re-raised with the module named
            raise ClaimModuleError(name, exc) from exc
    return names


def ordered(claims: Iterable[Claim], module_order: Sequence[str] = ()) -> List[Claim]:
    """Claims sorted by defining module (``module_order`` first, then by name), keeping the
    definition order inside each module (Python sorts stably)."""
    rank = {m: i for i, m in enumerate(module_order)}
    return sorted(claims, key=lambda c: (rank.get(c.module, len(rank)), c.module))


def load_claims(package: str = CLAIMS_PACKAGE) -> List[Claim]:
    """Import all claim modules and return every registered claim in the stable order."""
    modules = import_claim_modules(package)
    return ordered(REGISTRY.values(), modules)


def _as_list(claims: ClaimSource) -> List[Claim]:
    if claims is None:
        return load_claims()
    if isinstance(claims, Mapping):
        return list(claims.values())
    result = list(claims)
    for c in result:
        if not isinstance(c, Claim):
            raise TypeError(f"claims must be Claim objects, got {type(c).__name__}")
    return result


def _matches(pattern: str, claim_id: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(claim_id, pattern)
    if pattern == claim_id:
        return True
    prefix = pattern if pattern.endswith(".") else pattern + "."
    return claim_id.startswith(prefix)


def select_claims(patterns: Optional[Sequence[str]], claims: ClaimSource = None) -> List[Claim]:
    """The claims matching any of ``patterns`` (all claims if ``patterns`` is empty), in the
    registry's order, each once.  A pattern matching nothing raises ``ValueError`` with the
    closest ids."""
    available = _as_list(claims)
    if not patterns:
        return available
    ids = [c.id for c in available]
    chosen = set()
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"claim id {pattern!r} is not allowed: expected a non-empty string")
        hits = {i for i in ids if _matches(pattern, i)}
        if not hits:
            close = difflib.get_close_matches(pattern, ids, n=3, cutoff=0.5)
            topics = sorted({i.split(".")[0] for i in ids})
            hint = f"did you mean {', '.join(close)}?" if close else f"known topics: {', '.join(topics) or 'none'}"
            raise ValueError(f"unknown claim id {pattern!r}; {hint}")
        chosen |= hits
    return [c for c in available if c.id in chosen]


def get_claim(claim_id: str, claims: ClaimSource = None) -> Claim:
    """Exactly one claim by its id (no prefixes or globs); ``ValueError`` with close matches."""
    available = _as_list(claims)
    by_id: Dict[str, Claim] = {c.id: c for c in available}
    if claim_id in by_id:
        return by_id[claim_id]
    close = difflib.get_close_matches(str(claim_id), list(by_id), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"{len(by_id)} claims are registered (ngd-verify list)"
    raise ValueError(f"unknown claim id {claim_id!r}; {hint}")
