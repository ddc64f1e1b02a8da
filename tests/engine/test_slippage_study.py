"""The depth study: flow strategy and bars by hand, study invariants, and the CLI (--json, PNG,
missing default recording) on a short real recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from alphaforge.cli import app
from alphaforge.cli import slippage as cli_slippage
from alphaforge.data import schemas
from alphaforge.engine.slippage_study import build_bars, flow_weights, run_study

NEXO = "binance_ws_hftbacktest/spot/nexousdt_20240723.dat.gz"


def test_flow_weights_flip_only_on_sign_change() -> None:
    flow = np.array([1.0, 1.0, -5.0, 0.0, 2.0, 4.0, 0.0, -1.0])
    # rolling sum over 2: [., 2, -4, -5, 2, 6, 4, -1]
    w = flow_weights(flow, 2)
    np.testing.assert_array_equal(w, [np.nan, 1, -1, np.nan, 1, np.nan, np.nan, -1])


def _depth_and_trades() -> tuple[pa.Table, pa.Table]:
    sec = 1_000_000
    rows = []
    for t in range(12):  # snapshot each second, mid 100 + t (Tardis-style: no update ids)
        mid = 100.0 + t
        for is_bid, px, q in ((True, mid - 0.5, 1.0), (True, mid - 1.5, 5.0),
                              (False, mid + 0.5, 1.0), (False, mid + 1.5, 5.0)):  # fmt: skip
            rows.append(("X", t * sec + 1, t * sec + 1, None, None, None, True, is_bid, px, q))
    depth = pa.table(list(zip(*rows, strict=True)), schema=schemas.DEPTH_UPDATES)
    trades = pa.table({"symbol": ["X"] * 3, "trade_id": [1, 2, 3], "trade_uid": [None] * 3,
                       "price": [101.0, 102.0, 103.0], "qty": [2.0, 1.0, 4.0],
                       "quote_qty": [202.0, 102.0, 412.0],
                       "ts": pa.array([1_500_000, 1_700_000, 2_200_000], schemas.TS),
                       "is_buyer_maker": [False, True, False]}, schema=schemas.TRADES)  # fmt: skip
    return depth, trades


def test_build_bars_by_hand() -> None:
    depth, trades = _depth_and_trades()
    bars = build_bars(depth, trades, 1_000_000, latency_us=0)
    # bar closes at 1 s, 2 s, ...: close = mid of the snapshot at t s + 1 µs before -> mid(t-1)
    np.testing.assert_array_equal(bars.ts_us[:3], [2_000_000, 3_000_000, 4_000_000])
    np.testing.assert_array_equal(bars.close[:3], [101.0, 102.0, 103.0])
    np.testing.assert_array_equal(bars.open[:3], [100.0, 101.0, 102.0])  # previous close's book
    np.testing.assert_array_equal(bars.volume[:2], [3.0, 4.0])  # (1 s, 2 s], (2 s, 3 s]
    np.testing.assert_array_equal(bars.flow[:2], [1.0, 4.0])
    assert bars.spread_bps[0] == pytest.approx(1.0 / 100.0 * 1e4)
    assert bars.book.levels == 2
    late = build_bars(depth, trades, 1_000_000, latency_us=1_000_000)
    np.testing.assert_array_equal(late.open[:2], [101.0, 102.0])  # book 1 s after decision


def test_run_study_invariants() -> None:
    depth, trades = _depth_and_trades()
    bars = build_bars(depth, trades, 1_000_000)
    sizes = [10.0, 1000.0]
    out = run_study(bars, sizes, [1, 0], window=1, impact_k=0.5)
    rows = {(r["model"], r["levels"], r["size"]): r for r in out["rows"]}
    assert len(rows) == len(sizes) * 6
    assert rows[("none", "-", 10.0)]["cost_bps"] == 0.0
    assert rows[("fixed_bps", "-", 10.0)]["cost_bps"] == pytest.approx(1.0, rel=1e-9)
    for s in sizes:  # the deeper book never costs less than one level with a 0-bps penalty
        assert rows[("book_walk", "all", s)]["cost_bps"] >= rows[("book_walk", 1, s)]["cost_bps"]
    small, big = rows[("book_walk", "all", 10.0)], rows[("book_walk", "all", 1000.0)]
    assert small["cost_bps"] == pytest.approx(0.5 / 100.5 * 1e4, rel=0.05)  # half-spread only
    assert big["cost_bps"] > small["cost_bps"]
    assert out["impact_k"] == 0.5


def test_cli_json_and_plot_on_real_recording(real_dir: Path, tmp_path: Path) -> None:
    rec = real_dir / NEXO
    res = CliRunner().invoke(app, ["slippage-study", "--recording", str(rec), "--bar", "10s",
                                   "--sizes", "1e3,1e5", "--levels", "5,all", "--json",
                                   "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["book"]["symbol"] == "NEXOUSDT"
    assert doc["book"]["seq_mode"] == "spot"
    assert len(doc["rows"]) == 2 * 6
    by = {(r["model"], r["levels"], r["size"]): r for r in doc["rows"]}
    for size in (1e3, 1e5):
        assert by[("none", "-", size)]["cost_bps"] == 0
        assert by[("book_walk", "all", size)]["cost_bps"] >= by[("book_walk", 5, size)]["cost_bps"]
    assert by[("book_walk", "all", 1e5)]["cost_bps"] > by[("book_walk", "all", 1e3)]["cost_bps"]
    png = tmp_path / "slippage_study.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "slippage_study.json").read_text())["bars"] == doc["bars"]


def test_cli_missing_default_recording(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli_slippage, "SHARED_DEFAULT", tmp_path / "absent")
    res = CliRunner().invoke(app, ["slippage-study"])
    assert res.exit_code == 2
    assert "pass --recording" in res.output


def test_default_recording_found_in_the_development_layout(real_dir: Path) -> None:
    files = cli_slippage.default_recording()
    assert files
    want = real_dir / "binance_ws_hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    assert files[0].resolve() == want.resolve()


def test_cli_bad_options(real_dir: Path) -> None:
    rec = str(real_dir / NEXO)
    res = CliRunner().invoke(app, ["slippage-study", "--recording", rec, "--levels", "5,deep"])
    assert res.exit_code != 0
    assert "'deep'" in res.output
    res = CliRunner().invoke(app, ["slippage-study", "--recording", rec, "--bar", "1h"])
    assert res.exit_code != 0


def test_cli_store_source_errors_name_what_is_missing(real_dir: Path, tmp_path: Path) -> None:
    rec = str(real_dir / NEXO)
    res = CliRunner().invoke(app, ["slippage-study", "--store", str(tmp_path), "--json"])
    assert res.exit_code == 2
    assert json.loads(res.stdout)["error"] == "--store needs --symbol (the symbol to study)"
    res = CliRunner().invoke(app, ["slippage-study", "--store", str(tmp_path), "--symbol", "X",
                                   "--recording", rec])  # fmt: skip
    assert res.exit_code == 2
    assert "pass one source" in res.output
    import alphaforge as af

    klines = real_dir / "binance_futures_klines" / "DOTUSDT-1m-2026-02.csv.gz"
    assert af.Store(tmp_path / "st").ingest(klines, market="usdm").ok
    res = CliRunner().invoke(app, ["slippage-study", "--store", str(tmp_path / "st"),
                                   "--symbol", "DOTUSDT", "--json"])  # fmt: skip
    assert res.exit_code == 2
    err = json.loads(res.stdout)["error"]
    assert "has no depth_updates of DOTUSDT (market=usdm)" in err
    assert "it holds depth for: no symbol" in err
