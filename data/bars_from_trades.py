"""Klines built from individual trades, by the exchange's own rules.

A Binance kline over [open_time, open_time + interval) has the first trade's price as open,
the highest and lowest prices, the last price as close, the summed base quantity (volume),
the summed quote quantity, the trade count, and the base and quote quantity of trades whose
buyer was the taker (``is_buyer_maker`` false). An interval without a trade is still a bar:
open = high = low = close = the previous close, volumes 0 (as the exchange publishes it).

Used for recordings (``ingest`` of a depth/trade recording writes the ``klines_1m`` the store
lacks, so a recorded symbol gets bars and a book on the same grid). The first and the last
interval of the trade span are dropped: a recording starts and stops inside them, so they hold
only part of the interval's trades.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas


def klines_from_trades(trades: pa.Table, interval_us: int) -> pa.Table:
    """KLINES rows (every symbol of ``trades``) over the trades' full intervals.

    Args:
        trades: TRADES rows (symbol, price, qty, quote_qty, ts, is_buyer_maker), any order.
        interval_us: bar length in µs (60_000_000 for 1m).

    Returns:
        A KLINES table sorted by symbol and open_time; empty when no full interval is covered.
    """
    out = []
    syms = pc.unique(trades["symbol"]).to_pylist() if trades.num_rows else []
    for sym in sorted(syms):
        t = trades.filter(pc.equal(trades["symbol"], sym))
        ts = np.asarray(t["ts"].cast(schemas.TS).cast(pa.int64()).to_numpy(), np.int64)
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        px = np.asarray(t["price"].to_numpy(zero_copy_only=False), np.float64)[order]
        qty = np.asarray(t["qty"].to_numpy(zero_copy_only=False), np.float64)[order]
        qq = t["quote_qty"].to_numpy(zero_copy_only=False)
        quote = np.where(np.isfinite(np.asarray(qq, np.float64)[order]),
                         np.asarray(qq, np.float64)[order], px * qty)  # fmt: skip
        maker = np.asarray(t["is_buyer_maker"].fill_null(True).to_numpy(zero_copy_only=False),
                           bool)[order]  # fmt: skip
        out.append(_bars(sym, ts, px, qty, quote, ~maker, interval_us))
    if not out:
        return schemas.KLINES.empty_table()
    return pa.concat_tables(out)


def _bars(sym: str, ts: np.ndarray, px: np.ndarray, qty: np.ndarray, quote: np.ndarray,
          taker_buy: np.ndarray, step: int) -> pa.Table:  # fmt: skip
    first, last = ts[0] // step * step + step, ts[-1] // step * step  # full intervals only
    if last <= first:
        return schemas.KLINES.empty_table()
    before = px[ts < first]
    prior = before[-1] if before.size else np.nan  # the price in force when the bars begin
    keep = (ts >= first) & (ts < last)
    ts, px, qty, quote, taker_buy = ts[keep], px[keep], qty[keep], quote[keep], taker_buy[keep]
    n = int((last - first) // step)
    k = ((ts - first) // step).astype(np.int64)
    count = np.bincount(k, minlength=n).astype(np.int64)
    has = count > 0
    ends = np.cumsum(count)
    starts = ends - count
    close = np.full(n, np.nan)
    close[has] = px[ends[has] - 1]
    close = _ffill(np.concatenate(([prior], close)))[1:]
    prev = np.concatenate(([prior], close[:-1]))
    open_ = np.where(has, px[np.where(has, starts, 0)] if px.size else np.nan, prev)
    high = np.full(n, -np.inf)
    low = np.full(n, np.inf)
    np.maximum.at(high, k, px)
    np.minimum.at(low, k, px)
    high = np.where(has, high, close)
    low = np.where(has, low, close)
    vol, qv, tb, tbq = (np.bincount(k, weights=w, minlength=n)
                        for w in (qty, quote, qty * taker_buy, quote * taker_buy))  # fmt: skip
    open_us = first + np.arange(n, dtype=np.int64) * step
    cols = {
        "symbol": pa.array([sym] * n, pa.string()),
        "open_time": pa.array(open_us).cast(schemas.TS),
        "open": open_, "high": high, "low": low, "close": close, "volume": vol,
        "close_time": pa.array(open_us + step - 1).cast(schemas.TS),
        "quote_volume": qv, "trades": count, "taker_buy_volume": tb,
        "taker_buy_quote_volume": tbq,
    }  # fmt: skip
    table = pa.table(cols)
    ok = np.isfinite(close)  # no price yet: no bar
    return table.filter(pa.array(ok)).cast(schemas.KLINES)


def _ffill(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    out[~np.isfinite(x[idx])] = np.nan
    return out
