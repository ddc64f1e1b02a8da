"""The depth study behind ``alphaforge slippage-study``: one strategy, several order sizes, books
truncated at several depths and every slippage model, side by side.

Bars (``bar_us``, e.g. 1 s) come from a rebuilt L2 book (engine.book) and the trade stream:
  - close[t] = book mid at the bar's close time ts[t] (the decision time);
  - the order decided at row t executes at row s = t + 1 against the book in force at
    ts[t] + latency_us (``exec`` book, indexed by execution row, as run_backtest expects);
    open[s] = that book's mid (the arrival price);
  - volume[t], flow[t] = traded base volume and net taker flow (buyer-initiated minus
    seller-initiated) in (ts[t-1], ts[t]].
Strategy (documented, deliberately simple): trade-flow momentum. The target weight is
sign(sum of flow over the last ``window`` bars) (+1 long / -1 short of init_cash); an order is
sent only when that sign changes (NaN weight = hold), so every trade is a full flip.
Models: none; fixed_bps; half_spread (book spread at execution); sqrt_impact (k fitted by
least squares on the book-walk fills of the deepest book unless given; sigma and ADV trailing
``window_impact`` bars ending at the decision row); book_walk at each depth (0 = all levels).
Tradable bars: a bar may hold a position only while the book is synced at its close and at its
execution time (a sequence break in the depth stream leaves the book unknown until the next
snapshot) and inside the symbol's listing window when one is given (``window_us``: the store's
universe, so a delisted symbol is not traded after its last bar). A position is closed at the
last tradable bar before such a stretch and re-opened on the signal in force at the first
tradable bar after it, by the same rule (``engine.tradable``) every backtesting command uses.
Default exhaustion: PENALTY with 0 bps, i.e. what a backtest on a truncated book assumes (the
rest of an order fills at the last visible level), which is how shallow books hide the cost of
large orders; CANCEL_REST instead reports the unfilled fraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from alphaforge.engine import metrics
from alphaforge.engine.backtest import Slippage, run_backtest
from alphaforge.engine.book import rebuild_books
from alphaforge.engine.errors import InputError
from alphaforge.engine.panel import BookLevels, Panel
from alphaforge.engine.slippage import fit_impact_k, to_execution_rows, trailing_adv, trailing_sigma
from alphaforge.engine.tradable import executable_mask, mask_weights
from alphaforge.engine.types import Exhaustion

F64 = npt.NDArray[np.float64]
MODELS = ("none", "fixed_bps", "half_spread", "sqrt_impact", "book_walk")
_MAX_BOOK_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class StudyBars:
    """Bars of one symbol (see module docstring); arrays (T,), exec book (T, 1, L)."""

    ts_us: npt.NDArray[np.int64]
    close: F64
    open: F64
    volume: F64
    flow: F64
    spread_bps: F64
    book: BookLevels
    tradable: npt.NDArray[np.bool_] | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def build_bars(depth: pa.Table, trades: pa.Table, bar_us: int, latency_us: int = 0,
               symbol: str | None = None,
               window_us: tuple[int | None, int | None] = (None, None)) -> StudyBars:  # fmt: skip
    """Rebuild the book and cut it into bars (module docstring); keeps rows from the first
    to the last bar whose close and execution books are both known.

    Args:
        window_us: [first, end) bar close times (µs, None = open) the symbol is listed in;
            bars outside are untradable.

    Raises:
        InputError: no usable bars, or an all-levels book too large for memory at this bar.
    """
    if bar_us <= 0 or latency_us < 0:
        raise InputError(f"bar_us must be > 0 and latency_us >= 0; got {bar_us}, {latency_us}")
    syms = sorted(set(depth["symbol"].to_pylist())) if symbol is None else [symbol]
    if len(syms) != 1:
        raise InputError(f"the study runs one symbol; the recording has {syms}; pass symbol")
    tcol = depth["local_ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    start = (int(np.nanmin(tcol)) // bar_us + 1) * bar_us
    ts = np.arange(start, int(np.nanmax(tcol)) + 1, bar_us, dtype=np.int64)
    if ts.size < 3:
        raise InputError(f"the recording spans fewer than 3 bars of {bar_us} µs")
    dec = rebuild_books(depth, ts, symbols=syms, levels=1, depth_bps=(), on_gap="resync")
    deepest = max(1, dec.stats[syms[0]]["max_levels"])
    if ts.size * deepest * 32 > _MAX_BOOK_BYTES:
        raise InputError(f"{ts.size} bars x {deepest} levels exceed memory; use a longer --bar")
    ex = rebuild_books(depth, ts + latency_us, symbols=syms, levels=deepest, depth_bps=(),
                       on_gap="resync")  # fmt: skip
    close = 0.5 * (dec.levels.bid_px[:, 0, 0] + dec.levels.ask_px[:, 0, 0])
    pad = np.full((1, 1, deepest), np.nan)
    book = BookLevels(*(np.concatenate([pad, a[:-1]]) for a in ex.levels._arrays()))
    b0, a0 = book.bid_px[:, 0, 0], book.ask_px[:, 0, 0]
    open_ = 0.5 * (b0 + a0)
    volume, flow = _trade_bars(trades, ts, syms[0])
    ok = np.flatnonzero(np.isfinite(close) & np.isfinite(open_))
    if ok.size < 3:
        raise InputError("fewer than 3 bars with a synced book")
    keep = slice(int(ok[0]), int(ok[-1]) + 1)
    sub = BookLevels(*(np.ascontiguousarray(a[keep]) for a in book._arrays()))
    live = np.isfinite(close) & np.isfinite(open_)
    lo, hi = window_us
    if lo is not None:
        live &= ts >= lo
    if hi is not None:
        live &= ts < hi
    live = live[keep]
    stats = {"symbol": syms[0], "levels_all": deepest,
             **{k: v for k, v in ex.stats[syms[0]].items() if k != "breaks"},
             "sequence_breaks": len(ex.stats[syms[0]].get("breaks", ())),
             "untradable_bars": int((~live).sum())}  # fmt: skip
    return StudyBars(ts[keep], close[keep], open_[keep], volume[keep], flow[keep],
                     ((a0 - b0) / open_ * 1e4)[keep], sub, live, stats)  # fmt: skip


def _trade_bars(trades: pa.Table, ts: npt.NDArray[np.int64], sym: str) -> tuple[F64, F64]:
    t = trades.filter(pa.compute.equal(trades["symbol"], sym))
    tt = t["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    q = np.asarray(t["qty"].to_numpy(), dtype=np.float64)
    buyer_taker = ~np.asarray(t["is_buyer_maker"].to_numpy(zero_copy_only=False), dtype=bool)
    idx = np.searchsorted(ts, tt, side="left")  # trade in (ts[i-1], ts[i]] -> bar i
    ok = idx < ts.size
    vol = np.bincount(idx[ok], weights=q[ok], minlength=ts.size).astype(np.float64)
    sgn = np.where(buyer_taker, 1.0, -1.0)
    flow = np.bincount(idx[ok], weights=(q * sgn)[ok], minlength=ts.size).astype(np.float64)
    return vol, flow


def flow_weights(flow: F64, window: int) -> F64:
    """Trade-flow momentum targets (module docstring): +-1 on a sign change, else NaN (hold)."""
    csum = np.concatenate([[0.0], np.cumsum(flow)])
    roll = csum[window:] - csum[:-window]
    sig = np.concatenate([np.zeros(window - 1), np.sign(roll)])
    w = np.full(flow.size, np.nan)
    prev = 0.0
    for t, x in enumerate(sig):
        if x != 0.0 and x != prev:
            w[t] = x
            prev = x
    return w


def study_weights(bars: StudyBars, window: int) -> F64:
    """``flow_weights`` limited to tradable bars (module docstring): a position is closed
    before an untradable stretch and the signal in force is re-entered after it."""
    w = flow_weights(bars.flow, window)
    if bars.tradable is None or bars.tradable.all():
        return w
    state = last_value(w)
    panel = Panel(
        bars.ts_us,
        ("S",),
        {
            "close": bars.close[:, None],
            "open": bars.open[:, None],
            "tradable": bars.tradable[:, None].astype(np.float64),
        },
    )
    ok = executable_mask(panel, 1)[:, 0]
    reentry = ok & np.concatenate([[False], ~ok[:-1]]) & np.isnan(w)
    w[reentry] = state[reentry]
    return mask_weights(w[:, None], ok[:, None])[:, 0]


def last_value(w: F64) -> F64:
    """The last non-NaN value at or before each row (0 before the first)."""
    idx = np.where(np.isfinite(w), np.arange(w.size), -1)
    idx = np.maximum.accumulate(idx)
    return np.where(idx >= 0, w[np.maximum(idx, 0)], 0.0)


def _summarise(res: Any, k: int | None, size: float, ppy: float) -> dict[str, Any]:
    trades = res.trades if k is None else res.trades[res.trades["param"] == k]
    if trades is None:
        raise InputError("the study needs per-fill records (record_trades=True)")
    eq = res.equity if k is None else res.equity[:, k]
    rets = res.returns if k is None else res.returns[:, k]
    filled = trades[trades["qty"] != 0]
    notional = float((np.abs(filled["qty"]) * filled["ref_px"]).sum())  # at the arrival price
    slip = float(filled["slippage"].sum())
    asked = np.abs(trades["qty"]) + np.abs(trades["unfilled_qty"])
    return {
        "size": size, "pnl": float(eq[-1] - size), "pnl_bps": float((eq[-1] / size - 1) * 1e4),
        "sharpe": float(metrics.sharpe_ratio(rets, ppy)), "fills": int(filled.size),
        "cost_bps": slip / notional * 1e4 if notional > 0 else math.nan,
        "cost_per_trade": slip / filled.size if filled.size else math.nan,
        "half_spread_bps": float(filled["half_spread"].sum()) / notional * 1e4
        if notional > 0 else math.nan,
        "unfilled_frac": float(np.abs(trades["unfilled_qty"]).sum() / asked.sum())
        if asked.sum() > 0 else 0.0,
    }  # fmt: skip


def run_study(bars: StudyBars, sizes: Sequence[float], levels: Sequence[int], *,
              window: int = 5, fee_bps: float = 0.0, fixed_bps: float = 1.0,
              impact_k: float | None = None, window_impact: int = 60,
              exhaustion: Exhaustion = Exhaustion.PENALTY,
              penalty_bps: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Run the grid sizes x (models, book depths); ``levels`` 0 means all levels.

    Returns:
        {"rows": [{model, levels, size, pnl, pnl_bps, sharpe, fills, cost_bps,
        cost_per_trade, half_spread_bps, unfilled_frac}, ...], "impact_k", "bars", ...}.
        pnl: final equity - size (quote); sharpe: annualised from bar returns (365-day year);
        cost_bps: slippage paid / filled notional at the arrival price, in bps; cost_per_trade:
        slippage per fill (quote); unfilled_frac: unfilled / ordered base quantity.
    """
    if not sizes or not levels or window < 1:
        raise InputError(f"need sizes, levels and window >= 1; got {sizes}, {levels}, {window}")
    bar_us = int(np.median(np.diff(bars.ts_us)))
    ppy = 365 * 86_400_000_000 / bar_us
    w = study_weights(bars, window)
    common: dict[str, Any] = {"close": bars.close, "open": bars.open, "lag": 1, "fee_bps": fee_bps,
              "record_trades": True}  # fmt: skip
    sigma = to_execution_rows(trailing_sigma(bars.close, window_impact, max(2, window_impact // 2)))
    adv = to_execution_rows(trailing_adv(bars.volume, window_impact, max(1, window_impact // 2)))
    spread = bars.spread_bps[:, None]
    rows: list[dict[str, Any]] = []
    walks = []
    lv = np.asarray(levels, dtype=np.int64)
    deepest = int(np.flatnonzero(lv == 0)[0]) if (lv == 0).any() else int(np.argmax(lv))
    for size in sizes:
        slip = Slippage("book_walk", book=bars.book, book_levels=lv, exhaustion=exhaustion,
                        penalty_bps=penalty_bps)  # fmt: skip
        res = run_backtest(np.repeat(w[:, None, None], lv.size, axis=2), slippage=slip,
                           init_cash=float(size), **common)  # fmt: skip
        for k, lev in enumerate(lv):
            rows.append({"model": "book_walk", "levels": int(lev) or "all",
                         **_summarise(res, k, float(size), ppy)})  # fmt: skip
        walks.append(res.trades[res.trades["param"] == deepest] if res.trades is not None else [])
    k_fit = impact_k
    if k_fit is None:
        try:
            k_fit = fit_impact_k(np.concatenate(walks), adv, sigma)
        except InputError:
            k_fit = 1.0
    others = {"none": Slippage("none"), "fixed_bps": Slippage("fixed_bps", bps=fixed_bps),
              "half_spread": Slippage("half_spread", spread_bps=spread),
              "sqrt_impact": Slippage("sqrt_impact", spread_bps=spread, sigma=sigma, adv=adv,
                                      impact_k=k_fit)}  # fmt: skip
    for size in sizes:
        for name, slip in others.items():
            res = run_backtest(w, slippage=slip, init_cash=float(size), **common)
            rows.append({"model": name, "levels": "-", **_summarise(res, None, float(size), ppy)})
    order = {m: i for i, m in enumerate(MODELS)}
    depth_key = {"-": -1, "all": 10**9}
    rows.sort(key=lambda r: (r["size"], order[r["model"]], depth_key.get(r["levels"], r["levels"])))
    return {"rows": rows, "impact_k": k_fit, "bars": int(bars.ts_us.size), "bar_us": bar_us,
            "window": window, "fee_bps": fee_bps, "orders": int(np.isfinite(w).sum()),
            "tradable_bars": int(bars.ts_us.size if bars.tradable is None
                                 else bars.tradable.sum()),
            "book": bars.stats}  # fmt: skip


def plot_study(study: dict[str, Any], path: str) -> None:
    """Cost per trade (bps) and PnL (bps of size) versus order size, one line per model/depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for r in study["rows"]:
        name = r["model"] if r["model"] != "book_walk" else f"book_walk L={r['levels']}"
        lines.setdefault(name, []).append((r["size"], r["cost_bps"], r["pnl_bps"]))
    for name, pts in lines.items():
        x, c, p = (np.array(v, dtype=float) for v in zip(*sorted(pts), strict=True))
        axes[0].plot(x, c, marker="o", label=name)
        axes[1].plot(x, p, marker="o", label=name)
    for ax, title in zip(axes, ("slippage cost per traded notional (bps)", "PnL (bps of size)"),
                         strict=True):  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("order size (init cash, quote)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"slippage study: {study['book'].get('symbol', '')}, {study['bars']} bars")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def first_seconds(depth: pa.Table, trades: pa.Table, seconds: float) -> tuple[pa.Table, pa.Table]:
    """The first ``seconds`` of a recording (by receive time of the depth rows; trades by ts)."""
    if not seconds > 0:
        raise InputError(f"max_seconds must be > 0; got {seconds}")
    lt = depth["local_ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    end = int(np.nanmin(lt)) + int(seconds * 1e6)
    n = int(np.searchsorted(np.maximum.accumulate(lt), end, side="right"))
    tt = trades["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    return depth.slice(0, n), trades.filter(pa.array(tt <= end))
