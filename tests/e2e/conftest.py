"""End-to-end helpers: run the installed `alphaforge` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def alphaforge_cmd() -> list[str]:
    """The console script when installed (as a user runs it), else the module entry point."""
    exe = shutil.which("alphaforge", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "from alphaforge.cli import main; main()"]


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
    """Run `alphaforge ARGS` in ``cwd``; on failure show its output."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    proc = subprocess.run([*alphaforge_cmd(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(
            f"alphaforge {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc
