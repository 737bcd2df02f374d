"""Hypothesis settings profiles for the property tests and for ``ngd-verify falsify``.

Three profiles, registered by :func:`register_profiles` (idempotent):

* ``"ci"`` -- fast and deterministic (``derandomize=True``: the same examples on every run, so a
  CI failure reproduces), no deadline (float64 linear algebra on a shared machine has no stable
  per-example time), the ``too_slow`` health check off; no example database (CI is stateless).
* ``"dev"`` -- like ``ci`` but randomised: a local run explores new examples each time, and keeps
  failures in the default local database so they replay first on the next run.
* ``"thorough"`` -- for ``falsify`` and nightly runs: ``THOROUGH_EXAMPLES`` examples per property,
  randomised, no deadline.

A directory users keep (``--database DIR`` on ``ngd-verify falsify``, or
``settings(database=example_database(DIR))``) stores every counterexample found, so it is replayed
first on the next run (a counterexample never gets lost behind a new random seed).

The test suite loads ``"ci"`` when the environment variable ``CI`` is set, ``"dev"`` otherwise,
or the profile named by ``NGD_HYPOTHESIS_PROFILE`` (e.g. ``thorough`` for a nightly run) --
:func:`load_for_tests`.  Tests that fix their own (small) example counts scale them with
:func:`examples`, so ``thorough`` multiplies every property's examples by
``THOROUGH_EXAMPLES / CI_EXAMPLES`` (5x).

>>> register_profiles()
>>> settings.get_profile("ci").derandomize, settings.get_profile("thorough").max_examples
(True, 500)
>>> example_database(None) is None
True
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

__all__ = [
    "register_profiles", "load_for_tests", "examples", "example_database", "THOROUGH_EXAMPLES",
    "CI_EXAMPLES", "DEFAULT_DATABASE_DIR"
]

#: Examples per property in the ``thorough`` profile (each NGD example takes ~1-30 ms).
THOROUGH_EXAMPLES = 500
#: Examples per property in ``ci``/``dev`` unless a test asks for fewer (hypothesis' default).
CI_EXAMPLES = 100
#: Where ``falsify --database`` with no directory would keep examples, if a user wants a default.
DEFAULT_DATABASE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ngd-verify" / "hypothesis"

_SLOW = [HealthCheck.too_slow]


def register_profiles() -> None:
    """Register ``ci``, ``dev`` and ``thorough`` (safe to call more than once)."""
    settings.register_profile("ci", derandomize=True, deadline=None, database=None, max_examples=CI_EXAMPLES,
                              suppress_health_check=_SLOW, print_blob=False)
    settings.register_profile("dev", deadline=None, max_examples=CI_EXAMPLES, suppress_health_check=_SLOW)
    settings.register_profile("thorough", deadline=None, max_examples=THOROUGH_EXAMPLES,
                              suppress_health_check=_SLOW)


def load_for_tests() -> str:
    """Register the profiles and load ``$NGD_HYPOTHESIS_PROFILE`` if set, else ``ci`` when ``CI`` is
    set, else ``dev``; returns the name (``ValueError`` naming the allowed ones for an unknown name)."""
    register_profiles()
    name = os.environ.get("NGD_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    if name not in ("ci", "dev", "thorough"):
        raise ValueError(f"NGD_HYPOTHESIS_PROFILE={name!r} is unknown; allowed: ci, dev, thorough")
    settings.load_profile(name)
    return name


def examples(n: int) -> int:
    """``n`` examples scaled to the loaded profile: ``n`` under ``ci``/``dev`` (whose default is
    :data:`CI_EXAMPLES`), ``5 n`` under ``thorough``.

    >>> examples(10) == 10 * max(1, settings.default.max_examples // CI_EXAMPLES)
    True
    """
    return int(n) * max(1, settings.default.max_examples // CI_EXAMPLES)


def example_database(directory: Union[None, str, os.PathLike]) -> Optional[DirectoryBasedExampleDatabase]:
    """A directory-based example database (created if missing), or ``None`` for no database.

    Raises ``ValueError`` naming the path when it exists and is not a directory.
    """
    if directory is None:
        return None
    path = Path(directory).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--database {str(directory)!r} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return DirectoryBasedExampleDatabase(str(path))


register_profiles()
