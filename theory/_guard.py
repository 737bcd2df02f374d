"""Fail loudly when ``theory``, ``numerics`` or ``proofs`` is not ngd-verifier's own package.

The three top-level names are generic: the package index has unrelated distributions called
``numerics`` and ``proofs`` (pip lets one distribution overwrite another's files without a word),
and a folder named ``theory`` in the working directory shadows an installed package.  Each of our
three ``__init__.py`` files starts with the line ``__distribution__ = "ngd-verifier"`` (the
``name`` in setup.cfg) and, when imported, calls :func:`check_siblings`, which locates the other
two packages exactly as ``import`` would (:func:`importlib.util.find_spec`: sys.path, an editable
install's finder, a source checkout on the path -- nothing is imported) and looks for that line in
their ``__init__.py``.  Cost: two path look-ups and two small file reads, once per process.

>>> check_siblings("theory")            # the packages of this checkout / installation are ours
>>> problem("theory") is None
True
"""
from __future__ import annotations

import importlib.util
import sys
from typing import Optional

__all__ = ["DISTRIBUTION", "PACKAGES", "MARKER", "ForeignPackageError", "problem", "check_siblings", "lazy_exports"]

#: The distribution name in setup.cfg, and the value of each package's ``__distribution__``.
DISTRIBUTION = "ngd-verifier"
#: The top-level packages the distribution ships.
PACKAGES = ("theory", "numerics", "proofs")
#: The line each of our ``__init__.py`` files carries.
MARKER = f'__distribution__ = "{DISTRIBUTION}"'

_verified = set()


class ForeignPackageError(ImportError):
    """A package named ``theory``/``numerics``/``proofs`` that is not ngd-verifier's."""


def problem(name: str) -> Optional[str]:
    """``None`` when ``import name`` gives ngd-verifier's package, else what was found instead."""
    module = sys.modules.get(name)
    if module is not None:
        if getattr(module, "__distribution__", None) == DISTRIBUTION:
            return None
        where = getattr(module, "__file__", None) or list(getattr(module, "__path__", []) or [])
        return f"the imported module {name!r} ({where}) has no __distribution__ = {DISTRIBUTION!r}"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as err:
        return f"looking up {name!r} failed: {err}"
    if spec is None:
        return f"no package {name!r} is importable (sys.path = {sys.path})"
    origin = spec.origin
    if not origin or not origin.endswith("__init__.py"):
        where = origin if origin and origin != "namespace" else list(spec.submodule_search_locations or [])
        return f"{name!r} resolves to {where}, which is not a regular package with an __init__.py"
    try:
        with open(origin, "rb") as handle:
            source = handle.read()
    except OSError:
        return None  # not a plain file (zip, frozen): nothing to read, nothing to contradict
    if MARKER.encode() not in source:
        return f"{name!r} resolves to {origin}, whose __init__.py lacks the line {MARKER}"
    return None


def _owners(name: str) -> str:
    try:  # only on the error path: importlib.metadata scans every installed distribution
        from importlib.metadata import packages_distributions
        owners = sorted(set(packages_distributions().get(name, [])) - {DISTRIBUTION})
    except Exception:  # pragma: no cover - metadata is advisory here
        return ""
    return f"; other installed distributions providing {name!r}: {', '.join(owners)}" if owners else ""


def check_siblings(importer: str) -> None:
    """Raise :class:`ForeignPackageError` unless every package of :data:`PACKAGES` other than
    ``importer`` (the package being imported, which is ours since this code runs) is ours."""
    for name in PACKAGES:
        if name == importer or name in _verified:
            continue
        found = problem(name)
        if found is not None:
            raise ForeignPackageError(
                f"ngd-verifier's package {importer!r} needs its sibling package {name!r}, but {found}"
                f"{_owners(name)}. Another distribution or a local folder named {name!r} is shadowing or has "
                f"overwritten ngd-verifier's. Fix: rename that folder or run from another directory, or "
                f"`python -m pip uninstall` the distribution that provides {name!r}; then reinstall "
                f"ngd-verifier (`python -m pip install --force-reinstall -e .` in its checkout), best in a "
                f"fresh virtual environment (`python -m venv .venv`).")
        _verified.add(name)


def lazy_exports(package: str, table: dict):
    """``(__getattr__, __dir__)`` for a package whose public names (``table``: name -> defining module)
    are imported on first access and cached in the package namespace (keeps ``import package`` light)."""
    import importlib

    def __getattr__(name):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
