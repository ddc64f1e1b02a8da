"""Arrow schemas of every dataset alphaforge stores, declared once.

Conventions (see ../shared/design.md):
- time columns are ``timestamp("us", tz="UTC")``; sources convert ms/ns at their boundary, once;
- prices and quantities are float64; ids are int64; ``symbol`` is the exchange symbol (``BTCUSDT``);
- a kline row is stamped with its OPEN time as Binance does; ``availability_ts_us`` (in this
  module) gives the time its values became known (open + interval), which the Panel uses.

Every source (REST, archive, Tardis, recordings, synthetic) returns tables in exactly these
schemas, so downstream code never branches on where data came from.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

TS: Final = pa.timestamp("us", tz="UTC")

KLINES: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("open_time", TS, nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("volume", pa.float64()),
        pa.field("close_time", TS),
        pa.field("quote_volume", pa.float64()),
        pa.field("trades", pa.int64()),
        pa.field("taker_buy_volume", pa.float64()),
        pa.field("taker_buy_quote_volume", pa.float64()),
    ]
)
"""Binance klines (spot, USD-M, mark/index price klines). Natural key: (symbol, open_time)."""

AGG_TRADES: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("agg_trade_id", pa.int64(), nullable=False),
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
        pa.field("first_trade_id", pa.int64()),
        pa.field("last_trade_id", pa.int64()),
        pa.field("ts", TS, nullable=False),
        pa.field("is_buyer_maker", pa.bool_()),
    ]
)
"""Binance aggregated trades. Natural key: (symbol, agg_trade_id)."""

TRADES: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("trade_id", pa.int64()),
        pa.field("trade_uid", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
        pa.field("quote_qty", pa.float64()),
        pa.field("ts", TS, nullable=False),
        pa.field("is_buyer_maker", pa.bool_()),
    ]
)
"""Individual trades. ``trade_id`` is the exchange's integer id (Binance); sources whose ids are
not integers (Tardis/BitMEX UUIDs) leave it null and put the id in ``trade_uid``.
Natural key: (symbol, trade_id, trade_uid, ts)."""

FUNDING: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("funding_time", TS, nullable=False),
        pa.field("funding_rate", pa.float64()),
        pa.field("mark_price", pa.float64()),
        pa.field("funding_interval_hours", pa.float64()),
    ]
)
"""Perpetual funding events; rate is per funding interval (0.0001 = 1 bp, longs pay when > 0).
``funding_interval_hours`` as the archive gives it (8, 4, 1; it differs by symbol and changes
over time), null where the source does not say (REST). Natural key: (symbol, funding_time)."""

BOOK_TICKER: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("update_id", pa.int64()),
        pa.field("ts", TS, nullable=False),
        pa.field("bid_px", pa.float64()),
        pa.field("bid_qty", pa.float64()),
        pa.field("ask_px", pa.float64()),
        pa.field("ask_qty", pa.float64()),
    ]
)
"""Best bid/ask updates. Natural key: (symbol, update_id, ts), merged as a multiset (Tardis quotes
have no update id; see MULTISET_DATASETS)."""

_LEVELS = pa.list_(pa.float64())
BOOK_SNAPSHOTS: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("update_id", pa.int64()),
        pa.field("bid_px", _LEVELS),
        pa.field("bid_qty", _LEVELS),
        pa.field("ask_px", _LEVELS),
        pa.field("ask_qty", _LEVELS),
    ]
)
"""L-level book snapshots; level 0 is the best; bids descending, asks ascending.
Natural key: (symbol, ts)."""

DEPTH_UPDATES: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("local_ts", TS),
        pa.field("first_update_id", pa.int64()),
        pa.field("last_update_id", pa.int64()),
        pa.field("prev_update_id", pa.int64()),
        pa.field("is_snapshot", pa.bool_()),
        pa.field("is_bid", pa.bool_()),
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
    ]
)
"""One row per price-level change (qty 0 removes the level). Binance diffs carry U/u(/pu) in
first/last/prev_update_id (null where the source has none, e.g. Tardis); snapshot rows have
is_snapshot = true and, for Binance REST snapshots, last_update_id = lastUpdateId."""

DERIVATIVE_TICKER: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("local_ts", TS),
        pa.field("funding_timestamp", TS),
        pa.field("funding_rate", pa.float64()),
        pa.field("predicted_funding_rate", pa.float64()),
        pa.field("open_interest", pa.float64()),
        pa.field("last_price", pa.float64()),
        pa.field("index_price", pa.float64()),
        pa.field("mark_price", pa.float64()),
    ]
)
"""Tardis derivative_ticker rows."""

LIQUIDATIONS: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("local_ts", TS),
        pa.field("id", pa.string()),
        pa.field("side", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("qty", pa.float64()),
    ]
)
"""Tardis liquidations rows (side is the liquidation order side: 'buy' or 'sell')."""

METRICS: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("open_interest", pa.float64()),
        pa.field("open_interest_value", pa.float64()),
        pa.field("top_trader_account_ratio", pa.float64()),
        pa.field("top_trader_position_ratio", pa.float64()),
        pa.field("account_ratio", pa.float64()),
        pa.field("taker_vol_ratio", pa.float64()),
    ]
)
"""Binance USD-M ``metrics`` archive rows (5-minute statistics, ``ts`` = the file's
``create_time``, UTC): open interest in contracts and in quote currency, the top traders'
long/short account and position ratios, all accounts' long/short ratio and the taker buy/sell
volume ratio (archive columns ``sum_open_interest``, ``sum_open_interest_value``,
``count_toptrader_long_short_ratio``, ``sum_toptrader_long_short_ratio``,
``count_long_short_ratio``, ``sum_taker_long_short_vol_ratio``)."""

DATASETS: Final[dict[str, pa.Schema]] = {
    "klines": KLINES,
    "mark_klines": KLINES,
    "index_klines": KLINES,
    "agg_trades": AGG_TRADES,
    "trades": TRADES,
    "funding": FUNDING,
    "book_ticker": BOOK_TICKER,
    "book_snapshots": BOOK_SNAPSHOTS,
    "depth_updates": DEPTH_UPDATES,
    "derivative_ticker": DERIVATIVE_TICKER,
    "liquidations": LIQUIDATIONS,
    "metrics": METRICS,
}
"""Dataset name -> schema. Dataset names are the store's ``dataset=`` partition values."""

NATURAL_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "klines": ("symbol", "open_time"),
    "mark_klines": ("symbol", "open_time"),
    "index_klines": ("symbol", "open_time"),
    "agg_trades": ("symbol", "agg_trade_id"),
    "trades": ("symbol", "trade_id", "trade_uid", "ts"),
    "funding": ("symbol", "funding_time"),
    "book_ticker": ("symbol", "update_id", "ts"),
    "book_snapshots": ("symbol", "ts"),
    "depth_updates": ("symbol", "ts", "last_update_id", "is_bid", "price"),
    "derivative_ticker": ("symbol", "ts"),
    "liquidations": ("symbol", "ts", "id"),
    "metrics": ("symbol", "ts"),
}
"""Dataset name -> columns that identify a row (used to de-duplicate on merge)."""

MULTISET_DATASETS: Final = frozenset(
    {"book_ticker", "book_snapshots", "derivative_ticker", "liquidations"}
)
"""Datasets whose rows may carry no unique exchange id (Tardis quotes have no update id, two
snapshots or tickers can share a timestamp): the store keeps every row of a source, merging
only rows that repeat across writes (``data.store_merge.with_occurrence``)."""

TIME_COLUMN: Final[dict[str, str]] = {
    "klines": "open_time",
    "mark_klines": "open_time",
    "index_klines": "open_time",
    "funding": "funding_time",
}
"""Dataset name -> its event-time column, for datasets where it is not ``ts``."""

INTERVAL_US: Final[dict[str, int]] = {
    "1s": 1_000_000,
    "1m": 60_000_000,
    "3m": 180_000_000,
    "5m": 300_000_000,
    "15m": 900_000_000,
    "30m": 1_800_000_000,
    "1h": 3_600_000_000,
    "2h": 7_200_000_000,
    "4h": 14_400_000_000,
    "6h": 21_600_000_000,
    "8h": 28_800_000_000,
    "12h": 43_200_000_000,
    "1d": 86_400_000_000,
    "3d": 259_200_000_000,
    "1w": 604_800_000_000,
}
"""Binance kline interval name -> length in microseconds (1M, calendar months, is not fixed)."""


def time_column(dataset: str) -> str:
    """Name of the event-time column of ``dataset`` (``open_time`` for klines, else ``ts``...)."""
    return TIME_COLUMN.get(dataset, "ts")


def interval_us(interval: str) -> int:
    """Length of a Binance kline interval in microseconds.

    Raises:
        KeyError: for an interval name Binance does not define with a fixed length.
    """
    try:
        return INTERVAL_US[interval]
    except KeyError:
        known = ", ".join(INTERVAL_US)
        raise KeyError(f"unknown kline interval {interval!r}; expected one of {known}") from None


OPTIONAL_COLUMNS: Final[dict[str, tuple[str, ...]]] = {"funding": ("funding_interval_hours",)}
"""Columns a source may lack (filled with nulls by `conform`): not every source says them."""


def empty_table(dataset: str) -> pa.Table:
    """A zero-row table of ``dataset``'s schema."""
    return DATASETS[dataset].empty_table()


def conform(table: pa.Table, dataset: str) -> pa.Table:
    """Select and cast ``table``'s columns to ``dataset``'s declared schema (order included).

    Raises:
        SchemaError: a declared column is missing, or a cast would lose or invent data.
    """
    from alphaforge.data.errors import SchemaError

    schema = DATASETS[dataset]
    for name in OPTIONAL_COLUMNS.get(dataset, ()):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{dataset}: missing column(s) {missing}; table has {table.column_names}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{dataset}: cannot cast to the declared schema: {exc}") from exc
