"""The wheel ships one top-level package, alphaforge (with engine, factors and data inside it),
their py.typed markers and the console script, and the installed copy works outside the
source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
           str(out), str(ROOT)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("alphaforge-*.whl")
    return whl


def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in ("alphaforge", "alphaforge/engine", "alphaforge/factors", "alphaforge/data"):
        assert f"{pkg}/__init__.py" in names
        assert f"{pkg}/py.typed" in names
    assert "alphaforge/factors/expr/parser.py" in names
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"alphaforge"}, f"only the alphaforge namespace at the top: {sorted(top)}"
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "alphaforge = alphaforge.engine.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_copy_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q",
                    "--target", str(target), str(wheel)], check=True, timeout=600)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target), "NUMBA_CACHE_DIR": str(tmp_path / "nb")}
    code = (
        "import alphaforge.engine as engine, alphaforge.factors, alphaforge.data; "
        "import alphaforge.engine.cli as c; "
        f"assert engine.__file__.startswith({str(target)!r}), engine.__file__; "
        "from alphaforge.factors.expr import parse; print(parse('cs_rank(close)'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "cs_rank(close)"
