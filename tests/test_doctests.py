"""Every docstring example in theory/, numerics/ and proofs/ runs and prints what it says.

The examples are part of the documentation (SymPy/mpmath style: small functions with runnable
examples); a stale one is a documentation bug, so every module's examples run here, not a
hand-picked list.  Output that depends on float rounding uses ``+ELLIPSIS`` or rounds explicitly, so
the examples hold under every BLAS kernel.
"""
import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("theory", "numerics", "proofs")


def _modules():
    names = []
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")
                  if info.name.rsplit(".", 1)[-1] != "__main__"]
    return sorted(names)


@pytest.mark.parametrize("module", _modules())
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {module}"
