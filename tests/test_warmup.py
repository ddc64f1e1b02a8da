"""The warm-up helper: skipped when not worth it, and its body runs (it swallows its own errors
in production, so a broken helper would otherwise go unnoticed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphaforge import warmup


def test_skipped_on_request_and_on_a_warm_cache(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("ALPHAFORGE_NO_WARMUP", "1")
    assert warmup.start("demo") is None
    monkeypatch.delenv("ALPHAFORGE_NO_WARMUP")
    for i in range(warmup.WARM_INDEX_FILES):
        (tmp_path / f"k{i}.nbi").write_bytes(b"")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert warmup.start("demo") is None


def test_the_demo_tail_runs() -> None:
    warmup._demo_tail()  # raises if any step of the helper broke


def test_window_families_compiles_every_family_kernel() -> None:
    from numba import types

    from alphaforge.factors.expr import ts_nb

    families = {ts_nb.window_kernel(c, 5) for c in ts_nb.WINDOW_CODES}
    assert len(families) == 5
    warmup.window_families()
    array = types.Array(types.float64, 2, "C")
    for kernel in families:  # each holds a compiled (or cache-loaded) version for 2-D arrays
        assert any(sig[0] == array for sig in kernel.signatures), kernel
