"""The architecture holds: the import contracts (pyproject.toml), no import cycle among
napari_unet's modules, and no module too long to read."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import napari_unet

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(napari_unet.__file__).resolve().parent
#: The longest a module may grow (lines); split one by responsibility before it does.
MAX_LINES = 450


def test_import_contracts_hold():
    pytest.importorskip("importlinter")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c",
                             "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.exit(lint_imports_command())", "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly
    connected components of more than one module, or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in imports[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1 or v in imports[v]:
                found.append(sorted(group))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_modules():
    """Imports at any level count: module-level, inside functions and under
    ``TYPE_CHECKING``."""
    grimp = pytest.importorskip("grimp")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    graph = grimp.build_graph("napari_unet", include_external_packages=False,
                              exclude_type_checking_imports=False, cache_dir=None)
    assert "napari_unet.core.predict.plan" in graph.modules  # the package under test
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(imports) == []


def test_no_module_is_too_long_to_read():
    lengths = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines())
               for p in PACKAGE.rglob("*.py")}
    assert len(lengths) > 50
    assert {p: n for p, n in lengths.items() if n > MAX_LINES} == {}
