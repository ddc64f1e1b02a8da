"""What the store knows around each order and fill, for ``alphaforge gap --store``.

- **Fee-asset prices**: a fee paid in an asset other than the quote currency (BNB) is priced at
  the close of the stored ``<ASSET><QUOTE>`` klines bar that contains the fill (fed to the gap as
  quotes of that pair).
- **Calibration features** for every slippage model: per order, the trailing per-bar volatility
  and average traded volume per bar at the decision (60 bars of the shortest stored klines) for
  ``sqrt_impact``, and, when the store holds the symbol's order book, the cost a walk of the book
  in force at the decision would have predicted for the order's size (``book_walk@decision``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.data import schemas
from alphaforge.data.store import Store
from alphaforge.data.store_open import open_store
from alphaforge.engine import slippage_nb
from alphaforge.engine.gap import Quotes
from alphaforge.engine.panel import Panel
from alphaforge.engine.slippage import trailing_adv, trailing_sigma
from alphaforge.panels import load_panel
from alphaforge.store_streams import kline_intervals

F64 = npt.NDArray[np.float64]
WINDOW = 60
"""Bars behind the trailing volatility and volume."""


def _shortest_klines(st: Store, market: str) -> str | None:
    ivs = kline_intervals(st, market)
    return ivs[0] if ivs else None


def _iso(us: int) -> str:
    return str(np.datetime64(int(us), "us"))


def fee_quotes(store: str, fills: Mapping[str, Any], quote_asset: str,
               market: str = "usdm") -> Quotes | None:  # fmt: skip
    """Quotes (bid = ask = bar close, at the bar's close time) of ``<ASSET><QUOTE>`` for each fee
    asset of ``fills`` that is neither the quote currency nor a traded symbol's base asset, from
    the store's klines; None when the store holds none of them."""
    st = open_store(store)
    iv = _shortest_klines(st, market)
    if iv is None:
        return None
    assets = {str(a) for a in np.asarray(fills["fee_asset"]).astype(str)} - {quote_asset}
    held = {p.symbol for p in st.partitions(f"klines_{iv}", market=market)}
    pairs = sorted(f"{a}{quote_asset}" for a in assets if f"{a}{quote_asset}" in held)
    if not pairs:
        return None
    ts = np.asarray(fills["ts_us"], dtype=np.int64)
    step = schemas.interval_us(iv)
    panel = load_panel(store, pairs, _iso(int(ts.min()) - step), _iso(int(ts.max()) + 2 * step),
                       interval=iv, market=market, book=False)  # fmt: skip
    close = panel["close"]
    sym = np.repeat(np.asarray(panel.symbols)[None, :], panel.T, axis=0)
    t = np.repeat(panel.ts_us[:, None], panel.N, axis=1)
    ok = np.isfinite(close)
    return Quotes(t[ok] - step, sym[ok].astype(str), close[ok], close[ok])  # a bar's close holds
    # from its start: a fill inside the bar is priced at that bar's close (the nearest known)


def calibration_features(store: str, orders: Mapping[str, Any],
                         market: str = "usdm") -> dict[str, F64]:  # fmt: skip
    """Per-order ``sigma``, ``adv`` and (with a stored book) ``book_walk_bps@decision``."""
    st = open_store(store)
    iv = _shortest_klines(st, market)
    if iv is None:
        return {}
    ts = np.asarray(orders["ts_us"], dtype=np.int64)
    syms = sorted({str(s) for s in np.asarray(orders["symbol"]).astype(str)})
    step = schemas.interval_us(iv)
    panel = load_panel(store, syms, _iso(int(ts.min()) - (WINDOW + 2) * step),
                       _iso(int(ts.max()) + step), interval=iv, market=market)  # fmt: skip
    row = np.searchsorted(panel.ts_us, ts, side="right") - 1
    col = np.array([panel.symbols.index(s) if s in panel.symbols else -1
                    for s in np.asarray(orders["symbol"]).astype(str)])  # fmt: skip
    ok = (row >= 0) & (col >= 0)
    sigma = trailing_sigma(panel["close"], WINDOW, WINDOW // 2)
    adv = trailing_adv(panel["volume"], WINDOW, WINDOW // 2)
    out = {"sigma": _take(sigma, row, col, ok), "adv": _take(adv, row, col, ok)}
    if panel.book is not None:
        out["book_walk_bps@decision"] = _walk(panel, orders, row, col, ok)
    return out


def _take(a: F64, row: np.ndarray, col: np.ndarray, ok: np.ndarray) -> F64:
    out = np.full(row.size, np.nan)
    out[ok] = a[row[ok], col[ok]]
    return out


def _walk(panel: Panel, orders: Mapping[str, Any], row: np.ndarray, col: np.ndarray,
          ok: np.ndarray) -> F64:  # fmt: skip
    """Cost (bps of the book's mid) of walking the book in force at the decision."""
    assert panel.book is not None
    side_raw = np.asarray(orders["side"])
    side = (side_raw.astype(float) if side_raw.dtype.kind in "iuf"
            else np.where(np.char.lower(side_raw.astype(str)) == "buy", 1.0, -1.0))  # fmt: skip
    qty = np.asarray(orders["qty"], dtype=np.float64)
    b = panel.book
    out = np.full(qty.size, np.nan)
    for j in np.flatnonzero(ok):
        t, i = int(row[j]), int(col[j])
        mid = 0.5 * (b.bid_px[t, i, 0] + b.ask_px[t, i, 0])
        px3, q3 = (b.ask_px, b.ask_qty) if side[j] > 0 else (b.bid_px, b.bid_qty)
        px, filled = slippage_nb.walk_book(side[j], qty[j], px3[t, i], q3[t, i], 0,
                                           slippage_nb.PENALTY, 0.0)  # fmt: skip
        if filled > 0 and np.isfinite(mid) and mid > 0:
            out[j] = side[j] * (px - mid) / mid * 1e4
    return out
