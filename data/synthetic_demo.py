"""The demo's synthetic market: a real, tradable factor next to a microstructure mirage.

``generate_demo_market`` builds on ``data.synthetic`` (same GARCH/Student-t bars, symbols,
funding and order books, same schemas, labelled synthetic) and plants two effects whose truth is
known, so a reader can judge what the tool finds:

- **the planted factor** ``taker_imbalance_20`` of the library, ``2 * ts_sum(taker_buy_volume,
  20) / ts_sum(volume, 20) - 1``. Each symbol's taker-buy share follows a persistent AR(1)
  (``SHARE_PHI`` per bar, half-life about 11 hours on 5-minute bars); the cross-sectional z-score
  of the factor at the close of bar t moves the mid price of bar t + 1 by ``strength x bar
  volatility``. The edge is small per bar but lasts for hours, so it survives realistic costs
  when traded hourly (and a per-bar rebalance pays it away in fees).
- **bid-ask bounce**: books are built around the true mid, and each bar's last trade (its
  close, and the next bar's open) prints at the best bid or the best ask with equal odds. The
  1-bar reversal ``rev_1`` then "predicts" the next close-to-close return; the edge exists only
  at the prices a trade printed at, and a fill at the book (buying at the ask, selling at the
  bid) removes it: its gross Sharpe collapses net of costs.

Everything else (volumes, trades, funding, the books' depth) is the base generator's.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from alphaforge.data import schemas, synthetic_bars
from alphaforge.data.synthetic import (
    SyntheticMarket,
    klines_table,
    labelled,
    symbol_column,
    ts_column,
)
from alphaforge.data.synthetic_books import funding_table, snapshot_table

F64 = npt.NDArray[np.float64]

PLANTED_FACTOR: Final = "taker_imbalance_20"
PLANTED_WINDOW: Final = 20
SHARE_PHI: Final = 0.995
"""AR(1) coefficient of the taker-buy share per bar."""


def generate_demo_market(n_symbols: int = 20, weeks: int = 10, interval: str = "5m",
                         seed: int = 7, strength: float = 0.012, book_levels: int = 5,
                         spread_bps: tuple[float, float] = (3.0, 8.0),
                         start: str = "2024-01-01") -> SyntheticMarket:  # fmt: skip
    """The demo market (module docstring): klines, funding, book snapshots at every bar close.

    Args:
        n_symbols: N symbols. weeks: length. interval: bar interval (5m by default).
        seed: the whole generator's seed.
        strength: planted effect per bar, in units of the symbol's bar volatility per unit of
            the factor's cross-sectional z-score.
        book_levels: levels per side of each snapshot.
        spread_bps: range of the symbols' typical full bid-ask spread, bps of the price.
        start: open time of the first bar (UTC).

    Returns:
        A SyntheticMarket whose ``planted`` table holds the planted factor's values and whose
        ``meta["demo"]`` says what was planted.
    """
    step = schemas.interval_us(interval)
    t = int(weeks * 7 * 86_400_000_000 // step)
    root = np.random.SeedSequence(seed)
    s_market, s_symbols, s_share, s_bounce, s_funding, s_books = root.spawn(6)
    rngs = [np.random.default_rng(c) for c in s_symbols.spawn(n_symbols)]
    open_us = int(np.datetime64(start, "us").view(np.int64)) + step * np.arange(t, dtype=np.int64)
    sym = synthetic_bars.symbol_params(rngs, step)
    lo, hi = spread_bps
    sym["spread_rel"] = lo + (hi - lo) * np.random.default_rng(s_share).random((n_symbols, 1))
    sym["spread_rel"] *= 1e-4
    bars = synthetic_bars.generate_bars(np.random.default_rng(s_market), rngs, sym, open_us)
    _set_taker_share(bars, sym, np.random.default_rng(s_share))
    factor = _planted_factor(bars)
    _plant(bars, sym, factor, strength, synthetic_bars.season(open_us))
    symbols = [f"SYN{i:03d}USDT" for i in range(n_symbols)]
    books = snapshot_table([np.random.default_rng(c) for c in s_books.spawn(n_symbols)], symbols,
                           open_us + step, bars, sym, book_levels, 1)  # fmt: skip
    half = _bounce(bars, books, n_symbols, t, book_levels, np.random.default_rng(s_bounce))
    _requote(bars)
    sym_col = symbol_column(symbols, t)
    klines = klines_table(sym_col, open_us, step, bars)
    planted = pa.table([sym_col, ts_column(np.tile(open_us + step, n_symbols)),
                        pa.array(factor.ravel(), mask=np.isnan(factor.ravel()))],
                       names=["symbol", "ts", "planted_signal"])  # fmt: skip
    funding = funding_table(np.random.default_rng(s_funding), symbols, open_us, step,
                            bars["open"], 8 * 3_600_000_000)  # fmt: skip
    meta: dict[str, Any] = {
        "synthetic": True, "seed": seed,
        "parameters": {"n_symbols": n_symbols, "weeks": weeks, "interval": interval,
                       "n_bars": t, "strength": strength, "book_levels": book_levels,
                       "spread_bps": list(spread_bps), "start": start},
        "demo": {
            "planted_factor": PLANTED_FACTOR,
            "planted": f"{PLANTED_FACTOR}: the cross-sectional z-score of the 20-bar taker "
                       f"imbalance moves the next bar's mid by {strength:g} x the bar's "
                       f"volatility; the taker share is persistent (AR(1), phi {SHARE_PHI} per "
                       "bar), so the edge lasts for hours",
            "bounce": f"each close prints at the best bid or ask (half-spread {half:.1f} bps "
                      "on average): rev_1 looks profitable at trade prices only",
        },
    }  # fmt: skip
    return SyntheticMarket(klines=labelled(klines), funding=labelled(funding),
                           books=labelled(books), planted=labelled(planted),
                           meta=meta)  # fmt: skip


def _set_taker_share(bars: dict[str, Any], sym: dict[str, Any], rng: np.random.Generator) -> None:
    """Replace the taker-buy volumes by a persistent share of each bar's volume (whole lots)."""
    n, t = bars["volume"].shape
    e = rng.standard_normal((n, t)) * np.sqrt(1 - SHARE_PHI**2)
    x = np.empty((n, t))
    x[:, 0] = rng.standard_normal(n)
    for k in range(1, t):
        x[:, k] = SHARE_PHI * x[:, k - 1] + e[:, k]
    share = np.clip(0.5 + 0.12 * x, 0.02, 0.98)
    units = np.rint(bars["volume"] / sym["lot"])
    taker = synthetic_bars.from_units(np.rint(share * units), sym["lot_d"])
    vwap = bars["quote_volume"] / bars["volume"]
    bars["taker_buy_volume"] = taker
    bars["taker_buy_quote_volume"] = vwap * taker


def _planted_factor(bars: dict[str, Any]) -> F64:
    """(N, T) ``taker_imbalance_20`` from the bars (NaN for the first 19 bars)."""
    w = PLANTED_WINDOW
    c_tb = np.cumsum(bars["taker_buy_volume"], axis=1)
    c_v = np.cumsum(bars["volume"], axis=1)
    out = np.full(c_v.shape, np.nan)
    tb = c_tb[:, w - 1 :] - np.concatenate([np.zeros((c_tb.shape[0], 1)), c_tb[:, :-w]], axis=1)
    v = c_v[:, w - 1 :] - np.concatenate([np.zeros((c_v.shape[0], 1)), c_v[:, :-w]], axis=1)
    out[:, w - 1 :] = 2.0 * tb / v - 1.0
    return out


def _plant(bars: dict[str, Any], sym: dict[str, Any], factor: F64, strength: float,
           act: F64) -> None:  # fmt: skip
    """Move each bar's mid return by ``strength`` x bar volatility x the previous bar's
    cross-sectional z-score of ``factor``; prices rebuilt on the tick grid."""
    z = np.zeros_like(factor)
    ok = np.isfinite(factor).all(axis=0)  # rows where every symbol has a value
    f = factor[:, ok]
    sd = f.std(axis=0, keepdims=True)
    z[:, ok] = (f - f.mean(axis=0, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    adj = np.zeros_like(z)
    adj[:, 1:] = strength * sym["bar_vol"] * np.sqrt(act[1:])[None, :] * z[:, :-1]
    cum = np.cumsum(adj, axis=1)
    tick, tick_d = sym["tick"], sym["tick_d"]
    close_u = np.maximum(np.rint(bars["close"] * np.exp(cum) / tick), 1.0)
    close = synthetic_bars.from_units(close_u, tick_d)
    open_ = np.empty_like(close)
    open_[:, 0] = bars["open"][:, 0]
    open_[:, 1:] = close[:, :-1]
    up = np.ceil(bars["high"] * np.exp(cum) / tick)
    down = np.maximum(np.floor(bars["low"] * np.exp(cum) / tick), 1.0)
    bars["high"] = np.maximum(synthetic_bars.from_units(up, tick_d), np.maximum(open_, close))
    bars["low"] = np.minimum(synthetic_bars.from_units(down, tick_d), np.minimum(open_, close))
    bars["open"], bars["close"] = open_, close


def _requote(bars: dict[str, Any]) -> None:
    """Quote volumes at the final prices (the bar's VWAP taken as its OHLC mean, as the base
    generator does), so quote_volume stays inside [low, high] x volume."""
    vwap = (bars["open"] + bars["high"] + bars["low"] + bars["close"]) / 4.0
    bars["quote_volume"] = vwap * bars["volume"]
    bars["taker_buy_quote_volume"] = vwap * bars["taker_buy_volume"]


def _bounce(bars: dict[str, Any], books: pa.Table, n: int, t: int, levels: int,
            rng: np.random.Generator) -> float:  # fmt: skip
    """Closes (and the next opens) print at the best bid or ask of the book at the close;
    returns the mean half-spread in bps."""
    bid = books.column("bid_px").combine_chunks().flatten().to_numpy().reshape(n, t, levels)
    ask = books.column("ask_px").combine_chunks().flatten().to_numpy().reshape(n, t, levels)
    b0, a0 = bid[:, :, 0], ask[:, :, 0]
    at_ask = rng.random((n, t)) < 0.5
    close = np.where(at_ask, a0, b0)
    open_ = np.empty_like(close)
    open_[:, 0] = bars["open"][:, 0]
    open_[:, 1:] = close[:, :-1]
    bars["high"] = np.maximum(bars["high"], np.maximum(open_, close))
    bars["low"] = np.minimum(bars["low"], np.minimum(open_, close))
    bars["open"], bars["close"] = open_, close
    mid = 0.5 * (a0 + b0)
    return float(np.mean((a0 - b0) / mid) / 2 * 1e4)
