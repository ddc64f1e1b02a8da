"""Funding and mark-price fields from real values, through the product's own path: the real
XRP/USDT perpetual series (hourly klines, hourly mark klines, 8-hourly funding) rewritten into the
Binance archive layout, `ingest`ed, and read back as a Panel (1h native and resampled 4h)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alphaforge as af
from alphaforge.engine.backtest import run_backtest

HOUR_US = 3_600_000_000


def _archive_klines(rows: list[list[float]], path: Path) -> None:
    """freqtrade [open_ms, o, h, l, c, volume] rows -> a Binance 1h klines archive CSV (the
    columns freqtrade does not keep are left empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                 "taker_buy_volume,taker_buy_quote_volume,ignore\n")  # fmt: skip
        for t, o, h, lo, c, v in rows:
            vol = "" if v is None else v
            fh.write(f"{t},{o},{h},{lo},{c},{vol},{t + 3_599_999},,,,,\n")


@pytest.fixture(scope="module")
def xrp(real_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    src = real_dir / "freqtrade_binance" / "futures"
    klines = json.loads((src / "XRP_USDT-1h-futures.json").read_text())
    mark = json.loads((src / "XRP_USDT-1h-mark.json").read_text())
    funding = json.loads((src / "XRP_USDT-8h-funding_rate.json").read_text())
    root = tmp_path_factory.mktemp("xrp") / "futures" / "um"
    _archive_klines(klines, root / "klines" / "XRPUSDT-1h-2021-11.csv")
    _archive_klines(mark, root / "markPriceKlines" / "XRPUSDT-1h-2021-11.csv")
    fpath = root / "fundingRate" / "XRPUSDT-fundingRate-2021-11.csv"
    fpath.parent.mkdir(parents=True)
    with open(fpath, "w") as fh:
        fh.write("calc_time,funding_interval_hours,last_funding_rate\n")
        for t, rate, *_ in funding:
            fh.write(f"{t},8,{rate}\n")
    store = af.Store(root.parent.parent / "store")
    rep = store.ingest(root)
    assert rep.ok, rep.failed
    return {"store": store, "klines": klines, "mark": mark, "funding": funding}


def test_funding_paid_on_settlement_bars_and_last_rate_per_hour(xrp: dict) -> None:
    p = xrp["store"].panel(["XRPUSDT"], interval="1h")
    assert len(xrp["klines"]) == p.T  # one row per hourly bar, none joined
    paid, hourly = p["funding_paid"][:, 0], p["funding_rate"][:, 0]
    events = [(t * 1000, r) for t, r, *_ in xrp["funding"] if t * 1000 <= p.ts_us[-1]]
    assert len(events) >= 9
    for t_us, rate in events:
        row = int(np.searchsorted(p.ts_us, t_us))  # first bar known at/after the settlement
        assert paid[row] == pytest.approx(rate, rel=1e-12)
        assert hourly[row] == pytest.approx(rate / 8, rel=1e-12)
    assert np.isfinite(paid).sum() == len(events)
    first = int(np.searchsorted(p.ts_us, events[0][0]))
    assert np.isnan(hourly[:first]).all()  # no rate known before the first settlement in data
    assert np.isfinite(hourly[first:]).all()  # the last known rate on every bar after it


def test_mark_close_and_a_mark_factor_on_product_data(xrp: dict) -> None:
    p = xrp["store"].panel(["XRPUSDT"], interval="1h")
    mark = {t * 1000 + HOUR_US: c for t, _o, _h, _l, c, _v in xrp["mark"]}
    got = p["mark_close"][:, 0]
    for i, ts in enumerate(p.ts_us):
        if ts in mark:
            assert got[i] == mark[ts]
        else:
            assert np.isnan(got[i])
    premium = af.factor("mark_premium").evaluate(p)[:, 0]
    both = np.isfinite(got) & np.isfinite(p["close"][:, 0])
    np.testing.assert_allclose(premium[both], p["close"][both, 0] / got[both] - 1, rtol=1e-12)


def test_backtest_charges_the_real_funding(xrp: dict) -> None:
    """A long held from bar 1 pays position x close x rate at each settlement bar."""
    p = xrp["store"].panel(["XRPUSDT"], interval="1h")
    w = np.full((p.T, 1), np.nan)  # NaN: no order -> the position bought at bar 1 is held
    w[0] = 1.0
    res = run_backtest(w, close=p["close"], open=p["open"], lag=1, fee_bps=0.0,
                       slippage_bps=0.0, funding=p["funding_paid"], init_cash=1.0)  # fmt: skip
    qty = 1.0 / p["open"][1, 0]
    paid = p["funding_paid"][:, 0]
    rows = np.flatnonzero(np.isfinite(paid) & (np.arange(p.T) >= 1))
    expected = float(np.sum(qty * p["close"][rows, 0] * paid[rows]))
    assert res.funding == pytest.approx(expected, rel=1e-9)


def test_resampled_4h_panel_sums_funding_and_keeps_the_last_rate(xrp: dict) -> None:
    h1 = xrp["store"].panel(["XRPUSDT"], interval="1h")
    h4 = xrp["store"].panel(["XRPUSDT"], interval="4h")
    assert h4.meta["resampled_from_us"] == HOUR_US
    assert np.nansum(h4["funding_paid"]) == pytest.approx(np.nansum(h1["funding_paid"]))
    for i, ts in enumerate(h4.ts_us):
        j = np.flatnonzero(h1.ts_us == ts)
        if j.size and np.isfinite(h1["close"][j[0], 0]):
            assert h4["close"][i, 0] == h1["close"][j[0], 0]
            assert h4["funding_rate"][i, 0] == h1["funding_rate"][j[0], 0] or np.isnan(
                h1["funding_rate"][j[0], 0]
            )
