"""Real recordings end to end: ingest a day of NEXOUSDT depth + trades, get 1-minute bars built
from the trades by the exchange's rules, a book rebuilt at every bar, book factors scored on
it, and backtests whose fills walk that real book (CLI and API alike)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alphaforge as af
from alphaforge.data.bars_from_trades import klines_from_trades
from alphaforge.data.recordings import read_hftbacktest
from alphaforge.engine.book import rebuild_books
from alphaforge.engine.errors import InputError
from tests.e2e.conftest import run_cli

FILES = ("spot/nexousdt_20240723.dat.gz", "spot/nexousdt_20240724.dat.gz")


@pytest.fixture(scope="module")
def recorded(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("rec")
    store = af.Store(root / "store")
    paths = [real_dir / "binance_ws_hftbacktest" / f for f in FILES]
    rep = store.ingest(*paths, market="spot")
    assert rep.ok
    assert all("klines_1m" in (i.dataset or "") for i in rep.items)
    return root / "store", [read_hftbacktest(p) for p in paths]


def _reference_bars(trades: pa.Table) -> pd.DataFrame:
    """pandas: full minutes of the trade span, exchange kline rules."""
    df = trades.to_pandas().set_index("ts").sort_index(kind="stable")
    g = df.resample("1min", label="left")
    out = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                        "low": g["price"].min(), "close": g["price"].last(),
                        "volume": g["qty"].sum(), "trades": g["price"].count()})  # fmt: skip
    out["close"] = out["close"].ffill()
    out["open"] = out["open"].fillna(out["close"].shift())
    out["high"] = out["high"].fillna(out["close"])
    out["low"] = out["low"].fillna(out["close"])
    return out.iloc[1:-1]  # the first and last minute are partial


def test_bars_from_real_trades_match_pandas(recorded: tuple[Path, list]) -> None:
    _, recs = recorded
    for rec in recs:
        ref = _reference_bars(rec.trades)
        got = klines_from_trades(rec.trades, 60_000_000).to_pandas().set_index("open_time")
        got.index = got.index.tz_convert("UTC")
        ref.index = ref.index.tz_convert("UTC")
        assert len(got) == len(ref)
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[col].to_numpy(), ref[col].to_numpy(), rtol=1e-12,
                                       err_msg=col)  # fmt: skip
        assert (got["trades"].to_numpy() == ref["trades"].to_numpy()).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 600_000_000), st.floats(1, 2), st.floats(0.1, 5),
                          st.booleans()), min_size=1, max_size=60))  # fmt: skip
def test_bars_from_trades_conserve_volume_and_prices(rows) -> None:
    ts = np.array([r[0] for r in rows], np.int64) + 1_700_000_000_000_000
    t = pa.table({"symbol": ["X"] * len(rows), "trade_id": list(range(len(rows))),
                  "trade_uid": pa.nulls(len(rows), pa.string()),
                  "price": [r[1] for r in rows], "qty": [r[2] for r in rows],
                  "quote_qty": [r[1] * r[2] for r in rows],
                  "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
                  "is_buyer_maker": [r[3] for r in rows]})  # fmt: skip
    bars = klines_from_trades(t, 60_000_000)
    first = ts.min() // 60_000_000 * 60_000_000 + 60_000_000
    last = ts.max() // 60_000_000 * 60_000_000
    inside = (ts >= first) & (ts < last)
    assert bars["volume"].to_numpy().sum() == pytest.approx(sum(
        r[2] for r, k in zip(rows, inside, strict=True) if k))  # fmt: skip
    assert bars["trades"].to_numpy().sum() == inside.sum()
    if bars.num_rows:
        hi, lo = bars["high"].to_numpy(), bars["low"].to_numpy()
        assert (lo <= bars["open"].to_numpy()).all()
        assert (bars["close"].to_numpy() <= hi).all()


def test_panel_book_is_the_recorded_book_at_each_bar(recorded: tuple[Path, list]) -> None:
    store, recs = recorded
    panel = af.Store(store).panel(market="spot")
    assert panel.meta["book"] == "depth_updates (NEXOUSDT)"
    depth = pa.concat_tables([r.depth_updates for r in recs])
    direct = rebuild_books(depth, panel.ts_us, symbols=["NEXOUSDT"], levels=20,
                           time_col="local_ts", on_gap="resync").levels  # fmt: skip
    np.testing.assert_array_equal(panel.book.bid_px, direct.bid_px)
    np.testing.assert_array_equal(panel.book.ask_qty, direct.ask_qty)
    assert np.isfinite(panel.book.bid_px[:, 0, 0]).mean() > 0.99
    # the book agrees with the bars: the best bid is below the next trade price most of the time
    assert (panel.book.bid_px[:, 0, 0] <= panel["close"][:, 0] * 1.002).mean() > 0.95
    score = af.score("book_imbalance", panel, horizons=(1, 5))
    assert np.isfinite(score.raw.ts_rank_ic["NEXOUSDT"])


def test_backtest_fills_walk_the_real_book(recorded: tuple[Path, list], tmp_path: Path) -> None:
    store, _ = recorded
    args = ["backtest", "book_imbalance", "--store", str(store), "--market", "spot",
            "--scheme", "sign", "--gross", "1000", "--json"]  # fmt: skip
    walked = json.loads(run_cli([*args, "--slippage", "book_walk"], tmp_path).stdout)
    fixed = json.loads(run_cli(args, tmp_path).stdout)
    assert walked["settings"]["slippage_model"] == "book_walk"
    assert walked["data"]["book"] == "depth_updates (NEXOUSDT)"
    assert walked["metrics"]["slippage"] > 0
    assert walked["metrics"]["slippage"] != fixed["metrics"]["slippage"]
    panel = af.Store(store).panel(market="spot")
    api = af.backtest("book_imbalance", panel, scheme="sign", gross=1000.0, slippage="book_walk")
    assert api.metrics["sharpe"] == pytest.approx(walked["metrics"]["sharpe"], rel=1e-12)
    fills = api.trades
    assert (fills["slippage"] > 0).all()  # every fill paid the walk of the recorded book
    rep = json.loads(run_cli(["report", "book_imbalance", "--store", str(store), "--market",
                              "spot", "--scheme", "sign", "--slippage", "book_walk", "--out",
                              "rep", "--json"], tmp_path).stdout)  # fmt: skip
    assert (tmp_path / rep["report"]).is_file()


def test_book_walk_without_a_book_names_what_to_ingest(klines_only_panel: af.Panel) -> None:
    panel = klines_only_panel
    assert panel.book is None
    with pytest.raises(InputError, match="ingest depth recordings"):
        af.backtest("mom_20", panel, slippage="book_walk")


def test_sweep_trials_walk_the_book_as_backtest_does(recorded: tuple[Path, list],
                                                      tmp_path: Path) -> None:  # fmt: skip
    store, _ = recorded
    panel = af.Store(store).panel(market="spot")
    out = af.sweep(panel, ["book_imbalance", "rev_1"], {"scheme": ["sign"], "gross": [100.0],
                   "rebalance_every": [1, 5]}, tmp_path / "res", slippage="book_walk")  # fmt: skip
    assert out.n_trials == 4
    for row in out.ranked:
        bt = af.backtest(
            row["factor"],
            panel,
            scheme="sign",
            gross=100.0,
            rebalance_every=int(row["rebalance_every"]),
            slippage="book_walk",
        )
        assert row["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-9, abs=1e-12)
        assert row["slippage"] == pytest.approx(bt.metrics["slippage"], rel=1e-9)
    fixed = af.sweep(panel, ["book_imbalance"], {"scheme": ["sign"], "gross": [100.0]},
                     tmp_path / "res2")  # fmt: skip
    assert fixed.sweep_id != out.sweep_id
    cli = json.loads(run_cli(["sweep", "--store", str(store), "--market", "spot", "--factors",
                              "book_imbalance", "--grid", "scheme=sign", "--slippage",
                              "book_walk", "--json"], tmp_path).stdout)  # fmt: skip
    assert cli["n_trials"] == 1


def _gapped_recording(real_dir: Path, out: Path) -> dict[str, int]:
    """The real NEXOUSDT recording with a depth gap and a later resync, as a recorder that lost
    its connection writes it: depth messages of one minute (from 06:00) are missing, the stream
    continues for ten minutes (each message's U beyond the expected id: a sequence break), then
    a REST snapshot arrives. The snapshot holds the true book at that time, rebuilt by the
    product from the complete recording (so the test needs no invented prices)."""
    src = real_dir / "binance_ws_hftbacktest" / "spot"
    day1, day2 = src / "nexousdt_20240723.dat.gz", src / "nexousdt_20240724.dat.gz"
    lines = gzip.decompress(day2.read_bytes()).decode().splitlines()
    t0 = 1_721_800_800_000_000  # 2024-07-24 06:00 UTC
    t1, t2 = t0 + 60_000_000, t0 + 660_000_000

    def is_depth(line: str) -> bool:
        return "@depth" in line[:80]

    kept = [ln for ln in lines if not (is_depth(ln) and t0 <= int(ln.split(" ", 1)[0]) < t1)]
    before = [ln for ln in kept if is_depth(ln) and int(ln.split(" ", 1)[0]) < t2]
    last_u = json.loads(before[-1].split(" ", 1)[1])["data"]["u"]
    full = read_hftbacktest([day1, day2]).depth_updates
    probe = rebuild_books(full, np.array([t2]), symbols=["NEXOUSDT"], levels=1, depth_bps=(),
                          time_col="local_ts")  # fmt: skip
    deep = probe.stats["NEXOUSDT"]["max_levels"]
    book = rebuild_books(full, np.array([t2]), symbols=["NEXOUSDT"], levels=deep, depth_bps=(),
                         time_col="local_ts").levels  # fmt: skip

    def side(px: np.ndarray, qty: np.ndarray) -> list[list[str]]:
        ok = np.isfinite(px[0, 0]) & (qty[0, 0] > 0)
        return [[f"{p:.8f}", f"{q:.8f}"] for p, q in zip(px[0, 0][ok], qty[0, 0][ok], strict=True)]

    snap = json.dumps({"lastUpdateId": last_u, "bids": side(book.bid_px, book.bid_qty),
                       "asks": side(book.ask_px, book.ask_qty)})  # fmt: skip
    at = next(i for i, ln in enumerate(kept) if int(ln.split(" ", 1)[0]) >= t2)
    kept.insert(at, f"{t2} {snap}")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(day1, out / day1.name)
    (out / day2.name).write_bytes(gzip.compress("\n".join(kept).encode() + b"\n"))
    return {"gap_from": t0, "break_at": t1, "resync_at": t2}


def test_slippage_study_on_the_store_universe_with_a_gap_and_a_delisting(
    real_dir: Path, tmp_path: Path
) -> None:
    times = _gapped_recording(real_dir, tmp_path / "files" / "spot")
    btc = real_dir / "binance_ws_hftbacktest" / "spot" / "btcusdt_20240808.gz"
    store = af.Store(tmp_path / "store")
    assert store.ingest(tmp_path / "files", btc, market="spot").ok
    # BTCUSDT's bars run to 2024-08-08: NEXOUSDT's stop on 07-24, so the universe delists it
    args = [
        "slippage-study",
        "--store",
        str(tmp_path / "store"),
        "--symbol",
        "NEXOUSDT",
        "--market",
        "spot",
        "--bar",
        "10s",
        "--sizes",
        "1e4",
        "--levels",
        "5,all",
        "--json",
    ]
    doc = json.loads(run_cli(args, tmp_path).stdout)
    assert doc["symbol"] == "NEXOUSDT"
    assert doc["datasets"]["depth_updates"] == ["binance"]
    listed, delisted = doc["listing_window_us"]
    assert listed < times["gap_from"] < delisted < times["resync_at"] + 86_400_000_000
    assert doc["book"]["sequence_breaks"] == 1
    gap_bars = (times["resync_at"] - times["break_at"]) // 10_000_000
    assert doc["book"]["untradable_bars"] >= gap_bars
    assert doc["tradable_bars"] == doc["bars"] - doc["book"]["untradable_bars"]

    # the same study through the API: no position is held while the book is unknown or after
    # the delisting, and the strategy is back in the market after the resync
    from alphaforge.engine import slippage_study as ss
    from alphaforge.store_streams import symbol_streams

    streams = symbol_streams(store.data, "NEXOUSDT", "spot")
    bars = ss.build_bars(streams.depth, streams.trades, 10_000_000, window_us=streams.window_us)
    w = ss.study_weights(bars, 5)
    held = ss.last_value(w)  # the target in force after each decision row
    fill_ts = np.concatenate([bars.ts_us[1:], [bars.ts_us[-1] + 10_000_000]])
    bad = ((fill_ts >= times["break_at"]) & (fill_ts < times["resync_at"])) | (fill_ts >= delisted)
    assert bad.sum() >= gap_bars
    assert (held[bad] == 0).all()
    after = (fill_ts > times["resync_at"] + 600_000_000) & (fill_ts < delisted)
    assert (held[after] != 0).mean() > 0.9
    res = ss.run_study(bars, [1e4], [0], window=5)
    assert res["rows"][0]["fills"] > 0
    # the resync snapshot restores the true book: after it, the stored (gapped) depth rebuilds
    # exactly the book of the complete recording
    src = real_dir / "binance_ws_hftbacktest" / "spot"
    full = read_hftbacktest([src / "nexousdt_20240723.dat.gz",
                             src / "nexousdt_20240724.dat.gz"]).depth_updates  # fmt: skip
    probe = bars.ts_us[(bars.ts_us > times["resync_at"]) & (bars.ts_us < delisted)][::50]
    kw = {"symbols": ["NEXOUSDT"], "levels": 20, "time_col": "local_ts", "on_gap": "resync"}
    want, got = (
        rebuild_books(full, probe, **kw).levels,
        rebuild_books(streams.depth, probe, **kw).levels,
    )
    np.testing.assert_array_equal(got.bid_px, want.bid_px)
    np.testing.assert_array_equal(got.ask_qty, want.ask_qty)
    gap_rows = (bars.ts_us > times["break_at"]) & (bars.ts_us < times["resync_at"])
    assert np.isnan(rebuild_books(streams.depth, bars.ts_us[gap_rows], **kw).levels.bid_px).all()
