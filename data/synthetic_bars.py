"""Price and volume bars of the synthetic market (the model of ``data.synthetic``).

Arrays are (N, T): symbol i, bar t at ``[i, t]``, so each symbol's series is contiguous and
ravels straight into the symbol-major rows of the KLINES table. Each symbol has its own random
stream (a child of the seed), so symbol i's bars depend only on (seed, i, interval, start, T)
and the market factor, never on how many other symbols are generated. Work proceeds in chunks
of ``CHUNK`` symbols so temporaries stay small.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GARCH_A: Final = 0.06
GARCH_B: Final = 0.92
T_DOF: Final = 5.0
MARKET_SHARE: Final = 0.5
CHUNK: Final = 8
_BLOCK: Final = 128
_US_PER_YEAR: Final = 365 * 86_400 * 1_000_000
BAR_FIELDS: Final = (
    "open", "high", "low", "close", "volume", "quote_volume", "trades",
    "taker_buy_volume", "taker_buy_quote_volume",
)  # fmt: skip


def from_units(k: F64, d: I64) -> F64:
    """``k * 10**-d`` as the nearest float to that decimal (what parsing Binance's string gives).

    Args:
        k: integer-valued float64 units (tick or lot counts), any shape.
        d: int64 decimals broadcasting against ``k`` (e.g. (N, 1) per symbol).
    """
    div = np.where(d >= 0, np.power(10.0, np.maximum(d, 0)), 1.0)
    if (d < 0).any():
        mul = np.where(d < 0, np.power(10.0, np.maximum(-d, 0)), 1.0)
        out: F64 = k * mul / div
        return out
    res: F64 = k / div
    return res


def _decimal_step(x: F64) -> tuple[F64, I64]:
    """Round positive sizes down to a power of ten; return (step, d) with step == 10**-d."""
    d = -np.floor(np.log10(x)).astype(np.int64)
    return from_units(np.ones(x.shape), d), d


def symbol_params(rngs: list[np.random.Generator], step_us: int) -> dict[str, Any]:
    """Per-symbol parameters, each an (N, 1) column, drawn first from each symbol's stream."""
    u = np.array([rng.random(8) for rng in rngs]).reshape(len(rngs), 8, 1)
    price0 = np.exp(np.log(0.01) + u[:, 0] * np.log(60_000.0 / 0.01))
    ann_vol = 0.5 + 0.8 * u[:, 1]
    tick, tick_d = _decimal_step(price0 * 2e-5)
    lot, lot_d = _decimal_step(np.minimum(1.0 / price0, 1.0))
    return {
        "price0": price0,
        "ann_vol": ann_vol,
        "bar_vol": ann_vol * np.sqrt(step_us / _US_PER_YEAR),
        "beta": 0.6 + 0.8 * u[:, 2],
        "tick": tick,
        "tick_d": tick_d,
        "lot": lot,
        "lot_d": lot_d,
        "quote_per_bar": np.exp(np.log(2e3) + u[:, 3] * np.log(1e3)) * step_us / 60e6,
        "trade_notional": 100.0 + 2900.0 * u[:, 4],
        "spread_rel": 0.05e-4 + 1.45e-4 * u[:, 5],
    }


def season(open_us: I64) -> F64:
    """Intraday activity multiplier (T,), mean 1 over a day, peak near 15:00 UTC."""
    hour = (open_us % 86_400_000_000) / 3_600_000_000.0
    x = 2 * np.pi * (hour - 15.0) / 24.0
    out: F64 = 1.0 + 0.45 * np.cos(x) + 0.1 * np.cos(2 * x)
    return out


def student_t(rng: np.random.Generator, size: Any) -> F64:
    """Unit-variance Student-t draws with ``T_DOF`` degrees of freedom."""
    z: F64 = rng.standard_t(T_DOF, size=size)
    z *= np.sqrt((T_DOF - 2.0) / T_DOF)
    return z


def garch(z: F64) -> F64:
    """Conditional variance of a unit-variance GARCH(1,1) driven by z, (K, T) -> (K, T).

    Equivalent to: ``h[:, 0] = 1; h[:, t] = (1 - a - b) + (a * z[:, t-1]**2 + b) * h[:, t-1]``,
    solved in time blocks of the linear recursion (products of positive factors, no
    cancellation), so the Python loop runs T / 128 times.
    """
    omega = 1.0 - GARCH_A - GARCH_B
    a = np.empty_like(z)
    a[:, 0] = 1.0
    np.square(z[:, :-1], out=a[:, 1:])
    a[:, 1:] *= GARCH_A
    a[:, 1:] += GARCH_B
    h = np.empty_like(z)
    prev = np.ones((z.shape[0], 1))
    for b0 in range(0, z.shape[1], _BLOCK):
        blk = a[:, b0 : b0 + _BLOCK]
        prod = np.cumprod(blk, axis=1)
        acc = np.cumsum(1.0 / prod, axis=1)
        if b0 == 0:
            acc -= 1.0  # a[:, 0] = 1 and h[:, 0] = 1 exactly: no omega term before bar 0
        h[:, b0 : b0 + _BLOCK] = prod * (prev + omega * acc)
        prev = h[:, b0 + blk.shape[1] - 1 : b0 + blk.shape[1]]
    return h


def _round_price(x: F64, sym: dict[str, Any], mode: str) -> tuple[F64, F64]:
    """Round prices (C, T) to each symbol's tick; returns (price, units), price = units * tick."""
    f = {"nearest": np.rint, "up": np.ceil, "down": np.floor}[mode]
    units = f(x / sym["tick"])
    np.maximum(units, 1.0, out=units)
    return from_units(units, sym["tick_d"]), units


def _chunk_bars(
    rngs: list[np.random.Generator], sym: dict[str, Any], market: F64, act: F64
) -> dict[str, F64]:
    """Bars (C, T) of one chunk of symbols; ``market`` is the (T,) market shock, ``act`` season."""
    c, t = len(rngs), market.size
    z, exc, noise = np.empty((c, t)), np.empty((2, c, t)), np.empty((2, c, t))
    for j, rng in enumerate(rngs):
        z[j] = student_t(rng, t)
        exc[:, j] = rng.standard_exponential((2, t))
        noise[:, j] = rng.standard_normal((2, t))
    sd = np.sqrt(garch(z))
    scale = sym["bar_vol"] * np.sqrt(act)
    r = z * sd * np.sqrt(1 - MARKET_SHARE) + sym["beta"] * np.sqrt(MARKET_SHARE) * market
    r *= scale
    scale *= sd
    close, _ = _round_price(np.exp(np.log(sym["price0"]) + np.cumsum(r, axis=1)), sym,
                                  "nearest")  # fmt: skip
    open_ = np.empty_like(close)
    open_[:, :1] = _round_price(sym["price0"], sym, "nearest")[0]
    open_[:, 1:] = close[:, :-1]
    trade_noise = np.exp(0.3 * (exc[0] - 1.0))  # more trades go with a wider range
    exc *= 0.4 * scale
    hi0, lo0 = np.maximum(open_, close), np.minimum(open_, close)
    high = np.maximum(_round_price(hi0 * np.exp(exc[0]), sym, "up")[0], hi0)
    low = np.minimum(_round_price(lo0 * np.exp(-exc[1]), sym, "down")[0], lo0)
    quote = np.abs(r) / sym["bar_vol"] + 0.5
    quote *= np.exp(0.4 * noise[0] - 0.08) * (sym["quote_per_bar"] * act)
    vwap = (open_ + high + low + close) / 4.0
    vol_units = np.maximum(np.rint(quote / vwap / sym["lot"]), 1.0)
    share = np.tanh(r / scale) * 0.25 + 0.5 + 0.05 * noise[1]
    buy_units = np.rint(np.clip(share, 0.02, 0.98) * vol_units)
    volume = from_units(vol_units, sym["lot_d"])
    taker = from_units(buy_units, sym["lot_d"])
    trades = np.maximum(np.rint(quote / sym["trade_notional"] * trade_noise), 1.0)
    return {
        "open": open_, "high": high, "low": low, "close": close,
        "volume": volume, "quote_volume": vwap * volume, "trades": trades,
        "taker_buy_volume": taker, "taker_buy_quote_volume": vwap * taker,
    }  # fmt: skip


def generate_bars(
    market_rng: np.random.Generator,
    rngs: list[np.random.Generator],
    sym: dict[str, Any],
    open_us: I64,
) -> dict[str, Any]:
    """All bars: name -> (N, T) float64 (``trades`` int64).

    Log return of bar t: ``bar_vol_i * sqrt(season_t) * (beta_i * sqrt(w) * m_t +
    sqrt(1 - w) * e_it)`` with GARCH(1,1)-Student-t market factor m and idiosyncratic e.
    """
    n, t = len(rngs), open_us.size
    act = season(open_us)
    zm = student_t(market_rng, (1, t))
    market = (zm * np.sqrt(garch(zm)))[0]
    out = {name: np.empty((n, t), dtype=np.int64 if name == "trades" else np.float64)
           for name in BAR_FIELDS}  # fmt: skip
    for lo in range(0, n, CHUNK):
        part = {k: v[lo : lo + CHUNK] for k, v in sym.items()}
        bars = _chunk_bars(rngs[lo : lo + CHUNK], part, market, act)
        for name, arr in bars.items():
            out[name][lo : lo + CHUNK] = arr
    return out
