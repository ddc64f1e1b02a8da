"""Deterministic kline rows for store tests (imported by kill -9 child processes: keep light)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from alphaforge.data import schemas

T0 = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC in µs
MIN = 60_000_000


def klines(symbol: str, start_min: int, n: int, seed: int = 0, bump: float = 0.0) -> pa.Table:
    """1m kline rows [start_min, start_min + n) minutes after T0; each value depends only on
    (minute, seed, bump), so overlapping calls agree on the rows they share."""
    m = start_min + np.arange(n, dtype=np.int64)
    ot = T0 + m * MIN
    px = 100 + 10 * np.sin(m * 0.37 + seed) + bump
    vol = ((m * 7 + seed) % 50 + 1).astype(np.float64)
    return pa.table(
        {
            "symbol": pa.array([symbol] * n, pa.string()),
            "open_time": pa.array(ot).cast(schemas.TS),
            "open": px,
            "high": px + 1,
            "low": px - 1,
            "close": px + 0.5,
            "volume": vol,
            "close_time": pa.array(ot + MIN - 1000).cast(schemas.TS),
            "quote_volume": vol * px,
            "trades": m % 9,
            "taker_buy_volume": vol / 2,
            "taker_buy_quote_volume": vol * px / 2,
        },
        schema=schemas.KLINES,
    )
