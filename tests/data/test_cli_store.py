"""Tests of `alphaforge store ls` / `alphaforge store info`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.data import schemas
from alphaforge.data.store import Store

T0 = 1_704_067_200_000_000  # 2024-01-01 UTC
MIN = 60_000_000


def bars(symbol: str, start_min: int, n: int) -> pa.Table:
    m = start_min + np.arange(n, dtype=np.int64)
    px = 100.0 + m % 7
    return pa.table(
        {
            "symbol": [symbol] * n,
            "open_time": pa.array(T0 + m * MIN).cast(schemas.TS),
            "open": px,
            "high": px + 1,
            "low": px - 1,
            "close": px,
            "volume": np.ones(n),
            "close_time": pa.array(T0 + m * MIN + MIN - 1000).cast(schemas.TS),
            "quote_volume": px,
            "trades": np.ones(n, dtype=np.int64),
            "taker_buy_volume": np.ones(n) / 2,
            "taker_buy_quote_volume": px / 2,
        }
    )


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    store = Store(tmp_path / "s")
    store.write(
        pa.concat_tables([bars("BTCUSDT", 44_600, 100), bars("ETHUSDT", 0, 10)]),
        "klines_1m",
        source="archive:BTC.zip",
        source_sha256="ef" * 32,
    )
    part = store.partitions("klines_1m", symbol="ETHUSDT")[0]
    store.set_validation(part, "passed", {"issues": 0})
    return tmp_path / "s"


runner = CliRunner()


def test_ls_json_summarizes_datasets(filled: Path) -> None:
    res = runner.invoke(app, ["store", "ls", "--store", str(filled), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (row,) = doc["datasets"]
    assert (row["exchange"], row["market"], row["dataset"]) == ("binance", "usdm", "klines_1m")
    assert (row["symbols"], row["partitions"], row["rows"]) == (2, 3, 110)
    assert row["first"] == "2024-01-01T00:00:00.000000Z"
    assert row["last"] == "2024-02-01T00:59:00.000000Z"  # minute 44,699 = Feb 1st 00:59
    assert row["validation"] == {"passed": 1, "unvalidated": 2}
    assert row["bytes"] > 0


def test_ls_table_and_env_var(filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAFORGE_STORE", str(filled))
    res = runner.invoke(app, ["store", "ls"])
    assert res.exit_code == 0, res.output
    assert "klines_1m" in res.output
    assert "110" in res.output


def test_info_filters_symbols_and_shows_sources(filled: Path) -> None:
    res = runner.invoke(
        app, ["store", "info", "klines_1m", "--symbol", "BTCUSDT", "--store", str(filled), "--json"]
    )
    assert res.exit_code == 0, res.output
    parts = json.loads(res.stdout)["partitions"]
    assert [(p["symbol"], p["month"], p["rows"]) for p in parts] == [
        ("BTCUSDT", "2024-01", 40),
        ("BTCUSDT", "2024-02", 60),
    ]
    assert parts[0]["sources"][0]["sha256"] == "ef" * 32
    assert parts[1]["first"] == "2024-02-01T00:00:00.000000Z"
    table = runner.invoke(app, ["store", "info", "klines_1m", "--store", str(filled)])
    assert table.exit_code == 0
    assert "ETHUSDT" in table.output
    assert "passed" in table.output
    assert "archive:BTC.zip" in table.output


def test_info_unknown_dataset_and_empty(filled: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["store", "info", "kline_1m", "--store", str(filled)])
    assert res.exit_code == 2
    assert "unknown dataset 'kline_1m'" in res.output
    res = runner.invoke(app, ["store", "info", "funding", "--store", str(filled)])
    assert res.exit_code == 0
    assert "no partitions of funding" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["store", "ls", "--store", str(tmp_path / "empty"), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["datasets"] == []
    for cmd in (["ls"], ["info", "klines_1m"]):  # a folder that does not exist is a typo
        res = runner.invoke(app, ["store", *cmd, "--store", str(tmp_path / "none"), "--json"])
        assert res.exit_code == 2, res.output
        doc = json.loads(res.stdout)
        assert doc["ok"] is False
        assert doc["error"].startswith(f"no store at {str(tmp_path / 'none')!r}"), doc


def test_console_script_runs(filled: Path) -> None:
    exe = Path(sys.executable).parent / "alphaforge"
    if not exe.exists():
        pytest.fail(f"the alphaforge console script is not installed beside {sys.executable}")
    out = subprocess.run(
        [str(exe), "store", "ls", "--store", str(filled), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout)["datasets"][0]["rows"] == 110
