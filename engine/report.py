"""Reports: a self-contained HTML tear sheet (figures inline) and the same figures as SVG files.

``build_report(inputs, out_dir)`` draws every figure for which ``ReportInputs`` carries data
(equity and drawdown, monthly returns heat map, rolling Sharpe, IC over time, IC decay,
quantile returns, turnover, cost breakdown, slippage distribution, gap waterfall) and writes
``report.html`` (opens offline: the figures are inline SVG, with hover tips on bars and cells)
plus one ``.svg`` per figure and ``report.json`` (every number shown). The figures are drawn by
engine.svg_plot, without a plotting library: matplotlib's import and layout cost about 1.6 s
per report, more than the rest of a warm demo's report step. Inputs are plain arrays and dicts,
so this module needs neither data/ nor factors/; the pipeline converts their objects.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphaforge.engine.formatting import fmt, json_safe
from alphaforge.engine.report_metrics import (
    heat_map_ok,
    metric_rows,
    rolling_window,
    span_text,
    span_us,
)
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

F64 = npt.NDArray[np.float64]
_WIDTH, _LEFT = 900.0, 72.0  # px: every figure's width and its plot area's left edge


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """What a report can show; every part is optional except the title.

    Attributes:
        title: heading of the tear sheet.
        ts_us: (T,) int64 UTC µs row times of the backtest.
        equity: (T,) equity curve (quote currency). periods_per_year: annualization basis.
        metrics: name -> value table of the backtest.
        turnover: (T,) traded notional / equity per row.
        costs: cost name -> total paid (fees, slippage, funding ...), quote currency.
        slippage_bps: per-fill slippage in bps of the arrival price.
        ic_series: (T,) per-timestamp RankIC of the factor; ic_decay: horizon -> mean RankIC.
        quantile_returns: bin -> mean forward return (lowest factor first).
        gap_components: component -> contribution to the backtest-vs-live gap (bps).
        quality_html: an HTML fragment (the data-quality section) shown as is.
        sections: extra (title, mapping) tables to show.
        notes: free text lines (e.g. "SYNTHETIC market").
        warnings: what makes the numbers optimistic (fills that see the decision bar, an
            unverified factor, a trial count); shown in a box above everything else.
        curves: label -> (T,) per-bar returns (NaN = not in that curve) drawn together as
            cumulative returns on the ``ts_us`` axis (e.g. in-sample vs out-of-sample).
        tables: (title, column names, rows) tables shown after the figures.
        interval_us: bar length; with ``ts_us`` it decides which figures the span supports
            (engine.report_metrics: annualised figures, rolling windows, the heat map).
        returns: (T,) per-bar net returns (default: from ``equity``).
        top_sections: (title, mapping) tables shown right after the performance table (costs,
            research honesty); ``sections`` come after the figures.
    """

    title: str
    ts_us: npt.NDArray[np.int64] | None = None
    equity: F64 | None = None
    periods_per_year: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    turnover: F64 | None = None
    costs: Mapping[str, float] = field(default_factory=dict)
    slippage_bps: F64 | None = None
    ic_series: F64 | None = None
    ic_decay: Mapping[int, float] = field(default_factory=dict)
    quantile_returns: Sequence[float] = ()
    gap_components: Mapping[str, float] = field(default_factory=dict)
    quality_html: str | None = None
    sections: Sequence[tuple[str, Mapping[str, Any]]] = ()
    notes: Sequence[str] = ()
    warnings: Sequence[str] = ()
    curves: Mapping[str, F64] = field(default_factory=dict)
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]] = ()
    interval_us: int | None = None
    returns: F64 | None = None
    top_sections: Sequence[tuple[str, Mapping[str, Any]]] = ()

    @property
    def span(self) -> int:
        """µs covered by the rows (0 without times)."""
        return 0 if self.ts_us is None else span_us(self.ts_us, self.interval_us)

    @property
    def step_us(self) -> int | None:
        """The bar length: ``interval_us`` or the median spacing of ``ts_us``."""
        if self.interval_us:
            return int(self.interval_us)
        if self.ts_us is None or len(self.ts_us) < 2:
            return None
        return int(np.median(np.diff(np.asarray(self.ts_us, dtype=np.int64))))


@dataclass(frozen=True, slots=True)
class ReportPaths:
    """Where ``build_report`` wrote its files."""

    html: Path
    json: Path
    figures: Mapping[str, Path]


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


def _returns(inputs: ReportInputs) -> F64:
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
    r = _returns(inputs)
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
    r = _returns(inputs)
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


def _figures(inputs: ReportInputs) -> dict[str, Callable[[], str | None]]:
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


FIGURE_TITLES = {
    "equity_drawdown": "Equity and drawdown", "monthly_returns": "Monthly returns",
    "rolling_sharpe": "Rolling performance", "ic_over_time": "RankIC over time",
    "ic_decay": "IC decay by horizon", "quantile_returns": "Returns by factor quantile",
    "turnover": "Turnover", "cost_breakdown": "Costs paid", "slippage_distribution":
    "Slippage per fill", "gap_waterfall": "Backtest vs live", "cumulative_returns":
    "Cumulative returns",
}  # fmt: skip


def _metric_rows(inputs: ReportInputs) -> list[tuple[str, Any]]:
    """The metrics as the span allows (engine.report_metrics), or as given without times."""
    if inputs.ts_us is None or not inputs.periods_per_year:
        return list(inputs.metrics.items())
    return metric_rows(inputs.metrics, _returns(inputs), inputs.span, inputs.periods_per_year)


def _rows_html(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)  # fmt: skip
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _table_html(title: str, values: Mapping[str, Any] | Sequence[tuple[str, Any]],
                headers: tuple[str, str] = ("", "value")) -> str:  # fmt: skip
    items = list(values.items()) if isinstance(values, Mapping) else list(values)
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>" for k, v in items
    )
    head = "".join(f"<th>{html.escape(h or 'item')}</th>" for h in headers)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{rows}</table>"


_CSS = ("body{font-family:sans-serif;max-width:980px;margin:auto;padding:1em}"
        "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 8px}"
        "figure{margin:0.5em 0}figure svg{max-width:100%;height:auto;display:block}"
        ".note{color:#a00}"
        ".warning{background:#fee;border:1px solid #c00;padding:0.4em;"
        "font-weight:bold}")  # fmt: skip


def build_report(inputs: ReportInputs, out_dir: str | Path) -> ReportPaths:
    """Draw every available figure and write report.html, report.json and the SVG figures.

    Args:
        inputs: what to show. out_dir: created if missing.

    Returns:
        ReportPaths with the HTML, JSON and figure (``<name>.svg``) paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    parts = [f"<h1>{html.escape(inputs.title)}</h1>"]
    parts += [f'<p class="warning">WARNING: {html.escape(w)}</p>' for w in inputs.warnings]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in inputs.notes]
    if inputs.metrics:
        parts.append(_table_html("Performance", _metric_rows(inputs), ("metric", "value")))
    for title, values in inputs.top_sections:
        parts.append(_table_html(title, values, ("item", "value")))
    for name, draw in _figures(inputs).items():
        svg = draw()
        if svg is None:
            continue
        path = out / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        figures[name] = path
        parts.append(f"<h2>{html.escape(FIGURE_TITLES.get(name, name))}</h2>"
                     f'<figure id="{name}">{svg}</figure>')  # fmt: skip
    for title, values in inputs.sections:
        parts.append(_table_html(title, values, ("item", "value")))
    for title, columns, rows in inputs.tables:
        parts.append(_rows_html(title, columns, rows))
    if inputs.quality_html:
        parts.append("<h2>Data quality</h2>" + inputs.quality_html)
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(inputs.title)}"
           f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")  # fmt: skip
    html_path = out / "report.html"
    html_path.write_text(doc, encoding="utf-8")
    summary = {"title": inputs.title, "warnings": list(inputs.warnings),
               "notes": list(inputs.notes), "metrics": inputs.metrics,
               "span": span_text(inputs.span) if inputs.ts_us is not None else None,
               "performance": dict(_metric_rows(inputs)) if inputs.metrics else {},
               "costs": inputs.costs, "ic_decay": inputs.ic_decay,
               "quantile_returns": list(inputs.quantile_returns),
               "gap_components": inputs.gap_components,
               "sections": {t: v for t, v in (*inputs.top_sections, *inputs.sections)},
               "tables": {t: [dict(zip(c, r, strict=True)) for r in rows]
                          for t, c, rows in inputs.tables},
               "figures": {k: str(v) for k, v in figures.items()}}  # fmt: skip
    json_path = out / "report.json"
    json_path.write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    return ReportPaths(html=html_path, json=json_path, figures=figures)
