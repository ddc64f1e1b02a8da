"""Depth and trade streams of one symbol read back from the store, with its listing window.

Recorded order books live in the store as ``depth_updates`` (Binance recordings under exchange
``binance``, Tardis ``incremental_book_L2`` files under their own exchange name such as
``binance-futures``), with ``trades`` (or ``agg_trades``) beside them. ``held`` / ``read_held``
find a dataset's rows wherever they were ingested; ``symbol_streams`` gives what
``alphaforge slippage-study --store`` studies, plus the symbol's listing window from the same
universe every other command uses (``data.universe``: first to last stored bar, a symbol whose
bars stop before the data's end delisted there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from alphaforge.data import schemas
from alphaforge.data.store import Store
from alphaforge.data.universe import listings_from_store
from alphaforge.engine.errors import PanelError


@dataclass(frozen=True, slots=True)
class SymbolStreams:
    """One symbol's stored streams: ``depth`` (DEPTH_UPDATES rows), ``trades`` (TRADES or
    AGG_TRADES rows: ts, qty, is_buyer_maker) and ``window_us`` = [listed, delisted) in UTC µs
    (None = open on that side)."""

    symbol: str
    depth: pa.Table
    trades: pa.Table
    window_us: tuple[int | None, int | None]
    sources: dict[str, list[str]]


def held(store: Store, dataset: str, market: str, symbols: Sequence[str]) -> dict[str, list[str]]:
    """{exchange: symbols} of ``symbols`` whose ``dataset`` the store holds under ``market``."""
    out: dict[str, set[str]] = {}
    for p in store.partitions(dataset, market=market):
        if p.symbol in symbols:
            out.setdefault(p.exchange, set()).add(p.symbol)
    return {ex: sorted(ss) for ex, ss in sorted(out.items())}


def read_held(store: Store, dataset: str, market: str, where: dict[str, list[str]], *,
              start_us: int | None = None, end_us: int | None = None) -> pa.Table:  # fmt: skip
    """Rows of ``dataset`` in [start_us, end_us) from every exchange in ``where`` (a symbol is
    read from the first exchange that holds it)."""
    seen: set[str] = set()
    parts = []
    for ex, ss in where.items():
        mine = [s for s in ss if s not in seen]
        seen.update(mine)
        if mine:
            parts.append(store.read(dataset, exchange=ex, market=market, symbols=mine,
                                    start_us=start_us, end_us=end_us))  # fmt: skip
    return pa.concat_tables(parts)


def symbol_streams(
    store: Store,
    symbol: str,
    market: str = "usdm",
    *,
    start_us: int | None = None,
    end_us: int | None = None,
) -> SymbolStreams:
    """The stored depth and trades of ``symbol`` in [start_us, end_us) and its listing window.

    Raises:
        PanelError: the store holds no depth updates or no trades of ``symbol`` (names what
            it holds instead), or none in the range.
    """
    depth_at = held(store, "depth_updates", market, [symbol])
    if not depth_at:
        have = sorted({p.symbol for p in store.partitions("depth_updates", market=market)})
        raise PanelError(
            f"store {store.uri!r} has no depth_updates of {symbol} (market={market}); "
            f"it holds depth for: {', '.join(have) or 'no symbol'}; ingest a depth recording "
            "or Tardis incremental_book_L2 file first"
        )
    trade_ds = next((d for d in ("trades", "agg_trades") if held(store, d, market, [symbol])), None)
    if trade_ds is None:
        raise PanelError(f"store {store.uri!r} has depth but no trades or agg_trades of "
                         f"{symbol} (market={market}); the study needs the trade flow")  # fmt: skip
    trade_at = held(store, trade_ds, market, [symbol])
    depth = read_held(store, "depth_updates", market, depth_at, start_us=start_us, end_us=end_us)
    trades = read_held(store, trade_ds, market, trade_at, start_us=start_us, end_us=end_us)
    if depth.num_rows == 0:
        raise PanelError(f"no depth_updates of {symbol} in the requested time range")
    return SymbolStreams(
        symbol,
        depth,
        trades,
        _window(store, symbol, market),
        {"depth_updates": sorted(depth_at), trade_ds: sorted(trade_at)},
    )


def kline_intervals(store: Store, market: str = "usdm") -> list[str]:
    """The kline intervals the store holds for ``market`` (``klines_<interval>`` datasets),
    shortest first."""
    ivs = [d.removeprefix("klines_") for d in store.datasets(market=market)
           if d.startswith("klines_")]  # fmt: skip
    return sorted((iv for iv in ivs if iv in schemas.INTERVAL_US), key=schemas.interval_us)


def _window(store: Store, symbol: str, market: str) -> tuple[int | None, int | None]:
    """[listed, delisted) of ``symbol`` from the shortest stored klines interval, or open."""
    for iv in kline_intervals(store, market):
        lst = listings_from_store(store, f"klines_{iv}", market=market,
                                  interval_us=schemas.interval_us(iv)).get(symbol)  # fmt: skip
        if lst is not None:
            return lst.listed_from_us, lst.delisted_at_us
    return None, None
