"""Test-suite configuration.

Hypothesis runs derandomised in CI (``CI`` set), so a CI run is reproducible; locally it explores
new examples on every run.  Deadlines are off: several properties do float64 linear algebra whose
time depends on machine load, and timings are not what these tests check.
"""
import os

import matplotlib
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")  # figures are written to files, never shown

settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
