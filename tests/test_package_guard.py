"""The import guard (theory/_guard.py): a foreign ``theory``/``numerics``/``proofs`` fails at import with
a message saying what was found, where, and what to do; ours -- from the source tree or through an
editable install's finder -- imports silently.  Each case runs in a fresh interpreter (subprocess),
since the packages are already imported in this one."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code, cwd, pythonpath=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env.pop("PYTHONSTARTUP", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def foreign_package(base: Path, name: str) -> Path:
    """A package called ``name`` that is not ours (e.g. the index's ``numerics`` distribution)."""
    pkg = base / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Someone else\'s package."""\nVALUE = 1\n')
    return pkg


def test_our_packages_pass_the_guard():
    from theory import _guard
    for name in _guard.PACKAGES:
        assert _guard.problem(name) is None, name
        assert __import__(name).__distribution__ == "ngd-verifier" == _guard.DISTRIBUTION


def test_marker_matches_setup_cfg():
    from theory import _guard
    assert f"name = {_guard.DISTRIBUTION}\n" in (ROOT / "setup.cfg").read_text()
    for name in _guard.PACKAGES:
        assert _guard.MARKER in (ROOT / name / "__init__.py").read_text(), name


def test_source_tree_from_another_directory(tmp_path):
    out = run_python("import proofs, numerics, theory; print(theory.__file__)", cwd=tmp_path, pythonpath=[ROOT])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT / "theory" / "__init__.py")


def test_editable_install_finder(tmp_path):
    """setuptools' editable install adds a meta-path finder mapping each top-level name to the checkout
    (no sys.path entry); the guard looks packages up the same way import does, so it passes."""
    code = f"""
        import sys
        from importlib.machinery import PathFinder
        MAPPING = {{name: {str(ROOT)!r} for name in ("theory", "numerics", "proofs")}}

        class EditableFinder:
            @classmethod
            def find_spec(cls, fullname, path=None, target=None):
                if fullname in MAPPING:
                    return PathFinder.find_spec(fullname, [MAPPING[fullname]])
                return None

        sys.path[:] = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
        sys.meta_path.append(EditableFinder)
        import numerics, proofs, theory
        from proofs import get_claim
        print(proofs.__file__)
    """
    out = run_python(code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT / "proofs" / "__init__.py")


@pytest.mark.parametrize("importing", ["theory", "proofs"])
def test_foreign_numerics_on_the_path(tmp_path, importing):
    fake = foreign_package(tmp_path / "site", "numerics")
    out = run_python(f"import {importing}", cwd=tmp_path, pythonpath=[tmp_path / "site", ROOT])
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    assert "ForeignPackageError" in message and "'numerics'" in message
    assert str(fake / "__init__.py") in message                      # where
    assert "pip uninstall" in message and "venv" in message           # what to do


def test_foreign_theory_shadows_ours(tmp_path):
    """A local folder ``theory`` in the working directory: ``import numerics`` says so instead of
    failing somewhere inside."""
    fake = foreign_package(tmp_path, "theory")
    out = run_python("import numerics", cwd=tmp_path, pythonpath=[ROOT])
    assert out.returncode != 0
    message = out.stderr.strip().splitlines()[-1]
    # ImportError from numerics' fallback, or ForeignPackageError when an editable install's finder still
    # resolves theory._guard inside the shadowed package
    assert message.startswith(("ImportError", "theory._guard.ForeignPackageError"))
    assert str(fake / "__init__.py") in message and "reinstall ngd-verifier" in message


def test_overwritten_init(tmp_path):
    """pip installing another ``proofs`` over ours replaces ``proofs/__init__.py`` and leaves our other
    files: the directory looks like ours, the marker line is gone."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ("theory", "numerics"):
        (site / name).symlink_to(ROOT / name, target_is_directory=True)
    fake = foreign_package(site, "proofs")
    (fake / "claim.py").write_text((ROOT / "proofs" / "claim.py").read_text())
    out = run_python("import theory", cwd=tmp_path, pythonpath=[site])
    assert out.returncode != 0
    assert "lacks the line" in out.stderr and str(fake / "__init__.py") in out.stderr


def test_foreign_module_already_imported(tmp_path):
    code = """
        import sys, types
        sys.modules["proofs"] = types.ModuleType("proofs")   # imported earlier from somewhere else
        try:
            import numerics
        except ImportError as err:
            print(type(err).__name__, err)
    """
    out = run_python(code, cwd=tmp_path, pythonpath=[ROOT])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ForeignPackageError") and "'proofs'" in out.stdout


def test_guard_is_cheap(tmp_path):
    """The guard adds a couple of path look-ups and file reads: ``import theory`` loads no SymPy/NumPy
    and takes well under a second even on a loaded machine."""
    code = """
        import sys, time
        t = time.perf_counter()
        import theory, proofs
        print(time.perf_counter() - t, "sympy" in sys.modules, "numpy" in sys.modules)
    """
    out = run_python(code, cwd=tmp_path, pythonpath=[ROOT])
    assert out.returncode == 0, out.stderr
    seconds, sympy, numpy = out.stdout.split()
    assert float(seconds) < 0.5 and sympy == numpy == "False"
