"""Pipeline wiring: panels from the synthetic market and the store, universe masks, execution
books, factor backtests around listings and delistings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphaforge.backtests import run_factor_backtest
from alphaforge.data.store import Store
from alphaforge.data.synthetic import generate_market
from alphaforge.engine.errors import PanelError
from alphaforge.engine.panel import Panel
from alphaforge.engine.slippage import execution_book
from alphaforge.panels import load_panel, synthetic_panel

FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trades",
          "taker_buy_volume", "vwap")  # fmt: skip


def test_synthetic_panel_is_labelled_and_indexed_by_close_time() -> None:
    sp = synthetic_panel(n_symbols=4, n_bars=300, book_levels=5, seed=2)
    p = sp.panel
    assert p.meta["synthetic"] is True
    first_open = sp.market.klines.column("open_time")[0].value
    assert p.ts_us[0] == first_open + 60_000_000
    assert p.book is not None
    assert p.book.levels == 5
    assert np.isnan(sp.planted[-1]).all()
    assert np.isfinite(sp.planted[0]).all()
    shifted = execution_book(p.book, 1)
    np.testing.assert_array_equal(shifted.bid_px[1:], p.book.bid_px[:-1])
    assert np.isnan(shifted.bid_px[0]).all()


def test_backtest_around_late_listing_and_delisting() -> None:
    p = synthetic_panel(n_symbols=5, n_bars=400, seed=4).panel
    f = dict(p.fields)
    for k in FIELDS:
        a = f[k].copy()
        a[:100, 0] = np.nan  # lists at row 100
        a[300:, 1] = np.nan  # stops trading at row 300
        f[k] = a
    q = Panel(p.ts_us, p.symbols, f, interval_us=p.interval_us, meta=p.meta)
    for every in (1, 7):
        run = run_factor_backtest(q, "mom_20", rebalance_every=every)
        assert np.isfinite(run.result.equity).all()
        held = run.result.trades
        assert not np.any((held["col"] == 0) & (held["row"] <= 100))
        assert not np.any((held["col"] == 1) & (held["row"] >= 300))


def test_store_panel_carries_the_universe_mask(tmp_path: Path) -> None:
    m = generate_market(n_symbols=3, n_bars=500, book_levels=0, seed=9)
    st = Store(tmp_path)
    st.write(m.klines, dataset="klines_1m", exchange="binance", market="usdm", source="syn")
    st.write(m.funding, dataset="funding", exchange="binance", market="usdm", source="syn")
    p = load_panel(str(tmp_path), None, None, None)
    assert p.N == 3
    assert p.T == 500
    assert "tradable" in p
    assert p["tradable"].all()
    assert np.isfinite(p["funding_paid"]).sum() > 0
    assert np.isfinite(p["funding_rate"][-1]).all()  # last known rate: on every bar
    run = run_factor_backtest(p, "rev_1", rebalance_every=10)
    assert run.result.n_fills > 0
    hourly = load_panel(str(tmp_path), None, None, None, interval="1h")  # resampled from 1m
    assert hourly.interval_us == 3_600_000_000
    assert hourly.meta["resampled_from_us"] == 60_000_000
    assert hourly.T == 9  # closes 00:01..08:20 -> hours closing 01:00..09:00
    assert hourly["partial"][-1].tolist() == [1.0, 1.0, 1.0]  # 20 of 60 minutes
    with pytest.raises(PanelError, match="up to 1d"):
        load_panel(str(tmp_path), None, None, None, interval="1w")
