"""Small synthetic Panels for factor tests, built with numpy only (no data/ needed)."""

from __future__ import annotations

import numpy as np

from alphaforge.engine.panel import BookLevels, Panel

MINUTE_US = 60_000_000


def make_panel(
    n_bars: int = 400,
    n_assets: int = 6,
    seed: int = 1,
    *,
    book_levels: int = 5,
    perpetual: bool = True,
    nan_frac: float = 0.01,
) -> Panel:
    """A random-walk market: OHLCV klines, taker volume, trades, funding/basis/mark, a book.

    Args:
        n_bars: T rows (1-minute bars, indexed by close time).
        n_assets: N symbols.
        seed: generator seed.
        book_levels: L levels per side (0: no book).
        perpetual: add funding_rate, funding_paid, basis and mark_close.
        nan_frac: fraction of bars knocked out (NaN in every field), plus one late listing.
    """
    rng = np.random.default_rng(seed)
    t, n = n_bars, n_assets
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, (t, n)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.0005, (t, n)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, (t, n)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, (t, n)))
    volume = rng.lognormal(3.0, 0.8, (t, n))
    vwap = (open_ + high + low + close) / 4.0
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "quote_volume": volume * vwap,
        "trades": np.floor(volume * rng.uniform(0.5, 3.0, (t, n))) + 1.0,
        "taker_buy_volume": volume * rng.uniform(0.2, 0.8, (t, n)),
    }
    if perpetual:
        # hourly settlements, as alphaforge.data.store_views lays them out: the rate paid on the
        # settlement bar (NaN elsewhere) and the last settled rate per hour on every bar
        settled = rng.normal(1e-4, 2e-4, (t // 60 + 1, n))
        fields["funding_rate"] = np.repeat(settled, 60, 0)[:t]
        paid = np.full((t, n), np.nan)
        paid[::60] = settled[: len(range(0, t, 60))]
        fields["funding_paid"] = paid
        fields["basis"] = rng.normal(5e-4, 3e-4, (t, n))
        fields["mark_close"] = close * (1 + rng.normal(0, 2e-4, (t, n)))
        # open interest as alphaforge.panels lays it out: the 5-minute value last published
        oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 2e-3, (t // 5 + 1, n)), axis=0))
        fields["open_interest"] = np.repeat(oi, 5, 0)[:t]
        fields["open_interest_value"] = fields["open_interest"] * close
    knock = rng.random((t, n)) < nan_frac
    knock[: t // 10, 0] = True  # symbol 0 lists late
    for a in fields.values():
        a[knock] = np.nan
    book = None
    if book_levels:
        steps = np.cumsum(rng.uniform(0.5, 1.5, (t, n, book_levels)), axis=2) * 1e-4
        half = close[:, :, None] * rng.uniform(0.5e-4, 2e-4, (t, n, 1))
        book = BookLevels(
            bid_px=close[:, :, None] - half - close[:, :, None] * steps,
            bid_qty=rng.lognormal(0, 1, (t, n, book_levels)),
            ask_px=close[:, :, None] + half + close[:, :, None] * steps,
            ask_qty=rng.lognormal(0, 1, (t, n, book_levels)),
        )
    ts = (np.arange(1, t + 1, dtype=np.int64) + 28_000_000) * MINUTE_US
    symbols = tuple(f"S{i:02d}USDT" for i in range(n))
    return Panel(ts, symbols, fields, book, MINUTE_US, {"synthetic": True, "seed": seed})
