"""Reports: a self-contained HTML tear sheet (images embedded) and the same figures as PNGs.

``build_report(inputs, out_dir)`` draws every figure for which ``ReportInputs`` carries data
(equity and drawdown, monthly returns heat map, rolling Sharpe, IC over time, IC decay,
quantile returns, turnover, cost breakdown, slippage distribution, gap waterfall) and writes
``report.html`` (opens offline: PNGs are base64 data URIs) plus one PNG per figure and
``report.json`` (every number shown). Inputs are plain arrays and dicts, so this module needs
neither data/ nor factors/; the pipeline converts their objects.
"""

from __future__ import annotations

import base64
import html
import io
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

F64 = npt.NDArray[np.float64]


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
    pngs: Mapping[str, Path]


def _times(inputs: ReportInputs, n: int) -> Any:
    if inputs.ts_us is None or len(inputs.ts_us) != n:
        return np.arange(n)
    return (np.asarray(inputs.ts_us, dtype=np.int64) // 1000).astype("datetime64[ms]")


def _fig_equity(inputs: ReportInputs, plt: Any) -> Any:
    eq = np.asarray(inputs.equity, dtype=np.float64)
    x = _times(inputs, eq.size)
    peak = np.maximum.accumulate(np.maximum(eq, eq[0]))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1]})  # fmt: skip
    a1.plot(x, eq, lw=1.0)
    a1.set_ylabel("equity")
    a1.set_title("Equity")
    a2.fill_between(x, eq / peak - 1.0, 0.0, color="tab:red", alpha=0.5)
    a2.set_ylabel("drawdown")
    return fig


def _returns(inputs: ReportInputs) -> F64:
    if inputs.returns is not None:
        return np.nan_to_num(np.asarray(inputs.returns, dtype=np.float64))
    eq = np.asarray(inputs.equity, dtype=np.float64)
    r = np.empty_like(eq)
    r[0] = 0.0
    r[1:] = eq[1:] / eq[:-1] - 1.0
    return r


def _fig_monthly(inputs: ReportInputs, plt: Any) -> Any:
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
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * ys.size))
    lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(ys.size), [str(y) for y in ys])
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1%}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax)
    ax.set_title("Monthly returns")
    return fig


def _fig_rolling_sharpe(inputs: ReportInputs, plt: Any) -> Any:
    """Rolling Sharpe (annualised) on a window of at least 7 days, else the rolling return
    over a 1-day window; None when no window fits (engine.report_metrics.rolling_window)."""
    r = _returns(inputs)
    win = rolling_window(r.size, inputs.step_us)
    if win is None or not inputs.periods_per_year:
        return None
    w, days = win
    c1 = np.cumsum(np.insert(r, 0, 0.0))
    x = _times(inputs, r.size)[w - 1 :]
    fig, ax = plt.subplots(figsize=(9, 3))
    if days >= 7:
        c2 = np.cumsum(np.insert(r * r, 0, 0.0))
        mu = (c1[w:] - c1[:-w]) / w
        var = np.maximum((c2[w:] - c2[:-w]) / w - mu * mu, 0.0) * w / (w - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = mu / np.sqrt(var) * math.sqrt(inputs.periods_per_year)
        ax.set_title(f"Rolling Sharpe ({days}-day window, annualised)")
    else:
        y = c1[w:] - c1[:-w]
        ax.set_title(f"Rolling return ({days}-day window, sum of bar returns)")
    ax.plot(x, y, lw=1.0)
    ax.axhline(0.0, color="k", lw=0.5)
    return fig


def _fig_series(values: Any, title: str, plt: Any, x: Any = None, kind: str = "line") -> Any:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    fig, ax = plt.subplots(figsize=(9, 3))
    xs = np.arange(v.size) if x is None else x
    if kind in ("bar", "cost"):
        sign = 1.0 if kind == "cost" else -1.0  # costs are bad when positive, returns when not
        ax.bar([str(k) for k in xs], v, color=["tab:red" if sign * a > 0 else "tab:green"
                                               for a in v])  # fmt: skip
    elif kind == "hist":
        ax.hist(v[np.isfinite(v)], bins=50)
    else:
        ax.plot(xs, v, lw=0.8)
        ax.axhline(0.0, color="k", lw=0.5)
    ax.set_title(title)
    return fig


def _fig_waterfall(components: Mapping[str, float], plt: Any) -> Any:
    names = list(components)
    vals = np.array([components[k] for k in names], dtype=np.float64)
    starts = np.concatenate(([0.0], np.cumsum(vals)[:-1]))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(names, vals, bottom=starts, color=["tab:red" if v > 0 else "tab:green" for v in vals])
    ax.bar(["total"], [vals.sum()], color="tab:blue")
    ax.set_ylabel("bps of traded notional")
    ax.set_title("Backtest-vs-live gap (implementation shortfall components)")
    return fig


def _figures(inputs: ReportInputs, plt: Any) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    if inputs.equity is not None and len(inputs.equity) > 1:
        out["equity_drawdown"] = lambda: _fig_equity(inputs, plt)
        out["monthly_returns"] = lambda: _fig_monthly(inputs, plt)
        out["rolling_sharpe"] = lambda: _fig_rolling_sharpe(inputs, plt)
    if inputs.ic_series is not None:
        ic = np.asarray(inputs.ic_series, dtype=np.float64)
        x = _times(inputs, ic.size)
        k = max(1, ic.size // 50)
        smooth = np.convolve(np.nan_to_num(ic), np.ones(k) / k, mode="same")
        out["ic_over_time"] = lambda: _fig_series(smooth, f"RankIC over time ({k}-bar mean)",
                                                  plt, x)  # fmt: skip
    if inputs.ic_decay:
        hs = sorted(inputs.ic_decay)
        out["ic_decay"] = lambda: _fig_series([inputs.ic_decay[h] for h in hs],
                                              "IC decay (mean RankIC by horizon, bars)", plt,
                                              hs, "bar")  # fmt: skip
    if len(inputs.quantile_returns):
        q = list(inputs.quantile_returns)
        out["quantile_returns"] = lambda: _fig_series(q, "Mean forward return by factor quantile",
                                                      plt, range(1, len(q) + 1), "bar")  # fmt: skip
    turnover = inputs.turnover
    if turnover is not None:
        out["turnover"] = lambda: _fig_series(turnover, "Turnover per bar", plt,
                                              _times(inputs, len(turnover)))  # fmt: skip
    if inputs.costs:
        out["cost_breakdown"] = lambda: _fig_series(list(inputs.costs.values()),
                                                    "Costs paid (quote; < 0 = received)", plt,
                                                    list(inputs.costs), "cost")  # fmt: skip
    if inputs.slippage_bps is not None and len(inputs.slippage_bps):
        out["slippage_distribution"] = lambda: _fig_series(
            inputs.slippage_bps, "Slippage per fill (bps of arrival)", plt, kind="hist"
        )
    if inputs.gap_components:
        out["gap_waterfall"] = lambda: _fig_waterfall(inputs.gap_components, plt)
    if inputs.curves:
        out["cumulative_returns"] = lambda: _fig_curves(inputs, plt)
    return out


def _fig_curves(inputs: ReportInputs, plt: Any) -> Any:
    """Cumulative return of each curve (compounded over its finite bars, flat elsewhere)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for label, r in inputs.curves.items():
        v = np.asarray(r, dtype=np.float64)
        cum = np.cumprod(1.0 + np.nan_to_num(v)) - 1.0
        ax.plot(_times(inputs, v.size), np.where(np.isfinite(v), cum, np.nan), lw=1.0,
                label=label)  # fmt: skip
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_title("Cumulative return")
    ax.legend(loc="best", fontsize=8)
    return fig


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


def _png(fig: Any) -> bytes:
    import matplotlib.dates as mdates

    for ax in fig.axes:  # concise date ticks: no overlapping labels at month boundaries
        if isinstance(ax.xaxis.get_major_formatter(), mdates.AutoDateFormatter):
            locator = mdates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    buf = io.BytesIO()
    fig.tight_layout()
    # tight_layout leaves a placeholder layout engine behind, and savefig then draws the whole
    # figure once more before printing it; the layout is done, so drop the engine.
    fig.set_layout_engine(None)
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


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
        "img{max-width:100%;display:block;margin:0.5em 0}.note{color:#a00}"
        ".warning{background:#fee;border:1px solid #c00;padding:0.4em;"
        "font-weight:bold}")  # fmt: skip


def build_report(inputs: ReportInputs, out_dir: str | Path) -> ReportPaths:
    """Draw every available figure and write report.html, report.json and the PNGs.

    Args:
        inputs: what to show. out_dir: created if missing.

    Returns:
        ReportPaths with the HTML, JSON and PNG paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, Path] = {}
    parts = [f"<h1>{html.escape(inputs.title)}</h1>"]
    parts += [f'<p class="warning">WARNING: {html.escape(w)}</p>' for w in inputs.warnings]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in inputs.notes]
    if inputs.metrics:
        parts.append(_table_html("Performance", _metric_rows(inputs), ("metric", "value")))
    for title, values in inputs.top_sections:
        parts.append(_table_html(title, values, ("item", "value")))
    for name, draw in _figures(inputs, plt).items():
        fig = draw()
        if fig is None:
            continue
        data = _png(fig)
        plt.close(fig)
        path = out / f"{name}.png"
        path.write_bytes(data)
        pngs[name] = path
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f"<h2>{html.escape(FIGURE_TITLES.get(name, name))}</h2>"
                     f'<img alt="{name}" src="data:image/png;base64,{b64}">')  # fmt: skip
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
               "figures": {k: str(v) for k, v in pngs.items()}}  # fmt: skip
    json_path = out / "report.json"
    json_path.write_text(json.dumps(json_safe(summary), indent=2), encoding="utf-8")
    return ReportPaths(html=html_path, json=json_path, pngs=pngs)
