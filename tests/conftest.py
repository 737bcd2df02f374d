"""Test-suite configuration.

BLAS runs single-threaded in tests (see below).

Hypothesis runs derandomised in CI (``CI`` set), so a CI run is reproducible; locally it explores
new examples on every run.  Deadlines are off: several properties do float64 linear algebra whose
time depends on machine load, and timings are not what these tests check.
"""
import matplotlib
from threadpoolctl import threadpool_limits

from proofs.hypothesis_profiles import load_for_tests

matplotlib.use("Agg")  # figures are written to files, never shown

# Single-threaded BLAS: the suite is dominated by many small factorisations, for which OpenBLAS
# threads cost more than they give (measured ~10x slower on a loaded 2-core box); results do not
# depend on it.  Benchmarks, not tests, measure multi-threaded speed.
threadpool_limits(limits=1, user_api="blas")

# "ci" (derandomised) when CI is set, "dev" otherwise; NGD_HYPOTHESIS_PROFILE=thorough for nightly runs
load_for_tests()
