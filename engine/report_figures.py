"""The report's figures as SVG text, one function per figure (engine.report assembles them).

Every figure is ``_WIDTH`` px wide; time axes are int64 UTC µs, drawn with calendar ticks.
Drawing is engine.svg_plot's; this module decides what each figure shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from alphaforge.engine.formatting import fmt
from alphaforge.engine.report_metrics import heat_map_ok, rolling_window
from alphaforge.engine.svg_plot import (
    BLUE,
    GREEN,
    PALETTE,
    RED,
    Frame,
    area,
    bars,
    data_range,
    decorate,
    heat_map,
    hline,
    legend,
    line,
    svg_document,
)

if TYPE_CHECKING:
    from alphaforge.engine.report import ReportInputs

F64 = npt.NDArray[np.float64]
_WIDTH, _LEFT = 900.0, 72.0  # px: every figure's width and its plot area's left edge


def _times(inputs: ReportInputs, n: int) -> tuple[F64, bool]:
    """The x values of an n-row series: the row times (µs) when ``ts_us`` matches, else
    0..n-1; and whether they are times."""
    if inputs.ts_us is None or len(inputs.ts_us) != n:
        return np.arange(n, dtype=np.float64), False
    return np.asarray(inputs.ts_us, dtype=np.int64).astype(np.float64), True


def _frame(top: float, height: float, x: F64, time_x: bool,
           y_range: tuple[float, float]) -> Frame:  # fmt: skip
    """A plot area of the report's width (``_WIDTH`` px) spanning x's finite range."""
    xs = x[np.isfinite(x)]
    x_lo, x_hi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if x_hi <= x_lo:  # one point: a unit-wide axis around it
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    return Frame(_LEFT, top, _WIDTH - _LEFT - 16, height, x_lo, x_hi, *y_range, time_x)


def _document(frames: Sequence[Frame], height: float, title: str) -> str:
    return svg_document(_WIDTH, height, [p for f in frames for p in f.parts], title)


def _fig_equity(inputs: ReportInputs) -> str:
    eq = np.asarray(inputs.equity, dtype=np.float64)
    x, time_x = _times(inputs, eq.size)
    peak = np.fmax.accumulate(np.fmax(eq, eq[0]))
    dd = eq / peak - 1.0
    top = _frame(28, 270, x, time_x, data_range(eq))
    line(top, x, eq)
    decorate(top, "Equity", "equity", x_labels=False)
    low = _frame(312, 80, x, time_x, data_range(dd, include_zero=True))
    area(low, x, dd, RED)
    decorate(low, "", "drawdown")
    return _document((top, low), 420, "Equity and drawdown")


def bar_returns(inputs: ReportInputs) -> F64:
    """(T,) per-bar net returns: ``inputs.returns`` (NaN as 0), else from the equity curve."""
    if inputs.returns is not None:
        return np.nan_to_num(np.asarray(inputs.returns, dtype=np.float64))
    eq = np.asarray(inputs.equity, dtype=np.float64)
    r = np.empty_like(eq)
    r[0] = 0.0
    r[1:] = eq[1:] / eq[:-1] - 1.0
    return r


def _fig_monthly(inputs: ReportInputs) -> str | None:
    if inputs.ts_us is None or not heat_map_ok(inputs.ts_us, inputs.span):
        return None
    r = bar_returns(inputs)
    months = (np.asarray(inputs.ts_us) // 1000).astype("datetime64[ms]").astype("datetime64[M]")
    uniq = np.unique(months)
    vals = np.array([np.prod(1 + r[months == m]) - 1 for m in uniq])
    years = uniq.astype("datetime64[Y]").astype(int) + 1970
    month_no = uniq.astype(int) % 12
    ys = np.unique(years)
    grid = np.full((ys.size, 12), np.nan)
    for y, mo, v in zip(years, month_no, vals, strict=True):
        grid[np.searchsorted(ys, y), mo] = v
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return heat_map(grid, [str(y) for y in ys], names, "Monthly returns")


def _fig_rolling_sharpe(inputs: ReportInputs) -> str | None:
    """Rolling Sharpe (annualised) on a window of at least 7 days, else the rolling return
    over a 1-day window; None when no window fits (engine.report_metrics.rolling_window)."""
    r = bar_returns(inputs)
    win = rolling_window(r.size, inputs.step_us)
    if win is None or not inputs.periods_per_year:
        return None
    w, days = win
    c1 = np.cumsum(np.insert(r, 0, 0.0))
    x_all, time_x = _times(inputs, r.size)
    x = x_all[w - 1 :]
    if days >= 7:
        c2 = np.cumsum(np.insert(r * r, 0, 0.0))
        mu = (c1[w:] - c1[:-w]) / w
        var = np.maximum((c2[w:] - c2[:-w]) / w - mu * mu, 0.0) * w / (w - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = mu / np.sqrt(var) * math.sqrt(inputs.periods_per_year)
        title = f"Rolling Sharpe ({days}-day window, annualised)"
    else:
        y = c1[w:] - c1[:-w]
        title = f"Rolling return ({days}-day window, sum of bar returns)"
    return _line_figure(x, time_x, {"": y}, title)


def _line_figure(x: F64, time_x: bool, series: Mapping[str, F64], title: str) -> str:
    """Lines over x (one per entry, a legend when they have labels) and the zero line."""
    f = _frame(28, 222, x, time_x, data_range(*series.values(), include_zero=True))
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    for y, color in zip(series.values(), colors, strict=True):
        line(f, x, y, color, 1.0)
    hline(f, 0.0)
    decorate(f, title)
    if any(series):
        legend(f, list(series), colors)
    return _document((f,), 278, title)


def _bar_figure(names: Sequence[str], values: Sequence[float], title: str, kind: str,
                y_label: str = "") -> str:  # fmt: skip
    """One bar per name from 0 (``kind`` "bar": red when negative, green when positive;
    "cost": red when positive) or, for "waterfall", each bar from the running total of the ones
    before it, then a blue total bar."""
    v = np.asarray(values, dtype=np.float64)
    labels, bottoms = [str(n) for n in names], np.zeros(v.size)
    colors = [RED if (a > 0 if kind != "bar" else a < 0) else GREEN for a in v]
    if kind == "waterfall":
        bottoms = np.concatenate(([0.0], np.cumsum(v)[:-1]))
        labels, v = [*labels, "total"], np.append(v, v.sum())
        bottoms, colors = np.append(bottoms, 0.0), [*colors, BLUE]
    centres = np.arange(v.size, dtype=np.float64)
    f = _frame(28, 222, np.array([-0.6, v.size - 0.4]), False,
               data_range(bottoms, bottoms + v, include_zero=True))  # fmt: skip
    bars(f, centres - 0.4, [0.8] * v.size, bottoms + v, bottoms, colors,
         [f"{n}: {fmt(float(a))}" for n, a in zip(labels, v, strict=True)])  # fmt: skip
    hline(f, 0.0)
    decorate(f, title, y_label, categories=labels)
    return _document((f,), 290, title)


def _histogram(values: F64, title: str) -> str | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    counts, edges = np.histogram(v, bins=50)
    f = _frame(28, 222, edges, False, (0.0, float(counts.max()) * 1.05 or 1.0))
    tips = [f"{a:.4g} to {b:.4g}: {c}" for a, b, c in zip(edges, edges[1:], counts, strict=False)]
    bars(f, edges[:-1], np.diff(edges), counts, np.zeros(counts.size), [BLUE] * counts.size, tips)
    decorate(f, title, "fills")
    return _document((f,), 278, title)


def figures(inputs: ReportInputs) -> dict[str, Callable[[], str | None]]:
    """Figure name -> a function drawing it as SVG text (None when the data do not support
    it), for every figure ``inputs`` has data for, in the report's order."""
    out: dict[str, Callable[[], str | None]] = {}
    if inputs.equity is not None and len(inputs.equity) > 1:
        out["equity_drawdown"] = lambda: _fig_equity(inputs)
        out["monthly_returns"] = lambda: _fig_monthly(inputs)
        out["rolling_sharpe"] = lambda: _fig_rolling_sharpe(inputs)
    if inputs.ic_series is not None:
        ic = np.asarray(inputs.ic_series, dtype=np.float64)
        x, time_x = _times(inputs, ic.size)
        k = max(1, ic.size // 50)
        smooth = np.convolve(np.nan_to_num(ic), np.ones(k) / k, mode="same")
        out["ic_over_time"] = lambda: _line_figure(x, time_x, {"": smooth},
                                                   f"RankIC over time ({k}-bar mean)")  # fmt: skip
    if inputs.ic_decay:
        hs = sorted(inputs.ic_decay)
        decay = [inputs.ic_decay[h] for h in hs]
        out["ic_decay"] = lambda: _bar_figure(
            [str(h) for h in hs], decay, "IC decay (mean RankIC by horizon, bars)", "bar"
        )
    if len(inputs.quantile_returns):
        q = list(inputs.quantile_returns)
        out["quantile_returns"] = lambda: _bar_figure([str(i) for i in range(1, len(q) + 1)], q,
                                                      "Mean forward return by factor quantile",
                                                      "bar")  # fmt: skip
    turnover = inputs.turnover
    if turnover is not None and len(turnover):
        out["turnover"] = lambda: _line_figure(*_times(inputs, len(turnover)),
                                               {"": np.asarray(turnover, dtype=np.float64)},
                                               "Turnover per bar")  # fmt: skip
    if inputs.costs:
        out["cost_breakdown"] = lambda: _bar_figure(
            list(inputs.costs), list(inputs.costs.values()),
            "Costs paid (quote; < 0 = received)", "cost")  # fmt: skip
    if inputs.slippage_bps is not None and len(inputs.slippage_bps):
        out["slippage_distribution"] = lambda: _histogram(
            np.asarray(inputs.slippage_bps, dtype=np.float64), "Slippage per fill (bps of arrival)"
        )
    if inputs.gap_components:
        out["gap_waterfall"] = lambda: _bar_figure(
            list(inputs.gap_components), list(inputs.gap_components.values()),
            "Backtest-vs-live gap (implementation shortfall components)", "waterfall",
            "bps of traded notional")  # fmt: skip
    if inputs.curves:
        out["cumulative_returns"] = lambda: _fig_curves(inputs)
    return out


def _fig_curves(inputs: ReportInputs) -> str:
    """Cumulative return of each curve (compounded over its finite bars, flat elsewhere)."""
    series = {}
    for label, r in inputs.curves.items():
        v = np.asarray(r, dtype=np.float64)
        cum = np.cumprod(1.0 + np.nan_to_num(v)) - 1.0
        series[label] = np.where(np.isfinite(v), cum, np.nan)
    n = max(v.size for v in series.values())
    x, time_x = _times(inputs, n)
    series = {k: np.pad(v, (0, n - v.size), constant_values=np.nan) for k, v in series.items()}
    return _line_figure(x, time_x, series, "Cumulative return")
