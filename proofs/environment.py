"""Where and with what a result was computed: versions, BLAS, machine, git commit, timestamp.

>>> rec = environment_record()
>>> sorted(rec) == ['blas', 'git_commit', 'machine', 'timestamp', 'versions']
True
>>> rec["versions"]["numpy"] != ""
True
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

__all__ = ["environment_record", "package_versions", "blas_info", "machine_info", "git_commit", "PACKAGES"]

PACKAGES = ("numpy", "scipy", "sympy", "mpmath", "matplotlib", "tqdm", "hypothesis", "scikit-learn", "threadpoolctl")


def package_versions(packages=PACKAGES) -> Dict[str, str]:
    """``{"python": ..., package: version or "not installed"}``."""
    versions = {"python": platform.python_version(), "ngd-verifier": _version("ngd-verifier")}
    versions.update({name: _version(name) for name in packages})
    return versions


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def blas_info() -> List[Dict[str, str]]:
    """The BLAS/LAPACK libraries numpy uses: from threadpoolctl when present (library, version,
    threads, and for OpenBLAS the idle workers' spin exponent ``thread_timeout``,
    :func:`numerics.threads.blas_thread_info`), else from ``numpy.show_config``."""
    try:
        from threadpoolctl import threadpool_info

        from numerics.threads import blas_thread_info
        spin = {d["filepath"]: "" if d["thread_timeout"] is None else str(d["thread_timeout"])
                for d in blas_thread_info()}
        info = [{"api": str(d.get("internal_api", "")), "library": os.path.basename(str(d.get("filepath", ""))),
                 "version": str(d.get("version", "")), "threads": str(d.get("num_threads", "")),
                 "thread_timeout": spin.get(d.get("filepath"), "")}
                for d in threadpool_info() if d.get("user_api") == "blas"]
        if info:
            return info
    except Exception:  # noqa: BLE001 -- threadpoolctl is optional; fall back to numpy's record
        pass
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return [{"api": "blas", "library": str(blas.get("name", "")), "version": str(blas.get("version", "")),
                 "threads": ""}]
    except Exception:  # noqa: BLE001
        return [{"api": "blas", "library": "unknown", "version": "", "threads": ""}]


def machine_info() -> Dict[str, str]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def git_commit(path: Optional[Path] = None) -> str:
    """The commit of the checkout holding this package (``+dirty`` if it has local changes), or
    ``"unknown"`` outside a git checkout."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_record() -> Dict[str, object]:
    """Everything above plus a UTC timestamp (ISO 8601)."""
    return {
        "versions": package_versions(),
        "blas": blas_info(),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
