"""Registry of approximate-Fisher preconditioners (one module per approximation).

>>> from numerics.approximations import get_approximation, APPROXIMATIONS
>>> APPROXIMATIONS[:3]
('exact', 'block_diagonal', 'block_tridiagonal')
>>> get_approximation("block_diagonal").name
'block_diagonal'
"""
from __future__ import annotations

import importlib
from typing import Dict, Tuple, Type

from .base import Approximation

#: The approximations the paper studies (interface.md names).
APPROXIMATIONS: Tuple[str, ...] = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal")

#: Every registered name -> (module, class).  ``pattern`` takes any symmetric L x L 0/1 block pattern.
_MODULES: Dict[str, Tuple[str, str]] = {
    "exact": ("exact", "ExactApproximation"),
    "block_diagonal": ("block_diagonal", "BlockDiagonalApproximation"),
    "block_tridiagonal": ("block_tridiagonal", "BlockTridiagonalApproximation"),
    "kfac": ("kfac", "KFACApproximation"),
    "unit_wise": ("unit_wise", "UnitWiseApproximation"),
    "diagonal": ("diagonal", "DiagonalApproximation"),
    "pattern": ("pattern", "PatternApproximation"),
}


def registered_names() -> Tuple[str, ...]:
    """Every name :func:`get_approximation` knows (whether or not its module is importable)."""
    return tuple(_MODULES)


def get_approximation(name) -> Type[Approximation]:
    """The :class:`Approximation` subclass registered under ``name`` (a class is passed through)."""
    if isinstance(name, type) and issubclass(name, Approximation):
        return name
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"approximation={name!r} is unknown; allowed: {', '.join(_MODULES)}")
    module_name, class_name = _MODULES[name]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{module_name}":
            raise
        raise ValueError(f"approximation={name!r} is registered but its module "
                         f"numerics/approximations/{module_name}.py is not present in this checkout") from None
    return getattr(module, class_name)


def available_approximations() -> Tuple[str, ...]:
    """Registered names whose module is present (used to parametrise the oracle tests)."""
    out = []
    for name in _MODULES:
        try:
            get_approximation(name)
        except ValueError:
            continue
        out.append(name)
    return tuple(out)


__all__ = ["APPROXIMATIONS", "Approximation", "available_approximations", "get_approximation", "registered_names"]
