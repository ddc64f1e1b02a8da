"""What a stored partition lacks: missing bars on its interval grid, missing trade ids.

Computed on every write from the merged partition (``Store.write``) and kept in its manifest
under ``completeness``, so ``store ls``, ``ingest`` and ``pull`` can say what is missing without
re-reading data. Only holes *inside* a partition are counted: bars between its first and last
bar (a symbol listed mid-month, or the current month, legitimately starts or ends inside the
month), and agg-trade ids between its first and last id (Binance ids are consecutive per
symbol, so a jump is a loss). Other datasets (trades without ids, books, funding) carry none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from alphaforge.data import schemas

MAX_SPANS = 20
"""Spans listed in a manifest (the count covers every missing bar or id)."""


def _interval_us(dataset: str) -> int | None:
    for prefix in ("klines_", "mark_klines_", "index_klines_"):
        if dataset.startswith(prefix):
            try:
                return schemas.interval_us(dataset[len(prefix) :])
            except (KeyError, ValueError):
                return None
    return None


def partition_completeness(table: pa.Table, dataset: str) -> dict[str, Any] | None:
    """``{"unit", "missing", "spans", "complete"}`` of one merged partition, or None.

    Args:
        table: the partition's rows (one symbol, any order).
        dataset: the store's partition value (``klines_1m``, ``agg_trades``, ...).

    Returns:
        For klines: ``unit`` "bars", ``missing`` bars and up to ``MAX_SPANS`` half-open
        [from_us, to_us) spans; for agg_trades: ``unit`` "ids" and [first, end) id spans;
        None for datasets without a completeness rule.
    """
    step = _interval_us(dataset)
    if step is not None and "open_time" in table.column_names:
        t = np.unique(np.asarray(table.column("open_time").cast(pa.int64()).to_numpy(),
                                 dtype=np.int64))  # fmt: skip
        jumps = np.flatnonzero(np.diff(t) > step)
        spans = [[int(t[i] + step), int(t[i + 1])] for i in jumps]
        missing = int(sum((b - a) // step for a, b in spans))
        return _doc("bars", missing, spans)
    if dataset == "agg_trades" and "agg_trade_id" in table.column_names:
        ids = np.unique(np.asarray(table.column("agg_trade_id").to_numpy(), dtype=np.int64))
        jumps = np.flatnonzero(np.diff(ids) > 1)
        spans = [[int(ids[i] + 1), int(ids[i + 1])] for i in jumps]
        return _doc("ids", int(sum(b - a for a, b in spans)), spans)
    return None


def _doc(unit: str, missing: int, spans: list[list[int]]) -> dict[str, Any]:
    return {"unit": unit, "missing": missing, "spans": spans[:MAX_SPANS],
            "spans_total": len(spans), "complete": missing == 0}  # fmt: skip
