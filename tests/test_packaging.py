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
    inits = [p.relative_to(ROOT) for d in ("alphaforge", "engine", "factors", "data")
             for p in (ROOT / d).rglob("__init__.py")]  # fmt: skip
    wanted = {str(p) if p.parts[0] == "alphaforge" else f"alphaforge/{p}" for p in inits}
    assert wanted <= set(names), f"packages missing from the wheel: {sorted(wanted - set(names))}"
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"alphaforge"}, f"only the alphaforge namespace at the top: {sorted(top)}"
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "alphaforge = alphaforge.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.fixture(scope="module")
def wheel_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the built wheel; its dependencies come from this interpreter's
    site-packages through a .pth line (a path listed in a .pth file is not a site dir, so the
    development tree's editable-install finder is not loaded there)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=300)  # fmt: skip
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "_alphaforge_test_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-compile", "-q", str(wheel)], check=True, timeout=600)  # fmt: skip
    return venv


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    """A research folder whose own files carry the library's old generic names."""
    for name in ("data.py", "factors.py", "engine.py"):
        (tmp_path / name).write_text("raise ImportError('the user\\'s own module was imported')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("raise ImportError('user data package')\n")
    return tmp_path


def _run(venv: Path, args: list[str], cwd: Path,
         extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra or {})
    env["NUMBA_CACHE_DIR"] = str(cwd / ".nb")
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


def test_wheel_imports_beside_user_modules(wheel_venv: Path, hostile_folder: Path) -> None:
    py = str(wheel_venv / "bin" / "python")
    code = (
        "import alphaforge as af, alphaforge.engine as engine, alphaforge.factors, "
        "alphaforge.data, alphaforge.cli; "
        f"assert engine.__file__.startswith({str(wheel_venv)!r}), engine.__file__; "
        "from alphaforge.factors.expr import parse; print(parse('cs_rank(close)'))"
    )
    proc = _run(wheel_venv, [py, "-c", code], hostile_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "cs_rank(close)"
    cli = _run(wheel_venv, ["alphaforge", "--help"], hostile_folder)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "backtest" in cli.stdout
    study = _run(wheel_venv, ["alphaforge", "slippage-study"], hostile_folder)
    assert study.returncode == 2
    assert "pass --recording PATH" in study.stderr
    as_module = _run(wheel_venv, [py, "-m", "alphaforge", "slippage-study"], hostile_folder)
    assert (as_module.returncode, as_module.stderr) == (2, study.stderr)  # python -m alphaforge


def test_pip_lists_no_generic_top_level_package(wheel_venv: Path) -> None:
    show = subprocess.run([sys.executable, "-m", "pip", "--python",
                           str(wheel_venv / "bin" / "python"), "show", "-f", "alphaforge"],
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    files = [ln.strip() for ln in show.stdout.split("Files:")[1].splitlines() if ln.strip()]
    tops = {f.split("/")[0] for f in files if not f.startswith("..")}
    tops = {t for t in tops if not t.endswith(".dist-info") and t != "__pycache__"}
    assert tops == {"alphaforge"}, sorted(tops)


def test_quickstart_notebook_runs_from_the_wheel(
    wheel_venv: Path, hostile_folder: Path, real_dir: Path
) -> None:
    """docs/quickstart.ipynb, executed by a kernel of the fresh venv (no network): ingest of
    real archive files, score, backtest, plots and the report."""
    code = (
        "import nbformat, nbclient, sys; "
        f"nb = nbformat.read({str(ROOT / 'docs' / 'quickstart.ipynb')!r}, as_version=4); "
        "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3').execute(); "
        "print('cells', len(nb.cells))"
    )
    py = str(wheel_venv / "bin" / "python")
    env_extra = {"ALPHAFORGE_QUICKSTART_DATA": str(real_dir / "binance_futures_klines"),
                 "ALPHAFORGE_QUICKSTART_OUT": str(hostile_folder / "qs")}  # fmt: skip
    proc = _run(wheel_venv, [py, "-c", code], hostile_folder, env_extra)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (hostile_folder / "qs" / "report" / "report.html").is_file()
    assert len(list((hostile_folder / "qs" / "store").rglob("*.parquet"))) == len(
        list((real_dir / "binance_futures_klines").iterdir())
    )
