"""The import graph of the project's own modules: no cycles, and no import up the floors.

Floors: ``theory`` (lowest) <- ``numerics`` <- ``proofs``: a module may import its own floor and the
floors below it, never one above.  Every ``import`` statement counts, at module level or inside a
function (a lazy import is still a dependency; a cycle through one is still a cycle).  Dynamic
imports (``importlib.import_module``, e.g. the claim registry loading ``proofs.claims.*``) are not
statements and are not counted.  The graph is read from the source with :mod:`ast`, so nothing is
imported here.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = {"theory": 0, "numerics": 1, "proofs": 2}


def module_files():
    """``{dotted module name: path}`` of every module of the three packages."""
    out = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_modules(name, path, known):
    """``{(imported module, line)}`` of the project's modules imported anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            # "import a.b.c" depends on a.b.c (and runs a, a.b): keep the deepest known module
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add((target, node.lineno))
    return found


def import_graph():
    files = module_files()
    return files, {name: imported_modules(name, path, files) for name, path in files.items()}


def find_cycles(graph):
    """Strongly connected components with more than one module (or a self-loop), Tarjan's algorithm."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    files, graph = import_graph()
    assert {"theory.assumptions", "numerics.approximations.base", "proofs.falsify", "proofs.cli"} <= set(files)
    # a known edge of each kind: module level and inside a function
    assert any(t == "theory.assumptions" for t, _ in graph["numerics.approximations.base"])
    assert any(t == "proofs.registry" for t, _ in graph["proofs.strategies"])  # lazy, in assumption_set


def test_no_import_cycles():
    _, graph = import_graph()
    edges = {name: {t for t, _ in targets} for name, targets in graph.items()}
    cycles = find_cycles(edges)
    details = []
    for component in cycles:
        members = set(component)
        details += [f"{a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a]) if b in members]
    assert not cycles, "import cycles among the project's modules:\n  " + "\n  ".join(details)


def test_no_import_runs_up_the_floors():
    files, graph = import_graph()
    upward = [f"{name} (floor {name.split('.')[0]}) imports {target} at {files[name].relative_to(ROOT)}:{line}"
              for name, targets in graph.items() for target, line in sorted(targets)
              if FLOORS[target.split(".")[0]] > FLOORS[name.split(".")[0]]]
    assert not upward, "imports up the floors theory <- numerics <- proofs:\n  " + "\n  ".join(upward)


def test_the_checks_can_fail():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    # relative imports resolve against the package
    files = {"proofs": ROOT / "proofs" / "__init__.py", "proofs.x": None, "proofs.claims": None, "theory.y": None}
    src = "from . import x\nfrom .claims import z\ndef f():\n    import theory.y.w\n"
    path = ROOT / "tests" / "_layers_probe.py"
    try:
        path.write_text(src)
        found = {t for t, _ in imported_modules("proofs.probe", path, files)}
    finally:
        path.unlink()
    assert found == {"proofs", "proofs.x", "proofs.claims", "theory.y"}


@pytest.mark.parametrize("module", ["proofs.strategies", "proofs.assumption_spaces", "proofs.falsify",
                                    "theory.assumptions"])
def test_module_imports_alone_in_a_fresh_interpreter(module):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
