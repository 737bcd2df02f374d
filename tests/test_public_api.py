"""The public API: every module of theory/, numerics/ and proofs/ declares ``__all__`` (the names a
user imports), every declared name exists, the three top-level packages export what they claim,
and the layering holds (theory imports neither numerics nor proofs; numerics does not import proofs)."""
import importlib
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "numerics", "proofs")

from tests.test_doctests import _modules  # noqa: E402  -- the same module list the doctests walk


@pytest.mark.parametrize("name", _modules())
def test_module_declares_all(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} declares no __all__"
    declared = list(module.__all__)
    assert all(isinstance(n, str) for n in declared), name
    assert len(declared) == len(set(declared)), f"{name}: duplicate names in __all__"
    missing = [n for n in declared if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names that do not exist: {missing}"


#: What the interface promises each package exports (more is fine).
EXPORTS = {
    "theory": {"analytic_kernels", "isotropy_constant", "isotropy_result", "NotIsotropic", "theory_entry",
               "theory_names", "approximation_label", "register_theory"},
    "numerics": {"MLP", "function_space_operator", "train_ngd", "ngd_step", "History", "get_approximation",
                 "APPROXIMATIONS", "SingularSystemError", "isotropy_error", "WidthSweep"},
    "proofs": {"Claim", "ClaimResult", "RunConfig", "load_claims", "select_claims", "get_claim",
               "compare", "sweep", "control", "combine", "to_result", "derivation_verdict", "SubVerdict"},
}


@pytest.mark.parametrize("package", PACKAGES)
def test_top_level_exports(package):
    module = importlib.import_module(package)
    assert EXPORTS[package] <= set(module.__all__), EXPORTS[package] - set(module.__all__)
    namespace = {}
    exec(f"from {package} import *", namespace)  # noqa: S102 -- every name in __all__ resolves
    assert set(module.__all__) <= set(namespace)
    assert set(module.__all__) <= set(dir(module))


def test_top_level_names_are_the_defining_objects():
    import numerics
    import proofs
    import theory
    from numerics.training import train_ngd
    from proofs.claim import claim, Claim
    from proofs.registry import get_claim
    from theory.isotropy import isotropy_constant, NotIsotropic
    from theory.kernels import analytic_kernels
    from theory.registry import theory_entry

    assert theory.analytic_kernels is analytic_kernels and theory.isotropy_constant is isotropy_constant
    assert theory.NotIsotropic is NotIsotropic and theory.theory_entry is theory_entry
    assert numerics.train_ngd is train_ngd
    assert proofs.Claim is Claim and proofs.get_claim is get_claim
    # ``proofs.claim`` is the module (the decorator is ``proofs.claim.claim``), whatever was imported first
    assert proofs.claim.claim is claim and callable(claim) and "claim" not in proofs.__all__
    with pytest.raises(AttributeError):
        theory.no_such_name  # noqa: B018


def run_python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_layering_and_light_imports():
    """``import theory`` loads no SymPy (nor NumPy); the lower layers never import the upper ones,
    also with every theory module and every numerics module imported."""
    out = run_python("""
        import importlib, pkgutil, sys
        import theory
        assert "sympy" not in sys.modules and "numpy" not in sys.modules, "import theory is not light"
        for pkg in ("theory", "numerics"):
            module = importlib.import_module(pkg)
            exec(f"from {pkg} import *", {})
            for info in pkgutil.walk_packages(module.__path__, prefix=pkg + "."):
                importlib.import_module(info.name)
            above = {"theory": ("numerics", "proofs"), "numerics": ("proofs",)}[pkg]
            leaked = sorted(m for m in sys.modules if m.split(".")[0] in above)
            assert not leaked, f"importing {pkg} imported {leaked[:5]}"
        print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
