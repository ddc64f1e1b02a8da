"""Small synthetic Panels for factor tests, built through the product's own loaders.

``make_panel`` draws a random-walk market with numpy, writes it in the layouts the product reads
from disk (Binance archive CSVs for klines, mark/index price klines, funding and metrics; Tardis
``book_snapshot_<L>`` CSVs for the book), ``ingest``s them into a temporary store and reads the
Panel back with ``load_panel``. Every field a test sees (funding paid and last rate, basis, mark,
open interest, the book, the tradable mask, the true time grid) is therefore the one the product
builds from files, never an array invented beside it.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import alphaforge as af
from alphaforge.engine.panel import Panel
from alphaforge.panels import load_panel

MINUTE_US = 60_000_000
START_MIN = 28_000_000
"""The first bar opens 28,000,000 minutes after the epoch (2023-03-28 10:40 UTC)."""

_KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                 "taker_buy_volume,taker_buy_quote_volume,ignore")  # fmt: skip
_METRICS_HEADER = ("create_time,symbol,sum_open_interest,sum_open_interest_value,"
                   "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
                   "count_long_short_ratio,sum_taker_long_short_vol_ratio")  # fmt: skip


def make_panel(
    n_bars: int = 400,
    n_assets: int = 6,
    seed: int = 1,
    *,
    book_levels: int = 5,
    perpetual: bool = True,
    nan_frac: float = 0.01,
) -> Panel:
    """A random-walk market ingested from files and read back as a 1-minute Panel.

    Args:
        n_bars: T rows (1-minute bars, indexed by close time).
        n_assets: N symbols (``S00USDT`` ...).
        seed: generator seed.
        book_levels: L levels per side of the Tardis book snapshots taken at each bar's close
            (0: no book files).
        perpetual: USD-M files with mark and index price klines (basis), hourly funding
            settlements and 5-minute open interest; else spot klines only.
        nan_frac: fraction of bars missing from the kline files (NaN and untradable on the
            true grid), plus symbol 0 listing after the first tenth of the bars.
    """
    rng = np.random.default_rng(seed)
    t, n = n_bars, n_assets
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, (t, n)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.0005, (t, n)))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.002, (t, n)))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.002, (t, n)))
    volume = rng.lognormal(3.0, 0.8, (t, n))
    trades = np.floor(volume * rng.uniform(0.5, 3.0, (t, n))) + 1.0
    taker = volume * rng.uniform(0.2, 0.8, (t, n))
    vwap = (open_ + high + low + close) / 4.0
    present = rng.random((t, n)) >= nan_frac
    present[: t // 10, 0] = False  # symbol 0 lists late
    present[-1] = True  # the request's grid ends at the last bar for every symbol
    open_ms = (START_MIN + np.arange(t, dtype=np.int64)) * 60_000
    symbols = [f"S{i:02d}USDT" for i in range(n)]
    market = "usdm" if perpetual else "spot"
    with tempfile.TemporaryDirectory(prefix="af-panel-") as tmp:
        files = Path(tmp) / ("futures/um" if perpetual else "spot")
        month = _label(int(open_ms[0]), daily=False)
        for j, sym in enumerate(symbols):
            rows = np.flatnonzero(present[:, j])
            _klines(files / "klines" / f"{sym}-1m-{month}.csv", open_ms, rows,
                    (open_[:, j], high[:, j], low[:, j], close[:, j]), volume[:, j],
                    volume[:, j] * vwap[:, j], trades[:, j], taker[:, j])  # fmt: skip
            if perpetual:
                _perpetual_files(files, sym, month, rng, open_ms, rows, close[:, j])
            if book_levels:
                _book_snapshots(files / "tardis", sym, rng, open_ms, rows, close[:, j],
                                book_levels)  # fmt: skip
        store = af.Store(Path(tmp) / "store")
        report = store.ingest(files, market=market)
        if not report.ok:
            raise AssertionError(f"fixture files failed to ingest: {report.failed}")
        return load_panel(str(store.path), interval="1m", market=market,
                          book_levels=max(book_levels, 1))  # fmt: skip


def _num(x: float) -> str:
    """A float as the shortest text that reads back to the same double."""
    return repr(float(x))


def _label(ms: int, *, daily: bool) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d" if daily else "%Y-%m")


def _klines(path: Path, open_ms: np.ndarray, rows: np.ndarray, ohlc: tuple, volume: np.ndarray,
            quote: np.ndarray | None, trades: np.ndarray | None,
            taker: np.ndarray | None) -> None:  # fmt: skip
    """Binance kline archive rows (``quote``/``trades``/``taker`` None: left empty, as in the
    mark and index price klines the exchange publishes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    o, h, lo, c = ohlc
    with open(path, "w") as fh:
        fh.write(_KLINE_HEADER + "\n")
        for r in rows:
            t0 = int(open_ms[r])
            q = "" if quote is None else _num(quote[r])
            k = "" if trades is None else str(int(trades[r]))
            tb = "" if taker is None else _num(taker[r])
            tq = "" if taker is None or quote is None else _num(taker[r] * c[r])
            px = ",".join(_num(a[r]) for a in (o, h, lo, c, volume))
            fh.write(f"{t0},{px},{t0 + 59_999},{q},{k},{tb},{tq},0\n")


def _perpetual_files(root: Path, sym: str, month: str, rng: np.random.Generator,
                     open_ms: np.ndarray, rows: np.ndarray, close: np.ndarray) -> None:  # fmt: skip
    """Mark and index price klines around ``close``, hourly funding settlements (1-hour
    interval), and open interest published every 5 minutes."""
    t = len(open_ms)
    index = close * (1 + rng.normal(-2.5e-4, 1.5e-4, t))
    mark = close * (1 + rng.normal(2.5e-4, 1.5e-4, t))
    zero = np.zeros(t)
    for folder, px in (("markPriceKlines", mark), ("indexPriceKlines", index)):
        _klines(root / folder / f"{sym}-1m-{month}.csv", open_ms, rows, (px, px, px, px), zero,
                None, None, None)  # fmt: skip
    listed = int(open_ms[rows[0]])  # funding and open interest start at the listing
    first_h = -(-listed // 3_600_000) * 3_600_000
    settle = np.arange(first_h, int(open_ms[-1]) + 60_000, 3_600_000)
    rates = rng.normal(1e-4, 2e-4, len(settle))
    fpath = root / "fundingRate" / f"{sym}-fundingRate-{month}.csv"
    fpath.parent.mkdir(parents=True, exist_ok=True)
    with open(fpath, "w") as fh:
        fh.write("calc_time,funding_interval_hours,last_funding_rate\n")
        fh.writelines(f"{int(s)},1,{_num(r)}\n" for s, r in zip(settle, rates, strict=True))
    first5 = -(-listed // 300_000) * 300_000
    pub = np.arange(first5, int(open_ms[-1]) + 60_000, 300_000)
    oi = 1e6 * np.exp(np.cumsum(rng.normal(0, 2e-3, len(pub))))
    mpath = root / "metrics" / f"{sym}-metrics-{_label(int(open_ms[0]), daily=True)}.csv"
    mpath.parent.mkdir(parents=True, exist_ok=True)
    with open(mpath, "w") as fh:
        fh.write(_METRICS_HEADER + "\n")
        for p, v in zip(pub, oi, strict=True):
            px = close[min(int((p - open_ms[0]) // 60_000), t - 1)]
            stamp = datetime.fromtimestamp(p / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"{stamp},{sym},{_num(v)},{_num(v * px)},1.1,1.2,1.3,0.9\n")


def _book_snapshots(root: Path, sym: str, rng: np.random.Generator, open_ms: np.ndarray,
                    rows: np.ndarray, close: np.ndarray, levels: int) -> None:  # fmt: skip
    """A Tardis ``book_snapshot_<levels>`` CSV: one snapshot 1 ms before each present bar's
    close, around that close."""
    path = (
        root
        / f"binance-futures_book_snapshot_{levels}_{_label(int(open_ms[0]), daily=True)}_{sym}.csv"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [f"{side}[{k}].{what}" for k in range(levels) for side in ("asks", "bids")
            for what in ("price", "amount")]  # fmt: skip
    with open(path, "w") as fh:
        fh.write("exchange,symbol,timestamp,local_timestamp," + ",".join(cols) + "\n")
        for r in rows:
            c = float(close[r])
            steps = np.cumsum(rng.uniform(0.5, 1.5, levels)) * 1e-4 * c
            half = c * rng.uniform(0.5e-4, 2e-4)
            ask, bid = c + half + steps, c - half - steps
            qa, qb = rng.lognormal(0, 1, levels), rng.lognormal(0, 1, levels)
            ts = (int(open_ms[r]) + 59_999) * 1000
            vals = []
            for k in range(levels):
                vals += [_num(ask[k]), _num(qa[k]), _num(bid[k]),
                         _num(qb[k])]  # fmt: skip
            fh.write(f"binance-futures,{sym},{ts},{ts + 500}," + ",".join(vals) + "\n")
