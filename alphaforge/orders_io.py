"""A backtest's orders and fills as tables, in the layouts ``alphaforge gap`` reads
(docs/gap.md): what ``backtest --orders-out`` / ``--fills-out`` write."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alphaforge.backtests import FactorBacktest
from alphaforge.engine.errors import InputError
from alphaforge.engine.panel import Panel


def orders_table(run: FactorBacktest, panel: Panel) -> dict[str, np.ndarray]:
    """The backtest's orders in the layout ``alphaforge gap`` reads (docs/gap.md): one row per
    order with its decision time and mid (the book's mid when the panel has a book, else the
    decision bar's close) and the backtest's own fill price and fee.

    Columns: order_id, ts_us (decision time, UTC µs), time_utc (ISO text), symbol, side
    (buy/sell), qty (base units, at the run's ``init_cash``), decision_mid, bt_fill_px, bt_fee
    (quote).

    Raises:
        InputError: the run kept no per-fill records (``record_trades=False``).
    """
    trades = run.result.trades
    if trades is None:
        raise InputError("the backtest kept no per-fill records; run it with record_trades=True")
    d, c = trades["decision_row"], trades["col"]
    if panel.book is not None:
        mid = 0.5 * (panel.book.bid_px[d, c, 0] + panel.book.ask_px[d, c, 0])
        mid = np.where(np.isfinite(mid), mid, panel["close"][d, c])
    else:
        mid = panel["close"][d, c]
    ts = panel.ts_us[d]
    return {
        "order_id": np.arange(trades.size), "ts_us": ts,
        "time_utc": np.datetime_as_string(ts.astype("datetime64[us]"), unit="ms"),
        "symbol": np.asarray(panel.symbols)[c],
        "side": np.where(trades["qty"] + trades["unfilled_qty"] > 0, "buy", "sell"),
        "qty": np.abs(trades["qty"]) + np.abs(trades["unfilled_qty"]), "decision_mid": mid,
        "bt_fill_px": trades["fill_px"], "bt_fee": trades["fee"],
    }  # fmt: skip


QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB")


def fills_table(run: FactorBacktest, panel: Panel) -> dict[str, np.ndarray]:
    """The backtest's own fills in the live-fills layout ``alphaforge gap`` reads (one row per
    filled order, ``order_id`` as in ``orders_table``): ts_us (the execution bar's open), symbol,
    side (buy/sell), qty, price, fee and fee_asset (the symbol's quote currency)."""
    trades = run.result.trades
    if trades is None:
        raise InputError("the backtest kept no per-fill records; run it with record_trades=True")
    ids = np.arange(trades.size)
    keep = trades["qty"] != 0
    t = trades[keep]
    sym = np.asarray(panel.symbols)[t["col"]]
    step = int(panel.interval_us or 0)
    return {
        "order_id": ids[keep], "ts_us": panel.ts_us[t["row"]] - step,
        "symbol": sym, "side": np.where(t["qty"] > 0, "buy", "sell"), "qty": np.abs(t["qty"]),
        "price": t["fill_px"], "fee": t["fee"],
        "fee_asset": np.array([next((q for q in QUOTES if s.endswith(q)), "USDT") for s in sym]),
    }  # fmt: skip


def write_orders(cols: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write an orders (or fills) table as CSV, or parquet when ``path`` ends in .parquet."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    if p.suffix == ".parquet":
        pq.write_table(table, p)
    else:
        pacsv.write_csv(table, p)
    return p
