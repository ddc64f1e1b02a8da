"""The import direction of docs/design.md, enforced on the source (an import-linter).

alphaforge (API, CLI, wiring) -> factors -> engine -> numpy/numba, and alphaforge -> data.
The three library packages never import the composition root (``alphaforge.cli``,
``alphaforge.panels``, ...), and every import counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "engine": {"engine"},
    "data": {"data"},
    "factors": {"factors", "engine"},
}


def _inside(module: str) -> str | None:
    """The alphaforge part a module name belongs to ("alphaforge.engine.panel" -> "engine"),
    "" for the top package itself, None for anything outside alphaforge."""
    parts = module.split(".")
    if parts[0] != "alphaforge":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, alphaforge part) of every import of an alphaforge module in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, _inside(a.name)) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, _inside(node.module)))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "<relative>"))
    return [(line, part) for line, part in found if part is not None]


def _modules() -> list[Path]:
    return sorted(p for pkg in ALLOWED for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_to_its_right(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    pkg = rel.split("/")[0]
    bad = [(line, part) for line, part in _imports(path) if part not in ALLOWED[pkg]]
    assert not bad, f"{rel} imports alphaforge parts {bad}: forbidden by the import direction"


def test_the_library_packages_hold_no_command_line_code() -> None:
    strays = sorted(
        str(p.relative_to(ROOT)) for pkg in ALLOWED for p in (ROOT / pkg).rglob("cli*.py")
    )
    assert not strays, f"command-line modules belong in alphaforge/cli/: {strays}"


def test_kernel_modules_import_only_numpy_numba_stdlib() -> None:
    allowed = {"numpy", "numba", "math", "__future__", "typing", "alphaforge"}
    for path in (p for pkg in ALLOWED for p in (ROOT / pkg).rglob("*_nb.py")):
        tree = ast.parse(path.read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}  # fmt: skip
        mods |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}  # fmt: skip
        assert mods <= allowed, f"{path.relative_to(ROOT)} imports {sorted(mods - allowed)}"
