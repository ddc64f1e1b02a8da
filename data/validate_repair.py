"""Explicit, opt-in kline repair: forward-fill missing bars, with a mask and a log of every act.

Nothing here runs unless called (``alphaforge validate --repair OUT``); validation itself never
modifies data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data.schemas import KLINES, TS
from alphaforge.data.validate_common import f64, symbol_groups, ts_us
from alphaforge.data.validate_klines import parse_interval
from alphaforge.data.validate_report import iso_us


@dataclass(frozen=True, slots=True)
class RepairLog:
    """What `repair_klines` did.

    Attributes:
        filled: one entry per filled range: symbol, first/last filled open time (ISO), bars,
            and the close price carried forward.
        dropped_duplicates: input row indices dropped because an earlier row had the same
            (symbol, open_time) (the first occurrence is kept).
        reordered: True when the input was not in (symbol, open_time) order (output is).
        n_input: rows in; n_output: rows out (n_input - dropped + filled bars).
    """

    filled: tuple[dict[str, Any], ...]
    dropped_duplicates: tuple[int, ...]
    reordered: bool
    n_input: int
    n_output: int

    @property
    def n_filled(self) -> int:
        """Bars added by forward-filling."""
        return int(sum(f["bars"] for f in self.filled))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n_input": self.n_input,
            "n_output": self.n_output,
            "n_filled": self.n_filled,
            "filled": list(self.filled),
            "dropped_duplicates": list(self.dropped_duplicates),
            "reordered": self.reordered,
        }


def repair_klines(table: pa.Table, interval: str | int | None = None) -> tuple[pa.Table, RepairLog]:
    """Insert the bars missing on each symbol's grid, forward-filling prices; log everything.

    A filled bar has open = high = low = close = the previous bar's close, zero volumes and
    trade count, close_time = open_time + interval - 1 ms, and ``repaired = True``; every
    input bar keeps its values and gets ``repaired = False``. Duplicate (symbol, open_time)
    rows keep their first occurrence; the others are dropped and listed in the log. Output is
    sorted by (symbol, open_time). Off-grid bars are kept as they are (validate reports them).

    Args:
        table: klines (KLINES schema).
        interval: '1m', µs, or None to infer.

    Returns:
        (KLINES + ``repaired`` bool column table, `RepairLog`).
    """
    n = table.num_rows
    iv = parse_interval(interval, table) if n else 60_000_000
    t = ts_us(table, "open_time")
    close = f64(table, "close")
    filled: list[dict[str, Any]] = []
    dropped: list[int] = []
    pieces: list[pa.Table] = []
    base = table.select(KLINES.names).cast(KLINES)
    for sym, grp in symbol_groups(table):
        rows = np.arange(n)[grp] if isinstance(grp, slice) else grp
        order = np.argsort(t[rows], kind="stable")
        rs = rows[order]
        ts = t[rs]
        keep = np.ones(rs.size, dtype=bool)
        keep[1:] = ts[1:] != ts[:-1]
        dropped += [int(i) for i in rs[~keep]]
        rs, ts = rs[keep], ts[keep]
        kept = base.take(pa.array(rs)).append_column("repaired", pa.array(np.zeros(rs.size, bool)))
        pieces.append(kept)
        d = np.diff(ts)
        miss = np.rint(d / iv).astype(np.int64) - 1
        for j in np.flatnonzero(miss >= 1):
            start = int(ts[j]) + iv
            times = start + iv * np.arange(miss[j], dtype=np.int64)
            px = float(close[rs[j]])
            filled.append(
                {
                    "symbol": sym,
                    "from": iso_us(start),
                    "to": iso_us(int(times[-1])),
                    "bars": int(miss[j]),
                    "close_carried": px,
                }
            )
            pieces.append(_filled_bars(sym, times, px, iv))
    out = (
        pa.concat_tables(pieces)
        if pieces
        else base.append_column("repaired", pa.array([], pa.bool_()))
    )
    out = out.take(pa.array(_sort_order(out)))
    reordered = not np.array_equal(_sort_order(table), np.arange(n))
    log = RepairLog(tuple(filled), tuple(sorted(dropped)), reordered, n, out.num_rows)
    return out, log


def _sort_order(table: pa.Table) -> Any:
    syms = np.asarray(table.column("symbol").to_pylist(), dtype=object).astype(str)
    return np.lexsort((ts_us(table, "open_time"), syms))


def _filled_bars(sym: str, times: Any, px: float, iv: int) -> pa.Table:
    k = times.size
    price = np.full(k, px)
    zero = np.zeros(k)
    cols = {
        "symbol": pa.array([sym] * k, pa.string()),
        "open_time": pa.array(times, pa.int64()).cast(TS),
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": zero,
        "close_time": pa.array(times + iv - 1000, pa.int64()).cast(TS),
        "quote_volume": zero,
        "trades": pa.array(np.zeros(k, np.int64)),
        "taker_buy_volume": zero,
        "taker_buy_quote_volume": zero,
        "repaired": pa.array(np.ones(k, dtype=bool)),
    }
    schema = pa.schema([*KLINES, pa.field("repaired", pa.bool_())])
    return pa.table(cols, schema=schema)
