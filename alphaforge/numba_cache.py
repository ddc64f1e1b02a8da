"""Numba's on-disk cache, keyed by the source of every kernel.

Numba invalidates a cached kernel when *its own* file changes, not when a kernel it calls in
another module changes: after an edit or an upgrade, a stale entry can call into changed code
and crash the process (seen here twice: a segfault in the parallel time-series IC kernel after
edits elsewhere). Every kernel of alphaforge lives in a ``*_nb.py`` module, so at import the
package hashes those files and points numba's cache at a directory named after the hash, under
``$NUMBA_CACHE_DIR`` when set, else under the user's cache folder
(``$XDG_CACHE_HOME`` or ``~/.cache``, then ``alphaforge/numba``). A changed kernel anywhere
starts a fresh cache; an unchanged installation reuses its compiled kernels. When no cache
folder is writable, numba's own default is left in place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGES = ("alphaforge.engine", "alphaforge.factors", "alphaforge.data")


def package_roots() -> list[Path]:
    """The folders of the library packages (wherever the install put them)."""
    roots: list[Path] = []
    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        roots += [Path(p) for p in ((spec.submodule_search_locations or []) if spec else [])]
    return roots


def kernel_digest(roots: Iterable[Path] | None = None) -> str:
    """sha256 (16 hex digits) of every ``*_nb.py`` file under ``roots`` (default: the library
    packages), names and contents, in a stable order."""
    h = hashlib.sha256()
    for root in package_roots() if roots is None else roots:
        for path in sorted(Path(root).rglob("*_nb.py")):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def configure(roots: Iterable[Path] | None = None) -> Path | None:
    """Point numba's cache at the folder of this kernel digest; returns it (None: unchanged)."""
    digest = kernel_digest(roots)
    name = f"alphaforge-{digest}"
    current = os.environ.get("NUMBA_CACHE_DIR")
    if current and Path(current).name == name:
        target = Path(current)  # set by a parent process (a CLI child, a Dask worker)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(current) if current else Path(xdg) / "alphaforge" / "numba"
        target = base / name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(target)
    if "numba" in sys.modules:  # numba read its configuration already
        sys.modules["numba"].config.CACHE_DIR = str(target)
    return target
