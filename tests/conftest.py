"""Shared test fixtures: the real-data folder, seeds, and a writable numba cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = (ROOT.parent / "shared" / "data" / "real").resolve()

settings.register_profile(
    "alphaforge",
    deadline=None,
    derandomize=True,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("alphaforge")


def require_shared() -> bool:
    """True when CI demands the real-data tests run (ALPHAFORGE_REQUIRE_SHARED=1)."""
    return os.environ.get("ALPHAFORGE_REQUIRE_SHARED", "") == "1"


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Path of ../shared/data/real; skips (or fails in CI) when it is absent."""
    if not SHARED_REAL.is_dir():
        if require_shared():
            pytest.fail(f"ALPHAFORGE_REQUIRE_SHARED=1 but {SHARED_REAL} is missing")
        pytest.skip(f"real data folder {SHARED_REAL} is absent (a fresh clone without ../shared)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def klines_only_panel(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A day of the real DOTUSDT and LINKUSDT 1-minute perpetual klines, ingested into a store
    holding nothing else (no metrics, no books, no funding): for errors naming a missing
    dataset."""
    import alphaforge as af

    store = af.Store(tmp_path_factory.mktemp("klines_only") / "store")
    store.ingest(real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz",
                 real_dir / "binance_futures_klines" / "LINKUSDT-1m-2026-02.csv.gz",
                 market="usdm")  # fmt: skip
    return store.panel(start="2026-02-03", end="2026-02-04")


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own research ledger (trial counts and holdout looks), also for the
    CLI subprocesses it starts, so no test's count depends on which tests ran before it."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite"
    monkeypatch.setenv("ALPHAFORGE_LEDGER", str(path))
