"""Panels from the store or the embedded synthetic market (the data -> engine seam).

data/ hands over pyarrow Tables; this module pivots them into Panels (bars indexed by their
close time, see docs/design.md), attaches funding, order-book levels and the tradable mask.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from alphaforge.data import schemas
from alphaforge.data.storage_config import is_uri
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.data.store_views import kline_panel_table, panel_table_from_klines
from alphaforge.data.synthetic import SyntheticMarket, generate_market
from alphaforge.data.synthetic_demo import generate_demo_market
from alphaforge.data.universe import listings_from_store, tradable_mask
from alphaforge.engine.book import book_levels_at, rebuild_books
from alphaforge.engine.errors import PanelError
from alphaforge.engine.panel import BookLevels, Panel, symbol_codes
from alphaforge.engine.resample import resample_panel
from alphaforge.store_streams import held, kline_intervals, read_held

F64 = npt.NDArray[np.float64]

DEFAULT_SYNTHETIC: dict[str, Any] = {
    "n_symbols": 20,
    "n_bars": 4_000,
    "interval": "1m",
    "seed": 7,
    "planted_ic": 0.05,
    "book_levels": 0,
}
"""The embedded default market used when no store is given (always labelled synthetic)."""


@dataclass(frozen=True, slots=True)
class SyntheticPanel:
    """A Panel built from the synthetic market, with its planted factor.

    Attributes:
        panel: bars indexed by close time; fields as real klines (+ funding_rate for perps).
        planted: (T, N) float64 planted signal aligned to panel rows (NaN on the last row).
        market: the raw SyntheticMarket tables (klines, funding, books) and meta.
    """

    panel: Panel
    planted: F64
    market: SyntheticMarket


def parse_time(text: str | None) -> int | None:
    """ISO text (UTC) -> epoch µs, None -> None.

    Raises:
        PanelError: unparsable text.
    """
    if text is None:
        return None
    try:
        return int(np.datetime64(text, "us").astype(np.int64))
    except ValueError as exc:
        raise PanelError(f"cannot parse time {text!r}: {exc}") from None


def synthetic_panel(**kwargs: Any) -> SyntheticPanel:
    """The seeded synthetic market as a Panel (kwargs go to ``data.synthetic.generate_market``)."""
    params = {**DEFAULT_SYNTHETIC, **kwargs}
    market = generate_market(**params)
    step = schemas.interval_us(str(params["interval"]))
    table = panel_table_from_klines(market.klines, market.funding, step)
    panel = Panel.from_arrow(table, interval_us=step, meta={**market.meta, "source": "synthetic"})
    if market.books.num_rows:
        panel = panel.with_book(book_levels_at(market.books, panel.ts_us, panel.symbols))
    planted = _pivot(market.planted, "planted_signal", panel)
    return SyntheticPanel(panel=panel, planted=planted, market=market)


def demo_panel(**kwargs: Any) -> SyntheticPanel:
    """The demo's market (``data.synthetic_demo``: a planted factor and bid-ask bounce) as a
    Panel with its book at every bar; ``planted`` holds the planted factor's values."""
    market = generate_demo_market(**kwargs)
    step = schemas.interval_us(str(market.meta["parameters"]["interval"]))
    table = panel_table_from_klines(market.klines, market.funding, step)
    panel = Panel.from_arrow(table, interval_us=step, meta={**market.meta, "source": "synthetic"})
    panel = panel.with_book(book_levels_at(market.books, panel.ts_us, panel.symbols))
    planted = _pivot(market.planted, "planted_signal", panel)
    return SyntheticPanel(panel=panel, planted=planted, market=market)


def load_panel(
    store: str | None,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    interval: str = "1m",
    market: str = "usdm",
    synthetic_kwargs: dict[str, Any] | None = None,
    *,
    book: bool = True,
    book_levels: int = 20,
) -> Panel:
    """A Panel from the store at ``store``, or the synthetic market when ``store`` is None.

    Args:
        store: store root directory, or None for the embedded synthetic market.
        symbols: symbols to keep (None = all).
        start, end: ISO times (UTC) bounding the availability time, end exclusive.
        interval: kline interval ("1m", "1h", ...).
        market: "usdm" or "spot".
        synthetic_kwargs: overrides of DEFAULT_SYNTHETIC when no store is given.
        book: attach the order book the store holds for these symbols (``attach_book``).
        book_levels: levels per side kept in the book.

    Raises:
        PanelError: an empty selection, or unparsable times.
    """
    start_us, end_us = parse_time(start), parse_time(end)
    if store is None:
        kw = dict(synthetic_kwargs or {})
        kw.setdefault("interval", interval)
        kw.setdefault("market", market)
        panel = synthetic_panel(**kw).panel
        panel = panel.slice_time(start_us, end_us)
        return panel.select(list(symbols)) if symbols else panel
    st = open_store(store)
    target_us = schemas.interval_us(interval)
    source = _source_interval(st, interval, market)
    step = schemas.interval_us(source)
    lo = None if start_us is None else start_us - target_us + step
    table = kline_panel_table(st, list(symbols) if symbols else None, interval=source,
                              market=market, start_us=lo, end_us=end_us)  # fmt: skip
    if table.num_rows == 0:
        raise PanelError(
            f"store {store!r} has no klines_{source} for market={market} symbols={symbols} "
            f"in [{start}, {end}); run `alphaforge ingest` or `alphaforge pull` first, or drop "
            "--store"
        )
    panel = Panel.from_arrow(table, interval_us=step, meta={"source": f"store:{store}"})
    panel = panel.select(list(symbols)) if symbols else panel
    listings = listings_from_store(st, f"klines_{source}", market=market,
                                   symbols=panel.symbols, interval_us=step)  # fmt: skip
    mask = tradable_mask(panel.ts_us, panel.symbols, listings)
    panel = panel.with_fields(tradable=mask.astype(np.float64),
                              **_price_klines(st, panel, source, market),
                              **_open_interest(st, panel, market))  # fmt: skip
    if source != interval:
        panel = resample_panel(panel, target_us).slice_time(start_us, end_us)
    if book:
        panel = attach_book(st, panel, market, levels=book_levels)
    where = store if is_uri(store) else os.path.abspath(store)  # workers may run elsewhere
    syms = tuple(symbols) if symbols else None
    query = StorePanelQuery(where, syms, start, end, interval, market, book, book_levels)
    return dataclasses.replace(panel, meta={**panel.meta, "query": query,
                                            "query_structure": panel.structure()})  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class StorePanelQuery:
    """The arguments of one :func:`load_panel` from a store, as a picklable, hashable callable:
    a Dask worker calls it to read the same panel from the (shared or object) store itself."""

    store: str
    symbols: tuple[str, ...] | None
    start: str | None
    end: str | None
    interval: str
    market: str
    book: bool
    book_levels: int

    def __call__(self) -> Panel:
        return load_panel(self.store, self.symbols, self.start, self.end,
                          interval=self.interval, market=self.market, book=self.book,
                          book_levels=self.book_levels)  # fmt: skip


def store_query(panel: Panel) -> StorePanelQuery | None:
    """The store query ``panel`` was loaded with, when it is still exactly that panel's shape
    (a selection, time slice or added field since makes it None)."""
    query = panel.meta.get("query")
    if (
        isinstance(query, StorePanelQuery)
        and panel.meta.get("query_structure") == panel.structure()
    ):
        return query
    return None


def attach_book(store: Store, panel: Panel, market: str, *, levels: int = 20) -> Panel:
    """The panel with the order book in force at each bar's time, for the symbols whose depth
    the store holds (NaN for the others and before a symbol's first snapshot).

    Books are rebuilt from the stored ``depth_updates`` (snapshot + diffs, by receive time,
    ``engine.book.rebuild_books``; a sequence break leaves the book NaN until the next
    snapshot), else taken from stored ``book_snapshots_<N>`` (the last snapshot at or before
    the bar). Without either the panel is returned unchanged. ``meta["book"]`` says which.
    """
    syms = list(panel.symbols)
    end = int(panel.ts_us[-1]) + 1
    depth = held(store, "depth_updates", market, syms)
    if depth:
        depth_syms = sorted({s for ss in depth.values() for s in ss})
        table = read_held(store, "depth_updates", market, depth, end_us=end)
        rebuilt = rebuild_books(table, panel.ts_us, symbols=depth_syms, levels=levels,
                                time_col="local_ts", on_gap="resync")  # fmt: skip
        src, kind = rebuilt.levels, f"depth_updates ({', '.join(depth_syms)})"
    else:
        snaps = sorted({p.dataset for p in store.partitions(market=market)
                        if p.dataset.startswith("book_snapshots")
                        and p.symbol in syms})  # fmt: skip
        if not snaps:
            return panel
        where = held(store, snaps[-1], market, syms)
        table = read_held(store, snaps[-1], market, where, end_us=end)
        depth_syms = sorted(set(table.column("symbol").to_pylist()))
        src = book_levels_at(table, panel.ts_us, depth_syms, levels=levels)
        kind = f"{snaps[-1]} ({', '.join(depth_syms)})"
    cols = [syms.index(s) for s in depth_syms]
    full = [np.full((panel.T, panel.N, levels), np.nan) for _ in range(4)]
    for dst, a in zip(full, (src.bid_px, src.bid_qty, src.ask_px, src.ask_qty), strict=True):
        dst[:, cols, : a.shape[2]] = a[:, :, :levels]
    return Panel(panel.ts_us, panel.symbols, panel.fields, BookLevels(*full), panel.interval_us,
                 {**panel.meta, "book": kind})  # fmt: skip


def _price_klines(store: Store, panel: Panel, interval: str, market: str) -> dict[str, F64]:
    """``mark_close`` / ``index_close`` from the store's mark and index price klines of the same
    interval (when stored), on the panel's grid, and ``basis`` = mark / index - 1 when both."""
    stored = set(store.datasets(market=market))
    step = schemas.interval_us(interval)
    out: dict[str, F64] = {}
    for kind, name in (("mark_klines", "mark_close"), ("index_klines", "index_close")):
        if f"{kind}_{interval}" not in stored:
            continue
        t = store.read(f"{kind}_{interval}", market=market, symbols=list(panel.symbols),
                       start_us=int(panel.ts_us[0]) - step, end_us=int(panel.ts_us[-1]),
                       columns=["symbol", "open_time", "close"])  # fmt: skip
        ts = pc.add(t.column("open_time").cast(pa.int64()), step)
        out[name] = _pivot(pa.table({"ts": ts, "symbol": t["symbol"], name: t["close"]}), name,
                           panel)  # fmt: skip
    if len(out) == 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["basis"] = out["mark_close"] / out["index_close"] - 1.0
    return out


OI_LOOKBACK_US = 24 * 3_600_000_000
"""A published open-interest value stays "last known" for at most a day."""


def _open_interest(store: Store, panel: Panel, market: str) -> dict[str, F64]:
    """``open_interest`` (contracts) and ``open_interest_value`` (quote) as last published at
    or before each bar's time, from the Binance ``metrics`` dataset, else ``open_interest``
    from Tardis ``derivative_ticker`` rows; values older than ``OI_LOOKBACK_US`` are NaN."""
    stored = set(store.datasets(market=market))
    lo, hi = int(panel.ts_us[0]) - OI_LOOKBACK_US, int(panel.ts_us[-1]) + 1
    if "metrics" in stored:
        t = store.read("metrics", market=market, symbols=list(panel.symbols), start_us=lo,
                       end_us=hi, columns=["symbol", "ts", "open_interest",
                                           "open_interest_value"])  # fmt: skip
        names: tuple[str, ...] = ("open_interest", "open_interest_value")
    else:  # Tardis derivative tickers, under whichever exchange/market they were ingested
        where = sorted({(p.exchange, p.market) for p in store.partitions("derivative_ticker")
                        if p.symbol in panel.symbols})  # fmt: skip
        if not where:
            return {}
        t = pa.concat_tables(
            store.read("derivative_ticker", exchange=ex, market=mk, symbols=list(panel.symbols),
                       start_us=lo, end_us=hi, columns=["symbol", "ts", "open_interest"])
            for ex, mk in where
        )  # fmt: skip
        names = ("open_interest",)
    if t.num_rows == 0:
        return {}
    return {n: _as_of(t, n, panel, OI_LOOKBACK_US) for n in names}


def _as_of(table: pa.Table, field: str, panel: Panel, max_age_us: int) -> F64:
    """(T, N) last non-null ``field`` at or before each bar time, per symbol (NaN when none
    within ``max_age_us``)."""
    ts = np.asarray(table.column("ts").cast(schemas.TS).cast(pa.int64()).to_numpy(), np.int64)
    sym = np.asarray(table.column("symbol").to_numpy(zero_copy_only=False)).astype(str)
    val = np.asarray(table.column(field).to_numpy(zero_copy_only=False), dtype=np.float64)
    out = np.full((panel.T, panel.N), np.nan)
    for j, s in enumerate(panel.symbols):
        rows = np.flatnonzero((sym == s) & np.isfinite(val))
        if rows.size == 0:
            continue
        rows = rows[np.argsort(ts[rows], kind="stable")]
        k = np.searchsorted(ts[rows], panel.ts_us, side="right") - 1
        ok = k >= 0
        ok[ok] = panel.ts_us[ok] - ts[rows[k[ok]]] <= max_age_us
        out[ok, j] = val[rows[k[ok]]]
    return out


def source_dataset(store: str | Store, interval: str, market: str = "usdm") -> str:
    """The stored klines dataset a panel of ``interval`` is built from (``klines_1m`` for 1h
    bars resampled from a 1m store)."""
    st = open_store(store)
    return f"klines_{_source_interval(st, interval, market)}"


def _source_interval(store: Store, interval: str, market: str) -> str:
    """The stored kline interval to build ``interval`` bars from: itself when stored, else the
    longest stored interval that divides it (resampled, see engine.resample).

    Raises:
        PanelError: no stored kline interval divides ``interval``.
    """
    target = schemas.interval_us(interval)
    stored = kline_intervals(store, market)
    if interval in stored:
        return interval
    fits = [iv for iv in stored if target % schemas.interval_us(iv) == 0]
    if not fits:
        raise PanelError(
            f"store {store.uri!r} has no klines_{interval} for market={market} and no "
            f"shorter klines to build them from (stored: {', '.join(stored) or 'none'})"
        )
    return max(fits, key=schemas.interval_us)


def _pivot(table: pa.Table, field: str, panel: Panel) -> F64:
    """(T, N) values of ``field`` of a long (ts, symbol, field) table on the panel's grid (NaN
    where the table has no row); rows outside the grid or of other symbols are left out."""
    ts = np.asarray(table.column("ts").cast(schemas.TS).cast(pa.int64()).to_numpy(), np.int64)
    val = np.asarray(table.column(field).to_numpy(zero_copy_only=False), dtype=np.float64)
    out = np.full((panel.T, panel.N), np.nan)
    col = {s: i for i, s in enumerate(panel.symbols)}
    rows = np.searchsorted(panel.ts_us, ts)
    names, inverse = symbol_codes(table.column("symbol"), "symbol")
    cols = np.array([col.get(str(s), -1) for s in names], dtype=np.int64)[inverse]
    ok = (rows < panel.T) & (cols >= 0)
    ok[ok] = panel.ts_us[rows[ok]] == ts[ok]
    out[rows[ok], cols[ok]] = val[ok]
    return out
