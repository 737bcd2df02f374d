"""Process-wide runtime settings that only work if they are in place before numpy loads its BLAS.

OpenBLAS (the BLAS of the numpy and scipy wheels, pthreads build) keeps its worker threads spinning
in a ``sched_yield`` loop after every multi-threaded call, for ``2**OPENBLAS_THREAD_TIMEOUT`` CPU
cycles (the environment variable is read once, when the library loads; OpenBLAS's default is 28,
about 0.1 s at 2.5 GHz).  The numerics run their batched small-matrix work (per-unit solves of the
unit-wise preconditioner) in single-threaded BLAS calls spread over Python threads
(:func:`numerics.threads.map_batches`); a worker still spinning after the forward pass's GEMMs then
takes a core from them.  Measured on 2 cores (``benchmarks/bench_numerics.py``, damped unit-wise
step, width 2048, N = 128, depth 3): 5.07x one forward + backward pass with the default spin, 4.0-4.3x
with ``OPENBLAS_THREAD_TIMEOUT`` = 24, 20, 16 or 4 alike, and the same large-GEMM times (forward pass,
layer-wise NGD steps at width 4096) for every value.

:func:`configure_blas_environment` sets ``OPENBLAS_THREAD_TIMEOUT`` = :data:`OPENBLAS_THREAD_TIMEOUT`
(2**20 cycles, about 0.3-0.5 ms at 2-3.5 GHz: longer than the gap between consecutive GEMMs of one
pass, far shorter than the batched work that follows) unless the user has set it.  ``import theory``
(and so ``import numerics``, ``import proofs`` and the ``ngd-verify`` command) calls it.  It is a change
to this process's environment: it takes effect here when numpy and scipy have not been imported yet, and
in every program this process starts afterwards (subprocesses, spawned Dask workers), whether or not it
uses this package; a forked child keeps the library its parent already loaded.  A script that imports
numpy first keeps OpenBLAS's default spin: import ``numerics`` first, or export the variable.  The value in effect is
reported by :func:`numerics.threads.blas_thread_info` (``"thread_timeout"``) and recorded in every
report's environment record.

Reference: OpenBLAS ``driver/others/blas_server.c`` (``thread_timeout``, clamped to [4, 30]) and
OpenMathLib/OpenBLAS issues #1614 and #5171 (idle workers spinning in ``blas_thread_server``).

>>> import os
>>> configure_blas_environment()
>>> os.environ["OPENBLAS_THREAD_TIMEOUT"] != ""
True
"""
from __future__ import annotations

import os

__all__ = ["OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_DEFAULT_THREAD_TIMEOUT", "OPENBLAS_THREAD_TIMEOUT_RANGE",
           "configure_blas_environment"]

#: log2 of the CPU cycles an idle OpenBLAS worker thread spins before it sleeps, as this package sets it.
OPENBLAS_THREAD_TIMEOUT = 20
#: OpenBLAS's own value when the variable is unset, zero or not a positive number (``THREAD_TIMEOUT``).
OPENBLAS_DEFAULT_THREAD_TIMEOUT = 28
#: The range OpenBLAS clamps a positive value to (``blas_thread_init``).
OPENBLAS_THREAD_TIMEOUT_RANGE = (4, 30)


def configure_blas_environment() -> None:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` to :data:`OPENBLAS_THREAD_TIMEOUT` unless it is already set to a
    non-empty value (the user's choice is kept; OpenBLAS reads a non-number as its default).

    No effect on an OpenBLAS that is already loaded in this process (see the module docstring)."""
    if not os.environ.get("OPENBLAS_THREAD_TIMEOUT"):
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(OPENBLAS_THREAD_TIMEOUT)
