"""Test-suite configuration.

BLAS runs single-threaded in tests (see below).

Hypothesis runs derandomised in CI (``CI`` set), so a CI run is reproducible; locally it explores
new examples on every run.  Deadlines are off: several properties do float64 linear algebra whose
time depends on machine load, and timings are not what these tests check.
"""
import os

import matplotlib
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")  # figures are written to files, never shown

# Single-threaded BLAS: the suite is dominated by many small factorisations, for which OpenBLAS
# threads cost more than they give (measured ~10x slower on a loaded 2-core box); results do not
# depend on it.  Benchmarks, not tests, measure multi-threaded speed.
threadpool_limits(limits=1, user_api="blas")

settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
