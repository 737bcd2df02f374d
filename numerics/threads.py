"""BLAS thread control (threadpoolctl): one thread for batched small-matrix work, all for large GEMMs.

Many small LAPACK/BLAS calls (per-unit factorisations, N x N solves) gain nothing from OpenBLAS's
threads and collapse when the cores are busy: the worker threads spin-wait for a core, and numpy and
scipy each ship their own OpenBLAS whose thread pools fight when calls alternate between them.
Measured (2 cores, one busy process next to it): ``function_space_operator(MLP([64, 2048, 2048, 1]),
X, "unit_wise")``, N = 300, took 15.4 s with the default threads against 3.1 s with one.  The numerics
therefore run their batched small-matrix work inside :func:`single_blas_thread` and hand the threads
back for the large width-sized GEMMs with :func:`all_blas_threads`.

* :func:`blas_threads` ``(n)``: context manager / decorator; every loaded BLAS library (numpy's and
  scipy's OpenBLAS, MKL, BLIS, ...) uses ``n`` threads inside, the previous counts are restored on exit.
* :func:`single_blas_thread` ``()``: ``blas_threads(1)``, for batched small-matrix work.
* :func:`all_blas_threads` ``()``: inside a :func:`single_blas_thread` region, the thread counts in effect
  just outside the OUTERMOST such region (what the caller allowed: the default, or the one thread a Dask
  worker, the test suite or an enclosing ``blas_threads(n)`` set); outside any such region it changes
  nothing.  It never raises the count above what the caller had, so a worker pinned to one thread stays
  at one.
* :func:`allowed_threads` ``()``: the thread count the caller allowed (outside every region).
* :func:`map_batches` ``(fn, batches)``: batched small-matrix work spread over :func:`allowed_threads`
  Python threads, each calling single-threaded BLAS/LAPACK (numpy's stacked solves and ``take`` release
  the GIL), so the cores are used by independent batches instead of by threads inside tiny calls; with
  one allowed thread (a Dask worker, the test suite) it is a plain loop.
* :func:`blas_thread_count` ``()``: the largest current thread count over the BLAS libraries (tests,
  diagnostics).

Thread counts are process-wide (a BLAS library has one setting), so regions are meant to be entered
from one Python thread at a time, which is how the numerics use them.

>>> with single_blas_thread():
...     inner = blas_thread_count()
...     with all_blas_threads():
...         outer = blas_thread_count()
>>> inner, outer == blas_thread_count()
(1, True)
"""
from __future__ import annotations

import contextlib
import sys
from typing import List, Optional

import numpy as np

__all__ = ["blas_threads", "single_blas_thread", "all_blas_threads", "allowed_threads", "blas_thread_count",
           "blas_thread_info", "map_batches"]

_CONTROLLER = None
_CONTROLLER_MODULES = -1
#: Thread counts (``{library filepath: n}``) in effect when each active small-work region was entered.
_OUTER: List[dict] = []


def _controller():
    """A cached :class:`threadpoolctl.ThreadpoolController` (scanning the loaded libraries costs ~3 ms,
    a limit ~10 us); re-scanned when new modules were imported since (they may have loaded a BLAS)."""
    global _CONTROLLER, _CONTROLLER_MODULES
    if _CONTROLLER is None or len(sys.modules) != _CONTROLLER_MODULES:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
        _CONTROLLER_MODULES = len(sys.modules)
    return _CONTROLLER


def _blas_libraries():
    return [lib for lib in _controller().lib_controllers if lib.user_api == "blas"]


def blas_thread_info() -> List[dict]:
    """``[{"filepath", "internal_api", "num_threads", "thread_timeout"}]`` of every loaded BLAS library.

    ``thread_timeout``: for OpenBLAS, log2 of the CPU cycles an idle worker thread spins before it sleeps,
    as the loaded library applies it (``OPENBLAS_THREAD_TIMEOUT`` read when it loaded, clamped to [4, 30];
    28 when unset; :mod:`theory._environment`); ``None`` for other BLAS libraries, OpenMP builds and
    OpenBLAS builds that do not export ``openblas_thread_timeout()``."""
    return [{"filepath": lib.filepath, "internal_api": lib.internal_api, "num_threads": int(lib.num_threads),
             "thread_timeout": _openblas_thread_timeout(lib)} for lib in _blas_libraries()]


def _openblas_thread_timeout(lib) -> Optional[int]:
    """The spin exponent an OpenBLAS library applies (its exported ``openblas_thread_timeout()`` returns the
    environment value it read at load time, 0 when unset); ``None`` when ``lib`` is not a pthreads OpenBLAS
    or does not export the function."""
    if lib.internal_api != "openblas" or getattr(lib, "threading_layer", "pthreads") != "pthreads":
        return None           # an OpenMP build's idle threads follow OMP_WAIT_POLICY, not this setting
    # not part of OpenBLAS's public API: exported by the numpy/scipy wheels on Linux, maybe not elsewhere
    getter = getattr(getattr(lib, "dynlib", None), "openblas_thread_timeout", None)
    if getter is None:
        return None
    import ctypes

    from theory._environment import OPENBLAS_DEFAULT_THREAD_TIMEOUT, OPENBLAS_THREAD_TIMEOUT_RANGE

    getter.restype, getter.argtypes = ctypes.c_int, []
    value = int(getter())
    low, high = OPENBLAS_THREAD_TIMEOUT_RANGE
    return OPENBLAS_DEFAULT_THREAD_TIMEOUT if value <= 0 else min(high, max(low, value))


def blas_thread_count() -> int:
    """The largest current thread count over the loaded BLAS libraries (0 when none is loaded)."""
    return max((int(lib.num_threads) for lib in _blas_libraries()), default=0)


def _set_counts(counts) -> dict:
    """Set every BLAS library to ``counts`` (an int, or ``{filepath: n}``); return the previous counts."""
    previous = {}
    for lib in _blas_libraries():
        previous[lib.filepath] = int(lib.num_threads)
        n = counts if isinstance(counts, int) else counts.get(lib.filepath)
        if n is not None and int(n) != previous[lib.filepath]:
            lib.set_num_threads(int(n))
    return previous


class blas_threads(contextlib.ContextDecorator):
    """Run a block (or, as a decorator, a function) with ``n`` BLAS threads in every loaded BLAS library.

    ``n=None`` changes nothing.  Nested regions restore exactly what was set outside them.

    >>> with blas_threads(1):
    ...     blas_thread_count()
    1
    """

    def __init__(self, n: Optional[int], *, small_work: bool = False):
        if n is not None and (isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer))):
            raise TypeError(f"n={n!r} ({type(n).__name__}) is not allowed: expected a positive integer number of "
                            "BLAS threads, or None")
        if n is not None and not 1 <= n <= 2 ** 31 - 1:
            raise ValueError(f"n={n!r} is not allowed: expected a positive integer number of BLAS threads "
                             "(at most 2^31 - 1), or None")
        self.n = None if n is None else int(n)
        #: a region of small-matrix work (:func:`single_blas_thread`), not a caller's budget: what it
        #: replaced is what :func:`all_blas_threads` gives back
        self.small_work = bool(small_work)
        self._previous: List[Optional[dict]] = []

    def __enter__(self):
        current = _current_counts()
        previous = _set_counts(self.n) if self.n is not None else None
        self._previous.append(previous)
        if self.small_work:
            _OUTER.append(current)
        return self

    def __exit__(self, *exc):
        if self.small_work:
            _OUTER.pop()
        previous = self._previous.pop()
        if previous is not None:
            _set_counts(previous)
        return False


def _current_counts() -> dict:
    return {lib.filepath: int(lib.num_threads) for lib in _blas_libraries()}


def single_blas_thread() -> blas_threads:
    """``blas_threads(1)`` marked as small-matrix work (stacked factorisations, N x N solves): inside it,
    :func:`all_blas_threads` and :func:`allowed_threads` refer to the counts it replaced.

    >>> @single_blas_thread()
    ... def work():
    ...     return blas_thread_count()
    >>> work()
    1
    """
    return blas_threads(1, small_work=True)


@contextlib.contextmanager
def all_blas_threads():
    """For a large GEMM inside small-matrix work: inside a :func:`single_blas_thread` region (a
    ``blas_threads(..., small_work=True)`` region), every BLAS library gets back the thread count it had
    just outside the *outermost* such region (the caller's budget, e.g. a Dask worker's one thread);
    outside every such region -- including inside a plain ``blas_threads(n)`` region, which is the
    caller's budget -- nothing changes.  On exit the counts in effect before the call are restored."""
    if not _OUTER:
        yield
        return
    previous = _set_counts(_OUTER[0])
    try:
        yield
    finally:
        _set_counts(previous)


def allowed_threads() -> int:
    """The BLAS thread count the caller allowed: the largest count in effect outside the outermost
    :func:`single_blas_thread` region (the current count when outside every such region); at least 1."""
    counts = _OUTER[0] if _OUTER else _current_counts()
    return max([1, *counts.values()])


def map_batches(fn, batches) -> list:
    """``[fn(b) for b in batches]``, spread over :func:`allowed_threads` Python threads when there is more
    than one batch and more than one thread allowed.  Call it inside :func:`single_blas_thread`: each
    batch then runs single-threaded BLAS, so the threads never oversubscribe the cores.  ``fn`` must only
    write disjoint outputs."""
    batches = list(batches)
    workers = min(allowed_threads(), len(batches))
    if workers <= 1:
        return [fn(b) for b in batches]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, batches))
