"""A deterministic, seeded synthetic crypto market in the real Binance schemas (always labelled).

``generate_market`` returns a :class:`SyntheticMarket` whose tables have exactly the schemas of
``data.schemas`` (KLINES, FUNDING, BOOK_SNAPSHOTS), so every downstream path is the one real data
takes; each table's schema metadata carries ``alphaforge.synthetic = true`` and ``.meta`` says
``synthetic: True`` with the seed and every parameter.

The model, per bar t and symbol i (all draws from one ``numpy.random.SeedSequence`` tree seeded
by ``seed``: the market factor, each symbol, the planted signal, funding and books have their own
child streams, so changing ``book_levels`` leaves the klines unchanged and symbol i's bars do not
depend on ``n_symbols``; see ``data.synthetic_bars``):

- returns ``r[t, i] = vol_i * season_vol[t] * (beta_i * sqrt(w) * m[t] + sqrt(1 - w) * e[t, i])``
  where the market factor ``m`` and each idiosyncratic ``e`` follow a GARCH(1,1) with unit
  unconditional variance, ``h[t] = (1 - a - b) + (a * z[t-1]**2 + b) * h[t-1]``, driven by
  unit-variance Student-t innovations ``z`` (fat tails, volatility clustering);
- prices are rounded to each symbol's tick size; a bar opens at the previous bar's close;
  high/low extend the open/close range by an exponential excursion and are rounded outwards;
- volume follows an intraday seasonality (peak near 15:00 UTC) times ``0.5 + |r| / vol`` times
  log-normal noise; taker-buy volume is a return-dependent share of it (whole lots); ``trades``
  is quote volume over a per-symbol trade size, with noise tied to the bar's range;
- funding rates (perpetuals only) every ``funding_interval_h`` hours at epoch-aligned times;
- book snapshots (``book_levels > 0``) at bar closes, depth proportional to the bar's volume.

Planted alpha (exact contract): ``planted_signal`` at row ``ts = open_time[t] + interval`` (the
bar's close, when it becomes known) has an expected cross-sectional Spearman rank correlation of
``planted_ic`` with the NEXT bar's open-to-close return ``close[t+1] / open[t+1] - 1`` (computed
from the rounded klines). It is built from that future return (it is an oracle, not a feature of
past prices): ``signal = rho * g + sqrt(1 - rho**2) * noise`` with ``g`` the normal scores of the
next returns' cross-sectional ranks and ``rho`` solved so that the expected Spearman for
``n_symbols`` equals ``planted_ic`` exactly (finite-N formula, see ``_expected_spearman``;
``meta["planted_ic_realized"]`` is the realized mean). The last bar's signal is null (no next bar
exists). With the default lag-1 execution at the next bar's open, a long-short book on this
signal earns the planted edge before costs, which is what demos and tests should recover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from alphaforge.data import schemas, synthetic_bars
from alphaforge.data.errors import ParameterError
from alphaforge.data.synthetic_books import funding_table, snapshot_table

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

SYNTHETIC_META: Final = {b"alphaforge.synthetic": b"true"}
"""Schema metadata stamped on every synthetic table."""

_PLANT_BLOCK: Final = 8192

PLANTED: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", schemas.TS, nullable=False),
        pa.field("planted_signal", pa.float64()),
    ]
)
"""The planted factor: ``ts`` is its availability time (the bar's close, open_time + interval)."""


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """A generated market. Every table is labelled synthetic in its schema metadata.

    Attributes:
        klines: KLINES table sorted by (symbol, open_time); open_time at the bar open,
            close_time = open_time + interval - 1 ms as Binance stamps it.
        funding: FUNDING table sorted by (symbol, funding_time); empty for ``market="spot"``.
        books: BOOK_SNAPSHOTS table sorted by (symbol, ts); empty when ``book_levels == 0``.
        planted: PLANTED table (symbol, ts, planted_signal), same row order as ``klines``.
        meta: ``synthetic: True``, seed, every parameter, per-symbol tick/lot sizes, the planted
            IC requested, the ``rho`` used and the realized mean cross-sectional rank IC.
    """

    klines: pa.Table
    funding: pa.Table
    books: pa.Table
    planted: pa.Table
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.meta.get("synthetic") is not True:
            raise ParameterError("SyntheticMarket.meta must carry synthetic=True")


def generate_market(
    n_symbols: int = 20,
    n_bars: int = 10_000,
    interval: str = "1m",
    start: str | int | np.datetime64 = "2024-01-01",
    seed: int = 7,
    planted_ic: float = 0.05,
    book_levels: int = 20,
    book_every: int = 1,
    funding_interval_h: int = 8,
    market: Literal["usdm", "spot"] = "usdm",
    max_book_bytes: int = 1 << 30,
) -> SyntheticMarket:
    """Generate a seeded multi-asset market in the real Binance Arrow schemas.

    Args:
        n_symbols: number of symbols N (named ``SYN000USDT``, ``SYN001USDT``, ...), >= 1.
        n_bars: number of bars T per symbol, >= 2, no gaps.
        interval: Binance kline interval name (``"1m"``, ``"1h"``, ... see ``schemas.INTERVAL_US``).
        start: open time of the first bar: ISO date/time string (UTC), ``numpy.datetime64`` or
            int microseconds since the epoch; must be a multiple of the interval (<= 1d).
        seed: seed of the whole generator (same seed -> identical tables).
        planted_ic: expected cross-sectional Spearman IC of the planted signal with the next
            bar's open-to-close return, in [-0.9, 0.9]; needs n_symbols >= 2 unless 0.
        book_levels: L levels per side in each book snapshot; 0 for no books.
        book_every: bars between snapshots (a snapshot at the close of every ``book_every``-th bar).
        funding_interval_h: hours between funding events (epoch-aligned: 00, 08, 16 UTC for 8).
        market: ``"usdm"`` (perpetuals, with funding) or ``"spot"`` (no funding).
        max_book_bytes: refuse to build books larger than this (bytes of float64 level values).

    Returns:
        The :class:`SyntheticMarket`.

    Raises:
        ParameterError: an argument outside its documented range (the message names it).
    """
    p = _check_params(
        n_symbols, n_bars, interval, start, planted_ic, book_levels, book_every,
        funding_interval_h, market, max_book_bytes,
    )  # fmt: skip
    n, t, step = p["n_symbols"], p["n_bars"], p["interval_us"]
    root = np.random.SeedSequence(seed)
    s_market, s_symbols, s_planted, s_funding, s_books = root.spawn(5)
    rngs = [np.random.default_rng(c) for c in s_symbols.spawn(n)]
    open_us = p["start_us"] + step * np.arange(t, dtype=np.int64)
    sym = synthetic_bars.symbol_params(rngs, step)
    bars = synthetic_bars.generate_bars(np.random.default_rng(s_market), rngs, sym, open_us)
    rho, signal, realized = _planted(
        np.random.default_rng(s_planted), bars["open"], bars["close"], planted_ic
    )
    symbols = [f"SYN{i:03d}USDT" for i in range(n)]
    sym_col = symbol_column(symbols, t)
    klines = klines_table(sym_col, open_us, step, bars)
    planted = pa.table(
        [sym_col, ts_column(np.tile(open_us + step, n)), _nan_as_null(signal.ravel())],
        schema=PLANTED,
    )
    funding = (
        funding_table(np.random.default_rng(s_funding), symbols, open_us, step, bars["open"],
                      funding_interval_h * 3_600_000_000)
        if market == "usdm" else schemas.FUNDING.empty_table()
    )  # fmt: skip
    books = (
        snapshot_table([np.random.default_rng(c) for c in s_books.spawn(n)], symbols,
                       open_us + step, bars, sym, book_levels, book_every)
        if book_levels > 0 else schemas.BOOK_SNAPSHOTS.empty_table()
    )  # fmt: skip
    meta: dict[str, Any] = {
        "synthetic": True,
        "seed": seed,
        "parameters": {k: v for k, v in p.items() if k != "start_us"} | {"start": str(start)},
        "model": {"garch_a": synthetic_bars.GARCH_A, "garch_b": synthetic_bars.GARCH_B,
                  "t_dof": synthetic_bars.T_DOF, "market_share": synthetic_bars.MARKET_SHARE},
        "symbols": {s: {"tick_size": float(sym["tick"][i, 0]), "lot_size": float(sym["lot"][i, 0]),
                        "beta": float(sym["beta"][i, 0]), "annual_vol": float(sym["ann_vol"][i, 0])}
                    for i, s in enumerate(symbols)},
        "planted_ic": planted_ic,
        "planted_rho": rho,
        "planted_ic_realized": realized,
    }  # fmt: skip
    return SyntheticMarket(
        klines=labelled(klines), funding=labelled(funding), books=labelled(books),
        planted=labelled(planted), meta=meta,
    )  # fmt: skip


def _check_params(
    n_symbols: int, n_bars: int, interval: str, start: str | int | np.datetime64,
    planted_ic: float, book_levels: int, book_every: int, funding_interval_h: int,
    market: str, max_book_bytes: int,
) -> dict[str, Any]:  # fmt: skip
    def need(ok: bool, name: str, expected: str, got: object) -> None:
        if not ok:
            raise ParameterError(f"generate_market: {name} must be {expected}; got {got!r}")

    for name, val, lo in (("n_symbols", n_symbols, 1), ("n_bars", n_bars, 2),
                          ("book_levels", book_levels, 0), ("book_every", book_every, 1),
                          ("funding_interval_h", funding_interval_h, 1)):  # fmt: skip
        need(isinstance(val, int | np.integer) and val >= lo, name, f"an int >= {lo}", val)
    need(n_symbols <= 1000, "n_symbols", "<= 1000 (names are SYN000..SYN999)", n_symbols)
    need(interval in schemas.INTERVAL_US, "interval", f"one of {list(schemas.INTERVAL_US)}",
         interval)  # fmt: skip
    need(market in ("usdm", "spot"), "market", "'usdm' or 'spot'", market)
    ic_ok = isinstance(planted_ic, float | int) and abs(planted_ic) <= 0.9
    need(ic_ok, "planted_ic", "a number in [-0.9, 0.9]", planted_ic)
    need(n_symbols >= 2 or planted_ic == 0, "n_symbols", ">= 2 when planted_ic != 0", n_symbols)
    step = schemas.INTERVAL_US[interval]
    try:
        as_dt = None if isinstance(start, int) else np.datetime64(start, "us")  # type: ignore[call-overload]
    except (ValueError, TypeError) as exc:
        msg = f"generate_market: start {start!r} is not a date/time: {exc}"
        raise ParameterError(msg) from None
    start_us = int(start) if as_dt is None else int(as_dt.view(np.int64))
    if step <= 86_400_000_000:
        need(start_us % step == 0, "start", f"a multiple of the {interval} interval", start)
    n_snap = n_bars // book_every
    est = 4 * 8 * n_snap * n_symbols * book_levels
    need(est <= max_book_bytes, "book_levels/book_every",
         f"small enough for max_book_bytes={max_book_bytes} (books would take {est} bytes; "
         "raise book_every, lower book_levels or pass book_levels=0)",
         (book_levels, book_every))  # fmt: skip
    return {"n_symbols": int(n_symbols), "n_bars": int(n_bars), "interval": interval,
            "interval_us": step, "start_us": int(start_us), "planted_ic": float(planted_ic),
            "book_levels": int(book_levels), "book_every": int(book_every),
            "funding_interval_h": int(funding_interval_h), "market": market}  # fmt: skip


def _expected_spearman(rho: float, scores: F64) -> float:
    """E[Spearman(rho * g + sqrt(1 - rho**2) * noise, g)] for fixed scores g (sorted)."""
    n = scores.size
    diff = scores[:, None] - scores[None, :]
    from scipy import special  # on first use: only a planted factor's calibration needs it

    p_below = special.ndtr(rho * diff / np.sqrt(2.0 * (1.0 - rho * rho)))
    exp_rank = 1.0 + p_below.sum(axis=1) - 0.5  # the diagonal term is 1/2
    centred = np.arange(1, n + 1) - (n + 1) / 2.0
    return float(12.0 / (n**3 - n) * (centred @ exp_rank))


def _planted(
    rng: np.random.Generator, open_: F64, close: F64, ic: float
) -> tuple[float, F64, float]:
    """(rho, planted signal (N, T), realized mean rank IC) from the next bars' returns (N, T).

    Works in blocks of ``_PLANT_BLOCK`` bars so temporaries stay small; the noise is drawn in
    the same order as one (T - 1, N) draw would be.
    """
    from scipy import optimize, special  # on first use: only a planted factor needs them

    n, t = close.shape
    signal = np.full((n, t), np.nan)
    if n < 2:
        return 0.0, signal, float("nan")
    scores = special.ndtri((np.arange(n) + 0.5) / n)
    rho = 0.0
    if ic != 0.0:
        rho = optimize.brentq(lambda x: _expected_spearman(x, scores) - ic, -0.999, 0.999)
    total = 0.0
    for b0 in range(0, t - 1, _PLANT_BLOCK):
        b1 = min(b0 + _PLANT_BLOCK, t - 1)
        nxt = (close[:, b0 + 1 : b1 + 1] / open_[:, b0 + 1 : b1 + 1]).T  # (B, N): ranks of r + 1
        rows = np.arange(b1 - b0)[:, None]
        rank_r = np.empty(nxt.shape, dtype=np.intp)
        rank_r[rows, np.argsort(nxt, axis=1, kind="stable")] = np.arange(n)
        noise = rng.standard_normal(nxt.shape)
        noise *= np.sqrt(1.0 - rho * rho)
        noise += rho * scores[rank_r]
        signal[:, b0:b1] = noise.T
        rank_s = np.empty_like(rank_r)
        rank_s[rows, np.argsort(noise, axis=1)] = np.arange(n)
        total += float(np.einsum("ij,ij->", rank_r - (n - 1) / 2.0, rank_s - (n - 1) / 2.0))
    return float(rho), signal, total / (t - 1) / ((n**3 - n) / 12.0)


def symbol_column(symbols: list[str], t: int) -> pa.Array:
    """The ``symbol`` column: each name repeated ``t`` times, built from buffers (names share
    one length), so 10**7 rows cost one memcpy rather than 10**7 Python strings."""
    width = len(symbols[0])
    rows = len(symbols) * t
    if rows * width >= 2**31:
        raise ParameterError(f"generate_market: {rows} rows exceed the int32 string offsets")
    names = np.frombuffer("".join(symbols).encode(), dtype=np.uint8).reshape(len(symbols), width)
    data = np.repeat(names, t, axis=0).ravel()
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def ts_column(us: I64) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64), type=schemas.TS)


def klines_table(sym_col: pa.Array, open_us: I64, step: int, bars: dict[str, Any]) -> pa.Table:
    n = bars["open"].shape[0]
    cols: list[pa.Array] = [sym_col, ts_column(np.tile(open_us, n))]
    for name in schemas.KLINES.names[2:]:
        if name == "close_time":
            cols.append(ts_column(np.tile(open_us + step - 1000, n)))
        else:
            cols.append(pa.array(bars[name].ravel()))
    return pa.table(cols, schema=schemas.KLINES)


def _nan_as_null(x: F64) -> pa.Array:
    return pa.array(x, mask=np.isnan(x))


def labelled(table: pa.Table) -> pa.Table:
    """``table`` with ``alphaforge.synthetic = true`` added to its schema metadata."""
    meta = dict(table.schema.metadata or {}) | SYNTHETIC_META
    return table.replace_schema_metadata(meta)
