"""The import direction of ../shared/design.md, enforced on the source (an import-linter)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIRING = {"engine/cli.py", "engine/pipeline.py"}
FORBIDDEN = {
    "engine": {"data", "factors"},
    "data": {"engine", "factors"},
    "factors": {"data"},
}


def _package(module: str) -> str:
    """The top package a module name belongs to: "alphaforge.engine.panel" -> "engine"."""
    parts = module.split(".")
    if parts[0] == "alphaforge" and len(parts) > 1:
        return parts[1]
    return parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, _package(a.name)) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, _package(node.module)))
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in FORBIDDEN for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_to_its_right(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    if rel in WIRING:
        return
    pkg = rel.split("/")[0]
    bad = [(line, mod) for line, mod in _imports(path) if mod in FORBIDDEN[pkg]]
    assert not bad, f"{rel} imports {bad}: forbidden by the import direction"


def test_kernel_modules_import_only_numpy_numba_stdlib() -> None:
    allowed = {"numpy", "numba", "math", "__future__", "engine", "factors", "typing"}
    for path in (p for pkg in FORBIDDEN for p in (ROOT / pkg).rglob("*_nb.py")):
        mods = {m for _, m in _imports(path)}
        assert mods <= allowed, f"{path.relative_to(ROOT)} imports {sorted(mods - allowed)}"
