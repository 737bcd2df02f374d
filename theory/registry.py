"""One registry entry per Fisher approximation, on the lowest floor (theory).

Each approximation is described once, in its own module under :mod:`theory.approximations`
(found with :mod:`pkgutil`, like the numerics classes under :mod:`numerics.approximations` and the
claims under :mod:`proofs.claims`), by the :func:`register_theory` decorator on its derivation:

* ``derive(setting) -> IsotropyResult``: the isotropy constant ``alpha`` with its conditions and
  checked derivation, or :class:`theory.non_isotropic.NotIsotropic` saying why there is none
  (``setting`` is a validated :class:`Setting`);
* ``test_kernel(k_train, k_cross, setting) -> ndarray (N', N)``: the infinite-width function-space
  operator ``Theta_G(x', X)`` from the analytic kernels (``None`` when the theory gives none);
* ``label``: the name a report prints; ``citation``: where the definition comes from (arXiv id).

:func:`theory.isotropy.isotropy_constant`, :func:`numerics.training.train_ngd`'s default learning
rate, the test predictors of :mod:`proofs.evidence` and the report's labels are lookups here.

>>> entry = theory_entry("block_tridiagonal")
>>> entry.label, entry.name in theory_names()
('block tri-diagonal', True)
>>> approximation_label("kfac")
'K-FAC'
>>> theory_entry("nonsense")
Traceback (most recent call last):
...
ValueError: approximation='nonsense' is unknown; allowed: ...
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["Setting", "TheoryEntry", "register_theory", "theory_entry", "theory_names", "approximation_label",
           "PAPER", "PAPER_CITATION"]

#: The paper this project verifies.
PAPER = "arXiv:2010.00879"
PAPER_CITATION = ("Karakida & Osawa, Understanding Approximate Fisher Information for Fast Convergence of "
                  "Natural Gradient Descent in Wide Neural Networks, NeurIPS 2020, arXiv:2010.00879")

APPROXIMATIONS_PACKAGE = "theory.approximations"


@dataclass(frozen=True)
class Setting:
    """The validated arguments of an isotropy question (numbers, or SymPy symbols where allowed).

    ``depth`` is L (SymPy integer or symbol); ``widths`` ``[M_0, ..., M_{L-1}, C]`` or a single
    hidden width or ``None``; ``options`` the approximation's own keyword options (``pattern``,
    ``bandwidth``, ``forster``, ...), already checked against the entry's ``options``.
    """

    depth: Any
    n_samples: Any = None
    input_dim: Any = None
    widths: Any = None
    activation: str = "relu"
    n_outputs: Any = 1
    bias: bool = False
    options: Dict[str, Any] = field(default_factory=dict)
    loss: str = "mse"  # "cross_entropy": theory.cross_entropy answers, from the entry's squared-loss derive

    def option(self, name: str, default=None):
        return self.options.get(name, default)


@dataclass(frozen=True)
class TheoryEntry:
    """What the theory says about one approximation (see the module docstring)."""

    name: str
    label: str
    derive: Callable[[Setting], Any]
    test_kernel: Optional[Callable[[Any, Any, Setting], Any]] = None
    citation: str = PAPER
    options: Tuple[str, ...] = ()
    needs_depth: bool = True
    module: str = ""


_ENTRIES: Dict[str, TheoryEntry] = {}
_LOADED = False


def register_theory(name: str, *, label: str, citation: str = PAPER, test_kernel=None,
                    options: Sequence[str] = (), needs_depth: bool = True):
    """Decorator: register ``derive(setting)`` as the theory of approximation ``name``.

    ``options`` names the keyword options :func:`theory.isotropy.isotropy_constant` passes through
    to this entry (others are rejected when given a non-default value).  Registering a name twice
    from different modules is an error (one definition per approximation).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name={name!r} is not allowed: expected an identifier such as 'kfac'")

    def decorate(derive):
        module = getattr(derive, "__module__", "")
        old = _ENTRIES.get(name)
        if old is not None and old.module != module:
            raise ValueError(f"approximation {name!r} is registered twice in theory: {old.module} and {module}")
        _ENTRIES[name] = TheoryEntry(name, label, derive, test_kernel, citation, tuple(options), needs_depth, module)
        return derive

    return decorate


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    pkg = importlib.import_module(APPROXIMATIONS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{APPROXIMATIONS_PACKAGE}.{info.name}")
    _LOADED = True


def theory_names() -> Tuple[str, ...]:
    """Every registered approximation name (the paper's six first, then the others, sorted)."""
    _load()
    first = ("exact", "block_diagonal", "block_tridiagonal", "kfac", "unit_wise", "diagonal")
    return tuple(n for n in first if n in _ENTRIES) + tuple(sorted(n for n in _ENTRIES if n not in first))


def theory_entry(name) -> TheoryEntry:
    """The registered :class:`TheoryEntry` of ``name`` (``ValueError`` naming the allowed names)."""
    _load()
    if not isinstance(name, str) or name not in _ENTRIES:
        raise ValueError(f"approximation={name!r} is unknown; allowed: {', '.join(theory_names())}")
    return _ENTRIES[name]


def approximation_label(name: str) -> str:
    """The printed name of an approximation (``"kfac"`` -> ``"K-FAC"``); unknown names pass through."""
    _load()
    entry = _ENTRIES.get(name)
    return entry.label if entry is not None else str(name)
