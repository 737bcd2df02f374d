"""BLAS threads under control (numerics.threads, issue 14).

Regression: ``function_space_operator(MLP([64, 2048, 2048, 1]), X, "unit_wise")`` (N = 300) took 15.4 s with
OpenBLAS's default threads next to one busy process against 3.1 s with one thread (289 s at load 3.5):
thousands of small LAPACK calls whose worker threads spin-wait for a busy core.  Two checks:

* structural (cannot be flaky): with two BLAS threads allowed, every batched small-matrix region of the
  unit-wise and block tri-diagonal code runs with threadpoolctl reporting ONE BLAS thread, the width-sized
  direction GEMM gets the two back, and the caller's setting is restored afterwards;
* timing, next to a subprocess spinning multi-threaded GEMMs: the same computation at the library's
  default (two threads allowed) against one thread, measured interleaved in this one test, next to the
  same busy process.  The bound is a factor 3 on the median ratio: without the thread control this ratio
  was 60-180x at this size on the 2-core development machine (0.5 s vs 30-64 s, N = 80, width 256;
  2 s vs 80-180 s at N = 150, width 512), so 3x catches the regression with a wide margin while a loaded
  CI machine's scheduling noise (measured ratios 0.7-1.3 with the control) stays far below it.  The
  issue's own 1.5x criterion is measured at its size in benchmarks/bench_numerics.py.
"""
import subprocess
import sys
import time

import numpy as np
import pytest

from numerics import MLP, function_space_operator
from numerics.approximations import get_approximation
from numerics.approximations import block_tridiagonal as btd_module
from numerics.approximations.block_tridiagonal import BlockTridiagonalApproximation
from numerics.approximations.unit_wise import UnitWiseApproximation
from numerics.threads import (all_blas_threads, allowed_threads, blas_thread_count, blas_thread_info, blas_threads,
                              map_batches, single_blas_thread)


def _two_threads_or_skip():
    with blas_threads(2):
        if blas_thread_count() < 2:
            pytest.skip("the BLAS library cannot run two threads here")


def test_regions_nest_and_restore():
    before = [d["num_threads"] for d in blas_thread_info()]
    assert before and all(n >= 1 for n in before)
    with blas_threads(2):
        outer = blas_thread_count()
        with single_blas_thread():
            assert blas_thread_count() == 1
            assert allowed_threads() == outer
            with all_blas_threads():
                assert blas_thread_count() == outer
            assert blas_thread_count() == 1
        assert blas_thread_count() == outer
    assert [d["num_threads"] for d in blas_thread_info()] == before


def test_all_blas_threads_never_exceeds_what_the_caller_allowed():
    """A Dask worker (or this suite) pinned to one thread stays at one inside all_blas_threads."""
    with blas_threads(1):
        with single_blas_thread():
            with all_blas_threads():
                assert blas_thread_count() == 1
        assert allowed_threads() == 1
    with all_blas_threads():   # outside every region: no change
        assert blas_thread_count() >= 1


def test_blas_threads_as_decorator_and_bad_counts():
    @blas_threads(1)
    def inside():
        return blas_thread_count()

    assert inside() == 1
    for bad in (0, -1, np.int64(0)):
        with pytest.raises(ValueError, match="n=.* is not allowed: expected a positive integer"):
            blas_threads(bad)
    for bad in (1.5, True, np.bool_(True), "2"):
        with pytest.raises(TypeError, match=r"n=.* \((float|bool|bool_|str)\) is not allowed: expected a positive integer"):
            blas_threads(bad)
    with blas_threads(np.int64(1)) as region:          # numpy integers (e.g. from a config array) are accepted
        assert region.n == 1 and type(region.n) is int and blas_thread_count() == 1


def test_map_batches_keeps_order_and_runs_serially_with_one_thread():
    import threading

    seen = []

    def work(b):
        seen.append(threading.get_ident())
        return b * b

    with blas_threads(1):
        assert map_batches(work, range(6)) == [0, 1, 4, 9, 16, 25]
    assert set(seen) == {threading.get_ident()}
    _two_threads_or_skip()
    with blas_threads(2), single_blas_thread():
        assert map_batches(work, range(6)) == [0, 1, 4, 9, 16, 25]


def _record(monkeypatch, owner, name, log):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        log.append((name, blas_thread_count()))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def test_batched_small_matrix_work_runs_with_one_blas_thread(monkeypatch):
    _two_threads_or_skip()
    small, gemm = [], []
    for name in ("_prepare_systems", "_chunk_system", "_compressed_dual_weights", "_primal_direction",
                 "_operator"):
        _record(monkeypatch, UnitWiseApproximation, name, small)
    _record(monkeypatch, BlockTridiagonalApproximation, "_build_layerwise", small)
    _record(monkeypatch, BlockTridiagonalApproximation, "dual_solution", small)
    _record(monkeypatch, btd_module, "layer_vjp", gemm)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 6))
    net = MLP([6, 48, 48, 1], seed=0)
    r = rng.standard_normal((24, 1))
    with blas_threads(2):
        function_space_operator(net, X, "unit_wise")                        # rho = 0: SVD + closed form
        for form in ("dual", "primal"):
            uw = get_approximation("unit_wise")(net, X, damping=1e-3, solve_form=form)
            uw.direction(r)
        get_approximation("unit_wise")(MLP([6, 16, 16, 2], seed=0), X, damping=1e-3).direction(
            rng.standard_normal((24, 2)))                                   # C = 2: the full dual path
        btd = get_approximation("block_tridiagonal")(MLP([30, 64, 64, 1], seed=0), rng.standard_normal((12, 30)))
        btd.direction(rng.standard_normal((12, 1)))
        assert blas_thread_count() == 2                                     # restored after every call
    names = {n for n, _ in small}
    assert {"_prepare_systems", "_chunk_system", "_compressed_dual_weights", "_primal_direction", "_operator",
            "_build_layerwise", "dual_solution"} <= names
    assert [x for x in small if x[1] != 1] == []
    assert gemm and all(count == 2 for _, count in gemm), gemm



@pytest.mark.parametrize("name", ["exact", "block_diagonal", "kfac", "diagonal", "ekfac", "unit_wise"])
def test_every_approximation_builds_its_dual_system_with_one_blas_thread(monkeypatch, name):
    """Approximation.__init__ runs _prepare (layer Grams, N x N factorisations) in single_blas_thread(); the
    caller's threads are back afterwards (measured: K-FAC steps 9-16x forward+backward next to busy processes
    with the default threads)."""
    from numerics.approximations import APPROXIMATIONS

    _two_threads_or_skip()
    cls = get_approximation(name)
    seen = []
    _record(monkeypatch, cls, "_prepare", seen)
    rng = np.random.default_rng(1)
    with blas_threads(2):
        cls(MLP([8, 40, 40, 1], seed=0), rng.standard_normal((6, 8)))
        assert blas_thread_count() == 2
    assert name in APPROXIMATIONS and seen and all(count == 1 for _, count in seen), seen


BUSY = """
import time, numpy as np
a = np.random.default_rng(0).standard_normal((800, 800))
end = time.time() + float({seconds})
while time.time() < end:
    a @ a
"""


def test_unit_wise_operator_next_to_a_busy_process_stays_near_its_one_thread_time():
    _two_threads_or_skip()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 64))
    net = MLP([64, 256, 256, 1], seed=0)

    def timed(threads):
        with blas_threads(threads):
            t0 = time.perf_counter()
            T = function_space_operator(net, X, "unit_wise")
            return time.perf_counter() - t0, T

    timed(1)  # warm-up (imports, caches) before the busy process starts
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=60)], env=None)
    try:
        time.sleep(0.3)
        ratios = []
        for _ in range(3):
            t_one, T_one = timed(1)
            t_default, T_default = timed(2)
            ratios.append(t_default / t_one)
        # the same operator either way (rounding of a changed BLAS thread count only)
        assert np.allclose(T_default, T_one, rtol=1e-10, atol=1e-10)
    finally:
        busy.kill()
        busy.wait()
    assert float(np.median(ratios)) < 3.0, ratios
