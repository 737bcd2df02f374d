"""theory._environment: OpenBLAS's idle-worker spin is shortened before numpy loads (issue 14).

Each case runs a fresh interpreter (the setting only works before OpenBLAS loads) and reads back what the
loaded libraries apply, through their exported ``openblas_thread_timeout()`` (numerics.threads.blas_thread_info):
if ``import theory`` stopped setting the variable, or set it after numpy loaded, the libraries would report
OpenBLAS's default 28 and these tests fail.
"""
import json
import os
import subprocess
import sys

import pytest

from theory._environment import OPENBLAS_THREAD_TIMEOUT

READ_BACK = ("import json, os\n{imports}\nfrom numerics.threads import blas_thread_info\n"
             "print(json.dumps([os.environ.get('OPENBLAS_THREAD_TIMEOUT'), "
             "[[d['filepath'], d['thread_timeout']] for d in blas_thread_info() if d['internal_api'] == 'openblas']]))")


def _run(imports: str, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", READ_BACK.format(imports=imports)], env=environ, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    variable, libraries = json.loads(out.strip().splitlines()[-1])
    libraries = dict(libraries)
    if not libraries:
        pytest.skip("no OpenBLAS loaded here (another BLAS has no idle-spin setting)")
    if None in libraries.values():
        pytest.skip("this OpenBLAS does not export openblas_thread_timeout() (or is an OpenMP build): the spin in "
                    "effect cannot be read back")
    return variable, libraries


@pytest.mark.parametrize("first", ["theory", "numerics", "proofs"])
def test_importing_the_package_first_shortens_the_spin(first):
    variable, libraries = _run(f"import {first}\nimport numpy, scipy.linalg")
    assert variable == str(OPENBLAS_THREAD_TIMEOUT)
    assert set(libraries.values()) == {OPENBLAS_THREAD_TIMEOUT}, libraries


def test_a_users_setting_is_kept_and_clamped_like_openblas():
    variable, libraries = _run("import numerics\nimport numpy, scipy.linalg", OPENBLAS_THREAD_TIMEOUT="2")
    assert variable == "2"
    assert set(libraries.values()) == {4}, libraries          # OpenBLAS clamps the exponent to [4, 30]
    variable, libraries = _run("import numerics\nimport numpy, scipy.linalg", OPENBLAS_THREAD_TIMEOUT="24")
    assert (variable, set(libraries.values())) == ("24", {24})
    variable, libraries = _run("import numerics\nimport numpy, scipy.linalg", OPENBLAS_THREAD_TIMEOUT="")
    assert (variable, set(libraries.values())) == (str(OPENBLAS_THREAD_TIMEOUT), {OPENBLAS_THREAD_TIMEOUT})  # empty = unset


def test_numpy_imported_first_keeps_the_default_and_it_is_reported():
    """The documented limitation: an OpenBLAS that loaded before ``import theory`` keeps its default spin,
    and blas_thread_info says so (numpy's library at 28, scipy's -- loaded after -- at the package's value)."""
    _, libraries = _run("import numpy\nimport numerics\nimport scipy.linalg")
    numpy_lib = [path for path in libraries if "numpy" in os.path.basename(os.path.dirname(path))]
    if not numpy_lib:
        pytest.skip("numpy's BLAS is not a bundled OpenBLAS here")
    assert libraries[numpy_lib[0]] == 28
    assert OPENBLAS_THREAD_TIMEOUT in set(libraries.values()) or len(libraries) == 1


def test_environment_record_carries_the_spin():
    from proofs.environment import blas_info
    from proofs.report.common import env_rows

    info = blas_info()
    assert all("thread_timeout" in row for row in info)
    openblas = [row for row in info if row["api"] == "openblas" and row["thread_timeout"] != ""]
    if not openblas:
        pytest.skip("no OpenBLAS whose spin can be read back is loaded")
    assert all(row["thread_timeout"].isdigit() and 4 <= int(row["thread_timeout"]) <= 30 for row in openblas)
    blas_row = dict((row[0], row[1]) for row in env_rows({"environment": {"blas": info}}))["BLAS"]
    assert "idle spin 2^" in blas_row
