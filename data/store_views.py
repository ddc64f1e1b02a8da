"""Derived views of the store: the long kline table a Panel is pivoted from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas
from alphaforge.data.errors import StoreError
from alphaforge.data.store import Store

PANEL_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
)


F64 = np.ndarray[Any, np.dtype[np.float64]]
I64 = np.ndarray[Any, np.dtype[np.int64]]


def _np_i64(col: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.asarray(col.cast(schemas.TS).cast(pa.int64()).to_numpy(), dtype=np.int64)


def kline_panel_table(
    store: Store,
    symbols: Sequence[str] | None,
    interval: str = "1m",
    market: str = "usdm",
    exchange: str = "binance",
    start_us: int | None = None,
    end_us: int | None = None,
) -> pa.Table:
    """Klines as a long table indexed by availability time (bar close), one row per bar.

    Args:
        store: the store to read.
        symbols: exchange symbols, or None for every stored symbol.
        interval: kline interval (``1m``, ``1h``...); dataset ``klines_<interval>``.
        market: ``spot`` or ``usdm``.
        exchange: exchange partition value.
        start_us / end_us: half-open range of the availability time ``ts``, UTC µs.

    Returns:
        Table sorted by (symbol, ts) with ``ts`` int64 µs = open_time + interval, ``symbol``,
        open, high, low, close, volume, quote_volume (float64), trades (int64),
        taker_buy_volume, ``vwap`` = quote_volume / volume (NaN where volume is 0), and, when
        the store holds a ``funding`` dataset for any of the symbols, ``funding_paid`` (the rates
        settled in ``previous bar ts < funding_time <= ts``, summed on that bar, NaN elsewhere:
        the accrual) and ``funding_rate`` (the last settled rate per hour as of the bar, for
        factors; see ``_align_funding``).

    Raises:
        StoreError: unknown interval or market.
    """
    try:
        iv = schemas.interval_us(interval)
    except KeyError as exc:
        raise StoreError(str(exc.args[0])) from None
    t = store.read(
        f"klines_{interval}",
        exchange=exchange,
        market=market,
        symbols=symbols,
        start_us=None if start_us is None else start_us - iv,
        end_us=None if end_us is None else end_us - iv,
        columns=["symbol", "open_time", *PANEL_COLUMNS],
    )
    if t.num_rows == 0:
        return panel_table_from_klines(t, None, iv)
    funding = store.read(
        "funding",
        exchange=exchange,
        market=market,
        symbols=pc.unique(t.column("symbol")).to_pylist(),
        # a day before the first bar: the last rate known at the first bar (intervals <= 8 h)
        start_us=int(pc.min(t.column("open_time")).cast(pa.int64()).as_py()) - 86_400_000_000,
        end_us=int(pc.max(t.column("open_time")).cast(pa.int64()).as_py()) + iv + 1,
        columns=["symbol", "funding_time", "funding_rate", "funding_interval_hours"],
    )
    return panel_table_from_klines(t, funding, iv)


def panel_table_from_klines(
    klines: pa.Table, funding: pa.Table | None, interval_us: int
) -> pa.Table:
    """Long table indexed by availability time from KLINES (+ optional FUNDING) tables.

    Args:
        klines: rows in the KLINES schema (at least symbol, open_time and PANEL_COLUMNS).
        funding: rows in the FUNDING schema, or None / empty for none.
        interval_us: bar length in microseconds.

    Returns:
        The table described in :func:`kline_panel_table` (``funding_paid`` and
        ``funding_rate`` only when ``funding`` has rows).
    """
    t = klines.select(["symbol", "open_time", *PANEL_COLUMNS])
    ts = _np_i64(t.column("open_time")) + interval_us
    vol = t.column("volume").to_numpy(zero_copy_only=False).astype(np.float64)
    qv = t.column("quote_volume").to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(vol > 0, qv / np.where(vol > 0, vol, 1.0), np.nan)
    out = t.drop_columns(["open_time"]).add_column(0, "ts", pa.array(ts, pa.int64()))
    out = out.append_column("vwap", pa.array(vwap, pa.float64()))
    if t.num_rows == 0 or funding is None or funding.num_rows == 0:
        return out
    names, code = _symbol_codes(out.column("symbol"))
    order = np.lexsort((ts, code))  # stable: the order of sorting by (symbol, ts)
    if np.any(order != np.arange(order.size)):  # a store read is usually sorted already
        out = out.combine_chunks().take(pa.array(order))
        ts, code = ts[order], code[order]
    paid, hourly = _align_funding(names, code, ts, funding, interval_us)
    out = out.append_column("funding_paid", pa.array(paid, pa.float64()))
    return out.append_column("funding_rate", pa.array(hourly, pa.float64()))


def _symbol_codes(col: pa.ChunkedArray) -> tuple[list[str], I64]:
    """(sorted distinct symbols, each row's index in them) by one dictionary encoding: no
    string comparison per row (a null symbol gets code -1 and matches no funding).

    The same encoding as ``engine.panel.symbol_codes``, which raises on a null symbol (a Panel
    row needs one); data may not import engine (docs/design.md), so each layer keeps its own."""
    enc = pc.dictionary_encode(col.combine_chunks())
    names = [str(v) for v in enc.dictionary.to_pylist()]
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[np.argsort(np.array(names, dtype=str), kind="stable")] = np.arange(len(names))
    rank[-1] = -1
    codes = np.asarray(enc.indices.fill_null(len(names)).to_numpy(zero_copy_only=False))
    return sorted(names), rank[codes.astype(np.int64)]


def _align_funding(
    names: list[str], code: I64, ts: I64, funding: pa.Table, interval_us: int
) -> tuple[F64, F64]:
    """Per bar row (bars sorted by (symbol, ts); ``code``: each row's index in the sorted
    symbol ``names``, ``ts``: its availability time in µs): the funding paid on the bar and the
    last known rate per hour.

    Returns:
        ``paid``: the sum of the rates settled in (previous bar ts, ts], placed on the first
        bar whose ts >= funding_time (NaN on bars without a settlement; settlements before the
        first bar's open are not paid in the table) — the accrual the engine charges on held
        positions; ``hourly``: the rate of the last settlement at or
        before the bar's ts divided by that settlement's interval in hours (the archive's
        ``funding_interval_hours``, else the time since the symbol's previous settlement, or to
        its next one for the first), NaN before the first settlement — so symbols settling every
        1 h, 4 h and 8 h compare correctly.
    """
    f_names, f_code = _symbol_codes(funding.column("symbol"))
    f_t = _np_i64(funding.column("funding_time"))
    f_r = funding.column("funding_rate").to_numpy(zero_copy_only=False).astype(np.float64)
    f_h = np.full(len(f_t), np.nan)
    if "funding_interval_hours" in funding.column_names:
        f_h = funding.column("funding_interval_hours").to_numpy(zero_copy_only=False)
        f_h = np.asarray(f_h, dtype=np.float64)
    paid = np.full(len(ts), np.nan)
    hourly = np.full(len(ts), np.nan)
    bounds = np.searchsorted(code, np.arange(len(names) + 1))  # rows of symbol k: a slice
    f_order = np.lexsort((f_t, f_code))  # settlements by (symbol, time), stable
    f_bounds = np.searchsorted(f_code[f_order], np.arange(len(f_names) + 1))
    where = {name: k for k, name in enumerate(names)}
    for j, name in enumerate(f_names):
        k = where.get(name)
        if k is None or bounds[k] == bounds[k + 1]:
            continue
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        sel = f_order[f_bounds[j] : f_bounds[j + 1]]
        sel = sel[~np.isnan(f_r[sel])]
        t, r, h = f_t[sel], f_r[sel], _interval_hours(f_t[sel], f_h[sel])
        bar_ts = ts[lo:hi]
        idx = np.searchsorted(bar_ts, t, side="left")
        ok = (idx < bar_ts.size) & (t > bar_ts[0] - interval_us)
        acc = np.zeros(bar_ts.size)
        np.add.at(acc, idx[ok], r[ok])
        hit = np.zeros(bar_ts.size, dtype=bool)
        hit[idx[ok]] = True
        paid[lo:hi][hit] = acc[hit]
        last = np.searchsorted(t, bar_ts, side="right") - 1
        known = last >= 0
        hourly[lo:hi][known] = r[last[known]] / h[last[known]]
    return paid, hourly


def _interval_hours(t_us: I64, given: F64) -> F64:
    """Funding interval of each settlement in hours: the source's value where it gives one,
    else the gap since the previous settlement (the next one for the first)."""
    gaps = np.diff(t_us) / 3.6e9
    if gaps.size == 0:
        return np.where(np.isfinite(given), given, np.nan)
    inferred = np.round(np.concatenate([gaps[:1], gaps]), 3)
    return np.where(np.isfinite(given) & (given > 0), given, inferred)
