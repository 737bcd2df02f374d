"""Registry of approximate-Fisher preconditioners: one module per approximation, registered once.

Every module of this package registers its class with
:func:`numerics.approximations.base.register_approximation`; the modules are found with
:mod:`pkgutil` when the package is imported, so adding an approximation adds a module here and
edits nothing else (its theory registers itself under :mod:`theory.approximations`).

>>> from numerics.approximations import get_approximation, APPROXIMATIONS
>>> APPROXIMATIONS[:3]
('exact', 'block_diagonal', 'block_tridiagonal')
>>> get_approximation("block_diagonal").name
'block_diagonal'
>>> get_approximation("nonsense")
Traceback (most recent call last):
...
ValueError: approximation='nonsense' is unknown; allowed: exact, block_diagonal, ...
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Tuple, Type

from .base import _REGISTRY, Approximation, register_approximation

#: The paper's six (Karakida & Osawa 2020, arXiv:2010.00879) come first in listings.
_PAPER_ORDER = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal")


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_discover()


def registered_names() -> Tuple[str, ...]:
    """Every name :func:`get_approximation` knows: the paper's six, then the others sorted."""
    return (tuple(n for n in _PAPER_ORDER if n in _REGISTRY)
            + tuple(sorted(n for n in _REGISTRY if n not in _PAPER_ORDER)))


#: Every registered approximation that is one approximation by its name alone (``pattern``, a
#: family that needs ``pattern=S``, is registered but not listed).
APPROXIMATIONS: Tuple[str, ...] = tuple(n for n in registered_names() if not _REGISTRY[n].parametrised)


def get_approximation(name) -> Type[Approximation]:
    """The :class:`Approximation` subclass registered under ``name`` (a class is passed through).

    Raises ``ValueError`` naming the allowed names for an unknown name.
    """
    if isinstance(name, type) and issubclass(name, Approximation):
        return name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"approximation={name!r} is unknown; allowed: {', '.join(registered_names())}")
    return _REGISTRY[name]


def available_approximations() -> Tuple[str, ...]:
    """Every registered name (kept for the oracle tests and benchmarks that parametrise over it)."""
    return registered_names()


__all__ = ["APPROXIMATIONS", "Approximation", "available_approximations", "get_approximation", "register_approximation",
           "registered_names"]
