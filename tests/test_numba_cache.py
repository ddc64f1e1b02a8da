"""Numba's cache folder follows the kernels' source: a changed kernel never meets a stale cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alphaforge import numba_cache


def _kernels(root: Path, body: str) -> Path:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "a_nb.py").write_text("x = 1\n")
    (root / "pkg" / "b_nb.py").write_text(body)
    (root / "pkg" / "plain.py").write_text("unrelated = 1\n")
    return root / "pkg"


def test_digest_follows_every_kernel_file_and_nothing_else(tmp_path: Path) -> None:
    root = _kernels(tmp_path, "y = 2\n")
    before = numba_cache.kernel_digest([root])
    (root / "plain.py").write_text("unrelated = 2\n")
    assert numba_cache.kernel_digest([root]) == before
    (root / "b_nb.py").write_text("y = 3\n")  # a callee changed: a new cache folder
    assert numba_cache.kernel_digest([root]) != before


def test_configure_nests_under_the_users_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", numba.config.CACHE_DIR)  # restored after
    root = _kernels(tmp_path / "src", "y = 2\n")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    first = numba_cache.configure([root])
    assert first == tmp_path / "cache" / f"alphaforge-{numba_cache.kernel_digest([root])}"
    assert first.is_dir()
    assert numba_cache.configure([root]) == first  # a child process keeps its parent's folder
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache.configure([root]).parent == tmp_path / "xdg" / "alphaforge" / "numba"


def test_importing_alphaforge_selects_the_installed_kernels_folder(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    code = (
        "import alphaforge, numba, os; print(numba.config.CACHE_DIR); "
        "print(os.environ['NUMBA_CACHE_DIR'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()  # fmt: skip
    expected = str(tmp_path / f"alphaforge-{numba_cache.kernel_digest()}")
    assert out == [expected, expected]
