"""Paper-live simulation: the fills a live run would likely have got, from recorded books.

Each order is sent at its decision time plus a latency drawn from a seeded model
(``base_us`` + exponential jitter with mean ``jitter_us``); it fills by walking the book
snapshot in force at arrival (last snapshot at or before it), with the same book-walk kernel
the backtest uses, and pays ``fee_bps`` taker fees in quote currency. The result has the
columns of a live fills file, so ``engine.gap.analyze_gap`` treats it like real fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine import slippage_nb
from alphaforge.engine.errors import InputError, OptionError
from alphaforge.engine.panel import BookLevels

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Order arrival delay: base_us + Exponential(mean=jitter_us), seeded."""

    base_us: int = 50_000
    jitter_us: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.base_us < 0 or self.jitter_us < 0:
            raise OptionError(f"latency must be >= 0; got {self.base_us}, {self.jitter_us}")

    def draw(self, n: int) -> I64:
        """(n,) int64 latencies in microseconds."""
        rng = np.random.default_rng(self.seed)
        jitter = rng.exponential(self.jitter_us, n) if self.jitter_us else np.zeros(n)
        return (self.base_us + jitter).astype(np.int64)


def simulate_fills(
    orders: Mapping[str, Any],
    book_ts_us: I64,
    symbols: tuple[str, ...],
    book: BookLevels,
    *,
    latency: LatencyModel | None = None,
    fee_bps: float = 4.0,
    quote_asset: str = "USDT",
    max_levels: int = 0,
) -> dict[str, np.ndarray]:
    """Fill each order against the book in force at decision time + latency.

    Args:
        orders: ts_us (decision, int64 µs), symbol, side (+1/-1 or buy/sell), qty (base > 0),
            optional order_id.
        book_ts_us: (T,) int64 snapshot times (sorted); book: (T, N, L) levels for ``symbols``.
        latency: the delay model (default LatencyModel()). fee_bps: taker fee.
        max_levels: walk only the first L levels (0 = all).

    Returns:
        Fill columns ts_us, symbol, side (+1/-1), qty, price, fee, fee_asset, order_id; orders
        that found no book or no depth produce no fill (their qty stays unfilled).
    """
    lat = latency or LatencyModel()
    sym = np.asarray(orders["symbol"]).astype(str)
    unknown = sorted(set(sym) - set(symbols))
    if unknown:
        raise InputError(f"orders: symbol(s) {unknown} have no book; books cover {symbols}")
    side_raw = np.asarray(orders["side"])
    side = (side_raw.astype(float) if side_raw.dtype.kind in "iuf"
            else np.where(np.char.lower(side_raw.astype(str)) == "buy", 1.0, -1.0))  # fmt: skip
    qty = np.asarray(orders["qty"], dtype=np.float64)
    t_arr = np.asarray(orders["ts_us"], dtype=np.int64) + lat.draw(qty.size)
    ids = np.asarray(orders.get("order_id", np.arange(qty.size)))
    col = {s: i for i, s in enumerate(symbols)}
    rows = np.searchsorted(book_ts_us, t_arr, side="right") - 1
    out: dict[str, list[Any]] = {
        k: [] for k in ("ts_us", "symbol", "side", "qty", "price", "fee", "order_id")
    }
    for j in range(qty.size):
        if rows[j] < 0 or not qty[j] > 0:
            continue
        c = col[sym[j]]
        px_side, q_side = (
            (book.ask_px, book.ask_qty) if side[j] > 0 else (book.bid_px, book.bid_qty)
        )
        px, filled = slippage_nb.walk_book(
            side[j],
            qty[j],
            px_side[rows[j], c],
            q_side[rows[j], c],
            max_levels,
            slippage_nb.CANCEL_REST,
            0.0,
        )
        if filled <= 0:
            continue
        for k, v in (
            ("ts_us", t_arr[j]),
            ("symbol", sym[j]),
            ("side", side[j]),
            ("qty", filled),
            ("price", px),
            ("fee", filled * px * fee_bps * 1e-4),
            ("order_id", ids[j]),
        ):
            out[k].append(v)
    res = {k: np.asarray(v) for k, v in out.items()}
    res["ts_us"] = res["ts_us"].astype(np.int64)
    res["fee_asset"] = np.full(len(res["qty"]), quote_asset)
    return res
